//! Stored telemetry series: storing one or a batch, listing and reading them, and the live cells of
//! `series:` inputs sliced to a model's window (re-sliced when their series is replaced).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::diag::Diagnostic;
use crate::engine::{InputSeries, SeriesCell};
use crate::host::{Host, HostError};
use crate::model::grid::{Grid, format_minutes};
use crate::store::{SeriesRecord, SessionRecord, StoreError, values_sha};
use crate::sys;

/// One series of a batch of stored series.
#[derive(Clone, Debug)]
pub struct StoredSeriesInput {
    pub name: String,
    pub values: Vec<f64>,
    /// Bins that were missing in the source (zero-filled), for `data_gap` warnings.
    pub gaps: Vec<u32>,
}

/// A stored series as the host shows it (without its values).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSeriesInfo {
    pub name: String,
    /// Window start (minutes since the epoch), bin width and length.
    pub start_minutes: Option<i64>,
    pub bin_minutes: u64,
    pub bins: u32,
    /// sha256 of the values (little-endian f64).
    pub sha256: String,
    pub provenance: serde_json::Value,
    /// Bins that were missing in the source (zero-filled).
    pub gaps: Vec<u32>,
    pub stored_utc: String,
}

impl From<SeriesRecord> for StoredSeriesInfo {
    fn from(r: SeriesRecord) -> StoredSeriesInfo {
        StoredSeriesInfo {
            name: r.name,
            start_minutes: r.start_minutes,
            bin_minutes: r.bin_minutes,
            bins: r.bins,
            sha256: r.blob,
            provenance: r.provenance,
            gaps: r.gaps,
            stored_utc: r.stored_utc,
        }
    }
}

impl Host {
    /// The live cell of stored series `name` sliced to `grid`'s window.
    pub(super) fn stored_cell(&mut self, name: &str, grid: &Grid) -> Result<SeriesCell, HostError> {
        let (rec, start) = self.stored_for(name, grid)?;
        // Cached cells are re-sliced (or dropped) whenever their series is replaced, so a hit
        // is always sliced from the current record.
        let key = (name.to_string(), start, grid.bins, grid.bin_minutes());
        if let Some(c) = self.stored.get(&key) {
            return Ok(*c);
        }
        let data = self.slice_stored(&rec, grid)?;
        let cell = self.new_series_cell(data, false);
        self.stored.insert(key, cell);
        Ok(cell)
    }

    /// The record of stored series `name` and `grid`'s start, which a `series:` input needs.
    fn stored_for(&self, name: &str, grid: &Grid) -> Result<(SeriesRecord, i64), HostError> {
        let rec = self.store.read()?.series(name)?.ok_or_else(|| {
            HostError::BadInput(
                Diagnostic::error("unknown_series", format!("no stored series `{name}`"))
                    .with_help("load telemetry first (`flowtime telemetry load … --db`) or use `file:`")
                    .into(),
            )
        })?;
        let Some(start) = grid.start_minutes else {
            return Err(Diagnostic::error(
                "grid_start",
                format!("`series:{name}` needs the model's grid.start to take its window"),
            )
            .into());
        };
        Ok((rec, start))
    }

    /// Stored series `name` sliced to `grid`'s window, as a fresh (uncached) input series: what a
    /// one-shot model reads.
    pub(super) fn stored_slice(&self, name: &str, grid: &Grid) -> Result<InputSeries, HostError> {
        let (rec, _) = self.stored_for(name, grid)?;
        self.slice_stored(&rec, grid)
    }

    /// The part of a stored series a model window reads, with its gaps and NaN bins re-indexed.
    /// Its fingerprint is that of the sliced values, so a shifted or re-sliced series is a new
    /// input even when the stored values are the same.
    pub(super) fn slice_stored(&self, rec: &SeriesRecord, grid: &Grid) -> Result<InputSeries, HostError> {
        let first = Self::slice_first(rec, grid)?;
        let values = self.series_blob(rec)?;
        let values: Vec<f64> = values[first..first + grid.len()].to_vec();
        let range = first as u32..(first + grid.len()) as u32;
        let gaps: Vec<u32> = rec.gaps.iter().filter(|g| range.contains(g)).map(|g| g - first as u32).collect();
        let nans: Vec<u32> = values.iter().enumerate().filter(|(_, v)| v.is_nan()).map(|(i, _)| i as u32).collect();
        let sha = if first == 0 && values.len() == rec.bins as usize { rec.blob.clone() } else { values_sha(&values) };
        Ok(InputSeries { values: values.into(), gaps: gaps.into(), nans: nans.into(), sha256: sha.into() })
    }

