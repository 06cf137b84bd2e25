//! The TelemetryLoader (§12): Gold NodeTimeBin exports (CSV or NDJSON) → per-node series.
//!
//! Streaming: rows are read one at a time; memory holds only the output series (nodes ×
//! metrics × bins), a bit per (node, bin) for duplicate detection, and, when the window or bin
//! size must be inferred, the set of distinct timestamps from a first pass. At most two passes.
//! Telemetry is just another input (seed P1): the result is ordinary series, written as CSV files
//! with a manifest or stored in the database for `series:` references.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Read};

use serde_json::{Value, json};

use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::engine::warnings::Warning;
use crate::model::grid::{format_minutes, parse_utc_minutes};

/// Required metrics, then optional ones, in output order.
pub const REQUIRED: [&str; 3] = ["arrivals", "served", "errors"];
pub const OPTIONAL: [&str; 3] = ["queue_depth", "external_demand", "capacity_proxy"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

/// What the caller asks for; `None` fields are inferred from the data.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub start_minutes: Option<i64>,
    pub bins: Option<u32>,
    pub bin_minutes: Option<u64>,
    pub align_floor: bool,
    pub format: Option<Format>,
}

/// The window a load produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start_minutes: i64,
    pub bins: u32,
    pub bin_minutes: u64,
}

impl Window {
    pub fn to_json(&self) -> Value {
        json!({
            "start": format_minutes(self.start_minutes),
            "end": format_minutes(self.start_minutes + self.bins as i64 * self.bin_minutes as i64),
            "bins": self.bins,
            "binMinutes": self.bin_minutes,
        })
    }

    /// The grid a model needs to read these series: the largest unit that divides the bin width.
    pub fn grid_json(&self) -> Value {
        let (size, unit) = [(10080, "weeks"), (1440, "days"), (60, "hours"), (1, "minutes")]
            .into_iter()
            .find(|(m, _)| self.bin_minutes % m == 0)
            .map(|(m, u)| (self.bin_minutes / m, u))
            .unwrap_or((self.bin_minutes, "minutes"));
        json!({"bins": self.bins, "binSize": size, "binUnit": unit, "binMinutes": self.bin_minutes, "start": format_minutes(self.start_minutes)})
    }
}

/// One output series.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedSeries {
    pub node: String,
    pub metric: String,
    /// §6.1: the class of a per-class series (from the export's optional `class` column).
    pub class: Option<String>,
    pub values: Vec<f64>,
    /// Bins with no row for this node (zero-filled), or no value for this metric.
    pub gaps: Vec<u32>,
    /// Bins whose value was null/NaN/empty.
    pub nans: Vec<u32>,
}

