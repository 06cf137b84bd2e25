//! Metrics: the reductions of one series over a bin window that every analysis mode reports
//! (`max(orders_backlog)`, `p95(order_latency_min[96..144])`, `bins_above(q, 100)`), their parser
//! with located errors, resolution against a plan, and evaluation.
//!
//! Grammar (whitespace between tokens is ignored; reducer names are case-insensitive, series and
//! parameter names are not):
//! ```text
//! metric    := reducer '(' series window? ')'
//!            | threshold '(' series window? ',' number ')'
//!            | name                                -- a parameter's value at the point
//! reducer   := mean | sum | min | max | final | p50 | p90 | p95 | p99
//! threshold := bins_above | first_bin_above
//! series    := name                                -- a series id, e.g. order_service_queue
//! window    := '[' integer '..' integer ']'        -- bins [a, b), like --bins
//! name      := (letter | '_') (letter | digit | '_' | '@')*
//! number    := '-'? digits ('.' digits?)? (('e'|'E') ('+'|'-')? digits)?
//! ```
//! NaN bins are skipped by every reduction and counted (`nan_bins`). With no non-NaN bin in the
//! window every reduction is NaN except `bins_above`, which is 0. Quantiles interpolate linearly
//! between closest ranks (the "type 7" definition of R and NumPy). `final` is the last non-NaN
//! bin; `bins_above` counts bins `> threshold`; `first_bin_above` is the first such bin's index
//! on the grid (not within the window), NaN when there is none.

use std::collections::BTreeMap;
use std::fmt;

use crate::diag::Diagnostic;
use crate::engine::classes::per_class_mistake;
use crate::engine::plan::Compiled;
use crate::model::doc::closest;
use crate::model::params::{ParamDecl, ParamType};

/// Longest metric text accepted.
pub const MAX_METRIC_LEN: usize = 1024;

/// How a series is reduced to one number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reducer {
    Mean,
    Sum,
    Min,
    Max,
    Final,
    /// The quantile `q` in (0, 1) of the non-NaN bins.
    Quantile(f64),
    /// Bins strictly above the threshold.
    BinsAbove(f64),
    /// The first bin strictly above the threshold.
    FirstBinAbove(f64),
}

const REDUCERS: &[&str] = &["mean", "sum", "min", "max", "final", "p50", "p90", "p95", "p99"];
const THRESHOLDS: &[&str] = &["bins_above", "first_bin_above"];

/// A parsed metric, not yet checked against a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// The text as written (trimmed): results are keyed by it.
    pub text: String,
    pub kind: MetricKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MetricKind {
    Reduce {
        reducer: Reducer,
        series: String,
        /// `[a, b)`; None is the whole grid.
        window: Option<(u32, u32)>,
        /// Byte ranges of the series name and of the window, for errors found on resolution.
        series_span: (usize, usize),
        window_span: (usize, usize),
    },
    /// A parameter's value at the point (e.g. the capacity an optimisation minimises).
    Param { name: String },
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A metric checked against a plan: the series index and window it reduces, or the parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub text: String,
    pub target: Resolution,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Resolution {
    Series { reducer: Reducer, id: String, window: (u32, u32) },
    Param(String),
}

impl Resolved {
    /// The series id this metric reads, if it reads one.
    pub fn series_id(&self) -> Option<&str> {
        match &self.target {
            Resolution::Series { id, .. } => Some(id),
            Resolution::Param(_) => None,
        }
    }
}

/// A metric's value at one point: the reduction and the NaN bins it skipped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Value {
    pub value: f64,
    pub nan_bins: u32,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Name(String),
    Num(f64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    DotDot,
    Comma,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Name(s) => format!("name `{s}`"),
            Tok::Num(v) => format!("number `{v}`"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::DotDot => "`..`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Eof => "the end of the metric".into(),
        }
    }
}

struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

const HELP: &str = "write e.g. `max(orders_backlog)`, `p95(latency_min[96..144])` or `bins_above(queue, 100)`";

fn error(text: &str, start: usize, end: usize, message: impl Into<String>) -> Diagnostic {
    Diagnostic::error("bad_metric", message).with_expr(text, start, end.saturating_sub(start).max(1))
}

