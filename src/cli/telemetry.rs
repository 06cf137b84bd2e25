//! `flowtime telemetry load|kql` (§12): Gold NodeTimeBin exports to per-node CSVs with a
//! manifest (here, no database), or to stored series through the SeriesService's LoadGold (a
//! file this process opens: the loader streams it from its directory; a server: uploaded), and
//! the KQL that exports a window.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cli::api::status;
use crate::cli::output::{emit, warnings, warnings_text};
use crate::cli::{Api, Failure, Reply};
use crate::diag::Diagnostic;
use crate::model::grid::{format_minutes, parse_utc_minutes};
use crate::server::pb;
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
    /// Write `<node>_<metric>.csv` files and `manifest.json` here instead of loading the
    /// database (or the server).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `floor`: place misaligned timestamps in the bin that contains them.
    #[arg(long, value_parser = ["floor"])]
    pub align: Option<String>,
    /// Extraction time recorded in provenance (default: the file's modification time).
    #[arg(long)]
    pub extraction_ts: Option<String>,
}

fn options(a: &LoadArgs) -> Result<LoadOptions, Failure> {
    let bad = |field: &str, m: String| Failure::from(Diagnostic::error("bad_argument", m).at_path(field.to_string()));
    Ok(LoadOptions {
        start_minutes: a.start.as_deref().map(parse_utc_minutes).transpose().map_err(|e| bad("--start", e))?,
        bins: a.bins,
        bin_minutes: a
            .bin_size
            .as_deref()
            .map(telemetry::parse_bin_size)
            .transpose()
            .map_err(|e| bad("--bin-size", e))?,
        align_floor: a.align.is_some(),
        format: format_of(&a.file),
    })
}

fn format_of(file: &Path) -> Option<Format> {
    match file.extension().and_then(|e| e.to_str()) {
        Some("ndjson") | Some("jsonl") => Some(Format::Ndjson),
        Some("csv") => Some(Format::Csv),
        _ => None,
    }
}

/// `--extraction-ts`, checked, else the file's modification time.
fn extraction_ts(a: &LoadArgs) -> Result<String, Failure> {
    match &a.extraction_ts {
        Some(t) => {
            parse_utc_minutes(t)
                .map_err(|e| Failure::from(Diagnostic::error("bad_argument", e).at_path("--extraction-ts")))?;
            Ok(t.clone())
        }
        None => Ok(sys::modified_secs(&a.file).map(|s| format_minutes(s.div_euclid(60))).unwrap_or_default()),
    }
}

/// `telemetry kql`, and `telemetry load --out` (files, no database).
pub(crate) fn run_local(cmd: TelemetryCmd, json: bool) -> Result<ExitCode, Failure> {
    let reply = match cmd {
        TelemetryCmd::Kql { start, bins, bin_size, nodes } => {
            let s = parse_utc_minutes(&start)
                .map_err(|e| Failure::from(Diagnostic::error("bad_argument", e).at_path("--start")))?;
            let bm = telemetry::parse_bin_size(&bin_size)
                .map_err(|e| Failure::from(Diagnostic::error("bad_argument", e).at_path("--bin-size")))?;
            if s.rem_euclid(bm as i64) != 0 {
                return Err(Failure::bad(
                    "bad_argument",
                    format!("--start {start} is not aligned to {bm}-minute bins"),
                ));
            }
            let q = telemetry::kql(s, bins, bm, &nodes);
            Reply { json: json!({"kql": q}), text: q }
        }
        TelemetryCmd::Load(a) => load_files(&a)?,
    };
    emit(&reply, json)?;
    Ok(ExitCode::SUCCESS)
}

/// Shows how far a load has read on a terminal's stderr (never in pipes).
struct Progress {
    show: bool,
    label: String,
}

impl Progress {
    fn new(file: &Path) -> Progress {
        Progress { show: sys::stderr_is_terminal(), label: file.display().to_string() }
    }

    fn update(&self, read: u64, total: u64, pass: u32) {
        if !self.show {
            return;
        }
        let pct = if total > 0 { read as f64 * 100.0 / total as f64 } else { 0.0 };
        eprint!(
            "\rreading {}: {:.1} of {:.1} MB ({pct:.0}%){}",
            self.label,
            read as f64 / 1e6,
            total as f64 / 1e6,
            if pass > 1 { " (second pass)" } else { "" }
        );
        let _ = std::io::stderr().flush();
    }

    fn done(&self, any: bool) {
        if self.show && any {
            eprintln!();
        }
    }
}

fn load_files(a: &LoadArgs) -> Result<Reply, Failure> {
    if !sys::exists(&a.file) {
        return Err(crate::cli::template::missing_file(&a.file));
    }
    let opts = options(a)?;
    let Some(dir) = &a.out else {
        return Err(Failure::bad("bad_argument", "`telemetry load` without --out loads a database"));
    };
    let total = sys::file_size(&a.file).unwrap_or(0);
    let bar = Progress::new(&a.file);
    let (mut pass, mut last, mut any) = (1u32, 0u64, false);
    let mut progress = |read: u64| {
        if read < last {
            pass += 1;
        }
        last = read;
        any = true;
        bar.update(read, total, pass);
    };
    let mut src = telemetry::FileSource::new(&a.file);
    let loaded = telemetry::load(&mut src, &opts, &mut progress).map_err(|mut d| {
        bar.done(any);
        for x in &mut d.0 {
            x.file.get_or_insert_with(|| a.file.display().to_string());
        }
        Failure::BadInput(d)
    })?;
    bar.done(any);
    let provenance = json!({
        "source": a.file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        "sha256": src.sha.clone().unwrap_or_default(),
        "extraction_ts": extraction_ts(a)?,
    });
    sys::create_dir_all(dir).map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot create {}: {e}", dir.display())))?;
    telemetry::write_files(&loaded, &provenance, &mut |name, bytes| sys::write(&dir.join(name), bytes))
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot write into {}: {e}", dir.display())))?;
    Ok(summary(&loaded, &format!("{} (`file:` CSVs and manifest.json)", dir.display()), &provenance))
}

