//! The one integration-test binary; modules by area.

mod artifacts;
mod cli;
mod fixtures;
mod incremental;
mod topology;
