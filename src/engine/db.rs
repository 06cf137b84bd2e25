//! The salsa database: inputs (template text, parameter cells, input series cells, scenarios),
//! the tracked queries that compile and evaluate, and the evaluation driver with §9 accounting.
//!
//! Memoisation is keyed by a unit's *effective definition*: [`UnitKey`] interns the unit's
//! definition together with the keys of the units it reads and the parameter and series cells it
//! reads. Two scenarios (a session and its variant) that share those get the same key and share
//! one memoised value; an in-place change of a cell re-executes only the units that read it, and
//! a unit whose new series is bitwise equal to the old one is backdated, so its readers are not
//! re-evaluated.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use salsa::{Durability, Setter};

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::cache::{self, ContentKey, NO_KEY, ResultCache};
use crate::engine::classes::KeyNode;
use crate::engine::mix::{MixDef, MixEnv, MixSrc};
use crate::engine::plan::Compiled;
use crate::engine::unit::{Src, UnitDef, UnitEnv};
use crate::model::params::ParamValue;

/// A series value: compared bit for bit, so NaN equals NaN and `-0.0` differs from `0.0`.
#[derive(Clone, Debug)]
pub struct Series(pub Arc<[f64]>);

impl PartialEq for Series {
    fn eq(&self, other: &Series) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.len() == other.0.len()
                && self.0.iter().zip(other.0.iter()).all(|(a, b)| a.to_bits() == b.to_bits()))
    }
}

impl Eq for Series {}

impl std::ops::Deref for Series {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        &self.0
    }
}

impl From<Arc<[f64]>> for Series {
    fn from(v: Arc<[f64]>) -> Series {
        Series(v)
    }
}

impl From<Vec<f64>> for Series {
    fn from(v: Vec<f64>) -> Series {
        Series(v.into())
    }
}

/// An input series with what was noticed while reading it.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSeries {
    pub values: Series,
    /// Bins that were missing (filled with 0).
    pub gaps: Arc<[u32]>,
    /// Bins that were empty or NaN.
    pub nans: Arc<[u32]>,
    /// sha256 of the content the series was read from, for run hashes and provenance.
    pub sha256: Arc<str>,
}

impl InputSeries {
    /// No values: what a released cell holds while it waits for reuse.
    pub fn empty() -> InputSeries {
        InputSeries {
            values: Vec::new().into(),
            gaps: Arc::from(Vec::new()),
            nans: Arc::from(Vec::new()),
            sha256: "".into(),
        }
    }
}

#[salsa::db]
pub trait Db: salsa::Database {
    /// The result cache units look in before computing (`engine::cache`), if the host gave one.
    fn result_cache(&self) -> Option<&dyn ResultCache>;
}

#[salsa::db]
#[derive(Clone, Default)]
pub struct Database {
    storage: salsa::Storage<Self>,
    cache: Option<Arc<dyn ResultCache>>,
}

impl Database {
    /// Attaches (or detaches) the result cache. Units evaluated without one get no content key
    /// ([`cache::NO_KEY`]), nor do their readers, so attaching a cache later never stores a
    /// result under a key that does not describe it.
    pub fn set_result_cache(&mut self, cache: Option<Arc<dyn ResultCache>>) {
        self.cache = cache;
    }
}

#[salsa::db]
impl salsa::Database for Database {}

#[salsa::db]
impl Db for Database {
    fn result_cache(&self) -> Option<&dyn ResultCache> {
        self.cache.as_deref()
    }
}

/// One parameter value (durability MEDIUM). Variants share the session's cells for parameters
/// they do not override.
#[salsa::input(debug)]
pub struct ParamCell {
    #[returns(ref)]
    pub value: ParamValue,
}

/// One input series (durability LOW): a file snapshot, stored telemetry, or an override.
#[salsa::input(debug)]
pub struct SeriesCell {
    #[returns(ref)]
    pub data: InputSeries,
}

/// A session or a variant: a compiled plan bound to parameter cells and input series cells.
///
/// The plan is set by the host, which compiles documents through a cache keyed by the text, the
/// values of the parameters read structurally and the overridden nodes: scenarios that agree on
/// those share one plan, so creating a variant never recompiles.
#[salsa::input(debug)]
pub struct Scenario {
    #[returns(ref)]
    pub plan: Arc<Compiled>,
    /// Every declared parameter's cell.
    #[returns(ref)]
    pub params: Arc<BTreeMap<String, ParamCell>>,
    /// Input key (`file:…`, `series:…`, `override:<node>`) → cell.
    #[returns(ref)]
    pub inputs: Arc<BTreeMap<String, SeriesCell>>,
}

impl ParamCell {
    /// A cell for parameter `name` of plan `c`, with the durability [`param_durability`] picks.
    pub fn create(db: &dyn Db, c: &Compiled, name: &str, value: ParamValue) -> ParamCell {
        ParamCell::builder(value).value_durability(param_durability(c, name)).new(db)
    }

    /// A released cell (of a deleted variant or closed session) taken for parameter `name` of plan
    /// `c`: as [`ParamCell::create`], without a new input (salsa never frees one).
    pub fn reuse(self, db: &mut Database, c: &Compiled, name: &str, value: ParamValue) {
        self.set_value(db).with_durability(param_durability(c, name)).to(value);
    }

    /// Sets a new value, keeping the cell's durability; setting an equal value is not a change.
    pub fn update(self, db: &mut Database, value: ParamValue) {
        if *self.value(db) != value {
            self.set_value(db).to(value);
        }
    }
}

/// The durability of a parameter's cell, by the size of its downstream cone in `c`.
///
/// When an input of durability D changes, salsa re-verifies every memo that read any input of
/// durability ≤ D; the rest are skipped in O(1). Cost follows class size, so a parameter read by
/// a small cone (≤ 1/16 of the units) is LOW: changing it re-verifies only the LOW memos (small
/// cones and live-telemetry readers), not the whole model. A parameter feeding much of the model
/// is MEDIUM: changing it re-verifies (and usually re-evaluates) most of the model anyway. The
/// class is fixed when the cell is created: changing a cell's durability later would stop salsa
/// from backdating unchanged results once (it backdates only when durability does not drop).
pub fn param_durability(c: &Compiled, name: &str) -> Durability {
    let readers: Vec<u32> =
        (0..c.units.len() as u32).filter(|u| c.units[*u as usize].params.iter().any(|p| p == name)).collect();
    if readers.is_empty() {
        return Durability::MEDIUM;
    }
    if c.downstream(&readers).len() * 16 <= c.units.len() { Durability::LOW } else { Durability::MEDIUM }
}

impl SeriesCell {
    /// A cell whose content may be replaced (stored telemetry, overrides): durability LOW.
    pub fn create(db: &dyn Db, data: InputSeries) -> SeriesCell {
        SeriesCell::builder(data).data_durability(Durability::LOW).new(db)
    }

    /// A cell for content that never changes (a content-addressed snapshot, a file read once):
    /// durability HIGH, so units that read only such inputs are not re-verified after a
    /// parameter or telemetry change elsewhere.
    pub fn immutable(db: &dyn Db, data: InputSeries) -> SeriesCell {
        SeriesCell::builder(data).data_durability(Durability::HIGH).new(db)
    }

    /// Empties a cell no scenario reads any more, freeing its values, for reuse.
    pub fn release(self, db: &mut Database) {
        self.set_data(db).with_durability(Durability::LOW).to(InputSeries::empty());
    }