fn lex(text: &str) -> Result<Vec<Token>, Diagnostic> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = |tok| Token { tok, start, end: start + 1 };
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => out.push(single(Tok::LParen)),
            b')' => out.push(single(Tok::RParen)),
            b'[' => out.push(single(Tok::LBracket)),
            b']' => out.push(single(Tok::RBracket)),
            b',' => out.push(single(Tok::Comma)),
            b'.' if bytes.get(i + 1) == Some(&b'.') => {
                out.push(Token { tok: Tok::DotDot, start, end: start + 2 });
                i += 2;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'@') {
                    i += 1;
                }
                out.push(Token { tok: Tok::Name(text[start..i].to_string()), start, end: i });
                continue;
            }
            b'-' | b'+' | b'.' if !bytes.get(i + 1).is_some_and(|n| n.is_ascii_digit() || *n == b'.') => {
                return Err(
                    error(text, start, start + 1, format!("unexpected character `{}`", c as char)).with_help(HELP)
                );
            }
            c if c.is_ascii_digit() || c == b'-' || c == b'+' || c == b'.' => {
                i += 1;
                let digits = |i: &mut usize| {
                    let s = *i;
                    while *i < bytes.len() && bytes[*i].is_ascii_digit() {
                        *i += 1;
                    }
                    *i > s
                };
                digits(&mut i);
                // A fraction, but not the `..` of a window.
                if i < bytes.len() && bytes[i] == b'.' && bytes.get(i + 1) != Some(&b'.') {
                    i += 1;
                    digits(&mut i);
                }
                if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                    let save = i;
                    i += 1;
                    if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
                        i += 1;
                    }
                    if !digits(&mut i) {
                        i = save;
                    }
                }
                let s = &text[start..i];
                match s.parse::<f64>() {
                    Ok(v) if v.is_finite() => out.push(Token { tok: Tok::Num(v), start, end: i }),
                    _ => return Err(error(text, start, i, format!("`{s}` is not a number")).with_help(HELP)),
                }
                continue;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(
                    error(text, start, start + ch.len_utf8(), format!("unexpected character `{ch}`")).with_help(HELP)
                );
            }
        }
        i += 1;
    }
    out.push(Token { tok: Tok::Eof, start: text.len(), end: text.len() });
    Ok(out)
}