/// The summary printed after a load into files.
fn summary(loaded: &Loaded, where_: &str, provenance: &Value) -> Reply {
    let w = loaded.window;
    let nodes = loaded.series.iter().map(|s| &s.node).collect::<std::collections::BTreeSet<_>>().len();
    let mut text = format!(
        "loaded {} rows: {} series for {nodes} nodes, window {} .. {} ({} bins of {} min{}){}\n  → {where_}\n",
        loaded.rows,
        loaded.series.len(),
        format_minutes(w.start_minutes),
        format_minutes(w.start_minutes + w.bins as i64 * w.bin_minutes as i64),
        w.bins,
        w.bin_minutes,
        if loaded.bin_inferred { ", inferred from the timestamps" } else { "" },
        outside(loaded.rows_outside),
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
    Reply { json, text }
}

fn outside(n: u64) -> String {
    if n > 0 { format!("; {n} rows outside the window skipped") } else { String::new() }
}

/// `telemetry load` into the database (or the server) through LoadGold: the database opened
/// here reads the file from its directory (streaming, §12); a server gets it uploaded.
pub(crate) async fn load_into(api: &Api, a: &LoadArgs) -> Result<Reply, Failure> {
    if !sys::exists(&a.file) {
        return Err(crate::cli::template::missing_file(&a.file));
    }
    options(a)?;
    let format = match format_of(&a.file) {
        Some(Format::Ndjson) => "ndjson",
        Some(Format::Csv) => "csv",
        None => "",
    };
    let mut opts = pb::LoadGoldOptions {
        format: format.into(),
        start: a.start.clone().unwrap_or_default(),
        bins: a.bins.unwrap_or(0),
        bin_size: a.bin_size.clone().unwrap_or_default(),
        align_floor: a.align.is_some(),
        source: a.file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
        extraction_ts: extraction_ts(a)?,
        path: String::new(),
    };
    let under_root = api.local_data_root().and_then(|root| {
        let file = sys::canonicalize(&a.file).ok()?;
        let rel = file.strip_prefix(root).ok()?;
        rel.to_str().map(|s| s.replace('\\', "/"))
    });
    let data = match under_root {
        Some(rel) => {
            opts.path = rel;
            Vec::new()
        }
        None => sys::read(&a.file).map_err(|e| Failure::bad("io", format!("cannot read {}: {e}", a.file.display())))?,
    };
    let mut chunks: Vec<pb::LoadGoldChunk> =
        data.chunks(1 << 20).map(|d| pb::LoadGoldChunk { options: None, data: d.to_vec() }).collect();
    if chunks.is_empty() {
        chunks.push(pb::LoadGoldChunk::default());
    }
    chunks[0].options = Some(opts);
    let mut events = api.client().series().load_gold(tokio_stream::iter(chunks)).await.map_err(status)?.into_inner();
    let bar = Progress::new(&a.file);
    let mut any = false;
    let result = loop {
        match events.message().await {
            Ok(Some(pb::LoadGoldEvent { event: Some(pb::load_gold_event::Event::Progress(p)) })) => {
                any = true;
                bar.update(p.bytes_read, p.bytes_total, p.pass);
            }
            Ok(Some(pb::LoadGoldEvent { event: Some(pb::load_gold_event::Event::Result(r)) })) => break r,
            Ok(Some(pb::LoadGoldEvent { event: None })) => continue,
            Ok(None) => return Err(Failure::Runtime(anyhow::anyhow!("the load ended without a result"))),
            Err(s) => {
                bar.done(any);
                return Err(status(s));
            }
        }
    };
    bar.done(any);
    let place = match api.server() {
        Some(url) => url.to_string(),
        None => "the database".to_string(),
    };
    Ok(loaded_reply(&result, &place))
}

fn loaded_reply(r: &pb::LoadGoldResponse, place: &str) -> Reply {
    let ws = warnings(&r.warnings);
    let g = r.grid.clone().unwrap_or_default();
    let end = parse_utc_minutes(&g.start)
        .map(|s| format_minutes(s + g.bins as i64 * g.bin_minutes as i64))
        .unwrap_or_default();
    let mut text = format!(
        "loaded {} rows: {} series, window {} .. {end} ({} bins of {} min{}){}\n  → {place} (`series:<node>_<metric>`, {} changed)\n",
        r.rows,
        r.series.len(),
        g.start,
        g.bins,
        g.bin_minutes,
        if r.bin_size_inferred { ", inferred from the timestamps" } else { "" },
        outside(r.rows_outside_window),
        r.changed.len()
    );
    text.push_str(&warnings_text(&ws));
    let json = json!({
        "grid": crate::cli::output::grid_json(r.grid.as_ref()),
        "binSizeInferred": r.bin_size_inferred, "rows": r.rows, "rowsOutsideWindow": r.rows_outside_window,
        "series": r.series, "changed": r.changed,
        "warnings": crate::cli::output::warnings_json(&ws),
        "provenance": r.provenance.iter().collect::<std::collections::BTreeMap<_, _>>(),
        "target": place,
    });
    Reply { json, text }
}
