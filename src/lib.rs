//! flowtime: an embedded incremental-computation database for time-binned flow models.
//!
//! Reading order: [`diag`] (located problems), [`expr`] (the formula language), [`model`]
//! (documents, templates, grids, series references), [`engine`] (salsa inputs and memoised
//! evaluation), [`analysis`] (many points on the shared cache), [`artifacts`] (run directories), [`sys`] (the only place that touches files and
//! the clock), [`cli`].

pub mod analysis;
pub mod artifacts;
pub mod cli;
pub mod client;
pub mod diag;
pub mod embedded;
pub mod engine;
pub mod expr;
pub mod host;
pub mod model;
pub mod objstore;
pub mod server;
pub mod store;
pub mod sys;
pub mod telemetry;
pub mod web;