/// Parses a metric. Errors carry the text with a caret under the offending token.
pub fn parse(text: &str) -> Result<Metric, Diagnostic> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Diagnostic::error("bad_metric", "the metric is empty").with_help(HELP));
    }
    if text.len() > MAX_METRIC_LEN {
        return Err(Diagnostic::error(
            "bad_metric",
            format!("the metric is {} bytes long; at most {MAX_METRIC_LEN} are accepted", text.len()),
        ));
    }
    let toks = lex(text)?;
    let mut pos = 0;
    let at = |pos: usize| &toks[pos.min(toks.len() - 1)];
    let expect = |pos: usize, want: Tok, what: &str| -> Result<(), Diagnostic> {
        let t = at(pos);
        if t.tok == want {
            Ok(())
        } else {
            Err(error(text, t.start, t.end, format!("expected {what}, found {}", t.tok.describe())).with_help(HELP))
        }
    };
    let head = at(pos);
    let Tok::Name(name) = &head.tok else {
        return Err(error(
            text,
            head.start,
            head.end,
            format!("expected a reducer such as `max`, found {}", head.tok.describe()),
        )
        .with_help(HELP));
    };
    let (name_start, name_end) = (head.start, head.end);
    pos += 1;
    if at(pos).tok == Tok::Eof {
        return Ok(Metric { text: text.to_string(), kind: MetricKind::Param { name: name.clone() } });
    }
    let lower = name.to_ascii_lowercase();
    let threshold = THRESHOLDS.contains(&lower.as_str());
    if !threshold && !REDUCERS.contains(&lower.as_str()) {
        let all: Vec<&str> = REDUCERS.iter().chain(THRESHOLDS).copied().collect();
        let help = match closest(&lower, &all) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!("reducers: {}", all.join(", ")),
        };
        return Err(error(text, name_start, name_end, format!("unknown reducer `{name}`")).with_help(help));
    }
    expect(pos, Tok::LParen, "`(`")?;
    pos += 1;
    let s = at(pos);
    let Tok::Name(series) = &s.tok else {
        return Err(
            error(text, s.start, s.end, format!("expected a series id, found {}", s.tok.describe())).with_help(HELP)
        );
    };
    let series_span = (s.start, s.end);
    pos += 1;
    let mut window = None;
    let mut window_span = series_span;
    if at(pos).tok == Tok::LBracket {
        let open = at(pos).start;
        let bound = |pos: usize| -> Result<u32, Diagnostic> {
            let t = at(pos);
            match t.tok {
                Tok::Num(v) if v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 => Ok(v as u32),
                _ => Err(error(
                    text,
                    t.start,
                    t.end,
                    format!("expected a bin index (a whole number ≥ 0), found {}", t.tok.describe()),
                )
                .with_help("a window is `[a..b]`: bins a to b − 1, like --bins a..b")),
            }
        };
        let a = bound(pos + 1)?;
        expect(pos + 2, Tok::DotDot, "`..`")?;
        let b = bound(pos + 3)?;
        expect(pos + 4, Tok::RBracket, "`]`")?;
        window_span = (open, at(pos + 4).end);
        if b <= a {
            return Err(error(text, window_span.0, window_span.1, format!("the window [{a}..{b}] is empty"))
                .with_help("a window `[a..b]` holds bins a to b − 1, so b must be greater than a"));
        }
        window = Some((a, b));
        pos += 5;
    }
    let reducer = if threshold {
        expect(pos, Tok::Comma, "`,` and a threshold")?;
        let t = at(pos + 1);
        let Tok::Num(thr) = t.tok else {
            return Err(error(
                text,
                t.start,
                t.end,
                format!("expected a threshold number, found {}", t.tok.describe()),
            )
            .with_help(format!("write e.g. `{lower}({series}, 100)`")));
        };
        pos += 2;
        if lower == "bins_above" { Reducer::BinsAbove(thr) } else { Reducer::FirstBinAbove(thr) }
    } else {
        match lower.as_str() {
            "mean" => Reducer::Mean,
            "sum" => Reducer::Sum,
            "min" => Reducer::Min,
            "max" => Reducer::Max,
            "final" => Reducer::Final,
            "p50" => Reducer::Quantile(0.5),
            "p90" => Reducer::Quantile(0.9),
            "p95" => Reducer::Quantile(0.95),
            _ => Reducer::Quantile(0.99),
        }
    };
    expect(pos, Tok::RParen, "`)`")?;
    pos += 1;
    let t = at(pos);
    if t.tok != Tok::Eof {
        return Err(error(text, t.start, t.end, format!("unexpected {} after the metric", t.tok.describe()))
            .with_help("give one metric per --metric"));
    }
    Ok(Metric {
        text: text.to_string(),
        kind: MetricKind::Reduce { reducer, series: series.clone(), window, series_span, window_span },
    })
}

