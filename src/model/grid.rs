//! The time grid (§1): bins, bin size and unit, optional aligned UTC start, and bin/time math.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Serialize;

pub const MAX_BINS: u32 = 1_000_000;
pub const MAX_BIN_SIZE: u32 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BinUnit {
    Minutes,
    Hours,
    Days,
    Weeks,
}

impl BinUnit {
    pub fn parse(s: &str) -> Option<BinUnit> {
        Some(match s.to_ascii_lowercase().as_str() {
            "minutes" => BinUnit::Minutes,
            "hours" => BinUnit::Hours,
            "days" => BinUnit::Days,
            "weeks" => BinUnit::Weeks,
            _ => return None,
        })
    }

    pub fn minutes(self) -> u64 {
        match self {
            BinUnit::Minutes => 1,
            BinUnit::Hours => 60,
            BinUnit::Days => 1440,
            BinUnit::Weeks => 10080,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BinUnit::Minutes => "minutes",
            BinUnit::Hours => "hours",
            BinUnit::Days => "days",
            BinUnit::Weeks => "weeks",
        }
    }
}

/// A validated grid. `start` is minutes since 1970-01-01T00:00Z, aligned to `bin_minutes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Grid {
    pub bins: u32,
    pub bin_size: u32,
    pub bin_unit: BinUnit,
    pub start_minutes: Option<i64>,
}

impl Grid {
    pub fn bin_minutes(&self) -> u64 {
        self.bin_size as u64 * self.bin_unit.minutes()
    }

    pub fn len(&self) -> usize {
        self.bins as usize
    }

    /// Whether two grids cover the same bins (`60 minutes` and `1 hours` do).
    pub fn same_window(&self, other: &Grid) -> bool {
        self.bins == other.bins
            && self.bin_minutes() == other.bin_minutes()
            && self.start_minutes == other.start_minutes
    }

    /// `bins × minutes from start` for messages.
    pub fn describe(&self) -> String {
        match self.start_utc() {
            Some(s) => format!("{} × {} min from {s}", self.bins, self.bin_minutes()),
            None => format!("{} × {} min (no start)", self.bins, self.bin_minutes()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bins == 0
    }

    /// Validates the grid rules of §1; the error says what is wrong and how to fix it.
    pub fn new(bins: i64, bin_size: i64, bin_unit: BinUnit, start: Option<&str>) -> Result<Grid, String> {
        if !(1..=MAX_BINS as i64).contains(&bins) {
            return Err(format!("grid.bins must be between 1 and {MAX_BINS}, got {bins}"));
        }
        if !(1..=MAX_BIN_SIZE as i64).contains(&bin_size) {
            return Err(format!("grid.binSize must be between 1 and {MAX_BIN_SIZE}, got {bin_size}"));
        }
        let mut grid = Grid { bins: bins as u32, bin_size: bin_size as u32, bin_unit, start_minutes: None };
        if let Some(s) = start {
            let minutes = parse_utc_minutes(s)?;
            let bm = grid.bin_minutes() as i64;
            if minutes.rem_euclid(bm) != 0 {
                let before = minutes - minutes.rem_euclid(bm);
                return Err(format!(
                    "grid.start {s} is not aligned to the {bm}-minute bin grid; the nearest aligned starts are {} and {}",
                    format_minutes(before),
                    format_minutes(before + bm)
                ));
            }
            let end = minutes + bm * bins;
            let max_end =
                Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).single().map(|d| d.timestamp() / 60).unwrap_or(i64::MAX);
            if end > max_end {
                return Err(format!("the grid window ends after 9999-12-31 ({} bins of {bm} minutes from {s})", bins));
            }
            grid.start_minutes = Some(minutes);
        }
        Ok(grid)
    }

    /// Start of bin `t` as minutes since the epoch.
    pub fn bin_start(&self, t: i64) -> Option<i64> {
        self.start_minutes.map(|s| s + t * self.bin_minutes() as i64)
    }

    pub fn start_utc(&self) -> Option<String> {
        self.start_minutes.map(format_minutes)
    }

    /// JSON form used in artifacts and replies: always includes `binMinutes`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("bins".into(), self.bins.into());
        m.insert("binSize".into(), self.bin_size.into());
        m.insert("binUnit".into(), self.bin_unit.name().into());
        m.insert("binMinutes".into(), self.bin_minutes().into());
        if let Some(s) = self.start_utc() {
            m.insert("start".into(), s.into());
        }
        serde_json::Value::Object(m)
    }
}

/// Parses an RFC 3339 timestamp ending in `Z` with whole minutes, to minutes since the epoch.
pub fn parse_utc_minutes(s: &str) -> Result<i64, String> {
    let (secs, nanos) = parse_utc_seconds(s)?;
    if secs.rem_euclid(60) != 0 || nanos != 0 {
        return Err(format!("timestamp `{s}` must be a whole minute"));
    }
    Ok(secs.div_euclid(60))
}

/// Parses an RFC 3339 timestamp ending in `Z` to (seconds since the epoch, nanoseconds).
pub fn parse_utc_seconds(s: &str) -> Result<(i64, u32), String> {
    if !s.ends_with('Z') && !s.ends_with('z') {
        return Err(format!("timestamp `{s}` must be UTC and end in `Z`, e.g. 2025-10-07T00:00:00Z"));
    }
    let dt = DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("`{s}` is not an RFC 3339 timestamp ({e}); expected e.g. 2025-10-07T00:00:00Z"))?;
    Ok((dt.timestamp(), dt.timestamp_subsec_nanos()))
}

/// Formats minutes since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_minutes(m: i64) -> String {
    Utc.timestamp_opt(m * 60, 0)
        .single()
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("<minute {m}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_minutes_per_unit() {
        let g = Grid::new(3, 2, BinUnit::Hours, None).unwrap();
        assert_eq!(g.bin_minutes(), 120);
        let g = Grid::new(3, 1, BinUnit::Weeks, None).unwrap();
        assert_eq!(g.bin_minutes(), 10080);
    }

    #[test]
    fn misaligned_start_names_neighbours() {
        let err = Grid::new(3, 5, BinUnit::Minutes, Some("2025-10-07T00:03:00Z")).unwrap_err();
        assert!(err.contains("2025-10-07T00:00:00Z") && err.contains("2025-10-07T00:05:00Z"), "{err}");
        assert!(Grid::new(3, 5, BinUnit::Minutes, Some("2025-10-07T00:05:00Z")).is_ok());
    }

    #[test]
    fn limits() {
        assert!(Grid::new(0, 1, BinUnit::Hours, None).is_err());
        assert!(Grid::new(1_000_001, 1, BinUnit::Hours, None).is_err());
        assert!(Grid::new(1, 1001, BinUnit::Hours, None).is_err());
        assert!(Grid::new(10, 1, BinUnit::Weeks, Some("9999-12-01T00:00:00Z")).is_err());
        assert!(Grid::new(1, 1, BinUnit::Hours, Some("2025-10-07T00:00:00+01:00")).is_err());
    }
}
