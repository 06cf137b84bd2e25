//! Sessions and variants (§10): a session pins a stored template version, parameter values and
//! input series; a variant is a named set of overrides on a session. Both are persisted, rebuilt
//! on open, and evaluated incrementally; comparison reports series outside every difference's
//! downstream cone as identical without evaluating them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use salsa::Setter;

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::db::{self as edb, unit_keys};
use crate::engine::plan::{Compiled, compile};
use crate::engine::{Evaluation, InputSeries, ParamCell, Scenario, SeriesCell};
use crate::host::{Host, HostError, read_input};
use crate::model::doc::{NodeDef, read_document, read_parameters};
use crate::model::grid::{Grid, format_minutes};
use crate::model::params::{ParamDecl, ParamValue};
use crate::model::template::{Supplied, bind};
use crate::model::yaml;
use crate::store::{InputPin, SeriesRecord, SessionRecord, TemplateRecord, VariantRecord, values_sha};
use crate::sys;

#[derive(Clone, Debug)]
pub(crate) struct TemplateEntry {
    pub(crate) record: TemplateRecord,
    pub(crate) decls: Arc<Vec<ParamDecl>>,
}

#[derive(Clone, Debug)]
pub(crate) struct SessionState {
    pub(crate) record: SessionRecord,
    pub(crate) params: BTreeMap<String, ParamValue>,
    pub(crate) cells: BTreeMap<String, ParamCell>,
    /// Input key → cell (file pins, live stored series, overrides).
    pub(crate) inputs: BTreeMap<String, SeriesCell>,
    pub(crate) scenario: Scenario,
    pub(crate) variants: BTreeMap<String, VariantState>,
}

