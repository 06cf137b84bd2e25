//! Scalar kernels of §5.2: the NaN and division rules shared by whole-series and bin-by-bin
//! evaluation, so that both evaluate every operator identically.
//!
//! Rust's `f64::min`/`max` drop NaN and `f64::clamp` panics when `lo > hi`; none is used here.

/// `a / b`, with `0` wherever `b == 0` (either sign), even when `a` is NaN.
#[inline]
pub fn div(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// Minimum that propagates NaN.
#[inline]
pub fn min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if b < a {
        b
    } else {
        a
    }
}

/// Maximum that propagates NaN.
#[inline]
pub fn max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if b > a {
        b
    } else {
        a
    }
}

/// `min(max(x, lo), hi)`: `lo > hi` gives `hi`; NaN if any argument is NaN.
#[inline]
pub fn clamp(x: f64, lo: f64, hi: f64) -> f64 {
    min(max(x, lo), hi)
}

/// Euclidean remainder in `[0, |b|)`; `0` where `b == 0`, even when `a` is NaN; a remainder
/// that rounds up to `|b|` (`MOD(-1e-17, 3)`, `MOD(-7, inf)`) is `0` (§5.2).
#[inline]
pub fn modulo(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        return 0.0;
    }
    // Whole numbers below 2^53 (exact in both types): the integer remainder is the same value,
    // without the software `fmod` (~30 instructions). A zero result keeps the sign `%` gives it
    // (that of `a`), so the bits agree too.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if a.abs() < EXACT && b.abs() < EXACT {
        let (ai, bi) = (a as i64, b as i64);
        // Whole when converting back gives the same number (no `trunc` call on baseline x86-64).
        if ai as f64 == a && bi as f64 == b {
            let r = ai.rem_euclid(bi);
            return if r == 0 { 0.0f64.copysign(a) } else { r as f64 };
        }
    }
    let r = a.rem_euclid(b);
    // rem_euclid can round up to |b| for tiny negative `a`; the result must stay below |b|.
    if r >= b.abs() { 0.0 } else { r }
}

/// Half away from zero, exactly (§5.2): Rust's `f64::round`. The textbook `floor(x + 0.5)` is
/// wrong where the addition rounds: `0.49999999999999994 + 0.5` rounds up to 1, and
/// `2^52 + 1 + 0.5` to `2^52 + 2`.
#[inline]
pub fn round(x: f64) -> f64 {
    x.round()
}

/// `1` where `x ≥ thr`, else `0`; NaN gives 0.
#[inline]
pub fn step(x: f64, thr: f64) -> f64 {
    if x >= thr { 1.0 } else { 0.0 }
}

/// Comparison result: 1/0, with NaN giving 0 except for `!=` (§7.1).
#[inline]
pub fn compare(op: crate::expr::ast::CmpOp, a: f64, b: f64) -> f64 {
    use crate::expr::ast::CmpOp;
    let r = match op {
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
    };
    if r { 1.0 } else { 0.0 }
}