    /// A released cell taken for new content: as [`SeriesCell::create`] (LOW) or
    /// [`SeriesCell::immutable`] (HIGH), without a new input.
    pub fn reuse(self, db: &mut Database, data: InputSeries, durability: Durability) {
        self.set_data(db).with_durability(durability).to(data);
    }

    pub fn update(self, db: &mut Database, data: InputSeries) {
        if *self.data(db) != data {
            self.set_data(db).with_durability(Durability::LOW).to(data);
        }
    }
}

impl Scenario {
    /// Replaces the plan unless it is the same one (plans come from a cache, so an unchanged
    /// plan is the same allocation). `durability`: HIGH when a document edit caused the change,
    /// MEDIUM when a parameter did.
    pub fn update_plan(self, db: &mut Database, plan: Arc<Compiled>, durability: Durability) {
        if !Arc::ptr_eq(self.plan(db), &plan) {
            self.set_plan(db).with_durability(durability).to(plan);
        }
    }

    /// Empties a scenario that was closed or deleted (its cell maps are freed; the plan stays, as
    /// the next scenario is likely to share it), for reuse.
    pub fn release(self, db: &mut Database) {
        self.set_params(db).with_durability(Durability::LOW).to(Arc::new(BTreeMap::new()));
        self.set_inputs(db).with_durability(Durability::LOW).to(Arc::new(BTreeMap::new()));
    }

    /// A released scenario taken for new use: as [`Scenario::create`], without a new input.
    pub fn reuse(
        self,
        db: &mut Database,
        plan: Arc<Compiled>,
        params: BTreeMap<String, ParamCell>,
        inputs: BTreeMap<String, SeriesCell>,
    ) {
        self.update_plan(db, plan, Durability::HIGH);
        self.set_params(db).with_durability(Durability::MEDIUM).to(Arc::new(params));
        self.set_inputs(db).with_durability(Durability::LOW).to(Arc::new(inputs));
    }

    pub fn create(
        db: &dyn Db,
        plan: Arc<Compiled>,
        params: BTreeMap<String, ParamCell>,
        inputs: BTreeMap<String, SeriesCell>,
    ) -> Scenario {
        // A plan comes from an immutable template version: it changes only when a structural
        // parameter does (MEDIUM, set by `update_plan`).
        Scenario::builder(plan, Arc::new(params), Arc::new(inputs))
            .plan_durability(Durability::HIGH)
            .params_durability(Durability::MEDIUM)
            .inputs_durability(Durability::LOW)
            .new(db)
    }
}

/// The compiled plan of a scenario.
pub fn compiled(db: &dyn Db, s: Scenario) -> Arc<Compiled> {
    s.plan(db).clone()
}

/// A unit's effective definition: what it computes and exactly what it reads.
///
/// Keys are garbage-collected (`revisions`): a key no query has interned or verified in the last
/// [`KEY_REVISIONS`] revisions in which salsa interned anything is stale, and a new key may reuse
/// its slot, freeing the memos of `eval_unit` and `unit_output` attached to it. That is how the
/// memos of deleted variants and closed sessions are reclaimed. The host keeps the keys of every
/// open scenario fresh by verifying their `unit_keys` at least every `KEY_REVISIONS / 4` changes
/// ([`keep_keys`]), so an idle session never loses its memos.
#[salsa::interned(revisions = 256, debug)]
pub struct UnitKey<'db> {
    #[returns(ref)]
    pub def: Arc<UnitDef>,
    #[returns(ref)]
    pub deps: Vec<UnitKey<'db>>,
    /// Per source of `def` (`def.srcs`): the output key it reads when it reads one output of a
    /// multi-output dependency (see [`unit_output`]), else None.
    #[returns(ref)]
    pub outs: Vec<Option<OutputKey<'db>>>,
    #[returns(ref)]
    pub params: Vec<ParamCell>,
    #[returns(ref)]
    pub inputs: Vec<SeriesCell>,
    /// §6.1: the mix units a router target with class routes reads (`def.mix_outs` gives the
    /// output of each); empty for every other unit.
    #[returns(ref)]
    pub mixes: Vec<MixKey<'db>>,
}

/// A mix unit's effective definition (§6.1): what it computes and exactly what it reads (value
/// units, other mix units, parameter cells). Share changes re-execute only mix units, so no
/// total is re-evaluated unless a class route reads the mix.
#[salsa::interned(revisions = 256, debug)]
pub struct MixKey<'db> {
    #[returns(ref)]
    pub def: Arc<MixDef>,
    #[returns(ref)]
    pub units: Vec<UnitKey<'db>>,
    #[returns(ref)]
    pub mixes: Vec<MixKey<'db>>,
    #[returns(ref)]
    pub params: Vec<ParamCell>,
}

/// One output of a multi-output unit. Interned by `unit_keys` next to the key of the unit reading
/// it (so it lives, and is kept fresh, exactly as long as that key), never by `eval_unit`, whose
/// higher durability would make it immortal.
#[salsa::interned(revisions = 256, debug)]
pub struct OutputKey<'db> {
    pub unit: UnitKey<'db>,
    pub output: u16,
}

/// The `revisions` of [`UnitKey`] and [`OutputKey`].
pub const KEY_REVISIONS: usize = 256;

/// The keys of every unit of scenario `s`, in evaluation order; None when an input or parameter
/// cell is missing. One query for all units: after a change of a parameter or input *value* it is
/// verified in constant time (it reads only the plan and the cell maps, never cell values), and
/// building keys in order needs no recursion however deep the chains are.
#[salsa::tracked(returns(ref))]
pub fn unit_keys<'db>(db: &'db dyn Db, s: Scenario) -> Option<Vec<UnitKey<'db>>> {
    build_keys(db, s.plan(db), s.params(db), s.inputs(db)).into_iter().collect()
}

/// The keys of every mix unit of scenario `s` (§6.1), in mix plan order; empty without classes.
#[salsa::tracked(returns(ref))]
pub fn mix_keys<'db>(db: &'db dyn Db, s: Scenario) -> Option<Vec<MixKey<'db>>> {
    build_all_keys(db, s.plan(db), s.params(db), s.inputs(db)).1.into_iter().collect()
}

/// The key of every unit of plan `c` reading the cells `params` and `inputs`, in evaluation
/// order; None for a unit that reads a cell the maps lack, or whose dependency is None (an
/// analysis leaves out the cells its points vary, so exactly their cones come back None).
pub fn build_keys<'db>(
    db: &'db dyn Db,
    c: &Compiled,
    params: &BTreeMap<String, ParamCell>,
    inputs: &BTreeMap<String, SeriesCell>,
) -> Vec<Option<UnitKey<'db>>> {
    build_all_keys(db, c, params, inputs).0
}

/// [`build_keys`] and the keys of the mix units (§6.1), built in the plan's combined order.
#[allow(clippy::type_complexity)]
pub fn build_all_keys<'db>(
    db: &'db dyn Db,
    c: &Compiled,
    params: &BTreeMap<String, ParamCell>,
    inputs: &BTreeMap<String, SeriesCell>,
) -> (Vec<Option<UnitKey<'db>>>, Vec<Option<MixKey<'db>>>) {
    let Some(cp) = &c.classes else {
        let mut keys: Vec<Option<UnitKey<'db>>> = Vec::with_capacity(c.units.len());
        for u in 0..c.units.len() {
            let k = unit_key(db, c, u, &keys, &[], params, inputs);
            keys.push(k);
        }
        return (keys, Vec::new());
    };
    let mut keys: Vec<Option<UnitKey<'db>>> = vec![None; c.units.len()];
    let mut mkeys: Vec<Option<MixKey<'db>>> = vec![None; cp.units.len()];
    for n in &cp.order {
        match *n {
            KeyNode::Unit(u) => keys[u as usize] = unit_key(db, c, u as usize, &keys, &mkeys, params, inputs),
            KeyNode::Mix(m) => {
                let plan = &cp.units[m as usize];
                mkeys[m as usize] = (|| {
                    let units = plan.units.iter().map(|d| keys[*d as usize]).collect::<Option<Vec<_>>>()?;
                    let mixes = plan.mixes.iter().map(|d| mkeys[*d as usize]).collect::<Option<Vec<_>>>()?;
                    let p = plan.params.iter().map(|p| params.get(p).copied()).collect::<Option<Vec<_>>>()?;
                    Some(MixKey::new(db, plan.def.clone(), units, mixes, p))
                })();
            }
        }
    }
    (keys, mkeys)
}

