//! The one client of the API (§11): typed gRPC clients over either a connection to a running
//! server or the server's own router called in process (no socket). The CLI, the web page's
//! gateway and tests all talk to flowtime through this, so every operation has one
//! implementation: the service behind the router.

use std::sync::Arc;

use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::host::SharedHost;
use crate::server::pb::{
    admin_service_client::AdminServiceClient, analysis_service_client::AnalysisServiceClient,
    query_service_client::QueryServiceClient, run_service_client::RunServiceClient,
    series_service_client::SeriesServiceClient, session_service_client::SessionServiceClient,
    template_service_client::TemplateServiceClient, watch_service_client::WatchServiceClient,
};
use crate::server::{ServerOptions, response_layer, routes};

/// What a client sends requests through: a socket or the in-process router, behind one type.
pub type Transport = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    Box<dyn std::error::Error + Send + Sync + 'static>,
>;

/// A handle on the API. Cheap to clone; every accessor returns a fresh typed client.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    max_message_bytes: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// The in-process router's lifetime: dropping it ends the watch streams it serves.
#[derive(Debug)]
pub struct InProcess {
    pub client: Client,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// How to reach a server besides its address: the bearer token it asks for and the CA that
/// signed its TLS certificate.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Sent as `authorization: Bearer <token>` with every request.
    pub token: Option<String>,
    /// PEM certificate(s) to trust for the server's certificate; connects with TLS (`https`).
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("tls", &self.ca_pem.is_some())
            .finish()
    }
}

impl Client {
    /// Connects to a server. `url` may omit the scheme (`127.0.0.1:50051` means
    /// `http://127.0.0.1:50051`).
    pub async fn connect(url: &str) -> anyhow::Result<Client> {
        Client::connect_with(url, &ConnectOptions::default()).await
    }

    /// Connects to a server with a token and/or TLS. With a CA, `url` may say `http://` or omit
    /// the scheme: the connection is `https` either way, and the server's certificate must be
    /// signed by that CA for the host name (or IP address) in `url`.
    pub async fn connect_with(url: &str, opts: &ConnectOptions) -> anyhow::Result<Client> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let url = match opts.ca_pem {
            Some(_) => format!("https://{rest}"),
            None if url.contains("://") => url.to_string(),
            None => format!("http://{rest}"),
        };
        let mut endpoint = tonic::transport::Endpoint::from_shared(url)?.tcp_nodelay(true);
        if let Some(ca) = &opts.ca_pem {
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca.clone()));
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint.connect().await?;
        let transport = match &opts.token {
            None => BoxCloneSyncService::new(channel.map_err(|e| Box::new(e) as _)),
            Some(token) => {
                let mut value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| anyhow::anyhow!("the token must be printable ASCII"))?;
                value.set_sensitive(true);
                let authorised = tower::ServiceBuilder::new()
                    .map_request(move |mut r: http::Request<tonic::body::Body>| {
                        r.headers_mut().insert(http::header::AUTHORIZATION, value.clone());
                        r
                    })
                    .service(channel);
                BoxCloneSyncService::new(authorised.map_err(|e| Box::new(e) as _))
            }
        };
        Ok(Client { transport, max_message_bytes: ServerOptions::default().max_message_bytes })
    }

    /// The server's router over `host`, called in this process: requests are encoded and decoded
    /// exactly as over a socket, with the same limits and status mapping.
    pub async fn in_process(host: Arc<SharedHost>, opts: ServerOptions) -> InProcess {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let max_message_bytes = opts.max_message_bytes;
        let client = Client::over_routes(routes(host, opts, stopping).await, max_message_bytes);
        InProcess { client, stop }
    }

    /// A client of `routes` (built by [`crate::server::routes`]) called in this process; the
    /// caller owns their lifetime. `serve` gives one to the web page's gateway, over the very
    /// router it serves on the socket.
    pub fn over_routes(routes: tonic::service::Routes, max_message_bytes: usize) -> Client {
        let router = tower::ServiceBuilder::new().layer(response_layer()).service(routes);
        let transport = BoxCloneSyncService::new(ServiceExt::<http::Request<tonic::body::Body>>::map_err(
            router,
            |e: std::convert::Infallible| match e {},
        ));
        Client { transport, max_message_bytes }
    }

    /// The transport itself, for generic callers (the web gateway's reflective calls).
    pub fn transport(&self) -> Transport {
        self.transport.clone()
    }

    /// The largest message this client sends or accepts.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    pub fn templates(&self) -> TemplateServiceClient<Transport> {
        let max = self.max_message_bytes;
        TemplateServiceClient::new(self.transport.clone()).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    pub fn series(&self) -> SeriesServiceClient<Transport> {
        let max = self.max_message_bytes;
        SeriesServiceClient::new(self.transport.clone()).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    pub fn sessions(&self) -> SessionServiceClient<Transport> {
        let max = self.max_message_bytes;
        SessionServiceClient::new(self.transport.clone()).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    pub fn queries(&self) -> QueryServiceClient<Transport> {
        let max = self.max_message_bytes;
        QueryServiceClient::new(self.transport.clone()).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    pub fn watch(&self) -> WatchServiceClient<Transport> {
        let max = self.max_message_bytes;
        WatchServiceClient::new(self.transport.clone()).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    pub fn analysis(&self) -> AnalysisServiceClient<Transport> {
        let max = self.max_message_bytes;
        AnalysisServiceClient::new(self.transport.clone()).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    pub fn admin(&self) -> AdminServiceClient<Transport> {
        let max = self.max_message_bytes;
        AdminServiceClient::new(self.transport.clone()).max_decoding_message_size(max).max_encoding_message_size(max)
    }

    pub fn runs(&self) -> RunServiceClient<Transport> {
        let max = self.max_message_bytes;
        RunServiceClient::new(self.transport.clone()).max_decoding_message_size(max).max_encoding_message_size(max)
    }
}

/// The name gRPC documents for a status code (`INVALID_ARGUMENT` for `Code::InvalidArgument`),
/// as the CLI prints it and the web gateway answers it.
pub fn code_name(c: tonic::Code) -> String {
    format!("{c:?}").chars().fold(String::new(), |mut out, ch| {
        if ch.is_uppercase() && !out.is_empty() {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
        out
    })
}
