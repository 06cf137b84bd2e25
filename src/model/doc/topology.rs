//! Reading `topology` (§6): nodes with their semantics, WIP limits, dispatch schedules and
//! constraints; edges; shared-capacity constraints.

use rustc_hash::FxHashSet;

use crate::model::doc::read::{Obj, Reader};
use crate::model::doc::{
    ConstraintSpec, Dispatch, Edge, NumOrRef, Role, Semantics, TopoKind, TopoNode, Topology, closest,
};
use crate::model::series::{SeriesRef, is_valid_id, parse_ref};
use crate::model::yaml::{Node, Value};

const TOPO_NODE_KEYS: &[&str] = &[
    "id",
    "kind",
    "group",
    "ui",
    "semantics",
    "initialCondition",
    "wipLimit",
    "wipLimitSeries",
    "wipOverflow",
    "dispatchSchedule",
    "parallelism",
    "constraints",
    "initialClassMix",
];

impl Reader<'_> {
    pub(super) fn topology(&mut self, v: &Node) -> Topology {
        let mut topo = Topology::default();
        let Some(t) = self.obj(v, "topology".into(), "topology") else { return topo };
        self.check_keys(&t, &["nodes", "edges", "constraints"]);
        if let Some(nv) = t.get("nodes")
            && let Some(items) = self.seq(nv, "topology.nodes")
        {
            let mut seen = FxHashSet::default();
            for (i, item) in items.iter().enumerate() {
                if let Some(n) = self.topo_node(item, i) {
                    if !seen.insert(n.id.clone()) {
                        self.diags.push(n.loc.diag("duplicate_id", format!("duplicate topology node id `{}`", n.id)));
                        continue;
                    }
                    topo.nodes.push(n);
                }
            }
        }
        if let Some(ev) = t.get("edges")
            && let Some(items) = self.seq(ev, "topology.edges")
        {
            for (i, item) in items.iter().enumerate() {
                if let Some(e) = self.edge(item, i) {
                    topo.edges.push(e);
                }
            }
        }
        if let Some(cv) = t.get("constraints")
            && let Some(items) = self.seq(cv, "topology.constraints")
        {
            for (i, item) in items.iter().enumerate() {
                let Some(o) = self.obj(item, format!("topology.constraints[{i}]"), "a constraint") else {
                    continue;
                };
                self.check_keys(&o, &["id", "semantics"]);
                let Some(id) = self.string(&o, "id") else {
                    self.err(o.pos, &o.label, "missing_key", "a constraint needs an `id`", None);
                    continue;
                };
                let o = o.relabel(format!("topology.constraints[{i}] (id {id})"));
                let served = match o.get("semantics") {
                    Some(sv) => match self.obj(sv, o.field_label("semantics"), "semantics") {
                        Some(s) => {
                            self.check_keys(&s, &["served", "arrivals", "errors", "latencyMinutes"]);
                            self.series_ref(&s, "served").map(|x| x.0)
                        }
                        None => None,
                    },
                    None => None,
                };
                topo.constraints.push(ConstraintSpec { id, served, loc: self.loc(o.pos, &o.label) });
            }
        }
        topo
    }

    fn topo_node(&mut self, v: &Node, i: usize) -> Option<TopoNode> {
        let o = self.obj(v, format!("topology.nodes[{i}]"), "a topology node")?;
        self.check_keys(&o, TOPO_NODE_KEYS);
        let Some(id) = self.string(&o, "id") else {
            self.err(o.pos, &o.label, "missing_key", "a topology node needs an `id`", None);
            return None;
        };
        let o = o.relabel(format!("topology.nodes[{i}] (id {id})"));
        if !is_valid_id(&id) {
            self.err(
                o.at("id"),
                &o.field_label("id"),
                "bad_id",
                format!("topology id `{id}` must match ^[A-Za-z_][A-Za-z0-9_]*$"),
                None,
            );
            return None;
        }
        let kind = match self.string(&o, "kind") {
            Some(k) => match TopoKind::parse(&k) {
                Some(k) => k,
                None => {
                    self.err(
                        o.at("kind"),
                        &o.field_label("kind"),
                        "bad_kind",
                        format!("unknown topology kind `{k}`"),
                        Some("use service, queue, serviceWithBuffer, dlq, router, sink, external or dependency"),
                    );
                    return None;
                }
            },
            None => TopoKind::Service,
        };
        let group = self.string(&o, "group");
        let ui = o.get("ui").and_then(|u| serde_json::to_value(u.to_serde()).ok());
        let mut semantics = Semantics::default();
        if let Some(sv) = o.get("semantics")
            && let Some(s) = self.obj(sv, o.field_label("semantics"), "semantics")
        {
            self.semantics(&s, &mut semantics);
        }
        if semantics.parallelism.is_none()
            && let Some(pv) = o.get("parallelism")
        {
            semantics.parallelism = self.num_or_ref(pv, &o.field_label("parallelism"));
        }
        let initial_queue = match o.get("initialCondition") {
            Some(ic) => {
                let c = self.obj(ic, o.field_label("initialCondition"), "initialCondition")?;
                self.check_keys(&c, &["queueDepth"]);
                match c.get("queueDepth") {
                    Some(q) => self.num(q, &c.field_label("queueDepth")),
                    None => None,
                }
            }
            None => None,
        };
        let wip_limit = match o.get("wipLimit") {
            Some(w) => Some(self.num(w, &o.field_label("wipLimit"))?),
            None => None,
        };
        let wip_limit_series =
            if o.get("wipLimitSeries").is_some() { Some(self.series_ref(&o, "wipLimitSeries")?.0) } else { None };
        let wip_overflow = self.string(&o, "wipOverflow");
        let dispatch = match o.get("dispatchSchedule") {
            Some(dv) => self.dispatch(dv, &o)?,
            None => None,
        };
        let constraints = match o.get("constraints") {
            Some(cv) => {
                let items = self.seq(cv, &o.field_label("constraints"))?;
                items.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
            }
            None => Vec::new(),
        };
        let initial_class_mix = match o.get("initialClassMix") {
            Some(v) => {
                let label = o.field_label("initialClassMix");
                if !kind.is_queue() {
                    self.err(
                        v.pos,
                        &label,
                        "bad_class_mix",
                        format!("initialClassMix applies to queue kinds; `{id}` is a {}", kind.name()),
                        Some("remove it, or make the node a queue, serviceWithBuffer or dlq"),
                    );
                }
                self.class_mix(v, &label, true)
            }
            None => None,
        };
        Some(TopoNode {
            initial_class_mix,
            id,
            loc: self.loc(o.pos, &o.label),
            kind,
            group,
            ui,
            semantics,
            initial_queue,
            wip_limit,
            wip_limit_series,
            wip_overflow,
            dispatch,
            constraints,
        })
    }

    /// Roles, `retryKernel`, `slaMin` and `parallelism` of one topology node, and the
    /// semantics as written (after substitution) for topology.json.
    fn semantics(&mut self, s: &Obj<'_>, semantics: &mut Semantics) {
        for (k, val) in s.map {
            let Some(key) = k.as_str() else { continue };
            let klabel = s.field_label(key);
            match key {
                "retryKernel" => {
                    semantics.retry_kernel = self.number_list(s, "retryKernel");
                    if let Some(kern) = &semantics.retry_kernel
                        && kern.iter().any(|x| !x.is_finite() || *x < 0.0)
                    {
                        self.err(
                            val.pos,
                            &klabel,
                            "bad_value",
                            "retryKernel coefficients must be finite and ≥ 0",
                            None,
                        );
                    }
                }
                "slaMin" => semantics.sla_min = self.number(s, "slaMin"),
                "parallelism" => semantics.parallelism = self.num_or_ref(val, &klabel),
                _ => match Role::parse(key) {
                    Some(role) => {
                        if let Some((r, _)) = self.series_ref(s, key) {
                            if r == SeriesRef::SelfQueue && role != Role::QueueDepth {
                                self.err(
                                    val.pos,
                                    &klabel,
                                    "bad_reference",
                                    "`self` is only allowed for queueDepth",
                                    None,
                                );
                                continue;
                            }
                            semantics.roles.insert(role, r);
                        }
                    }
                    None => {
                        let mut allowed: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
                        allowed.extend(["parallelism", "retryKernel", "slaMin"]);
                        let help = match closest(key, &allowed) {
                            Some(n) => format!("did you mean `{n}`? roles: {}", allowed.join(", ")),
                            None => format!("roles: {}", allowed.join(", ")),
                        };
                        self.err(
                            val.pos,
                            &klabel,
                            "unknown_role",
                            format!("unknown semantics role `{key}`"),
                            Some(&help),
                        );
                        continue;
                    }
                },
            }
            if let Ok((rv, _)) = self.resolve(val, &klabel)
                && let Ok(j) = serde_json::to_value(rv.to_serde())
            {
                semantics.raw.insert(key.to_string(), j);
            }
        }
    }

    /// `dispatchSchedule`: Ok(None) only when there is none; Err-like None is a recorded error.
    fn dispatch(&mut self, dv: &Node, o: &Obj<'_>) -> Option<Option<Dispatch>> {
        let d = self.obj(dv, o.field_label("dispatchSchedule"), "dispatchSchedule")?;
        self.check_keys(&d, &["kind", "periodBins", "phaseOffset", "capacitySeries"]);
        if let Some(k) = self.string(&d, "kind")
            && !matches!(k.to_ascii_lowercase().as_str(), "time-based" | "periodic")
        {
            self.err(
                d.at("kind"),
                &d.field_label("kind"),
                "bad_kind",
                format!("unknown dispatch kind `{k}`"),
                Some("use time-based or periodic"),
            );
        }
        let Some(period) = self.integer(&d, "periodBins") else {
            if d.get("periodBins").is_none() {
                self.err(d.pos, &d.label, "missing_key", "dispatchSchedule needs `periodBins`", None);
            }
            return None;
        };
        if period < 1 {
            self.err(
                d.at("periodBins"),
                &d.field_label("periodBins"),
                "bad_value",
                format!("periodBins must be at least 1, got {period}"),
                None,
            );
            return None;
        }
        let phase = self.integer(&d, "phaseOffset").unwrap_or(0);
        let capacity =
            if d.get("capacitySeries").is_some() { Some(self.series_ref(&d, "capacitySeries")?.0) } else { None };
        Some(Some(Dispatch { period: period.min(u32::MAX as i64) as u32, phase, capacity }))
    }

    fn num_or_ref(&mut self, v: &Node, label: &str) -> Option<NumOrRef> {
        let (rv, _) = self.resolve(v, label).ok()?;
        match rv.as_ref() {
            Value::Number(n) => n.as_f64().map(NumOrRef::Num),
            Value::String(s) => match parse_ref(s) {
                Ok(r) => Some(NumOrRef::Ref(r)),
                Err(e) => {
                    self.err(v.pos, label, "bad_reference", e, None);
                    None
                }
            },
            other => {
                self.type_err(v.pos, label, "a number or a series reference", other.kind(), None);
                None
            }
        }
    }

    fn edge(&mut self, v: &Node, i: usize) -> Option<Edge> {
        let o = self.obj(v, format!("topology.edges[{i}]"), "an edge")?;
        self.check_keys(
            &o,
            &["from", "to", "source", "target", "weight", "type", "measure", "multiplier", "lag", "id"],
        );
        let endpoint = |r: &mut Reader<'_>, a: &'static str, b: &'static str| -> Option<String> {
            let (_, key) = r.aliased(&o, a, b)?;
            r.string(&o, key)
        };
        let from = endpoint(self, "from", "source");
        let to = endpoint(self, "to", "target");
        let (Some(from), Some(to)) = (from, to) else {
            self.err(o.pos, &o.label, "missing_key", "an edge needs `from` and `to`", None);
            return None;
        };
        let strip = |s: &str| s.split(':').next().unwrap_or(s).to_string();
        let weight = if o.get("weight").is_some() { self.number(&o, "weight")? } else { 1.0 };
        let multiplier = if o.get("multiplier").is_some() { self.number(&o, "multiplier")? } else { 1.0 };
        let lag = match self.integer(&o, "lag") {
            Some(l) if l < 0 => {
                self.err(
                    o.at("lag"),
                    &o.field_label("lag"),
                    "bad_value",
                    format!("lag must not be negative, got {l}"),
                    None,
                );
                return None;
            }
            Some(l) => l.min(u32::MAX as i64) as u32,
            None => 0,
        };
        let label = format!("topology.edges[{i}] ({from} -> {to})");
        Some(Edge {
            from: strip(&from),
            to: strip(&to),
            weight,
            multiplier,
            lag,
            ty: self.string(&o, "type"),
            measure: self.string(&o, "measure"),
            loc: self.loc(o.pos, &label),
        })
    }
}
