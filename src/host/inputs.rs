//! Resolving a plan's inputs to series cells: content-addressed blobs, `file:` reads pinned as
//! blobs, live stored series, overrides, and series supplied with a request but not yet stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::plan::Compiled;
use crate::engine::{InputSeries, SeriesCell};
use crate::host::{Host, HostError, read_input};
use crate::store::{InputPin, values_sha};

/// Resolved inputs: cells by key, newly pinned file inputs, and the values to store for them.
pub(super) type Resolved = (BTreeMap<String, SeriesCell>, BTreeMap<String, InputPin>, Vec<Vec<f64>>);

impl Host {
    /// Where `file:` references of sessions opened from now on resolve.
    pub fn set_data_root(&mut self, root: &std::path::Path) {
        self.data_root = root.to_path_buf();
    }

    /// The cell for content-addressed values (created on first use, then shared).
    pub(super) fn blob_cell(&mut self, sha: &str, gaps: &[u32]) -> Result<SeriesCell, HostError> {
        let key = if gaps.is_empty() { sha.to_string() } else { format!("{sha}:{gaps:?}") };
        if let Some(c) = self.blobs.get(&key) {
            return Ok(*c);
        }
        let data = self.blob_data(sha, gaps)?;
        let cell = self.new_series_cell(data, true);
        self.blobs.insert(key, cell);
        Ok(cell)
    }

    /// Content-addressed values as an input series (`gaps`: the bins missing when they were read).
    pub(super) fn blob_data(&self, sha: &str, gaps: &[u32]) -> Result<InputSeries, HostError> {
        let values = self.store.read()?.blob(sha)?;
        let nans: Vec<u32> = values.iter().enumerate().filter(|(_, v)| v.is_nan()).map(|(i, _)| i as u32).collect();
        Ok(InputSeries { values: values.into(), gaps: gaps.into(), nans: nans.into(), sha256: sha.into() })
    }

    /// Resolves every input a plan needs: pinned blobs, new file reads (pinned now), live stored
    /// series, overrides. Returns the cells and the pins to commit.
    pub(super) fn resolve_inputs(
        &mut self,
        c: &Compiled,
        pins: &BTreeMap<String, InputPin>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Resolved, HostError> {
        self.resolve_keys(c, &mut |_| true, pins, overrides)
    }

    /// `resolve_inputs` for the keys `keep` selects.
    fn resolve_keys(
        &mut self,
        c: &Compiled,
        keep: &mut dyn FnMut(&str) -> bool,
        pins: &BTreeMap<String, InputPin>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Resolved, HostError> {
        let mut cells = BTreeMap::new();
        let mut new_pins = BTreeMap::new();
        let mut new_blobs = Vec::new();
        let mut diags = Vec::new();
        for key in c.inputs.keys().filter(|k| keep(k)) {
            if let Some(node) = key.strip_prefix("override:") {
                let sha = overrides.get(node).ok_or_else(|| {
                    HostError::FailedPrecondition(format!("override of `{node}` has no stored series"))
                })?;
                cells.insert(key.clone(), self.blob_cell(sha, &[])?);
            } else if let Some(name) = key.strip_prefix("series:") {
                cells.insert(key.clone(), self.stored_cell(name, &c.grid)?);
            } else if let Some(sha) = key.strip_prefix("snapshot:") {
                cells.insert(key.clone(), self.blob_cell(sha, &[])?);
            } else if let Some(pin) = pins.get(key) {
                cells.insert(key.clone(), self.blob_cell(&pin.sha256, &pin.gaps)?);
            } else if key.starts_with("file:") {
                match read_input(key, &c.grid, &self.data_root.clone()) {
                    Ok(data) => {
                        let sha = values_sha(&data.values);
                        let pin = InputPin { sha256: sha, gaps: data.gaps.to_vec() };
                        new_blobs.push(data.values.to_vec());
                        new_pins.insert(key.clone(), pin);
                    }
                    Err(d) => diags.extend(d.0),
                }
            } else {
                diags.push(Diagnostic::error("input_missing", format!("input `{key}` cannot be resolved")));
            }
        }
        if !diags.is_empty() {
            return Err(HostError::BadInput(Diagnostics(diags)));
        }
        Ok((cells, new_pins, new_blobs))
    }

    /// Cells for newly pinned inputs, after their blobs are committed.
    pub(super) fn pin_cells(
        &mut self,
        pins: &BTreeMap<String, InputPin>,
        cells: &mut BTreeMap<String, SeriesCell>,
    ) -> Result<(), HostError> {
        for (k, pin) in pins {
            cells.insert(k.clone(), self.blob_cell(&pin.sha256, &pin.gaps)?);
        }
        Ok(())
    }

    /// Resolves inputs where overrides are given as values not yet stored.
    pub(super) fn resolve_override_aware(
        &mut self,
        c: &Compiled,
        pins: &BTreeMap<String, InputPin>,
        override_shas: &BTreeMap<String, String>,
        fresh: &BTreeMap<String, Vec<f64>>,
    ) -> Result<Resolved, HostError> {
        // Series supplied in this request are not in the store yet: resolve the rest first.
        let mut keep = |k: &str| !fresh.contains_key(k);
        let (mut cells, pins_out, blobs) = self.resolve_keys(c, &mut keep, pins, override_shas)?;
        for (key, values) in fresh {
            if !c.inputs.contains_key(key) {
                continue;
            }
            let sha = values_sha(values);
            let nans: Vec<u32> = values.iter().enumerate().filter(|(_, v)| v.is_nan()).map(|(i, _)| i as u32).collect();
            let data = InputSeries {
                values: values.clone().into(),
                gaps: Arc::from(Vec::new()),
                nans: nans.into(),
                sha256: sha.clone().into(),
            };
            let cell = match self.blobs.get(&sha) {
                Some(c) => *c,
                None => {
                    let c = self.new_series_cell(data, true);
                    self.blobs.insert(sha.clone(), c);
                    c
                }
            };
            cells.insert(key.clone(), cell);
        }
        Ok((cells, pins_out, blobs))
    }
}
