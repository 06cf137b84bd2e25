//! `flowtime plot`: PNG and SVG charts of a session target (through the API) and of a run
//! directory (from its files), with the embedded font, and its errors.

use std::path::Path;

use crate::cli::{repo, run, text};

/// Width and height from a PNG's IHDR chunk.
fn png_size(b: &[u8]) -> (u32, u32) {
    assert!(b.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG signature");
    assert_eq!(&b[12..16], b"IHDR");
    let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
    (w, h)
}

/// The text of every `<text>` element of an SVG, trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
        .collect()
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let out = run(args, cwd);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn plot_writes_png_and_svg_for_a_target_and_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tpl = repo().join("templates/order-pipeline.yaml");
    ok(&["session", "open", tpl.to_str().unwrap(), "--name", "p"], dir);
    ok(
        &["variant", "create", "p", "w", "-p", "order_capacity=150", "-p", "order_served_source=order_served_modeled"],
        dir,
    );

    // A variant, through the API: both formats, a window, a pattern.
    let said = ok(&["plot", "p/w", "*_backlog", "--bins", "96..160", "--out", "w.png"], dir);
    assert!(said.contains("wrote w.png (p/w (revision 2): orders_backlog, billing_backlog)"), "{said}");
    let png = std::fs::read(dir.join("w.png")).unwrap();
    assert_eq!(png_size(&png), (1000, 500));
    assert!(png.len() > 20_000, "a chart with text and lines, not a blank image: {} bytes", png.len());
    ok(&["plot", "p/w", "orders_backlog", "--out", "w.svg"], dir);
    let svg = std::fs::read_to_string(dir.join("w.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    for label in ["p/w (revision 2): orders_backlog", "time (UTC, from 2025-10-07)", "items", "UTC"] {
        assert!(svg.contains(label), "the SVG shows `{label}`");
    }
    // The same data gives the same bytes.
    ok(&["plot", "p/w", "*_backlog", "--bins", "96..160", "--out", "again.png"], dir);
    assert_eq!(std::fs::read(dir.join("again.png")).unwrap(), png);

    // A run directory, from its files.
    let model = repo().join("templates/order-system.yaml");
    ok(&["run", model.to_str().unwrap(), "--out", "runs"], dir);
    let run_dir = std::fs::read_dir(dir.join("runs")).unwrap().next().unwrap().unwrap().path();
    let id = run_dir.file_name().unwrap().to_str().unwrap().to_string();
    let d = run_dir.to_str().unwrap();
    ok(&["plot", d, "queue_depth", "served", "--out", "r.svg"], dir);
    let svg = std::fs::read_to_string(dir.join("r.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains(&format!("run {id}: queue_depth, served")), "names the run");
    // One bin: every series is a lone point, and the legend still names each; each unit is
    // named once, in the order the series (by id) first use it.
    ok(&["plot", d, "arrivals", "orders_queue_depth", "served", "--bins", "0..1", "--out", "one.svg"], dir);
    let svg = std::fs::read_to_string(dir.join("one.svg")).unwrap();
    for id in ["arrivals", "orders_queue_depth", "served"] {
        assert!(svg_texts(&svg).iter().any(|t| t == id), "the legend names {id}: {:?}", svg_texts(&svg));
    }
    assert!(svg_texts(&svg).iter().any(|t| t == "per bin, items"), "{:?}", svg_texts(&svg));
    ok(&["plot", d, "queue_depth", "--bins", "0..48", "--out", "r.png"], dir);
    let png = std::fs::read(dir.join("r.png")).unwrap();
    assert_eq!(png_size(&png), (1000, 500));
    assert!(png.len() > 10_000, "{} bytes", png.len());

    // Mistakes: exit 2, saying what and where.
    let out = run(&["plot", "p", "nope", "--out", "x.png"], dir);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    // The list of series is cut, like every quoted text (diag::MAX_TEXT).
    assert!(err.contains("no series matches nope") && err.contains("series here: billing_backlog"), "{err}");
    let out = run(&["plot", "p", "orders_backlog", "--out", "x.jpg"], dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("neither .png nor .svg"), "{}", text(&out.stderr));
    assert!(!dir.join("x.jpg").exists() && !dir.join("x.png").exists(), "nothing written");
    let out = run(&["plot", d, "queue_depth", "--bins", "0..999", "--out", "x.png"], dir);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
