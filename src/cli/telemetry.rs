//! `flowtime telemetry load|kql` (§12): Gold NodeTimeBin exports to per-node CSVs with a
//! manifest, or to stored series in a database (or a server), and the KQL that exports a window.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cli::output::warnings_text;
use crate::cli::{Failure, db};
use crate::diag::Diagnostic;
use crate::host::StoredSeriesInput;
use crate::model::grid::{format_minutes, parse_utc_minutes};
use crate::sys;
use crate::telemetry::{self, Format, LoadOptions, Loaded};

#[derive(clap::Subcommand, Debug)]
pub enum TelemetryCmd {
    /// Load a Gold export (CSV or NDJSON) into per-node series: files (`--out`) or the database.
    Load(LoadArgs),
    /// Print the KQL that exports a window from Azure Data Explorer in the Gold format.
    Kql {
        #[arg(long)]
        start: String,
        #[arg(long)]
        bins: u32,
        #[arg(long, default_value = "5m")]
        bin_size: String,
        /// Only these nodes (comma-separated).
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The Gold file (`.csv` or `.ndjson`; the format is also sniffed from the content).
    pub file: PathBuf,
    /// RFC 3339 start of the window (default: the data's first timestamp).
    #[arg(long)]
    pub start: Option<String>,
    /// Number of bins (default: up to the data's last timestamp).
    #[arg(long)]
    pub bins: Option<u32>,
    /// Bin size such as 5m, 1h, 1d, 1w (default: inferred from the timestamps and reported).
    #[arg(long)]
    pub bin_size: Option<String>,
    /// Write `<node>_<metric>.csv` files and `manifest.json` here instead of loading a database.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `floor`: place misaligned timestamps in the bin that contains them.
    #[arg(long, value_parser = ["floor"])]
    pub align: Option<String>,
    /// Extraction time recorded in provenance (default: the file's modification time).
    #[arg(long)]
    pub extraction_ts: Option<String>,
}

pub(crate) fn options(
    start: Option<&str>,
    bins: Option<u32>,
    bin_size: Option<&str>,
    align: bool,
    format: Option<Format>,
) -> Result<LoadOptions, Failure> {
    let bad = |field: &str, m: String| {
        Failure::BadInput(Diagnostic::error("bad_argument", m).at_path(field.to_string()).into())
    };
    Ok(LoadOptions {
        start_minutes: start.map(parse_utc_minutes).transpose().map_err(|e| bad("--start", e))?,
        bins,
        bin_minutes: bin_size.map(telemetry::parse_bin_size).transpose().map_err(|e| bad("--bin-size", e))?,
        align_floor: align,
        format,
    })
}

/// The summary printed after a load.
pub(crate) fn summary(loaded: &Loaded, where_: &str, provenance: &Value) -> db::Reply {
    let w = loaded.window;
    let mut text = format!(
        "loaded {} rows: {} series for {} nodes, window {} .. {} ({} bins of {} min{}){}\n  → {where_}\n",
        loaded.rows,
        loaded.series.len(),
        loaded.series.iter().map(|s| &s.node).collect::<std::collections::BTreeSet<_>>().len(),
        format_minutes(w.start_minutes),
        format_minutes(w.start_minutes + w.bins as i64 * w.bin_minutes as i64),
        w.bins,
        w.bin_minutes,
        if loaded.bin_inferred { ", inferred from the timestamps" } else { "" },
        if loaded.rows_outside > 0 {
            format!("; {} rows outside the window skipped", loaded.rows_outside)
        } else {
            String::new()
        },
    );
    text.push_str(&warnings_text(&loaded.warnings));
    let json = json!({
        "window": w.to_json(),
        "grid": w.grid_json(),
        "binSizeInferred": loaded.bin_inferred,
        "rows": loaded.rows,
        "rowsOutsideWindow": loaded.rows_outside,
        "series": loaded.series.iter().map(|s| s.name()).collect::<Vec<_>>(),
        "warnings": loaded.warnings.iter().map(crate::artifacts::warning_json).collect::<Vec<_>>(),
        "provenance": provenance,
        "target": where_,
    });
    db::Reply { json, text }
}

pub(crate) fn run(cmd: TelemetryCmd, db_path: &Path, server: Option<&str>, json: bool) -> Result<(), Failure> {
    let reply = match cmd {
        TelemetryCmd::Kql { start, bins, bin_size, nodes } => {
            let s = parse_utc_minutes(&start)
                .map_err(|e| Failure::BadInput(Diagnostic::error("bad_argument", e).at_path("--start").into()))?;
            let bm = telemetry::parse_bin_size(&bin_size)
                .map_err(|e| Failure::BadInput(Diagnostic::error("bad_argument", e).at_path("--bin-size").into()))?;
            if s.rem_euclid(bm as i64) != 0 {
                return Err(Failure::BadInput(
                    Diagnostic::error("bad_argument", format!("--start {start} is not aligned to {bm}-minute bins"))
                        .into(),
                ));
            }
            let q = telemetry::kql(s, bins, bm, &nodes);
            db::Reply { json: json!({"kql": q}), text: q }
        }
        TelemetryCmd::Load(a) => load(&a, db_path, server)?,
    };
    db::emit(&mut std::io::stdout().lock(), &reply, json)
}

fn load(a: &LoadArgs, db_path: &Path, server: Option<&str>) -> Result<db::Reply, Failure> {
    if !sys::exists(&a.file) {
        return Err(Failure::BadInput(Diagnostic::error("io", format!("{} does not exist", a.file.display())).into()));
    }
    let format = match a.file.extension().and_then(|e| e.to_str()) {
        Some("ndjson") | Some("jsonl") => Some(Format::Ndjson),
        Some("csv") => Some(Format::Csv),
        _ => None,
    };
    let opts = options(a.start.as_deref(), a.bins, a.bin_size.as_deref(), a.align.is_some(), format)?;
    if let Some(url) = server {
        if a.out.is_some() {
            return Err(Failure::BadInput(
                Diagnostic::error("bad_argument", "--out writes files locally; drop --server").into(),
            ));
        }
        return crate::cli::remote::load_gold(url, a, &opts);
    }
    let total = sys::file_size(&a.file).unwrap_or(0);
    let show = sys::stderr_is_terminal();
    let mut pass = 0u32;
    let mut last = 0u64;
    let mut progress = |read: u64| {
        if !show {
            return;
        }
        if read < last {
            pass += 1;
        }
        last = read;
        let pct = if total > 0 { read as f64 * 100.0 / total as f64 } else { 0.0 };
        eprint!(
            "\rreading {}: {:.1} of {:.1} MB ({pct:.0}%){}",
            a.file.display(),
            read as f64 / 1e6,
            total as f64 / 1e6,
            if pass > 0 { " (second pass)" } else { "" }
        );
        let _ = std::io::stderr().flush();
    };
    let mut src = telemetry::FileSource::new(&a.file);
    let loaded = telemetry::load(&mut src, &opts, &mut progress)?;
    if show {
        eprintln!();
    }
    let extraction_ts = match &a.extraction_ts {
        Some(t) => {
            parse_utc_minutes(t).map_err(|e| {
                Failure::BadInput(Diagnostic::error("bad_argument", e).at_path("--extraction-ts").into())
            })?;
            t.clone()
        }
        None => sys::modified_secs(&a.file).map(|s| format_minutes(s.div_euclid(60))).unwrap_or_default(),
    };
    let provenance = json!({
        "source": a.file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        "sha256": src.sha.clone().unwrap_or_default(),
        "extraction_ts": extraction_ts,
    });
    match &a.out {
        Some(dir) => {
            sys::create_dir_all(dir)
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot create {}: {e}", dir.display())))?;
            telemetry::write_files(&loaded, &provenance, &mut |name, bytes| sys::write(&dir.join(name), bytes))
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot write into {}: {e}", dir.display())))?;
            Ok(summary(&loaded, &format!("{} (`file:` CSVs and manifest.json)", dir.display()), &provenance))
        }
        None => {
            let mut host = db::open_host(db_path, None)?;
            // The values move into the batch: no second copy of the output.
            let mut loaded = loaded;
            let items: Vec<StoredSeriesInput> = loaded
                .series
                .iter_mut()
                .map(|s| StoredSeriesInput {
                    name: s.name(),
                    values: std::mem::take(&mut s.values),
                    gaps: s.gaps.clone(),
                })
                .collect();
            let changed = host.put_series_batch(
                &items,
                Some(loaded.window.start_minutes),
                loaded.window.bin_minutes,
                provenance.clone(),
            )?;
            let mut r = summary(
                &loaded,
                &format!("{} (`series:<node>_<metric>`, {} changed)", db_path.display(), changed.len()),
                &provenance,
            );
            r.json["changed"] = json!(changed);
            Ok(r)
        }
    }
}
