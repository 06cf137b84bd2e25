//! The expression syntax tree, its printer, and the dependency walk (lagged vs same-bin reads).

use std::fmt;

/// Byte range `[start, end)` in the expression text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start: start as u32, end: end as u32 }
    }

    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Num(f64),
    /// `{{name}}` used as an operand: the value of a number/integer template parameter.
    Param(String),
    /// A series id.
    Ref(String),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// Only at the top of a validation check (§7.1).
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    Call(Call),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryFn {
    Floor,
    Ceil,
    Abs,
    Round,
}

/// A literal argument that must be known before evaluation (a SHIFT lag, a PULSE period, a CONV
/// coefficient): a number, or a template parameter resolved when the model is compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct Lit {
    pub value: LitValue,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LitValue {
    Num(f64),
    Param { name: String, negate: bool },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    Shift { x: Box<Expr>, lag: Lit },
    Conv { x: Box<Expr>, kernel: Vec<Lit>, kernel_span: Span },
    Min(Vec<Expr>),
    Max(Vec<Expr>),
    Clamp(Box<Expr>, Box<Expr>, Box<Expr>),
    Mod(Box<Expr>, Box<Expr>),
    Unary(UnaryFn, Box<Expr>),
    Step(Box<Expr>, Box<Expr>),
    Pulse { period: Lit, phase: Option<Lit>, amp: Option<Box<Expr>> },
    InferFromSaturation(Box<Expr>, Box<Expr>),
}

/// How a reference is read: in the same bin, or only from earlier bins (§5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReadKind {
    SameBin,
    Lagged,
}

impl Expr {
    /// Every series reference with how it is read, in source order (a name may appear twice).
    ///
    /// A reference inside `SHIFT(·, k)` with `k ≥ 1`, or inside the first argument of a `CONV`
    /// whose first coefficient is 0, is lagged. Lags and coefficients given as parameters are
    /// treated as not lagging (the conservative reading); compiled expressions have them resolved.
    pub fn refs(&self) -> Vec<(&str, ReadKind, Span)> {
        let mut out = Vec::new();
        self.collect_refs(false, &mut out);
        out
    }

    fn collect_refs<'a>(&'a self, lagged: bool, out: &mut Vec<(&'a str, ReadKind, Span)>) {
        let kind = if lagged { ReadKind::Lagged } else { ReadKind::SameBin };
        match &self.kind {
            ExprKind::Num(_) | ExprKind::Param(_) => {}
            ExprKind::Ref(name) => out.push((name, kind, self.span)),
            ExprKind::Neg(x) => x.collect_refs(lagged, out),
            ExprKind::Binary(_, a, b) | ExprKind::Compare(_, a, b) => {
                a.collect_refs(lagged, out);
                b.collect_refs(lagged, out);
            }
            ExprKind::Call(call) => match call {
                Call::Shift { x, lag } => {
                    let lags = matches!(lag.value, LitValue::Num(k) if k >= 1.0);
                    x.collect_refs(lagged || lags, out);
                }
                Call::Conv { x, kernel, .. } => {
                    let lags = matches!(kernel.first(), Some(Lit { value: LitValue::Num(k0), .. }) if *k0 == 0.0)
                        || kernel.is_empty();
                    x.collect_refs(lagged || lags, out);
                }
                Call::Min(args) | Call::Max(args) => args.iter().for_each(|a| a.collect_refs(lagged, out)),
                Call::Clamp(a, b, c) => {
                    a.collect_refs(lagged, out);
                    b.collect_refs(lagged, out);
                    c.collect_refs(lagged, out);
                }
                Call::Mod(a, b) | Call::Step(a, b) | Call::InferFromSaturation(a, b) => {
                    a.collect_refs(lagged, out);
                    b.collect_refs(lagged, out);
                }
                Call::Unary(_, x) => x.collect_refs(lagged, out),
                Call::Pulse { amp, .. } => {
                    if let Some(a) = amp {
                        a.collect_refs(lagged, out)
                    }
                }
            },
        }
    }

    /// Names of template parameters used anywhere in the expression (operands and literals).
    pub fn params(&self) -> Vec<&str> {
        let mut operands = Vec::new();
        let mut literals = Vec::new();
        self.walk(
            &mut |e| {
                if let ExprKind::Param(p) = &e.kind {
                    operands.push(p.as_str());
                }
            },
            &mut |l| {
                if let LitValue::Param { name, .. } = &l.value {
                    literals.push(name.as_str());
                }
            },
        );
        operands.extend(literals);
        operands
    }

