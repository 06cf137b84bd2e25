//! `flowtime query` (series, bin by bin, with UTC times) and `flowtime state` (everything at one
//! bin), through the QueryService.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::artifacts::num;
use crate::cli::api::{status, target};
use crate::cli::output::{
    accounting, accounting_json, accounting_text, bin_start, grid_json, inference_json, inference_text, short,
    warnings, warnings_json, warnings_text,
};
use crate::cli::{Api, Failure, Reply};
use crate::diag::Diagnostic;
use crate::server::pb;

/// Rows of a query table before it is cut short.
const MAX_ROWS: usize = 100;
/// Series per table; more series print as several tables.
const MAX_COLUMNS: usize = 8;

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// `session` or `session/variant`.
    pub target: String,
    /// A series id, or a pattern with `*`.
    pub pattern: String,
    /// Half-open bin window `a..b` (`a..` and `..b` run to the grid's end or from its start).
    #[arg(long, value_name = "A..B")]
    pub bins: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct StateArgs {
    /// `session` or `session/variant`.
    pub target: String,
    #[command(flatten)]
    pub when: When,
}

/// Which bin: by time or by index (one of them).
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct When {
    /// The bin starting at this RFC 3339 UTC time (it must be a bin start).
    #[arg(long, value_name = "TIMESTAMP")]
    pub at: Option<String>,
    /// The bin with this index.
    #[arg(long, value_name = "N")]
    pub bin: Option<u32>,
}

/// `a..b`, `a..`, `..b` (half-open) as (start, end); an absent end is the grid's end.
pub(crate) fn parse_window(s: &str) -> Result<(u32, Option<u32>), Failure> {
    let bad = |m: String| {
        Failure::from(
            Diagnostic::error("bins_window", m)
                .at_path("--bins")
                .with_help("give a half-open window a..b of bin indices, e.g. --bins 96..132 (bins 96 to 131)"),
        )
    };
    let (a, b) = s.split_once("..").ok_or_else(|| bad(format!("`{s}` is not a window a..b")))?;
    let index = |x: &str| x.trim().parse::<u32>().map_err(|_| bad(format!("`{x}` is not a bin index")));
    let a = if a.trim().is_empty() { 0 } else { index(a)? };
    let b = if b.trim().is_empty() { None } else { Some(index(b)?) };
    Ok((a, b))
}

pub(crate) async fn query(api: &Api, q: QueryArgs) -> Result<Reply, Failure> {
    let mut c = api.client().queries();
    let window = match q.bins.as_deref().map(parse_window).transpose()? {
        None => None,
        Some((a, Some(b))) => Some(pb::BinWindow { start: a, end: b }),
        Some((a, None)) => {
            // An open end runs to the grid's end: ask for the grid (no evaluation).
            let g = c.get_graph(pb::GetGraphRequest { target: Some(target(&q.target)) }).await.map_err(status)?;
            Some(pb::BinWindow { start: a, end: g.into_inner().grid.map_or(0, |g| g.bins) })
        }
    };
    let r = c
        .get_series(pb::GetSeriesRequest {
            target: Some(target(&q.target)),
            pattern: q.pattern.clone(),
            window,
            ..Default::default()
        })
        .await
        .map_err(status)?
        .into_inner();
    Ok(render_series(&q.target, &r))
}

/// The reply of `query`: a table of bins (index, UTC start) by series, notes on inferred
/// series, and the accounting.
fn render_series(t: &str, r: &pb::GetSeriesResponse) -> Reply {
    let grid = r.grid.clone().unwrap_or_default();
    let w = r.window.unwrap_or(pb::BinWindow { start: 0, end: grid.bins });
    let info = r.info.clone().unwrap_or_default();
    let acc = accounting(info.accounting.as_ref());
    let times: Vec<Option<String>> = (w.start..w.end).map(|b| bin_start(&grid, b)).collect();
    let mut text = format!("{t} (revision {}), bins {}..{}", info.revision, w.start, w.end);
    if let (Some(Some(a)), Some(b)) = (times.first(), bin_start(&grid, w.end)) {
        let _ = write!(text, ": {a} to {b}");
    }
    text.push('\n');
    for (i, chunk) in r.series.chunks(MAX_COLUMNS).enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&table(chunk, w.start, &times));
    }
    for s in &r.series {
        if let Some(inf) = &s.inference {
            let _ = writeln!(text, "{}: {}", s.id, inference_text(inf));
        }
    }
    let _ = writeln!(text, "{}", accounting_text(&acc));
    let series: Vec<Value> = r
        .series
        .iter()
        .map(|s| {
            let mut v =
                json!({"id": s.id, "kind": s.kind, "values": s.values.iter().map(|x| num(*x)).collect::<Vec<_>>()});
            if let Some(inf) = &s.inference {
                v["inference"] = inference_json(inf);
            }
            v
        })
        .collect();
    let mut json = json!({
        "target": t, "revision": info.revision, "grid": grid_json(r.grid.as_ref()),
        "window": [w.start, w.end], "series": series, "accounting": accounting_json(&acc),
    });
    if times.iter().all(Option::is_some) {
        json["timestamps"] = times.into_iter().flatten().collect::<Vec<_>>().into();
    }
    Reply { json, text }
}