/// The key of unit `u`, from the keys of its dependencies (None when one is missing).
fn unit_key<'db>(
    db: &'db dyn Db,
    c: &Compiled,
    u: usize,
    keys: &[Option<UnitKey<'db>>],
    mkeys: &[Option<MixKey<'db>>],
    params: &BTreeMap<String, ParamCell>,
    inputs: &BTreeMap<String, SeriesCell>,
) -> Option<UnitKey<'db>> {
    let plan = &c.units[u];
    {
        (|| {
            let deps = plan.deps.iter().map(|d| keys[*d as usize]).collect::<Option<Vec<_>>>()?;
            let outs: Vec<Option<OutputKey<'db>>> = plan
                .def
                .srcs
                .iter()
                .map(|s| match *s {
                    Src::Ext { dep, output } if c.units[plan.deps[dep as usize] as usize].def.n_outputs > 1 => {
                        Some(OutputKey::new(db, deps[dep as usize], output))
                    }
                    _ => None,
                })
                .collect();
            let p = plan.params.iter().map(|p| params.get(p).copied()).collect::<Option<Vec<_>>>()?;
            let i = plan.inputs.iter().map(|k| inputs.get(k).copied()).collect::<Option<Vec<_>>>()?;
            let m = plan
                .mixes
                .iter()
                .map(|(m, _)| mkeys.get(*m as usize).copied().flatten())
                .collect::<Option<Vec<_>>>()?;
            Some(UnitKey::new(db, plan.def.clone(), deps, outs, p, i, m))
        })()
    }
}

/// Evaluates `keys` in order (each unit's dependencies before it, so no query recurses) and
/// returns the series definitions whose computation ran; the rest were memoised or loaded from
/// the result cache ([`loaded_since_reset`] counts those).
/// Stops between two units when this thread's interrupt flag is set ([`interruptible`]).
///
/// With a result cache, the first unit decides how the rest are looked up: when it is not
/// memoised and was loaded from the cache (a restart, or a scenario another process computed),
/// the scenario's results are likely all there, so the content keys of the remaining units
/// (computed from the leaves, without any value) are fetched at once, concurrently
/// ([`prefetch`]); a computed first unit (a cache without this scenario), or a scenario whose
/// first units are memoised (a leaf change, even back to a cached value), fetches nothing ahead.
pub fn evaluate_in_order<'db>(
    db: &'db dyn Db,
    keys: impl IntoIterator<Item = UnitKey<'db>>,
) -> Result<u64, Interrupted> {
    EVALUATED.with(|e| e.set(0));
    LOADED.with(|e| e.set(0));
    let _cache_state = EvalGuard::start();
    let keys: Vec<UnitKey<'db>> = keys.into_iter().collect();
    let mut decided = db.result_cache().is_none();
    for (i, k) in keys.iter().enumerate() {
        check_interrupt()?;
        eval_unit(db, *k);
        if !decided {
            let (loaded, evaluated) = (LOADED.with(|e| e.get()), EVALUATED.with(|e| e.get()));
            if loaded + evaluated > 0 {
                decided = true;
                // Only when no unit before it was memoised (a restart, a scenario another
                // process computed): after memoised units (a leaf change back to a cached value)
                // the rest is mostly memoised too, and fetching it would be wasted reads.
                if loaded > 0 && i == 0 {
                    prefetch(db, &keys[i + 1..]);
                }
            }
        }
    }
    Ok(EVALUATED.with(|e| e.get()))
}

/// Fewer units than this are looked up one by one (a fetch at once costs a thread start).
const PREFETCH_MIN: usize = 4;

/// Fetches the result-cache entries of `keys` (in dependency order) into this thread's
/// [`PREFETCHED`] map, where [`eval_unit`] finds them. Content keys are Merkle: each is computed
/// from its dependencies' keys (those outside `keys` are memoised, so reading theirs is cheap),
/// parameter values and input fingerprints, never from a value.
fn prefetch<'db>(db: &'db dyn Db, keys: &[UnitKey<'db>]) {
    let Some(rc) = db.result_cache() else { return };
    if keys.len() < PREFETCH_MIN {
        return;
    }
    let mut known: HashMap<UnitKey<'db>, ContentKey> = HashMap::with_capacity(keys.len());
    let mut wanted = Vec::with_capacity(keys.len());
    for k in keys {
        let src_keys: Vec<ContentKey> =
            unit_sources(db, *k).map(|u| known.get(&u).copied().unwrap_or_else(|| eval_unit(db, u).1)).collect();
        let ck = content_key_of(db, *k, &src_keys);
        known.insert(*k, ck);
        if ck != NO_KEY {
            let def = k.def(db);
            wanted.push((ck, def.n_outputs as usize, def.bins as usize));
        }
    }
    // In chunks, so that a request's deadline is noticed within one chunk's reading.
    for chunk in wanted.chunks(PREFETCH_CHUNK) {
        if check_interrupt().is_err() {
            return;
        }
        let found = rc.get_many(chunk);
        if found.len() != chunk.len() {
            return;
        }
        PREFETCHED.with(|p| {
            let mut p = p.borrow_mut();
            for ((ck, _, _), o) in chunk.iter().zip(found) {
                if let Some(o) = o {
                    p.insert(*ck, o);
                }
            }
        });
    }
}

/// Units fetched ahead per `get_many` call (256 series of a year of hours are ~18 MB).
const PREFETCH_CHUNK: usize = 256;

/// The result-cache state of one evaluation driver on this thread: starts tracking the keys
/// computed after a miss ([`MISSED`]) and clears it and the prefetched entries when the
/// evaluation ends, however it ends.
struct EvalGuard;

impl EvalGuard {
    fn start() -> EvalGuard {
        MISSED.with(|m| *m.borrow_mut() = Some(HashSet::new()));
        EvalGuard
    }
}

impl Drop for EvalGuard {
    fn drop(&mut self) {
        PREFETCHED.with(|p| p.borrow_mut().clear());
        MISSED.with(|m| *m.borrow_mut() = None);
    }
}

/// The units whose outputs a unit reads, one per external source of its definition, in the
/// order its content key hashes them.
fn unit_sources<'db>(db: &'db dyn Db, key: UnitKey<'db>) -> impl Iterator<Item = UnitKey<'db>> + 'db {
    let deps = key.deps(db);
    key.def(db).srcs.iter().zip(key.outs(db)).filter_map(move |(s, out)| match (*s, out) {
        (Src::Ext { .. }, Some(out)) => Some(*out.unit(db)),
        (Src::Ext { dep, .. }, None) => Some(deps[dep as usize]),
        (Src::Own(_), _) => None,
    })
}