impl LoadedSeries {
    /// `<node>_<metric>` (or `<node>_<metric>@<class>`), the file stem and stored series name.
    pub fn name(&self) -> String {
        match &self.class {
            Some(c) => format!("{}_{}@{c}", self.node, self.metric),
            None => format!("{}_{}", self.node, self.metric),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Loaded {
    pub window: Window,
    /// True when the bin width was inferred from the timestamps.
    pub bin_inferred: bool,
    pub series: Vec<LoadedSeries>,
    pub warnings: Vec<Warning>,
    pub rows: u64,
    pub rows_outside: u64,
    pub extra_columns: Vec<String>,
}

/// One parsed row.
struct Row {
    line: u64,
    ts: String,
    node: String,
    /// The optional `class` column (§6.1); empty or absent is the node's total.
    class: Option<String>,
    /// Metric → value; absent keys are missing values, null/empty are NaN.
    values: Vec<(usize, Option<f64>)>,
}

const METRICS: [&str; 6] = ["arrivals", "served", "errors", "queue_depth", "external_demand", "capacity_proxy"];

fn err(line: u64, msg: impl Into<String>, help: &str) -> Diagnostics {
    let mut d = Diagnostic::error("gold", msg);
    if line > 0 {
        d = d.at_line(line as u32, 1);
    }
    d.with_help(help).into()
}

/// When the timestamps' gaps disagree: the first timestamp off the grid most of them are on, with
/// its line; `None` when every timestamp is on that grid. The grid is the gap between
/// consecutive timestamps whose epoch-aligned bins (as `bin()` makes them) hold the most
/// timestamps, the larger gap on a tie.
fn misaligned(stamps: &BTreeMap<i64, u64>, keys: &[i64]) -> Option<Diagnostics> {
    let gaps: BTreeSet<i64> = keys.windows(2).map(|w| w[1] - w[0]).filter(|g| *g > 0).collect();
    let on = |g: i64| keys.iter().filter(|m| m.rem_euclid(g) == 0).count();
    let bm = gaps.iter().copied().max_by_key(|g| (on(*g), *g))?;
    let (&m, &line) = stamps.iter().find(|(m, _)| m.rem_euclid(bm) != 0)?;
    let start = m - m.rem_euclid(bm);
    Some(err(
        line,
        format!(
            "timestamp {} is not aligned to the {bm}-minute bins the other rows are on (it is {} minutes into the bin starting {})",
            format_minutes(m),
            m - start,
            format_minutes(start)
        ),
        &format!("fix the row, export with bin() alignment, or pass --bin-size {bm}m --align floor"),
    ))
}

/// Guesses the format from the first non-blank character.
pub fn sniff(first: &[u8]) -> Format {
    let first = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(first);
    match first.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Format::Ndjson,
        _ => Format::Csv,
    }
}

/// Reads rows from a source, calling `f` for each; returns the extra (ignored) columns.
fn for_each_row(
    src: &mut dyn BufRead,
    format: Format,
    f: &mut dyn FnMut(Row) -> Result<(), Diagnostics>,
) -> Result<Vec<String>, Diagnostics> {
    match format {
        Format::Csv => {
            let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(src);
            let headers: Vec<String> = rdr
                .headers()
                .map_err(|e| {
                    err(
                        1,
                        format!("unreadable header: {e}"),
                        "the first line names the columns: ts,node,arrivals,served,errors,...",
                    )
                })?
                .iter()
                .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
                .collect();
            let col = |n: &str| headers.iter().position(|h| h == n);
            let class_col = col("class");
            let (Some(ts), Some(node)) = (col("ts"), col("node")) else {
                return Err(err(
                    1,
                    // Not the content: a file of another kind (a key, a config) is not echoed.
                    "not a Gold CSV: the header has no `ts`/`node` column".to_string(),
                    "Gold NodeTimeBin columns: ts,node,arrivals,served,errors[,queue_depth,external_demand,capacity_proxy]",
                ));
            };
            for r in REQUIRED {
                if col(r).is_none() {
                    return Err(err(
                        1,
                        format!("the header lacks the required column `{r}`"),
                        "arrivals, served and errors are required",
                    ));
                }
            }
            let metric_cols: Vec<(usize, usize)> =
                METRICS.iter().enumerate().filter_map(|(m, name)| col(name).map(|c| (m, c))).collect();
            let extra: Vec<String> = headers
                .iter()
                .filter(|h| *h != "ts" && *h != "node" && *h != "class" && !METRICS.contains(&h.as_str()))
                .cloned()
                .collect();
            let mut rec = csv::StringRecord::new();
            loop {
                match rdr.read_record(&mut rec) {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line());
                        return Err(err(line, format!("unreadable row: {e}"), "every row has the header's columns"));
                    }
                }
                let line = rec.position().map_or(0, |p| p.line());
                if rec.iter().all(str::is_empty) {
                    continue;
                }
                let mut values = Vec::with_capacity(metric_cols.len());
                for &(m, c) in &metric_cols {
                    let raw = rec.get(c).unwrap_or("");
                    // An empty optional cell means the node has no such metric; an empty
                    // required cell, `NaN` or `null` is an unknown value (NaN).
                    let v = if raw.is_empty() && m >= REQUIRED.len() {
                        None
                    } else if raw.is_empty() || raw.eq_ignore_ascii_case("nan") || raw.eq_ignore_ascii_case("null") {
                        Some(f64::NAN)
                    } else {
                        Some(raw.parse::<f64>().map_err(|_| {
                            // The column the field starts at (exact for unquoted fields).
                            let column =
                                1 + (0..c).map(|j| rec.get(j).map_or(0, |f| f.chars().count()) + 1).sum::<usize>();
                            let d = Diagnostic::error("gold", format!("{} value `{raw}` is not a number", METRICS[m]))
                                .at_line(line as u32, column as u32)
                                .with_help("values are numbers; leave a cell empty for unknown");
                            Diagnostics::from(d)
                        })?)
                    };
                    values.push((m, v));
                }
                f(Row {
                    line,
                    ts: rec.get(ts).unwrap_or("").to_string(),
                    node: rec.get(node).unwrap_or("").to_string(),
                    class: class_col.and_then(|c| rec.get(c)).filter(|c| !c.is_empty()).map(str::to_string),
                    values,
                })?;
            }
            Ok(extra)
        }
        Format::Ndjson => {
            let mut extra = BTreeSet::new();
            let mut buf = String::new();
            let mut line = 0u64;
            loop {
                buf.clear();
                let n = src
                    .read_line(&mut buf)
                    .map_err(|e| err(line + 1, format!("cannot read: {e}"), "the file must be UTF-8 NDJSON"))?;
                if n == 0 {
                    break;
                }
                line += 1;
                let t = if line == 1 { buf.trim_start_matches('\u{feff}') } else { &buf }.trim();
                if t.is_empty() {
                    continue;
                }
                let obj: serde_json::Map<String, Value> = serde_json::from_str(t).map_err(|e| {
                    err(
                        line,
                        format!("not a JSON object: {e}"),
                        "one object per line: {\"ts\": ..., \"node\": ..., \"arrivals\": ...}",
                    )
                })?;
                let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
                let (Some(ts), Some(node)) = (text("ts"), text("node").map(|n| n.trim().to_string())) else {
                    return Err(err(
                        line,
                        "the object lacks string fields `ts` and `node`",
                        "each row needs ts and node",
                    ));
                };
                let mut values = Vec::new();
                for (m, name) in METRICS.iter().enumerate() {
                    match obj.get(*name) {
                        None => {
                            if m < 3 {
                                values.push((m, None));
                            }
                        }
                        Some(Value::Null) => values.push((m, Some(f64::NAN))),
                        Some(v) => match v.as_f64() {
                            Some(x) => values.push((m, Some(x))),
                            None => {
                                return Err(err(
                                    line,
                                    format!("`{name}` is not a number: {v}"),
                                    "metrics are numbers or null",
                                ));
                            }
                        },
                    }
                }
                for k in obj.keys() {
                    if k != "ts" && k != "node" && k != "class" && !METRICS.contains(&k.as_str()) {
                        extra.insert(k.clone());
                    }
                }
                let class = text("class").map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
                f(Row { line, ts, node, class, values })?;
            }
            Ok(extra.into_iter().collect())
        }
    }
}

