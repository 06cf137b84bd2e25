//! Reading `outputs` (§8 artifact selection) and `validation` checks (§7).

use crate::expr::parser::Mode;
use crate::model::doc::read::{Obj, Reader};
use crate::model::doc::{CheckKind, CheckSpec, OutputSpec};

impl Reader<'_> {
    pub(super) fn outputs(&mut self, root: &Obj<'_>) -> Vec<OutputSpec> {
        let Some(v) = root.get("outputs") else { return Vec::new() };
        let Some(items) = self.seq(v, "outputs") else { return Vec::new() };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(o) = self.obj(item, format!("outputs[{i}]"), "an output") else { continue };
            self.check_keys(&o, &["series", "as"]);
            let Some(series) = self.string(&o, "series") else {
                self.err(o.pos, &o.label, "missing_key", "an output needs `series` (an id, `*` or `prefix*`)", None);
                continue;
            };
            let file_name = self.string(&o, "as");
            if let Some(f) = &file_name
                && !valid_csv_name(f)
            {
                self.err(
                    o.at("as"),
                    &o.field_label("as"),
                    "bad_value",
                    format!("output file name `{f}` must match ^[A-Za-z0-9_-]+\\.csv$"),
                    None,
                );
                continue;
            }
            out.push(OutputSpec { series, file_name, loc: self.loc(o.pos, &o.label) });
        }
        out
    }

    pub(super) fn validation(&mut self, root: &Obj<'_>) -> Vec<CheckSpec> {
        let Some(v) = root.get("validation") else { return Vec::new() };
        let Some(items) = self.seq(v, "validation") else { return Vec::new() };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(o) = self.obj(item, format!("validation[{i}]"), "a validation check") else {
                continue;
            };
            self.check_keys(&o, &["id", "type", "node", "tolerance", "expr", "message", "action"]);
            let Some(id) = self.string(&o, "id") else {
                self.err(
                    o.pos,
                    &o.label,
                    "missing_key",
                    "a validation check needs an `id` (it becomes the warning code)",
                    None,
                );
                continue;
            };
            let o = o.relabel(format!("validation[{i}] (id {id})"));
            let info = match self.string(&o, "action").as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("warn") | Some("warning") => false,
                Some("info") => true,
                Some(other) => {
                    self.err(
                        o.at("action"),
                        &o.field_label("action"),
                        "bad_value",
                        format!("unknown action `{other}`"),
                        Some("use warn or info (validation never blocks a run)"),
                    );
                    continue;
                }
            };
            let ty = self.string(&o, "type").unwrap_or_default().to_ascii_lowercase();
            let kind = match ty.as_str() {
                "conservation" => {
                    let Some(node) = self.string(&o, "node") else {
                        self.err(
                            o.pos,
                            &o.label,
                            "missing_key",
                            "a conservation check needs `node` (a topology node id)",
                            None,
                        );
                        continue;
                    };
                    let tolerance = self.number(&o, "tolerance").unwrap_or(0.01);
                    CheckKind::Conservation { node, tolerance }
                }
                "expr" => {
                    let Some(text) = self.string(&o, "expr") else {
                        self.err(o.pos, &o.label, "missing_key", "an expr check needs `expr`", None);
                        continue;
                    };
                    let expr_loc = self.loc(o.at("expr"), &o.field_label("expr"));
                    let Some(expr) = self.expression(&text, Mode::Check, &expr_loc) else { continue };
                    CheckKind::Expr { text, expr, message: self.string(&o, "message"), expr_loc }
                }
                other => {
                    self.err(
                        o.at("type"),
                        &o.field_label("type"),
                        "bad_kind",
                        format!("unknown validation type `{other}`"),
                        Some("use conservation or expr"),
                    );
                    continue;
                }
            };
            out.push(CheckSpec { id, kind, info, loc: self.loc(o.pos, &o.label) });
        }
        out
    }
}

fn valid_csv_name(s: &str) -> bool {
    s.strip_suffix(".csv")
        .is_some_and(|stem| !stem.is_empty() && stem.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}
