//! The incremental engine: salsa inputs and memoised per-unit evaluation (§5, §6, §9).
//!
//! Invariant: every tracked function is a deterministic function of its inputs; the engine
//! never touches files, the clock, redb or the network.

pub mod cache;
pub mod cexpr;
pub mod classes;
pub mod db;
pub mod inference;
pub mod mix;
pub mod ops;
pub mod plan;
pub mod topology;
pub mod unit;
pub mod validate;
pub mod warnings;

pub use db::{Accounting, Database, Db, Evaluation, InputSeries, ParamCell, Scenario, Series, SeriesCell, evaluate};
