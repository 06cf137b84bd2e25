//! Lexer and recursive-descent parser for the expression language (§5.1), with function
//! validation (§5.2): unknown functions, arity and literal-argument rules are reported here with
//! the byte offset of the offending token. The parser never panics and bounds its own nesting.

use crate::expr::ast::{BinOp, Call, CmpOp, Expr, ExprKind, Lit, LitValue, Span, UnaryFn};

/// Longest expression text accepted.
pub const MAX_EXPR_LEN: usize = 64 * 1024;
/// Tallest tree accepted: every operator, unary minus and call is one level. Everything that
/// walks an expression recurses on its height, so this bounds their stack use.
pub const MAX_DEPTH: usize = 256;
/// Deepest parser recursion accepted: parentheses, unary minus and call arguments.
pub const MAX_NESTING: usize = 64;

/// A syntax or validation error in an expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    pub message: String,
    pub span: Span,
    pub help: Option<String>,
}

/// Where the expression appears: comparisons are allowed only at the top of a validation check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Node,
    Check,
}

pub fn parse(text: &str, mode: Mode) -> Result<Expr, ExprError> {
    if text.len() > MAX_EXPR_LEN {
        return Err(ExprError {
            message: format!("expression is {} bytes long; at most {MAX_EXPR_LEN} are accepted", text.len()),
            span: Span::new(0, 0),
            help: Some("split the formula over several nodes".into()),
        });
    }
    let tokens = lex(text)?;
    let mut p = Parser { tokens, pos: 0, nesting: 0 };
    let (expr, _) = if mode == Mode::Check { p.cmp()? } else { p.expr()? };
    let tok = p.peek();
    if tok.kind != Tok::Eof {
        let message = match tok.kind {
            Tok::Cmp(_) => "comparison operators are only allowed in validation checks".to_string(),
            Tok::RParen => "unmatched `)`".to_string(),
            _ => format!("unexpected {}; expected an operator or the end of the expression", tok.kind.describe()),
        };
        return Err(ExprError { message, span: tok.span, help: None });
    }
    Ok(expr)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Param(String),
    Plus,
    Minus,
    Star,
    Slash,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Cmp(CmpOp),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Num(v) => format!("number `{v}`"),
            Tok::Ident(s) => format!("name `{s}`"),
            Tok::Param(s) => format!("placeholder `{{{{{s}}}}}`"),
            Tok::Plus => "`+`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Star => "`*`".into(),
            Tok::Slash => "`/`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Cmp(op) => format!("`{}`", op.symbol()),
            Tok::Eof => "end of expression".into(),
        }
    }
}

#[derive(Clone, Debug)]
struct Token {
    kind: Tok,
    span: Span,
}