impl SessionState {
    /// A copy without the variants (cheap: a session may have thousands of variants).
    fn head(&self) -> SessionState {
        SessionState {
            record: self.record.clone(),
            params: self.params.clone(),
            cells: self.cells.clone(),
            inputs: self.inputs.clone(),
            scenario: self.scenario,
            variants: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct VariantState {
    pub(crate) record: VariantRecord,
    /// Effective values (session values with the overrides applied).
    pub(crate) params: BTreeMap<String, ParamValue>,
    /// Cells of overridden parameters; the rest are the session's cells, shared.
    pub(crate) own_cells: BTreeMap<String, ParamCell>,
    /// Inputs this variant adds or replaces.
    pub(crate) inputs: BTreeMap<String, SeriesCell>,
    pub(crate) scenario: Scenario,
}

/// `session` or `session/variant`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub session: String,
    pub variant: Option<String>,
}

impl Target {
    pub fn parse(s: &str) -> Target {
        match s.split_once('/') {
            Some((a, b)) => Target { session: a.to_string(), variant: Some(b.to_string()) },
            None => Target { session: s.to_string(), variant: None },
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.variant {
            Some(v) => write!(f, "{}/{v}", self.session),
            None => f.write_str(&self.session),
        }
    }
}

/// What a client asks for when opening a session.
#[derive(Clone, Debug, Default)]
pub struct OpenRequest {
    pub template_id: String,
    pub template_version: String,
    pub params: BTreeMap<String, Supplied>,
    /// Series bound at open: const node id → values (exactly `bins` of them).
    pub series: BTreeMap<String, Vec<f64>>,
    /// Session id; generated when None.
    pub id: Option<String>,
    pub tenant: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SessionInfo {
    pub id: String,
    pub template_id: String,
    pub template_version: String,
    pub params: BTreeMap<String, ParamValue>,
    pub inputs: Vec<String>,
    pub overrides: Vec<String>,
    pub tenant: Option<String>,
    pub revision: u64,
    pub variants: Vec<String>,
    pub created_utc: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VariantInfo {
    pub session: String,
    pub name: String,
    /// Only the overridden parameters.
    pub params: BTreeMap<String, ParamValue>,
    /// Const nodes whose series are overridden.
    pub series: Vec<String>,
    pub revision: u64,
    pub created_utc: String,
}

/// One series of a batch of stored series.
#[derive(Clone, Debug)]
pub struct StoredSeriesInput {
    pub name: String,
    pub values: Vec<f64>,
    /// Bins that were missing in the source (zero-filled), for `data_gap` warnings.
    pub gaps: Vec<u32>,
}

/// A run written by [`RunMaterial::write`].
#[derive(Clone, Debug)]
/// A target evaluated for a run, not yet written (see [`View::run_material`]).
pub struct RunMaterial {
    pub target: String,
    pub template_id: String,
    pub template_version: String,
    pub tenant: Option<String>,
    params: BTreeMap<String, ParamValue>,
    inputs: BTreeMap<String, InputSeries>,
    ev: Evaluation,
    warnings: Vec<crate::engine::warnings::Warning>,
}

impl RunMaterial {
    /// Writes (or reuses) the run directory under `runs`; `text` is the template's text.
    pub fn write(self, text: &str, runs: &std::path::Path) -> Result<RunCreated, HostError> {
        let out = crate::artifacts::write_run(
            runs,
            &crate::artifacts::RunInput {
                text,
                params: &self.params,
                inputs: &self.inputs,
                evaluation: &self.ev,
                warnings: &self.warnings,
                tenant: self.tenant.as_deref(),
            },
        )?;
        let record = crate::store::RunRecord {
            id: out.run_id.clone(),
            dir: out.dir.display().to_string(),
            summary: serde_json::json!({
                "runHash": out.run_hash,
                "target": self.target,
                "templateId": self.ev.compiled.document.meta.id,
                "templateVersion": self.ev.compiled.document.meta.version,
                "tenant": self.tenant,
                "series": self.ev.compiled.outputs.len(),
                "warnings": self.warnings.len(),
            }),
        };
        Ok(RunCreated {
            output: out,
            record,
            warnings: self.warnings,
            accounting: self.ev.accounting,
            grid: self.ev.compiled.grid,
        })
    }
}

pub struct RunCreated {
    pub output: crate::artifacts::RunOutput,
    pub record: crate::store::RunRecord,
    pub warnings: Vec<crate::engine::warnings::Warning>,
    pub accounting: crate::engine::Accounting,
    pub grid: Grid,
}

/// One series compared between two operands.
#[derive(Clone, Debug)]
pub struct SeriesDiff {
    pub id: String,
    /// True when the series was not downstream of any difference (not evaluated).
    pub identical_by_construction: bool,
    pub a: Option<crate::engine::Series>,
    pub b: Option<crate::engine::Series>,
    pub max_abs_diff: f64,
    pub bins_differ: Vec<u32>,
    pub total_a: f64,
    pub total_b: f64,
}

#[derive(Clone, Debug)]
pub struct Comparison {
    pub series: Vec<SeriesDiff>,
    pub accounting: crate::engine::Accounting,
}

fn supplied_from(values: &BTreeMap<String, ParamValue>) -> BTreeMap<String, Supplied> {
    values.iter().map(|(k, v)| (k.clone(), Supplied::Yaml(v.to_yaml()))).collect()
}

fn to_json(values: &BTreeMap<String, ParamValue>) -> BTreeMap<String, serde_json::Value> {
    values.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()
}

fn from_json(
    decls: &[ParamDecl],
    values: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, ParamValue>, HostError> {
    let mut out = BTreeMap::new();
    for (k, v) in values {
        let d = decls.iter().find(|d| &d.name == k).ok_or_else(|| {
            HostError::Store(crate::store::StoreError::Storage(format!(
                "stored parameter `{k}` is not declared by its template"
            )))
        })?;
        let y: yaml_serde::Value =
            yaml_serde::to_value(v).map_err(|e| HostError::Store(crate::store::StoreError::Storage(e.to_string())))?;
        let pv = d
            .value_from_yaml(&y)
            .map_err(|e| HostError::Store(crate::store::StoreError::Storage(format!("stored parameter `{k}`: {e}"))))?;
        out.insert(k.clone(), pv);
    }
    Ok(out)
}

/// Compiles without salsa (to validate a change before anything is committed).
fn plan(
    text: &str,
    params: &BTreeMap<String, ParamValue>,
    overrides: &BTreeSet<String>,
) -> Result<Compiled, Diagnostics> {
    plan_recording(text, params, overrides).map(|(c, _)| c)
}

/// A parameter lookup that remembers what it was asked: the structural parameters.
struct Recording<'a> {
    values: &'a BTreeMap<String, ParamValue>,
    read: std::cell::RefCell<BTreeSet<String>>,
}

impl crate::model::doc::ParamLookup for Recording<'_> {
    fn value(&self, name: &str) -> Option<ParamValue> {
        self.read.borrow_mut().insert(name.to_string());
        self.values.get(name).cloned()
    }
}

/// The structural parameters a plan read, with the values it saw.
type StructuralReads = Vec<(String, Option<ParamValue>)>;

/// One cached plan: the structural reads and override set it was compiled with.
type CachedPlan = (StructuralReads, BTreeSet<String>, Arc<Compiled>);

/// Resolved inputs: cells by key, newly pinned file inputs, and the values to store for them.
type Resolved = (BTreeMap<String, SeriesCell>, BTreeMap<String, InputPin>, Vec<Vec<f64>>);

/// Compiles and returns the structural parameters the plan depends on, with their values.
fn plan_recording(
    text: &str,
    params: &BTreeMap<String, ParamValue>,
    overrides: &BTreeSet<String>,
) -> Result<(Compiled, StructuralReads), Diagnostics> {
    let doc = yaml::parse(text).map_err(Diagnostics::one)?;
    let lookup = Recording { values: params, read: Default::default() };
    let document = read_document(&doc, &lookup)?;
    let reads = lookup.read.into_inner().into_iter().map(|k| (k.clone(), params.get(&k).cloned())).collect();
    Ok((compile(Arc::new(document), overrides)?, reads))
}

/// Plans already compiled, per template: a plan depends only on the text, the values of the
/// parameters read structurally, and the set of overridden nodes, so scenarios that agree on
/// those (e.g. variants overriding only evaluable parameters) share one plan.
#[derive(Default)]
pub(crate) struct PlanCache {
    entries: BTreeMap<String, Vec<CachedPlan>>,
}

impl PlanCache {
    const PER_TEMPLATE: usize = 32;

    pub(crate) fn get(
        &mut self,
        sha: &str,
        text: &str,
        params: &BTreeMap<String, ParamValue>,
        overrides: &BTreeSet<String>,
    ) -> Result<Arc<Compiled>, Diagnostics> {
        let list = self.entries.entry(sha.to_string()).or_default();
        if let Some((_, _, c)) = list
            .iter()
            .find(|(reads, ovr, _)| ovr == overrides && reads.iter().all(|(k, v)| params.get(k) == v.as_ref()))
        {
            return Ok(c.clone());
        }
        let (c, reads) = plan_recording(text, params, overrides)?;
        let c = Arc::new(c);
        if list.len() >= Self::PER_TEMPLATE {
            list.remove(0);
        }
        list.push((reads, overrides.clone(), c.clone()));
        Ok(c)
    }
}

/// Checks override targets (const nodes) and their lengths.
fn check_series_overrides(c: &Compiled, series: &BTreeMap<String, Vec<f64>>) -> Result<(), HostError> {
    let mut diags = Vec::new();
    let bins = c.grid.len();
    for (target, values) in series {
        let node = c.document.nodes.iter().find(|n| &n.id == target);
        match node.map(|n| &n.def) {
            Some(NodeDef::Values(_) | NodeDef::Source { .. }) => {}
            Some(_) => diags.push(
                Diagnostic::error(
                    "bad_override",
                    format!(
                        "`{target}` is not a const node; only const nodes and series parameters can be bound to series"
                    ),
                )
                .at_path(format!("series.{target}")),
            ),
            None => diags.push(
                Diagnostic::error("bad_override", format!("no const node `{target}` to bind a series to"))
                    .at_path(format!("series.{target}"))
                    .with_help("name a const node of the template"),
            ),
        }
        if values.len() != bins {
            diags.push(
                Diagnostic::error(
                    "series_length",
                    format!("series for `{target}` has {} values; the grid has {bins} bins", values.len()),
                )
                .at_path(format!("series.{target}"))
                .with_help(format!("supply exactly {bins} values")),
            );
        }
    }
    if diags.is_empty() { Ok(()) } else { Err(HostError::BadInput(Diagnostics(diags))) }
}

/// Series bindings split by target: parameter values, const-node series, fresh input keys.
type Bindings = (BTreeMap<String, Supplied>, BTreeMap<String, Vec<f64>>, BTreeMap<String, Vec<f64>>);

/// Splits series bindings by target: a `series` parameter takes the values as a content-addressed
/// `snapshot:` reference (returned as a parameter value); anything else is a const node override.
/// Also returns the fresh input keys (`snapshot:…`, `override:…`) with their values.
fn split_bindings(decls: &[ParamDecl], series: &BTreeMap<String, Vec<f64>>) -> Bindings {
    let mut params = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    let mut fresh = BTreeMap::new();
    for (target, values) in series {
        if decls.iter().any(|d| &d.name == target && d.ty == crate::model::params::ParamType::Series) {
            let key = format!("snapshot:{}", values_sha(values));
            params.insert(target.clone(), Supplied::Text(key.clone()));
            fresh.insert(key, values.clone());
        } else {
            nodes.insert(target.clone(), values.clone());
            fresh.insert(format!("override:{target}"), values.clone());
        }
    }
    (params, nodes, fresh)
}

/// Checks that values bound to series parameters have one value per bin.
fn check_param_bindings(
    c: &Compiled,
    params: &BTreeMap<String, Supplied>,
    series: &BTreeMap<String, Vec<f64>>,
) -> Result<(), HostError> {
    let bins = c.grid.len();
    let diags: Vec<Diagnostic> = params
        .keys()
        .filter_map(|p| {
            let n = series.get(p)?.len();
            (n != bins).then(|| {
                Diagnostic::error(
                    "series_length",
                    format!("series for parameter `{p}` has {n} values; the grid has {bins} bins"),
                )
                .at_path(format!("series.{p}"))
                .with_help(format!("supply exactly {bins} values"))
            })
        })
        .collect();
    if diags.is_empty() { Ok(()) } else { Err(HostError::BadInput(Diagnostics(diags))) }
}

/// Validates parameter overrides against the declarations and returns the effective values.
fn effective_params(
    decls: &[ParamDecl],
    base: &BTreeMap<String, ParamValue>,
    overrides: &BTreeMap<String, Supplied>,
) -> Result<BTreeMap<String, ParamValue>, HostError> {
    let mut supplied = supplied_from(base);
    for (k, v) in overrides {
        supplied.insert(k.clone(), v.clone());
    }
    Ok(bind(decls, &supplied)?)
}

impl Host {
    /// Validates and stores a template; returns `(id, version, created)`. Identical text again is
    /// a no-op; different text under a stored `(id, version)` is `AlreadyExists`.
    pub fn put_template(&mut self, text: &str, label: &str) -> Result<(String, String, bool), HostError> {
        let doc = yaml::parse(text).map_err(|d| Diagnostics::one(d.in_file(label)))?;
        let decls = read_parameters(&doc)?;
        let meta_doc = read_document(&doc, &defaults_only(&decls));
        // Validate as far as defaults allow: a template whose parameters all have defaults must compile.
        if decls.iter().all(|d| d.default.is_some()) {
            let params = bind(&decls, &BTreeMap::new())?;
            plan(text, &params, &BTreeSet::new()).map_err(|d| with_label(d, label))?;
        }
        let (id, version, title, description) = match &meta_doc {
            Ok(d) => (d.meta.id.clone(), d.meta.version.clone(), d.meta.title.clone(), d.meta.description.clone()),
            Err(_) => {
                let v = &doc.value;
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                (s("id"), s("version"), s("title"), s("description"))
            }
        };
        let (Some(id), Some(version)) = (id, version) else {
            return Err(Diagnostic::error("template_identity", "a stored template needs `id` and `version`")
                .in_file(label)
                .with_help("add e.g. id: order-system and version: \"1.0.0\"")
                .into());
        };
        let record = TemplateRecord {
            id: id.clone(),
            version: version.clone(),
            text: text.to_string(),
            sha256: crate::model::params::hex(&<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())),
            title,
            description,
            stored_utc: sys::now_utc(),
        };
        let created = self.store.write(|w| w.put_template(&record))?;
        self.template_entry(&id, &version)?;
        Ok((id, version, created))
    }

    /// Where `file:` references of sessions opened from now on resolve.
    pub fn set_data_root(&mut self, root: &std::path::Path) {
        self.data_root = root.to_path_buf();
    }

    /// The grid a stored template has with these parameter values (to read series files for it).
    pub fn template_grid(
        &mut self,
        id: &str,
        version: &str,
        params: &BTreeMap<String, Supplied>,
    ) -> Result<Grid, HostError> {
        let entry = self.template_entry(id, version)?;
        let values = bind(&entry.decls, params)?;
        let doc = yaml::parse(&entry.record.text).map_err(Diagnostics::one)?;
        Ok(read_document(&doc, &values)?.grid)
    }

    pub fn templates(&self) -> Result<Vec<TemplateRecord>, HostError> {
        Ok(self.store.read()?.templates()?)
    }

    pub fn template(&self, id: &str, version: &str) -> Result<TemplateRecord, HostError> {
        self.store
            .read()?
            .template(id, version)?
            .ok_or_else(|| HostError::NotFound(format!("template `{id}` version `{version}`")))
    }

    /// The highest stored version of template `id` (see `version_order`).
    pub fn latest_template(&self, id: &str) -> Result<Option<TemplateRecord>, HostError> {
        let mut all: Vec<TemplateRecord> = self.templates()?.into_iter().filter(|t| t.id == id).collect();
        all.sort_by(|a, b| super::version_order(&a.version, &b.version));
        Ok(all.pop())
    }

    /// The salsa input and declarations of a stored template, created on first use.
    fn template_entry(&mut self, id: &str, version: &str) -> Result<TemplateEntry, HostError> {
        let key = (id.to_string(), version.to_string());
        if let Some(e) = self.templates.get(&key) {
            return Ok(e.clone());
        }
        let record = self.template(id, version)?;
        let doc = yaml::parse(&record.text).map_err(Diagnostics::one)?;
        let decls = read_parameters(&doc)?;
        let entry = TemplateEntry { record, decls: Arc::new(decls) };
        self.templates.insert(key, entry.clone());
        Ok(entry)
    }

    /// The cell for content-addressed values (created on first use, then shared).
    pub(super) fn blob_cell(&mut self, sha: &str, gaps: &[u32]) -> Result<SeriesCell, HostError> {
        let key = if gaps.is_empty() { sha.to_string() } else { format!("{sha}:{gaps:?}") };
        if let Some(c) = self.blobs.get(&key) {
            return Ok(*c);
        }
        let values = self.store.read()?.blob(sha)?;
        let nans: Vec<u32> = values.iter().enumerate().filter(|(_, v)| v.is_nan()).map(|(i, _)| i as u32).collect();
        let data = InputSeries { values: values.into(), gaps: gaps.into(), nans: nans.into(), sha256: sha.into() };
        let cell = SeriesCell::immutable(self.db(), data);
        self.blobs.insert(key, cell);
        Ok(cell)
    }

    /// The live cell of stored series `name` sliced to `grid`'s window.
    pub(super) fn stored_cell(&mut self, name: &str, grid: &Grid) -> Result<SeriesCell, HostError> {
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
        // Cached cells are re-sliced (or dropped) whenever their series is replaced, so a hit
        // is always sliced from the current record.
        let key = (name.to_string(), start, grid.bins, grid.bin_minutes());
        if let Some(c) = self.stored.get(&key) {
            return Ok(*c);
        }
        let data = self.slice_stored(&rec, grid)?;
        let cell = SeriesCell::create(self.db(), data);
        self.stored.insert(key, cell);
        Ok(cell)
    }

    /// The part of a stored series a model window reads, with its gaps and NaN bins re-indexed.
    /// Its fingerprint is that of the sliced values, so a shifted or re-sliced series is a new
    /// input even when the stored values are the same.
    fn slice_stored(&self, rec: &SeriesRecord, grid: &Grid) -> Result<InputSeries, HostError> {
        let first = Self::slice_first(rec, grid)?;
        let values = self.store.read()?.blob(&rec.blob)?;
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

    /// Resolves every input a plan needs: pinned blobs, new file reads (pinned now), live stored
    /// series, overrides. Returns the cells and the pins to commit.
    fn resolve_inputs(
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
                match read_input(key, c, &self.data_root.clone()) {
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
    fn pin_cells(
        &mut self,
        pins: &BTreeMap<String, InputPin>,
        cells: &mut BTreeMap<String, SeriesCell>,
    ) -> Result<(), HostError> {
        for (k, pin) in pins {
            cells.insert(k.clone(), self.blob_cell(&pin.sha256, &pin.gaps)?);
        }
        Ok(())
    }

    /// Opens a session on a stored template.
    pub fn open_session(&mut self, req: OpenRequest) -> Result<SessionInfo, HostError> {
        let entry = self.template_entry(&req.template_id, &req.template_version)?;
        let (bound, node_series, fresh) = split_bindings(&entry.decls, &req.series);
        let mut supplied = req.params.clone();
        supplied.extend(bound.clone());
        let params = bind(&entry.decls, &supplied)?;
        let overrides: BTreeSet<String> = node_series.keys().cloned().collect();
        let c = self.plans.get(&entry.record.sha256, &entry.record.text, &params, &overrides)?;
        check_series_overrides(&c, &node_series)?;
        check_param_bindings(&c, &bound, &req.series)?;
        let id = match &req.id {
            Some(id) => {
                if !valid_name(id) {
                    return Err(Diagnostic::error(
                        "bad_id",
                        format!("session id `{id}` must be 1–128 letters, digits, `_`, `-` or `.`"),
                    )
                    .at_path("id")
                    .into());
                }
                id.clone()
            }
            None => self.next_session_id()?,
        };
        if self.store.read()?.session(&id)?.is_some() {
            return Err(HostError::AlreadyExists(format!("session `{id}`")));
        }
        let override_shas: BTreeMap<String, String> =
            node_series.iter().map(|(k, v)| (k.clone(), values_sha(v))).collect();
        let (mut inputs, new_pins, new_blobs) =
            self.resolve_override_aware(&c, &BTreeMap::new(), &override_shas, &fresh)?;
        let record = SessionRecord {
            id: id.clone(),
            template_id: req.template_id.clone(),
            template_version: req.template_version.clone(),
            params: to_json(&params),
            inputs: new_pins.clone(),
            overrides: override_shas,
            tenant: req.tenant.clone(),
            revision: 1,
            created_utc: sys::now_utc(),
        };
        self.store.write(|w| {
            for b in new_blobs.iter().chain(req.series.values()) {
                w.put_blob(b)?;
            }
            w.put_session(&record)
        })?;
        self.pin_cells(&new_pins, &mut inputs)?;
        let cells: BTreeMap<String, ParamCell> =
            params.iter().map(|(k, v)| (k.clone(), ParamCell::create(self.db(), &c, k, v.clone()))).collect();
        let scenario = Scenario::create(self.db(), c, cells.clone(), inputs.clone());
        let state = SessionState { record, params, cells, inputs, scenario, variants: BTreeMap::new() };
        Arc::make_mut(&mut self.sessions).insert(id.clone(), state);
        self.session_info(&id)
    }

    /// Resolves inputs where overrides are given as values not yet stored.
    fn resolve_override_aware(
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
                    let c = SeriesCell::immutable(self.db(), data);
                    self.blobs.insert(sha.clone(), c);
                    c
                }
            };
            cells.insert(key.clone(), cell);
        }
        Ok((cells, pins_out, blobs))
    }

    fn next_session_id(&self) -> Result<String, HostError> {
        let r = self.store.read()?;
        let taken: BTreeSet<String> = r.sessions()?.into_iter().map(|s| s.id).collect();
        Ok((1..).map(|n| format!("s{n}")).find(|id| !taken.contains(id)).unwrap_or_else(|| "s".into()))
    }

    pub fn view(&self) -> View<'_> {
        View { db: self.db(), sessions: &self.sessions }
    }

    /// A snapshot for a reader on another thread. A write through the host cancels in-flight
    /// reads on snapshots (they unwind with `salsa::Cancelled` and retry) and waits for them to
    /// drop: a reader never sees a half-applied change. Never lock the host while holding one.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { db: self.db().clone(), sessions: self.sessions.clone() }
    }

    fn state(&self, id: &str) -> Result<&SessionState, HostError> {
        self.sessions.get(id).ok_or_else(|| HostError::NotFound(format!("session `{id}`")))
    }

    pub fn session_info(&self, id: &str) -> Result<SessionInfo, HostError> {
        self.view().session_info(id)
    }

    pub fn session_ids(&self) -> Vec<String> {
        self.view().session_ids()
    }

    pub fn variant_info(&self, session: &str, name: &str) -> Result<VariantInfo, HostError> {
        self.view().variant_info(session, name)
    }

    pub fn scenario(&self, t: &Target) -> Result<(Scenario, u64), HostError> {
        self.view().scenario(t)
    }

    pub fn evaluate_target(&self, t: &Target, targets: Option<&[u32]>) -> Result<Evaluation, HostError> {
        self.view().evaluate_target(t, targets)
    }

    pub fn compiled_target(&self, t: &Target) -> Result<Arc<Compiled>, HostError> {
        self.view().compiled_target(t)
    }

    pub fn compare(&self, a: &Target, b: &Target) -> Result<Comparison, HostError> {
        self.view().compare(a, b)
    }

    /// Closes a session: it and its variants are removed from the store.
    pub fn close_session(&mut self, id: &str) -> Result<(), HostError> {
        self.state(id)?;
        self.store.write(|w| w.delete_session(id))?;
        Arc::make_mut(&mut self.sessions).remove(id);
        Ok(())
    }

    /// Changes session parameters in place; variants that do not override them follow.
    pub fn set_session_params(&mut self, id: &str, changes: &BTreeMap<String, Supplied>) -> Result<u64, HostError> {
        let s = self.state(id)?.clone();
        let entry = self.template_entry(&s.record.template_id, &s.record.template_version)?;
        let params = effective_params(&entry.decls, &s.params, changes)?;
        let overrides: BTreeSet<String> = s.record.overrides.keys().cloned().collect();
        let c = self.plans.get(&entry.record.sha256, &entry.record.text, &params, &overrides)?;
        let (mut inputs, new_pins, new_blobs) = self.resolve_inputs(&c, &s.record.inputs, &s.record.overrides)?;
        let mut record = s.record.clone();
        record.params = to_json(&params);
        record.inputs.extend(new_pins.clone());
        record.revision += 1;
        // Variants must still compile with the new base values, and each resolves the inputs its
        // new plan reads (session pins, then its own); files it reads for the first time are
        // pinned to it in the same transaction.
        struct VariantChange {
            name: String,
            plan: Arc<Compiled>,
            inputs: BTreeMap<String, SeriesCell>,
            pins: BTreeMap<String, InputPin>,
            record: VariantRecord,
        }
        let mut changes_v = Vec::new();
        let mut blobs = new_blobs;
        for v in s.variants.values() {
            let mut vp = params.clone();
            for k in v.own_cells.keys() {
                if let Some(x) = v.params.get(k) {
                    vp.insert(k.clone(), x.clone());
                }
            }
            let mut vo = s.record.overrides.clone();
            vo.extend(v.record.overrides.clone());
            let set: BTreeSet<String> = vo.keys().cloned().collect();
            let plan = self.plans.get(&entry.record.sha256, &entry.record.text, &vp, &set).map_err(|d| {
                HostError::FailedPrecondition(format!("variant `{}` would not compile: {d}", v.record.name))
            })?;
            // Committed pins only (the session's new blobs are not stored yet): a file both read
            // for the first time resolves to the same pin, which stays the session's.
            let mut pins = s.record.inputs.clone();
            pins.extend(v.record.inputs.clone());
            let (vin, vpins, vblobs) = self.resolve_inputs(&plan, &pins, &vo).map_err(|e| {
                HostError::FailedPrecondition(format!("variant `{}` could not read its inputs: {e}", v.record.name))
            })?;
            let mut vrec = v.record.clone();
            vrec.inputs.extend(
                vpins.iter().filter(|(k, p)| new_pins.get(*k) != Some(*p)).map(|(k, p)| (k.clone(), p.clone())),
            );
            blobs.extend(vblobs);
            changes_v.push(VariantChange { name: v.record.name.clone(), plan, inputs: vin, pins: vpins, record: vrec });
        }
        self.store.write(|w| {
            for b in &blobs {
                w.put_blob(b)?;
            }
            for v in changes_v.iter().filter(|v| v.record.inputs != s.variants[&v.name].record.inputs) {
                w.put_variant(&v.record)?;
            }
            w.put_session(&record)
        })?;
        self.pin_cells(&new_pins, &mut inputs)?;
        for v in &mut changes_v {
            let pins = std::mem::take(&mut v.pins);
            self.pin_cells(&pins, &mut v.inputs)?;
        }
        let st = Arc::make_mut(&mut self.sessions)
            .get_mut(id)
            .ok_or_else(|| HostError::NotFound(format!("session `{id}`")))?;
        for (k, v) in &params {
            if let Some(cell) = st.cells.get(k) {
                cell.update(&mut self.db, v.clone());
            }
        }
        st.params = params.clone();
        st.record = record.clone();
        if st.inputs != inputs {
            st.inputs = inputs.clone();
            st.scenario.set_inputs(&mut self.db).with_durability(salsa::Durability::LOW).to(Arc::new(inputs.clone()));
        }
        st.scenario.update_plan(&mut self.db, c.clone(), salsa::Durability::MEDIUM);
        for ch in changes_v {
            let st = Arc::make_mut(&mut self.sessions)
                .get_mut(id)
                .ok_or_else(|| HostError::NotFound(format!("session `{id}`")))?;
            let v = st.variants.get_mut(&ch.name).ok_or_else(|| HostError::NotFound(ch.name.clone()))?;
            for (k, val) in &params {
                if !v.own_cells.contains_key(k) {
                    v.params.insert(k.clone(), val.clone());
                }
            }
            v.record = ch.record;
            v.inputs =
                ch.inputs.iter().filter(|(k, c)| inputs.get(*k) != Some(*c)).map(|(k, c)| (k.clone(), *c)).collect();
            if **v.scenario.inputs(&self.db) != ch.inputs {
                v.scenario.set_inputs(&mut self.db).with_durability(salsa::Durability::LOW).to(Arc::new(ch.inputs));
            }
            v.scenario.update_plan(&mut self.db, ch.plan, salsa::Durability::MEDIUM);
        }
        Ok(record.revision)
    }

    /// Creates a variant: parameter overrides and const-node series on top of its session.
    pub fn create_variant(
        &mut self,
        session: &str,
        name: &str,
        params: &BTreeMap<String, Supplied>,
        series: &BTreeMap<String, Vec<f64>>,
    ) -> Result<VariantInfo, HostError> {
        let full = self.state(session)?;
        if full.variants.contains_key(name) {
            return Err(HostError::AlreadyExists(format!("variant `{session}/{name}`")));
        }
        let s = full.head();
        if !valid_name(name) {
            return Err(Diagnostic::error(
                "bad_id",
                format!("variant name `{name}` must be 1–128 letters, digits, `_`, `-` or `.`"),
            )
            .at_path("name")
            .into());
        }
        let record = VariantRecord {
            session: session.to_string(),
            name: name.to_string(),
            params: BTreeMap::new(),
            overrides: BTreeMap::new(),
            inputs: BTreeMap::new(),
            revision: s.record.revision + 1,
            created_utc: sys::now_utc(),
        };
        self.apply_variant(&s, record, params, series, true)
    }

    /// Adds or changes overrides of an existing variant.
    pub fn update_variant(
        &mut self,
        session: &str,
        name: &str,
        params: &BTreeMap<String, Supplied>,
        series: &BTreeMap<String, Vec<f64>>,
    ) -> Result<VariantInfo, HostError> {
        let full = self.state(session)?;
        let v = full.variants.get(name).ok_or_else(|| HostError::NotFound(format!("variant `{session}/{name}`")))?;
        let mut record = v.record.clone();
        let s = full.head();
        record.revision = s.record.revision + 1;
        self.apply_variant(&s, record, params, series, false)
    }

    fn apply_variant(
        &mut self,
        s: &SessionState,
        mut record: VariantRecord,
        params: &BTreeMap<String, Supplied>,
        series: &BTreeMap<String, Vec<f64>>,
        new: bool,
    ) -> Result<VariantInfo, HostError> {
        let entry = self.template_entry(&s.record.template_id, &s.record.template_version)?;
        // Overrides accumulate: earlier ones stay unless replaced.
        let prior = from_json(&entry.decls, &record.params)?;
        let (bound, node_series, fresh) = split_bindings(&entry.decls, series);
        let mut supplied = supplied_from(&prior);
        supplied.extend(params.clone());
        supplied.extend(bound.clone());
        let effective = effective_params(&entry.decls, &s.params, &supplied)?;
        let overridden: BTreeMap<String, ParamValue> = effective
            .iter()
            .filter(|(k, v)| s.params.get(*k) != Some(*v) || supplied.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut override_shas = s.record.overrides.clone();
        override_shas.extend(record.overrides.clone());
        let all_series: BTreeSet<String> = override_shas.keys().cloned().chain(node_series.keys().cloned()).collect();
        let c = self.plans.get(&entry.record.sha256, &entry.record.text, &effective, &all_series)?;
        check_series_overrides(&c, &node_series)?;
        check_param_bindings(&c, &bound, series)?;
        let mut pins = s.record.inputs.clone();
        pins.extend(record.inputs.clone());
        let (inputs, new_pins, new_blobs) = self.resolve_override_aware(&c, &pins, &override_shas, &fresh)?;
        record.params = to_json(&overridden);
        for (k, v) in &node_series {
            record.overrides.insert(k.clone(), values_sha(v));
        }
        record.inputs.extend(new_pins.clone());
        let mut session_record = s.record.clone();
        session_record.revision += 1;
        self.store.write(|w| {
            for b in new_blobs.iter().chain(series.values()) {
                w.put_blob(b)?;
            }
            w.put_variant(&record)?;
            w.put_session(&session_record)
        })?;
        let mut inputs = inputs;
        self.pin_cells(&new_pins, &mut inputs)?;
        // Variant-owned inputs: everything that differs from the session's.
        let own_inputs: BTreeMap<String, SeriesCell> =
            inputs.iter().filter(|(k, c)| s.inputs.get(*k) != Some(*c)).map(|(k, c)| (k.clone(), *c)).collect();
        let existing = self.state(&s.record.id)?.variants.get(&record.name).map(|v| (v.own_cells.clone(), v.scenario));
        let mut own_cells = existing.as_ref().map(|e| e.0.clone()).unwrap_or_default();
        for (k, v) in &overridden {
            match own_cells.get(k) {
                Some(cell) => cell.update(&mut self.db, v.clone()),
                None => {
                    let cell = ParamCell::create(self.db(), &c, k, v.clone());
                    own_cells.insert(k.clone(), cell);
                }
            }
        }
        let mut cells = s.cells.clone();
        cells.extend(own_cells.clone());
        let scenario = match (new, existing) {
            (false, Some((_, sc))) => {
                sc.set_params(&mut self.db).with_durability(salsa::Durability::MEDIUM).to(Arc::new(cells));
                sc.set_inputs(&mut self.db).with_durability(salsa::Durability::LOW).to(Arc::new(inputs));
                sc.update_plan(&mut self.db, c, salsa::Durability::MEDIUM);
                sc
            }
            _ => Scenario::create(self.db(), c, cells, inputs),
        };
        let name = record.name.clone();
        let state = VariantState { record, params: effective, own_cells, inputs: own_inputs, scenario };
        let sm = Arc::make_mut(&mut self.sessions)
            .get_mut(&s.record.id)
            .ok_or_else(|| HostError::NotFound(format!("session `{}`", s.record.id)))?;
        sm.record = session_record;
        sm.variants.insert(name.clone(), state);
        self.variant_info(&s.record.id, &name)
    }

    pub fn delete_variant(&mut self, session: &str, name: &str) -> Result<(), HostError> {
        let s = self.state(session)?;
        if !s.variants.contains_key(name) {
            return Err(HostError::NotFound(format!("variant `{session}/{name}`")));
        }
        let mut rec = s.record.clone();
        rec.revision += 1;
        self.store.write(|w| {
            w.delete_variant(session, name)?;
            w.put_session(&rec)
        })?;
        let sm = Arc::make_mut(&mut self.sessions)
            .get_mut(session)
            .ok_or_else(|| HostError::NotFound(format!("session `{session}`")))?;
        sm.variants.remove(name);
        sm.record = rec;
        Ok(())
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
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
            {
                return Err(Diagnostic::error(
                    "bad_id",
                    format!("series name `{name}` must be letters, digits, `_`, `-`, `.` or `/`"),
                )
                .into());
            }
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
            self.stored.remove(&key);
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
        Ok(changed)
    }

    pub fn stored_series(&self) -> Result<Vec<SeriesRecord>, HostError> {
        Ok(self.store.read()?.series_list()?)
    }

    pub fn stored_series_values(&self, name: &str) -> Result<(SeriesRecord, Vec<f64>), HostError> {
        let r = self.store.read()?;
        let rec = r.series(name)?.ok_or_else(|| HostError::NotFound(format!("stored series `{name}`")))?;
        let v = r.blob(&rec.blob)?;
        Ok((rec, v))
    }

    /// Records a run written by [`RunMaterial::write`]. (A run is made in three steps —
    /// [`View::run_material`] on a snapshot, `write` with no lock held, then this — so only the
    /// record is written under the host lock.)
    pub fn record_run(&mut self, record: &crate::store::RunRecord) -> Result<(), HostError> {
        self.store.write(|w| w.put_run(record))?;
        Ok(())
    }

    pub fn runs(&self) -> Result<Vec<crate::store::RunRecord>, HostError> {
        Ok(self.store.read()?.runs()?)
    }

    pub fn run(&self, id: &str) -> Result<crate::store::RunRecord, HostError> {
        self.store.read()?.run(id)?.ok_or_else(|| HostError::NotFound(format!("run `{id}`")))
    }

    /// Rebuilds every session and variant from the store (on open).
    pub(crate) fn rebuild(&mut self) -> Result<(), HostError> {
        let r = self.store.read()?;
        let sessions = r.sessions()?;
        let mut variants = BTreeMap::new();
        for s in &sessions {
            variants.insert(s.id.clone(), r.variants(&s.id)?);
        }
        drop(r);
        for rec in sessions {
            let entry = self.template_entry(&rec.template_id, &rec.template_version)?;
            let params = from_json(&entry.decls, &rec.params)?;
            let overrides: BTreeSet<String> = rec.overrides.keys().cloned().collect();
            let c = self.plans.get(&entry.record.sha256, &entry.record.text, &params, &overrides)?;
            let (inputs, new_pins, _) = self.resolve_inputs(&c, &rec.inputs, &rec.overrides)?;
            if !new_pins.is_empty() {
                return Err(HostError::FailedPrecondition(format!(
                    "session `{}` lacks pinned inputs {:?}",
                    rec.id,
                    new_pins.keys().collect::<Vec<_>>()
                )));
            }
            let cells: BTreeMap<String, ParamCell> =
                params.iter().map(|(k, v)| (k.clone(), ParamCell::create(self.db(), &c, k, v.clone()))).collect();
            let scenario = Scenario::create(self.db(), c, cells.clone(), inputs.clone());
            let mut state = SessionState {
                record: rec.clone(),
                params: params.clone(),
                cells: cells.clone(),
                inputs: inputs.clone(),
                scenario,
                variants: BTreeMap::new(),
            };
            for vr in variants.remove(&rec.id).unwrap_or_default() {
                let own = from_json(&entry.decls, &vr.params)?;
                let mut eff = params.clone();
                eff.extend(own.clone());
                let mut shas = rec.overrides.clone();
                shas.extend(vr.overrides.clone());
                let set: BTreeSet<String> = shas.keys().cloned().collect();
                let c = self.plans.get(&entry.record.sha256, &entry.record.text, &eff, &set)?;
                let mut pins = rec.inputs.clone();
                pins.extend(vr.inputs.clone());
                let (vin, vnew, _) = self.resolve_inputs(&c, &pins, &shas)?;
                if !vnew.is_empty() {
                    return Err(HostError::FailedPrecondition(format!(
                        "variant `{}/{}` lacks pinned inputs {:?}",
                        rec.id,
                        vr.name,
                        vnew.keys().collect::<Vec<_>>()
                    )));
                }
                let own_cells: BTreeMap<String, ParamCell> =
                    own.iter().map(|(k, v)| (k.clone(), ParamCell::create(self.db(), &c, k, v.clone()))).collect();
                let mut vcells = cells.clone();
                vcells.extend(own_cells.clone());
                let own_inputs =
                    vin.iter().filter(|(k, c)| inputs.get(*k) != Some(*c)).map(|(k, c)| (k.clone(), *c)).collect();
                let sc = Scenario::create(self.db(), c, vcells, vin);
                state.variants.insert(
                    vr.name.clone(),
                    VariantState { record: vr, params: eff, own_cells, inputs: own_inputs, scenario: sc },
                );
            }
            Arc::make_mut(&mut self.sessions).insert(rec.id.clone(), state);
        }
        Ok(())
    }
}

/// Read-only access to sessions and the salsa database: from the host itself, or from a
/// [`Snapshot`] on another thread.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub(crate) db: &'a crate::engine::Database,
    pub(crate) sessions: &'a BTreeMap<String, SessionState>,
}

impl View<'_> {
    /// Everything a run directory is written from, evaluated on this snapshot.
    pub fn run_material(&self, t: &Target) -> Result<RunMaterial, HostError> {
        let ev = self.evaluate_target(t, None)?;
        let warnings = self.warnings(t, &ev)?;
        let (sc, _) = self.scenario(t)?;
        let inputs: BTreeMap<String, InputSeries> =
            sc.inputs(self.db).iter().map(|(k, c)| (k.clone(), c.data(self.db).clone())).collect();
        let state = self.state(&t.session)?;
        let params = match &t.variant {
            None => state.params.clone(),
            Some(v) => {
                state.variants.get(v).ok_or_else(|| HostError::NotFound(format!("variant `{t}`")))?.params.clone()
            }
        };
        Ok(RunMaterial {
            target: t.to_string(),
            template_id: state.record.template_id.clone(),
            template_version: state.record.template_version.clone(),
            tenant: state.record.tenant.clone(),
            params,
            inputs,
            ev,
            warnings,
        })
    }

