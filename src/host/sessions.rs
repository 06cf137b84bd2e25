//! Sessions and variants (§10): a session pins a stored template version, parameter values and
//! input series; a variant is a named set of overrides on a session. Their in-memory state,
//! opening and closing, parameter changes, variant creation, update and deletion, the binding
//! checks they share, and the rebuild from the store on open.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use salsa::Setter;

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::plan::Compiled;
use crate::engine::{ParamCell, Scenario, SeriesCell};
use crate::host::view::{session_not_found, variant_not_found};
use crate::host::{Host, HostError};
use crate::model::doc::NodeDef;
use crate::model::params::{ParamDecl, ParamValue};
use crate::model::template::{Supplied, bind};
use crate::store::{InputPin, SessionRecord, StoreError, VariantRecord, values_sha};
use crate::sys;

#[derive(Clone, Debug)]
pub(crate) struct SessionState {
    pub(crate) record: SessionRecord,
    pub(crate) params: BTreeMap<String, ParamValue>,
    pub(crate) cells: BTreeMap<String, ParamCell>,
    /// Input key → cell (file pins, live stored series, overrides).
    pub(crate) inputs: BTreeMap<String, SeriesCell>,
    pub(crate) scenario: Scenario,
    /// Unique to this opening of the session (see `Host::incarnation`).
    pub(crate) incarnation: u64,
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
            incarnation: self.incarnation,
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
    /// Unique to this creation of the variant (see `Host::incarnation`).
    pub(crate) incarnation: u64,
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

fn supplied_from(values: &BTreeMap<String, ParamValue>) -> BTreeMap<String, Supplied> {
    values.iter().map(|(k, v)| (k.clone(), Supplied::Yaml(v.to_yaml()))).collect()
}

fn to_json(values: &BTreeMap<String, ParamValue>) -> BTreeMap<String, serde_json::Value> {
    values.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()
}

/// Parameter values stored in a record (`owner` names it) read back by their declarations; a value
/// that does not read is damage in the store, not bad input.
fn from_json(
    decls: &[ParamDecl],
    values: &BTreeMap<String, serde_json::Value>,
    owner: &str,
    file: &str,
) -> Result<BTreeMap<String, ParamValue>, HostError> {
    let damaged = |problem: String| HostError::from(StoreError::data_loss(owner, problem).at(file));
    let mut out = BTreeMap::new();
    for (k, v) in values {
        let d = decls
            .iter()
            .find(|d| &d.name == k)
            .ok_or_else(|| damaged(format!("stores parameter `{k}`, which its template does not declare")))?;
        let y: yaml_serde::Value =
            yaml_serde::to_value(v).map_err(|e| damaged(format!("stores parameter `{k}` as {e}")))?;
        let pv = d
            .value_from_yaml(&y)
            .map_err(|e| damaged(format!("stores parameter `{k}` = {v}, which does not read: {e}")))?;
        out.insert(k.clone(), pv);
    }
    Ok(out)
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
    /// Opens a session on a stored template.
    pub fn open_session(&mut self, req: OpenRequest) -> Result<SessionInfo, HostError> {
        let entry = self.template_entry(&req.template_id, &req.template_version)?;
        let (bound, node_series, fresh) = split_bindings(&entry.decls, &req.series);
        let mut supplied = req.params.clone();
        supplied.extend(bound.clone());
        let params = bind(&entry.decls, &supplied)?;
        let overrides: BTreeSet<String> = node_series.keys().cloned().collect();
        let c = self.plans.get(&entry.source, &params, &overrides)?;
        check_series_overrides(&c, &node_series)?;
        check_param_bindings(&c, &bound, &req.series)?;
        if let Some(t) = &req.tenant
            && t.len() > MAX_TENANT
        {
            return Err(Diagnostic::error("bad_tenant", format!("tenant is {} bytes; at most {MAX_TENANT}", t.len()))
                .at_path("tenant")
                .into());
        }
        let id = match &req.id {
            Some(id) => {
                if !valid_name(id) {
                    return Err(Diagnostic::error(
                        "bad_id",
                        format!("session id `{id}` must be 1–128 letters, digits, `_`, `-` or `.`, starting with a letter, digit or `_`"),
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
            params.iter().map(|(k, v)| (k.clone(), self.new_param_cell(&c, k, v.clone()))).collect();
        let scenario = self.new_scenario(c, cells.clone(), inputs.clone());
        let incarnation = self.incarnation();
        let state = SessionState { record, params, cells, inputs, scenario, incarnation, variants: BTreeMap::new() };
        Arc::make_mut(&mut self.sessions).insert(id.clone(), state);
        self.after_change();
        self.session_info(&id)
    }

    fn next_session_id(&self) -> Result<String, HostError> {
        let r = self.store.read()?;
        let taken: BTreeSet<String> = r.sessions()?.into_iter().map(|s| s.id).collect();
        Ok((1..).map(|n| format!("s{n}")).find(|id| !taken.contains(id)).unwrap_or_else(|| "s".into()))
    }

    fn state(&self, id: &str) -> Result<&SessionState, HostError> {
        self.sessions.get(id).ok_or_else(|| session_not_found(&self.sessions, id))
    }

    /// Closes a session: it and its variants are removed from the store.
    pub fn close_session(&mut self, id: &str) -> Result<(), HostError> {
        self.state(id)?;
        self.store.write(|w| w.delete_session(id))?;
        if let Some(state) = Arc::make_mut(&mut self.sessions).remove(id) {
            self.release_session(state);
        }
        self.after_change();
        Ok(())
    }

    /// Changes session parameters in place; variants that do not override them follow.
    pub fn set_session_params(&mut self, id: &str, changes: &BTreeMap<String, Supplied>) -> Result<u64, HostError> {
        let s = self.state(id)?.clone();
        let entry = self.template_entry(&s.record.template_id, &s.record.template_version)?;
        let params = effective_params(&entry.decls, &s.params, changes)?;
        let overrides: BTreeSet<String> = s.record.overrides.keys().cloned().collect();
        let c = self.plans.get(&entry.source, &params, &overrides)?;
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
            let plan = self.plans.get(&entry.source, &vp, &set).map_err(|d| {
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
            .ok_or_else(|| HostError::not_found(format!("session `{id}`")))?;
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
                .ok_or_else(|| HostError::not_found(format!("session `{id}`")))?;
            let v = st
                .variants
                .get_mut(&ch.name)
                .ok_or_else(|| HostError::not_found(format!("variant `{id}/{}`", ch.name)))?;
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
        self.after_change();
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
                format!("variant name `{name}` must be 1–128 letters, digits, `_`, `-` or `.`, starting with a letter, digit or `_`"),
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
        let v = full.variants.get(name).ok_or_else(|| variant_not_found(full, name))?;
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
        let prior = from_json(
            &entry.decls,
            &record.params,
            &format!("variant `{}/{}`", record.session, record.name),
            &self.file(),
        )?;
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
        let c = self.plans.get(&entry.source, &effective, &all_series)?;
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
                    let cell = self.new_param_cell(&c, k, v.clone());
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
            _ => self.new_scenario(c, cells, inputs),
        };
        let name = record.name.clone();
        let incarnation = match self.state(&s.record.id)?.variants.get(&name) {
            Some(v) if !new => v.incarnation,
            _ => self.incarnation(),
        };
        let state = VariantState { record, params: effective, own_cells, inputs: own_inputs, scenario, incarnation };
        let sm = Arc::make_mut(&mut self.sessions)
            .get_mut(&s.record.id)
            .ok_or_else(|| HostError::not_found(format!("session `{}`", s.record.id)))?;
        sm.record = session_record;
        sm.variants.insert(name.clone(), state);
        // Replaced overrides may have held the last reference to their blobs.
        self.after_change();
        self.variant_info(&s.record.id, &name)
    }

    pub fn delete_variant(&mut self, session: &str, name: &str) -> Result<(), HostError> {
        let s = self.state(session)?;
        if !s.variants.contains_key(name) {
            return Err(variant_not_found(s, name));
        }
        let mut rec = s.record.clone();
        rec.revision += 1;
        self.store.write(|w| {
            w.delete_variant(session, name)?;
            w.put_session(&rec)
        })?;
        let sm = Arc::make_mut(&mut self.sessions)
            .get_mut(session)
            .ok_or_else(|| HostError::not_found(format!("session `{session}`")))?;
        let dead = sm.variants.remove(name);
        sm.record = rec;
        if let Some(v) = dead {
            self.release_variant(v);
        }
        self.after_change();
        Ok(())
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
            let id = rec.id.clone();
            let vrecs = variants.remove(&id).unwrap_or_default();
            let state = self.rebuild_session(rec, vrecs).map_err(|e| stored_reference(&id, e, &self.file()))?;
            Arc::make_mut(&mut self.sessions).insert(id, state);
        }
        Ok(())
    }

    /// Rebuilds one session and its variants from their records.
    fn rebuild_session(&mut self, rec: SessionRecord, vrecs: Vec<VariantRecord>) -> Result<SessionState, HostError> {
        let entry = self.template_entry(&rec.template_id, &rec.template_version)?;
        let params = from_json(&entry.decls, &rec.params, &format!("session `{}`", rec.id), &self.file())?;
        let overrides: BTreeSet<String> = rec.overrides.keys().cloned().collect();
        let c = self.plans.get(&entry.source, &params, &overrides)?;
        let (inputs, new_pins, _) = self.resolve_inputs(&c, &rec.inputs, &rec.overrides)?;
        if !new_pins.is_empty() {
            return Err(HostError::FailedPrecondition(format!(
                "session `{}` lacks pinned inputs {:?}",
                rec.id,
                new_pins.keys().collect::<Vec<_>>()
            )));
        }
        let cells: BTreeMap<String, ParamCell> =
            params.iter().map(|(k, v)| (k.clone(), self.new_param_cell(&c, k, v.clone()))).collect();
        let scenario = self.new_scenario(c, cells.clone(), inputs.clone());
        let mut state = SessionState {
            record: rec.clone(),
            params: params.clone(),
            cells: cells.clone(),
            inputs: inputs.clone(),
            scenario,
            incarnation: self.incarnation(),
            variants: BTreeMap::new(),
        };
        for vr in vrecs {
            let own = from_json(&entry.decls, &vr.params, &format!("variant `{}/{}`", rec.id, vr.name), &self.file())?;
            let mut eff = params.clone();
            eff.extend(own.clone());
            let mut shas = rec.overrides.clone();
            shas.extend(vr.overrides.clone());
            let set: BTreeSet<String> = shas.keys().cloned().collect();
            let c = self.plans.get(&entry.source, &eff, &set)?;
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
                own.iter().map(|(k, v)| (k.clone(), self.new_param_cell(&c, k, v.clone()))).collect();
            let mut vcells = cells.clone();
            vcells.extend(own_cells.clone());
            let own_inputs =
                vin.iter().filter(|(k, c)| inputs.get(*k) != Some(*c)).map(|(k, c)| (k.clone(), *c)).collect();
            let sc = self.new_scenario(c, vcells, vin);
            let incarnation = self.incarnation();
            state.variants.insert(
                vr.name.clone(),
                VariantState { record: vr, params: eff, own_cells, inputs: own_inputs, scenario: sc, incarnation },
            );
        }
        Ok(state)
    }
}

/// What a stored session needs but the store lacks (a template, a blob, a pin) is damage in the
/// store: the session cannot be rebuilt.
fn stored_reference(session: &str, e: HostError, file: &str) -> HostError {
    let owner = format!("session `{session}`");
    match e {
        HostError::NotFound(w) => {
            HostError::from(StoreError::data_loss(owner, format!("is damaged: it cannot be rebuilt ({w})")).at(file))
        }
        HostError::FailedPrecondition(w) => {
            HostError::from(StoreError::data_loss(owner, format!("is damaged: it cannot be rebuilt ({w})")).at(file))
        }
        other => other,
    }
}

/// A session id or variant name: 1–128 letters, digits, `_`, `-` or `.`, starting with a letter,
/// digit or `_` (so never `.`, `..`, a hidden name, or something a command line reads as an option).
fn valid_name(s: &str) -> bool {
    s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Longest tenant label stored with a session.
const MAX_TENANT: usize = 256;
