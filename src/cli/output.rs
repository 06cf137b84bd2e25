//! Rendering shared by the subcommands: the reply of a command (JSON and text), diagnostics,
//! series tables, grouped warnings, bin lists in the `a..b` notation of `--bins`, the §9
//! accounting line, inference labels, and the API's messages as the domain values the
//! renderers take (warnings, parameter values, accounting).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Value, json};

use crate::artifacts::{fmt_value, num, warning_json};
use crate::cli::Failure;
use crate::diag::{Diagnostics, Severity};
use crate::engine::Accounting;
use crate::engine::warnings::Warning;
use crate::model::params::ParamValue;
use crate::server::pb;

/// Rows shown in a series table before it is cut short.
const MAX_ROWS: usize = 40;
const FIRST_BINS: usize = 6;

/// One command's result: its JSON, and its human rendering.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) json: Value,
    pub(crate) text: String,
}

/// Prints a reply; a closed pipe (`| head`) is not an error.
pub(crate) fn emit(r: &Reply, json: bool) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let res = if json {
        writeln!(out, "{}", serde_json::to_string(&r.json).unwrap_or_default())
    } else {
        write!(out, "{}", r.text)
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Runtime(e.into())),
    }
}

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

/// A value for a table: up to 4 decimals, `—` for NaN.
pub(crate) fn short(v: f64) -> String {
    if v.is_nan() {
        return "—".into();
    }
    if v.is_finite() && v.fract() != 0.0 && v.abs() < 1e9 {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        fmt_value(v)
    }
}

/// A number to 3 significant digits (`0.118`, `12.3`, `1.00e-5`), for confidences and ratios.
pub(crate) fn sig3(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return fmt_value(v);
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-4..6).contains(&mag) {
        return format!("{v:.2e}");
    }
    let decimals = (2 - mag).max(0) as usize;
    format!("{v:.decimals$}")
}

/// `inferred (saturation, confidence 0.118, 34 saturated bins)`, or why it was not inferred.
pub(crate) fn inference_text(i: &pb::Inference) -> String {
    if !i.refused.is_empty() {
        return format!("not inferred ({}): {}", i.method, i.refused);
    }
    let n = i.saturated_bins;
    let s = if n == 1 { "" } else { "s" };
    format!("inferred ({}, confidence {}, {n} saturated bin{s})", i.method, sig3(i.confidence))
}

pub(crate) fn inference_json(i: &pb::Inference) -> Value {
    let mut v = json!({"method": i.method, "confidence": num(i.confidence), "saturated_bins": i.saturated_bins});
    if !i.refused.is_empty() {
        v["refused"] = i.refused.clone().into();
    }
    v
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
            let _ = writeln!(out, "    … and {} more", group.len() - 10);
        }
    }
    out
}

/// A sorted bin list in the half-open notation of `--bins`: `3, 5..10, 12` (5..10 is 5 to 9),
/// cut after 8 ranges with how many more there are.
pub(crate) fn bins_text(bins: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < bins.len() {
        let mut j = i;
        while j + 1 < bins.len() && bins[j + 1] == bins[j] + 1 {
            j += 1;
        }
        parts.push(if j > i { format!("{}..{}", bins[i], bins[j] + 1) } else { bins[i].to_string() });
        i = j + 1;
    }
    if parts.len() > 8 {
        let n = parts.len() - 8;
        parts.truncate(8);
        return format!("{} and {n} more range{}", parts.join(", "), if n == 1 { "" } else { "s" });
    }
    parts.join(", ")
}

pub(crate) fn accounting_text(a: &Accounting) -> String {
    let loaded =
        if a.nodes_loaded > 0 { format!(", {} loaded from the result cache", a.nodes_loaded) } else { String::new() };
    format!(
        "evaluated {} of {} series definitions ({} reused{loaded}) in {:.3} ms",
        a.nodes_evaluated,
        a.nodes_total,
        a.nodes_reused,
        a.elapsed_us as f64 / 1000.0
    )
}

