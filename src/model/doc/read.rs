//! The document reader: maps with unknown-key checks, typed scalars, structural placeholder
//! resolution, and the root, metadata, parameter declarations and grid.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::model::doc::{Document, Loc, Meta, Num, ParamLookup, Topology, closest};
use crate::model::grid::{BinUnit, Grid};
use crate::model::params::{ParamDecl, ParamType, ParamValue, Piece, split_placeholders, whole_placeholder};
use crate::model::series::{SeriesRef, is_valid_id, parse_ref};
use crate::model::yaml::{Node, Number, Pos, Value};

const ROOT_KEYS: &[&str] = &[
    "schemaVersion",
    "id",
    "version",
    "title",
    "description",
    "templateType",
    "parameters",
    "grid",
    "nodes",
    "expressions",
    "topology",
    "outputs",
    "validation",
    "provenance",
    "classes",
    "traffic",
];

/// The lookup of a reader that only reads declarations.
pub(super) struct NoParams;

impl ParamLookup for NoParams {
    fn value(&self, _: &str) -> Option<ParamValue> {
        None
    }
}

pub(super) struct Reader<'a> {
    pub(super) diags: Vec<Diagnostic>,
    pub(super) decls: BTreeMap<String, ParamDecl>,
    pub(super) lookup: &'a dyn ParamLookup,
    /// The declared class ids (§6.1), read before the nodes so that mixes can be checked.
    pub(super) classes: Vec<String>,
}

/// A map being read, with the human label of where it is (`nodes[3] (id x)`).
pub(super) struct Obj<'v> {
    pub(super) map: &'v [(Node, Node)],
    pub(super) pos: Pos,
    pub(super) label: String,
}

impl<'v> Obj<'v> {
    pub(super) fn get(&self, key: &str) -> Option<&'v Node> {
        self.map.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// Where the value of `key` starts, or the map when the key is absent.
    pub(super) fn at(&self, key: &str) -> Pos {
        self.get(key).map_or(self.pos, |v| v.pos)
    }

    pub(super) fn field_label(&self, key: &str) -> String {
        if self.label.is_empty() { key.to_string() } else { format!("{}.{key}", self.label) }
    }

    pub(super) fn relabel(self, label: String) -> Obj<'v> {
        Obj { label, ..self }
    }
}

/// A parameter value as the YAML scalar a whole-scalar placeholder stands for.
fn param_scalar(v: &ParamValue) -> Value {
    match v {
        ParamValue::Number(x) => Value::Number(Number::from(*x)),
        ParamValue::Integer(x) => Value::Number(Number::from(*x)),
        ParamValue::Boolean(b) => Value::Bool(*b),
        ParamValue::Text(s) | ParamValue::Series(s) => Value::String(s.clone()),
    }
}

