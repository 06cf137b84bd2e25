//! Units of memoisation (§9): their scenario-independent definitions and their evaluation.
//!
//! A unit is one series definition, or one feedback loop's members evaluated together bin by
//! bin, or a synthesised queue with its overflow. A [`UnitDef`] names what it reads only through
//! slots (sources, parameters, inputs), so equal definitions in two scenarios are the same
//! interned key and share one memoised value.

use std::sync::Arc;

use crate::engine::cexpr::{Bits, CExpr, Env, NumSlot};
use crate::engine::ops;

/// Where a source slot reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Src {
    /// Output `output` of dependency `dep` (an index into the unit key's dependency list).
    Ext { dep: u16, output: u16 },
    /// Output of this unit (a feedback-loop member, or a queue's own previous value).
    Own(u16),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitDef {
    /// A hash of everything below, computed once: interning a key hashes this, not the tree.
    digest: u64,
    pub bins: u32,
    pub srcs: Vec<Src>,
    /// Members in evaluation order (within a bin, same-bin dependencies come first).
    pub members: Vec<Member>,
    pub n_outputs: u16,
    /// Evaluate bin by bin (feedback loops and queues) rather than series by series.
    pub sequential: bool,
    /// Per mix slot (§6.1 class routes): the output of the mix unit it reads. Empty for all
    /// other units.
    pub mix_outs: Vec<u16>,
}

impl std::hash::Hash for UnitDef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    pub def: MemberDef,
    /// The output slots this member writes: one, or two for a queue with overflow.
    pub outputs: Vec<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MemberDef {
    /// `values`: length `bins`, or 1 (broadcast).
    Values(Vec<NumSlot>),
    /// An input series (file, stored telemetry, or an override) by input slot.
    Input(u16),
    /// A constant, e.g. a pmf's expected value.
    Const(Bits),
    /// Another series, unchanged (const `source: <node>`, a router's own series).
    Alias(u16),
    Expr(CExpr),
    Queue(Box<QueueDef>),
    /// `num / (den × den2) × scale`, NaN wherever the denominator is 0 or NaN (§6 metrics).
    Ratio {
        num: u16,
        den: Operand,
        den2: Option<Operand>,
        scale: Option<Bits>,
    },
    /// `src[t − lag] × weight / total × multiplier`, 0 for `t < lag` and where `total == 0`.
    EdgeFlow {
        src: u16,
        lag: u32,
        weight: Bits,
        total: Bits,
        multiplier: Bits,
    },
    /// `Σ src × wᵢ / total` over the routes sharing a target.
    RouterTarget {
        src: u16,
        weights: Vec<Bits>,
        total: Bits,
    },
    /// §6.1 router target with class routes: `Σ_c src · m_c · frac_c` over the source's mix
    /// (`mix`: a slot of the unit's mix reads; `frac`: per class, `_unattributed` last).
    ClassRouter {
        src: u16,
        mix: u16,
        frac: Vec<Bits>,
    },
    /// §7.2 capacity inference, NaN when a guard trips (see `engine::inference`).
    Infer {
        served: u16,
        queue: u16,
        queue_init: Option<NumSlot>,
        guards: crate::engine::inference::Guards,
    },
}

/// A number or a series (for ratio denominators such as `parallelism`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    Num(NumSlot),
    Src(u16),
}

/// §6 queue synthesis.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueueDef {
    /// Own output holding Q (read at `t − 1`).
    pub own: u16,
    pub arrivals: Option<u16>,
    /// `served`, or `capacity` when served is absent.
    pub outflow: Option<u16>,
    pub loss: Option<u16>,
    pub overflow_in: Vec<u16>,
    pub initial: NumSlot,
    pub limit: Option<Operand>,
    pub dispatch: Option<DispatchDef>,
    /// Shared-capacity constraints this queue's inflow is subject to.
    pub constraints: Vec<ConstraintDef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DispatchDef {
    pub period: u32,
    pub phase: u32,
    pub capacity: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConstraintDef {
    pub cap: u16,
    /// Every member's arrivals, in declaration order, and which one is this queue's.
    pub demands: Vec<u16>,
    pub me: usize,
}

/// What a unit evaluation reads: resolved sources, parameter values and input series.
pub struct UnitEnv<'a> {
    /// One slice per source slot (empty for `Own` slots).
    pub ext: &'a [&'a [f64]],
    pub params: &'a [f64],
    pub inputs: &'a [&'a [f64]],
    /// The class mixes the unit reads (`bins × k` each; only routers with class routes).
    pub mixes: &'a [&'a [f64]],
}

