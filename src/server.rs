//! The gRPC server (§11): tonic services over a [`SharedHost`], with health checking and
//! reflection (v1 and v1alpha), message-size and evaluation budgets, graceful shutdown.
//!
//! Evaluation runs off the async runtime (`spawn_blocking`) on a database snapshot per request; a
//! write cancels in-flight reads, which are retried once and otherwise answered `UNAVAILABLE`.
//! No snapshot is held while a reply is streamed.

mod convert;
mod edge;
pub mod pb;
mod service;
mod status;
mod watch;

pub(crate) use convert::inference as inference_label;
pub use status::DIAGNOSTICS_TYPE_URL;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::host::SharedHost;

/// Limits and locations of a server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Largest request or reply message, in bytes (default 64 MiB).
    pub max_message_bytes: usize,
    /// Largest `bins × units` one request may evaluate (default 200 million).
    pub eval_budget: u64,
    /// Most bins in a state window (default 10,000).
    pub max_state_window: u32,
    /// Where runs are written.
    pub runs_dir: PathBuf,
    /// Retries of a read cancelled by a concurrent write before answering UNAVAILABLE.
    pub read_retries: usize,
    /// Largest Gold upload (LoadGold with data), in bytes (default 64 MiB). Uploads are buffered,
    /// so this is also the loader's memory allowance over its output (§12); larger files load
    /// from the server's data root with `options.path`, which streams.
    pub max_upload_bytes: usize,
    /// The longest a request may run on a socket (default 10 minutes); a client's shorter
    /// `grpc-timeout` wins. Watch streams run as long as their client wants. Work past it stops
    /// and is answered DEADLINE_EXCEEDED.
    pub max_request_duration: Option<std::time::Duration>,
    /// When set, every request on the socket needs `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// TLS on the socket: the server's certificate chain and private key, PEM.
    pub tls: Option<TlsIdentity>,
    /// What a document (PutTemplate) may be: bytes, flow nesting, nodes (default 16 MiB, 128
    /// levels, 100,000 nodes); checked before it is parsed.
    pub documents: crate::model::yaml::Limits,
    /// How many documents are parsed and compiled at once (default: one fewer than the cores,
    /// at least one), off the host lock, so documents never take every core from readers.
    pub document_workers: usize,
}

/// A server's TLS identity (PEM text as read from `--tls-cert` and `--tls-key`).
#[derive(Clone)]
pub struct TlsIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            max_message_bytes: 64 * 1024 * 1024,
            eval_budget: 200_000_000,
            max_state_window: 10_000,
            runs_dir: PathBuf::from("runs"),
            read_retries: 1,
            max_upload_bytes: 64 * 1024 * 1024,
            max_request_duration: Some(std::time::Duration::from_secs(600)),
            token: None,
            tls: None,
            documents: crate::model::yaml::Limits::DEFAULT,
            document_workers: std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
        }
    }
}

/// Every service of the API (the flowtime services, health, reflection v1 and v1alpha) as one
/// router: the value the socket serves ([`serve`]) and in-process clients call
/// ([`crate::client::Client::in_process`]), so there is one implementation of each operation.
/// `stopping` ends the (endless) watch streams when it turns `true`.
pub async fn routes(
    host: Arc<SharedHost>,
    opts: ServerOptions,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Routes {
    let api = service::Api::new(host, opts.clone(), stopping);
    let (health, health_service) = tonic_health::server::health_reporter();
    use pb::{
        admin_service_server::AdminServiceServer, analysis_service_server::AnalysisServiceServer,
        query_service_server::QueryServiceServer, run_service_server::RunServiceServer,
        series_service_server::SeriesServiceServer, session_service_server::SessionServiceServer,
        template_service_server::TemplateServiceServer, watch_service_server::WatchServiceServer,
    };
    health.set_serving::<TemplateServiceServer<service::Api>>().await;
    health.set_serving::<SeriesServiceServer<service::Api>>().await;
    health.set_serving::<SessionServiceServer<service::Api>>().await;
    health.set_serving::<QueryServiceServer<service::Api>>().await;
    health.set_serving::<WatchServiceServer<service::Api>>().await;
    health.set_serving::<RunServiceServer<service::Api>>().await;
    health.set_serving::<AnalysisServiceServer<service::Api>>().await;
    health.set_serving::<AdminServiceServer<service::Api>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor set is valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("the embedded descriptor set is valid");
    let max = opts.max_message_bytes;
    macro_rules! limited {
        ($s:expr) => {
            $s.max_decoding_message_size(max).max_encoding_message_size(max)
        };
    }
    Routes::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(limited!(TemplateServiceServer::new(api.clone())))
        .add_service(limited!(SeriesServiceServer::new(api.clone())))
        .add_service(limited!(SessionServiceServer::new(api.clone())))
        .add_service(limited!(QueryServiceServer::new(api.clone())))
        .add_service(limited!(WatchServiceServer::new(api.clone())))
        .add_service(limited!(RunServiceServer::new(api.clone())))
        .add_service(limited!(AnalysisServiceServer::new(api.clone())))
        .add_service(limited!(AdminServiceServer::new(api)))
        .clone()
        .routes()
}

/// The response rewrites every caller of the routes sees, remote or in process: an oversized
/// message is RESOURCE_EXHAUSTED (§11), a request that does not decode INVALID_ARGUMENT.
pub(crate) fn response_layer<B>() -> tower::util::MapResponseLayer<fn(http::Response<B>) -> http::Response<B>> {
    tower::util::MapResponseLayer::new(status::rewrite_codec_statuses::<B>)
}

/// Serves the API on `listener` until `shutdown` resolves; in-flight calls finish first.
pub async fn serve(
    listener: TcpListener,
    host: Arc<SharedHost>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let max = opts.max_message_bytes;
    let edge = edge::Edge::new(opts.token.as_deref(), opts.max_request_duration);
    let tls = opts.tls.clone();
    let routes = routes(host, opts, stop_rx).await;
    // The web page on the same listener (HTTP/1.1 next to gRPC's h2): its gateway calls this very
    // router in process, so the page has no operation of its own (see `web`).
    let page = crate::web::router(crate::client::Client::over_routes(routes.clone(), max));
    let routes = Routes::from(routes.into_axum_router().merge(page));
    // When asked to stop: end the (endless) watch streams, then let tonic finish in-flight calls.
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let mut builder = tonic::transport::Server::builder().accept_http1(true);
    if let Some(t) = tls {
        let identity = tonic::transport::Identity::from_pem(t.cert_pem, t.key_pem);
        builder = builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    // The edge (token, deadline, log line) is outermost, so it sees the final status; the page's
    // HTTP routes pass it too.
    builder
        .layer(edge)
        .layer(response_layer())
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (inside a
/// runtime), not when the future is first polled: a signal that arrives between the two (e.g.
/// right after "listening on" is printed) still stops the server gracefully.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        let wait = |s: Option<Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        async move {
            tokio::select! {
                () = wait(term) => {}
                () = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Binds `addr` (port 0 picks a free port) and returns the listener with its actual address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}