fn lex(text: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 2 + 1);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let simple = |kind: Tok, n: usize| Token { kind, span: Span::new(start, start + n) };
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'+' => out.push(simple(Tok::Plus, 1)),
            b'-' => out.push(simple(Tok::Minus, 1)),
            b'*' => out.push(simple(Tok::Star, 1)),
            b'/' => out.push(simple(Tok::Slash, 1)),
            b'(' => out.push(simple(Tok::LParen, 1)),
            b')' => out.push(simple(Tok::RParen, 1)),
            b'[' => out.push(simple(Tok::LBracket, 1)),
            b']' => out.push(simple(Tok::RBracket, 1)),
            b',' => out.push(simple(Tok::Comma, 1)),
            b'<' | b'>' | b'=' | b'!' => {
                let next_eq = bytes.get(i + 1) == Some(&b'=');
                let (op, n) = match (c, next_eq) {
                    (b'<', true) => (CmpOp::Le, 2),
                    (b'<', false) => (CmpOp::Lt, 1),
                    (b'>', true) => (CmpOp::Ge, 2),
                    (b'>', false) => (CmpOp::Gt, 1),
                    (b'=', true) => (CmpOp::Eq, 2),
                    (b'!', true) => (CmpOp::Ne, 2),
                    _ => {
                        return Err(ExprError {
                            message: format!("unexpected character `{}`", c as char),
                            span: Span::new(i, i + 1),
                            help: Some(if c == b'=' {
                                "use `==` to compare".into()
                            } else {
                                "use `!=` to compare".into()
                            }),
                        });
                    }
                };
                out.push(simple(Tok::Cmp(op), n));
                i += n;
                continue;
            }
            b'{' => {
                let (tok, n) = lex_placeholder(text, i)?;
                out.push(Token { kind: tok, span: Span::new(i, i + n) });
                i += n;
                continue;
            }
            b'0'..=b'9' | b'.' => {
                let n = lex_number(bytes, i).ok_or_else(|| ExprError {
                    message: "malformed number".into(),
                    span: Span::new(i, i + 1),
                    help: Some("numbers look like `12`, `0.5`, `.5` or `1e-3`".into()),
                })?;
                let s = &text[i..i + n];
                let v: f64 = s.parse().map_err(|_| ExprError {
                    message: format!("malformed number `{s}`"),
                    span: Span::new(i, i + n),
                    help: None,
                })?;
                if !v.is_finite() {
                    // It would evaluate as infinity and print as `inf`, which reads as a name.
                    return Err(ExprError {
                        message: format!("number `{s}` is too large"),
                        span: Span::new(i, i + n),
                        help: Some(format!("numbers must be below {:e}", f64::MAX)),
                    });
                }
                if let Some(&next) = bytes.get(i + n)
                    && (next.is_ascii_alphabetic() || next == b'_')
                {
                    return Err(ExprError {
                        message: format!("number `{s}` runs into a name"),
                        span: Span::new(i, i + n + 1),
                        help: Some("put an operator between a number and a name, e.g. `2 * x`".into()),
                    });
                }
                out.push(Token { kind: Tok::Num(v), span: Span::new(i, i + n) });
                i += n;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                out.push(Token { kind: Tok::Ident(text[i..j].to_string()), span: Span::new(i, j) });
                i = j;
                continue;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(ExprError {
                    message: format!("unexpected character `{ch}`"),
                    span: Span::new(i, i + ch.len_utf8()),
                    help: None,
                });
            }
        }
        i += 1;
    }
    out.push(Token { kind: Tok::Eof, span: Span::new(bytes.len(), bytes.len()) });
    Ok(out)
}

/// Length of the number starting at `i`, per `digits ['.' digits?] [exp] | '.' digits [exp]`.
fn lex_number(b: &[u8], i: usize) -> Option<usize> {
    let digits = |mut j: usize| {
        let s = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        (j, j - s)
    };
    let (mut j, n_int) = digits(i);
    if j < b.len() && b[j] == b'.' {
        let (k, n_frac) = digits(j + 1);
        if n_int == 0 && n_frac == 0 {
            return None;
        }
        j = k;
    }
    if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
        let mut k = j + 1;
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        let (k2, n_exp) = digits(k);
        if n_exp == 0 {
            return None;
        }
        j = k2;
    }
    Some(j - i)
}

fn lex_placeholder(text: &str, i: usize) -> Result<(Tok, usize), ExprError> {
    let rest = &text[i..];
    let bad = |n: usize| ExprError {
        message: "malformed placeholder".into(),
        span: Span::new(i, i + n.max(1)),
        help: Some("a template parameter is written `{{name}}`".into()),
    };
    if !rest.starts_with("{{") {
        return Err(bad(1));
    }
    let Some(close) = rest.find("}}") else { return Err(bad(rest.len())) };
    let name = rest[2..close].trim();
    let valid = !name.is_empty()
        && name.bytes().enumerate().all(|(k, c)| c == b'_' || c.is_ascii_alphabetic() || (k > 0 && c.is_ascii_digit()));
    if !valid {
        return Err(bad(close + 2));
    }
    Ok((Tok::Param(name.to_string()), close + 2))
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Current recursion nesting: parentheses, unary minus and call arguments.
    nesting: usize,
}

fn node(kind: ExprKind, span: Span) -> Expr {
    Expr { kind, span }
}

