//! The page's static files, compiled into the binary (`src/web/assets/`): HTML, CSS and ES
//! modules the browser loads as they are (no bundler, no Node.js).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every asset: its path under `/assets/` and its bytes. `index.html` is served at `/`.
pub const ASSETS: &[(&str, &[u8])] = &[
    ("index.html", include_bytes!("assets/index.html")),
    ("style.css", include_bytes!("assets/style.css")),
    ("app.js", include_bytes!("assets/app.js")),
    ("api.js", include_bytes!("assets/api.js")),
    ("util.js", include_bytes!("assets/util.js")),
    ("chart.js", include_bytes!("assets/chart.js")),
    ("topology.js", include_bytes!("assets/topology.js")),
    ("scrubber.js", include_bytes!("assets/scrubber.js")),
    ("inspect.js", include_bytes!("assets/inspect.js")),
    ("params.js", include_bytes!("assets/params.js")),
    ("sessions.js", include_bytes!("assets/sessions.js")),
    ("compare.js", include_bytes!("assets/compare.js")),
    ("warnings.js", include_bytes!("assets/warnings.js")),
    ("heatmap.js", include_bytes!("assets/heatmap.js")),
    ("analyses.js", include_bytes!("assets/analyses.js")),
];

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str) -> Response {
    match ASSETS.iter().find(|(p, _)| *p == path) {
        Some((p, bytes)) => {
            let mut res = bytes.into_response();
            let h = res.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(p)));
            // The assets change with the binary: revalidate rather than serve a stale page.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            res
        }
        None => (StatusCode::NOT_FOUND, format!("no asset `{path}`")).into_response(),
    }
}

/// `GET /`: the page.
pub(super) async fn index() -> Response {
    serve("index.html")
}

/// `GET /assets/{file}`.
pub(super) async fn file(Path(file): Path<String>) -> Response {
    serve(&file)
}