    /// Warnings (§7.1) of a full evaluation of `t`.
    pub fn warnings(&self, t: &Target, ev: &Evaluation) -> Result<Vec<crate::engine::warnings::Warning>, HostError> {
        let (sc, _) = self.scenario(t)?;
        let inputs: BTreeMap<String, InputSeries> =
            sc.inputs(self.db).iter().map(|(k, c)| (k.clone(), c.data(self.db).clone())).collect();
        let params: BTreeMap<String, f64> =
            sc.params(self.db).iter().filter_map(|(k, c)| c.value(self.db).as_f64().map(|x| (k.clone(), x))).collect();
        Ok(crate::engine::validate::warnings(
            ev,
            &crate::engine::validate::ValidationInputs { inputs: &inputs, params: &params },
        ))
    }

    /// The effective overrides of a target: overridden parameters and bound const nodes.
    pub fn overrides(&self, t: &Target) -> Result<(BTreeMap<String, ParamValue>, Vec<String>), HostError> {
        match &t.variant {
            None => Ok((BTreeMap::new(), self.session_info(&t.session)?.overrides)),
            Some(v) => {
                let info = self.variant_info(&t.session, v)?;
                Ok((info.params, info.series))
            }
        }
    }

    /// Identities and value fingerprints of what every unit of `t` reads (for watchers).
    pub fn unit_reads(&self, t: &Target) -> Result<Option<Vec<crate::engine::db::UnitReads>>, HostError> {
        let (sc, _) = self.scenario(t)?;
        Ok(edb::unit_reads(self.db, sc))
    }