/// A parsed sub-expression with its tree height (0 for a leaf).
type Parsed = Result<(Expr, usize), ExprError>;

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    /// Takes the current token. The parser never looks back, so a consumed token is moved out
    /// (names are not copied); the final `Eof` stays for every later look.
    fn bump(&mut self) -> Token {
        let last = self.tokens.len() - 1;
        if self.pos < last {
            let span = self.tokens[self.pos].span;
            let t = std::mem::replace(&mut self.tokens[self.pos], Token { kind: Tok::Eof, span });
            self.pos += 1;
            t
        } else {
            self.tokens[last].clone()
        }
    }

    /// Enters one level of parser recursion; the caller leaves it with `self.nesting -= 1`.
    fn enter(&mut self, span: Span) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(ExprError {
                message: format!("expression is nested more than {MAX_NESTING} levels deep"),
                span,
                help: Some("split the formula over several nodes".into()),
            });
        }
        Ok(())
    }

    /// Checks the height of a node being built: every later walk over the tree recurses on it.
    fn height(&self, h: usize, span: Span) -> Result<usize, ExprError> {
        if h > MAX_DEPTH {
            return Err(ExprError {
                message: format!("expression is more than {MAX_DEPTH} operations deep"),
                span,
                help: Some("split the formula over several nodes".into()),
            });
        }
        Ok(h)
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<Token, ExprError> {
        let t = self.peek().clone();
        if t.kind == want {
            return Ok(self.bump());
        }
        Err(unexpected(&t.kind, t.span, what))
    }

    fn cmp(&mut self) -> Parsed {
        let (lhs, lh) = self.expr()?;
        if let Tok::Cmp(op) = self.peek().kind {
            let op_span = self.bump().span;
            let (rhs, rh) = self.expr()?;
            let h = self.height(1 + lh.max(rh), op_span)?;
            let span = lhs.span.to(rhs.span);
            return Ok((node(ExprKind::Compare(op, Box::new(lhs), Box::new(rhs)), span), h));
        }
        Ok((lhs, lh))
    }

    fn expr(&mut self) -> Parsed {
        let (mut lhs, mut h) = self.term()?;
        loop {
            let op = match self.peek().kind {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => break,
            };
            let op_span = self.bump().span;
            let (rhs, rh) = self.term()?;
            h = self.height(1 + h.max(rh), op_span)?;
            let span = lhs.span.to(rhs.span);
            lhs = node(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span);
        }
        Ok((lhs, h))
    }

    fn term(&mut self) -> Parsed {
        let (mut lhs, mut h) = self.unary()?;
        loop {
            let op = match self.peek().kind {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => break,
            };
            let op_span = self.bump().span;
            let (rhs, rh) = self.unary()?;
            h = self.height(1 + h.max(rh), op_span)?;
            let span = lhs.span.to(rhs.span);
            lhs = node(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span);
        }
        Ok((lhs, h))
    }

    fn unary(&mut self) -> Parsed {
        if self.peek().kind == Tok::Minus {
            let minus = self.bump().span;
            self.enter(minus)?;
            let (x, xh) = self.unary()?;
            self.nesting -= 1;
            let h = self.height(1 + xh, minus)?;
            let span = minus.to(x.span);
            return Ok((node(ExprKind::Neg(Box::new(x)), span), h));
        }
        self.primary()
    }

    fn primary(&mut self) -> Parsed {
        let t = self.bump();
        match t.kind {
            Tok::Num(v) => Ok((node(ExprKind::Num(v), t.span), 0)),
            Tok::Param(p) => Ok((node(ExprKind::Param(p), t.span), 0)),
            Tok::Ident(name) => {
                if self.peek().kind == Tok::LParen {
                    self.call(name, t.span)
                } else {
                    Ok((node(ExprKind::Ref(name), t.span), 0))
                }
            }
            Tok::LParen => {
                self.enter(t.span)?;
                let (e, h) = self.expr()?;
                let close = self.expect(Tok::RParen, "`)`")?;
                self.nesting -= 1;
                Ok((Expr { kind: e.kind, span: t.span.to(close.span) }, h))
            }
            other => Err(unexpected_operand(other, t.span)),
        }
    }

    /// Parses a call's argument list; CONV's second argument may be an array. Returns the
    /// arguments, the span of the list and the tallest argument's height.
    fn args(&mut self, is_conv: bool) -> Result<(Vec<Arg>, Span, usize), ExprError> {
        let open = self.expect(Tok::LParen, "`(`")?;
        self.enter(open.span)?;
        let mut args = Vec::new();
        let mut h = 0;
        if self.peek().kind == Tok::RParen {
            let close = self.bump();
            self.nesting -= 1;
            return Ok((args, open.span.to(close.span), h));
        }
        loop {
            if is_conv && args.len() == 1 && self.peek().kind == Tok::LBracket {
                args.push(Arg::Array(self.array()?));
            } else {
                let (e, eh) = self.expr()?;
                h = h.max(eh);
                args.push(Arg::Expr(e));
            }
            let t = self.bump();
            match t.kind {
                Tok::Comma => continue,
                Tok::RParen => {
                    self.nesting -= 1;
                    return Ok((args, open.span.to(t.span), h));
                }
                other => return Err(unexpected(&other, t.span, "`,` or `)` in the argument list")),
            }
        }
    }

    fn array(&mut self) -> Result<(Vec<Lit>, Span), ExprError> {
        let open = self.expect(Tok::LBracket, "`[`")?;
        let mut items = Vec::new();
        if self.peek().kind == Tok::RBracket {
            let close = self.bump();
            return Ok((items, open.span.to(close.span)));
        }
        loop {
            let first = self.bump();
            let (negate, t) = if first.kind == Tok::Minus { (true, self.bump()) } else { (false, first.clone()) };
            let span = first.span.to(t.span);
            match t.kind {
                Tok::Num(v) => items.push(Lit { value: LitValue::Num(if negate { -v } else { v }), span }),
                Tok::Param(name) => items.push(Lit { value: LitValue::Param { name, negate }, span }),
                other => {
                    return Err(ExprError {
                        message: format!("a kernel coefficient must be a number, found {}", other.describe()),
                        span: t.span,
                        help: Some("kernels are literal lists like `[0, 0.6, 0.3, 0.1]`".into()),
                    });
                }
            }
            let t = self.bump();
            match t.kind {
                Tok::Comma => continue,
                Tok::RBracket => return Ok((items, open.span.to(t.span))),
                other => {
                    return Err(ExprError {
                        message: format!("expected `,` or `]` in the kernel, found {}", other.describe()),
                        span: t.span,
                        help: None,
                    });
                }
            }
        }
    }

    fn call(&mut self, name: String, name_span: Span) -> Parsed {
        let upper = function_name(&name, name_span)?;
        let (args, args_span, arg_h) = self.args(upper == "CONV")?;
        let h = self.height(1 + arg_h, name_span)?;
        let call = build_call(&upper, args, name_span)?;
        Ok((node(ExprKind::Call(call), name_span.to(args_span)), h))
    }
}

