//! Class mixes (§6.1): the scenario-independent definition of a *mix unit* (one or more classed
//! series whose per-bin mixes are computed together) and its evaluation.
//!
//! A mix is stored per series as `bins × k` shares (bin-major; `k` = declared classes); the
//! implicit `_unattributed` share is `1 − Σ shares`. Mixes never change a total: a mix unit reads
//! the finished value series of the units it needs (through value slots, like a unit's sources)
//! and the mixes of other mix units, and is evaluated bin by bin, members in same-bin order, so
//! queues and feedback loops carry their mixes with their values.

use std::sync::Arc;

use crate::engine::cexpr::{Bits, Env, NumSlot};
use crate::engine::unit::{QueueDef, Src};

/// Where a mix slot reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MixSrc {
    /// Output `output` of mix dependency `dep` (an index into the mix key's `mixes`).
    Ext { dep: u16, output: u16 },
    /// A member of this mix unit (earlier in same-bin order, or any member at an earlier bin).
    Own(u16),
}

/// A class share: a number (possibly a parameter) or a value slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShareSlot {
    Num(NumSlot),
    Series(u16),
}

/// One classed read of a weighted member: the value `coef · val[t − lag]` enters the
/// computation with the mix of `mix` at `t − lag`. Before the start (`t < lag`) a read counts
/// only when `init` gives the initial content's value and mix (a queue with `initialClassMix`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MixRead {
    pub val: u16,
    pub lag: u32,
    pub coef: Bits,
    pub mix: u16,
    pub init: Option<(NumSlot, Vec<Bits>)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MixMember {
    /// A node with `classMix`: `share_c / Σ share` per bin; unknown class where the sum is not
    /// positive or a share is NaN, negative or infinite.
    Source { shares: Vec<(u16, ShareSlot)> },
    /// The value-weighted average of the mixes of the classed reads (expressions, aliases,
    /// retry echo, edges, routers without class routes).
    Weighted { reads: Vec<MixRead> },
    /// A well-mixed synthesised queue. `arrivals` / `overflow`: the inflows' mix slots (None:
    /// an unclassed inflow, counted as `_unattributed`); `own` is this member's output.
    Queue {
        q: Box<QueueDef>,
        arrivals: Option<Option<u16>>,
        overflow: Vec<Option<u16>>,
        own: u16,
        initial: Option<Vec<Bits>>,
    },
    /// A router target with class routes: per class (and `_unattributed` last) the fraction of
    /// the source's class flow this target receives.
    Router { src: u16, mix: u16, frac: Vec<Bits> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixDef {
    digest: u64,
    pub bins: u32,
    /// Declared classes.
    pub k: u16,
    /// Value slots: `Src::Ext { dep, output }` with `dep` an index into the key's value units.
    pub vals: Vec<Src>,
    pub mixes: Vec<MixSrc>,
    /// Member `i` writes output `i`, in same-bin evaluation order.
    pub members: Vec<MixMember>,
}

impl std::hash::Hash for MixDef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

/// What a mix unit evaluation reads.
pub struct MixEnv<'a> {
    pub vals: &'a [&'a [f64]],
    pub params: &'a [f64],
    pub mixes: &'a [&'a [f64]],
}

struct Vals<'a> {
    env: &'a MixEnv<'a>,
    bins: usize,
}

impl Env for Vals<'_> {
    fn param(&self, slot: u16) -> f64 {
        self.env.params[slot as usize]
    }
    fn src(&self, slot: u16) -> &[f64] {
        self.env.vals[slot as usize]
    }
    fn bins(&self) -> usize {
        self.bins
    }
}

/// |x| as a weight; non-finite values weigh nothing.
#[inline]
fn weight(x: f64) -> f64 {
    if x.is_finite() { x.abs() } else { 0.0 }
}

/// Below this the implicit `_unattributed` share is rounding, not flow.
pub const UNATTRIBUTED_EPS: f64 = 1e-12;

/// The `_unattributed` share of a mix row.
#[inline]
pub fn unattributed(row: &[f64]) -> f64 {
    let mut s = 0.0;
    for x in row {
        s += x;
    }
    let u = 1.0 - s;
    if u > UNATTRIBUTED_EPS { u } else { 0.0 }
}

impl MixDef {
    pub fn new(bins: u32, k: u16, vals: Vec<Src>, mixes: Vec<MixSrc>, members: Vec<MixMember>) -> MixDef {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        (bins, k, &vals, &mixes, &members).hash(&mut h);
        MixDef { digest: h.finish(), bins, k, vals, mixes, members }
    }

