//! The JSON gateway: `POST /api/<package.Service>/<Method>` with a JSON body (the request
//! message in the protobuf JSON mapping) calls that gRPC method through the in-process router and
//! answers its reply as JSON. There is no per-method code: the method, its request and reply
//! types come from the embedded descriptor set by reflection (`prost-reflect`), so the gateway
//! can reach exactly the operations the gRPC API has, and each keeps its one implementation.
//!
//! Contract (also in `docs/web.md`):
//! - Unary methods answer `200` with the reply message as JSON (every field present, defaults
//!   included; 64-bit integers as JSON numbers; non-finite doubles as `"NaN"`, `"Infinity"`,
//!   `"-Infinity"`).
//! - Server-streaming methods answer `200` with `application/x-ndjson`: one line per message,
//!   `{"result": …}`, and a final `{"error": …}` line if the stream ends with a status.
//! - Client-streaming methods (LoadGold) are not reachable here: `501` (use gRPC).
//! - A failed call answers the HTTP status of its gRPC code with
//!   `{"code": 3, "codeName": "INVALID_ARGUMENT", "message": …, "fieldViolations": [{"field",
//!   "description"}], "diagnostics": [flowtime.v1.Diagnostic as JSON]}`.
//! - Authentication happens before the gateway: the listener's edge (`server::edge`) checks the
//!   token (bearer header or the page's cookie) on every route. The `authorization` header is
//!   also passed on as gRPC metadata, for services that read the caller's identity.

use std::str::FromStr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BufMut};
use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::client::Client;
use crate::server::pb;

/// The gateway's state: the API client and the descriptor pool it reflects over.
#[derive(Debug)]
pub struct Gateway {
    client: Client,
    pool: DescriptorPool,
}

/// The URL path the page posts to for `service` (full name) and `method`.
pub fn api_path(service: &str, method: &str) -> String {
    format!("/api/{service}/{method}")
}

impl Gateway {
    pub fn new(client: Client) -> Gateway {
        let pool = DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).expect("the embedded descriptor set is valid");
        Gateway { client, pool }
    }

    /// The descriptor pool the gateway resolves methods in (the API's own descriptor set).
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }
}

/// An error answered as JSON: a gRPC status, or one the gateway makes before calling (an
/// unknown method, a body that is not the request message).
struct Failure {
    code: Code,
    message: String,
    field_violations: Vec<serde_json::Value>,
    diagnostics: Vec<serde_json::Value>,
}

impl Failure {
    fn new(code: Code, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into(), field_violations: Vec::new(), diagnostics: Vec::new() }
    }

    /// A status with its rich details: google.rpc.BadRequest's field violations and
    /// flowtime.v1.Diagnostics (the located problems the CLI prints).
    fn from_status(pool: &DescriptorPool, s: &tonic::Status) -> Failure {
        let mut f = Failure::new(s.code(), s.message());
        use tonic_types::StatusExt;
        if let Some(b) = s.get_details_bad_request() {
            f.field_violations.extend(
                b.field_violations
                    .into_iter()
                    .map(|v| serde_json::json!({"field": v.field, "description": v.description})),
            );
        }
        if let Ok(details) = tonic_types::Status::decode(s.details()) {
            let desc = pool.get_message_by_name("flowtime.v1.Diagnostics");
            for any in details.details.iter().filter(|a| a.type_url == crate::server::DIAGNOSTICS_TYPE_URL) {
                let json = desc.clone().and_then(|d| to_json(d, &any.value).ok());
                if let Some(items) = json.as_ref().and_then(|j| j.get("items")).and_then(|i| i.as_array()) {
                    f.diagnostics.extend(items.iter().cloned());
                }
            }
        }
        f
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "code": self.code as i32,
            "codeName": crate::client::code_name(self.code),
            "message": self.message,
            "fieldViolations": self.field_violations,
            "diagnostics": self.diagnostics,
        })
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut res = axum::Json(self.json()).into_response();
        *res.status_mut() = http_status(self.code);
        res
    }
}

/// The HTTP status of a gRPC code (the mapping of Google's HTTP/JSON transcoding).
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn serialize_options() -> SerializeOptions {
    SerializeOptions::new().skip_default_fields(false).stringify_64_bit_integers(false)
}

/// Protobuf bytes of a `desc` message as JSON.
fn to_json(desc: MessageDescriptor, bytes: &[u8]) -> Result<serde_json::Value, Failure> {
    let msg = DynamicMessage::decode(desc, bytes)
        .map_err(|e| Failure::new(Code::Internal, format!("the reply is not its declared message: {e}")))?;
    msg.serialize_with_options(serde_json::value::Serializer, &serialize_options())
        .map_err(|e| Failure::new(Code::Internal, format!("the reply cannot be written as JSON: {e}")))
}