/// The error for a token found where `expected` was needed; a comparison operator gets the rule
/// that forbids it there rather than a list of what was expected.
#[cold]
#[inline(never)]
fn unexpected(tok: &Tok, span: Span, expected: &str) -> ExprError {
    let message = match tok {
        Tok::Cmp(_) => "comparison operators are only allowed in validation checks".to_string(),
        other => format!("expected {expected}, found {}", other.describe()),
    };
    ExprError { message, span, help: None }
}

/// The error for a token that cannot start an operand (cold, out of the recursion).
#[cold]
#[inline(never)]
fn unexpected_operand(tok: Tok, span: Span) -> ExprError {
    match tok {
        Tok::LBracket => ExprError {
            message: "an array is only allowed as CONV's kernel".into(),
            span,
            help: Some("write a kernel as the second argument of CONV, e.g. `CONV(x, [0.5, 0.5])`".into()),
        },
        Tok::Cmp(_) => {
            ExprError { message: "comparison operators are only allowed in validation checks".into(), span, help: None }
        }
        other => ExprError {
            message: format!("expected a number, a name, a function call or `(`, found {}", other.describe()),
            span,
            help: None,
        },
    }
}

/// The upper-cased name of a known function. Kept out of the parser's recursion so that each
/// nesting level costs little stack.
#[inline(never)]
fn function_name(name: &str, name_span: Span) -> Result<String, ExprError> {
    let upper = name.to_ascii_uppercase();
    let known = [
        "SHIFT",
        "CONV",
        "MIN",
        "MAX",
        "CLAMP",
        "MOD",
        "FLOOR",
        "CEIL",
        "ABS",
        "ROUND",
        "STEP",
        "PULSE",
        "INFER_FROM_SATURATION",
    ];
    if !known.contains(&upper.as_str()) {
        return Err(ExprError {
            message: format!("unknown function `{name}`"),
            span: name_span,
            help: Some(
                "known functions: SHIFT, CONV, MIN, MAX, CLAMP, MOD, FLOOR, CEIL, ABS, ROUND, STEP, PULSE, \
                     infer_from_saturation (names are case-insensitive)"
                    .into(),
            ),
        });
    }
    Ok(upper)
}

