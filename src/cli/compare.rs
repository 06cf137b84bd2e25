//! `flowtime compare A B`: two sessions, variants or runs series by series, through the
//! QueryService's `Compare`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::artifacts::num;
use crate::cli::api::{status, target};
use crate::cli::output::{accounting, accounting_json, accounting_text, bins_text, short};
use crate::cli::{Api, Failure, Reply};
use crate::server::pb;

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// `session`, `session/variant` or a run id (`run_…`).
    pub a: String,
    /// The other operand; differences are `b − a`.
    pub b: String,
    /// Also list identical series.
    #[arg(long)]
    pub all: bool,
}

fn operand(s: &str) -> pb::Operand {
    let kind = if s.starts_with("run_") {
        pb::operand::Kind::RunId(s.to_string())
    } else {
        pb::operand::Kind::Target(target(s))
    };
    pb::Operand { kind: Some(kind) }
}

pub(crate) async fn exec(api: &Api, c: CompareArgs) -> Result<Reply, Failure> {
    let r = api
        .client()
        .queries()
        .compare(pb::CompareRequest { a: Some(operand(&c.a)), b: Some(operand(&c.b)), ..Default::default() })
        .await
        .map_err(status)?
        .into_inner();
    Ok(render(&c.a, &c.b, &r, c.all))
}

/// What a row says about where the series differ.
fn difference(s: &pb::SeriesComparison) -> String {
    if s.not_downstream_of_any_difference {
        "identical by construction (not downstream of any difference)".into()
    } else if s.only_in_a {
        "only in a".into()
    } else if s.only_in_b {
        "only in b".into()
    } else if s.identical {
        "identical".into()
    } else if s.bins_differ as usize > s.first_bins.len() {
        format!("{} and {} more", bins_text(&s.first_bins), s.bins_differ as usize - s.first_bins.len())
    } else {
        bins_text(&s.first_bins)
    }
}

fn render(a: &str, b: &str, r: &pb::CompareResponse, all: bool) -> Reply {
    let acc = accounting(r.accounting.as_ref());
    let rows: Vec<&pb::SeriesComparison> = r.series.iter().filter(|s| all || !s.identical).collect();
    let id_w = rows.iter().map(|s| s.id.len()).max().unwrap_or(0).max("series".len());
    let mut text = format!("compare {a} → {b}\n");
    if rows.is_empty() {
        text.push_str("no series differ\n");
    } else {
        let _ = writeln!(
            text,
            "{:<id_w$}  {:>12}  {:>12}  {:>14}  {:>14}  differing bins",
            "series", "max |b − a|", "bins differ", "total a", "total b"
        );
    }
    for s in &rows {
        // Series not downstream of any difference were not evaluated: their totals are unknown here.
        let (max, ta, tb) = match s.not_downstream_of_any_difference || s.only_in_a || s.only_in_b {
            true => ("—".to_string(), "—".to_string(), "—".to_string()),
            false => (short(s.max_abs_diff), short(s.total_a), short(s.total_b)),
        };
        let _ =
            writeln!(text, "{:<id_w$}  {max:>12}  {:>12}  {ta:>14}  {tb:>14}  {}", s.id, s.bins_differ, difference(s));
    }
    let sum = r.summary.unwrap_or_default();
    let _ = writeln!(
        text,
        "{} of {} series differ; {} identical, {} of them by construction (not downstream of any difference)",
        sum.differing, sum.series, sum.identical, sum.not_downstream
    );
    let _ = writeln!(text, "{}", accounting_text(&acc));
    let series: Vec<Value> = r
        .series
        .iter()
        .map(|s| {
            let unknown = s.not_downstream_of_any_difference;
            json!({
                "id": s.id, "identical": s.identical, "notDownstreamOfAnyDifference": unknown,
                "onlyInA": s.only_in_a, "onlyInB": s.only_in_b,
                "maxAbsDiff": num(if unknown { 0.0 } else { s.max_abs_diff }), "binsDiffer": s.bins_differ,
                "firstBins": s.first_bins,
                "totalA": num(if unknown { f64::NAN } else { s.total_a }),
                "totalB": num(if unknown { f64::NAN } else { s.total_b }),
            })
        })
        .collect();
    let json = json!({
        "a": a, "b": b, "series": series,
        "summary": {"series": sum.series, "identical": sum.identical, "differing": sum.differing, "notDownstream": sum.not_downstream},
        "accounting": accounting_json(&acc),
    });
    Reply { json, text }
}
