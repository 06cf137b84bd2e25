//! Reading formulas: parsing expressions, checking the parameters they name, and resolving
//! literal placeholders (lags, periods, kernel coefficients), which shape the dependency graph.

use crate::expr::ast::{Expr, ExprKind, Lit, LitValue, Span};
use crate::expr::parser::{self, ExprError, Mode, check_int};
use crate::model::doc::read::Reader;
use crate::model::doc::{Loc, expr_diag};

impl Reader<'_> {
    /// Parses an expression, checks its placeholders, and resolves literal placeholders (lags,
    /// periods, kernel coefficients) to numbers: those shape the dependency graph.
    pub(super) fn expression(&mut self, text: &str, mode: Mode, loc: &Loc) -> Option<Expr> {
        let mut expr = match parser::parse(text, mode) {
            Ok(e) => e,
            Err(e) => {
                self.diags.push(expr_diag(loc, text, &e));
                return None;
            }
        };
        let mut ok = true;
        let mut operands = Vec::new();
        expr.walk(
            &mut |e| {
                if let ExprKind::Param(p) = &e.kind {
                    operands.push((p.clone(), e.span));
                }
            },
            &mut |_| {},
        );
        for (name, span) in operands {
            if !self.expr_param_ok(&name, text, span, loc) {
                ok = false;
            }
        }
        if ok && !self.resolve_lits(&mut expr, text, loc) {
            ok = false;
        }
        ok.then_some(expr)
    }

    fn expr_param_ok(&mut self, name: &str, text: &str, span: Span, loc: &Loc) -> bool {
        let problem = match self.decls.get(name) {
            None => Some(format!("unknown placeholder `{{{{{name}}}}}`: no parameter `{name}` is declared")),
            Some(d) if !d.ty.is_numeric() => Some(format!(
                "parameter `{name}` is {}; only number and integer parameters may appear in expressions (formulas are fixed)",
                d.ty.with_article()
            )),
            Some(_) => None,
        };
        match problem {
            Some(msg) => {
                self.diags.push(loc.diag("expr_param", msg).with_expr(text, span.start as usize, span.len()));
                false
            }
            None => true,
        }
    }

    fn resolve_lits(&mut self, expr: &mut Expr, text: &str, loc: &Loc) -> bool {
        let mut params = Vec::new();
        expr.walk(&mut |_| {}, &mut |l| {
            if let LitValue::Param { name, negate } = &l.value {
                params.push((name.clone(), *negate, l.span));
            }
        });
        let mut ok = true;
        let mut values = Vec::new();
        for (name, negate, span) in params.iter().cloned() {
            if !self.expr_param_ok(&name, text, span, loc) {
                ok = false;
                continue;
            }
            match self.lookup.value(&name).and_then(|v| v.as_f64()) {
                Some(v) => values.push((span, if negate { -v } else { v })),
                None => {
                    self.diags.push(
                        loc.diag("parameter_missing", format!("parameter `{name}` has no value and no default"))
                            .with_expr(text, span.start as usize, span.len()),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return false;
        }
        // Write pass, then re-check the literal rules with the actual values.
        substitute_lits(expr, &values);
        if let Err(mut e) = check_literals(expr) {
            // The value came from a placeholder: name the parameter as well as the field (§3).
            if let Some((name, _, _)) = params.iter().find(|(_, _, span)| *span == e.span) {
                e.message.push_str(&format!(", from parameter `{name}`"));
            }
            self.diags.push(expr_diag(loc, text, &e));
            return false;
        }
        true
    }
}

/// Replaces placeholder literals by value, matching them by span.
fn substitute_lits(expr: &mut Expr, values: &[(Span, f64)]) {
    use crate::expr::ast::Call;
    fn fix(l: &mut Lit, values: &[(Span, f64)]) {
        if matches!(l.value, LitValue::Param { .. })
            && let Some((_, v)) = values.iter().find(|(s, _)| *s == l.span)
        {
            l.value = LitValue::Num(*v);
        }
    }
    match &mut expr.kind {
        ExprKind::Num(_) | ExprKind::Param(_) | ExprKind::Ref(_) => {}
        ExprKind::Neg(x) => substitute_lits(x, values),
        ExprKind::Binary(_, a, b) | ExprKind::Compare(_, a, b) => {
            substitute_lits(a, values);
            substitute_lits(b, values);
        }
        ExprKind::Call(call) => match call {
            Call::Shift { x, lag } => {
                substitute_lits(x, values);
                fix(lag, values);
            }
            Call::Conv { x, kernel, .. } => {
                substitute_lits(x, values);
                kernel.iter_mut().for_each(|k| fix(k, values));
            }
            Call::Min(args) | Call::Max(args) => args.iter_mut().for_each(|a| substitute_lits(a, values)),
            Call::Clamp(a, b, c) => {
                substitute_lits(a, values);
                substitute_lits(b, values);
                substitute_lits(c, values);
            }
            Call::Mod(a, b) | Call::Step(a, b) | Call::InferFromSaturation(a, b) => {
                substitute_lits(a, values);
                substitute_lits(b, values);
            }
            Call::Unary(_, x) => substitute_lits(x, values),
            Call::Pulse { period, phase, amp } => {
                fix(period, values);
                if let Some(p) = phase {
                    fix(p, values);
                }
                if let Some(a) = amp {
                    substitute_lits(a, values);
                }
            }
        },
    }
}

/// Re-checks literal rules after placeholders were resolved.
fn check_literals(expr: &Expr) -> Result<(), ExprError> {
    use crate::expr::ast::Call;
    let mut err = None;
    expr.walk(
        &mut |e| {
            if err.is_some() {
                return;
            }
            if let ExprKind::Call(call) = &e.kind {
                let checks: Vec<(&Lit, i64, &str)> = match call {
                    Call::Shift { lag, .. } => vec![(lag, 0, "SHIFT's lag")],
                    Call::Pulse { period, phase, .. } => {
                        let mut v = vec![(period, 1, "PULSE's period")];
                        if let Some(p) = phase {
                            v.push((p, 0, "PULSE's phase"));
                        }
                        v
                    }
                    _ => vec![],
                };
                for (lit, min, what) in checks {
                    if let LitValue::Num(v) = lit.value
                        && let Err(message) = check_int(v, min, what)
                    {
                        err = Some(ExprError { message, span: lit.span, help: None });
                    }
                }
            }
        },
        &mut |_| {},
    );
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
