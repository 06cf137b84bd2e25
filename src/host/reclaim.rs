//! Reclaiming the memory of closed sessions and deleted variants.
//!
//! salsa frees neither inputs nor, by default, memos; a server that creates and deletes
//! scenarios would grow by every one it ever had. Three mechanisms keep it flat:
//! - **Inputs are recycled.** A released scenario's `Scenario` and its own `ParamCell`s go to
//!   pools, and so do cached `SeriesCell`s no open scenario reads (found by a sweep, emptied so
//!   their values are freed); new scenarios take from the pools before creating inputs.
//! - **Memos are collected by salsa.** Unit keys are interned with `revisions`
//!   (`engine::db::KEY_REVISIONS`): a key nothing has read for that many active revisions is
//!   stale, and new keys reuse stale slots, dropping the memos attached to them.
//! - **Open scenarios are kept fresh.** Every `KEY_REVISIONS / 4` changes the host verifies the
//!   `unit_keys` of every open session and variant (cheap: no unit is evaluated), which marks
//!   their keys as read, so salsa never collects the memos of a scenario that is still open,
//!   however long it stays idle.
//!
//! Invariant: cached series cells (`Host::blobs`, `Host::stored`) are read only by sessions and
//! variants (one-shot models make their own), so the sweep knows every reader.

use std::collections::HashSet;
use std::sync::Arc;

use crate::engine::db::{KEY_REVISIONS, keep_keys};
use crate::engine::plan::Compiled;
use crate::engine::{InputSeries, ParamCell, Scenario, SeriesCell};
use crate::host::Host;
use crate::host::sessions::{SessionState, VariantState};
use crate::model::params::ParamValue;

/// Released inputs waiting for reuse, and the counters that pace the periodic work.
#[derive(Default)]
pub(crate) struct Reclaim {
    scenarios: Vec<Scenario>,
    params: Vec<ParamCell>,
    series: Vec<SeriesCell>,
    /// Scenarios released since the cached series cells were last swept.
    released: usize,
    /// Changes since the keys of open scenarios were last kept fresh.
    changes: usize,
    /// The last incarnation handed out (see [`Host::incarnation`]).
    incarnations: u64,
}

/// Changes between two passes that keep open scenarios' keys fresh: well inside the
/// `KEY_REVISIONS` active revisions after which salsa may collect a key (a change makes at most
/// two: its own and the reads after it).
const KEEP_EVERY: usize = KEY_REVISIONS / 4;

impl Host {
    /// A number no scenario had before: tells a session closed and reopened under the same id (and
    /// perhaps on the same recycled `Scenario`) from its predecessor.
    pub(super) fn incarnation(&mut self) -> u64 {
        self.reclaim.incarnations += 1;
        self.reclaim.incarnations
    }

    /// A scenario: a released one when there is one, else a new input.
    pub(super) fn new_scenario(
        &mut self,
        plan: Arc<Compiled>,
        params: std::collections::BTreeMap<String, ParamCell>,
        inputs: std::collections::BTreeMap<String, SeriesCell>,
    ) -> Scenario {
        match self.reclaim.scenarios.pop() {
            Some(s) => {
                s.reuse(&mut self.db, plan, params, inputs);
                s
            }
            None => Scenario::create(&self.db, plan, params, inputs),
        }
    }

    /// A cell for parameter `name` of plan `c`: a released one when there is one.
    pub(super) fn new_param_cell(&mut self, c: &Compiled, name: &str, value: ParamValue) -> ParamCell {
        match self.reclaim.params.pop() {
            Some(cell) => {
                cell.reuse(&mut self.db, c, name, value);
                cell
            }
            None => ParamCell::create(&self.db, c, name, value),
        }
    }

    /// A cell for input series: a released one when there is one. `immutable`: content that never
    /// changes (durability HIGH), else live (LOW).
    pub(super) fn new_series_cell(&mut self, data: InputSeries, immutable: bool) -> SeriesCell {
        let durability = if immutable { salsa::Durability::HIGH } else { salsa::Durability::LOW };
        match self.reclaim.series.pop() {
            Some(cell) => {
                cell.reuse(&mut self.db, data, durability);
                cell
            }
            None if immutable => SeriesCell::immutable(&self.db, data),
            None => SeriesCell::create(&self.db, data),
        }
    }

    /// A deleted variant's scenario and own parameter cells, for reuse. Its own series cells may
    /// be shared (content-addressed): the next sweep finds out.
    pub(super) fn release_variant(&mut self, v: VariantState) {
        v.scenario.release(&mut self.db);
        self.reclaim.scenarios.push(v.scenario);
        self.reclaim.params.extend(v.own_cells.into_values());
        self.reclaim.released += 1;
    }

    /// A closed session's scenario, cells and variants, for reuse.
    pub(super) fn release_session(&mut self, s: SessionState) {
        for v in s.variants.into_values() {
            self.release_variant(v);
        }
        s.scenario.release(&mut self.db);
        self.reclaim.scenarios.push(s.scenario);
        self.reclaim.params.extend(s.cells.into_values());
        self.reclaim.released += 1;
    }

    /// A cached series cell no scenario reads any more (a re-sliced stored series' stale window).
    pub(super) fn release_series_cell(&mut self, cell: SeriesCell) {
        cell.release(&mut self.db);
        self.reclaim.series.push(cell);
    }

    /// After every change to sessions, variants or stored series: collects blobs when due, keeps
    /// the keys of open scenarios fresh every `KEEP_EVERY` changes, and sweeps the series cells of
    /// released scenarios once there are as many releases as a quarter of the open scenarios
    /// (at least 16), so the sweep's cost per release stays constant.
    pub(super) fn after_change(&mut self) {
        self.collect_if_due();
        let open: usize = self.sessions.values().map(|s| 1 + s.variants.len()).sum();
        if self.reclaim.released >= (open / 4).max(16) {
            self.sweep_series_cells();
        }
        self.reclaim.changes += 1;
        if self.reclaim.changes >= KEEP_EVERY {
            self.keep_open_scenarios();
        }
    }

    /// Verifies the keys of every open scenario now (see the module doc).
    pub(crate) fn keep_open_scenarios(&mut self) {
        self.reclaim.changes = 0;
        let open: Vec<Scenario> = self
            .sessions
            .values()
            .flat_map(|s| std::iter::once(s.scenario).chain(s.variants.values().map(|v| v.scenario)))
            .collect();
        keep_keys(&mut self.db, &open);
    }

    /// Releases every cached series cell no open scenario reads.
    fn sweep_series_cells(&mut self) {
        self.reclaim.released = 0;
        let live: HashSet<SeriesCell> = self
            .sessions
            .values()
            .flat_map(|s| s.inputs.values().chain(s.variants.values().flat_map(|v| v.inputs.values())))
            .copied()
            .collect();
        let mut dead = Vec::new();
        let mut keep = |c: &SeriesCell| {
            let live = live.contains(c);
            if !live {
                dead.push(*c);
            }
            live
        };
        self.blobs.retain(|_, c| keep(c));
        self.stored.retain(|_, c| keep(c));
        for c in dead {
            self.release_series_cell(c);
        }
    }
}
