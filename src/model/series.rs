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
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '@'))
        {
            return Err(format!("`{s}` is not a valid stored series name (letters, digits, `_`, `-`, `.`, `/`, `@`)"));
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

/// At most this many row errors of one series CSV are reported.
const MAX_ROW_ERRORS: usize = 20;

/// Reads a series CSV for `grid`. `label` names the file in errors. Every bad row is reported
/// (up to [`MAX_ROW_ERRORS`], then how many more), each with its line and the column its field
/// starts at.
pub fn parse_series_csv(bytes: &[u8], grid: &Grid, label: &str) -> Result<ParsedSeries, Diagnostics> {
    let at = |line: u64, column: u32, msg: String, help: &str| -> Diagnostic {
        Diagnostic::error("series_csv", msg).in_file(label).at_line(line as u32, column.max(1)).with_help(help)
    };
    let err = |line: u64, msg: String, help: &str| -> Diagnostics { at(line, 1, msg, help).into() };
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
    let mut problems: Vec<Diagnostic> = Vec::new();
    let mut more = 0usize;
    let mut report = |d: Diagnostic| {
        if problems.len() < MAX_ROW_ERRORS {
            problems.push(d);
        } else {
            more += 1;
        }
    };
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                report(at(line, 1, format!("unreadable CSV row: {e}"), "each row is `index,value`"));
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        if rec.iter().all(|f| f.is_empty()) {
            continue;
        }
        let column = |field: usize| rec.position().map_or(1, |p| field_column(bytes, p.byte() as usize, field));
        let key_col = idx_col.or(ts_col).unwrap_or(0);
        let raw_key = rec.get(key_col).unwrap_or("");
        let bin: i64 = if idx_col.is_some() {
            match raw_key.parse::<i64>() {
                Ok(b) => b,
                Err(_) => {
                    let msg = format!("bin index `{}` is not a whole number", excerpt(raw_key));
                    report(at(line, column(key_col), msg, "bin indices are 0, 1, 2, ..."));
                    continue;
                }
            }
        } else {
            let m = match parse_utc_minutes(raw_key) {
                Ok(m) => m,
                Err(e) => {
                    report(at(line, column(key_col), e, "timestamps look like 2025-10-07T00:05:00Z"));
                    continue;
                }
            };
            let start = grid.start_minutes.unwrap_or(0);
            let bm = grid.bin_minutes() as i64;
            if (m - start).rem_euclid(bm) != 0 {
                let msg = format!(
                    "timestamp `{raw_key}` is not aligned to the {bm}-minute grid starting {}",
                    grid.start_utc().unwrap_or_default()
                );
                report(at(line, column(key_col), msg, "timestamps must fall on bin starts"));
                continue;
            }
            (m - start).div_euclid(bm)
        };
        if bin < 0 || bin >= n as i64 {
            let msg = format!("bin {bin} is outside the grid (0..{n})");
            report(at(line, column(key_col), msg, "remove the row or extend grid.bins"));
            continue;
        }
        let b = bin as usize;
        if seen[b] != 0 {
            let msg = format!("bin {bin} appears twice (first on line {})", seen[b]);
            report(at(line, column(key_col), msg, "keep one row per bin"));
            continue;
        }
        seen[b] = line.max(1);
        let raw = rec.get(value_col).unwrap_or("");
        let v = if raw.is_empty() || raw.eq_ignore_ascii_case("nan") {
            nans.push(b as u32);
            f64::NAN
        } else {
            match raw.parse::<f64>() {
                Ok(v) => v,
                Err(_) => {
                    report(at(
                        line,
                        column(value_col),
                        format!("value `{}` is not a number", excerpt(raw)),
                        "values are numbers; leave the cell empty or write NaN for unknown",
                    ));
                    continue;
                }
            }
        };
        values[b] = v;
    }
    if !problems.is_empty() {
        if more > 0 {
            problems.push(
                Diagnostic::error("series_csv", format!("… and {more} more bad rows"))
                    .in_file(label)
                    .with_help("fix the rows above first"),
            );
        }
        return Err(Diagnostics(problems));
    }
    nans.sort_unstable();
    let gaps = (0..n).filter(|&b| seen[b] == 0).map(|b| b as u32).collect();
    Ok(ParsedSeries { values, gaps, nans })
}

/// The 1-based character column where field `field` of the record starting at byte `start`
/// begins (delimiters inside double quotes do not count).
fn field_column(bytes: &[u8], start: usize, field: usize) -> u32 {
    let line = bytes.get(start..).unwrap_or_default();
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let (mut quoted, mut seen, mut at) = (false, 0, 0);
    for (i, &b) in line.iter().enumerate() {
        if seen == field {
            at = i;
            break;
        }
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                seen += 1;
                at = i + 1;
            }
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(&line[..at.min(line.len())]);
    text.chars().count() as u32 + 1
}

/// Input quoted in a message: at most 40 characters.
fn excerpt(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::grid::BinUnit;

    fn grid(bins: i64) -> Grid {
        Grid::new(bins, 5, BinUnit::Minutes, Some("2025-10-07T00:00:00Z")).unwrap()
    }

    #[test]
    fn every_bad_row_is_reported_with_the_column_of_its_field() {
        let csv = b"bin_index,value\n0,1\n1,abc\nx,2\n2,\"3\"\n2,4\n";
        let d = parse_series_csv(csv, &grid(4), "s.csv").unwrap_err();
        let got: Vec<(Option<u32>, Option<u32>, &str)> =
            d.0.iter().map(|x| (x.line, x.column, x.message.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Some(3), Some(3), "value `abc` is not a number"),
                (Some(4), Some(1), "bin index `x` is not a whole number"),
                (Some(6), Some(1), "bin 2 appears twice (first on line 5)"),
            ]
        );
        // Past the limit, the rest are counted.
        let many: String = (0..30).map(|i| format!("{i},v{i}\n")).collect();
        let d = parse_series_csv(format!("bin_index,value\n{many}").as_bytes(), &grid(40), "s.csv").unwrap_err();
        assert_eq!(d.0.len(), MAX_ROW_ERRORS + 1);
        assert_eq!(d.0.last().unwrap().message, "… and 10 more bad rows");
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