/// Parses a bin size such as `5m`, `1h`, `1d`, `1w` (or plain minutes).
pub fn parse_bin_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bin size `{s}` must look like 5m, 1h, 1d or 1w"))?;
    let mult = match unit {
        "" | "m" | "min" => 1,
        "h" => 60,
        "d" => 1440,
        "w" => 10080,
        _ => return Err(format!("bin size `{s}`: unknown unit `{unit}` (use m, h, d or w)")),
    };
    if n == 0 {
        return Err("the bin size must be at least 1".into());
    }
    Ok(n * mult)
}

/// A source that can be read (again) from the start: the loader makes at most two passes.
pub trait Source {
    fn open(&mut self) -> std::io::Result<Box<dyn BufRead + '_>>;
}

/// Loads a Gold export. `progress` is called with the bytes read so far of each pass.
pub fn load(src: &mut dyn Source, opts: &LoadOptions, progress: &mut dyn FnMut(u64)) -> Result<Loaded, Diagnostics> {
    let format = match opts.format {
        Some(f) => f,
        None => {
            let mut r = src.open().map_err(|e| err(0, format!("cannot read the file: {e}"), ""))?;
            let buf = r.fill_buf().map_err(|e| err(0, format!("cannot read the file: {e}"), ""))?;
            sniff(buf)
        }
    };
    // Pass 1 (only when something must be inferred): distinct timestamps.
    let mut bin_inferred = false;
    let window = match (opts.start_minutes, opts.bins, opts.bin_minutes) {
        (Some(s), Some(b), Some(bm)) => Window { start_minutes: s, bins: b, bin_minutes: bm },
        _ => {
            // Distinct timestamps, each with the first line it is on.
            let mut stamps: BTreeMap<i64, u64> = BTreeMap::new();
            let mut r =
                Counting::new(src.open().map_err(|e| err(0, format!("cannot read the file: {e}"), ""))?, progress);
            for_each_row(&mut r, format, &mut |row| {
                let m = parse_utc_minutes(&row.ts)
                    .map_err(|e| err(row.line, e, "timestamps are RFC 3339 UTC, e.g. 2025-10-07T00:05:00Z"))?;
                stamps.entry(m).or_insert(row.line);
                Ok(())
            })?;
            let (Some((&first, _)), Some((&last, _))) = (stamps.first_key_value(), stamps.last_key_value()) else {
                return Err(err(0, "the file has no rows", "export at least one row"));
            };
            let bm = match opts.bin_minutes {
                Some(b) => b,
                None => {
                    bin_inferred = true;
                    let keys: Vec<i64> = stamps.keys().copied().collect();
                    let gaps: BTreeSet<i64> = keys.windows(2).map(|w| w[1] - w[0]).collect();
                    let smallest = gaps.first().copied().unwrap_or(1).max(1);
                    if let Some(bad) = gaps.iter().find(|g| *g % smallest != 0) {
                        return Err(misaligned(&stamps, &keys).unwrap_or_else(|| {
                            err(
                                0,
                                format!(
                                    "the bin size cannot be inferred: the smallest gap between timestamps is {smallest} minutes but another gap is {bad} minutes"
                                ),
                                "pass --bin-size",
                            )
                        }));
                    }
                    smallest as u64
                }
            };
            let start = opts.start_minutes.unwrap_or(if opts.align_floor {
                first - first.rem_euclid(bm as i64)
            } else {
                first
            });
            let bins = match opts.bins {
                Some(b) => b,
                None => ((last - start).div_euclid(bm as i64) + 1).max(1) as u32,
            };
            Window { start_minutes: start, bins, bin_minutes: bm }
        }
    };
    if window.start_minutes.rem_euclid(window.bin_minutes as i64) != 0 {
        return Err(err(
            0,
            format!(
                "the window start {} is not aligned to {}-minute bins",
                format_minutes(window.start_minutes),
                window.bin_minutes
            ),
            "pass an aligned --start",
        ));
    }
    if window.bins == 0 || window.bins > crate::model::grid::MAX_BINS {
        return Err(err(
            0,
            format!("{} bins is outside 1..{}", window.bins, crate::model::grid::MAX_BINS),
            "pass --bins",
        ));
    }

    // Pass 2: fill.
    let n = window.bins as usize;
    let bm = window.bin_minutes as i64;
    struct NodeData {
        seen: Vec<u64>,
        metrics: [Option<Vec<f64>>; 6],
        present: [Vec<u64>; 6],
        nans: [Vec<u32>; 6],
    }
    let mut nodes: BTreeMap<String, NodeData> = BTreeMap::new();
    let mut rows = 0u64;
    let mut outside = 0u64;
    let mut r = Counting::new(src.open().map_err(|e| err(0, format!("cannot read the file: {e}"), ""))?, progress);
    let extra = for_each_row(&mut r, format, &mut |row| {
        rows += 1;
        if row.node.is_empty() {
            return Err(err(row.line, "empty node", "every row names its node"));
        }
        // Node names become file and series names (`<node>_<metric>`).
        if row.node.starts_with('.')
            || !row.node.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(err(
                row.line,
                format!("node name `{}` cannot name a series or file", row.node),
                "node names use letters, digits, `_`, `-` and `.` (not first); rename the node in the export",
            ));
        }
        if let Some(c) = &row.class
            && (c.starts_with('.') || !c.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(err(
                row.line,
                format!("class `{c}` cannot name a series or file"),
                "class ids use letters, digits, `_`, `-` and `.` (not first)",
            ));
        }
        let m = parse_utc_minutes(&row.ts)
            .map_err(|e| err(row.line, e, "timestamps are RFC 3339 UTC, e.g. 2025-10-07T00:05:00Z"))?;
        let off = m - window.start_minutes;
        if off.rem_euclid(bm) != 0 && !opts.align_floor {
            let b = off.div_euclid(bm);
            return Err(err(
                row.line,
                format!(
                    "timestamp {} is not aligned to the {bm}-minute grid (it falls in the bin starting {})",
                    row.ts,
                    format_minutes(window.start_minutes + b * bm)
                ),
                "export with bin() alignment, or pass --align floor",
            ));
        }
        let b = off.div_euclid(bm);
        if b < 0 || b >= n as i64 {
            outside += 1;
            return Ok(());
        }
        let b = b as usize;
        // Per-class rows are kept under `<node>@<class>` (`@` cannot be in a node name).
        let key = match &row.class {
            Some(c) => format!("{}@{c}", row.node),
            None => row.node.clone(),
        };
        let nd = nodes.entry(key).or_insert_with(|| NodeData {
            seen: vec![0; n.div_ceil(64)],
            metrics: Default::default(),
            present: std::array::from_fn(|_| vec![0; n.div_ceil(64)]),
            nans: Default::default(),
        });
        let (w, bit) = (b / 64, 1u64 << (b % 64));
        if nd.seen[w] & bit != 0 {
            let what = if opts.align_floor { "a second row lands in the bin of" } else { "a second row for" };
            return Err(err(
                row.line,
                format!("{what} node `{}` at {}", row.node, format_minutes(window.start_minutes + b as i64 * bm)),
                "keep one row per node and bin",
            ));
        }
        nd.seen[w] |= bit;
        for (m, v) in row.values {
            let Some(v) = v else { continue };
            let arr = nd.metrics[m].get_or_insert_with(|| vec![0.0; n]);
            arr[b] = v;
            nd.present[m][w] |= bit;
            if v.is_nan() {
                nd.nans[m].push(b as u32);
            }
        }
        Ok(())
    })?;

    let mut series = Vec::new();
    let mut warnings = Vec::new();
    for (key, mut nd) in nodes {
        let (node, class) = match key.split_once('@') {
            Some((n, c)) => (n.to_string(), Some(c.to_string())),
            None => (key.clone(), None),
        };
        let node_gaps: Vec<u32> = (0..n).filter(|b| nd.seen[b / 64] & (1 << (b % 64)) == 0).map(|b| b as u32).collect();
        // A class absent from a bin had no flow there: no gap to report.
        if !node_gaps.is_empty() && class.is_none() {
            warnings.push(
                Warning::new(
                    "data_gap",
                    Severity::Warning,
                    &node,
                    format!("{} bins have no row for `{node}`; filled with 0", node_gaps.len()),
                )
                .with_bins(&node_gaps, Some(node_gaps.len() as f64)),
            );
        }
        for (m, name) in METRICS.iter().enumerate() {
            let required = m < 3;
            let had = nd.metrics[m].is_some();
            let values = match nd.metrics[m].take() {
                Some(v) => v,
                None if required => vec![0.0; n],
                None => continue,
            };
            let gaps: Vec<u32> =
                (0..n).filter(|b| nd.present[m][b / 64] & (1 << (b % 64)) == 0).map(|b| b as u32).collect();
            // Bins with a row that lacks this metric (the missing rows are reported above).
            if (required || had) && class.is_none() {
                let missing: Vec<u32> = gaps.iter().copied().filter(|b| node_gaps.binary_search(b).is_err()).collect();
                if !missing.is_empty() {
                    warnings.push(
                        Warning::new(
                            "data_gap",
                            Severity::Warning,
                            &node,
                            format!("{} rows of `{node}` have no {name} value; filled with 0", missing.len()),
                        )
                        .with_bins(&missing, Some(missing.len() as f64)),
                    );
                }
            }
            let mut nans = std::mem::take(&mut nd.nans[m]);
            nans.sort_unstable();
            if !nans.is_empty() {
                warnings.push(
                    Warning::new(
                        "nan_detected",
                        Severity::Warning,
                        &node,
                        format!("{} bins of `{node}` {name} are null or NaN", nans.len()),
                    )
                    .with_bins(&nans, Some(nans.len() as f64)),
                );
            }
            series.push(LoadedSeries {
                node: node.clone(),
                metric: name.to_string(),
                class: class.clone(),
                values,
                gaps,
                nans,
            });
        }
    }
    class_totals(&mut series, &mut warnings, n);
    if outside > 0 {
        warnings.push(
            Warning::new(
                "rows_outside_window",
                Severity::Info,
                "",
                format!("{outside} rows fall outside the window and were skipped"),
            )
            .with_bins(&[], Some(outside as f64)),
        );
    }
    if !extra.is_empty() {
        warnings.push(Warning::new(
            "extra_columns",
            Severity::Info,
            "",
            format!("columns ignored: {}", extra.join(", ")),
        ));
    }
    if bin_inferred {
        warnings.push(Warning::new(
            "bin_size_inferred",
            Severity::Info,
            "",
            format!("bin size inferred from the timestamps: {} minutes", window.bin_minutes),
        ));
    }
    crate::engine::warnings::sort(&mut warnings);
    Ok(Loaded { window, bin_inferred, series, warnings, rows, rows_outside: outside, extra_columns: extra })
}