/// What a member reads: the unit's sources, and its own outputs so far (growing vectors in a
/// bin-by-bin evaluation, finished series otherwise).
struct MemberEnv<'a, V> {
    def: &'a UnitDef,
    env: &'a UnitEnv<'a>,
    own: &'a [V],
}

impl<V: std::ops::Deref<Target = [f64]>> Env for MemberEnv<'_, V> {
    fn param(&self, slot: u16) -> f64 {
        self.env.params[slot as usize]
    }

    fn src(&self, slot: u16) -> &[f64] {
        match self.def.srcs[slot as usize] {
            Src::Ext { .. } => self.env.ext[slot as usize],
            Src::Own(o) => &self.own[o as usize],
        }
    }

    fn bins(&self) -> usize {
        self.def.bins as usize
    }
}

impl UnitDef {
    pub fn new(bins: u32, srcs: Vec<Src>, members: Vec<Member>, n_outputs: u16, sequential: bool) -> UnitDef {
        use std::hash::{Hash, Hasher};
        // FxHash: deterministic, and several times cheaper than SipHash on these small trees
        // (interning compares whole definitions on a digest match, so collisions only cost time).
        let mut h = rustc_hash::FxHasher::default();
        (bins, &srcs, &members, n_outputs, sequential).hash(&mut h);
        UnitDef { digest: h.finish(), bins, srcs, members, n_outputs, sequential, mix_outs: Vec::new() }
    }

    /// This definition reading class mixes (`mix_outs`: the mix output per mix slot).
    pub fn with_mixes(self, members: Vec<Member>, mix_outs: Vec<u16>) -> UnitDef {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        (self.bins, &self.srcs, &members, self.n_outputs, self.sequential, &mix_outs).hash(&mut h);
        UnitDef { digest: h.finish(), members, mix_outs, ..self }
    }

    /// Feeds everything the definition computes with into `h` (not the FxHash digest): the
    /// definition's part of its content key (`engine::cache`).
    pub fn content_hash<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        let UnitDef { digest: _, bins, srcs, members, n_outputs, sequential, mix_outs } = self;
        (bins, srcs, members, n_outputs, sequential, mix_outs).hash(h);
    }

    /// Evaluates every output of the unit.
    pub fn eval(&self, env: &UnitEnv<'_>) -> Vec<Arc<[f64]>> {
        let n = self.bins as usize;
        if !self.sequential {
            let mut own: Vec<Arc<[f64]>> = vec![Arc::from(&[][..]); self.n_outputs as usize];
            for m in &self.members {
                let menv = MemberEnv { def: self, env, own: &own };
                let v = m.def.eval_arc(&menv);
                own[m.outputs[0] as usize] = v;
            }
            return own;
        }
        let mut own: Vec<Vec<f64>> = vec![vec![0.0; n]; self.n_outputs as usize];
        let mut scratch = [0.0f64; 2];
        for t in 0..n {
            for m in &self.members {
                {
                    let menv = MemberEnv { def: self, env, own: &own };
                    m.def.eval_at(t, &menv, &mut scratch);
                }
                for (k, o) in m.outputs.iter().enumerate() {
                    own[*o as usize][t] = scratch[k];
                }
            }
        }
        own.into_iter().map(Arc::from).collect()
    }
}

impl Operand {
    fn at<E: Env + ?Sized>(self, t: usize, env: &E) -> f64 {
        match self {
            Operand::Num(n) => n.value(env),
            Operand::Src(s) => env.src(s)[t],
        }
    }

    /// The operand for a whole-series loop: a number, or the series' slice.
    fn resolve<E: Env + ?Sized>(self, env: &E) -> Resolved<'_> {
        match self {
            Operand::Num(n) => Resolved::Num(n.value(env)),
            Operand::Src(s) => Resolved::Series(env.src(s)),
        }
    }
}

enum Resolved<'a> {
    Num(f64),
    Series(&'a [f64]),
}

impl Resolved<'_> {
    #[inline]
    fn at(&self, t: usize) -> f64 {
        match self {
            Resolved::Num(v) => *v,
            Resolved::Series(s) => s[t],
        }
    }
}

#[inline]
pub(crate) fn finite(x: f64) -> f64 {
    if x.is_finite() { x } else { 0.0 }
}

impl MemberDef {
    /// The member's series as a memoised value: built in place where it can be (inputs,
    /// aliases, constants, an expression's last operation), so a series is written once.
    fn eval_arc<V: std::ops::Deref<Target = [f64]>>(&self, env: &MemberEnv<'_, V>) -> Arc<[f64]> {
        let n = env.bins();
        match self {
            MemberDef::Input(i) => Arc::from(env.env.inputs[*i as usize]),
            MemberDef::Alias(s) => Arc::from(env.src(*s)),
            MemberDef::Const(b) => std::iter::repeat_n(b.get(), n).collect(),
            MemberDef::Expr(e) => e.eval_arc(env),
            _ => Arc::from(self.eval_series(env)),
        }
    }

