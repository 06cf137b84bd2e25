//! Reading the class syntax of §6.1: `classes`, a node's `classMix`, a queue's
//! `initialClassMix` and a route's `classes`.

use crate::model::doc::read::{Obj, Reader};
use crate::model::doc::{ClassMix, ClassSpec, Num, Share, closest};
use crate::model::params::whole_placeholder;
use crate::model::series::{is_valid_id, parse_ref};
use crate::model::yaml::{Node, Value};

/// At most this many classes (§6.1).
pub const MAX_CLASSES: usize = 64;

/// The implicit class of flow whose class is unknown.
pub const UNATTRIBUTED: &str = "_unattributed";

impl Reader<'_> {
    /// `classes: [{id, displayName?}]`; remembers the ids for the mixes read after it.
    pub(super) fn classes(&mut self, root: &Obj<'_>) -> Vec<ClassSpec> {
        let Some(v) = root.get("classes") else { return Vec::new() };
        let Some(items) = self.seq(v, "classes") else { return Vec::new() };
        if items.len() > MAX_CLASSES {
            self.err(
                v.pos,
                "classes",
                "too_many_classes",
                format!("{} classes are declared; at most {MAX_CLASSES} are allowed", items.len()),
                Some("merge classes that are routed alike"),
            );
            return Vec::new();
        }
        let mut out: Vec<ClassSpec> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            // A bare string is accepted as the id.
            let (id, display_name, pos, label) = match item.as_str() {
                Some(s) => (s.to_string(), None, item.pos, format!("classes[{i}]")),
                None => {
                    let Some(o) = self.obj(item, format!("classes[{i}]"), "a class") else { continue };
                    self.check_keys(&o, &["id", "displayName"]);
                    let Some(id) = self.string(&o, "id") else {
                        self.err(o.pos, &o.label, "missing_key", "a class needs an `id`", None);
                        continue;
                    };
                    (id, self.string(&o, "displayName"), o.at("id"), o.field_label("id"))
                }
            };
            if !is_valid_id(&id) {
                self.err(
                    pos,
                    &label,
                    "bad_id",
                    format!("class id `{id}` must match ^[A-Za-z_][A-Za-z0-9_]*$"),
                    Some("use letters, digits and `_`, starting with a letter"),
                );
                continue;
            }
            if id == UNATTRIBUTED || out.iter().any(|c| c.id == id) {
                let msg = if id == UNATTRIBUTED {
                    format!("class id `{id}` is reserved for flow of unknown class")
                } else {
                    format!("class `{id}` is declared twice")
                };
                self.err(
                    pos,
                    &label,
                    "duplicate_id",
                    msg,
                    Some("class ids must be unique; `_unattributed` is implicit"),
                );
                continue;
            }
            out.push(ClassSpec { id, display_name, loc: self.loc(pos, &label) });
        }
        self.classes = out.iter().map(|c| c.id.clone()).collect();
        out
    }

    /// A declared class by id, or a located error with the closest declared id.
    fn class_index(&mut self, id: &str, pos: crate::model::yaml::Pos, label: &str) -> Option<usize> {
        if let Some(i) = self.classes.iter().position(|c| c == id) {
            return Some(i);
        }
        let ids: Vec<&str> = self.classes.iter().map(String::as_str).collect();
        let help = if ids.is_empty() {
            "declare the classes at the top level: `classes: [{id: orders}, {id: refunds}]`".to_string()
        } else {
            match closest(id, &ids) {
                Some(n) => format!("did you mean `{n}`? declared classes: {}", ids.join(", ")),
                None => format!("declared classes: {}", ids.join(", ")),
            }
        };
        self.err(pos, label, "unknown_class", format!("unknown class `{id}`"), Some(&help));
        None
    }

    /// `{<class id>: share, …}`. Shares are numbers, placeholders or (unless `numbers_only`)
    /// series references; literal shares must be finite and ≥ 0.
    pub(super) fn class_mix(&mut self, v: &Node, label: &str, numbers_only: bool) -> Option<ClassMix> {
        let o = self.obj(v, label.to_string(), "a class mix")?;
        if o.map.is_empty() {
            self.err(
                o.pos,
                label,
                "bad_class_mix",
                "a class mix needs at least one share",
                Some("e.g. {orders: 0.7, refunds: 0.3}"),
            );
            return None;
        }
        let mut shares = Vec::with_capacity(o.map.len());
        let mut ok = true;
        for (k, val) in o.map {
            let Some(cid) = k.as_str() else {
                self.err(k.pos, label, "bad_class_mix", format!("class ids are strings, found {}", k.kind()), None);
                ok = false;
                continue;
            };
            let slabel = o.field_label(cid);
            let Some(c) = self.class_index(cid, k.pos, &slabel) else {
                ok = false;
                continue;
            };
            match self.share(val, &slabel, numbers_only) {
                Some(s) => shares.push((c, s)),
                None => ok = false,
            }
        }
        ok.then(|| ClassMix { shares, loc: self.loc(o.pos, label) })
    }

    fn share(&mut self, v: &Node, label: &str, numbers_only: bool) -> Option<Share> {
        let bad = |r: &mut Self, x: f64| {
            r.err(
                v.pos,
                label,
                "bad_share",
                format!("a class share must be finite and ≥ 0, found {x}"),
                Some("give a non-negative number; shares are normalised per bin"),
            );
        };
        if let Some(s) = v.as_str()
            && let Some(name) = whole_placeholder(s)
        {
            let numeric = self.decls.get(name).is_some_and(|d| d.ty.is_numeric());
            if numeric && !numbers_only {
                return self.num(v, label).map(Share::Num);
            }
        }
        let (rv, from) = self.resolve(v, label).ok()?;
        match rv.as_ref() {
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                if !x.is_finite() || x < 0.0 {
                    bad(self, x);
                    return None;
                }
                Some(Share::Num(Num::Lit(x)))
            }
            Value::String(s) if !numbers_only => match parse_ref(s) {
                Ok(crate::model::series::SeriesRef::SelfQueue) | Err(_) => {
                    self.err(
                        v.pos,
                        label,
                        "bad_share",
                        format!("`{s}` is not a number or a series reference"),
                        Some("give a number, a `{{parameter}}`, a node id, `file:…` or `series:…`"),
                    );
                    None
                }
                Ok(r) => Some(Share::Series(r)),
            },
            other => {
                let want = if numbers_only { "a number" } else { "a number or a series reference" };
                self.type_err(v.pos, label, want, other.kind(), from.as_deref());
                None
            }
        }
    }

    /// A route's `classes: [ids]`: declared, each at most once.
    pub(super) fn route_classes(&mut self, v: &Node, label: &str) -> Option<Vec<usize>> {
        let items = self.seq(v, label)?;
        let mut out: Vec<usize> = Vec::with_capacity(items.len());
        let mut ok = true;
        for (j, it) in items.iter().enumerate() {
            let l = format!("{label}[{j}]");
            let Some(id) = it.as_str() else {
                self.type_err(it.pos, &l, "a class id", it.kind(), None);
                ok = false;
                continue;
            };
            let Some(c) = self.class_index(id, it.pos, &l) else {
                ok = false;
                continue;
            };
            if out.contains(&c) {
                self.err(
                    it.pos,
                    &l,
                    "duplicate_class",
                    format!("class `{id}` is listed twice in this route"),
                    Some("list each class once"),
                );
                ok = false;
                continue;
            }
            out.push(c);
        }
        if ok && out.is_empty() {
            self.err(
                v.pos,
                label,
                "bad_route",
                "a route's `classes` lists no class",
                Some("list class ids, or remove `classes` to route the unlisted flow"),
            );
            return None;
        }
        ok.then_some(out)
    }
}
