//! Compiled expressions: the syntax tree with references resolved to input slots, literals
//! resolved, and parameters resolved to parameter slots; plus its two evaluators.
//!
//! Whole-series evaluation computes one operator over all bins at a time (fast); bin-by-bin
//! evaluation computes one bin at a time for feedback loops. Both use the scalar kernels of
//! [`super::ops`] and agree bit for bit (a property test checks this).

use std::sync::Arc;

use crate::engine::ops;
use crate::expr::ast::{BinOp, CmpOp, UnaryFn};

/// An f64 compared and hashed by its bits, so definitions can be interned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bits(u64);

impl Bits {
    pub fn new(v: f64) -> Bits {
        Bits(v.to_bits())
    }

    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// A number known at compile time or read from a parameter slot at evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumSlot {
    Lit(Bits),
    Param(u16),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CExpr {
    Num(Bits),
    Param(u16),
    /// A series read through the unit's source table.
    Src(u16),
    Neg(Box<CExpr>),
    Bin(BinOp, Box<CExpr>, Box<CExpr>),
    Cmp(CmpOp, Box<CExpr>, Box<CExpr>),
    /// `init` is the initial condition of a bare shifted series (None reads 0).
    Shift {
        x: Box<CExpr>,
        lag: u32,
        init: Option<NumSlot>,
    },
    Conv {
        x: Box<CExpr>,
        kernel: Vec<Bits>,
    },
    Min(Vec<CExpr>),
    Max(Vec<CExpr>),
    Clamp(Box<CExpr>, Box<CExpr>, Box<CExpr>),
    Mod(Box<CExpr>, Box<CExpr>),
    Unary(UnaryFn, Box<CExpr>),
    Step(Box<CExpr>, Box<CExpr>),
    Pulse {
        period: u32,
        phase: u32,
        amp: Option<Box<CExpr>>,
    },
}

/// What an expression reads while it evaluates.
pub trait Env {
    fn param(&self, slot: u16) -> f64;
    /// The series behind a source slot. In bin-by-bin evaluation only the bins already
    /// computed are meaningful; the compiler guarantees nothing else is read.
    fn src(&self, slot: u16) -> &[f64];
    fn bins(&self) -> usize;
}

impl NumSlot {
    pub fn value<E: Env + ?Sized>(self, env: &E) -> f64 {
        match self {
            NumSlot::Lit(b) => b.get(),
            NumSlot::Param(p) => env.param(p),
        }
    }
}

/// A whole-series intermediate: a broadcast scalar, a borrowed series, or an owned buffer.
enum Val<'a> {
    S(f64),
    B(&'a [f64]),
    O(Vec<f64>),
}

impl Val<'_> {
    #[inline]
    fn at(&self, t: usize) -> f64 {
        match self {
            Val::S(v) => *v,
            Val::B(s) => s[t],
            Val::O(v) => v[t],
        }
    }

    fn as_slice(&self) -> Option<&[f64]> {
        match self {
            Val::S(_) => None,
            Val::B(s) => Some(s),
            Val::O(v) => Some(v),
        }
    }

    fn into_vec(self, n: usize) -> Vec<f64> {
        match self {
            Val::S(v) => vec![v; n],
            Val::B(s) => s.to_vec(),
            Val::O(v) => v,
        }
    }
}

/// Applies `f` bin-wise, reusing an owned buffer when there is one. Generic over `f`, and with
/// one loop per pair of operand kinds, so every loop is a plain slice loop the compiler can
/// unroll and vectorise.
#[inline]
fn zip2<F: Fn(f64, f64) -> f64>(a: Val<'_>, b: Val<'_>, f: F) -> Val<'static> {
    match (a, b) {
        (Val::S(x), Val::S(y)) => Val::S(f(x, y)),
        (Val::O(mut v), Val::S(y)) => {
            v.iter_mut().for_each(|x| *x = f(*x, y));
            Val::O(v)
        }
        (Val::O(mut v), Val::B(w)) => {
            v.iter_mut().zip(w).for_each(|(x, y)| *x = f(*x, *y));
            Val::O(v)
        }
        (Val::O(mut v), Val::O(w)) => {
            v.iter_mut().zip(&w).for_each(|(x, y)| *x = f(*x, *y));
            Val::O(v)
        }
        (Val::S(x), Val::O(mut v)) => {
            v.iter_mut().for_each(|y| *y = f(x, *y));
            Val::O(v)
        }
        (Val::B(w), Val::O(mut v)) => {
            v.iter_mut().zip(w).for_each(|(y, x)| *y = f(*x, *y));
            Val::O(v)
        }
        (Val::S(x), Val::B(w)) => Val::O(w.iter().map(|y| f(x, *y)).collect()),
        (Val::B(w), Val::S(y)) => Val::O(w.iter().map(|x| f(*x, y)).collect()),
        (Val::B(v), Val::B(w)) => Val::O(v.iter().zip(w).map(|(x, y)| f(*x, *y)).collect()),
    }
}