    pub(crate) fn state(&self, id: &str) -> Result<&SessionState, HostError> {
        self.sessions.get(id).ok_or_else(|| HostError::NotFound(format!("session `{id}`")))
    }

    pub fn session_info(&self, id: &str) -> Result<SessionInfo, HostError> {
        let s = self.state(id)?;
        Ok(SessionInfo {
            id: s.record.id.clone(),
            template_id: s.record.template_id.clone(),
            template_version: s.record.template_version.clone(),
            params: s.params.clone(),
            inputs: s.inputs.keys().filter(|k| !k.starts_with("override:")).cloned().collect(),
            overrides: s.record.overrides.keys().cloned().collect(),
            tenant: s.record.tenant.clone(),
            revision: s.record.revision,
            variants: s.variants.keys().cloned().collect(),
            created_utc: s.record.created_utc.clone(),
        })
    }

    pub fn session_ids(&self) -> Vec<String> {
        self.sessions.keys().cloned().collect()
    }

    pub fn variant_info(&self, session: &str, name: &str) -> Result<VariantInfo, HostError> {
        let s = self.state(session)?;
        let v = s.variants.get(name).ok_or_else(|| HostError::NotFound(format!("variant `{session}/{name}`")))?;
        Ok(VariantInfo {
            session: session.to_string(),
            name: name.to_string(),
            params: v.own_cells.keys().filter_map(|k| v.params.get(k).map(|x| (k.clone(), x.clone()))).collect(),
            series: v.record.overrides.keys().cloned().collect(),
            revision: v.record.revision,
            created_utc: v.record.created_utc.clone(),
        })
    }