/// Checks a call's arity and literal arguments and builds it. Kept out of the parser's recursion
/// so that each nesting level costs little stack.
#[inline(never)]
fn build_call(upper: &str, args: Vec<Arg>, name_span: Span) -> Result<Call, ExprError> {
    let arity = |lo: usize, hi: usize, sig: &str| -> Result<(), ExprError> {
        if args.len() < lo || args.len() > hi {
            let want = if lo == hi {
                format!("{lo}")
            } else if hi == usize::MAX {
                format!("at least {lo}")
            } else {
                format!("{lo} to {hi}")
            };
            return Err(ExprError {
                message: format!(
                    "{upper} takes {want} argument{}, got {}",
                    if want == "1" { "" } else { "s" },
                    args.len()
                ),
                span: name_span,
                help: Some(format!("usage: {sig}")),
            });
        }
        Ok(())
    };
    let call = match upper {
        "SHIFT" => {
            arity(2, 2, "SHIFT(x, lag)")?;
            let mut it = args.into_iter();
            let x = it.next().unwrap_or_else(|| unreachable_arg()).into_expr()?;
            let lag = literal(it.next().unwrap_or_else(|| unreachable_arg()), "SHIFT's lag")?;
            check_int_lit(&lag, 0, "SHIFT's lag")?;
            Call::Shift { x: Box::new(x), lag }
        }
        "CONV" => {
            arity(2, 2, "CONV(x, [k0, k1, ...])")?;
            let mut it = args.into_iter();
            let x = it.next().unwrap_or_else(|| unreachable_arg()).into_expr()?;
            match it.next().unwrap_or_else(|| unreachable_arg()) {
                Arg::Array((kernel, kernel_span)) => Call::Conv { x: Box::new(x), kernel, kernel_span },
                Arg::Expr(e) => {
                    return Err(ExprError {
                        message: "CONV's kernel must be a list of numbers".into(),
                        span: e.span,
                        help: Some("e.g. `CONV(errors, [0, 0.6, 0.3, 0.1])`".into()),
                    });
                }
            }
        }
        "MIN" | "MAX" => {
            arity(2, usize::MAX, &format!("{upper}(a, b, ...)"))?;
            let xs = args.into_iter().map(Arg::into_expr).collect::<Result<Vec<_>, _>>()?;
            if upper == "MIN" { Call::Min(xs) } else { Call::Max(xs) }
        }
        "CLAMP" => {
            arity(3, 3, "CLAMP(x, lo, hi)")?;
            let mut xs = args.into_iter().map(Arg::into_expr).collect::<Result<Vec<_>, _>>()?.into_iter();
            let (a, b, c) = (next(&mut xs), next(&mut xs), next(&mut xs));
            Call::Clamp(a, b, c)
        }
        "MOD" | "STEP" | "INFER_FROM_SATURATION" => {
            let sig = match upper {
                "MOD" => "MOD(a, b)",
                "STEP" => "STEP(x, threshold)",
                _ => "infer_from_saturation(served, queue)",
            };
            arity(2, 2, sig)?;
            let mut xs = args.into_iter().map(Arg::into_expr).collect::<Result<Vec<_>, _>>()?.into_iter();
            let (a, b) = (next(&mut xs), next(&mut xs));
            match upper {
                "MOD" => Call::Mod(a, b),
                "STEP" => Call::Step(a, b),
                _ => Call::InferFromSaturation(a, b),
            }
        }
        "FLOOR" | "CEIL" | "ABS" | "ROUND" => {
            arity(1, 1, &format!("{upper}(x)"))?;
            let mut xs = args.into_iter().map(Arg::into_expr).collect::<Result<Vec<_>, _>>()?.into_iter();
            let f = match upper {
                "FLOOR" => UnaryFn::Floor,
                "CEIL" => UnaryFn::Ceil,
                "ABS" => UnaryFn::Abs,
                _ => UnaryFn::Round,
            };
            Call::Unary(f, next(&mut xs))
        }
        "PULSE" => {
            arity(1, 3, "PULSE(period [, phase [, amplitude]])")?;
            let mut it = args.into_iter();
            let period = literal(it.next().unwrap_or_else(|| unreachable_arg()), "PULSE's period")?;
            check_int_lit(&period, 1, "PULSE's period")?;
            let phase = match it.next() {
                Some(a) => {
                    let l = literal(a, "PULSE's phase")?;
                    check_int_lit(&l, 0, "PULSE's phase")?;
                    Some(l)
                }
                None => None,
            };
            let amp = match it.next() {
                Some(a) => Some(Box::new(a.into_expr()?)),
                None => None,
            };
            Call::Pulse { period, phase, amp }
        }
        _ => unreachable_arg(),
    };
    Ok(call)
}

