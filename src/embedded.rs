//! Templates and data compiled into the binary (written by `build.rs`), so `flowtime serve` on a
//! fresh database can load the shipped templates and resolve their `file:` data anywhere.

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The embedded file at `rel` (e.g. `data/order-system/served.csv`).
pub fn file(rel: &str) -> Option<&'static [u8]> {
    FILES.iter().find(|(p, _)| *p == rel).map(|(_, b)| *b)
}

/// Embedded templates: (path, text).
pub fn templates() -> impl Iterator<Item = (&'static str, &'static str)> {
    FILES
        .iter()
        .filter(|(p, _)| p.starts_with("templates/") && p.ends_with(".yaml"))
        .filter_map(|(p, b)| std::str::from_utf8(b).ok().map(|t| (*p, t)))
}