impl Metric {
    /// Checks the metric against a plan and the declared parameters: the series exists, the
    /// window lies in the grid, a bare name is a numeric parameter.
    pub fn resolve(&self, c: &Compiled, decls: &[ParamDecl]) -> Result<Resolved, Diagnostic> {
        let text = &self.text;
        let target = match &self.kind {
            MetricKind::Param { name } => {
                let Some(d) = decls.iter().find(|d| &d.name == name) else {
                    let mut names: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
                    names.extend(REDUCERS);
                    let help = match closest(name, &names) {
                        Some(n) if REDUCERS.contains(&n) => format!("did you mean `{n}({name})`?"),
                        Some(n) => format!("did you mean the parameter `{n}`?"),
                        None => HELP.to_string(),
                    };
                    return Err(error(text, 0, name.len(), format!("`{name}` is neither a reduction nor a parameter"))
                        .with_help(help));
                };
                if !matches!(d.ty, ParamType::Number | ParamType::Integer) {
                    return Err(error(
                        text,
                        0,
                        name.len(),
                        format!("parameter `{name}` is {}, not a number", d.ty.with_article()),
                    ));
                }
                Resolution::Param(name.clone())
            }
            MetricKind::Reduce { reducer, series, window, series_span, window_span } => {
                // §6.1 per-class series `x@c`: `x` classed, `c` a declared class or `_unattributed`.
                if let Some((message, help)) = per_class_mistake(c, series) {
                    return Err(error(text, series_span.0, series_span.1, message).with_help(help));
                }
                let known = c.by_id.contains_key(series)
                    || series.rsplit_once('@').is_some_and(|(base, _)| c.by_id.contains_key(base));
                if !known {
                    let ids: Vec<&str> = c.by_id.keys().map(String::as_str).collect();
                    let help = match closest(series, &ids) {
                        Some(n) => format!("did you mean `{n}`?"),
                        None => "name a series of the model (`flowtime query TARGET '*'` lists them)".to_string(),
                    };
                    return Err(
                        error(text, series_span.0, series_span.1, format!("unknown series `{series}`")).with_help(help)
                    );
                }
                let bins = c.grid.bins;
                let (a, b) = window.unwrap_or((0, bins));
                if b > bins {
                    return Err(error(
                        text,
                        window_span.0,
                        window_span.1,
                        format!("the window [{a}..{b}] ends after the grid's {bins} bins"),
                    )
                    .with_help(format!("use bins within 0..{bins}")));
                }
                Resolution::Series { reducer: *reducer, id: series.clone(), window: (a, b) }
            }
        };
        Ok(Resolved { text: self.text.clone(), target })
    }
}

/// Parses and resolves every metric; all problems at once, each located at `field[i]`.
pub fn resolve_all(
    texts: &[String],
    field: &str,
    c: &Compiled,
    decls: &[ParamDecl],
) -> Result<Vec<Resolved>, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut diags = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        match parse(t).and_then(|m| m.resolve(c, decls)) {
            Ok(r) => out.push(r),
            Err(d) => diags.push(d.at_path(format!("{field}[{i}]"))),
        }
    }
    if diags.is_empty() { Ok(out) } else { Err(diags) }
}

/// Parses and resolves one metric, located at `field`.
pub fn resolve_one(text: &str, field: &str, c: &Compiled, decls: &[ParamDecl]) -> Result<Resolved, Vec<Diagnostic>> {
    parse(text).and_then(|m| m.resolve(c, decls)).map_err(|d| vec![d.at_path(field.to_string())])
}

impl Resolved {
    /// The metric's value given the point's series (by id) and parameter values.
    pub fn eval(&self, series: &BTreeMap<String, crate::engine::Series>, params: &BTreeMap<String, f64>) -> Value {
        match &self.target {
            Resolution::Param(name) => Value { value: params.get(name).copied().unwrap_or(f64::NAN), nan_bins: 0 },
            Resolution::Series { reducer, id, window: (a, b), .. } => match series.get(id) {
                Some(v) => reduce(&v[*a as usize..*b as usize], *a, *reducer),
                None => Value { value: f64::NAN, nan_bins: b - a },
            },
        }
    }
}

/// Reduces `values` (bins `first..` of a series), skipping NaN bins.
pub fn reduce(values: &[f64], first: u32, reducer: Reducer) -> Value {
    let nan_bins = values.iter().filter(|v| v.is_nan()).count() as u32;
    let mut ok = values.iter().copied().filter(|v| !v.is_nan());
    let n = values.len() as u32 - nan_bins;
    let value = match reducer {
        Reducer::BinsAbove(t) => values.iter().filter(|v| **v > t).count() as f64,
        Reducer::FirstBinAbove(t) => {
            values.iter().position(|v| *v > t).map_or(f64::NAN, |i| (first as usize + i) as f64)
        }
        _ if n == 0 => f64::NAN,
        Reducer::Mean => ok.fold(0.0, |a, v| a + v) / n as f64,
        Reducer::Sum => ok.fold(0.0, |a, v| a + v),
        Reducer::Min => ok.fold(f64::INFINITY, f64::min),
        Reducer::Max => ok.fold(f64::NEG_INFINITY, f64::max),
        Reducer::Final => ok.next_back().unwrap_or(f64::NAN),
        Reducer::Quantile(q) => {
            let mut sorted: Vec<f64> = ok.collect();
            quantile_of(&mut sorted, q)
        }
    };
    Value { value, nan_bins }
}