/// A unit's content key ([`cache::content_key`]) from its sources' keys; [`NO_KEY`] without a
/// result cache, and for a unit reading class mixes (mixes have no content keys yet).
fn content_key_of<'db>(db: &'db dyn Db, key: UnitKey<'db>, src_keys: &[ContentKey]) -> ContentKey {
    if db.result_cache().is_none() || !key.mixes(db).is_empty() {
        return NO_KEY;
    }
    let inputs: Vec<ContentKey> = key.inputs(db).iter().map(|c| *input_key(db, *c)).collect();
    cache::content_key(key.def(db), src_keys, key.params(db).iter().map(|c| c.value(db)), &inputs)
}

/// An evaluation stopped because its caller's interrupt flag was set (the request's deadline
/// passed, or its client went away).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interrupted;

impl Interrupted {
    /// The diagnostic code the server answers as DEADLINE_EXCEEDED.
    pub const CODE: &'static str = "deadline_exceeded";

    pub fn diagnostic(self) -> Diagnostic {
        Diagnostic::error(Self::CODE, "the request's deadline passed before its evaluation finished")
            .with_help("ask for fewer series or bins, or give the request a longer deadline")
    }
}

impl From<Interrupted> for Diagnostics {
    fn from(i: Interrupted) -> Diagnostics {
        i.diagnostic().into()
    }
}

