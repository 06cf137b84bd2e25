//! The one integration-test binary; modules by area.

mod analysis;
mod analysis_api;
mod artifacts;
mod bad_input;
mod classes;
mod cli;
mod client;
mod cold_path;
mod concurrency;
mod corruption;
mod expr_lang;
mod fixtures;
mod incremental;
mod inference;
mod load;
mod plot;
mod readme;
mod reclaim;
mod seed;
mod server;
mod sessions;
mod store;
mod telemetry;
mod topology;
mod warnings;
mod web;