/// §6.1 per-class telemetry: a node with per-class rows but no total rows gets totals that are
/// the sum of its classes (class id order; bins no class reports are gaps); a node with both is
/// checked, bin by bin where the total has a value, and a total that disagrees with the sum of
/// its classes (beyond `1e-9 · max(1, |total|)`) is a `class_total_mismatch` warning naming the
/// node, the metric and the bins.
fn class_totals(series: &mut Vec<LoadedSeries>, warnings: &mut Vec<Warning>, n: usize) {
    // (node, metric) → indices of its per-class series.
    let mut by: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        if s.class.is_some() {
            by.entry((s.node.clone(), s.metric.clone())).or_default().push(i);
        }
    }
    if by.is_empty() {
        return;
    }
    for ((node, metric), idx) in by {
        let mut sum = vec![0.0; n];
        for &i in &idx {
            for (a, v) in sum.iter_mut().zip(&series[i].values) {
                *a += v;
            }
        }
        match series.iter().position(|s| s.class.is_none() && s.node == node && s.metric == metric) {
            Some(t) => {
                let total = &series[t];
                let mut bins = Vec::new();
                let mut worst = 0.0f64;
                for (b, (&x, &y)) in total.values.iter().zip(&sum).enumerate() {
                    if total.gaps.binary_search(&(b as u32)).is_ok() || x.is_nan() || y.is_nan() {
                        continue;
                    }
                    let d = (x - y).abs();
                    if d > 1e-9 * x.abs().max(1.0) {
                        bins.push(b as u32);
                        worst = worst.max(d);
                    }
                }
                if !bins.is_empty() {
                    warnings.push(
                        Warning::new(
                            "class_total_mismatch",
                            Severity::Warning,
                            &node,
                            format!(
                                "`{node}` {metric} differs from the sum of its classes in {} bins (by up to {worst})",
                                bins.len()
                            ),
                        )
                        .with_bins(&bins, Some(worst)),
                    );
                }
            }
            None => {
                let gaps: Vec<u32> =
                    (0..n as u32).filter(|b| idx.iter().all(|&i| series[i].gaps.binary_search(b).is_ok())).collect();
                let mut nans: Vec<u32> = idx.iter().flat_map(|&i| series[i].nans.iter().copied()).collect();
                nans.sort_unstable();
                nans.dedup();
                series.push(LoadedSeries { node, metric, class: None, values: sum, gaps, nans });
            }
        }
    }
    series.sort_by(|a, b| (&a.node, &a.metric, &a.class).cmp(&(&b.node, &b.metric, &b.class)));
    crate::engine::warnings::sort(warnings);
}