    /// The scenario behind a target, with its session's revision.
    pub fn scenario(&self, t: &Target) -> Result<(Scenario, u64), HostError> {
        let s = self.state(&t.session)?;
        match &t.variant {
            None => Ok((s.scenario, s.record.revision)),
            Some(v) => {
                let v = s.variants.get(v).ok_or_else(|| HostError::NotFound(format!("variant `{t}`")))?;
                Ok((v.scenario, s.record.revision))
            }
        }
    }

    /// Evaluates the series of a target matching `targets` (every series when None).
    pub fn evaluate_target(&self, t: &Target, targets: Option<&[u32]>) -> Result<Evaluation, HostError> {
        let (sc, _) = self.scenario(t)?;
        let sw = sys::Stopwatch::start();
        let mut ev = edb::evaluate(self.db, sc, targets)?;
        ev.accounting.elapsed_us = sw.elapsed_us();
        Ok(ev)
    }

    pub fn compiled_target(&self, t: &Target) -> Result<Arc<Compiled>, HostError> {
        let (sc, _) = self.scenario(t)?;
        Ok(edb::compiled(self.db, sc))
    }

    /// Compares two targets series by series. Series whose unit keys are equal in both are
    /// identical by construction and are not evaluated.
    pub fn compare(&self, a: &Target, b: &Target) -> Result<Comparison, HostError> {
        let (sa, _) = self.scenario(a)?;
        let (sb, _) = self.scenario(b)?;
        let ca = edb::compiled(self.db, sa);
        let cb = edb::compiled(self.db, sb);
        if !ca.grid.same_window(&cb.grid) {
            return Err(HostError::FailedPrecondition(format!(
                "{a} and {b} have different grids ({} vs {})",
                ca.grid.describe(),
                cb.grid.describe()
            )));
        }
        let ka = unit_keys(self.db, sa)
            .clone()
            .ok_or_else(|| HostError::FailedPrecondition(format!("{a} has unresolved inputs")))?;
        let kb = unit_keys(self.db, sb)
            .clone()
            .ok_or_else(|| HostError::FailedPrecondition(format!("{b} has unresolved inputs")))?;
        let ids: BTreeSet<&String> = ca.by_id.keys().chain(cb.by_id.keys()).collect();
        let mut need_a = Vec::new();
        let mut need_b = Vec::new();
        let mut same = BTreeSet::new();
        for id in &ids {
            match (ca.by_id.get(*id), cb.by_id.get(*id)) {
                (Some(&x), Some(&y)) => {
                    let (ix, iy) = (&ca.series[x as usize], &cb.series[y as usize]);
                    if ka[ix.unit as usize] == kb[iy.unit as usize] && ix.output == iy.output {
                        same.insert((*id).clone());
                    } else {
                        need_a.push(x);
                        need_b.push(y);
                    }
                }
                (Some(&x), None) => need_a.push(x),
                (None, Some(&y)) => need_b.push(y),
                (None, None) => {}
            }
        }
        let sw = sys::Stopwatch::start();
        let ea = edb::evaluate(self.db, sa, Some(&need_a))?;
        let eb = edb::evaluate(self.db, sb, Some(&need_b))?;
        let mut out = Vec::new();
        for id in ids {
            if same.contains(id) {
                out.push(SeriesDiff {
                    id: id.clone(),
                    identical_by_construction: true,
                    a: None,
                    b: None,
                    max_abs_diff: 0.0,
                    bins_differ: Vec::new(),
                    total_a: f64::NAN,
                    total_b: f64::NAN,
                });
                continue;
            }
            let va = ea.get(id).cloned();
            let vb = eb.get(id).cloned();
            let mut d = SeriesDiff {
                id: id.clone(),
                identical_by_construction: false,
                a: va.clone(),
                b: vb.clone(),
                max_abs_diff: f64::NAN,
                bins_differ: Vec::new(),
                total_a: f64::NAN,
                total_b: f64::NAN,
            };
            if let (Some(x), Some(y)) = (&va, &vb) {
                (d.bins_differ, d.max_abs_diff) = diff_bins(x, y, 0);
                d.total_a = x.iter().fold(0.0, |acc, v| acc + v);
                d.total_b = y.iter().fold(0.0, |acc, v| acc + v);
            }
            out.push(d);
        }
        let mut acc = ea.accounting;
        acc.nodes_total += eb.accounting.nodes_total;
        acc.nodes_evaluated += eb.accounting.nodes_evaluated;
        acc.nodes_reused += eb.accounting.nodes_reused;
        acc.elapsed_us = sw.elapsed_us();
        Ok(Comparison { series: out, accounting: acc })
    }
}

