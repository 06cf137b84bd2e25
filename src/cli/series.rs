//! `flowtime series list|show`: stored telemetry series, through the SeriesService.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::artifacts::num;
use crate::cli::api::status;
use crate::cli::output::{count, short};
use crate::cli::query::parse_window;
use crate::cli::{Api, Failure, Reply};
use crate::diag::Diagnostic;
use crate::server::pb;

#[derive(clap::Subcommand, Debug)]
pub enum SeriesCmd {
    /// List stored series: window, bins, provenance.
    List,
    /// One stored series with its values.
    Show {
        name: String,
        /// Half-open bin window `a..b` of the stored series.
        #[arg(long, value_name = "A..B")]
        bins: Option<String>,
    },
}

fn info_json(i: &pb::StoredSeriesInfo) -> Value {
    json!({
        "name": i.name, "start": i.start, "binMinutes": i.bin_minutes, "bins": i.bins, "sha256": i.sha256,
        "provenance": i.provenance.iter().collect::<std::collections::BTreeMap<_, _>>(),
    })
}

fn info_text(i: &pb::StoredSeriesInfo) -> String {
    let start = if i.start.is_empty() { "no start".to_string() } else { format!("from {}", i.start) };
    format!("{}  {} of {} {start}", i.name, count(i.bins as u64, "bin"), count(i.bin_minutes, "minute"))
}

pub(crate) async fn exec(api: &Api, cmd: SeriesCmd) -> Result<Reply, Failure> {
    let mut c = api.client().series();
    match cmd {
        SeriesCmd::List => {
            let list = c.list_series(pb::ListSeriesRequest {}).await.map_err(status)?.into_inner().series;
            let mut text: String = list.iter().map(|i| info_text(i) + "\n").collect();
            if list.is_empty() {
                text = "no series are stored (load some with `flowtime telemetry load FILE`)\n".into();
            }
            Ok(Reply { json: list.iter().map(info_json).collect::<Vec<_>>().into(), text })
        }
        SeriesCmd::Show { name, bins } => {
            let s = c.get_stored_series(pb::GetStoredSeriesRequest { name }).await.map_err(status)?.into_inner();
            let info = s.info.unwrap_or_default();
            let n = s.values.len() as u32;
            let (a, b) = match bins.as_deref().map(parse_window).transpose()? {
                None => (0, n),
                Some((a, b)) => (a, b.unwrap_or(n)),
            };
            if a >= b || b > n {
                return Err(Diagnostic::error(
                    "bins_window",
                    format!("bins {a}..{b} are outside the series' {n} bins"),
                )
                .at_path("--bins")
                .with_help(format!("use a..b with 0 ≤ a < b ≤ {n}"))
                .into());
            }
            let values = &s.values[a as usize..b as usize];
            let mut text = info_text(&info) + "\n";
            let grid =
                pb::Grid { bins: n, bin_minutes: info.bin_minutes, start: info.start.clone(), ..Default::default() };
            for (i, v) in values.iter().enumerate() {
                let t = a + i as u32;
                let when = crate::cli::output::bin_start(&grid, t).unwrap_or_default();
                let _ = writeln!(text, "{t:>6}  {when:<20}  {}", if v.is_nan() { "NaN".into() } else { short(*v) });
            }
            let mut json = info_json(&info);
            json["window"] = json!([a, b]);
            json["values"] = values.iter().map(|v| num(*v)).collect::<Vec<_>>().into();
            Ok(Reply { json, text })
        }
    }
}