thread_local! {
    /// The interrupt flag of the work running on this thread (set by [`interruptible`]).
    static INTERRUPT: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
    /// Series definitions evaluated on this thread, never reset (what a request evaluated is
    /// the difference; [`interruptible`] reports it).
    static EVALUATED_EVER: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` on this thread with `stop` as its interrupt flag: the evaluation drivers check it
/// between units and return [`Interrupted`] once it is set (the engine has no clock; whoever owns
/// the deadline sets the flag). Returns `f`'s result and the series definitions this thread
/// evaluated meanwhile.
pub fn interruptible<T>(stop: Option<Arc<AtomicBool>>, f: impl FnOnce() -> T) -> (T, u64) {
    let before = EVALUATED_EVER.with(|e| e.get());
    let previous = INTERRUPT.with(|i| i.replace(stop));
    struct Restore(Option<Option<Arc<AtomicBool>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take().flatten();
            INTERRUPT.with(|i| *i.borrow_mut() = previous);
        }
    }
    let restore = Restore(Some(previous));
    let out = f();
    drop(restore);
    (out, EVALUATED_EVER.with(|e| e.get()) - before)
}

/// Err once this thread's interrupt flag is set.
pub fn check_interrupt() -> Result<(), Interrupted> {
    let set = INTERRUPT.with(|i| i.borrow().as_ref().is_some_and(|f| f.load(Ordering::Relaxed)));
    if set { Err(Interrupted) } else { Ok(()) }
}

/// Series definitions loaded from the result cache on this thread since the last
/// [`evaluate_in_order`] (or [`evaluate_point`]) began.
pub fn loaded_since_reset() -> u64 {
    LOADED.with(|e| e.get())
}

/// Evaluates the keyed value units and mix units of `order` (the others are skipped), each after
/// everything it reads, and returns the series definitions whose computation ran.
pub fn evaluate_known<'db>(
    db: &'db dyn Db,
    order: &[KeyNode],
    keys: &[Option<UnitKey<'db>>],
    mkeys: &[Option<MixKey<'db>>],
) -> Result<u64, Interrupted> {
    EVALUATED.with(|e| e.set(0));
    LOADED.with(|e| e.set(0));
    let _cache_state = EvalGuard::start();
    for n in order {
        check_interrupt()?;
        match *n {
            KeyNode::Unit(u) => {
                if let Some(k) = keys[u as usize] {
                    eval_unit(db, k);
                }
            }
            KeyNode::Mix(m) => {
                if let Some(k) = mkeys.get(m as usize).copied().flatten() {
                    eval_mix(db, k);
                }
            }
        }
    }
    Ok(EVALUATED.with(|e| e.get()))
}

/// Keeps the keys of `scenarios` (and the memos attached to them) from being collected. The host
/// calls this for every open scenario at least every `KEY_REVISIONS / 4` changes.
///
/// Each key is interned again, in a new revision: that marks it as used now *and* moves it to the
/// front of salsa's LRU list. (Verifying a query that read the key marks it used but leaves it
/// where it is; salsa reuses slots only from the tail of that list, so a fresh key left at the
/// tail would stop the stale keys behind it from ever being collected. Interning again in the
/// revision that verified it would not move it either, hence the new revision.)
pub fn keep_keys(db: &mut Database, scenarios: &[Scenario]) {
    use salsa::plumbing::{AsId, FromId};
    struct Fields {
        def: Arc<UnitDef>,
        deps: Vec<salsa::Id>,
        outs: Vec<Option<(salsa::Id, u16)>>,
        params: Vec<ParamCell>,
        inputs: Vec<SeriesCell>,
        mixes: Vec<salsa::Id>,
    }
    struct MixFields {
        def: Arc<MixDef>,
        units: Vec<salsa::Id>,
        mixes: Vec<salsa::Id>,
        params: Vec<ParamCell>,
    }
    let mut seen = std::collections::HashSet::new();
    let mut all = Vec::new();
    let mut all_mixes = Vec::new();
    for s in scenarios {
        if s.plan(db).classes.is_some() {
            for k in mix_keys(db, *s).iter().flatten() {
                if !seen.insert(k.as_id()) {
                    continue;
                }
                all_mixes.push(MixFields {
                    def: k.def(db).clone(),
                    units: k.units(db).iter().map(AsId::as_id).collect(),
                    mixes: k.mixes(db).iter().map(AsId::as_id).collect(),
                    params: k.params(db).clone(),
                });
            }
        }
        for k in unit_keys(db, *s).iter().flatten() {
            if !seen.insert(k.as_id()) {
                continue;
            }
            all.push(Fields {
                def: k.def(db).clone(),
                deps: k.deps(db).iter().map(AsId::as_id).collect(),
                outs: k.outs(db).iter().map(|o| o.map(|o| (o.unit(db).as_id(), *o.output(db)))).collect(),
                params: k.params(db).clone(),
                inputs: k.inputs(db).clone(),
                mixes: k.mixes(db).iter().map(AsId::as_id).collect(),
            });
        }
    }
    salsa::Database::synthetic_write(db, Durability::LOW);
    for f in all_mixes {
        let units: Vec<UnitKey<'_>> = f.units.into_iter().map(UnitKey::from_id).collect();
        let mixes: Vec<MixKey<'_>> = f.mixes.into_iter().map(MixKey::from_id).collect();
        MixKey::new(&*db, f.def, units, mixes, f.params);
    }
    for f in all {
        let deps: Vec<UnitKey<'_>> = f.deps.into_iter().map(UnitKey::from_id).collect();
        let outs: Vec<Option<OutputKey<'_>>> =
            f.outs.into_iter().map(|o| o.map(|(u, out)| OutputKey::new(&*db, UnitKey::from_id(u), out))).collect();
        let mixes: Vec<MixKey<'_>> = f.mixes.into_iter().map(MixKey::from_id).collect();
        UnitKey::new(&*db, f.def, deps, outs, f.params, f.inputs, mixes);
    }
}

/// What one unit reads, as stable identities and value fingerprints, to find the downstream cone
/// of a change without evaluating (watchers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitReads {
    /// The interned key's id: stable while the database lives; a different id means the unit's
    /// effective definition changed.
    pub key: salsa::Id,
    /// (cell id, fingerprint of its current value) for every parameter and input cell it reads.
    pub cells: Vec<(salsa::Id, u64)>,
}

/// [`UnitReads`] of every unit of a scenario, in plan order.
pub fn unit_reads(db: &dyn Db, s: Scenario) -> Option<Vec<UnitReads>> {
    use salsa::plumbing::AsId;
    use std::hash::{Hash, Hasher};
    let keys = unit_keys(db, s).as_ref()?;
    let fp = |f: &dyn Fn(&mut std::hash::DefaultHasher)| {
        let mut h = std::hash::DefaultHasher::new();
        f(&mut h);
        h.finish()
    };
    Some(
        keys.iter()
            .map(|k| {
                let mut cells: Vec<(salsa::Id, u64)> =
                    k.params(db).iter().map(|c| (c.as_id(), fp(&|h| c.value(db).hash(h)))).collect();
                cells.extend(k.inputs(db).iter().map(|c| {
                    let d = c.data(db);
                    (c.as_id(), fp(&|h| (d.sha256.as_ref(), &d.gaps[..]).hash(h)))
                }));
                UnitReads { key: k.as_id(), cells }
            })
            .collect(),
    )
}

/// All outputs of a unit, compared bitwise, with the unit's content key (`engine::cache`).
///
/// Equality ignores the key: a unit recomputed under a new key with bitwise-equal outputs is
/// backdated as before, and its readers keep the keys they were computed under. Those keys still
/// describe their values (the inputs they were derived from give the same outputs), so every key
/// the cache sees maps to the value its derivation computes.
#[derive(Clone, Debug)]
pub struct Outputs(pub Vec<Series>, pub ContentKey);

impl PartialEq for Outputs {
    fn eq(&self, other: &Outputs) -> bool {
        self.0 == other.0
    }
}

impl Eq for Outputs {}

/// One output of a unit with the unit's content key; equality ignores the key (see [`Outputs`]).
#[derive(Clone, Debug)]
pub struct KeyedSeries(pub Series, pub ContentKey);

impl PartialEq for KeyedSeries {
    fn eq(&self, other: &KeyedSeries) -> bool {
        self.0 == other.0
    }
}

impl Eq for KeyedSeries {}

thread_local! {
    /// Series definitions evaluated on this thread since the last reset (§9 accounting).
    static EVALUATED: Cell<u64> = const { Cell::new(0) };
    /// Classed series whose mixes were evaluated on this thread since the last reset (§6.1).
    static MIXES_EVALUATED: Cell<u64> = const { Cell::new(0) };
    /// Series definitions loaded from the result cache on this thread since the last reset.
    static LOADED: Cell<u64> = const { Cell::new(0) };
    /// Result-cache entries fetched ahead for the evaluation running on this thread
    /// ([`prefetch`]), taken by [`eval_unit`] as it reaches their units.
    static PREFETCHED: RefCell<HashMap<ContentKey, Vec<Arc<[f64]>>>> = RefCell::new(HashMap::new());
    /// While an evaluation driver runs on this thread: the content keys of the units it computed
    /// because the result cache did not have them. A unit reading one of them is not looked up
    /// (its key is new too, unless the cache evicted or lost its dependency's entry alone), so a
    /// new root value costs one miss, not one per unit downstream (on a network store, one GET
    /// each).
    static MISSED: RefCell<Option<HashSet<ContentKey>>> = const { RefCell::new(None) };
}

/// The fingerprint of an input cell's values, hashed once per value (only with a result cache).
#[salsa::tracked]
pub fn input_key(db: &dyn Db, cell: SeriesCell) -> ContentKey {
    cache::input_fingerprint(&cell.data(db).values)
}

/// Evaluates one unit from its dependencies' memoised series, or loads it from the result cache
/// when the host attached one and it holds the unit's content key.
#[salsa::tracked(returns(ref))]
pub fn eval_unit<'db>(db: &'db dyn Db, key: UnitKey<'db>) -> Outputs {
    let def = key.def(db);
    let deps = key.deps(db);
    let outs = key.outs(db);
    let rc = db.result_cache();
    let mut src_keys: Vec<ContentKey> = Vec::new();
    let mut ext: Vec<&[f64]> = Vec::with_capacity(def.srcs.len());
    for (s, out) in def.srcs.iter().zip(outs) {
        let (values, k): (&[f64], ContentKey) = match (*s, out) {
            // Reading through `unit_output` records a dependency on that output only, so a reader
            // is not re-evaluated when only a sibling output changed.
            (Src::Ext { .. }, Some(out)) => {
                let o = unit_output(db, *out);
                (&o.0[..], o.1)
            }
            (Src::Ext { dep, .. }, None) => {
                let o = eval_unit(db, deps[dep as usize]);
                (&o.0[0][..], o.1)
            }
            (Src::Own(_), _) => (&[][..], NO_KEY),
        };
        if rc.is_some() && matches!(s, Src::Ext { .. }) {
            src_keys.push(k);
        }
        ext.push(values);
    }
    let ck = content_key_of(db, key, &src_keys);
    let after_miss =
        ck != NO_KEY && MISSED.with(|m| m.borrow().as_ref().is_some_and(|m| src_keys.iter().any(|k| m.contains(k))));
    // An entry fetched ahead is used whatever happened upstream (it is verified and in hand);
    // only a new lookup is skipped downstream of a miss.
    let found = match rc.filter(|_| ck != NO_KEY) {
        Some(rc) => PREFETCHED
            .with(|p| p.borrow_mut().remove(&ck))
            .or_else(|| (!after_miss).then(|| rc.get(&ck, def.n_outputs as usize, def.bins as usize)).flatten()),
        None => None,
    };
    if let Some(found) = found {
        LOADED.with(|e| e.set(e.get() + def.members.len() as u64));
        return Outputs(found.into_iter().map(Series).collect(), ck);
    }
    let params: Vec<f64> = key.params(db).iter().map(|c| c.value(db).as_f64().unwrap_or(f64::NAN)).collect();
    let inputs: Vec<&[f64]> = key.inputs(db).iter().map(|c| &c.data(db).values[..]).collect();
    let mixes: Vec<&[f64]> =
        key.mixes(db).iter().zip(&def.mix_outs).map(|(m, o)| &eval_mix(db, *m).0[*o as usize][..]).collect();
    EVALUATED.with(|e| e.set(e.get() + def.members.len() as u64));
    EVALUATED_EVER.with(|e| e.set(e.get() + def.members.len() as u64));
    let out = def.eval(&UnitEnv { ext: &ext, params: &params, inputs: &inputs, mixes: &mixes });
    if let Some(rc) = rc.filter(|_| ck != NO_KEY) {
        MISSED.with(|m| {
            if let Some(m) = m.borrow_mut().as_mut() {
                m.insert(ck);
            }
        });
        rc.put(salsa::plumbing::AsId::as_id(&key).as_bits(), &ck, &out);
    }
    Outputs(out.into_iter().map(Series).collect(), ck)
}

/// The series a mix definition reads: `val(dep, output)` for each value slot read from another
/// unit, `mix(dep, output)` for each mix slot read from another mix unit (own slots are empty).
fn mix_reads<'a>(
    def: &MixDef,
    val: impl Fn(u16, u16) -> &'a [f64],
    mix: impl Fn(u16, u16) -> &'a [f64],
) -> (Vec<&'a [f64]>, Vec<&'a [f64]>) {
    let vals = def
        .vals
        .iter()
        .map(|s| match *s {
            Src::Ext { dep, output } => val(dep, output),
            Src::Own(_) => &[][..],
        })
        .collect();
    let mixes = def
        .mixes
        .iter()
        .map(|s| match *s {
            MixSrc::Ext { dep, output } => mix(dep, output),
            MixSrc::Own(_) => &[][..],
        })
        .collect();
    (vals, mixes)
}

/// Evaluates one mix unit (§6.1) from the memoised values and mixes it reads.
#[salsa::tracked(returns(ref))]
pub fn eval_mix<'db>(db: &'db dyn Db, key: MixKey<'db>) -> Outputs {
    let def = key.def(db);
    let units = key.units(db);
    let (vals, mixes) = mix_reads(
        def,
        |dep, output| &eval_unit(db, units[dep as usize]).0[output as usize][..],
        |dep, output| &eval_mix(db, key.mixes(db)[dep as usize]).0[output as usize][..],
    );
    let params: Vec<f64> = key.params(db).iter().map(|c| c.value(db).as_f64().unwrap_or(f64::NAN)).collect();
    MIXES_EVALUATED.with(|e| e.set(e.get() + def.members.len() as u64));
    let out = def.eval(&MixEnv { vals: &vals, params: &params, mixes: &mixes });
    // Mixes are not cached (their readers have no content key, see `eval_unit`).
    Outputs(out.into_iter().map(Series).collect(), NO_KEY)
}

/// One output of a multi-output unit, memoised on its own so that a reader of an unchanged
/// output is not re-evaluated when a sibling output changes.
#[salsa::tracked(returns(ref))]
pub fn unit_output<'db>(db: &'db dyn Db, key: OutputKey<'db>) -> KeyedSeries {
    let o = eval_unit(db, *key.unit(db));
    KeyedSeries(o.0[*key.output(db) as usize].clone(), o.1)
}

/// Output `output` of the unit with key `key`, for a caller that is not a unit (an analysis point):
/// it needs no memo of its own per output, so it reads the unit's outputs directly (interning an
/// `OutputKey` outside a query would make it immortal).
fn output_of<'db>(db: &'db dyn Db, key: UnitKey<'db>, output: u16) -> &'db Series {
    &eval_unit(db, key).0[output as usize]
}

/// §9 accounting of one evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Accounting {
    pub nodes_total: u64,
    pub nodes_evaluated: u64,
    /// Memoised in this process.
    pub nodes_reused: u64,
    /// Loaded from the result cache (computed by an earlier process or another scenario).
    pub nodes_loaded: u64,
    pub elapsed_us: u64,
}

impl Accounting {
    /// Adds the counts of `b` (not its time) into these: two evaluations answering one request.
    pub fn add_counts(&mut self, b: &Accounting) {
        self.nodes_total += b.nodes_total;
        self.nodes_evaluated += b.nodes_evaluated;
        self.nodes_reused += b.nodes_reused;
        self.nodes_loaded += b.nodes_loaded;
    }
}

/// Evaluated series of one request.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub compiled: Arc<Compiled>,
    /// Series index → value: the requested series (every series when none were named).
    pub series: BTreeMap<u32, Series>,
    pub accounting: Accounting,
    /// §6.1: series index → its mix (`bins × k`), for the classed series a request asked
    /// per-class series of ([`evaluate_mixes`]); empty otherwise.
    pub mixes: BTreeMap<u32, Series>,
    /// Classed series whose mixes were computed (not reused) for this request.
    pub mixes_evaluated: u64,
}

/// Which class a per-class series is of: a declared class (index) or `_unattributed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClassId {
    Declared(usize),
    Unattributed,
}

impl Evaluation {
    pub fn get(&self, id: &str) -> Option<&Series> {
        self.compiled.by_id.get(id).and_then(|s| self.series.get(s))
    }

    /// `x@c[t] = x[t] · m_x[t][c]` (§6.1) of a series whose value and mix this evaluation holds.
    pub fn class_series(&self, s: u32, class: ClassId) -> Option<Vec<f64>> {
        let x = self.series.get(&s)?;
        let m = self.mixes.get(&s)?;
        Some(class_part(x, m, self.compiled.classes.as_ref()?.k(), class))
    }

    /// `x@c[t]` at one bin.
    pub fn class_value(&self, s: u32, class: ClassId, t: usize) -> Option<f64> {
        let x = *self.series.get(&s)?.get(t)?;
        let m = self.mixes.get(&s)?;
        let k = self.compiled.classes.as_ref()?.k();
        Some(x * class.share(m.get(t * k..(t + 1) * k)?))
    }

    /// The classes series `s` has per-class series of: every declared class, and
    /// `_unattributed` where it is non-zero somewhere (§6.1). Empty when `s` is not classed or
    /// its mix was not computed.
    pub fn classes_of(&self, s: u32) -> Vec<ClassId> {
        let (Some(x), Some(m), Some(cp)) = (self.series.get(&s), self.mixes.get(&s), self.compiled.classes.as_ref())
        else {
            return Vec::new();
        };
        let k = cp.k();
        let mut out: Vec<ClassId> = (0..k).map(ClassId::Declared).collect();
        if x.iter()
            .enumerate()
            .any(|(t, v)| *v != 0.0 && crate::engine::mix::unattributed(&m[t * k..(t + 1) * k]) > 0.0)
        {
            out.push(ClassId::Unattributed);
        }
        out
    }

    /// The id of a per-class series, `<series id>@<class id>`.
    pub fn class_series_id(&self, s: u32, class: ClassId) -> String {
        let c = match class {
            ClassId::Declared(c) => self.compiled.classes.as_ref().map_or("", |cp| cp.ids[c].as_str()),
            ClassId::Unattributed => crate::model::doc::UNATTRIBUTED,
        };
        format!("{}@{c}", self.compiled.series_id(s))
    }
}

/// `x@c[t] = x[t] · m[t][c]` (§6.1): the part of class `class` of the series `x` whose mix (`bins × k`)
/// is `m`.
pub fn class_part(x: &[f64], m: &[f64], k: usize, class: ClassId) -> Vec<f64> {
    x.iter().enumerate().map(|(t, v)| v * class.share(&m[t * k..(t + 1) * k])).collect()
}

impl ClassId {
    /// This class's share of one bin's flow, from that bin's mix row (the `k` declared shares).
    pub fn share(self, row: &[f64]) -> f64 {
        match self {
            ClassId::Declared(c) => row[c],
            ClassId::Unattributed => crate::engine::mix::unattributed(row),
        }
    }
}

impl Compiled {
    /// The class named `class` (§6.1): a declared class id, or `_unattributed`.
    pub fn class_id(&self, class: &str) -> Option<ClassId> {
        if class == crate::model::doc::UNATTRIBUTED {
            return Some(ClassId::Unattributed);
        }
        self.classes.as_ref()?.ids.iter().position(|x| x == class).map(ClassId::Declared)
    }

    /// True when series `s` carries classes (has a mix).
    pub fn is_classed(&self, s: u32) -> bool {
        self.classes.as_ref().is_some_and(|cp| cp.series_mix[s as usize].is_some())
    }

    /// The series and class of a per-class id `<series>@<class>` (§6.1): the series classed and
    /// the class declared (or `_unattributed`); None otherwise.
    pub fn per_class(&self, id: &str) -> Option<(u32, ClassId)> {
        let (base, class) = id.rsplit_once('@')?;
        let s = *self.by_id.get(base)?;
        self.is_classed(s).then_some(())?;
        Some((s, self.class_id(class)?))
    }

    /// What an analysis point evaluates for value `targets` and the mixes of `mix_targets`: the
    /// value units (and, with classes, the mix units) needed, each after everything it reads.
    /// Mix units appear only when a mix is asked for or a class route is in the closure.
    pub fn point_order(&self, targets: &[u32], mix_targets: &[u32]) -> Vec<KeyNode> {
        self.order_with_mixes(self.closure(Some(targets)), mix_targets)
    }

    /// The work of evaluating one node of an evaluation order, in series definitions over the
    /// grid: a value unit's weight; a mix unit (§6.1) `k` (the declared classes) for each series
    /// it holds the mix of.
    pub fn node_weight(&self, n: &KeyNode) -> u64 {
        match n {
            KeyNode::Unit(u) => self.units[*u as usize].weight as u64,
            KeyNode::Mix(m) => {
                self.classes.as_ref().map_or(0, |cp| cp.units[*m as usize].series.len() as u64 * cp.k().max(1) as u64)
            }
        }
    }

    /// The work ([`Compiled::node_weight`]) of evaluating `targets` (every series when None)
    /// and the mixes of `mix_targets`: the one measure of the evaluation budget.
    pub fn work(&self, targets: Option<&[u32]>, mix_targets: &[u32]) -> u64 {
        self.order_with_mixes(self.closure(targets), mix_targets).iter().map(|n| self.node_weight(n)).sum()
    }

    /// `closure` (value units in evaluation order) with the mix units it and `mix_targets`
    /// need, each after everything it reads.
    fn order_with_mixes(&self, closure: Vec<u32>, mix_targets: &[u32]) -> Vec<KeyNode> {
        match &self.classes {
            Some(cp)
                if !mix_targets.is_empty() || closure.iter().any(|u| !self.units[*u as usize].mixes.is_empty()) =>
            {
                cp.closure(&self.units, &closure, mix_targets)
            }
            _ => closure.into_iter().map(KeyNode::Unit).collect(),
        }
    }
}

/// Adds the mixes of the classed series among `series` to `ev` (§6.1), evaluating the mix
/// units they need bottom-up (each after everything it reads, so no query recurses deeply).
/// Nothing happens for a plan without classes. Totals are not recomputed: mix units read the
/// memoised values.
pub fn evaluate_mixes(db: &dyn Db, s: Scenario, ev: &mut Evaluation, series: &[u32]) -> Result<(), Diagnostics> {
    let compiled = ev.compiled.clone();
    let Some(cp) = &compiled.classes else { return Ok(()) };
    let classed: Vec<u32> = series.iter().copied().filter(|s| cp.series_mix[*s as usize].is_some()).collect();
    if classed.is_empty() {
        return Ok(());
    }
    let (Some(units), Some(mixes)) = (unit_keys(db, s), mix_keys(db, s)) else {
        return Err(missing_input(db, s, &compiled));
    };
    let order = cp.closure(&compiled.units, &[], &classed);
    MIXES_EVALUATED.with(|e| e.set(0));
    let (known, mkeys): (Vec<_>, Vec<_>) =
        (units.iter().copied().map(Some).collect(), mixes.iter().copied().map(Some).collect());
    evaluate_known(db, &order, &known, &mkeys)?;
    ev.mixes_evaluated += MIXES_EVALUATED.with(|e| e.get());
    for sidx in classed {
        let (m, o) = cp.series_mix[sidx as usize].unwrap_or((0, 0));
        ev.mixes.insert(sidx, eval_mix(db, mixes[m as usize]).0[o as usize].clone());
        ev.series.entry(sidx).or_insert_with(|| {
            let info = &compiled.series[sidx as usize];
            eval_unit(db, units[info.unit as usize]).0[info.output as usize].clone()
        });
    }
    Ok(())
}

/// Evaluates the units needed for `targets` (every series when None) bottom-up, so that each
/// salsa query finds its dependencies already verified: the stack depth stays constant however
/// long the dependency chains are. `elapsed_us` is left to the caller, which owns the clock.
pub fn evaluate(db: &dyn Db, s: Scenario, targets: Option<&[u32]>) -> Result<Evaluation, Diagnostics> {
    let compiled = s.plan(db).clone();
    let closure = compiled.closure(targets);
    let Some(all) = unit_keys(db, s) else {
        return Err(missing_input(db, s, &compiled));
    };
    let keys: Vec<UnitKey<'_>> = closure.iter().map(|u| all[*u as usize]).collect();
    let class_routes = closure.iter().any(|u| !compiled.units[*u as usize].mixes.is_empty());
    let (nodes_evaluated, nodes_total, mixes_evaluated) = match (&compiled.classes, class_routes) {
        // Routers with class routes read mixes: evaluate value units and the mix units they
        // need in one order, bottom-up.
        (Some(cp), true) => {
            let Some(mkeys) = mix_keys(db, s) else {
                return Err(missing_input(db, s, &compiled));
            };
            let order = cp.closure(&compiled.units, &closure, &[]);
            let total = order
                .iter()
                .map(|n| match n {
                    KeyNode::Unit(u) => compiled.units[*u as usize].weight as u64,
                    KeyNode::Mix(_) => 0,
                })
                .sum();
            MIXES_EVALUATED.with(|e| e.set(0));
            let (units, mixes): (Vec<_>, Vec<_>) =
                (all.iter().copied().map(Some).collect(), mkeys.iter().copied().map(Some).collect());
            let evaluated = evaluate_known(db, &order, &units, &mixes)?;
            (evaluated, total, MIXES_EVALUATED.with(|e| e.get()))
        }
        _ => {
            let evaluated = evaluate_in_order(db, keys.iter().copied())?;
            (evaluated, closure.iter().map(|u| compiled.units[*u as usize].weight as u64).sum(), 0)
        }
    };
    let nodes_loaded = loaded_since_reset();
    // Return the requested series (all of them when no targets are given); the rest of the
    // closure was evaluated only as their dependencies.
    let mut series = BTreeMap::new();
    match targets {
        Some(ts) => {
            for &sidx in ts {
                let info = &compiled.series[sidx as usize];
                let outs = eval_unit(db, all[info.unit as usize]);
                series.insert(sidx, outs.0[info.output as usize].clone());
            }
        }
        None => {
            for (&u, &k) in closure.iter().zip(&keys) {
                let outs = eval_unit(db, k);
                for (o, &sidx) in compiled.units[u as usize].series.iter().enumerate() {
                    series.insert(sidx, outs.0[o].clone());
                }
            }
        }
    }
    let accounting = Accounting {
        nodes_total,
        nodes_evaluated,
        nodes_reused: nodes_total.saturating_sub(nodes_evaluated + nodes_loaded),
        nodes_loaded,
        elapsed_us: 0,
    };
    Ok(Evaluation { compiled, series, accounting, mixes: BTreeMap::new(), mixes_evaluated })
}

/// Values a scenario that is not a salsa input reads (an analysis point): parameters by name,
/// input series by key.
pub struct PointValues<'a> {
    pub params: &'a dyn Fn(&str) -> Option<f64>,
    pub inputs: &'a dyn Fn(&str) -> Option<&'a [f64]>,
}

