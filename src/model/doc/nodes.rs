//! Reading `nodes` (alias `expressions`): const, expr, pmf and router nodes (§2, §6 routers).

use rustc_hash::FxHashMap;

use crate::expr::parser::Mode;
use crate::model::doc::read::{Obj, Reader};
use crate::model::doc::{NodeDef, NodeSpec, Route};
use crate::model::series::{SeriesRef, is_valid_id};
use crate::model::yaml::Node;

impl Reader<'_> {
    pub(super) fn nodes(&mut self, root: &Obj<'_>) -> Option<Vec<NodeSpec>> {
        let Some((v, key)) = self.aliased(root, "nodes", "expressions") else {
            if root.get("nodes").is_none() && root.get("expressions").is_none() {
                self.err(root.pos, "nodes", "missing_key", "the document needs `nodes` (at least one)", None);
            }
            return None;
        };
        let items = self.seq(v, key)?;
        if items.is_empty() {
            self.err(v.pos, key, "missing_key", "`nodes` needs at least one node", None);
        }
        let mut out = Vec::with_capacity(items.len());
        // Node id → index of the item that first defined it.
        let mut seen: FxHashMap<String, usize> = FxHashMap::default();
        seen.reserve(items.len());
        for (i, item) in items.iter().enumerate() {
            let Some(o) = self.obj(item, format!("{key}[{i}]"), "a node") else { continue };
            let Some(id) = self.string(&o, "id") else {
                if o.get("id").is_none() {
                    self.err(o.pos, &o.label, "missing_key", "a node needs an `id`", None);
                }
                continue;
            };
            let o = o.relabel(format!("{key}[{i}] (id {id})"));
            if !is_valid_id(&id) {
                self.err(
                    o.at("id"),
                    &o.field_label("id"),
                    "bad_id",
                    format!("node id `{id}` must match ^[A-Za-z_][A-Za-z0-9_]*$"),
                    Some("use letters, digits and `_`, starting with a letter"),
                );
                continue;
            }
            if let Some(&first) = seen.get(&id) {
                let msg = format!("duplicate node id `{id}` (first defined at {key}[{first}] (id {id}))");
                self.err(o.at("id"), &o.field_label("id"), "duplicate_id", msg, Some("node ids must be unique"));
                continue;
            }
            seen.insert(id.clone(), i);
            let class_mix = match o.get("classMix") {
                Some(v) => self.class_mix(v, &o.field_label("classMix"), false),
                None => None,
            };
            if let Some(def) = self.node_def(&o) {
                let loc = self.loc(o.pos, &o.label);
                out.push(NodeSpec { id, loc, def, class_mix });
            }
        }
        Some(out)
    }

    fn node_def(&mut self, o: &Obj<'_>) -> Option<NodeDef> {
        let kind = match self.string(o, "kind") {
            Some(k) => k.to_ascii_lowercase(),
            None => {
                if o.get("kind").is_none() {
                    self.err(
                        o.pos,
                        &o.label,
                        "missing_key",
                        "a node needs a `kind`",
                        Some("use const, expr, pmf or router"),
                    );
                }
                return None;
            }
        };
        match kind.as_str() {
            "const" => self.const_node(o),
            "expr" => {
                self.check_keys(o, &["id", "kind", "expr", "initial", "classMix"]);
                let label = o.field_label("expr");
                let Some(raw) = o.get("expr") else {
                    self.err(o.pos, &o.label, "missing_key", "an expr node needs `expr`", None);
                    return None;
                };
                let Some(text) = raw.as_str().map(str::to_string).or_else(|| raw.as_f64().map(|x| x.to_string()))
                else {
                    self.type_err(raw.pos, &label, "an expression string", raw.kind(), None);
                    return None;
                };
                let loc = self.loc(raw.pos, &label);
                let expr = self.expression(&text, Mode::Node, &loc)?;
                let initial = match o.get("initial") {
                    Some(v) => Some(self.num(v, &o.field_label("initial"))?),
                    None => None,
                };
                Some(NodeDef::Expr { text, expr, initial, loc })
            }
            "pmf" => self.pmf_node(o),
            "router" => self.router_node(o),
            other => {
                self.err(
                    o.at("kind"),
                    &o.field_label("kind"),
                    "bad_kind",
                    format!("unknown node kind `{other}`"),
                    Some("use const, expr, pmf or router"),
                );
                None
            }
        }
    }

    fn const_node(&mut self, o: &Obj<'_>) -> Option<NodeDef> {
        self.check_keys(o, &["id", "kind", "values", "source", "classMix"]);
        match (o.get("values"), o.get("source")) {
            (Some(_), Some(_)) => {
                self.err(
                    o.pos,
                    &o.label,
                    "const_shape",
                    "a const node takes exactly one of `values` and `source`, not both",
                    None,
                );
                None
            }
            (Some(v), None) => {
                let label = o.field_label("values");
                let items = self.seq(v, &label)?;
                let mut vals = Vec::with_capacity(items.len());
                for (j, it) in items.iter().enumerate() {
                    // Literal numbers need no label; only a placeholder or a mistake does.
                    let n = match it.as_f64() {
                        Some(x) => crate::model::doc::Num::Lit(x),
                        None => self.num(it, &format!("{label}[{j}]"))?,
                    };
                    vals.push(n);
                }
                Some(NodeDef::Values(vals))
            }
            (None, Some(_)) => {
                let (source, loc) = self.series_ref(o, "source")?;
                if source == SeriesRef::SelfQueue {
                    self.diags.push(loc.diag("bad_reference", "`self` is only allowed as a topology queueDepth"));
                    return None;
                }
                Some(NodeDef::Source { source, loc })
            }
            (None, None) => {
                self.err(
                    o.pos,
                    &o.label,
                    "const_shape",
                    "a const node needs `values` or `source`",
                    Some("e.g. values: [10, 12] or source: \"file:data/x.csv\""),
                );
                None
            }
        }
    }

    fn pmf_node(&mut self, o: &Obj<'_>) -> Option<NodeDef> {
        self.check_keys(o, &["id", "kind", "pmf", "classMix"]);
        let Some(v) = o.get("pmf") else {
            self.err(o.pos, &o.label, "missing_key", "a pmf node needs `pmf: {values, probabilities}`", None);
            return None;
        };
        let p = self.obj(v, o.field_label("pmf"), "pmf")?;
        self.check_keys(&p, &["values", "probabilities"]);
        let values = self.number_list(&p, "values")?;
        let probabilities = self.number_list(&p, "probabilities")?;
        let loc = self.loc(p.pos, &p.label);
        let problem = if values.is_empty() {
            Some("pmf needs at least one value".to_string())
        } else if values.len() != probabilities.len() {
            Some(format!(
                "pmf has {} values but {} probabilities; they must have equal length",
                values.len(),
                probabilities.len()
            ))
        } else if values.iter().chain(&probabilities).any(|x| !x.is_finite()) {
            Some("pmf values and probabilities must be finite".to_string())
        } else if probabilities.iter().any(|p| *p < 0.0) {
            Some("pmf probabilities must not be negative".to_string())
        } else if probabilities.iter().sum::<f64>() <= 0.0 {
            Some("pmf probabilities must sum to more than 0".to_string())
        } else {
            None
        };
        if let Some(msg) = problem {
            self.diags.push(loc.diag("bad_pmf", msg));
            return None;
        }
        Some(NodeDef::Pmf { values, probabilities })
    }

    fn router_node(&mut self, o: &Obj<'_>) -> Option<NodeDef> {
        self.check_keys(o, &["id", "kind", "router", "classMix"]);
        let Some(v) = o.get("router") else {
            self.err(
                o.pos,
                &o.label,
                "missing_key",
                "a router node needs `router: {inputs: {queue: <id>}, routes: [...]}`",
                None,
            );
            return None;
        };
        let r = self.obj(v, o.field_label("router"), "router")?;
        self.check_keys(&r, &["inputs", "routes"]);
        let absent_inputs = Node::null(r.pos);
        let inputs = self.obj(r.get("inputs").unwrap_or(&absent_inputs), r.field_label("inputs"), "router.inputs")?;
        self.check_keys(&inputs, &["queue"]);
        let Some((source, source_loc)) = self.series_ref(&inputs, "queue") else {
            if inputs.get("queue").is_none() {
                self.err(inputs.pos, &inputs.label, "missing_key", "router.inputs needs `queue`", None);
            }
            return None;
        };
        let rlabel = r.field_label("routes");
        let absent_routes = Node::null(r.pos);
        let items = self.seq(r.get("routes").unwrap_or(&absent_routes), &rlabel)?;
        let mut routes = Vec::new();
        for (j, it) in items.iter().enumerate() {
            let ro = self.obj(it, format!("{rlabel}[{j}]"), "a route")?;
            self.check_keys(&ro, &["target", "weight", "classes"]);
            let Some(target) = self.string(&ro, "target") else {
                self.err(ro.pos, &ro.label, "missing_key", "a route needs a `target`", None);
                return None;
            };
            let weight = if ro.get("weight").is_some() { self.number(&ro, "weight")? } else { 1.0 };
            let classes = match ro.get("classes") {
                Some(cv) => Some(self.route_classes(cv, &ro.field_label("classes"))?),
                None => None,
            };
            routes.push(Route { target, weight, loc: self.loc(ro.pos, &ro.label), classes });
        }
        Some(NodeDef::Router { source, source_loc, routes })
    }
}