    fn eval_series<V: std::ops::Deref<Target = [f64]>>(&self, env: &MemberEnv<'_, V>) -> Vec<f64> {
        let n = env.bins();
        match self {
            MemberDef::Values(vs) => match vs.as_slice() {
                [one] => vec![one.value(env); n],
                many => many.iter().map(|v| v.value(env)).collect(),
            },
            MemberDef::Input(i) => env.env.inputs[*i as usize].to_vec(),
            MemberDef::Const(b) => vec![b.get(); n],
            MemberDef::Alias(s) => env.src(*s).to_vec(),
            MemberDef::Expr(e) => e.eval_series(env),
            MemberDef::Infer { served, queue, queue_init, guards } => {
                if guards.tripped(|slot| NumSlot::Param(slot).value(env)) {
                    return vec![f64::NAN; n];
                }
                let init = queue_init.map_or(0.0, |q| q.value(env));
                let cap = infer_capacity(env.src(*served), env.src(*queue), init).capacity;
                vec![cap; n]
            }
            // Whole-series forms of the per-bin rules below (same operations in the same order,
            // so the same bits), with every operand resolved once rather than per bin.
            MemberDef::Ratio { num, den, den2, scale } => {
                let num = env.src(*num);
                let (den, den2) = (den.resolve(env), den2.map(|d| d.resolve(env)));
                let scale = scale.map(Bits::get);
                (0..n)
                    .map(|t| {
                        let mut d = den.at(t);
                        if let Some(d2) = &den2 {
                            d *= d2.at(t);
                        }
                        if d == 0.0 || d.is_nan() {
                            f64::NAN
                        } else {
                            let r = num[t] / d;
                            match scale {
                                Some(s) => r * s,
                                None => r,
                            }
                        }
                    })
                    .collect()
            }
            MemberDef::EdgeFlow { src, lag, weight, total, multiplier } => {
                let (k, total) = (*lag as usize, total.get());
                let mut out = vec![0.0; n];
                if total != 0.0 && k < n {
                    let (w, m) = (weight.get(), multiplier.get());
                    let x = env.src(*src);
                    out[k..].iter_mut().zip(x).for_each(|(o, x)| *o = x * w / total * m);
                }
                out
            }
            MemberDef::ClassRouter { src, mix, frac } => {
                let k = frac.len() - 1;
                let m = env.env.mixes[*mix as usize];
                env.src(*src)
                    .iter()
                    .enumerate()
                    .map(|(t, &x)| crate::engine::mix::class_route(x, &m[t * k..(t + 1) * k], frac))
                    .collect()
            }
            MemberDef::RouterTarget { src, weights, total } => {
                let total = total.get();
                env.src(*src)
                    .iter()
                    .map(|&x| {
                        let mut acc = 0.0;
                        for w in weights {
                            acc += ops::div(x * w.get(), total);
                        }
                        acc
                    })
                    .collect()
            }
            MemberDef::Queue(_) => {
                let mut scratch = [0.0; 2];
                (0..n)
                    .map(|t| {
                        self.eval_at(t, env, &mut scratch);
                        scratch[0]
                    })
                    .collect()
            }
        }
    }

    /// Writes this member's outputs at bin `t` into `out` (a queue writes Q and overflow).
    fn eval_at<E: Env + ?Sized>(&self, t: usize, env: &E, out: &mut [f64; 2]) {
        out[0] = match self {
            MemberDef::Values(vs) => match vs.as_slice() {
                [one] => one.value(env),
                many => many[t].value(env),
            },
            MemberDef::Input(_) | MemberDef::Infer { .. } | MemberDef::ClassRouter { .. } => {
                // Inputs, inference and class routes never take part in a feedback loop (the
                // compiler guarantees it), so they are evaluated whole-series only.
                debug_assert!(false, "input/inference member evaluated bin by bin");
                f64::NAN
            }
            MemberDef::Const(b) => b.get(),
            MemberDef::Alias(s) => env.src(*s)[t],
            MemberDef::Expr(e) => e.eval_at(t, env),
            MemberDef::Queue(q) => {
                let (depth, overflow) = q.step(t, env);
                out[1] = overflow;
                depth
            }
            MemberDef::Ratio { num, den, den2, scale } => {
                let mut d = den.at(t, env);
                if let Some(d2) = den2 {
                    d *= d2.at(t, env);
                }
                if d == 0.0 || d.is_nan() {
                    f64::NAN
                } else {
                    let r = env.src(*num)[t] / d;
                    match scale {
                        Some(s) => r * s.get(),
                        None => r,
                    }
                }
            }
            MemberDef::EdgeFlow { src, lag, weight, total, multiplier } => {
                let k = *lag as usize;
                if t < k || total.get() == 0.0 {
                    0.0
                } else {
                    env.src(*src)[t - k] * weight.get() / total.get() * multiplier.get()
                }
            }
            MemberDef::RouterTarget { src, weights, total } => {
                let x = env.src(*src)[t];
                let mut acc = 0.0;
                for w in weights {
                    acc += ops::div(x * w.get(), total.get());
                }
                acc
            }
        };
    }
}

