//! The one mapping from host errors to gRPC statuses (§11), and the located diagnostics an
//! INVALID_ARGUMENT status carries in its details.

use prost::Message as _;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::diag::{Diagnostics, bounded};
use crate::host::{HostError, ReadError};
use crate::server::pb;

/// The type URL of the `flowtime.v1.Diagnostics` detail.
pub const DIAGNOSTICS_TYPE_URL: &str = "type.googleapis.com/flowtime.v1.Diagnostics";
/// At most this many diagnostics travel in one status.
const MAX_DIAGNOSTICS: usize = 100;

/// The most bytes of details (google.rpc.Status, before base64) one status carries: with its
/// message it stays under the 8 KiB of metadata default gRPC clients accept.
pub(crate) const MAX_DETAILS_BYTES: usize = 4 * 1024;

/// `INVALID_ARGUMENT` with one field violation per diagnostic (google.rpc.BadRequest) and the
/// diagnostics themselves (`flowtime.v1.Diagnostics`). The field is the request field the
/// problem is in (`field`), refined by the YAML path where there is one; the description carries
/// the location (line/column, expression caret) and the fix. Diagnostics are kept in order while
/// they fit [`MAX_DETAILS_BYTES`] (at least one), and the message says how many were left out.
pub(crate) fn invalid(field: &str, d: &Diagnostics) -> Status {
    let (mut violations, mut items, mut used) = (Vec::new(), Vec::new(), 0usize);
    for x in d.0.iter().take(MAX_DIAGNOSTICS) {
        let f = match &x.path {
            Some(p) if !p.is_empty() => format!("{field}: {p}"),
            _ => field.to_string(),
        };
        let item = diagnostic(x);
        let mut description = x.render().trim_end().to_string();
        let size = |description: &str| f.len() + description.len() + x.code.len() + item.encoded_len() + 16;
        if used + size(&description) > MAX_DETAILS_BYTES {
            if !items.is_empty() {
                break;
            }
            description = x.message.clone();
        }
        used += size(&description);
        let mut v = FieldViolation::new(f, description);
        v.reason = x.code.to_ascii_uppercase();
        violations.push(v);
        items.push(item);
    }
    let mut summary = d.0.iter().take(items.len()).map(|x| x.to_string()).collect::<Vec<_>>().join("; ");
    if items.len() < d.0.len() {
        summary.push_str(&format!("; and {} more", d.0.len() - items.len()));
    }
    let summary = crate::diag::excerpt(&summary, crate::diag::MAX_TEXT);
    let standard =
        Status::with_error_details(Code::InvalidArgument, summary, ErrorDetails::with_bad_request(violations));
    // Add the diagnostics next to the standard details.
    let mut details = tonic_types::Status::decode(standard.details()).unwrap_or_default();
    details.details.push(prost_types::Any {
        type_url: DIAGNOSTICS_TYPE_URL.to_string(),
        value: pb::Diagnostics { items }.encode_to_vec(),
    });
    Status::with_details(Code::InvalidArgument, standard.message(), details.encode_to_vec().into())
}

fn diagnostic(d: &crate::diag::Diagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        severity: d.severity.to_string(),
        code: d.code.clone(),
        message: d.message.clone(),
        file: d.file.clone().unwrap_or_default(),
        path: d.path.clone().unwrap_or_default(),
        line: d.line,
        column: d.column,
        expr: d.expr.as_ref().map(|e| pb::ExprSpan {
            text: e.text.clone(),
            offset: e.offset as u32,
            len: e.len as u32,
        }),
        help: d.help.clone().unwrap_or_default(),
    }
}

/// Maps a host error; `field` names the request field bad input came from.
pub(crate) fn from_host(field: &str, e: HostError) -> Status {
    match e {
        HostError::BadInput(d) => {
            // Windows outside the grid and exceeded limits have their own codes (§11).
            let messages = || bounded(&d.0.iter().map(|x| x.message.as_str()).collect::<Vec<_>>().join("; "));
            if d.0.iter().any(|x| x.code == "out_of_range") {
                return Status::out_of_range(messages());
            }
            if d.0.iter().any(|x| x.code == "resource_exhausted") {
                return Status::resource_exhausted(messages());
            }
            if d.0.iter().any(|x| x.code == crate::engine::db::Interrupted::CODE) {
                return crate::server::edge::deadline_exceeded();
            }
            invalid(field, &d)
        }
        HostError::NotFound(m) => Status::not_found(bounded(&m)),
        HostError::AlreadyExists(w) => Status::already_exists(bounded(&format!("{w} already exists"))),
        HostError::FailedPrecondition(w) => Status::failed_precondition(bounded(&w)),
        HostError::InUse { path, holder } => Status::unavailable(bounded(&format!("{path} is in use by {holder}"))),
        HostError::Storage(m) => Status::internal(bounded(&m)),
        HostError::DataLoss(m) => Status::data_loss(bounded(&m)),
    }
}

pub(crate) fn from_read(field: &str, e: ReadError) -> Status {
    match e {
        ReadError::Host(h) => from_host(field, h),
        ReadError::Cancelled => Status::unavailable("the read was cancelled by concurrent writes; retry"),
    }
}

pub(crate) fn invalid_field(field: &str, message: impl Into<String>) -> Status {
    let message = bounded(&message.into());
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {message}"),
        ErrorDetails::with_bad_request(vec![FieldViolation::new(field, message)]),
    )
}

/// Rewrites the statuses tonic produces on its own where the API's contract says otherwise:
/// an oversized message (tonic: OUT_OF_RANGE) is RESOURCE_EXHAUSTED (§11), and a request that
/// is not a valid protobuf message (tonic-prost: INTERNAL, "failed to decode Protobuf message")
/// is INVALID_ARGUMENT: the client sent it, nothing failed inside the server. Messages are kept.
pub(crate) fn rewrite_codec_statuses<B>(mut res: http::Response<B>) -> http::Response<B> {
    let message = |res: &http::Response<B>| {
        res.headers()
            .get("grpc-message")
            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    let code = res.headers().get("grpc-status").map(|v| v.as_bytes().to_vec());
    let rewrite = match code.as_deref() {
        Some(b"11") => {
            let m = message(&res);
            (m.contains("message%20length%20too%20large") || m.contains("message length too large")).then_some("8")
        }
        Some(b"13") => is_decode_error(&message(&res)).then_some("3"),
        _ => None,
    };
    if let Some(code) = rewrite {
        res.headers_mut().insert("grpc-status", http::HeaderValue::from_static(code));
    }
    res
}

fn is_decode_error(message: &str) -> bool {
    message.starts_with("failed%20to%20decode%20Protobuf%20message")
        || message.starts_with("failed to decode Protobuf message")
}

/// A status from reading a client's stream: a message that does not decode is the client's
/// INVALID_ARGUMENT (as [`rewrite_codec_statuses`] does for unary requests).
pub(crate) fn from_client_stream(s: Status) -> Status {
    if s.code() == Code::Internal && is_decode_error(s.message()) {
        return Status::invalid_argument(s.message().to_string());
    }
    s
}
