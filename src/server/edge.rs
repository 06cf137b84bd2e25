//! What happens to every request on the socket before and after its service: the bearer token,
//! the deadline, and the one log line.
//!
//! - **Token.** With a token configured, a request without `authorization: Bearer <token>` is
//!   answered UNAUTHENTICATED (an HTTP request that is not gRPC, 401) before any service runs.
//!   Everything served on the listener goes through this one layer, so a route added to it later
//!   (the web page) is covered too.
//! - **Deadline.** A request's deadline is the shorter of its `grpc-timeout` and the server's
//!   `max_request_duration` (watch streams, over gRPC or the page's gateway, only honour their
//!   own `grpc-timeout`, which `server::watch` enforces on the stream). When it passes,
//!   or when the client goes away, the request's stop flag is set: evaluations check it between
//!   units ([`crate::engine::db::interruptible`]), analyses through their own cancel path, and
//!   LoadGold checks it before its write (its parse runs to the end); the answer is
//!   DEADLINE_EXCEEDED.
//! - **Log.** One `tracing` event per request when its reply ends (target `flowtime::request`):
//!   method, target (session or variant, where the request names one), gRPC code, duration and
//!   series definitions evaluated; at warn when it took over a second or failed on the server's
//!   side.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::{Code, Status};

use crate::sys::Stopwatch;

/// A request slower than this is logged at warn.
const SLOW: Duration = Duration::from_secs(1);
/// A deadline the client gave is answered a tenth early (5 to 100 ms), so that the server's
/// DEADLINE_EXCEEDED (and not tonic's own timer, which says CANCELLED) reaches the client even
/// on a busy machine (5 ms flat was too little at load 8 on 2 cores).
fn margin(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(5), Duration::from_millis(100))
}

tokio::task_local! {
    static CURRENT: Arc<Call>;
}

/// One request as the edge sees it: its deadline and stop flag, and what its log line reports.
#[derive(Debug)]
pub(crate) struct Call {
    /// Set when the deadline passes or the client goes away; the work stops at its next check.
    pub(crate) stop: Arc<AtomicBool>,
    started: Stopwatch,
    limit: Option<Duration>,
    target: Mutex<String>,
    units: AtomicU64,
}

impl Call {
    fn new(limit: Option<Duration>) -> Call {
        Call {
            stop: Arc::new(AtomicBool::new(false)),
            started: Stopwatch::start(),
            limit,
            target: Mutex::new(String::new()),
            units: AtomicU64::new(0),
        }
    }

    /// The request being served on this task (None in process, where no edge runs).
    pub(crate) fn current() -> Option<Arc<Call>> {
        CURRENT.try_with(Arc::clone).ok()
    }

    /// Runs `work` (spawned on another task) as part of request `call`.
    pub(crate) async fn scope<F: std::future::Future>(call: Arc<Call>, work: F) -> F::Output {
        CURRENT.scope(call, work).await
    }

    /// Names what the request is about (a session or variant) in its log line.
    pub(crate) fn note_target(target: &str) {
        if let Some(c) = Call::current() {
            *c.target.lock().unwrap_or_else(|p| p.into_inner()) = crate::diag::excerpt(target, 80);
        }
    }

    /// Counts series definitions the request evaluated (in its log line).
    pub(crate) fn add_units(&self, n: u64) {
        self.units.fetch_add(n, Ordering::Relaxed);
    }