    /// The first bin of `rec` that `grid`'s window reads, or the `grid_mismatch` error.
    fn slice_first(rec: &SeriesRecord, grid: &Grid) -> Result<usize, HostError> {
        let model_start = grid.start_minutes.unwrap_or(0);
        let bm = grid.bin_minutes();
        let window = |start: Option<i64>, bins: u32, bm: u64| match start {
            Some(s) => format!("{} + {bins} × {bm} min", format_minutes(s)),
            None => format!("{bins} × {bm} min (no start)"),
        };
        let mismatch = || {
            HostError::BadInput(
                Diagnostic::error(
                    "grid_mismatch",
                    format!(
                        "stored series `{}` covers {}, but the model needs {}",
                        rec.name,
                        window(rec.start_minutes, rec.bins, rec.bin_minutes),
                        window(grid.start_minutes, grid.bins, bm)
                    ),
                )
                .with_help("load telemetry for the model's window and bin size, or change the model's grid")
                .into(),
            )
        };
        let Some(rs) = rec.start_minutes else { return Err(mismatch()) };
        if rec.bin_minutes != bm {
            return Err(mismatch());
        }
        let offset = model_start - rs;
        if offset < 0 || offset % bm as i64 != 0 {
            return Err(mismatch());
        }
        let first = (offset / bm as i64) as usize;
        if first + grid.len() > rec.bins as usize {
            return Err(mismatch());
        }
        Ok(first)
    }

    /// Stores (or replaces) a telemetry series. Sessions reading it see the new values: only the
    /// units downstream of it re-evaluate.
    pub fn put_series(
        &mut self,
        name: &str,
        values: &[f64],
        start_minutes: Option<i64>,
        bin_minutes: u64,
        provenance: serde_json::Value,
    ) -> Result<bool, HostError> {
        let item = StoredSeriesInput { name: name.to_string(), values: values.to_vec(), gaps: Vec::new() };
        Ok(!self.put_series_batch(std::slice::from_ref(&item), start_minutes, bin_minutes, provenance)?.is_empty())
    }