/// Counts bytes read, for progress.
struct Counting<'a, 'p> {
    inner: Box<dyn BufRead + 'a>,
    read: u64,
    reported: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl<'a, 'p> Counting<'a, 'p> {
    fn new(inner: Box<dyn BufRead + 'a>, progress: &'p mut dyn FnMut(u64)) -> Counting<'a, 'p> {
        Counting { inner, read: 0, reported: 0, progress }
    }

    fn advance(&mut self, n: usize) {
        self.read += n as u64;
        if self.read - self.reported >= 1 << 20 {
            self.reported = self.read;
            (self.progress)(self.read);
        }
    }
}

impl Read for Counting<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.advance(n);
        Ok(n)
    }
}

impl BufRead for Counting<'_, '_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.advance(amt);
    }
}

/// A file read once per pass; the last pass computes the file's sha256.
pub struct FileSource {
    path: std::path::PathBuf,
    /// sha256 of the file, after a full pass.
    pub sha: Option<String>,
}

struct Hashing<'a> {
    inner: std::fs::File,
    hasher: sha2::Sha256,
    out: &'a mut Option<String>,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }
}

impl Drop for Hashing<'_> {
    fn drop(&mut self) {
        *self.out = Some(crate::model::params::hex(&sha2::Digest::finalize(std::mem::take(&mut self.hasher))));
    }
}