impl<'a> Reader<'a> {
    pub(super) fn new(lookup: &'a dyn ParamLookup) -> Reader<'a> {
        Reader { diags: Vec::new(), decls: BTreeMap::new(), lookup, classes: Vec::new() }
    }

    pub(super) fn into_diags(self) -> Vec<Diagnostic> {
        self.diags
    }

    pub(super) fn loc(&self, pos: Pos, label: &str) -> Loc {
        Loc { path: label.to_string(), pos: Some(pos) }
    }

    pub(super) fn err(&mut self, pos: Pos, label: &str, code: &str, msg: impl Into<String>, help: Option<&str>) {
        let mut d = self.loc(pos, label).diag(code, msg);
        if let Some(h) = help {
            d = d.with_help(h);
        }
        self.diags.push(d);
    }

    pub(super) fn obj<'v>(&mut self, v: &'v Node, label: String, what: &str) -> Option<Obj<'v>> {
        match v.as_mapping() {
            Some(map) => Some(Obj { map, pos: v.pos, label }),
            None => {
                self.err(v.pos, &label, "yaml_shape", format!("{what} must be a map, found {}", v.kind()), None);
                None
            }
        }
    }

    /// Reports keys outside `allowed`, and non-string keys.
    pub(super) fn check_keys(&mut self, obj: &Obj<'_>, allowed: &[&str]) {
        for (k, _) in obj.map {
            match k.as_str() {
                Some(s) if allowed.contains(&s) => {}
                Some(s) => {
                    let help = match closest(s, allowed) {
                        Some(n) => format!("did you mean `{n}`? allowed keys: {}", allowed.join(", ")),
                        None => format!("allowed keys: {}", allowed.join(", ")),
                    };
                    self.diags.push(
                        Diagnostic::error("unknown_key", format!("unknown key `{s}`"))
                            .at_path(obj.field_label(s))
                            .with_help(help)
                            .at_line(k.pos.line, k.pos.column),
                    );
                }
                None => self.err(
                    obj.pos,
                    &obj.label,
                    "unknown_key",
                    format!("keys must be strings, found {}", k.kind()),
                    None,
                ),
            }
        }
    }

    /// One of two alias keys; both present is an error.
    pub(super) fn aliased<'v>(
        &mut self,
        obj: &Obj<'v>,
        a: &'static str,
        b: &'static str,
    ) -> Option<(&'v Node, &'static str)> {
        match (obj.get(a), obj.get(b)) {
            (Some(_), Some(vb)) => {
                self.err(
                    vb.pos,
                    &obj.field_label(b),
                    "duplicate_key",
                    format!("both `{a}` and its alias `{b}` are given"),
                    Some("keep one of them"),
                );
                None
            }
            (Some(v), None) => Some((v, a)),
            (None, Some(v)) => Some((v, b)),
            (None, None) => None,
        }
    }

    /// Resolves structural placeholders in a scalar. `Err(())` means a diagnostic was recorded.
    pub(super) fn resolve<'v>(&mut self, v: &'v Node, label: &str) -> Result<(Cow<'v, Value>, Option<String>), ()> {
        let Value::String(s) = &v.value else { return Ok((Cow::Borrowed(&v.value), None)) };
        if !s.contains("{{") {
            return Ok((Cow::Borrowed(&v.value), None));
        }
        if let Some(name) = whole_placeholder(s) {
            let pv = self.param_value(name, v.pos, label)?;
            return Ok((Cow::Owned(param_scalar(&pv)), Some(name.to_string())));
        }
        let pieces = match split_placeholders(s) {
            Ok(p) => p,
            Err(e) => {
                self.err(v.pos, label, "placeholder", e, None);
                return Err(());
            }
        };
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => out.push_str(&t),
                Piece::Param(name) => out.push_str(&self.param_value(name, v.pos, label)?.to_string()),
            }
        }
        Ok((Cow::Owned(Value::String(out)), None))
    }

    pub(super) fn param_value(&mut self, name: &str, pos: Pos, label: &str) -> Result<ParamValue, ()> {
        if !self.decls.contains_key(name) {
            let known: Vec<&str> = self.decls.keys().map(String::as_str).collect();
            let help = if known.is_empty() {
                "declare it under `parameters:`".to_string()
            } else {
                format!("declared parameters: {}", known.join(", "))
            };
            self.err(
                pos,
                label,
                "unknown_placeholder",
                format!("unknown placeholder `{{{{{name}}}}}`: no parameter `{name}` is declared"),
                Some(&help),
            );
            return Err(());
        }
        match self.lookup.value(name) {
            Some(v) => Ok(v),
            None => {
                self.err(
                    pos,
                    label,
                    "parameter_missing",
                    format!("parameter `{name}` has no value and no default"),
                    Some("pass a value, e.g. `-p name=value`, or give it a default"),
                );
                Err(())
            }
        }
    }

    pub(super) fn string(&mut self, obj: &Obj<'_>, key: &str) -> Option<String> {
        let v = obj.get(key)?;
        let label = obj.field_label(key);
        let (rv, from) = self.resolve(v, &label).ok()?;
        match rv.as_ref() {
            Value::String(_) => match rv {
                Cow::Owned(Value::String(s)) => Some(s),
                _ => v.as_str().map(str::to_string),
            },
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.type_err(v.pos, &label, "a string", other.kind(), from.as_deref());
                None
            }
        }
    }

    pub(super) fn type_err(&mut self, pos: Pos, label: &str, want: &str, got: &str, from_param: Option<&str>) {
        let msg = match from_param {
            Some(p) => format!("parameter `{p}` gives {got}, but `{label}` expects {want}"),
            None => format!("expected {want}, found {got}"),
        };
        self.err(pos, label, "type", msg, None);
    }

    /// A structural number.
    pub(super) fn number(&mut self, obj: &Obj<'_>, key: &str) -> Option<f64> {
        let v = obj.get(key)?;
        self.number_value(v, &obj.field_label(key))
    }

    pub(super) fn number_value(&mut self, v: &Node, label: &str) -> Option<f64> {
        let (rv, from) = self.resolve(v, label).ok()?;
        match rv.as_ref() {
            Value::Number(n) => n.as_f64(),
            other => {
                self.type_err(v.pos, label, "a number", other.kind(), from.as_deref());
                None
            }
        }
    }

    pub(super) fn integer(&mut self, obj: &Obj<'_>, key: &str) -> Option<i64> {
        let v = obj.get(key)?;
        let label = obj.field_label(key);
        let x = self.number_value(v, &label)?;
        if x.fract() != 0.0 || !x.is_finite() || x.abs() > 9.0e15 {
            self.err(v.pos, &label, "type", format!("expected a whole number, found {x}"), None);
            return None;
        }
        Some(x as i64)
    }

    /// An evaluable number: a literal or a whole-scalar placeholder of a numeric parameter.
    pub(super) fn num(&mut self, v: &Node, label: &str) -> Option<Num> {
        if let Some(s) = v.as_str()
            && let Some(name) = whole_placeholder(s)
        {
            return self.numeric_param(name, v.pos, label).then(|| Num::Param(name.to_string()));
        }
        match v.as_f64() {
            Some(x) => Some(Num::Lit(x)),
            None => {
                let want = "a number or a `{{parameter}}`";
                self.type_err(v.pos, label, want, v.kind(), None);
                None
            }
        }
    }

    fn numeric_param(&mut self, name: &str, pos: Pos, label: &str) -> bool {
        match self.decls.get(name) {
            None => {
                let _ = self.param_value(name, pos, label);
                false
            }
            Some(d) if !d.ty.is_numeric() => {
                let ty = d.ty.with_article();
                self.err(
                    pos,
                    label,
                    "type",
                    format!("parameter `{name}` is {ty}, but `{label}` expects a number"),
                    Some("only number and integer parameters can stand for numbers"),
                );
                false
            }
            Some(_) => true,
        }
    }

    pub(super) fn series_ref(&mut self, obj: &Obj<'_>, key: &str) -> Option<(SeriesRef, Loc)> {
        let s = self.string(obj, key)?;
        let pos = obj.at(key);
        let label = obj.field_label(key);
        match parse_ref(&s) {
            Ok(r) => Some((r, self.loc(pos, &label))),
            Err(e) => {
                self.err(pos, &label, "bad_reference", e, None);
                None
            }
        }
    }

    pub(super) fn seq<'v>(&mut self, v: &'v Node, label: &str) -> Option<&'v [Node]> {
        match v.as_sequence() {
            Some(s) => Some(s),
            None => {
                self.type_err(v.pos, label, "a list", v.kind(), None);
                None
            }
        }
    }

    pub(super) fn number_list(&mut self, o: &Obj<'_>, key: &str) -> Option<Vec<f64>> {
        let label = o.field_label(key);
        let Some(v) = o.get(key) else {
            self.err(o.pos, &o.label, "missing_key", format!("`{key}` is required"), None);
            return None;
        };
        let items = self.seq(v, &label)?;
        let mut out = Vec::with_capacity(items.len());
        for (j, it) in items.iter().enumerate() {
            out.push(self.number_value(it, &format!("{label}[{j}]"))?);
        }
        Some(out)
    }

    pub(super) fn document(&mut self, root: &[(Node, Node)], pos: Pos) -> Option<Document> {
        let obj = Obj { map: root, pos, label: String::new() };
        self.check_keys(&obj, ROOT_KEYS);
        if obj.get("traffic").is_some() {
            self.err(
                obj.at("traffic"),
                "traffic",
                "unsupported",
                "`traffic` is not supported: use `classes` and `classMix` (§6.1)",
                Some("declare `classes: [{id: orders}, {id: refunds}]` and give source nodes `classMix: {orders: 0.7, refunds: 0.3}`"),
            );
        }
        if let Some(v) = obj.get("schemaVersion")
            && v.as_i64() != Some(1)
        {
            self.err(
                v.pos,
                "schemaVersion",
                "schema_version",
                format!("unsupported schemaVersion {}; only 1 is supported", render_scalar(v)),
                None,
            );
        }
        let parameters = self.parameters(root);
        let classes = self.classes(&obj);
        let meta = self.meta(&obj);
        let grid = self.grid(&obj);
        let nodes = self.nodes(&obj);
        let topology = match obj.get("topology") {
            Some(v) => self.topology(v),
            None => Topology::default(),
        };
        let outputs = self.outputs(&obj);
        let validation = self.validation(&obj);
        let provenance = obj.get("provenance").and_then(|v| match &v.value {
            Value::Mapping(_) => serde_json::to_value(v.to_serde()).ok(),
            other => {
                self.type_err(v.pos, "provenance", "a map", other.kind(), None);
                None
            }
        });
        Some(Document {
            meta,
            parameters,
            grid: grid?,
            nodes: nodes?,
            topology,
            outputs,
            validation,
            provenance,
            classes,
        })
    }

    fn meta(&mut self, obj: &Obj<'_>) -> Meta {
        let id = self.string(obj, "id");
        if let Some(id) = &id
            && !valid_doc_id(id)
        {
            self.err(
                obj.at("id"),
                "id",
                "bad_id",
                format!("document id `{id}` must match ^[a-z0-9][a-z0-9_-]*$"),
                Some("use lowercase letters, digits, `_` and `-`, e.g. `order-system`"),
            );
        }
        let version = match obj.get("version") {
            Some(Node { value: Value::String(_), .. }) => self.string(obj, "version"),
            Some(other) => {
                self.err(
                    other.pos,
                    "version",
                    "type",
                    format!("version must be a string, found {}", other.kind()),
                    Some("quote it, e.g. version: \"1.0.0\""),
                );
                None
            }
            None => None,
        };
        Meta {
            id,
            version,
            title: self.string(obj, "title"),
            description: self.string(obj, "description"),
            template_type: self.string(obj, "templateType"),
        }
    }

    pub(super) fn parameters(&mut self, root: &[(Node, Node)]) -> Vec<ParamDecl> {
        let Some((_, v)) = root.iter().find(|(k, _)| k.as_str() == Some("parameters")) else { return Vec::new() };
        let Some(items) = self.seq(v, "parameters") else { return Vec::new() };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(o) = self.obj(item, format!("parameters[{i}]"), "a parameter") else { continue };
            self.check_keys(&o, &["name", "type", "default", "min", "max", "values", "description"]);
            let Some(name) = o.get("name").and_then(Node::as_str).map(str::to_string) else {
                self.err(o.pos, &o.label, "missing_key", "a parameter needs a `name`", None);
                continue;
            };
            let label = format!("parameters[{i}] (name {name})");
            let o = o.relabel(label.clone());
            if !is_valid_id(&name) {
                self.err(
                    o.at("name"),
                    &o.field_label("name"),
                    "bad_id",
                    format!("parameter name `{name}` must match ^[A-Za-z_][A-Za-z0-9_]*$"),
                    None,
                );
            }
            let ty = match o.get("type").and_then(Node::as_str) {
                Some(t) => match ParamType::parse(t) {
                    Some(ty) => ty,
                    None => {
                        self.err(
                            o.at("type"),
                            &o.field_label("type"),
                            "bad_type",
                            format!("unknown parameter type `{t}`"),
                            Some("use number, integer, boolean, string, enum or series"),
                        );
                        continue;
                    }
                },
                None => {
                    self.err(
                        o.pos,
                        &label,
                        "missing_key",
                        format!("parameter `{name}` needs a `type`"),
                        Some("use number, integer, boolean, string, enum or series"),
                    );
                    continue;
                }
            };
            let bound = |r: &mut Reader<'_>, key: &str| {
                o.get(key).and_then(|v| match v.as_f64() {
                    Some(x) => Some(x),
                    None => {
                        r.type_err(v.pos, &o.field_label(key), "a number", v.kind(), None);
                        None
                    }
                })
            };
            let min = bound(self, "min");
            let max = bound(self, "max");
            let values = match o.get("values") {
                Some(v) => match v.as_sequence() {
                    Some(vs) => vs.iter().map(render_scalar).collect(),
                    None => {
                        self.type_err(v.pos, &o.field_label("values"), "a list", v.kind(), None);
                        Vec::new()
                    }
                },
                None => Vec::new(),
            };
            if ty == ParamType::Enum && values.is_empty() {
                self.err(o.pos, &label, "missing_key", format!("enum parameter `{name}` needs `values`"), None);
            }
            let mut decl = ParamDecl {
                name: name.clone(),
                ty,
                default: None,
                min,
                max,
                values,
                description: o.get("description").and_then(Node::as_str).map(str::to_string),
            };
            if let Some(dv) = o.get("default") {
                match decl.value_from_yaml(&dv.to_serde()).and_then(|v| decl.check(&v).map(|_| v)) {
                    Ok(v) => decl.default = Some(v),
                    Err(e) => self.err(
                        dv.pos,
                        &o.field_label("default"),
                        "bad_default",
                        format!("default of parameter `{name}`: {e}"),
                        None,
                    ),
                }
            }
            if self.decls.insert(name.clone(), decl.clone()).is_some() {
                self.err(o.pos, &label, "duplicate_id", format!("parameter `{name}` is declared twice"), None);
                continue;
            }
            out.push(decl);
        }
        out
    }

    fn grid(&mut self, root: &Obj<'_>) -> Option<Grid> {
        let Some(v) = root.get("grid") else {
            self.err(
                root.pos,
                "grid",
                "missing_key",
                "the document needs a `grid`",
                Some("e.g. grid: {bins: 288, binSize: 5, binUnit: minutes}"),
            );
            return None;
        };
        let g = self.obj(v, "grid".into(), "grid")?;
        self.check_keys(&g, &["bins", "binSize", "binUnit", "start", "startTimeUtc"]);
        let bins = self.integer(&g, "bins");
        let size = self.integer(&g, "binSize");
        let unit = self.string(&g, "binUnit");
        for (key, val) in [("bins", bins.is_some()), ("binSize", size.is_some()), ("binUnit", unit.is_some())] {
            if !val && g.get(key).is_none() {
                self.err(g.pos, "grid", "missing_key", format!("grid needs `{key}`"), None);
            }
        }
        let unit = match unit {
            Some(u) => match BinUnit::parse(&u) {
                Some(u) => Some(u),
                None => {
                    self.err(
                        g.at("binUnit"),
                        "grid.binUnit",
                        "bad_value",
                        format!("unknown binUnit `{u}`"),
                        Some("use minutes, hours, days or weeks"),
                    );
                    None
                }
            },
            None => None,
        };
        let start = match self.aliased(&g, "start", "startTimeUtc") {
            Some((v, key)) => {
                let label = format!("grid.{key}");
                let (rv, _) = self.resolve(v, &label).ok()?;
                match rv.as_ref() {
                    Value::String(s) => Some((s.clone(), v.pos, label)),
                    other => {
                        self.type_err(v.pos, &label, "an RFC 3339 timestamp string", other.kind(), None);
                        return None;
                    }
                }
            }
            None => None,
        };
        let (bins, size, unit) = (bins?, size?, unit?);
        match Grid::new(bins, size, unit, start.as_ref().map(|s| s.0.as_str())) {
            Ok(grid) => Some(grid),
            Err(e) => {
                let (pos, label) = match &start {
                    Some((_, p, l)) if e.contains("start") || e.contains("timestamp") || e.contains("9999") => {
                        (*p, l.clone())
                    }
                    _ => (g.pos, "grid".to_string()),
                };
                self.err(pos, &label, "bad_grid", e, None);
                None
            }
        }
    }
}

pub(super) fn valid_doc_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A scalar as text for messages and enum values: strings as written, numbers by yaml_serde's
/// `Display`, anything else by its yaml_serde debug form.
pub(super) fn render_scalar(v: &Node) -> String {
    match &v.value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        _ => format!("{:?}", v.to_serde()),
    }
}