    /// Time left before the deadline (None: no deadline).
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.limit.map(|l| l.saturating_sub(Duration::from_micros(self.started.elapsed_us())))
    }

    /// Whether the deadline has passed.
    pub(crate) fn expired(&self) -> bool {
        self.remaining().is_some_and(|r| r.is_zero())
    }

    /// Sets `flag` (and this call's stop flag) when the deadline passes, unless the returned
    /// guard is dropped first; for streaming replies, whose work outlives the handler. Keep the
    /// guard as long as the work runs: the timer (and the call it holds) goes with it, rather
    /// than waiting out the server's 10-minute maximum after every analysis.
    pub(crate) fn stop_at_deadline(self: &Arc<Call>, flag: Arc<AtomicBool>) -> DeadlineTimer {
        let Some(left) = self.remaining() else { return DeadlineTimer(None) };
        let call = self.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(left).await;
            call.stop.store(true, Ordering::Relaxed);
            flag.store(true, Ordering::Relaxed);
        });
        DeadlineTimer(Some(task.abort_handle()))
    }

    fn target(&self) -> String {
        self.target.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A deadline timer ([`Call::stop_at_deadline`]); dropping it cancels the timer.
pub(crate) struct DeadlineTimer(Option<tokio::task::AbortHandle>);

impl Drop for DeadlineTimer {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// DEADLINE_EXCEEDED for a request whose work was stopped at its deadline.
pub(crate) fn deadline_exceeded() -> Status {
    Status::deadline_exceeded(
        "the request's deadline passed before it finished; give it a longer deadline or ask for less",
    )
}

/// The edge's configuration.
#[derive(Clone, Debug, Default)]
pub(crate) struct Edge {
    /// `authorization: Bearer <token>` required when set.
    token: Option<Arc<str>>,
    /// The server's longest request (besides watch streams).
    max: Option<Duration>,
}

impl Edge {
    pub(crate) fn new(token: Option<&str>, max: Option<Duration>) -> Edge {
        Edge { token: token.map(Arc::from), max }
    }
}

impl<S> tower::Layer<S> for Edge {
    type Service = EdgeService<S>;
    fn layer(&self, inner: S) -> EdgeService<S> {
        EdgeService { inner, edge: self.clone() }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct EdgeService<S> {
    inner: S,
    edge: Edge,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for EdgeService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = crate::diag::excerpt(req.uri().path(), 120);
        let grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        // Watch streams, over gRPC or through the page's JSON gateway (whose in-process call
        // runs within this request).
        let watch =
            ["/flowtime.v1.WatchService/", "/api/flowtime.v1.WatchService/"].iter().any(|p| method.starts_with(p));
        let client = grpc_timeout(req.headers()).map(|t| t.saturating_sub(margin(t)));
        let limit = match (client, self.edge.max.filter(|_| !watch)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let call = Arc::new(Call::new(limit));
        if let Some(token) = &self.edge.token
            && !authorized(req.headers(), token, !grpc)
        {
            let res = if grpc {
                Status::unauthenticated("this server needs a token: send `authorization: Bearer <token>` (the CLI: --token-file or FLOWTIME_TOKEN)")
                    .into_http()
            } else if let Some(given) = query_token(req.uri())
                && same(given.as_bytes(), token.as_bytes())
            {
                // The page's way in: `/?token=…` once sets a cookie the browser then sends with
                // every page, asset and gateway request (same site only), and drops the token from
                // the address bar.
                let mut r = http::Response::new(Body::empty());
                *r.status_mut() = http::StatusCode::SEE_OTHER;
                let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
                if let Ok(v) = http::HeaderValue::from_str(&cookie) {
                    r.headers_mut().insert(http::header::SET_COOKIE, v);
                }
                let path = http::HeaderValue::from_str(req.uri().path()).unwrap_or(http::HeaderValue::from_static("/"));
                r.headers_mut().insert(http::header::LOCATION, path);
                r
            } else {
                let mut r = http::Response::new(Body::new(String::from(
                    "this server needs a token: open /?token=<token> once in this browser, or send `Authorization: Bearer <token>`\n",
                )));
                *r.status_mut() = http::StatusCode::UNAUTHORIZED;
                r.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
                r.headers_mut()
                    .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
                r
            };
            return Box::pin(std::future::ready(Ok(logged(res, method, call))));
        }
        let mut inner = self.inner.clone();
        std::mem::swap(&mut self.inner, &mut inner);
        let work = CURRENT.scope(call.clone(), inner.call(req));
        Box::pin(async move {
            // A client that goes away drops this future: its work stops too.
            let guard = StopOnDrop(Some(call.stop.clone()));
            let res = match call.remaining() {
                Some(left) => match tokio::time::timeout(left, work).await {
                    Ok(r) => r?,
                    Err(_) => {
                        call.stop.store(true, Ordering::Relaxed);
                        deadline_exceeded().into_http()
                    }
                },
                None => work.await?,
            };
            guard.disarm();
            Ok(logged(res, method, call))
        })
    }
}

struct StopOnDrop(Option<Arc<AtomicBool>>);

impl StopOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f.store(true, Ordering::Relaxed);
        }
    }
}

/// The cookie that carries the token for the web page.
const COOKIE: &str = "flowtime_token";

/// `authorization: Bearer <token>`, or (`cookie`: an HTTP request of the page) the
/// `flowtime_token` cookie; compared in time independent of where it differs.
fn authorized(headers: &http::HeaderMap, token: &str, cookie: bool) -> bool {
    let want = token.as_bytes();
    if let Some(given) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer ")) {
        return same(given, want);
    }
    cookie
        && headers
            .get_all(http::header::COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
            .filter_map(|c| c.trim_ascii().strip_prefix(COOKIE.as_bytes())?.strip_prefix(b"="))
            .any(|given| same(given, want))
}

/// Equal bytes, compared in time independent of where they differ.
fn same(given: &[u8], want: &[u8]) -> bool {
    given.len() == want.len() && given.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The `token` query parameter (as given: tokens are sent unencoded).
fn query_token(uri: &http::Uri) -> Option<&str> {
    uri.query()?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// The `grpc-timeout` header (`<digits><unit>`, at most 8 digits; H M S m u n).
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The reply with its log line attached: written when the body ends (trailers carry the code of
/// a reply that started well) or is dropped (the client went away).
fn logged(res: http::Response<Body>, method: String, call: Arc<Call>) -> http::Response<Body> {
    let code = res.headers().get("grpc-status").and_then(code_of);
    let http_status = res.status();
    res.map(|body| Body::new(Logged { inner: body, line: Some(Line { method, call, code, http_status }) }))
}

fn code_of(v: &http::HeaderValue) -> Option<Code> {
    v.to_str().ok()?.parse::<i32>().ok().map(Code::from_i32)
}

struct Line {
    method: String,
    call: Arc<Call>,
    code: Option<Code>,
    http_status: http::StatusCode,
}

impl Line {
    fn write(self, ended: bool) {
        let code = match (self.code, ended) {
            (Some(c), _) => format!("{c:?}"),
            (None, true) if self.http_status.is_success() => "Ok".to_string(),
            (None, true) => format!("http {}", self.http_status.as_u16()),
            (None, false) => "Cancelled (the client went away)".to_string(),
        };
        let us = self.call.started.elapsed_us();
        let duration_ms = us as f64 / 1000.0;
        let units = self.call.units.load(Ordering::Relaxed);
        let target = self.call.target();
        let server_fault = matches!(self.code, Some(Code::Internal | Code::DataLoss | Code::Unknown));
        if Duration::from_micros(us) > SLOW || server_fault {
            tracing::warn!(target: "flowtime::request", method = %self.method, "target" = %target, code = %code, duration_ms, units, "slow or failed request");
        } else {
            tracing::info!(target: "flowtime::request", method = %self.method, "target" = %target, code = %code, duration_ms, units, "request");
        }
    }
}

struct Logged {
    inner: Body,
    line: Option<Line>,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(t), Some(line)) = (frame.trailers_ref(), this.line.as_mut()) {
                    line.code = t.get("grpc-status").and_then(code_of).or(line.code);
                }
            }
            Poll::Ready(Some(Err(s))) => {
                if let Some(line) = this.line.as_mut() {
                    line.code = Some(s.code());
                }
            }
            Poll::Ready(None) => {
                if let Some(line) = this.line.take() {
                    line.write(true);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            // A body already at its end (a trailers-only reply) ended well; otherwise the client
            // stopped reading.
            let ended = http_body::Body::is_end_stream(&self.inner) || line.code.is_some();
            line.write(ended);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_by_unit_and_refuse_the_malformed() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert("grpc-timeout", http::HeaderValue::from_str(v).unwrap());
            grpc_timeout(&m)
        };
        assert_eq!(h("250m"), Some(Duration::from_millis(250)));
        assert_eq!(h("3S"), Some(Duration::from_secs(3)));
        assert_eq!(h("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(h("99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(h("123456789S"), None);
        assert_eq!(h("S"), None);
        assert_eq!(h("10x"), None);
    }

    #[test]
    fn tokens_must_match_exactly() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(http::header::AUTHORIZATION, http::HeaderValue::from_str(v).unwrap());
            m
        };
        for cookie in [false, true] {
            assert!(authorized(&h("Bearer s3cret"), "s3cret", cookie));
            assert!(!authorized(&h("Bearer s3cre"), "s3cret", cookie));
            assert!(!authorized(&h("Bearer s3cretX"), "s3cret", cookie));
            assert!(!authorized(&h("bearer s3cret"), "s3cret", cookie));
            assert!(!authorized(&http::HeaderMap::new(), "s3cret", cookie));
        }
        // The cookie counts only where the page's routes allow it, and only exactly.
        let c = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(http::header::COOKIE, http::HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(authorized(&c("a=1; flowtime_token=s3cret"), "s3cret", true));
        assert!(!authorized(&c("a=1; flowtime_token=s3cret"), "s3cret", false));
        assert!(!authorized(&c("flowtime_token=s3cre"), "s3cret", true));
        assert!(!authorized(&c("xflowtime_token=s3cret"), "s3cret", true));
        assert_eq!(query_token(&"/?a=1&token=t%20x".parse().unwrap()), Some("t%20x"));
        assert_eq!(query_token(&"/".parse().unwrap()), None);
    }
}