pub(crate) fn accounting_json(a: &Accounting) -> Value {
    json!({"nodes_total": a.nodes_total, "nodes_evaluated": a.nodes_evaluated, "nodes_reused": a.nodes_reused, "nodes_loaded": a.nodes_loaded, "elapsed_us": a.elapsed_us})
}

pub(crate) fn warnings_json(ws: &[Warning]) -> Value {
    Value::Array(ws.iter().map(warning_json).collect())
}

pub(crate) fn values_json(values: &[f64]) -> Value {
    Value::Array(values.iter().map(|v| num(*v)).collect())
}

/// The accounting of a reply (zero when absent).
pub(crate) fn accounting(a: Option<&pb::Accounting>) -> Accounting {
    a.map_or_else(Accounting::default, |a| Accounting {
        nodes_total: a.nodes_total,
        nodes_evaluated: a.nodes_evaluated,
        nodes_reused: a.nodes_reused,
        nodes_loaded: a.nodes_loaded,
        elapsed_us: a.elapsed_us,
    })
}

pub(crate) fn warning(w: &pb::Warning) -> Warning {
    let sev = if w.severity == "info" { Severity::Info } else { Severity::Warning };
    Warning::new(&w.code, sev, &w.node_id, w.message.clone()).with_bins(&w.bins, w.value)
}

pub(crate) fn warnings(ws: &[pb::Warning]) -> Vec<Warning> {
    ws.iter().map(warning).collect()
}

pub(crate) fn param(v: &pb::ParamValue) -> Option<ParamValue> {
    use pb::param_value::Kind;
    Some(match v.kind.as_ref()? {
        Kind::Number(x) => ParamValue::Number(*x),
        Kind::Integer(x) => ParamValue::Integer(*x),
        Kind::Boolean(b) => ParamValue::Boolean(*b),
        Kind::Text(s) => ParamValue::Text(s.clone()),
        Kind::Series(s) => ParamValue::Series(s.clone()),
    })
}

/// Parameters in name order.
pub(crate) fn params(m: &std::collections::HashMap<String, pb::ParamValue>) -> BTreeMap<String, ParamValue> {
    m.iter().filter_map(|(k, v)| Some((k.clone(), param(v)?))).collect()
}

pub(crate) fn params_json(m: &std::collections::HashMap<String, pb::ParamValue>) -> Value {
    Value::Object(params(m).iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

pub(crate) fn grid_json(g: Option<&pb::Grid>) -> Value {
    let Some(g) = g else { return Value::Null };
    let mut m = serde_json::Map::new();
    m.insert("bins".into(), g.bins.into());
    m.insert("binSize".into(), g.bin_size.into());
    m.insert("binUnit".into(), g.bin_unit.clone().into());
    m.insert("binMinutes".into(), g.bin_minutes.into());
    if !g.start.is_empty() {
        m.insert("start".into(), g.start.clone().into());
    }
    Value::Object(m)
}

/// The UTC start of bin `t` of `g` (`None` without `grid.start`).
pub(crate) fn bin_start(g: &pb::Grid, t: u32) -> Option<String> {
    let start = crate::model::grid::parse_utc_minutes(&g.start).ok()?;
    Some(crate::model::grid::format_minutes(start + t as i64 * g.bin_minutes as i64))
}

/// `1 minute`, `5 minutes`, `1 hour`: a count with its unit, singular for one.
pub(crate) fn count(n: u64, unit: &str) -> String {
    if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_lists_are_half_open_and_say_when_cut() {
        assert_eq!(bins_text(&[3, 5, 6, 7, 9]), "3, 5..8, 9");
        let many: Vec<u32> = (0..20).map(|i| i * 2).collect();
        assert_eq!(bins_text(&many), "0, 2, 4, 6, 8, 10, 12, 14 and 12 more ranges");
    }

    #[test]
    fn three_significant_digits() {
        assert_eq!(sig3(0.118_055), "0.118");
        assert_eq!(sig3(12.345), "12.3");
        assert_eq!(sig3(1.0), "1.00");
        assert_eq!(sig3(0.000_012_34), "1.23e-5");
    }
}