/// [`zip2`] written into a fresh shared series: the series is allocated once at its final
/// size and filled by a plain slice loop (as fast as the in-place loops of `zip2`).
fn zip2_arc<F: Fn(f64, f64) -> f64>(a: Val<'_>, b: Val<'_>, n: usize, f: F) -> Arc<[f64]> {
    let mut out: Arc<[f64]> = std::iter::repeat_n(0.0, n).collect();
    let Some(o) = Arc::get_mut(&mut out) else { return out };
    match (a.as_slice(), b.as_slice()) {
        (None, None) => o.fill(f(a.at(0), b.at(0))),
        (Some(x), None) => {
            let y = b.at(0);
            o.iter_mut().zip(x).for_each(|(o, x)| *o = f(*x, y));
        }
        (None, Some(y)) => {
            let x = a.at(0);
            o.iter_mut().zip(y).for_each(|(o, y)| *o = f(x, *y));
        }
        (Some(x), Some(y)) => o.iter_mut().zip(x.iter().zip(y)).for_each(|(o, (x, y))| *o = f(*x, *y)),
    }
    out
}

#[inline]
fn map1<F: Fn(f64) -> f64>(a: Val<'_>, f: F) -> Val<'static> {
    match a {
        Val::S(x) => Val::S(f(x)),
        Val::B(s) => Val::O(s.iter().map(|x| f(*x)).collect()),
        Val::O(mut v) => {
            v.iter_mut().for_each(|x| *x = f(*x));
            Val::O(v)
        }
    }
}

/// A binary operator applied to whole series, with the operator chosen once, not per bin.
fn bin_whole(op: BinOp, a: Val<'_>, b: Val<'_>) -> Val<'static> {
    match op {
        BinOp::Add => zip2(a, b, |x, y| x + y),
        BinOp::Sub => zip2(a, b, |x, y| x - y),
        BinOp::Mul => zip2(a, b, |x, y| x * y),
        BinOp::Div => zip2(a, b, ops::div),
    }
}

fn binop(op: BinOp) -> fn(f64, f64) -> f64 {
    match op {
        BinOp::Add => |a, b| a + b,
        BinOp::Sub => |a, b| a - b,
        BinOp::Mul => |a, b| a * b,
        BinOp::Div => ops::div,
    }
}

fn unary(f: UnaryFn) -> fn(f64) -> f64 {
    match f {
        UnaryFn::Floor => f64::floor,
        UnaryFn::Ceil => f64::ceil,
        UnaryFn::Abs => f64::abs,
        UnaryFn::Round => ops::round,
    }
}

#[inline]
fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

impl CExpr {
    /// Evaluates over all bins at once.
    pub fn eval_series<E: Env + ?Sized>(&self, env: &E) -> Vec<f64> {
        let n = env.bins();
        self.whole(env).into_vec(n)
    }

    /// Evaluates over all bins into a shared series, writing the last operation's results
    /// straight into it (no intermediate vector copied).
    pub fn eval_arc<E: Env + ?Sized>(&self, env: &E) -> Arc<[f64]> {
        let n = env.bins();
        match self {
            CExpr::Bin(op, a, b) => {
                let (a, b) = (a.whole(env), b.whole(env));
                match op {
                    BinOp::Add => zip2_arc(a, b, n, |x, y| x + y),
                    BinOp::Sub => zip2_arc(a, b, n, |x, y| x - y),
                    BinOp::Mul => zip2_arc(a, b, n, |x, y| x * y),
                    BinOp::Div => zip2_arc(a, b, n, ops::div),
                }
            }
            CExpr::Mod(a, b) => zip2_arc(a.whole(env), b.whole(env), n, ops::modulo),
            CExpr::Min(args) | CExpr::Max(args) if args.len() == 2 => {
                let (a, b) = (args[0].whole(env), args[1].whole(env));
                if matches!(self, CExpr::Min(_)) { zip2_arc(a, b, n, ops::min) } else { zip2_arc(a, b, n, ops::max) }
            }
            _ => match self.whole(env) {
                Val::S(v) => std::iter::repeat_n(v, n).collect(),
                Val::B(s) => Arc::from(s),
                Val::O(v) => Arc::from(v),
            },
        }
    }