    /// Stores many series of one window: values are staged in transactions of bounded size
    /// (content-addressed blobs, invisible until referenced), then every record is published in
    /// one transaction, so readers see all of the load or none of it. Returns the names whose
    /// content changed.
    pub fn put_series_batch(
        &mut self,
        items: &[StoredSeriesInput],
        start_minutes: Option<i64>,
        bin_minutes: u64,
        provenance: serde_json::Value,
    ) -> Result<Vec<String>, HostError> {
        for it in items {
            let name = &it.name;
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '@'))
            {
                return Err(Diagnostic::error(
                    "bad_id",
                    format!("series name `{name}` must be letters, digits, `_`, `-`, `.`, `/` or `@`"),
                )
                .into());
            }
        }
        for it in items {
            check_window(&it.name, it.values.len(), start_minutes, bin_minutes)?;
        }
        let now = sys::now_utc();
        let mut records = Vec::new();
        {
            let r = self.store.read()?;
            for it in items {
                let rec = SeriesRecord {
                    name: it.name.clone(),
                    start_minutes,
                    bin_minutes,
                    bins: it.values.len() as u32,
                    blob: values_sha(&it.values),
                    provenance: provenance.clone(),
                    gaps: it.gaps.clone(),
                    stored_utc: now.clone(),
                };
                let old = r.series(&it.name)?;
                let same_values = old.as_ref().is_some_and(|o| {
                    o.blob == rec.blob
                        && o.start_minutes == rec.start_minutes
                        && o.bin_minutes == rec.bin_minutes
                        && o.gaps == rec.gaps
                });
                // A reload that only refreshes provenance rewrites the record but changes no
                // reader: no blob to stage, no revision, no recomputation.
                if !same_values {
                    records.push((rec, Some(&it.values[..])));
                } else if old.is_some_and(|o| o.provenance != rec.provenance) {
                    records.push((rec, None));
                }
            }
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        // Every live reader must still find its window in the new record: a replacement that
        // would strand an open session is refused before anything is written. Cached slices no
        // open scenario reads are dropped instead (the next reader slices afresh).
        let mut stale = Vec::new();
        for (rec, _) in records.iter().filter(|(_, v)| v.is_some()) {
            for (key, cell) in self.stored.iter().filter(|(k, _)| k.0 == rec.name) {
                let Err(e) = Self::slice_first(rec, &reader_grid(key)) else { continue };
                let users: Vec<String> = self
                    .sessions
                    .iter()
                    .flat_map(|(id, s)| {
                        let own = s.inputs.values().any(|c| c == cell).then(|| id.clone());
                        let vars = s
                            .variants
                            .iter()
                            .filter(|(_, v)| v.inputs.values().any(|c| c == cell))
                            .map(move |(n, _)| format!("{id}/{n}"));
                        own.into_iter().chain(vars)
                    })
                    .collect();
                if users.is_empty() {
                    stale.push(key.clone());
                    continue;
                }
                return Err(HostError::FailedPrecondition(format!(
                    "replacing stored series `{}` would strand {} reading it: {e}; close them first or \
                     load values that cover their window",
                    rec.name,
                    users.join(", ")
                )));
            }
        }
        // Stage the values in transactions of about 32 MiB.
        const STAGE_VALUES: usize = 4 << 20;
        let mut i = 0;
        while i < records.len() {
            let mut j = i;
            let mut size = 0;
            let len = |j: usize| records[j].1.map_or(0, <[f64]>::len);
            while j < records.len() && (j == i || size + len(j) <= STAGE_VALUES) {
                size += len(j);
                j += 1;
            }
            let chunk = &records[i..j];
            self.store.write(|w| {
                for v in chunk.iter().filter_map(|(_, v)| *v) {
                    w.put_blob(v)?;
                }
                Ok(())
            })?;
            i = j;
        }
        // Sessions whose inputs read these series get a new revision in the publishing transaction.
        let keys: BTreeSet<String> =
            records.iter().filter(|(_, v)| v.is_some()).map(|(r, _)| format!("series:{}", r.name)).collect();
        let affected: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.inputs.keys().any(|k| keys.contains(k))
                    || s.variants.values().any(|v| v.inputs.keys().any(|k| keys.contains(k)))
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut sessions: Vec<SessionRecord> =
            affected.iter().filter_map(|id| self.sessions.get(id).map(|s| s.record.clone())).collect();
        for r in &mut sessions {
            r.revision += 1;
        }
        self.store.write(|w| {
            for (r, _) in &records {
                w.put_series(r)?;
            }
            for r in &sessions {
                w.put_session(r)?;
            }
            Ok(())
        })?;
        for r in sessions {
            if let Some(s) = Arc::make_mut(&mut self.sessions).get_mut(&r.id) {
                s.record = r;
            }
        }
        for key in stale {
            if let Some(cell) = self.stored.remove(&key) {
                self.release_series_cell(cell);
            }
        }
        let mut changed = Vec::new();
        for (rec, _) in records.iter().filter(|(_, v)| v.is_some()) {
            changed.push(rec.name.clone());
            let live: Vec<(StoredKey, SeriesCell)> =
                self.stored.iter().filter(|(k, _)| k.0 == rec.name).map(|(k, c)| (k.clone(), *c)).collect();
            for (key, cell) in live {
                // Checked above: every remaining reader's window is covered.
                let data = self.slice_stored(rec, &reader_grid(&key))?;
                cell.update(&mut self.db, data);
            }
        }
        // A replaced series may have held the last reference to its old values.
        self.after_change();
        Ok(changed)
    }

    /// Replaying stored telemetry with a template version: each `series` parameter not in
    /// `given` whose default is `file:…/<stem>.csv` and whose `<stem>` is a stored series, with
    /// the reference `series:<stem>`, in name order. The same template then replays its files or
    /// loaded Gold telemetry.
    pub fn stored_telemetry_bindings(
        &mut self,
        id: &str,
        version: &str,
        given: &std::collections::BTreeMap<String, crate::model::template::Supplied>,
    ) -> Result<Vec<(String, String)>, HostError> {
        let decls = self.template_entry(id, version)?.decls;
        let stored: BTreeSet<String> = self.store.read()?.series_list()?.into_iter().map(|s| s.name).collect();
        let mut out = Vec::new();
        for d in decls.iter().filter(|d| !given.contains_key(&d.name)) {
            let Some(crate::model::params::ParamValue::Series(default)) = &d.default else {
                continue;
            };
            let stem = default
                .strip_prefix("file:")
                .and_then(|rel| rel.rsplit('/').next())
                .and_then(|f| f.strip_suffix(".csv"));
            if let Some(stem) = stem
                && stored.contains(stem)
            {
                out.push((d.name.clone(), format!("series:{stem}")));
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn stored_series(&self) -> Result<Vec<StoredSeriesInfo>, HostError> {
        Ok(self.store.read()?.series_list()?.into_iter().map(StoredSeriesInfo::from).collect())
    }

    pub fn stored_series_values(&self, name: &str) -> Result<(StoredSeriesInfo, Vec<f64>), HostError> {
        let r = self.store.read()?;
        let Some(rec) = r.series(name)? else {
            let names: Vec<String> = r.series_list()?.into_iter().map(|s| s.name).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let hint = match crate::model::doc::closest(name, &refs) {
                Some(n) => format!("; did you mean `{n}`?"),
                None if refs.is_empty() => " (no series are stored)".to_string(),
                None => String::new(),
            };
            return Err(HostError::NotFound(format!("stored series `{name}` not found{hint}")));
        };
        drop(r);
        let v = self.series_blob(&rec)?;
        Ok((rec.into(), v))
    }

    /// The values of a stored series: a record whose blob is missing, or has another length than
    /// the record says, is damage in the store.
    fn series_blob(&self, rec: &SeriesRecord) -> Result<Vec<f64>, HostError> {
        let what = || format!("stored series `{}`", rec.name);
        let values = self.store.read()?.blob(&rec.blob).map_err(|e| match e {
            StoreError::NotFound(w) => StoreError::data_loss(what(), format!("references {w}, which is not stored")),
            other => other,
        });
        let values = values.map_err(|e| HostError::from(e.at(&self.file())))?;
        if values.len() != rec.bins as usize {
            let problem = format!("is damaged: it has {} bins but its values are {} long", rec.bins, values.len());
            return Err(StoreError::data_loss(what(), problem).at(&self.file()).into());
        }
        Ok(values)
    }
}

/// A stored series' window must be one a model grid could read (§1): 1 to `MAX_BINS` bins of at
/// most `MAX_BIN_SIZE` weeks, ending by 9999-12-31.
fn check_window(name: &str, bins: usize, start: Option<i64>, bin_minutes: u64) -> Result<(), HostError> {
    use crate::model::grid::{BinUnit, MAX_BIN_SIZE, MAX_BINS};
    let bad = |what: String| -> Result<(), HostError> {
        Err(Diagnostic::error("bad_window", format!("stored series `{name}`: {what}"))
            .with_help("store series a model grid can read (see grid.bins, grid.binSize, grid.start)")
            .into())
    };
    let max_bin = u64::from(MAX_BIN_SIZE) * BinUnit::Weeks.minutes();
    if !(1..=max_bin).contains(&bin_minutes) {
        return bad(format!("bin_minutes must be between 1 and {max_bin} ({MAX_BIN_SIZE} weeks), got {bin_minutes}"));
    }
    if !(1..=MAX_BINS as usize).contains(&bins) {
        return bad(format!("it must have between 1 and {MAX_BINS} values, got {bins}"));
    }
    if let Some(start) = start {
        let end = (bins as i64).checked_mul(bin_minutes as i64).and_then(|w| start.checked_add(w));
        let max_end = crate::model::grid::parse_utc_minutes("9999-12-31T00:00:00Z").unwrap_or(i64::MAX);
        let min_start = crate::model::grid::parse_utc_minutes("0001-01-01T00:00:00Z").unwrap_or(i64::MIN);
        if start < min_start || end.is_none_or(|e| e > max_end) {
            return bad(format!(
                "its window ({bins} bins of {bin_minutes} minutes) must lie within 0001-01-01 and 9999-12-31"
            ));
        }
    }
    Ok(())
}

/// A cached `series:` cell: stored name, window start (minutes), bins, bin minutes.
pub(crate) type StoredKey = (String, i64, u32, u64);

/// The window a cached `series:` cell was sliced for.
fn reader_grid(key: &StoredKey) -> Grid {
    Grid {
        bins: key.2,
        bin_size: key.3 as u32,
        bin_unit: crate::model::grid::BinUnit::Minutes,
        start_minutes: Some(key.1),
    }
}