/// The units and mix units a point reads from memos ([`evaluate_point`]): the target's keys, None
/// for the ones the point computes.
#[derive(Clone, Copy)]
pub struct Memos<'a, 'db> {
    pub units: &'a [Option<UnitKey<'db>>],
    pub mixes: &'a [Option<MixKey<'db>>],
}

/// What an analysis point evaluated ([`evaluate_point`]).
pub struct PointResult {
    /// The target series.
    pub series: BTreeMap<u32, Series>,
    /// §6.1: the mixes (`bins × k`) of the mix targets.
    pub mixes: BTreeMap<u32, Series>,
    /// Series definitions computed (memo reads that had to execute included).
    pub evaluated: u64,
}

/// Evaluates `targets` of plan `c`, and the mixes of `mix_targets` (§6.1), for a scenario that
/// is not a salsa input. `order` is `c.point_order(targets, mix_targets)` (callers evaluating
/// many points compute it once). A value unit with a key in `memos.units` (a mix unit with one
/// in `memos.mixes`) is read from its memo (it must have been evaluated in this revision, so the read
/// does not recurse); every other unit of the order is computed here from `values` and its
/// dependencies, bottom-up, and not memoised: a point's own cone is of no use to anyone else, and
/// memoising it would hold every point's series until salsa collects them.
/// Without mix units a computed series is dropped after its last reader, so a point holds few
/// series at a time; with them every computed series is kept until the end. Err names a
/// parameter or input `values` lacks.
pub fn evaluate_point<'db>(
    db: &'db dyn Db,
    c: &Compiled,
    memos: Memos<'_, 'db>,
    values: &PointValues<'_>,
    order: &[KeyNode],
    targets: &[u32],
    mix_targets: &[u32],
) -> Result<PointResult, String> {
    EVALUATED.with(|e| e.set(0));
    LOADED.with(|e| e.set(0));
    let (known, known_mix) = (memos.units, memos.mixes);
    let with_mixes = order.iter().any(|n| matches!(n, KeyNode::Mix(_)));
    // Readers left of each computed unit: computed units of the closure reading it, and the
    // targets it produces (read at the end). With mix units nothing is dropped.
    let mut readers: BTreeMap<u32, u32> = BTreeMap::new();
    for n in order {
        let &KeyNode::Unit(u) = n else { continue };
        if known[u as usize].is_some() {
            continue;
        }
        for &d in c.units[u as usize].deps.iter().filter(|d| known[**d as usize].is_none()) {
            *readers.entry(d).or_default() += 1;
        }
    }
    for &s in targets {
        *readers.entry(c.series[s as usize].unit).or_default() += 1;
    }
    let mut own: BTreeMap<u32, Vec<Series>> = BTreeMap::new();
    let mut own_mix: BTreeMap<u32, Vec<Arc<[f64]>>> = BTreeMap::new();
    let mut computed = 0u64;
    let param = |p: &String| (values.params)(p).ok_or_else(|| format!("parameter `{p}`"));
    let memo_mix = |m: u32| known_mix.get(m as usize).copied().flatten();
    for n in order {
        let u = match *n {
            KeyNode::Unit(u) => u,
            KeyNode::Mix(m) => {
                let Some(cp) = &c.classes else { continue };
                if memo_mix(m).is_some() {
                    continue;
                }
                let mp = &cp.units[m as usize];
                let def = &mp.def;
                let (vals, mixes) = mix_reads(
                    def,
                    |dep, output| {
                        let d = mp.units[dep as usize];
                        match known[d as usize] {
                            Some(k) => &output_of(db, k, output)[..],
                            None => own.get(&d).map_or(&[][..], |o| &o[output as usize][..]),
                        }
                    },
                    |dep, output| {
                        let d = mp.mixes[dep as usize];
                        match memo_mix(d) {
                            Some(k) => &eval_mix(db, k).0[output as usize][..],
                            None => own_mix.get(&d).map_or(&[][..], |o| &o[output as usize][..]),
                        }
                    },
                );
                let params = mp.params.iter().map(param).collect::<Result<Vec<f64>, String>>()?;
                let out = def.eval(&MixEnv { vals: &vals, params: &params, mixes: &mixes });
                own_mix.insert(m, out);
                continue;
            }
        };
        if known[u as usize].is_some() {
            continue;
        }
        let plan = &c.units[u as usize];
        let def = &plan.def;
        let dep_out = |dep: u16, output: u16| -> &[f64] {
            let d = plan.deps[dep as usize];
            match known[d as usize] {
                Some(k) => &output_of(db, k, output)[..],
                None => own.get(&d).map_or(&[][..], |o| &o[output as usize][..]),
            }
        };
        let ext: Vec<&[f64]> = def
            .srcs
            .iter()
            .map(|s| match *s {
                Src::Ext { dep, output } => dep_out(dep, output),
                Src::Own(_) => &[][..],
            })
            .collect();
        let params = plan.params.iter().map(param).collect::<Result<Vec<f64>, String>>()?;
        let inputs = plan
            .inputs
            .iter()
            .map(|k| (values.inputs)(k).ok_or_else(|| format!("input `{k}`")))
            .collect::<Result<Vec<&[f64]>, String>>()?;
        // A router target with class routes reads its source's mix (computed before it).
        let mixes: Vec<&[f64]> = plan
            .mixes
            .iter()
            .zip(&def.mix_outs)
            .map(|((m, _), o)| match memo_mix(*m) {
                Some(k) => &eval_mix(db, k).0[*o as usize][..],
                None => own_mix.get(m).map_or(&[][..], |out| &out[*o as usize][..]),
            })
            .collect();
        let out = def.eval(&UnitEnv { ext: &ext, params: &params, inputs: &inputs, mixes: &mixes });
        computed += def.members.len() as u64;
        EVALUATED_EVER.with(|e| e.set(e.get() + def.members.len() as u64));
        if with_mixes {
            own.insert(u, out.into_iter().map(Series::from).collect());
            continue;
        }
        for &d in plan.deps.iter().filter(|d| known[**d as usize].is_none()) {
            if let Some(n) = readers.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    own.remove(&d);
                }
            }
        }
        if readers.get(&u).is_some_and(|n| *n > 0) {
            own.insert(u, out.into_iter().map(Series::from).collect());
        }
    }
    let mut series = BTreeMap::new();
    for &s in targets {
        let info = &c.series[s as usize];
        let v = match known[info.unit as usize] {
            Some(k) => output_of(db, k, info.output).clone(),
            None => {
                own.get(&info.unit).map(|o| o[info.output as usize].clone()).unwrap_or_else(|| Series::from(Vec::new()))
            }
        };
        series.insert(s, v);
    }
    let mut mixes = BTreeMap::new();
    if let Some(cp) = &c.classes {
        for &s in mix_targets {
            let Some((m, o)) = cp.series_mix[s as usize] else { continue };
            if let Some(k) = memo_mix(m) {
                mixes.insert(s, eval_mix(db, k).0[o as usize].clone());
            } else if let Some(out) = own_mix.get(&m) {
                mixes.insert(s, Series(out[o as usize].clone()));
            }
        }
    }
    Ok(PointResult { series, mixes, evaluated: computed + EVALUATED.with(|e| e.get()) })
}

fn missing_input(db: &dyn Db, s: Scenario, c: &Compiled) -> Diagnostics {
    let inputs: std::collections::BTreeSet<&str> =
        c.units.iter().flat_map(|u| &u.inputs).filter(|k| !s.inputs(db).contains_key(*k)).map(String::as_str).collect();
    let params: std::collections::BTreeSet<&str> =
        c.units.iter().flat_map(|u| &u.params).filter(|p| !s.params(db).contains_key(*p)).map(String::as_str).collect();
    let mut msg = String::from("the scenario is missing");
    if !inputs.is_empty() {
        msg.push_str(&format!(" inputs {}", inputs.into_iter().collect::<Vec<_>>().join(", ")));
    }
    if !params.is_empty() {
        msg.push_str(&format!(" parameter values {}", params.into_iter().collect::<Vec<_>>().join(", ")));
    }
    Diagnostic::error("input_missing", msg).into()
}
