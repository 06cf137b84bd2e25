//! The host: the one module that sees both the redb store and the salsa database. It turns
//! documents, parameter values and input files into salsa inputs, persists sessions and variants,
//! and runs evaluations with the clock (elapsed time) that the engine must not use.
//!
//! Invariant: every change is committed to the store first, then applied to salsa inputs; a
//! rejected request leaves both as they were.

mod admin;
mod analysis;
pub mod cache;
mod inputs;
mod plan_cache;
mod reclaim;
mod runs;
mod seed;
mod sessions;
mod shared;
mod stored;
mod templates;
mod view;

pub use analysis::{AnalysisBase, PlanCompiler};
pub use runs::{RunCreated, RunInfo, RunMaterial};
pub use seed::Seeded;
pub use sessions::{OpenRequest, SessionInfo, VariantInfo};
pub use shared::{ReadError, SharedHost};
pub use stored::{StoredSeriesInfo, StoredSeriesInput};
pub use templates::{PreparedTemplate, TemplateInfo};
pub(crate) use view::diff_bins;
pub use view::{Comparison, SeriesDiff, Snapshot, Target, View};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::db;
use crate::engine::plan::Compiled;
use crate::engine::warnings::Warning;
use crate::engine::{Database, Evaluation, InputSeries, ParamCell, Scenario, SeriesCell};
use crate::model::grid::Grid;
use crate::model::params::{ParamValue, hex};
use crate::model::series::{SeriesRef, parse_series_csv};
use crate::model::source::Source;
use crate::model::template::{Supplied, bind};
use crate::store::{Store, StoreError};
use crate::sys;

/// A loaded document bound to parameter values and input series.
#[derive(Clone, Debug)]
pub struct Model {
    /// How diagnostics name the document (its path, or a label).
    pub label: String,
    pub data_root: PathBuf,
    /// The document, parsed once: recompiling for other parameter values reads its tree.
    pub source: Arc<Source>,
    /// The source's text.
    pub text: Arc<str>,
    pub params: BTreeMap<String, ParamValue>,
    pub cells: BTreeMap<String, ParamCell>,
    pub scenario: Scenario,
    /// Input key → what was read and its cell.
    pub inputs: BTreeMap<String, (InputSeries, SeriesCell)>,
}

impl Model {
    pub fn input_data(&self) -> BTreeMap<String, InputSeries> {
        self.inputs.iter().map(|(k, (d, _))| (k.clone(), d.clone())).collect()
    }

    /// Const nodes whose series are overridden.
    pub fn overrides(&self) -> BTreeSet<String> {
        self.inputs.keys().filter_map(|k| k.strip_prefix("override:")).map(str::to_string).collect()
    }

    /// Numeric parameter values, for validation checks.
    pub fn numeric_params(&self) -> BTreeMap<String, f64> {
        self.params.iter().filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x))).collect()
    }
}

/// A failure of a host operation, by kind (the CLI maps kinds to exit codes, the server to
/// gRPC status codes).
#[derive(Debug, Clone)]
pub enum HostError {
    /// Bad user input: located diagnostics.
    BadInput(Diagnostics),
    /// What was not found, as a whole message (`session `x` not found; …`).
    NotFound(String),
    AlreadyExists(String),
    FailedPrecondition(String),
    /// Another process has the database file open (`path`, and who holds it).
    InUse {
        path: String,
        holder: String,
    },
    /// The database file could not be read or written (I/O, another schema version): what
    /// happened, in words.
    Storage(String),
    /// The database file, or an item in it, is damaged (gRPC `DATA_LOSS`): what, where, and to
    /// run `flowtime db check`.
    DataLoss(String),
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostError::BadInput(d) => write!(f, "{d}"),
            HostError::NotFound(m) => f.write_str(m),
            HostError::AlreadyExists(w) => write!(f, "{w} already exists"),
            HostError::FailedPrecondition(w) => f.write_str(w),
            HostError::InUse { path, holder } => write!(f, "{path} is in use by {holder}"),
            HostError::Storage(w) | HostError::DataLoss(w) => f.write_str(w),
        }
    }
}