/// Whether PULSE fires at bin `t`.
#[inline]
pub fn pulse_on(t: usize, period: u32, phase: u32) -> bool {
    t >= phase as usize && (t - phase as usize) % period as usize == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::ast::CmpOp;

    #[test]
    fn division_by_zero_is_zero_even_for_nan() {
        assert_eq!(div(5.0, 0.0), 0.0);
        assert_eq!(div(5.0, -0.0), 0.0);
        assert_eq!(div(f64::NAN, 0.0), 0.0);
        assert!(div(f64::NAN, 2.0).is_nan());
        assert_eq!(div(1.0, 4.0), 0.25);
        assert_eq!(div(1.0, f64::INFINITY), 0.0);
    }

    #[test]
    fn min_max_clamp_propagate_nan() {
        assert!(min(1.0, f64::NAN).is_nan());
        assert!(max(f64::NAN, 1.0).is_nan());
        assert_eq!(min(1.0, 2.0), 1.0);
        assert_eq!(max(1.0, 2.0), 2.0);
        assert_eq!(clamp(5.0, 9.0, 2.0), 2.0, "lo > hi gives hi");
        assert_eq!(clamp(5.0, 2.0, 9.0), 5.0);
        assert!(clamp(5.0, f64::NAN, 9.0).is_nan());
        assert!(clamp(f64::NAN, 0.0, 1.0).is_nan());
    }

    #[test]
    fn mod_is_euclidean() {
        assert_eq!(modulo(7.0, 4.0), 3.0);
        assert_eq!(modulo(-7.0, 4.0), 1.0);
        assert_eq!(modulo(7.0, -4.0), 3.0);
        assert_eq!(modulo(-7.0, -4.0), 1.0);
        assert_eq!(modulo(3.25, 4.0), 3.25);
        assert_eq!(modulo(f64::NAN, 0.0), 0.0);
        assert!(modulo(f64::NAN, 3.0).is_nan());
        let r = modulo(-1e-20, 1.0);
        assert!((0.0..1.0).contains(&r), "{r}");
        // Remainders that round up to |b| are 0.
        assert_eq!(modulo(-1e-17, 3.0), 0.0);
        assert_eq!(modulo(-7.0, f64::INFINITY), 0.0);
    }

    #[test]
    fn round_halves_away_from_zero() {
        assert_eq!(round(2.5), 3.0);
        assert_eq!(round(-2.5), -3.0);
        assert_eq!(round(0.5), 1.0);
        assert_eq!(round(-0.5), -1.0);
        assert_eq!(round(1.4999), 1.0);
        assert_eq!(round(-1.4999), -1.0);
        assert!(round(f64::NAN).is_nan());
        // Exactly: no intermediate x + 0.5 that rounds.
        assert_eq!(round(0.499_999_999_999_999_94), 0.0);
        assert_eq!(round(-0.499_999_999_999_999_94), -0.0);
        let big = 2f64.powi(52) + 1.0;
        assert_eq!(round(big), big);
        assert_eq!(round(-big), -big);
        assert_eq!(round(-0.3).to_bits(), (-0.0f64).to_bits(), "the sign of a zero is kept");
    }

    #[test]
    fn step_and_compare() {
        assert_eq!(step(8.0, 8.0), 1.0);
        assert_eq!(step(7.9, 8.0), 0.0);
        assert_eq!(step(f64::NAN, 0.0), 0.0);
        assert_eq!(compare(CmpOp::Gt, 2.0, 1.0), 1.0);
        assert_eq!(compare(CmpOp::Eq, f64::NAN, f64::NAN), 0.0);
        assert_eq!(compare(CmpOp::Ne, f64::NAN, 1.0), 1.0);
        assert_eq!(compare(CmpOp::Le, 1.0, 1.0), 1.0);
    }

    #[test]
    fn pulse_phases() {
        let on: Vec<usize> = (0..10).filter(|&t| pulse_on(t, 3, 1)).collect();
        assert_eq!(on, vec![1, 4, 7]);
        let on: Vec<usize> = (0..5).filter(|&t| pulse_on(t, 1, 0)).collect();
        assert_eq!(on, vec![0, 1, 2, 3, 4]);
    }

    /// The whole-number path of `modulo` gives the bits of the floating-point rule.
    #[test]
    fn whole_number_modulo_matches_the_float_rule() {
        let float = |a: f64, b: f64| {
            let r = a.rem_euclid(b);
            if r >= b.abs() { 0.0 } else { r }
        };
        let values = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            2.0,
            -2.0,
            3.0,
            -3.0,
            7.0,
            -7.0,
            1048576.0,
            -1048577.0,
            9.0e15,
            -9.0e15,
            9_007_199_254_740_991.0,
            -9_007_199_254_740_991.0,
            9_007_199_254_740_990.0,
            3.0e15 + 1.0,
            4_503_599_627_370_497.0,
        ];
        for &a in &values {
            for &b in &values {
                if b != 0.0 {
                    assert_eq!(modulo(a, b).to_bits(), float(a, b).to_bits(), "MOD({a}, {b})");
                }
            }
        }
        for a in -300i32..300 {
            for b in [-7i32, -3, -1, 1, 2, 5, 64] {
                let (a, b) = (f64::from(a), f64::from(b));
                assert_eq!(modulo(a, b).to_bits(), float(a, b).to_bits(), "MOD({a}, {b})");
            }
        }
    }
}