enum Arg {
    Expr(Expr),
    Array((Vec<Lit>, Span)),
}

impl Arg {
    fn into_expr(self) -> Result<Expr, ExprError> {
        match self {
            Arg::Expr(e) => Ok(e),
            Arg::Array((_, span)) => {
                Err(ExprError { message: "an array is only allowed as CONV's kernel".into(), span, help: None })
            }
        }
    }
}

fn next(it: &mut impl Iterator<Item = Expr>) -> Box<Expr> {
    Box::new(it.next().unwrap_or_else(|| unreachable_arg()))
}

#[cold]
fn unreachable_arg() -> ! {
    // Arity is checked before arguments are taken apart, so this cannot be reached.
    unreachable!("argument count was checked")
}

/// A literal argument: a number, `-number` (so that a negative value is reported as negative
/// rather than as non-literal) or a placeholder.
fn literal(arg: Arg, what: &str) -> Result<Lit, ExprError> {
    let e = arg.into_expr()?;
    match e.kind {
        ExprKind::Num(v) => Ok(Lit { value: LitValue::Num(v), span: e.span }),
        ExprKind::Param(name) => Ok(Lit { value: LitValue::Param { name, negate: false }, span: e.span }),
        ExprKind::Neg(inner) => match inner.kind {
            ExprKind::Num(v) => Ok(Lit { value: LitValue::Num(-v), span: e.span }),
            ExprKind::Param(name) => Ok(Lit { value: LitValue::Param { name, negate: true }, span: e.span }),
            _ => Err(non_literal(what, e.span)),
        },
        _ => Err(non_literal(what, e.span)),
    }
}

fn non_literal(what: &str, span: Span) -> ExprError {
    ExprError {
        message: format!("{what} must be a literal number"),
        span,
        help: Some("write a number such as `1`, or a `{{parameter}}`".into()),
    }
}

/// Checks a numeric literal is an integer `≥ min`; placeholders are checked when resolved.
pub fn check_int_lit(lit: &Lit, min: i64, what: &str) -> Result<(), ExprError> {
    match lit.value {
        LitValue::Num(v) => check_int(v, min, what).map_err(|message| ExprError {
            message,
            span: lit.span,
            help: Some(if min == 0 {
                "use a whole number ≥ 0".into()
            } else {
                format!("use a whole number ≥ {min}")
            }),
        }),
        LitValue::Param { .. } => Ok(()),
    }
}

/// The rule behind `check_int_lit`, shared with placeholder resolution.
pub fn check_int(v: f64, min: i64, what: &str) -> Result<(), String> {
    if v.is_nan() || v < min as f64 {
        if v < 0.0 {
            return Err(format!("{what} must not be negative (got {v})"));
        }
        return Err(format!("{what} must be at least {min} (got {v})"));
    }
    if v.fract() != 0.0 || v > 1e9 {
        return Err(format!("{what} must be a whole number (got {v})"));
    }
    Ok(())
}