impl std::error::Error for HostError {}

impl HostError {
    /// `NotFound` for `what` (e.g. "session `s9`"): "session `s9` not found".
    pub fn not_found(what: impl std::fmt::Display) -> HostError {
        HostError::NotFound(format!("{what} not found"))
    }
}

impl From<Diagnostics> for HostError {
    /// Bad input, except what is not the request's fault: a stored run that fails its manifest
    /// (`run_corrupt`) is data loss, a runs directory or object store that fails (`run_io`,
    /// `object_store`) is storage; their messages keep the help.
    fn from(d: Diagnostics) -> HostError {
        let told = || {
            let one = |x: &Diagnostic| match &x.help {
                Some(h) => format!("{} ({h})", x.message),
                None => x.message.clone(),
            };
            d.0.iter().map(one).collect::<Vec<_>>().join("; ")
        };
        if d.0.iter().any(|x| x.code == "run_corrupt") {
            HostError::DataLoss(told())
        } else if d.0.iter().any(|x| x.code == "run_io" || x.code == "object_store") {
            HostError::Storage(told())
        } else {
            HostError::BadInput(d)
        }
    }
}

impl From<Diagnostic> for HostError {
    fn from(d: Diagnostic) -> HostError {
        HostError::BadInput(d.into())
    }
}

impl From<StoreError> for HostError {
    fn from(e: StoreError) -> HostError {
        match e {
            StoreError::NotFound(w) => HostError::not_found(w),
            StoreError::AlreadyExists(w) => HostError::AlreadyExists(w),
            StoreError::InUse { path, holder } => HostError::InUse { path, holder },
            other if other.is_damage() => HostError::DataLoss(other.to_string()),
            other => HostError::Storage(other.to_string()),
        }
    }
}

pub struct Host {
    db: Database,
    store: Store,
    /// Where `file:` references of sessions resolve.
    data_root: PathBuf,
    /// `(id, version)` → text input and parameter declarations.
    templates: BTreeMap<(String, String), templates::TemplateEntry>,
    /// Content-addressed input cells, shared by every scenario that reads the same values.
    blobs: BTreeMap<String, SeriesCell>,
    /// Live `series:` cells, per stored name and model window.
    stored: BTreeMap<stored::StoredKey, SeriesCell>,
    sessions: Arc<BTreeMap<String, sessions::SessionState>>,
    plans: plan_cache::PlanCache,
    /// Released salsa inputs and the pace of memory reclamation.
    reclaim: reclaim::Reclaim,
    /// The result cache the database's units look in (`host/cache.rs`), if any.
    results: Option<Arc<cache::ObjectCache>>,
}

impl Default for Host {
    fn default() -> Host {
        Host::new()
    }
}

/// The data root of §4: `--data-root` when given; else, for a document inside a directory named
/// `templates`, that directory's parent; else the document's own directory.
pub fn data_root_for(doc: &Path, explicit: Option<&Path>) -> PathBuf {
    if let Some(r) = explicit {
        return r.to_path_buf();
    }
    let dir = doc.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    if dir.file_name().is_some_and(|n| n == "templates") {
        return dir
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
    }
    dir
}

fn with_file(mut d: Diagnostics, label: &str) -> Diagnostics {
    for x in &mut d.0 {
        if x.file.is_none() {
            x.file = Some(label.to_string());
        }
    }
    d
}

impl Host {
    /// A host with an in-memory store (one-shot commands and tests).
    pub fn new() -> Host {
        let store = Store::in_memory().unwrap_or_else(|e| panic!("an in-memory redb store cannot fail to open: {e}"));
        Host::with_store(store, PathBuf::from("."))
    }

    fn with_store(store: Store, data_root: PathBuf) -> Host {
        Host {
            db: Database::default(),
            store,
            data_root,
            templates: BTreeMap::new(),
            blobs: BTreeMap::new(),
            stored: BTreeMap::new(),
            sessions: Arc::new(BTreeMap::new()),
            plans: Default::default(),
            reclaim: Default::default(),
            results: None,
        }
    }