impl QueueDef {
    /// The arrivals entering the queue at bin `t`, after every shared-capacity constraint.
    pub(crate) fn capped_arrivals<E: Env + ?Sized>(&self, t: usize, env: &E) -> f64 {
        let mut inflow = self.arrivals.map_or(0.0, |a| finite(env.src(a)[t]));
        for c in &self.constraints {
            inflow = ops::min(inflow, c.allocation(t, env));
        }
        inflow
    }

    /// One bin of §6 queue synthesis: returns `(Q[t], overflow[t])`.
    fn step<E: Env + ?Sized>(&self, t: usize, env: &E) -> (f64, f64) {
        let prev = if t == 0 { self.initial.value(env) } else { env.src(self.own)[t - 1] };
        let inflow = self.capped_arrivals(t, env);
        let mut routed = 0.0;
        for o in &self.overflow_in {
            routed += finite(env.src(*o)[t]);
        }
        let inflow = inflow + routed;
        let mut out = self.outflow.map_or(0.0, |s| finite(env.src(s)[t]));
        if let Some(d) = &self.dispatch {
            out = if ops::pulse_on(t, d.period, d.phase) {
                match d.capacity {
                    Some(c) => ops::min(out, finite(env.src(c)[t])),
                    None => out,
                }
            } else {
                0.0
            };
        }
        let loss = self.loss.map_or(0.0, |l| finite(env.src(l)[t]));
        let q = ops::max(0.0, finite(prev) + inflow - out - loss);
        match self.limit.map(|l| l.at(t, env)) {
            Some(l) if l.is_finite() && q > l => (l, q - l),
            _ => (q, 0.0),
        }
    }
}

impl ConstraintDef {
    /// This member's share of the capacity at bin `t`, or its full demand when not binding.
    fn allocation<E: Env + ?Sized>(&self, t: usize, env: &E) -> f64 {
        let cap = env.src(self.cap)[t];
        let mut total = 0.0;
        for d in &self.demands {
            total += finite(env.src(*d)[t]);
        }
        let mine = finite(env.src(self.demands[self.me])[t]);
        if total > cap { ops::div(cap * mine, total) } else { mine }
    }
}

/// The result of §7.2 capacity inference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Inference {
    pub capacity: f64,
    pub saturated_bins: usize,
    pub bins: usize,
}

/// `infer_from_saturation(served, queue)`: the median of `served` over saturated bins.
pub fn infer_capacity(served: &[f64], queue: &[f64], queue_init: f64) -> Inference {
    let mut sample = Vec::new();
    let mut prev = queue_init;
    for (t, (&s, &q)) in served.iter().zip(queue).enumerate() {
        let p = if t == 0 { queue_init } else { prev };
        prev = q;
        if s.is_nan() || q.is_nan() {
            continue;
        }
        if q > 0.0 && q >= p {
            sample.push(s);
        }
    }
    let saturated_bins = sample.len();
    sample.sort_by(f64::total_cmp);
    let capacity = match saturated_bins {
        0 => f64::NAN,
        k if k % 2 == 1 => sample[k / 2],
        k => (sample[k / 2 - 1] + sample[k / 2]) / 2.0,
    };
    Inference { capacity, saturated_bins, bins: served.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_takes_median_of_saturated_bins() {
        // Queue builds on bins 1..=3 (and holds on 3); served there is 10, 12, 11.
        let served = [5.0, 10.0, 12.0, 11.0, 4.0];
        let queue = [0.0, 3.0, 6.0, 6.0, 2.0];
        let inf = infer_capacity(&served, &queue, 0.0);
        assert_eq!(inf.capacity, 11.0);
        assert_eq!(inf.saturated_bins, 3);
        let inf = infer_capacity(&[1.0, 2.0], &[0.0, 0.0], 0.0);
        assert!(inf.capacity.is_nan());
        assert_eq!(inf.saturated_bins, 0);
        // Even count: mean of the two middle values.
        let inf = infer_capacity(&[4.0, 8.0], &[1.0, 2.0], 0.0);
        assert_eq!(inf.capacity, 6.0);
    }
}