    /// Pre-order walk over sub-expressions and literal arguments.
    pub fn walk<'a>(&'a self, on_expr: &mut dyn FnMut(&'a Expr), on_lit: &mut dyn FnMut(&'a Lit)) {
        on_expr(self);
        match &self.kind {
            ExprKind::Num(_) | ExprKind::Param(_) | ExprKind::Ref(_) => {}
            ExprKind::Neg(x) => x.walk(on_expr, on_lit),
            ExprKind::Binary(_, a, b) | ExprKind::Compare(_, a, b) => {
                a.walk(on_expr, on_lit);
                b.walk(on_expr, on_lit);
            }
            ExprKind::Call(call) => match call {
                Call::Shift { x, lag } => {
                    x.walk(on_expr, on_lit);
                    on_lit(lag);
                }
                Call::Conv { x, kernel, .. } => {
                    x.walk(on_expr, on_lit);
                    for k in kernel {
                        on_lit(k);
                    }
                }
                Call::Min(args) | Call::Max(args) => args.iter().for_each(|a| a.walk(on_expr, on_lit)),
                Call::Clamp(a, b, c) => {
                    a.walk(on_expr, on_lit);
                    b.walk(on_expr, on_lit);
                    c.walk(on_expr, on_lit);
                }
                Call::Mod(a, b) | Call::Step(a, b) | Call::InferFromSaturation(a, b) => {
                    a.walk(on_expr, on_lit);
                    b.walk(on_expr, on_lit);
                }
                Call::Unary(_, x) => x.walk(on_expr, on_lit),
                Call::Pulse { period, phase, amp } => {
                    on_lit(period);
                    if let Some(p) = phase {
                        on_lit(p);
                    }
                    if let Some(a) = amp {
                        a.walk(on_expr, on_lit);
                    }
                }
            },
        }
    }
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            LitValue::Num(v) => write_num(f, *v),
            LitValue::Param { name, negate } => {
                write!(f, "{}{{{{{name}}}}}", if *negate { "-" } else { "" })
            }
        }
    }
}

fn write_num(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    // Display of f64 is the shortest text that parses back to the same bits; negative numbers
    // are printed in parentheses so that the printed text re-parses to the same tree.
    if v.is_sign_negative() { write!(f, "(-{})", -v) } else { write!(f, "{v}") }
}

/// How tightly an expression binds when printed as an operand: comparisons loosest, then `+ -`,
/// then `* /`, then unary minus; calls, numbers and names are atomic.
fn binding(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Compare(..) => 0,
        ExprKind::Binary(BinOp::Add | BinOp::Sub, ..) => 1,
        ExprKind::Binary(BinOp::Mul | BinOp::Div, ..) => 2,
        ExprKind::Neg(_) => 3,
        _ => 4,
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, e: &Expr, parens: bool) -> fmt::Result {
    if parens { write!(f, "({e})") } else { write!(f, "{e}") }
}

/// Prints the canonical form: upper-case function names, one space around binary operators, and
/// parentheses only where precedence or left-associativity needs them. It parses back to an
/// equal tree, and never nests deeper than any text that parses to that tree (so whatever the
/// parser accepted, it accepts the printed form too).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Num(v) => write_num(f, *v),
            ExprKind::Param(p) => write!(f, "{{{{{p}}}}}"),
            ExprKind::Ref(r) => f.write_str(r),
            ExprKind::Neg(x) => {
                f.write_str("-")?;
                write_operand(f, x, binding(x) < 3)
            }
            ExprKind::Binary(op, a, b) => {
                let level = binding(self);
                write_operand(f, a, binding(a) < level)?;
                write!(f, " {} ", op.symbol())?;
                write_operand(f, b, binding(b) <= level)
            }
            ExprKind::Compare(op, a, b) => write!(f, "{a} {} {b}", op.symbol()),
            ExprKind::Call(call) => match call {
                Call::Shift { x, lag } => write!(f, "SHIFT({x}, {lag})"),
                Call::Conv { x, kernel, .. } => {
                    write!(f, "CONV({x}, [")?;
                    for (i, k) in kernel.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        match &k.value {
                            LitValue::Num(v) => write!(f, "{v}")?,
                            LitValue::Param { .. } => write!(f, "{k}")?,
                        }
                    }
                    f.write_str("])")
                }
                Call::Min(args) => write_call(f, "MIN", args),
                Call::Max(args) => write_call(f, "MAX", args),
                Call::Clamp(a, b, c) => write!(f, "CLAMP({a}, {b}, {c})"),
                Call::Mod(a, b) => write!(f, "MOD({a}, {b})"),
                Call::Unary(u, x) => {
                    let name = match u {
                        UnaryFn::Floor => "FLOOR",
                        UnaryFn::Ceil => "CEIL",
                        UnaryFn::Abs => "ABS",
                        UnaryFn::Round => "ROUND",
                    };
                    write!(f, "{name}({x})")
                }
                Call::Step(a, b) => write!(f, "STEP({a}, {b})"),
                Call::Pulse { period, phase, amp } => {
                    write!(f, "PULSE({period}")?;
                    if let Some(p) = phase {
                        write!(f, ", {p}")?;
                    }
                    if let Some(a) = amp {
                        write!(f, ", {a}")?;
                    }
                    f.write_str(")")
                }
                Call::InferFromSaturation(a, b) => write!(f, "infer_from_saturation({a}, {b})"),
            },
        }
    }
}

fn write_call(f: &mut fmt::Formatter<'_>, name: &str, args: &[Expr]) -> fmt::Result {
    write!(f, "{name}(")?;
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{a}")?;
    }
    f.write_str(")")
}
