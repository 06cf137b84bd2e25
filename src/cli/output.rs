//! Human and JSON rendering shared by the subcommands: diagnostics, series tables, grouped
//! warnings and the §9 accounting line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::artifacts::{fmt_value, num, warning_json};
use crate::diag::{Diagnostics, Severity};
use crate::engine::Accounting;
use crate::engine::warnings::Warning;

/// Rows shown in a series table before it is cut short.
const MAX_ROWS: usize = 40;
const FIRST_BINS: usize = 6;

pub(crate) fn print_diagnostics(d: &Diagnostics, json: bool) {
    if json {
        println!("{}", json!({"ok": false, "errors": d.0}));
    } else {
        eprint!("{}", d.render());
        let n = d.0.iter().filter(|x| x.is_error()).count();
        eprintln!("{n} error{}", if n == 1 { "" } else { "s" });
    }
}

pub(crate) fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().fold(0.0, |a, v| a + v) / values.len() as f64
}

/// One row per series: id, kind, first bins, mean (and inference labels).
pub(crate) fn series_table(rows: &[(String, &str, &[f64], Option<String>)]) -> String {
    let mut out = String::new();
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(6).clamp(6, 40);
    let _ = writeln!(out, "{:<w$}  {:<5}  {:<44}  {:>12}", "series", "kind", "first bins", "mean");
    for (id, kind, values, note) in rows.iter().take(MAX_ROWS) {
        let mut first: Vec<String> = values.iter().take(FIRST_BINS).map(|v| short(*v)).collect();
        if values.len() > FIRST_BINS {
            first.push("…".into());
        }
        let _ = write!(out, "{id:<w$}  {kind:<5}  {:<44}  {:>12}", first.join(", "), short(mean(values)));
        if let Some(n) = note {
            let _ = write!(out, "  {n}");
        }
        out.push('\n');
    }
    if rows.len() > MAX_ROWS {
        let _ = writeln!(out, "… and {} more series (see series/index.json)", rows.len() - MAX_ROWS);
    }
    out
}

fn short(v: f64) -> String {
    if v.is_finite() && v.fract() != 0.0 && v.abs() < 1e9 {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        fmt_value(v)
    }
}

/// Warnings grouped by code with counts.
pub(crate) fn warnings_text(ws: &[Warning]) -> String {
    let mut out = String::new();
    if ws.is_empty() {
        out.push_str("warnings: none\n");
        return out;
    }
    let n_warn = ws.iter().filter(|w| w.severity == Severity::Warning).count();
    let _ = writeln!(out, "warnings: {} ({} warning, {} info)", ws.len(), n_warn, ws.len() - n_warn);
    let mut groups: BTreeMap<&str, Vec<&Warning>> = BTreeMap::new();
    for w in ws {
        groups.entry(&w.code).or_default().push(w);
    }
    for (code, group) in groups {
        let _ = writeln!(out, "  {code} ×{} ({})", group.len(), group[0].severity);
        for w in group.iter().take(10) {
            let bins = bins_text(&w.bins);
            let _ = writeln!(
                out,
                "    {:<20} {}{}",
                w.node_id,
                w.message,
                if bins.is_empty() { String::new() } else { format!(" (bins {bins})") }
            );
        }
        if group.len() > 10 {
            let _ = writeln!(out, "    … {} more", group.len() - 10);
        }
    }
    out
}

/// `3, 5..9, 12` style bin lists, shortened.
pub(crate) fn bins_text(bins: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < bins.len() {
        let mut j = i;
        while j + 1 < bins.len() && bins[j + 1] == bins[j] + 1 {
            j += 1;
        }
        parts.push(if j > i { format!("{}..{}", bins[i], bins[j]) } else { bins[i].to_string() });
        i = j + 1;
    }
    if parts.len() > 8 {
        let n = parts.len();
        parts.truncate(8);
        parts.push(format!("… {} more ranges", n - 8));
    }
    parts.join(", ")
}

pub(crate) fn accounting_text(a: &Accounting) -> String {
    format!(
        "evaluated {} of {} series definitions ({} reused) in {:.3} ms",
        a.nodes_evaluated,
        a.nodes_total,
        a.nodes_reused,
        a.elapsed_us as f64 / 1000.0
    )
}

pub(crate) fn accounting_json(a: &Accounting) -> Value {
    json!({"nodes_total": a.nodes_total, "nodes_evaluated": a.nodes_evaluated, "nodes_reused": a.nodes_reused, "elapsed_us": a.elapsed_us})
}

pub(crate) fn warnings_json(ws: &[Warning]) -> Value {
    Value::Array(ws.iter().map(warning_json).collect())
}

pub(crate) fn values_json(values: &[f64]) -> Value {
    Value::Array(values.iter().map(|v| num(*v)).collect())
}