/// An owned read snapshot (see [`Host::snapshot`]).
#[derive(Clone)]
pub struct Snapshot {
    db: crate::engine::Database,
    sessions: Arc<BTreeMap<String, SessionState>>,
}

impl Snapshot {
    pub fn view(&self) -> View<'_> {
        View { db: &self.db, sessions: &self.sessions }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn with_label(mut d: Diagnostics, label: &str) -> Diagnostics {
    for x in &mut d.0 {
        if x.file.is_none() {
            x.file = Some(label.to_string());
        }
    }
    d
}

/// A lookup that answers only from defaults (for reading a template's metadata).
fn defaults_only(decls: &[ParamDecl]) -> BTreeMap<String, ParamValue> {
    decls.iter().filter_map(|d| d.default.clone().map(|v| (d.name.clone(), v))).collect()
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

/// The bins (numbered from `first`) whose bits differ between `a` and `b` (NaN equals NaN),
/// and the largest absolute difference among them: NaN when a differing bin is NaN on one side
/// only (the difference is unknown, not zero).
pub(crate) fn diff_bins(a: &[f64], b: &[f64], first: u32) -> (Vec<u32>, f64) {
    let mut max: f64 = 0.0;
    let mut differ = Vec::new();
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        if p.to_bits() != q.to_bits() && !(p.is_nan() && q.is_nan()) {
            differ.push(first + i as u32);
            let d = (q - p).abs();
            max = if d.is_nan() || max.is_nan() { f64::NAN } else { max.max(d) };
        }
    }
    (differ, max)
}