impl FileSource {
    pub fn new(path: &std::path::Path) -> FileSource {
        FileSource { path: path.to_path_buf(), sha: None }
    }
}

impl Source for FileSource {
    fn open(&mut self) -> std::io::Result<Box<dyn BufRead + '_>> {
        let f = crate::sys::open(&self.path)?;
        Ok(Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            Hashing { inner: f, hasher: <sha2::Sha256 as sha2::Digest>::new(), out: &mut self.sha },
        )))
    }
}

/// An in-memory source (uploads, tests).
pub struct Bytes<'b>(pub &'b [u8]);

impl Source for Bytes<'_> {
    fn open(&mut self) -> std::io::Result<Box<dyn BufRead + '_>> {
        Ok(Box::new(self.0))
    }
}

/// Writes the per-node CSV files and the manifest of §12 through `write(relative path, bytes)`,
/// one file at a time (so memory holds one file's text, not all of them).
pub fn write_files(
    loaded: &Loaded,
    provenance: &Value,
    write: &mut dyn FnMut(&str, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut listed = Vec::new();
    for s in &loaded.series {
        let csv = crate::artifacts::series_csv(&s.values);
        let path = format!("{}.csv", s.name());
        let mut entry = json!({
            "node": s.node, "metric": s.metric, "path": path,
            "sha256": crate::model::params::hex(&<sha2::Sha256 as sha2::Digest>::digest(csv.as_bytes())),
            "points": s.values.len(),
        });
        if let (Some(c), Some(o)) = (&s.class, entry.as_object_mut()) {
            o.insert("class".into(), c.clone().into());
        }
        listed.push(entry);
        write(&path, csv.as_bytes())?;
    }
    let manifest = json!({
        "window": loaded.window.to_json(),
        "grid": loaded.window.grid_json(),
        "files": listed,
        "warnings": loaded.warnings.iter().map(crate::artifacts::warning_json).collect::<Vec<_>>(),
        "provenance": provenance,
        "rows": loaded.rows,
        "rowsOutsideWindow": loaded.rows_outside,
    });
    write("manifest.json", &crate::artifacts::json_bytes(&manifest))
}

/// The KQL an operator runs against ADX to export exactly this window in the Gold format, with
/// `bin()` alignment (seed P7).
pub fn kql(start_minutes: i64, bins: u32, bin_minutes: u64, nodes: &[String]) -> String {
    let start = format_minutes(start_minutes);
    let end = format_minutes(start_minutes + bins as i64 * bin_minutes as i64);
    let span = if bin_minutes % 1440 == 0 {
        format!("{}d", bin_minutes / 1440)
    } else if bin_minutes % 60 == 0 {
        format!("{}h", bin_minutes / 60)
    } else {
        format!("{bin_minutes}m")
    };
    let mut q = format!(
        "// FlowTime Gold export: NodeTimeBin, [{start}, {end}), {bins} bins of {span}\nNodeTimeBin\n| where ts >= datetime({start}) and ts < datetime({end})\n"
    );
    if !nodes.is_empty() {
        let list: Vec<String> = nodes.iter().map(|n| format!("\"{}\"", n.replace('"', "\\\""))).collect();
        q.push_str(&format!("| where node in ({})\n", list.join(", ")));
    }
    q.push_str(&format!(
        "| summarize arrivals = sum(arrivals), served = sum(served), errors = sum(errors),\n            queue_depth = take_any(queue_depth), external_demand = sum(external_demand),\n            capacity_proxy = take_any(capacity_proxy)\n    by node, ts = bin(ts, {span})\n| project ts = strcat(format_datetime(ts, 'yyyy-MM-ddTHH:mm:ss'), 'Z'), node, arrivals, served, errors,\n          queue_depth, external_demand, capacity_proxy\n| order by ts asc, node asc\n"
    ));
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_sizes() {
        assert_eq!(parse_bin_size("5m"), Ok(5));
        assert_eq!(parse_bin_size("1h"), Ok(60));
        assert_eq!(parse_bin_size("2d"), Ok(2880));
        assert_eq!(parse_bin_size("1w"), Ok(10080));
        assert_eq!(parse_bin_size("15"), Ok(15));
        assert!(parse_bin_size("5s").is_err());
        assert!(parse_bin_size("0m").is_err());
    }

    #[test]
    fn kql_aligns_with_bin() {
        let q = kql(29_329_920, 288, 5, &["OrderService".into()]);
        assert!(q.contains("datetime(2025-10-07T00:00:00Z)") && q.contains("datetime(2025-10-08T00:00:00Z)"), "{q}");
        assert!(q.contains("bin(ts, 5m)") && q.contains("node in (\"OrderService\")"), "{q}");
    }
}