/// Bins as rows, series as columns: `bin  time (UTC)  a  b …`, cut after [`MAX_ROWS`] rows.
fn table(series: &[pb::Series], first: u32, times: &[Option<String>]) -> String {
    let cell = |v: f64| if v.is_nan() { "NaN".to_string() } else { short(v) };
    let has_time = times.iter().any(Option::is_some);
    let n = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let shown = n.min(MAX_ROWS);
    let widths: Vec<usize> = series
        .iter()
        .map(|s| s.values.iter().take(shown).map(|v| cell(*v).chars().count()).max().unwrap_or(0).max(s.id.len()))
        .collect();
    let bin_w = (first as usize + n).to_string().len().max(3);
    let mut out = format!("{:>bin_w$}", "bin");
    if has_time {
        out.push_str(&format!("  {:<20}", "time (UTC)"));
    }
    for (s, w) in series.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", s.id);
    }
    out.push('\n');
    for i in 0..shown {
        let _ = write!(out, "{:>bin_w$}", first as usize + i);
        if has_time {
            let _ = write!(out, "  {:<20}", times.get(i).cloned().flatten().unwrap_or_default());
        }
        for (s, w) in series.iter().zip(&widths) {
            let _ = write!(out, "  {:>w$}", s.values.get(i).map_or(String::new(), |v| cell(*v)));
        }
        out.push('\n');
    }
    if n > shown {
        let (a, b) = (first as usize + shown, first as usize + n);
        let _ = writeln!(out, "… bins {a}..{b} not shown ({} more); narrow --bins or use --json", n - shown);
    }
    out
}

pub(crate) async fn state(api: &Api, s: StateArgs) -> Result<Reply, Failure> {
    let at = match (&s.when.at, s.when.bin) {
        (Some(ts), _) => pb::get_state_request::At::Timestamp(ts.clone()),
        (None, Some(b)) => pb::get_state_request::At::Bin(b),
        (None, None) => return Err(Failure::bad("bad_argument", "give --at TIMESTAMP or --bin N")),
    };
    let r = api
        .client()
        .queries()
        .get_state(pb::GetStateRequest { target: Some(target(&s.target)), at: Some(at) })
        .await
        .map_err(status)?
        .into_inner();
    Ok(render_state(&s.target, &r))
}

fn render_state(t: &str, r: &pb::GetStateResponse) -> Reply {
    let st = r.state.clone().unwrap_or_default();
    let bin = st.bin.clone().unwrap_or_default();
    let info = r.info.clone().unwrap_or_default();
    let acc = accounting(info.accounting.as_ref());
    let ws = warnings(&st.warnings);
    let mut text = format!("{t} (revision {}) at bin {}", info.revision, bin.index);
    if !bin.start_utc.is_empty() {
        let _ = write!(text, ": {} to {}", bin.start_utc, bin.end_utc);
    }
    text.push('\n');
    let name_w = st.nodes.iter().map(|n| n.id.len() + n.kind.len() + 3).max().unwrap_or(0);
    for n in &st.nodes {
        let label = format!("{} ({})", n.id, n.kind);
        let ordered = |m: &std::collections::HashMap<String, f64>| -> String {
            m.iter()
                .collect::<BTreeMap<_, _>>()
                .iter()
                .map(|(k, v)| format!("{k} {}", value(**v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = write!(text, "  {label:<name_w$}  {}", ordered(&n.roles));
        if !n.derived.is_empty() {
            let _ = write!(text, "; {}", ordered(&n.derived));
        }
        if let Some(inf) = &n.inference {
            let _ = write!(text, "; capacity {}", inference_text(inf));
        }
        text.push('\n');
    }
    let series: BTreeMap<&String, &f64> = st.series.iter().collect();
    if st.nodes.is_empty() {
        let w = series.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, v) in &series {
            let _ = writeln!(text, "  {k:<w$}  {}", value(**v));
        }
    } else {
        let _ = writeln!(text, "  ({} series values in --json)", series.len());
    }
    if ws.is_empty() {
        text.push_str("warnings at this bin: none\n");
    } else {
        text.push_str(&warnings_text(&ws).replacen("warnings:", "warnings at this bin:", 1));
    }
    let _ = writeln!(text, "{}", accounting_text(&acc));
    let nodes: Vec<Value> = st
        .nodes
        .iter()
        .map(|n| {
            let map = |m: &std::collections::HashMap<String, f64>| -> Value {
                m.iter().collect::<BTreeMap<_, _>>().into_iter().map(|(k, v)| (k.clone(), num(*v))).collect()
            };
            let mut v = json!({"id": n.id, "kind": n.kind, "roles": map(&n.roles), "derived": map(&n.derived)});
            if let Some(inf) = &n.inference {
                v["inference"] = inference_json(inf);
            }
            v
        })
        .collect();
    let json = json!({
        "target": t, "revision": info.revision, "grid": grid_json(r.grid.as_ref()),
        "bin": {"index": bin.index, "startUtc": bin.start_utc, "endUtc": bin.end_utc},
        "nodes": nodes, "series": series.into_iter().map(|(k, v)| (k.clone(), num(*v))).collect::<serde_json::Map<_, _>>(),
        "warnings": warnings_json(&ws), "accounting": accounting_json(&acc),
    });
    Reply { json, text }
}

fn value(v: f64) -> String {
    if v.is_nan() { "NaN".into() } else { short(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert_eq!(parse_window("2..5").ok(), Some((2, Some(5))));
        assert_eq!(parse_window("..5").ok(), Some((0, Some(5))));
        assert_eq!(parse_window("7..").ok(), Some((7, None)));
        assert!(parse_window("5").is_err());
        assert!(parse_window("a..5").is_err());
    }
}