    /// Every member's mix, `bins × k` each.
    pub fn eval(&self, env: &MixEnv<'_>) -> Vec<Arc<[f64]>> {
        let n = self.bins as usize;
        let k = self.k as usize;
        let vals = Vals { env, bins: n };
        // A lone weighted member that reads only other units' mixes (no loop through itself):
        // whole series, read by read, with the per-bin rule only where no read weighs anything.
        // The sums run in the same order as the per-bin rule, so the bits are the same.
        if let [MixMember::Weighted { reads }] = self.members.as_slice()
            && reads.iter().all(|r| matches!(self.mixes[r.mix as usize], MixSrc::Ext { .. }))
        {
            return vec![Arc::from(self.weighted_series(reads, env, &vals))];
        }
        let mut own: Vec<Vec<f64>> = vec![vec![0.0; n * k]; self.members.len()];
        let mut row = vec![0.0; k];
        let mut plain = vec![0.0; k];
        for t in 0..n {
            for (j, m) in self.members.iter().enumerate() {
                row.iter_mut().for_each(|x| *x = 0.0);
                self.member_at(m, t, env, &vals, &own, &mut row, &mut plain);
                own[j][t * k..(t + 1) * k].copy_from_slice(&row);
            }
        }
        own.into_iter().map(Arc::from).collect()
    }

    fn weighted_series(&self, reads: &[MixRead], env: &MixEnv<'_>, vals: &Vals<'_>) -> Vec<f64> {
        let n = self.bins as usize;
        let k = self.k as usize;
        let mut out = vec![0.0; n * k];
        let mut wsum = vec![0.0; n];
        for r in reads {
            let lag = r.lag as usize;
            let coef = r.coef.get();
            if let Some((v, mix)) = &r.init {
                let w = weight(coef * v.value(vals));
                for t in 0..lag.min(n) {
                    wsum[t] += w;
                    for (o, m) in out[t * k..(t + 1) * k].iter_mut().zip(mix) {
                        *o += w * m.get();
                    }
                }
            }
            if lag >= n {
                continue;
            }
            let v = &env.vals[r.val as usize][..n - lag];
            let m = &env.mixes[r.mix as usize][..(n - lag) * k];
            for (i, (x, src)) in v.iter().zip(m.chunks_exact(k)).enumerate() {
                let w = weight(coef * x);
                let t = i + lag;
                wsum[t] += w;
                for (o, mc) in out[t * k..(t + 1) * k].iter_mut().zip(src) {
                    *o += w * mc;
                }
            }
        }
        let mut row = vec![0.0; k];
        let mut plain = vec![0.0; k];
        for (t, (dst, w)) in out.chunks_exact_mut(k).zip(&wsum).enumerate() {
            if *w > 0.0 {
                dst.iter_mut().for_each(|x| *x /= w);
            } else {
                row.iter_mut().for_each(|x| *x = 0.0);
                self.member_at(&self.members[0], t, env, vals, &[], &mut row, &mut plain);
                dst.copy_from_slice(&row);
            }
        }
        out
    }