/// `POST /api/{service}/{method}`.
pub(super) async fn handle(
    State(g): State<Arc<Gateway>>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match call(&g, &service, &method, &headers, body).await {
        Ok(res) => res,
        Err(f) => f.into_response(),
    }
}

async fn call(g: &Gateway, service: &str, method: &str, headers: &HeaderMap, body: Bytes) -> Result<Response, Failure> {
    let Some(svc) = g.pool.get_service_by_name(service) else {
        let known: Vec<String> = g.pool.services().map(|s| s.full_name().to_string()).collect();
        return Err(Failure::new(
            Code::Unimplemented,
            format!("no service `{service}`; the API has {}", known.join(", ")),
        ));
    };
    let Some(m) = svc.methods().find(|m| m.name() == method) else {
        let known: Vec<String> = svc.methods().map(|m| m.name().to_string()).collect();
        return Err(Failure::new(
            Code::Unimplemented,
            format!("`{service}` has no method `{method}`; it has {}", known.join(", ")),
        ));
    };
    if m.is_client_streaming() {
        return Err(Failure::new(
            Code::Unimplemented,
            format!("`{service}/{method}` streams its requests: call it over gRPC, not the JSON gateway"),
        ));
    }
    let text = if body.iter().all(u8::is_ascii_whitespace) { &b"{}"[..] } else { &body[..] };
    let mut de = serde_json::Deserializer::from_slice(text);
    let request = DynamicMessage::deserialize_with_options(m.input(), &mut de, &DeserializeOptions::new())
        .and_then(|msg| de.end().map(|()| msg))
        .map_err(|e| {
            Failure::new(Code::InvalidArgument, format!("the body is not a JSON `{}`: {e}", m.input().full_name()))
        })?;
    let mut req = tonic::Request::new(Bytes::from(request.encode_to_vec()));
    // The edge has checked the token already; the header travels with the call as metadata.
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Ok(v) = v.parse() {
            req.metadata_mut().insert("authorization", v);
        }
    }
    let path = http::uri::PathAndQuery::from_str(&format!("/{service}/{method}"))
        .map_err(|e| Failure::new(Code::InvalidArgument, format!("bad method path: {e}")))?;
    let max = g.client.max_message_bytes();
    // A concrete error type: the boxed one makes the handler's future fail the `Send` check
    // (a higher-ranked `From` bound on `Box<dyn Error>`).
    let transport = GatewayTransport(g.client.transport());
    let mut grpc = tonic::client::Grpc::new(transport).max_decoding_message_size(max).max_encoding_message_size(max);
    grpc.ready().await.map_err(|e| Failure::new(Code::Unavailable, format!("the API is not ready: {e}")))?;
    let output = m.output();
    if m.is_server_streaming() {
        let stream = grpc
            .server_streaming(req, path, BytesCodec)
            .await
            .map_err(|s| Failure::from_status(&g.pool, &s))?
            .into_inner();
        let pool = g.pool.clone();
        let lines = stream.map(move |item| {
            let line = match item {
                Ok(bytes) => match to_json(output.clone(), &bytes) {
                    Ok(v) => serde_json::json!({ "result": v }),
                    Err(f) => serde_json::json!({ "error": f.json() }),
                },
                Err(s) => serde_json::json!({ "error": Failure::from_status(&pool, &s).json() }),
            };
            let mut text = line.to_string();
            text.push('\n');
            Ok::<_, std::convert::Infallible>(text)
        });
        let mut res = Response::new(Body::from_stream(lines));
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(res);
    }
    let reply = grpc.unary(req, path, BytesCodec).await.map_err(|s| Failure::from_status(&g.pool, &s))?.into_inner();
    Ok(axum::Json(to_json(output, &reply)?).into_response())
}

/// An error of the transport under the gateway's calls.
#[derive(Debug)]
struct TransportError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The client's transport with a concrete error type (see [`TransportError`]).
#[derive(Clone)]
struct GatewayTransport(crate::client::Transport);

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for GatewayTransport {
    type Response = http::Response<tonic::body::Body>;
    type Error = TransportError;
    type Future = BoxFuture<Result<Self::Response, TransportError>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), TransportError>> {
        match self.0.poll_ready(cx) {
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(TransportError(e))),
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Ok(())),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            match fut.await {
                Ok(r) => Ok(r),
                Err(e) => Err(TransportError(e)),
            }
        })
    }
}

/// A codec that passes encoded messages through: the gateway encodes and decodes them itself,
/// by reflection.
#[derive(Clone, Copy, Debug)]
struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;

    fn encoder(&mut self) -> BytesCodec {
        BytesCodec
    }

    fn decoder(&mut self) -> BytesCodec {
        BytesCodec
    }
}

impl Encoder for BytesCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}