    fn whole<'a, E: Env + ?Sized>(&self, env: &'a E) -> Val<'a> {
        let n = env.bins();
        match self {
            CExpr::Num(b) => Val::S(b.get()),
            CExpr::Param(p) => Val::S(env.param(*p)),
            CExpr::Src(s) => Val::B(env.src(*s)),
            CExpr::Neg(x) => map1(x.whole(env), |v| -v),
            CExpr::Bin(op, a, b) => bin_whole(*op, a.whole(env), b.whole(env)),
            CExpr::Cmp(op, a, b) => {
                let op = *op;
                zip2(a.whole(env), b.whole(env), move |x, y| ops::compare(op, x, y))
            }
            CExpr::Shift { x, lag, init } => {
                let k = *lag as usize;
                let before = self.shift_before(env, x, init);
                let xv = x.whole(env);
                if k == 0 {
                    return xv;
                }
                let mut out = vec![before; n];
                match xv {
                    Val::S(v) => out.iter_mut().skip(k).for_each(|o| *o = v),
                    Val::B(s) if k < n => out[k..].copy_from_slice(&s[..n - k]),
                    Val::O(s) if k < n => out[k..].copy_from_slice(&s[..n - k]),
                    _ => {}
                }
                Val::O(out)
            }
            CExpr::Conv { x, kernel } => {
                let xv = x.whole(env);
                let ks: Vec<f64> = kernel.iter().map(|b| b.get()).collect();
                Val::O(
                    (0..n)
                        .map(|t| {
                            let mut acc = 0.0;
                            for (j, k) in ks.iter().enumerate().take(t.min(ks.len().saturating_sub(1)) + 1) {
                                acc += finite_or_zero(xv.at(t - j)) * k;
                            }
                            acc
                        })
                        .collect(),
                )
            }
            CExpr::Min(args) | CExpr::Max(args) => {
                let min = matches!(self, CExpr::Min(_));
                let mut it = args.iter();
                let mut acc = match it.next() {
                    Some(a) => a.whole(env),
                    None => return Val::S(f64::NAN),
                };
                for a in it {
                    acc = if min { zip2(acc, a.whole(env), ops::min) } else { zip2(acc, a.whole(env), ops::max) };
                }
                acc
            }
            CExpr::Clamp(x, lo, hi) => {
                let t = zip2(x.whole(env), lo.whole(env), ops::max);
                zip2(t, hi.whole(env), ops::min)
            }
            CExpr::Mod(a, b) => zip2(a.whole(env), b.whole(env), ops::modulo),
            CExpr::Unary(f, x) => map1(x.whole(env), unary(*f)),
            CExpr::Step(a, b) => zip2(a.whole(env), b.whole(env), ops::step),
            CExpr::Pulse { period, phase, amp } => {
                let a = amp.as_ref().map_or(Val::S(1.0), |a| a.whole(env));
                Val::O((0..n).map(|t| if ops::pulse_on(t, *period, *phase) { a.at(t) } else { 0.0 }).collect())
            }
        }
    }

    /// What `SHIFT(x, k)` reads for `t < k`: the initial condition of a bare series, else 0.
    fn shift_before<E: Env + ?Sized>(&self, env: &E, x: &CExpr, init: &Option<NumSlot>) -> f64 {
        match (x, init) {
            (CExpr::Src(_), Some(slot)) => slot.value(env),
            _ => 0.0,
        }
    }

    /// Evaluates bin `t` only (for feedback loops).
    pub fn eval_at<E: Env + ?Sized>(&self, t: usize, env: &E) -> f64 {
        match self {
            CExpr::Num(b) => b.get(),
            CExpr::Param(p) => env.param(*p),
            CExpr::Src(s) => env.src(*s)[t],
            CExpr::Neg(x) => -x.eval_at(t, env),
            CExpr::Bin(op, a, b) => binop(*op)(a.eval_at(t, env), b.eval_at(t, env)),
            CExpr::Cmp(op, a, b) => ops::compare(*op, a.eval_at(t, env), b.eval_at(t, env)),
            CExpr::Shift { x, lag, init } => {
                let k = *lag as usize;
                if t >= k { x.eval_at(t - k, env) } else { self.shift_before(env, x, init) }
            }
            CExpr::Conv { x, kernel } => {
                let mut acc = 0.0;
                for (j, k) in kernel.iter().enumerate().take(t.min(kernel.len().saturating_sub(1)) + 1) {
                    acc += finite_or_zero(x.eval_at(t - j, env)) * k.get();
                }
                acc
            }
            CExpr::Min(args) | CExpr::Max(args) => {
                let min = matches!(self, CExpr::Min(_));
                let mut it = args.iter();
                let mut acc = it.next().map_or(f64::NAN, |a| a.eval_at(t, env));
                for a in it {
                    let x = a.eval_at(t, env);
                    acc = if min { ops::min(acc, x) } else { ops::max(acc, x) };
                }
                acc
            }
            CExpr::Clamp(x, lo, hi) => ops::clamp(x.eval_at(t, env), lo.eval_at(t, env), hi.eval_at(t, env)),
            CExpr::Mod(a, b) => ops::modulo(a.eval_at(t, env), b.eval_at(t, env)),
            CExpr::Unary(f, x) => unary(*f)(x.eval_at(t, env)),
            CExpr::Step(a, b) => ops::step(a.eval_at(t, env), b.eval_at(t, env)),
            CExpr::Pulse { period, phase, amp } => {
                if ops::pulse_on(t, *period, *phase) {
                    amp.as_ref().map_or(1.0, |a| a.eval_at(t, env))
                } else {
                    0.0
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    struct TestEnv {
        srcs: Vec<Vec<f64>>,
        params: Vec<f64>,
    }

    impl Env for TestEnv {
        fn param(&self, slot: u16) -> f64 {
            self.params[slot as usize]
        }
        fn src(&self, slot: u16) -> &[f64] {
            &self.srcs[slot as usize]
        }
        fn bins(&self) -> usize {
            self.srcs[0].len()
        }
    }

    fn leaf() -> impl Strategy<Value = CExpr> {
        prop_oneof![
            prop_oneof![Just(0.0), Just(-0.0), Just(1.5), Just(-3.0), Just(f64::NAN), Just(2.0)]
                .prop_map(|v| CExpr::Num(Bits::new(v))),
            (0u16..2).prop_map(CExpr::Param),
            (0u16..3).prop_map(CExpr::Src),
        ]
    }

    fn expr() -> impl Strategy<Value = CExpr> {
        leaf().prop_recursive(4, 40, 3, |inner| {
            let b = || inner.clone().prop_map(Box::new);
            prop_oneof![
                b().prop_map(CExpr::Neg),
                (prop_oneof![Just(BinOp::Add), Just(BinOp::Sub), Just(BinOp::Mul), Just(BinOp::Div)], b(), b())
                    .prop_map(|(o, a, c)| CExpr::Bin(o, a, c)),
                (b(), 0u32..4, prop::option::of(Just(NumSlot::Lit(Bits::new(7.0)))))
                    .prop_map(|(x, lag, init)| CExpr::Shift { x, lag, init }),
                (b(), prop::collection::vec(prop_oneof![Just(0.0), Just(0.5), Just(-1.0)], 0..5))
                    .prop_map(|(x, k)| CExpr::Conv { x, kernel: k.into_iter().map(Bits::new).collect() }),
                prop::collection::vec(inner.clone(), 2..4).prop_map(CExpr::Min),
                prop::collection::vec(inner.clone(), 2..4).prop_map(CExpr::Max),
                (b(), b(), b()).prop_map(|(x, l, h)| CExpr::Clamp(x, l, h)),
                (b(), b()).prop_map(|(a, c)| CExpr::Mod(a, c)),
                (b(), b()).prop_map(|(a, c)| CExpr::Step(a, c)),
                b().prop_map(|x| CExpr::Unary(UnaryFn::Round, x)),
                (1u32..4, 0u32..3, prop::option::of(b())).prop_map(|(period, phase, amp)| CExpr::Pulse {
                    period,
                    phase,
                    amp
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]
        /// The two evaluators agree bit for bit on every expression.
        #[test]
        fn whole_and_bin_evaluation_agree(e in expr(), data in prop::collection::vec(prop_oneof![-5.0..5.0f64, Just(0.0), Just(f64::NAN)], 18)) {
            let env = TestEnv { srcs: data.chunks(6).map(<[f64]>::to_vec).collect(), params: vec![2.5, -1.0] };
            let whole = e.eval_series(&env);
            for (t, w) in whole.iter().enumerate() {
                let b = e.eval_at(t, &env);
                // NaN equals NaN (§9 compares bit patterns except that NaN payloads are not kept).
                prop_assert!(w.to_bits() == b.to_bits() || (w.is_nan() && b.is_nan()), "bin {} of {:?}: {} vs {}", t, e, w, b);
            }
        }
    }
}