    /// Attaches the result cache at `cfg` (None detaches it). Results already memoised stay; units
    /// evaluated before a cache was attached are not stored (they have no content key).
    pub fn set_result_cache(&mut self, cfg: Option<&cache::CacheConfig>) -> Result<(), HostError> {
        let opened = cfg
            .map(cache::ObjectCache::open)
            .transpose()
            .map_err(|e| HostError::BadInput(Diagnostic::error("result_cache", format!("result cache: {e}")).into()))?;
        self.results = opened.map(Arc::new);
        self.db.set_result_cache(self.results.clone().map(|c| c as Arc<dyn crate::engine::cache::ResultCache>));
        Ok(())
    }

    /// The attached result cache.
    pub fn result_cache(&self) -> Option<&cache::ObjectCache> {
        self.results.as_deref()
    }

    /// Opens (or creates) a database file and rebuilds every session and variant from it.
    /// `role` names this process to others that find the file in use.
    ///
    /// A damaged file is an error ([`StoreError::Damaged`] or [`StoreError::DataLoss`], the
    /// gRPC `DATA_LOSS`), never a panic: the store verifies what it reads and catches redb's
    /// panics, and a panic anywhere else while rebuilding from what was read is caught here.
    ///
    /// The result cache is the directory `<file>.results` next to the file
    /// ([`cache::CacheConfig::beside`]); [`Host::open_with_cache`] chooses another or none.
    pub fn open(path: &Path, role: &str, data_root: &Path) -> Result<Host, HostError> {
        Host::open_with_cache(path, role, data_root, cache::CacheConfig::beside(path).as_ref())
    }

