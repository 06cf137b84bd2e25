//! The one mapping from host errors to gRPC statuses (§11).

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::diag::Diagnostics;
use crate::host::{HostError, ReadError};
use crate::store::StoreError;

/// `INVALID_ARGUMENT` with one field violation per diagnostic. The field is the request field
/// the problem is in (`field`), refined by the YAML path where there is one; the description
/// carries the location (line/column, expression caret) and the fix.
pub(crate) fn invalid(field: &str, d: &Diagnostics) -> Status {
    let violations: Vec<FieldViolation> =
        d.0.iter()
            .map(|x| {
                let f = match &x.path {
                    Some(p) if !p.is_empty() => format!("{field}: {p}"),
                    _ => field.to_string(),
                };
                let mut v = FieldViolation::new(f, x.render().trim_end().to_string());
                v.reason = x.code.to_ascii_uppercase();
                v
            })
            .collect();
    let summary = d.0.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("; ");
    Status::with_error_details(Code::InvalidArgument, summary, ErrorDetails::with_bad_request(violations))
}

/// Maps a host error; `field` names the request field bad input came from.
pub(crate) fn from_host(field: &str, e: HostError) -> Status {
    match e {
        HostError::BadInput(d) => {
            // Windows outside the grid and exceeded limits have their own codes (§11).
            if d.0.iter().any(|x| x.code == "out_of_range") {
                return Status::out_of_range(d.to_string());
            }
            if d.0.iter().any(|x| x.code == "resource_exhausted") {
                return Status::resource_exhausted(d.to_string());
            }
            invalid(field, &d)
        }
        HostError::NotFound(w) => Status::not_found(format!("{w} not found")),
        HostError::AlreadyExists(w) => Status::already_exists(format!("{w} already exists")),
        HostError::FailedPrecondition(w) => Status::failed_precondition(w),
        HostError::Store(StoreError::InUse { path, holder }) => {
            Status::unavailable(format!("{path} is in use by {holder}"))
        }
        HostError::Store(e) => Status::internal(e.to_string()),
    }
}

pub(crate) fn from_read(field: &str, e: ReadError) -> Status {
    match e {
        ReadError::Host(h) => from_host(field, h),
        ReadError::Cancelled => Status::unavailable("the read was cancelled by concurrent writes; retry"),
    }
}

pub(crate) fn invalid_field(field: &str, message: impl Into<String>) -> Status {
    let message = message.into();
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {message}"),
        ErrorDetails::with_bad_request(vec![FieldViolation::new(field, message)]),
    )
}

/// tonic answers an oversized message with OUT_OF_RANGE; the API's contract (§11) is
/// RESOURCE_EXHAUSTED. Rewrites that one status, keeping its message.
pub(crate) fn message_size_is_resource_exhausted<B>(mut res: http::Response<B>) -> http::Response<B> {
    let oversized = res.headers().get("grpc-status").is_some_and(|v| v.as_bytes() == b"11")
        && res.headers().get("grpc-message").is_some_and(|m| {
            let m = String::from_utf8_lossy(m.as_bytes());
            m.contains("message%20length%20too%20large") || m.contains("message length too large")
        });
    if oversized {
        res.headers_mut().insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    res
}