    /// The mix row of slot `slot` at bin `s` (own rows only at bins already written).
    #[inline]
    fn row_of<'a>(&self, env: &'a MixEnv<'a>, own: &'a [Vec<f64>], slot: u16, s: usize) -> &'a [f64] {
        let k = self.k as usize;
        match self.mixes[slot as usize] {
            MixSrc::Ext { .. } => &env.mixes[slot as usize][s * k..(s + 1) * k],
            MixSrc::Own(o) => &own[o as usize][s * k..(s + 1) * k],
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn member_at<'a>(
        &self,
        m: &MixMember,
        t: usize,
        env: &'a MixEnv<'a>,
        vals: &Vals<'_>,
        own: &'a [Vec<f64>],
        row: &mut [f64],
        plain: &mut [f64],
    ) {
        let k = self.k as usize;
        match m {
            MixMember::Source { shares } => {
                let mut sum = 0.0;
                let mut ok = true;
                for (c, s) in shares {
                    let v = match s {
                        ShareSlot::Num(x) => x.value(vals),
                        ShareSlot::Series(v) => env.vals[*v as usize][t],
                    };
                    if !v.is_finite() || v < 0.0 {
                        ok = false;
                    }
                    row[*c as usize] += v;
                    sum += v;
                }
                if ok && sum > 0.0 && sum.is_finite() {
                    row.iter_mut().for_each(|x| *x /= sum);
                } else {
                    row.iter_mut().for_each(|x| *x = 0.0);
                }
            }
            MixMember::Weighted { reads } => {
                plain.iter_mut().for_each(|x| *x = 0.0);
                let (mut wsum, mut count) = (0.0, 0u32);
                for r in reads {
                    let lag = r.lag as usize;
                    if t < lag {
                        let Some((v, mix)) = &r.init else { continue };
                        let w = weight(r.coef.get() * v.value(vals));
                        count += 1;
                        for c in 0..k {
                            let mc = mix[c].get();
                            plain[c] += mc;
                            row[c] += w * mc;
                        }
                        wsum += w;
                        continue;
                    }
                    let w = weight(r.coef.get() * env.vals[r.val as usize][t - lag]);
                    let mix = self.row_of(env, own, r.mix, t - lag);
                    count += 1;
                    for c in 0..k {
                        plain[c] += mix[c];
                        row[c] += w * mix[c];
                    }
                    wsum += w;
                }
                if wsum > 0.0 {
                    row.iter_mut().for_each(|x| *x /= wsum);
                } else if count > 0 {
                    let n = count as f64;
                    for c in 0..k {
                        row[c] = plain[c] / n;
                    }
                }
            }
            MixMember::Queue { q, arrivals, overflow, own: me, initial } => {
                let me = *me as usize;
                let prev = if t == 0 {
                    crate::engine::unit::finite(q.initial.value(vals))
                } else {
                    crate::engine::unit::finite(env.vals[q.own as usize][t - 1])
                };
                let mut wsum = weight(prev);
                if t == 0 {
                    if let Some(m0) = initial {
                        for c in 0..k {
                            row[c] = wsum * m0[c].get();
                        }
                    }
                } else {
                    let pm = &own[me][(t - 1) * k..t * k];
                    for c in 0..k {
                        row[c] = wsum * pm[c];
                    }
                }
                plain.iter_mut().for_each(|x| *x = 0.0);
                let mut count = 0u32;
                let mut add = |row: &mut [f64], plain: &mut [f64], v: f64, slot: Option<u16>| {
                    let w = weight(v);
                    count += 1;
                    if let Some(s) = slot {
                        let mix = self.row_of(env, own, s, t);
                        for c in 0..k {
                            row[c] += w * mix[c];
                            plain[c] += mix[c];
                        }
                    }
                    wsum += w;
                };
                if let Some(a) = arrivals {
                    add(row, plain, q.capped_arrivals(t, vals), *a);
                }
                for (o, slot) in q.overflow_in.iter().zip(overflow) {
                    add(row, plain, crate::engine::unit::finite(env.vals[*o as usize][t]), *slot);
                }
                if wsum > 0.0 {
                    row.iter_mut().for_each(|x| *x /= wsum);
                } else if t > 0 {
                    row.copy_from_slice(&own[me][(t - 1) * k..t * k]);
                } else if count > 0 {
                    let n = count as f64;
                    for c in 0..k {
                        row[c] = plain[c] / n;
                    }
                } else if let Some(m0) = initial {
                    for c in 0..k {
                        row[c] = m0[c].get();
                    }
                }
            }
            MixMember::Router { src, mix, frac } => {
                let x = env.vals[*src as usize][t];
                let m = self.row_of(env, own, *mix, t);
                let u = unattributed(m);
                let mut total = 0.0;
                for scale in [x, 1.0] {
                    total = 0.0;
                    for c in 0..k {
                        row[c] = weight(scale * m[c] * frac[c].get());
                        total += row[c];
                    }
                    total += weight(scale * u * frac[k].get());
                    if total > 0.0 {
                        break;
                    }
                }
                if total > 0.0 {
                    row.iter_mut().for_each(|x| *x /= total);
                } else {
                    row.iter_mut().for_each(|x| *x = 0.0);
                }
            }
        }
    }
}

/// The value of a router target with class routes at one bin: `Σ_c src · m_c · frac_c`, with
/// the `_unattributed` share last.
pub fn class_route(x: f64, mix: &[f64], frac: &[Bits]) -> f64 {
    let k = mix.len();
    let mut acc = 0.0;
    for c in 0..k {
        acc += x * mix[c] * frac[c].get();
    }
    acc + x * unattributed(mix) * frac[k].get()
}