    /// [`Host::open`] with the result cache at `cache` (None: no result cache).
    pub fn open_with_cache(
        path: &Path,
        role: &str,
        data_root: &Path,
        cache: Option<&cache::CacheConfig>,
    ) -> Result<Host, HostError> {
        let opened = crate::store::guard::catch(|| {
            let store = Store::open(path, role)?;
            let mut host = Host::with_store(store, data_root.to_path_buf());
            host.set_result_cache(cache)?;
            host.rebuild()?;
            Ok(host)
        });
        opened.unwrap_or_else(|panic| {
            Err(HostError::from(StoreError::Damaged {
                path: path.display().to_string(),
                detail: format!("rebuilding its sessions from it failed ({panic})"),
            }))
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The database file, as damage reports name it.
    pub(crate) fn file(&self) -> String {
        self.store.path().display().to_string()
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn db_mut(&mut self) -> &mut Database {
        &mut self.db
    }

    /// Loads a document file with parameter values and its `file:` inputs.
    pub fn load_file(
        &mut self,
        path: &Path,
        supplied: &BTreeMap<String, Supplied>,
        data_root: Option<&Path>,
    ) -> Result<Model, Diagnostics> {
        let label = path.display().to_string();
        let text = sys::read_to_string(path).map_err(|e| {
            Diagnostics::one(Diagnostic::error("io", format!("cannot read {label}: {e}")).with_help("check the path"))
        })?;
        let root = data_root_for(path, data_root);
        self.load_text(&text, &label, supplied, &root)
    }

    /// Loads document text; `file:` inputs resolve against `data_root`.
    pub fn load_text(
        &mut self,
        text: &str,
        label: &str,
        supplied: &BTreeMap<String, Supplied>,
        data_root: &Path,
    ) -> Result<Model, Diagnostics> {
        let source = Arc::new(Source::parse(text).map_err(|d| with_file(d, label))?);
        let params = bind(source.decls(), supplied).map_err(|d| with_file(d, label))?;
        let plan = self.plans.get(&source, &params, &BTreeSet::new()).map_err(|d| with_file(d, label))?;
        let cells: BTreeMap<String, ParamCell> =
            params.iter().map(|(k, v)| (k.clone(), ParamCell::create(&self.db, &plan, k, v.clone()))).collect();
        let scenario = Scenario::create(&self.db, plan, cells.clone(), BTreeMap::new());
        let mut model = Model {
            label: label.to_string(),
            data_root: data_root.to_path_buf(),
            text: source.text().clone(),
            source,
            params,
            cells,
            scenario,
            inputs: BTreeMap::new(),
        };
        self.load_inputs(&mut model)?;
        Ok(model)
    }

    pub fn compiled(&self, m: &Model) -> Result<Arc<Compiled>, Diagnostics> {
        Ok(m.scenario.plan(&self.db).clone())
    }

    /// Compiles `m` as it would be with `params` and `overrides` (through the plan cache)
    /// without changing anything: a change is validated before it is applied.
    fn plan_for(
        &mut self,
        m: &Model,
        params: &BTreeMap<String, ParamValue>,
        overrides: &BTreeSet<String>,
    ) -> Result<Arc<Compiled>, Diagnostics> {
        self.plans.get(&m.source, params, overrides).map_err(|d| with_file(d, &m.label))
    }

    /// Resolves every input the compiled model needs and is not loaded yet: `file:` from the data
    /// root, `series:` and `snapshot:` from the store.
    fn load_inputs(&mut self, m: &mut Model) -> Result<(), Diagnostics> {
        let c = self.compiled(m)?;
        let mut diags = Vec::new();
        let mut changed = false;
        for (key, readers) in &c.inputs {
            if m.inputs.contains_key(key) {
                continue;
            }
            // A one-shot model makes its own cells (the cached ones are only for sessions, so that
            // reclaiming them knows every reader).
            let stored = if key.starts_with("series:") || key.starts_with("snapshot:") {
                let data = match key.strip_prefix("series:") {
                    Some(name) => self.stored_slice(name, &c.grid),
                    None => self.blob_data(&key["snapshot:".len()..], &[]),
                };
                Some(data.map(|data| (data.clone(), SeriesCell::immutable(&self.db, data))))
            } else {
                None
            };
            let loaded = match stored {
                Some(Ok((data, cell))) => Ok((data, cell)),
                Some(Err(e)) => Err(match e {
                    HostError::BadInput(d) => d,
                    other => Diagnostics::one(Diagnostic::error("input_missing", other.to_string())),
                }),
                None => read_input(key, &c.grid, &m.data_root).map(|data| {
                    // A file is read once per model: its cell never changes.
                    let cell = SeriesCell::immutable(&self.db, data.clone());
                    (data, cell)
                }),
            };
            match loaded {
                Ok(pair) => {
                    m.inputs.insert(key.clone(), pair);
                    changed = true;
                }
                Err(d) => diags.extend(d.0.into_iter().map(|x| x.with_help(format!("read by {}", readers.join(", "))))),
            }
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags));
        }
        if changed {
            self.sync_inputs(m);
        }
        Ok(())
    }

    fn sync_inputs(&mut self, m: &Model) {
        use salsa::Setter;
        let map: BTreeMap<String, SeriesCell> = m.inputs.iter().map(|(k, (_, c))| (k.clone(), *c)).collect();
        m.scenario.set_inputs(&mut self.db).with_durability(salsa::Durability::LOW).to(Arc::new(map));
    }

    /// Evaluates `targets` (all series when None), timing the evaluation.
    pub fn evaluate(&self, m: &Model, targets: Option<&[u32]>) -> Result<Evaluation, Diagnostics> {
        let sw = sys::Stopwatch::start();
        let mut ev = db::evaluate(&self.db, m.scenario, targets).map_err(|d| with_file(d, &m.label))?;
        ev.accounting.elapsed_us = sw.elapsed_us();
        Ok(ev)
    }

    /// Adds the mixes of the classed series among `series` (every series of `ev` when None)
    /// to `ev`, so that it can give per-class series (§6.1).
    pub fn evaluate_mixes(&self, m: &Model, ev: &mut Evaluation, series: Option<&[u32]>) -> Result<(), Diagnostics> {
        let all: Vec<u32> = match series {
            Some(s) => s.to_vec(),
            None => ev.series.keys().copied().collect(),
        };
        db::evaluate_mixes(&self.db, m.scenario, ev, &all).map_err(|d| with_file(d, &m.label))
    }

    /// Warnings of a full evaluation (with the class warnings of §6.1 when the model declares
    /// classes: their mixes are computed here, so the request's deadline can stop them).
    pub fn warnings(&self, m: &Model, ev: &Evaluation) -> Result<Vec<Warning>, Diagnostics> {
        view::warnings(&self.db, m.scenario, ev)
    }

    /// Sets a parameter; setting the value it already has is not a change. A value that would
    /// not compile is rejected and nothing changes.
    pub fn set_param(&mut self, m: &mut Model, name: &str, value: ParamValue) -> Result<(), Diagnostics> {
        let Some(cell) = m.cells.get(name).copied() else {
            return Err(Diagnostic::error("unknown_parameter", format!("unknown parameter `{name}`")).into());
        };
        let mut params = m.params.clone();
        params.insert(name.to_string(), value.clone());
        let plan = self.plan_for(m, &params, &m.overrides())?;
        cell.update(&mut self.db, value);
        m.params = params;
        m.scenario.update_plan(&mut self.db, plan, salsa::Durability::MEDIUM);
        self.load_inputs(m)
    }

    /// Replaces the document text in place (an edit). Parameters keep their values where the new
    /// text still declares them. Only units whose effective definition changed, and their
    /// readers, are re-evaluated: unchanged units intern to the same keys.
    pub fn set_text(&mut self, m: &mut Model, text: &str) -> Result<(), Diagnostics> {
        use salsa::Setter;
        let source = Arc::new(Source::parse(text).map_err(|d| with_file(d, &m.label))?);
        let kept: BTreeMap<String, Supplied> = m
            .params
            .iter()
            .filter(|(k, _)| source.decls().iter().any(|d| &d.name == *k))
            .map(|(k, v)| (k.clone(), Supplied::Yaml(v.to_yaml())))
            .collect();
        let params = bind(source.decls(), &kept).map_err(|d| with_file(d, &m.label))?;
        let plan = self.plans.get(&source, &params, &m.overrides()).map_err(|d| with_file(d, &m.label))?;
        for (k, v) in &params {
            match m.cells.get(k) {
                Some(c) => c.update(&mut self.db, v.clone()),
                None => {
                    let c = ParamCell::create(&self.db, &plan, k, v.clone());
                    m.cells.insert(k.clone(), c);
                }
            }
        }
        m.cells.retain(|k, _| params.contains_key(k));
        m.params = params;
        m.scenario.set_params(&mut self.db).with_durability(salsa::Durability::MEDIUM).to(Arc::new(m.cells.clone()));
        m.scenario.update_plan(&mut self.db, plan, salsa::Durability::HIGH);
        m.text = source.text().clone();
        m.source = source;
        self.load_inputs(m)
    }

    /// Replaces a const node's series (an override) with `values`.
    pub fn override_series(&mut self, m: &mut Model, node: &str, values: Vec<f64>) -> Result<(), Diagnostics> {
        let key = format!("override:{node}");
        let data = input_series(values, Vec::new(), Vec::new(), b"");
        match m.inputs.get(&key) {
            Some((_, cell)) => {
                let cell = *cell;
                cell.update(&mut self.db, data.clone());
                m.inputs.insert(key, (data, cell));
            }
            None => {
                let mut overrides = m.overrides();
                overrides.insert(node.to_string());
                let plan = self.plan_for(m, &m.params.clone(), &overrides)?;
                if plan.grid.len() != data.values.len() {
                    return Err(Diagnostic::error(
                        "series_length",
                        format!(
                            "series for `{node}` has {} values; the grid has {} bins",
                            data.values.len(),
                            plan.grid.len()
                        ),
                    )
                    .into());
                }
                let cell = SeriesCell::create(&self.db, data.clone());
                m.inputs.insert(key, (data, cell));
                self.sync_inputs(m);
                m.scenario.update_plan(&mut self.db, plan, salsa::Durability::MEDIUM);
            }
        }
        Ok(())
    }
}

/// Builds an input series; the digest covers the values so that equal content is equal input.
pub fn input_series(values: Vec<f64>, gaps: Vec<u32>, nans: Vec<u32>, source: &[u8]) -> InputSeries {
    let mut h = Sha256::new();
    if source.is_empty() {
        for v in &values {
            h.update(v.to_le_bytes());
        }
    } else {
        h.update(source);
    }
    InputSeries { values: values.into(), gaps: gaps.into(), nans: nans.into(), sha256: hex(&h.finalize()).into() }
}

/// The real path of `rel` under `data_root`, refusing paths that leave the root (through `..`
/// or a symbolic link).
pub(crate) fn resolve_under_root(rel: &str, data_root: &Path) -> Result<PathBuf, Diagnostic> {
    let path = data_root.join(rel);
    let root = sys::canonicalize(data_root).unwrap_or_else(|_| data_root.to_path_buf());
    let resolved = sys::canonicalize(&path)
        .map_err(|e| Diagnostic::error("io", format!("cannot read {rel} (resolved to {}): {e}", path.display())))?;
    if !resolved.starts_with(&root) {
        return Err(Diagnostic::error(
            "path_escape",
            format!("{rel} resolves to {}, outside the data root {}", resolved.display(), root.display()),
        ));
    }
    Ok(resolved)
}

/// Reads one `file:` input relative to the data root, refusing paths that leave it.
pub(crate) fn read_input(key: &str, grid: &Grid, data_root: &Path) -> Result<InputSeries, Diagnostics> {
    let r =
        crate::model::series::parse_ref(key).map_err(|e| Diagnostics::one(Diagnostic::error("bad_reference", e)))?;
    match r {
        SeriesRef::File(rel) => {
            let path = data_root.join(&rel);
            if !sys::exists(&path)
                && let Some(bytes) = crate::embedded::file(&rel)
            {
                // The shipped data is compiled into the binary: it resolves anywhere.
                let parsed = parse_series_csv(bytes, grid, &rel)?;
                return Ok(input_series(parsed.values, parsed.gaps, parsed.nans, bytes));
            }
            let resolved = resolve_under_root(&rel, data_root).map_err(|d| Diagnostics::one(d.in_file(rel.clone())))?;
            let bytes = sys::read(&resolved).map_err(|e| {
                Diagnostics::one(Diagnostic::error("io", format!("cannot read {rel}: {e}")).in_file(rel.clone()))
            })?;
            let parsed = parse_series_csv(&bytes, grid, &rel)?;
            Ok(input_series(parsed.values, parsed.gaps, parsed.nans, &bytes))
        }
        _ => Err(Diagnostic::error("input_missing", format!("input `{key}` has no value")).into()),
    }
}

/// Orders versions by their dot-separated parts: a part's leading number numerically (`1.10.0`
/// after `1.9.0`), then its suffix, where no suffix comes last (`1.0.0` after `1.0.0-rc1`);
/// equal-by-parts versions fall back to text order.
pub(crate) fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let split = |x: &str| {
        let digits = x.len() - x.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        (x[..digits].parse::<u128>().ok(), x[digits..].to_string())
    };
    let part = |x: &str, y: &str| {
        let ((nx, sx), (ny, sy)) = (split(x), split(y));
        nx.cmp(&ny).then_with(|| match (sx.is_empty(), sy.is_empty()) {
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => sx.cmp(&sy),
        })
    };
    let (mut pa, mut pb) = (a.split('.'), b.split('.'));
    loop {
        match (pa.next(), pb.next()) {
            (Some(x), Some(y)) => match part(x, y) {
                std::cmp::Ordering::Equal => continue,
                o => return o,
            },
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::version_order;
    use std::cmp::Ordering::*;

    #[test]
    fn versions_order_by_numeric_parts() {
        assert_eq!(version_order("1.10.0", "1.9.0"), Greater);
        assert_eq!(version_order("2", "10"), Less);
        assert_eq!(version_order("1.0", "1.0.1"), Less);
        assert_eq!(version_order("1.0.0", "1.0.0-rc1"), Greater, "a release after its pre-release");
        assert_eq!(version_order("1.0.0-rc2", "1.0.0-rc10"), Greater, "suffixes compare as text");
        assert_eq!(version_order("beta", "alpha"), Greater);
        let mut v = vec!["1.10.0", "1.2.0", "1.9.3", "0.9"];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(v, vec!["0.9", "1.2.0", "1.9.3", "1.10.0"]);
    }
}
