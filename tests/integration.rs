//! The one integration-test binary; modules by area.

mod fixtures;
mod incremental;