/// The `q` quantile of NaN-free `values` (reordered), interpolating linearly between closest
/// ranks; NaN for no values.
pub fn quantile_of(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable_by(f64::total_cmp);
    let h = (values.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(values.len() - 1);
    values[lo] + (h - lo as f64) * (values[hi] - values[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let d = parse(text).unwrap_err();
        let span = d.expr.as_ref().map(|e| (e.offset, e.len));
        format!("{} @ {span:?}", d.message)
    }

    #[test]
    fn parses_reductions_windows_thresholds_and_parameters() {
        let m = parse(" P95( order_latency_min [96..144] ) ").unwrap();
        assert_eq!(m.text, "P95( order_latency_min [96..144] )");
        match m.kind {
            MetricKind::Reduce { reducer, series, window, .. } => {
                assert_eq!(reducer, Reducer::Quantile(0.95));
                assert_eq!(series, "order_latency_min");
                assert_eq!(window, Some((96, 144)));
            }
            other => panic!("{other:?}"),
        }
        match parse("bins_above(q, -2.5e1)").unwrap().kind {
            MetricKind::Reduce { reducer, .. } => assert_eq!(reducer, Reducer::BinsAbove(-25.0)),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse("order_capacity").unwrap().kind, MetricKind::Param { name: "order_capacity".into() });
        assert!(matches!(parse("max(svc_queue@order)").unwrap().kind, MetricKind::Reduce { .. }));
    }

    #[test]
    fn errors_point_at_the_token() {
        assert_eq!(err("maxx(q)"), "unknown reducer `maxx` @ Some((0, 4))");
        assert_eq!(err("max(q[5..5])"), "the window [5..5] is empty @ Some((5, 6))");
        assert_eq!(err("max(q"), "expected `)`, found the end of the metric @ Some((5, 1))");
        assert_eq!(err("bins_above(q)"), "expected `,` and a threshold, found `)` @ Some((12, 1))");
        assert_eq!(
            err("max(q[1.5..3])"),
            "expected a bin index (a whole number ≥ 0), found number `1.5` @ Some((6, 3))"
        );
        assert_eq!(err("max(q) + 1"), "unexpected character `+` @ Some((7, 1))");
        assert!(parse("").is_err());
    }

    #[test]
    fn reductions_skip_and_count_nan() {
        let v = [1.0, f64::NAN, 4.0, 2.0, f64::NAN, 3.0];
        let r = |x| reduce(&v, 10, x);
        assert_eq!(r(Reducer::Max), Value { value: 4.0, nan_bins: 2 });
        assert_eq!(r(Reducer::Min).value, 1.0);
        assert_eq!(r(Reducer::Sum).value, 10.0);
        assert_eq!(r(Reducer::Mean).value, 2.5);
        assert_eq!(r(Reducer::Final).value, 3.0);
        assert_eq!(r(Reducer::Quantile(0.5)).value, 2.5);
        assert!((r(Reducer::Quantile(0.95)).value - 3.85).abs() < 1e-12, "between 3 and 4 at 0.85");
        assert_eq!(r(Reducer::BinsAbove(2.0)).value, 2.0);
        assert_eq!(r(Reducer::FirstBinAbove(2.0)).value, 12.0, "a grid bin index, not a window offset");
        assert!(r(Reducer::FirstBinAbove(9.0)).value.is_nan());
        let all_nan = [f64::NAN; 3];
        assert!(reduce(&all_nan, 0, Reducer::Sum).value.is_nan());
        assert_eq!(reduce(&all_nan, 0, Reducer::BinsAbove(0.0)), Value { value: 0.0, nan_bins: 3 });
    }
}
