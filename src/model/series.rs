//! Series references (§4) and the series CSV format: parsing `file:`/`series:`/node references,
//! the path-escape rule, and reading `bin_index,value` CSV text into a grid-length series.

use std::fmt;

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::grid::{Grid, parse_utc_minutes};

/// A parsed series reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeriesRef {
    /// `file:` with a normalised path relative to the data root.
    File(String),
    /// `series:<name>`: stored telemetry.
    Stored(String),
    /// `snapshot:<sha256>`: stored values addressed by content (what a binding of uploaded values
    /// to a series parameter becomes).
    Snapshot(String),
    /// A node or synthesised series id.
    Node(String),
    /// `self`: the queue the engine synthesises (only for `queueDepth`).
    SelfQueue,
}

impl fmt::Display for SeriesRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeriesRef::File(p) => write!(f, "file:{p}"),
            SeriesRef::Stored(n) => write!(f, "series:{n}"),
            SeriesRef::Snapshot(h) => write!(f, "snapshot:{h}"),
            SeriesRef::Node(n) => f.write_str(n),
            SeriesRef::SelfQueue => f.write_str("self"),
        }
    }
}

pub fn is_valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a reference. The error explains the accepted forms.
pub fn parse_ref(s: &str) -> Result<SeriesRef, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("file://").or_else(|| s.strip_prefix("file:")) {
        return normalise_path(rest).map(SeriesRef::File);
    }
    if let Some(name) = s.strip_prefix("series:") {
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')) {
            return Err(format!("`{s}` is not a valid stored series name (letters, digits, `_`, `-`, `.`, `/`)"));
        }
        return Ok(SeriesRef::Stored(name.to_string()));
    }
    if let Some(h) = s.strip_prefix("snapshot:") {
        let h = h.trim();
        if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
            return Err(format!("`{s}` is not a snapshot reference (`snapshot:` and 64 lowercase hex digits)"));
        }
        return Ok(SeriesRef::Snapshot(h.to_string()));
    }
    if s == "self" {
        return Ok(SeriesRef::SelfQueue);
    }
    if is_valid_id(s) {
        return Ok(SeriesRef::Node(s.to_string()));
    }
    let hint = if s.ends_with(".csv") { format!("; did you mean `file:{s}`?") } else { String::new() };
    Err(format!("`{s}` is not a series reference: use `file:path.csv`, `series:name` or a node id{hint}"))
}

/// Normalises a relative path lexically; absolute paths and paths leaving the root are errors.
pub fn normalise_path(p: &str) -> Result<String, String> {
    let p = p.trim();
    if p.is_empty() {
        return Err("empty file path".into());
    }
    let bytes = p.as_bytes();
    if p.starts_with('/') || p.starts_with('\\') || (bytes.len() > 1 && bytes[1] == b':') {
        return Err(format!("file path `{p}` is absolute; paths are relative to the data root"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split(['/', '\\']) {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("file path `{p}` leaves the data root"));
                }
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(format!("file path `{p}` names no file"));
    }
    Ok(parts.join("/"))
}

/// Whether series id `s` matches `pattern`, where `*` matches any run of characters.
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(k) => rest = &rest[k + p.len()..],
                None => return false,
            }
        }
    }
    true
}

/// A series read from CSV, with the bins that were missing or NaN (for `data_gap` and
/// `nan_detected` warnings).
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedSeries {
    pub values: Vec<f64>,
    pub gaps: Vec<u32>,
    pub nans: Vec<u32>,
}

