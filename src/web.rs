//! The workbench: the web page `flowtime serve` serves on the gRPC listener (HTTP/1.1 next to
//! gRPC's h2), its assets compiled into the binary, and the JSON gateway it talks through.
//!
//! The page has no operation of its own. `POST /api/<package.Service>/<Method>` transcodes a
//! JSON body into the method's protobuf request by reflection over the embedded descriptor set,
//! calls the API's router in process through [`crate::client::Client`], and transcodes the reply
//! back (server-streaming methods as NDJSON); there is no per-method code (see `gateway`).
//! Everything else is static files (`assets`): ES modules the browser loads as they are, no
//! bundler, no Node.js.

mod assets;
mod gateway;

pub use assets::ASSETS;
pub use gateway::{Gateway, api_path};

use crate::client::Client;

/// The page's routes: `/` and `/assets/…` (static, embedded) and `/api/…` (the gateway over
/// `client`). Merged into the gRPC router by [`crate::server::serve`]; it has no fallback, so
/// unknown paths still reach tonic's (gRPC UNIMPLEMENTED).
pub fn router(client: Client) -> axum::Router {
    use axum::routing::{get, post};
    let gateway = std::sync::Arc::new(Gateway::new(client));
    axum::Router::new()
        .route("/", get(assets::index))
        .route("/assets/{*file}", get(assets::file))
        .route("/api/{service}/{method}", post(gateway::handle))
        .with_state(gateway)
}