/// Reads a series CSV for `grid`. `label` names the file in errors.
pub fn parse_series_csv(bytes: &[u8], grid: &Grid, label: &str) -> Result<ParsedSeries, Diagnostics> {
    let err = |line: u64, msg: String, help: &str| -> Diagnostics {
        Diagnostic::error("series_csv", msg).in_file(label).at_line(line as u32, 1).with_help(help).into()
    };
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(bytes);
    let headers = rdr
        .headers()
        .map_err(|e| err(1, format!("unreadable CSV header: {e}"), "the first line must be `bin_index,value`"))?
        .clone();
    let cols: Vec<String> = headers.iter().map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase()).collect();
    let find = |names: &[&str]| cols.iter().position(|c| names.contains(&c.as_str()));
    let value_col = find(&["value"]);
    let idx_col = find(&["bin_index", "t"]);
    let ts_col = find(&["ts"]);
    let (Some(value_col), true) = (value_col, idx_col.is_some() || ts_col.is_some()) else {
        return Err(err(
            1,
            format!("CSV header is `{}`", cols.join(",")),
            "the header must be `bin_index,value`, `t,value` or `ts,value`",
        ));
    };
    if ts_col.is_some() && idx_col.is_none() && grid.start_minutes.is_none() {
        return Err(err(
            1,
            "a `ts` column needs the model's grid.start".into(),
            "add grid.start to the model, or use `bin_index,value`",
        ));
    }
    let n = grid.len();
    let mut values = vec![0.0; n];
    let mut seen = vec![0u64; n]; // line that set each bin, 0 = unset
    let mut nans = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            err(line, format!("unreadable CSV row: {e}"), "each row is `index,value`")
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.iter().all(|f| f.is_empty()) {
            continue;
        }
        let bin: i64 = if let Some(ic) = idx_col {
            let raw = rec.get(ic).unwrap_or("");
            raw.parse::<i64>().map_err(|_| {
                err(line, format!("bin index `{raw}` is not a whole number"), "bin indices are 0, 1, 2, ...")
            })?
        } else {
            let raw = rec.get(ts_col.unwrap_or(0)).unwrap_or("");
            let m = parse_utc_minutes(raw).map_err(|e| err(line, e, "timestamps look like 2025-10-07T00:05:00Z"))?;
            let start = grid.start_minutes.unwrap_or(0);
            let bm = grid.bin_minutes() as i64;
            if (m - start).rem_euclid(bm) != 0 {
                return Err(err(
                    line,
                    format!(
                        "timestamp `{raw}` is not aligned to the {bm}-minute grid starting {}",
                        grid.start_utc().unwrap_or_default()
                    ),
                    "timestamps must fall on bin starts",
                ));
            }
            (m - start).div_euclid(bm)
        };
        if bin < 0 || bin >= n as i64 {
            return Err(err(
                line,
                format!("bin {bin} is outside the grid (0..{})", n),
                "remove the row or extend grid.bins",
            ));
        }
        let b = bin as usize;
        if seen[b] != 0 {
            return Err(err(
                line,
                format!("bin {bin} appears twice (first on line {})", seen[b]),
                "keep one row per bin",
            ));
        }
        seen[b] = line.max(1);
        let raw = rec.get(value_col).unwrap_or("");
        let v = if raw.is_empty() || raw.eq_ignore_ascii_case("nan") {
            nans.push(b as u32);
            f64::NAN
        } else {
            raw.parse::<f64>().map_err(|_| {
                err(
                    line,
                    format!("value `{raw}` is not a number"),
                    "values are numbers; leave the cell empty or write NaN for unknown",
                )
            })?
        };
        values[b] = v;
    }
    nans.sort_unstable();
    let gaps = (0..n).filter(|&b| seen[b] == 0).map(|b| b as u32).collect();
    Ok(ParsedSeries { values, gaps, nans })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::grid::BinUnit;

    fn grid(bins: i64) -> Grid {
        Grid::new(bins, 5, BinUnit::Minutes, Some("2025-10-07T00:00:00Z")).unwrap()
    }

    #[test]
    fn globs() {
        assert!(glob("*", "a"));
        assert!(glob("order_*", "order_service_queue"));
        assert!(glob("*_queue", "order_service_queue"));
        assert!(glob("order*latency*", "order_service_latency_min"));
        assert!(!glob("order_*", "billing"));
        assert!(glob("served", "served"));
        assert!(!glob("served", "served2"));
        assert!(!glob("a*b", "ab_c"));
    }

    #[test]
    fn refs() {
        assert_eq!(parse_ref("file:data/a.csv"), Ok(SeriesRef::File("data/a.csv".into())));
        assert_eq!(parse_ref("file://./data/../data/a.csv"), Ok(SeriesRef::File("data/a.csv".into())));
        assert_eq!(parse_ref("series:orders_arrivals"), Ok(SeriesRef::Stored("orders_arrivals".into())));
        assert_eq!(parse_ref("served"), Ok(SeriesRef::Node("served".into())));
        assert!(parse_ref("file:../secret.csv").unwrap_err().contains("leaves the data root"));
        assert!(parse_ref("file:/etc/passwd").unwrap_err().contains("absolute"));
        assert!(parse_ref("telemetry/served.csv").unwrap_err().contains("file:telemetry/served.csv"));
    }

    #[test]
    fn csv_any_order_gaps_and_nans() {
        let s = parse_series_csv(b"bin_index,value\n2,3.5\n0,1\n3,\n", &grid(5), "x.csv").unwrap();
        assert_eq!(s.values[0], 1.0);
        assert_eq!(s.values[1], 0.0);
        assert_eq!(s.values[2], 3.5);
        assert!(s.values[3].is_nan());
        assert_eq!(s.gaps, vec![1, 4]);
        assert_eq!(s.nans, vec![3]);
    }

    #[test]
    fn csv_timestamps() {
        let s = parse_series_csv(b"ts,value\n2025-10-07T00:05:00Z,7\n", &grid(2), "x.csv").unwrap();
        assert_eq!(s.values, vec![0.0, 7.0]);
        let e = parse_series_csv(b"ts,value\n2025-10-07T00:06:00Z,7\n", &grid(2), "x.csv").unwrap_err();
        assert!(e.0[0].message.contains("not aligned") && e.0[0].line == Some(2));
    }

    #[test]
    fn csv_errors_name_file_and_line() {
        let e = parse_series_csv(b"bin_index,value\n0,1\n0,2\n", &grid(3), "data/x.csv").unwrap_err();
        let d = &e.0[0];
        assert_eq!((d.file.as_deref(), d.line), (Some("data/x.csv"), Some(3)));
        assert!(d.message.contains("twice"));
        let e = parse_series_csv(b"bin_index,value\n0,1\n9,2\n", &grid(3), "x.csv").unwrap_err();
        assert!(e.0[0].message.contains("outside the grid") && e.0[0].line == Some(3));
        let e = parse_series_csv(b"bin_index,value\n0,abc\n", &grid(3), "x.csv").unwrap_err();
        assert!(e.0[0].message.contains("not a number"));
        let e = parse_series_csv(b"when,value\n0,1\n", &grid(3), "x.csv").unwrap_err();
        assert!(e.0[0].message.contains("header"));
    }
}
