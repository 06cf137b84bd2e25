//! The expression language (§5) end to end: every operator and function of §5.2 with its edge
//! cases, evaluated through small models by the host; dependencies, feedback loops and initial
//! conditions (§5.3); template placeholders in expressions (§3); and property tests that the
//! parser and the YAML loader never panic and that printing round-trips.
//!
//! Every expected value is worked out by hand from the spec in the comment next to it.

use std::collections::BTreeMap;
use std::path::Path;

use flowtime::diag::{Diagnostics, Severity};
use flowtime::engine::Evaluation;
use flowtime::expr::{Mode, parse};
use flowtime::host::{Host, Model};
use flowtime::model::template::Supplied;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

// ---------------------------------------------------------------------------------------------
// Helpers: one `check` entry point that builds a model, evaluates it, and compares series.

/// A number as YAML writes it (`.nan`, `.inf`, `-0.0`).
fn yaml_num(v: f64) -> String {
    if v.is_nan() {
        ".nan".into()
    } else if v == INF {
        ".inf".into()
    } else if v == -INF {
        "-.inf".into()
    } else {
        format!("{v:?}")
    }
}

/// A model over `bins` hourly bins with the given const series and expression nodes `e0, e1, …`.
fn model(bins: usize, consts: &[(&str, &[f64])], exprs: &[&str]) -> String {
    let mut y = format!("grid: {{bins: {bins}, binSize: 1, binUnit: hours}}\nnodes:\n");
    for (id, vals) in consts {
        let vals: Vec<String> = vals.iter().map(|v| yaml_num(*v)).collect();
        y.push_str(&format!("  - {{id: {id}, kind: const, values: [{}]}}\n", vals.join(", ")));
    }
    for (i, e) in exprs.iter().enumerate() {
        y.push_str(&format!("  - id: e{i}\n    kind: expr\n    expr: '{e}'\n"));
    }
    y
}

fn load_with(text: &str, supplied: &BTreeMap<String, Supplied>) -> Result<(Host, Model), Diagnostics> {
    let mut host = Host::new();
    let m = host.load_text(text, "model.yaml", supplied, Path::new("."))?;
    Ok((host, m))
}

#[track_caller]
fn eval_with(text: &str, supplied: &BTreeMap<String, Supplied>) -> (Host, Model, Evaluation) {
    let (host, m) = match load_with(text, supplied) {
        Ok(x) => x,
        Err(e) => panic!("model does not load:\n{}\n{text}", e.render()),
    };
    let ev = match host.evaluate(&m, None) {
        Ok(ev) => ev,
        Err(e) => panic!("model does not evaluate:\n{}\n{text}", e.render()),
    };
    (host, m, ev)
}

#[track_caller]
fn eval(text: &str) -> Evaluation {
    eval_with(text, &BTreeMap::new()).2
}

/// The diagnostics of a model that must fail to load or to evaluate.
#[track_caller]
fn errors(text: &str) -> Diagnostics {
    errors_with(text, &BTreeMap::new())
}

#[track_caller]
fn errors_with(text: &str, supplied: &BTreeMap<String, Supplied>) -> Diagnostics {
    match load_with(text, supplied) {
        Err(e) => e,
        Ok((host, m)) => match host.evaluate(&m, None) {
            Err(e) => e,
            Ok(_) => panic!("model was accepted but should not be:\n{text}"),
        },
    }
}

fn same(a: f64, e: f64) -> bool {
    a == e || (a.is_nan() && e.is_nan())
}

#[track_caller]
fn assert_series(ev: &Evaluation, id: &str, expected: &[f64], what: &str) {
    let Some(actual) = ev.get(id) else { panic!("no series `{id}` ({what})") };
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let ok = actual.iter().zip(expected).all(|(a, e)| same(*a, *e));
    assert!(ok, "{what}:\n  got      {:?}\n  expected {expected:?}", &actual[..]);
}

/// Evaluates each `(expr, expected)` case over the given consts twice: as a plain node
/// (whole-series evaluation) and wrapped in a self-feedback loop that adds a term that is always
/// 0, which forces bin-by-bin evaluation. Both must give the expected values.
#[track_caller]
fn check(bins: usize, consts: &[(&str, &[f64])], cases: &[(&str, &[f64])]) {
    let exprs: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let ev = eval(&model(bins, consts, &exprs));
    for (i, (e, expected)) in cases.iter().enumerate() {
        assert_eq!(expected.len(), bins, "test case `{e}` has the wrong length");
        assert_series(&ev, &format!("e{i}"), expected, e);
    }
    // STEP is always 0 or 1, so `0 * STEP(SHIFT(l, 1), 0)` is 0 in every bin (whatever `l` holds)
    // but makes `l` read itself with a lag: a feedback loop, evaluated bin by bin.
    let mut y = model(bins, consts, &[]);
    for (i, (e, _)) in cases.iter().enumerate() {
        y.push_str(&format!(
            "  - id: l{i}\n    kind: expr\n    expr: '({e}) + 0 * STEP(SHIFT(l{i}, 1), 0)'\n    initial: 0\n"
        ));
    }
    let ev = eval(&y);
    for (i, (e, expected)) in cases.iter().enumerate() {
        assert_series(&ev, &format!("l{i}"), expected, &format!("{e} (bin by bin)"));
    }
}

/// `[v; N]` for broadcast results.
fn all<const N: usize>(v: f64) -> [f64; N] {
    [v; N]
}

// ---------------------------------------------------------------------------------------------
// §5.2 operators.

#[test]
fn arithmetic_operators_are_ieee_and_left_associative() {
    let x: &[f64] = &[1.0, 2.0, 3.0, 4.0];
    let y: &[f64] = &[4.0, 0.0, -0.5, 8.0];
    check(
        4,
        &[("x", x), ("y", y)],
        &[
            ("x + y", &[5.0, 2.0, 2.5, 12.0]),
            ("x - y", &[-3.0, 2.0, 3.5, -4.0]),
            ("x * y", &[4.0, 0.0, -1.5, 32.0]),
            // 1/4, 2/0 → 0, 3/-0.5, 4/8.
            ("x / y", &[0.25, 0.0, -6.0, 0.5]),
            // Precedence: 1 + 6 - 2.
            ("1 + 2 * 3 - 4 / 2", &all::<4>(5.0)),
            ("(1 + 2) * 3", &all::<4>(9.0)),
            // Left-associative: (8 - 3) - 2 = 3, not 8 - (3 - 2) = 7.
            ("8 - 3 - 2", &all::<4>(3.0)),
            // (8 / 4) / 2 = 1, not 8 / (4 / 2) = 4.
            ("8 / 4 / 2", &all::<4>(1.0)),
            ("2 * -3", &all::<4>(-6.0)),
            ("--2", &all::<4>(2.0)),
            ("-x", &[-1.0, -2.0, -3.0, -4.0]),
            // Unary minus binds tighter than `*`: (-x) * y.
            ("-x * y", &[-4.0, 0.0, 1.5, -32.0]),
            ("x - -y", &[5.0, 2.0, 2.5, 12.0]),
            // Number forms of §5.1.
            ("1e-3 * 1000", &all::<4>(1.0)),
            (".5 + 2.", &all::<4>(2.5)),
            ("2E+1", &all::<4>(20.0)),
            ("1.e1", &all::<4>(10.0)),
            // IEEE, as written, no reassociation: 0.1 + 0.2 = 0.30000000000000004, then + 0.3
            // rounds to 0.6000000000000001; grouping the other way gives exactly 0.6.
            ("0.1 + 0.2 + 0.3", &all::<4>(0.6000000000000001)),
            ("0.1 + (0.2 + 0.3)", &all::<4>(0.6)),
        ],
    );
}

#[test]
fn division_by_zero_gives_zero_even_for_nan_and_either_sign() {
    let num: &[f64] = &[NAN, 5.0, -5.0, INF, 0.0, NAN];
    let den: &[f64] = &[0.0, -0.0, 0.0, 0.0, -0.0, 2.0];
    check(
        6,
        &[("num", num), ("den", den)],
        &[
            // b == 0 (either sign) gives 0 whatever a is; NaN / 2 is NaN.
            ("num / den", &[0.0, 0.0, 0.0, 0.0, 0.0, NAN]),
            ("num / 0", &all::<6>(0.0)),
            // `-0` is negative zero.
            ("num / -0", &all::<6>(0.0)),
            ("num / (den - den)", &all::<6>(0.0)),
            ("5 / den", &[0.0, 0.0, 0.0, 0.0, 0.0, 2.5]),
            // 1/NaN = NaN, 1/5, 1/-5, 1/inf = 0, 1/0 → 0, 1/NaN.
            ("1 / num", &[NAN, 0.2, -0.2, 0.0, 0.0, NAN]),
        ],
    );
}

#[test]
fn division_by_zero_result_is_positive_zero() {
    // §5.2 says the result is `0`; -5 / 0 must not come out as -0 (which would print `-0`).
    let ev = eval(&model(2, &[("n", &[-5.0, 5.0]), ("z", &[0.0, -0.0])], &["n / z"]));
    let r = ev.get("e0").unwrap();
    assert!(r.iter().all(|v| v.to_bits() == 0.0f64.to_bits()), "{:?}", &r[..]);
}

#[test]
fn nan_propagates_through_every_function() {
    let n: &[f64] = &[NAN, 2.0];
    check(
        2,
        &[("n", n)],
        &[
            ("n + 1", &[NAN, 3.0]),
            ("n - n", &[NAN, 0.0]),
            ("n * 0", &[NAN, 0.0]),
            ("-n", &[NAN, -2.0]),
            ("n / 2", &[NAN, 1.0]),
            // MIN/MAX: NaN if any argument is NaN, in any position.
            ("MIN(n, 1)", &[NAN, 1.0]),
            ("MIN(1, n)", &[NAN, 1.0]),
            ("MIN(0, 1, n)", &[NAN, 0.0]),
            ("MAX(n, 5)", &[NAN, 5.0]),
            ("MAX(5, 1, n)", &[NAN, 5.0]),
            // CLAMP: NaN in any argument. Bin 1: min(max(2, 0), 1) = 1; min(max(0.5, 2), 1) = 1;
            // min(max(0.5, 0), 2) = 0.5.
            ("CLAMP(n, 0, 1)", &[NAN, 1.0]),
            ("CLAMP(0.5, n, 1)", &[NAN, 1.0]),
            ("CLAMP(0.5, 0, n)", &[NAN, 0.5]),
            // MOD: NaN propagates, except b == 0 gives 0. Bin 1: 2 mod 3 = 2, 7 mod 2 = 1.
            ("MOD(n, 3)", &[NAN, 2.0]),
            ("MOD(7, n)", &[NAN, 1.0]),
            ("MOD(n, 0)", &[0.0, 0.0]),
            ("FLOOR(n)", &[NAN, 2.0]),
            ("CEIL(n)", &[NAN, 2.0]),
            ("ABS(-n)", &[NAN, 2.0]),
            // ROUND(2 / 4) = ROUND(0.5) = 1.
            ("ROUND(n / 4)", &[NAN, 1.0]),
            // STEP: NaN gives 0, as x or as threshold. Bin 1: 2 ≥ 0; 1 ≥ 2 is false.
            ("STEP(n, 0)", &[0.0, 1.0]),
            ("STEP(1, n)", &[0.0, 0.0]),
            // SHIFT moves the NaN; bin 0 reads n's (absent) initial condition, 0.
            ("SHIFT(n, 1)", &[0.0, NAN]),
            // CONV counts non-finite samples as 0: bin 0 = 0·1, bin 1 = 2·1 + 0·1.
            ("CONV(n, [1, 1])", &[0.0, 2.0]),
            // PULSE's amplitude is read only where it fires.
            ("PULSE(1, 0, n)", &[NAN, 2.0]),
            ("PULSE(2, 0, n)", &[NAN, 0.0]),
            ("PULSE(2, 1, n)", &[0.0, 2.0]),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// §5.2 functions.

#[test]
fn shift_past_the_start_reads_the_initial_only_for_a_bare_id() {
    let x: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0];
    let mut y = model(
        5,
        &[("x", x)],
        &[
            // x has no initial condition: 0 before the lag.
            "SHIFT(x, 2)",
            // An integer-valued literal written as 2.0 is accepted.
            "SHIFT(x, 2.0)",
            // q (= x) has `initial: 7`: a bare id reads it for t < k.
            "SHIFT(q, 2)",
            // A compound expression reads 0 for t < k even though q has an initial.
            "SHIFT(q + 0, 2)",
            "SHIFT(q * 1, 1) + SHIFT(q, 1)",
            // Lag 0 is the series itself; the initial is never read.
            "SHIFT(x, 0)",
            "SHIFT(q, 0)",
            // A lag longer than the series: every bin is before the start.
            "SHIFT(x, 5)",
            "SHIFT(q, 9)",
            // The outer SHIFT shifts a compound (the inner SHIFT), so its bin 0 reads 0; the
            // inner one reads q's initial: inner = [7, 1, 2, 3, 4].
            "SHIFT(SHIFT(q, 1), 1)",
            "SHIFT(-q, 1)",
        ],
    );
    y.push_str("  - {id: q, kind: expr, expr: \"x + 0\", initial: 7}\n");
    let ev = eval(&y);
    let cases: &[&[f64]] = &[
        &[0.0, 0.0, 1.0, 2.0, 3.0],
        &[0.0, 0.0, 1.0, 2.0, 3.0],
        &[7.0, 7.0, 1.0, 2.0, 3.0],
        &[0.0, 0.0, 1.0, 2.0, 3.0],
        &[7.0, 2.0, 4.0, 6.0, 8.0],
        &[1.0, 2.0, 3.0, 4.0, 5.0],
        &[1.0, 2.0, 3.0, 4.0, 5.0],
        &[0.0; 5],
        &[7.0; 5],
        &[0.0, 7.0, 1.0, 2.0, 3.0],
        &[0.0, -1.0, -2.0, -3.0, -4.0],
    ];
    for (i, expected) in cases.iter().enumerate() {
        assert_series(&ev, &format!("e{i}"), expected, &format!("case e{i}"));
    }
}

#[test]
fn conv_kernel_longer_than_series_and_non_finite_samples() {
    let x: &[f64] = &[1.0, 2.0, 3.0];
    check(
        3,
        &[("x", x)],
        &[
            // Σ_{j=0..min(t, len-1)} x[t-j]·k_j: 1; 2 + 10; 3 + 20 + 100. The kernel's tail
            // beyond the series start is never read.
            ("CONV(x, [1, 10, 100, 1000, 10000])", &[1.0, 12.0, 123.0]),
            // A leading 0 is a pure lag.
            ("CONV(x, [0, 1])", &[0.0, 1.0, 2.0]),
            ("CONV(x, [1, -1])", &[1.0, 1.0, 1.0]),
            ("CONV(x, [2])", &[2.0, 4.0, 6.0]),
            // 0.5; 1 + 0.25; 1.5 + 0.5.
            ("CONV(x, [0.5, 0.25])", &[0.5, 1.25, 2.0]),
            // An empty kernel sums nothing.
            ("CONV(x, [])", &[0.0, 0.0, 0.0]),
            // A broadcast number convolved: 5, 5 + 5, 5 + 5 + 5.
            ("CONV(5, [1, 1, 1])", &[5.0, 10.0, 15.0]),
        ],
    );
    // Non-finite samples count as 0: bins 1 + 0; 0·1 + 1·2; 0 + 0; 0 + 0; 4 + 0.
    let w: &[f64] = &[1.0, NAN, INF, -INF, 4.0];
    check(5, &[("w", w)], &[("CONV(w, [1, 2])", &[1.0, 2.0, 0.0, 0.0, 4.0])]);
}

#[test]
fn conv_sums_in_ascending_kernel_order_from_zero() {
    // Bin 2 with j ascending: ((0 + 1) + 1) + 1e16 = 1e16 + 2 exactly. Summed from j = 2 down it
    // would be (1e16 + 1) + 1 and each +1 rounds back to 1e16 (ties to even).
    // Bin 1: (0 + 1) + 1e16 = 1e16 + 1, which rounds to 1e16.
    let b: &[f64] = &[1e16, 1.0, 1.0];
    check(3, &[("b", b)], &[("CONV(b, [1, 1, 1])", &[1e16, 1e16, 10000000000000002.0])]);
}

#[test]
fn min_max_and_clamp_including_lo_above_hi() {
    let x: &[f64] = &[1.0, 5.0, 9.0];
    check(
        3,
        &[("x", x)],
        &[
            ("MIN(x, 4)", &[1.0, 4.0, 4.0]),
            ("MAX(x, 4)", &[4.0, 5.0, 9.0]),
            ("MIN(3, 1, 2)", &[1.0, 1.0, 1.0]),
            ("MAX(3, 1, 2)", &[3.0, 3.0, 3.0]),
            // Three series arguments: min(1, 6, 2), min(5, 6, 10), min(9, 6, 18).
            ("MIN(x, 6, 2 * x)", &[1.0, 5.0, 6.0]),
            ("CLAMP(x, 2, 6)", &[2.0, 5.0, 6.0]),
            // lo > hi gives hi: min(max(x, 6), 2) = 2 everywhere.
            ("CLAMP(x, 6, 2)", &[2.0, 2.0, 2.0]),
            ("CLAMP(x, x, 0)", &[0.0, 0.0, 0.0]),
            ("CLAMP(x, 5, 5)", &[5.0, 5.0, 5.0]),
        ],
    );
}

#[test]
fn mod_is_euclidean_for_every_sign() {
    let n: &[f64] = &[NAN];
    check(
        1,
        &[("n", n)],
        &[
            ("MOD(7, 4)", &[3.0]),
            // Euclidean: in [0, |b|) whatever the signs: -7 = -2·4 + 1, 7 = -1·(-4) + 3,
            // -7 = 2·(-4) + 1.
            ("MOD(-7, 4)", &[1.0]),
            ("MOD(7, -4)", &[3.0]),
            ("MOD(-7, -4)", &[1.0]),
            ("MOD(5.5, 2)", &[1.5]),
            ("MOD(-0.5, 2)", &[1.5]),
            ("MOD(-8, 4)", &[0.0]),
            // A remainder that rounds up to |b| is 0: -1e-17 + 3 is 3 in binary64.
            ("MOD(-1e-17, 3)", &[0.0]),
            // b == 0 (either sign) gives 0, even for a NaN a.
            ("MOD(5, 0)", &[0.0]),
            ("MOD(5, -0)", &[0.0]),
            ("MOD(n, 0)", &[0.0]),
            ("MOD(n, -0)", &[0.0]),
        ],
    );
}

#[test]
fn floor_ceil_abs() {
    check(
        1,
        &[],
        &[
            ("FLOOR(2.7)", &[2.0]),
            ("FLOOR(-2.2)", &[-3.0]),
            ("FLOOR(-0.5)", &[-1.0]),
            ("CEIL(2.1)", &[3.0]),
            ("CEIL(-2.7)", &[-2.0]),
            ("CEIL(-0.5)", &[0.0]),
            ("ABS(-2.5)", &[2.5]),
            ("ABS(3)", &[3.0]),
        ],
    );
}

#[test]
fn round_halves_away_from_zero() {
    check(
        1,
        &[],
        &[
            ("ROUND(2.5)", &[3.0]),
            ("ROUND(-2.5)", &[-3.0]),
            ("ROUND(0.5)", &[1.0]),
            ("ROUND(-0.5)", &[-1.0]),
            ("ROUND(1.5)", &[2.0]),
            ("ROUND(-1.5)", &[-2.0]),
            ("ROUND(2.4999)", &[2.0]),
            ("ROUND(-2.4999)", &[-2.0]),
            ("ROUND(3)", &[3.0]),
            // Exactly half away from zero (§5.2): the largest double below 0.5 rounds to 0,
            // where floor(x + 0.5) would give 1 (the addition rounds to 1.0) ...
            ("ROUND(0.49999999999999994)", &[0.0]),
            ("ROUND(-0.49999999999999994)", &[-0.0]),
            // ... and 2^52 + 1 is already whole, where floor(x + 0.5) would give 2^52 + 2.
            ("ROUND(4503599627370497)", &[4503599627370497.0]),
            ("ROUND(-4503599627370497)", &[-4503599627370497.0]),
        ],
    );
}

#[test]
fn step_is_one_at_or_above_the_threshold_and_zero_for_nan() {
    let x: &[f64] = &[1.0, 2.0, 3.0];
    let n: &[f64] = &[NAN, NAN, NAN];
    check(
        3,
        &[("x", x), ("n", n)],
        &[
            ("STEP(x, 2)", &[0.0, 1.0, 1.0]),
            ("STEP(x, 2.5)", &[0.0, 0.0, 1.0]),
            ("STEP(-x, -2)", &[1.0, 1.0, 0.0]),
            ("STEP(n, 0)", &[0.0, 0.0, 0.0]),
            ("STEP(0, n)", &[0.0, 0.0, 0.0]),
        ],
    );
}

#[test]
fn pulse_periods_phases_and_amplitudes() {
    let x: &[f64] = &[10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0];
    check(
        7,
        &[("x", x)],
        &[
            // Fires where t ≥ phase and (t - phase) mod period == 0.
            ("PULSE(3)", &[1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]),
            ("PULSE(3, 1)", &[0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
            ("PULSE(3, 1, 5)", &[0.0, 5.0, 0.0, 0.0, 5.0, 0.0, 0.0]),
            // A series amplitude is read in the bin where it fires.
            ("PULSE(2, 0, x)", &[10.0, 0.0, 12.0, 0.0, 14.0, 0.0, 16.0]),
            ("PULSE(4, 2, -x)", &[0.0, 0.0, -12.0, 0.0, 0.0, 0.0, -16.0]),
            ("PULSE(1)", &[1.0; 7]),
            // A phase past the end never fires; a phase larger than the period starts late.
            ("PULSE(3, 10)", &[0.0; 7]),
            ("PULSE(2, 3)", &[0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]),
            ("PULSE(2.0, 1.0)", &[0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]),
            ("PULSE(7, 6)", &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
            ("PULSE(8)", &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
            // SHIFT(x, 1) = [0, 10, 11, 12, 13, 14, 15], read at t = 0, 3, 6.
            ("PULSE(3, 0, SHIFT(x, 1))", &[0.0, 0.0, 0.0, 12.0, 0.0, 0.0, 15.0]),
        ],
    );
}

#[test]
fn function_names_are_case_insensitive_but_ids_are_not() {
    let x: &[f64] = &[1.0, 2.0, 3.0];
    check(
        3,
        &[("x", x)],
        &[
            ("min(x, 2)", &[1.0, 2.0, 2.0]),
            ("Max(x, 2)", &[2.0, 2.0, 3.0]),
            ("cLaMp(x, 0, 2)", &[1.0, 2.0, 2.0]),
            ("Shift(x, 1)", &[0.0, 1.0, 2.0]),
            ("conv(x, [1])", &[1.0, 2.0, 3.0]),
            ("floor(x / 2)", &[0.0, 1.0, 1.0]),
            ("ceil(x / 2)", &[1.0, 1.0, 2.0]),
            // ROUND(0.5) = 1, ROUND(1) = 1, ROUND(1.5) = 2.
            ("Round(x / 2)", &[1.0, 1.0, 2.0]),
            ("abs(-x)", &[1.0, 2.0, 3.0]),
            ("mod(x, 2)", &[1.0, 0.0, 1.0]),
            ("step(x, 2)", &[0.0, 1.0, 1.0]),
            ("pulse(2)", &[1.0, 0.0, 1.0]),
        ],
    );
    // Series ids are case-sensitive: `X` is not `x`.
    let e = errors(&model(3, &[("x", x)], &["X + 1"]));
    let d = &e.0[0];
    assert!(d.message.contains("unknown series `X`"), "{}", e.render());
    assert!(d.help.as_deref().unwrap_or("").contains("`x`"), "did-you-mean hint: {}", e.render());
}

// ---------------------------------------------------------------------------------------------
// §2 pmf nodes.

#[test]
fn pmf_is_its_expected_value_and_renormalises_with_a_warning() {
    let text = "grid: {bins: 2, binSize: 1, binUnit: hours}
nodes:
  - {id: skewed, kind: pmf, pmf: {values: [1, 2, 3], probabilities: [1, 1, 2]}}
  - {id: exact, kind: pmf, pmf: {values: [0, 4], probabilities: [0.25, 0.75]}}
  - {id: dup, kind: pmf, pmf: {values: [5, 5], probabilities: [0.5, 0.5]}}
";
    let (host, m, ev) = eval_with(text, &BTreeMap::new());
    // (1·1 + 2·1 + 3·2) / (1 + 1 + 2) = 9 / 4.
    assert_series(&ev, "skewed", &[2.25, 2.25], "renormalised pmf");
    // (0·0.25 + 4·0.75) / 1 = 3.
    assert_series(&ev, "exact", &[3.0, 3.0], "normalised pmf");
    assert_series(&ev, "dup", &[5.0, 5.0], "duplicate values");
    let ws = host.warnings(&m, &ev).unwrap();
    let renorm: Vec<_> = ws.iter().filter(|w| w.code == "pmf_renormalised").collect();
    assert_eq!(renorm.len(), 1, "{ws:?}");
    assert_eq!(renorm[0].node_id, "skewed");
    assert_eq!(renorm[0].severity, Severity::Info);
}

// ---------------------------------------------------------------------------------------------
// §5.3 dependencies, feedback and initial conditions.

#[test]
fn two_node_feedback_loop_evaluates_bin_by_bin() {
    // b is declared before a: member order within the loop must follow same-bin edges
    // (a reads b only lagged; b reads a in the same bin), not declaration order.
    let text = "grid: {bins: 4, binSize: 1, binUnit: hours}
nodes:
  - {id: x, kind: const, values: [1, 2, 3, 4]}
  - {id: b, kind: expr, expr: \"a * 0.5\"}
  - {id: a, kind: expr, expr: \"SHIFT(b, 1) + x\"}
";
    let (host, m, ev) = eval_with(text, &BTreeMap::new());
    // b has no initial, so SHIFT(b, 1) reads 0 at t = 0.
    // a0 = 0 + 1 = 1,         b0 = 0.5
    // a1 = 0.5 + 2 = 2.5,     b1 = 1.25
    // a2 = 1.25 + 3 = 4.25,   b2 = 2.125
    // a3 = 2.125 + 4 = 6.125, b3 = 3.0625
    assert_series(&ev, "a", &[1.0, 2.5, 4.25, 6.125], "a");
    assert_series(&ev, "b", &[0.5, 1.25, 2.125, 3.0625], "b");
    let ws = host.warnings(&m, &ev).unwrap();
    let defaulted: Vec<_> = ws.iter().filter(|w| w.code == "feedback_initial_defaulted").collect();
    assert_eq!(defaulted.len(), 1, "{ws:?}");
    assert_eq!((defaulted[0].node_id.as_str(), defaulted[0].severity), ("b", Severity::Info));

    // With `initial: 2` on b, SHIFT(b, 1) reads 2 at t = 0 and there is no warning.
    // a0 = 2 + 1 = 3,       b0 = 1.5
    // a1 = 1.5 + 2 = 3.5,   b1 = 1.75
    // a2 = 1.75 + 3 = 4.75, b2 = 2.375
    // a3 = 2.375 + 4 = 6.375, b3 = 3.1875
    let text = text.replace("expr: \"a * 0.5\"", "expr: \"a * 0.5\", initial: 2");
    let (host, m, ev) = eval_with(&text, &BTreeMap::new());
    assert_series(&ev, "a", &[3.0, 3.5, 4.75, 6.375], "a with initial");
    assert_series(&ev, "b", &[1.5, 1.75, 2.375, 3.1875], "b with initial");
    assert!(!host.warnings(&m, &ev).unwrap().iter().any(|w| w.code == "feedback_initial_defaulted"));
}

#[test]
fn seed_self_shift_queue_uses_its_initial() {
    let text = "grid: {bins: 6, binSize: 5, binUnit: minutes}
nodes:
  - {id: arrivals, kind: const, values: [10, 10, 10, 10, 0, 0]}
  - {id: served, kind: const, values: [5, 5, 20, 5, 5, 5]}
  - id: queue_depth
    kind: expr
    expr: \"MAX(0, SHIFT(queue_depth, 1) + arrivals - served)\"
    initial: 3
";
    // Q0 = max(0, 3 + 10 - 5) = 8;  Q1 = 8 + 10 - 5 = 13;  Q2 = 13 + 10 - 20 = 3;
    // Q3 = 3 + 10 - 5 = 8;  Q4 = 8 + 0 - 5 = 3;  Q5 = max(0, 3 - 5) = 0.
    assert_series(&eval(text), "queue_depth", &[8.0, 13.0, 3.0, 8.0, 3.0, 0.0], "queue");

    // The same queue as a template with `initial: "{{q0}}"`: default 0, then q0 = 3 supplied.
    let tpl = "parameters:
  - {name: q0, type: number, default: 0, min: 0}
grid: {bins: 6, binSize: 5, binUnit: minutes}
nodes:
  - {id: arrivals, kind: const, values: [10, 10, 10, 10, 0, 0]}
  - {id: served, kind: const, values: [5, 5, 20, 5, 5, 5]}
  - id: queue_depth
    kind: expr
    expr: \"MAX(0, SHIFT(queue_depth, 1) + arrivals - served)\"
    initial: \"{{q0}}\"
";
    // Q0 = 0 + 5 = 5; Q1 = 10; Q2 = max(0, 10 - 10) = 0; Q3 = 5; Q4 = 0; Q5 = 0.
    let (_, _, ev) = eval_with(tpl, &BTreeMap::new());
    assert_series(&ev, "queue_depth", &[5.0, 10.0, 0.0, 5.0, 0.0, 0.0], "queue, q0 default 0");
    let supplied = BTreeMap::from([("q0".to_string(), Supplied::Text("3".into()))]);
    let (_, _, ev) = eval_with(tpl, &supplied);
    assert_series(&ev, "queue_depth", &[8.0, 13.0, 3.0, 8.0, 3.0, 0.0], "queue, q0 = 3");
}

#[test]
fn lagged_cycles_through_conv_with_leading_zero_are_feedback() {
    // CONV with k0 = 0 reads lagged (§5.3), so r = CONV(s, [0, 1]) + x, s = r is a legal loop.
    // r0 = 0 + 1 = 1; r1 = s0 + 1 = 2; r2 = s1 + 1 = 3 (s = r).
    let text = "grid: {bins: 3, binSize: 1, binUnit: hours}
nodes:
  - {id: x, kind: const, values: [1, 1, 1]}
  - {id: r, kind: expr, expr: \"CONV(s, [0, 1]) + x\"}
  - {id: s, kind: expr, expr: \"r\"}
";
    assert_series(&eval(text), "r", &[1.0, 2.0, 3.0], "r");
}

#[test]
fn same_bin_cycles_are_rejected_with_the_cycle_printed() {
    let two = "grid: {bins: 2, binSize: 1, binUnit: hours}
nodes:
  - {id: a, kind: expr, expr: \"b + 1\"}
  - {id: b, kind: expr, expr: \"a * 2\"}
";
    let e = errors(two);
    assert_eq!(e.0[0].code, "cycle", "{}", e.render());
    assert!(e.0[0].message.contains("a -> b -> a"), "{}", e.render());
    assert!(e.0[0].path.as_deref().unwrap_or("").contains("(id a)"), "names the node: {}", e.render());

    let three = "grid: {bins: 2, binSize: 1, binUnit: hours}
nodes:
  - {id: a, kind: expr, expr: \"c + 1\"}
  - {id: b, kind: expr, expr: \"a\"}
  - {id: c, kind: expr, expr: \"MIN(b, 3)\"}
";
    let e = errors(three);
    assert!(e.0[0].message.contains("a -> c -> b -> a"), "{}", e.render());

    // A node reading itself in the same bin, directly or through SHIFT(·, 0).
    for expr in ["self_ + 1", "SHIFT(self_, 0) + 1"] {
        let text = format!(
            "grid: {{bins: 2, binSize: 1, binUnit: hours}}\nnodes:\n  - {{id: self_, kind: expr, expr: \"{expr}\", initial: 1}}\n"
        );
        let e = errors(&text);
        assert!(e.0[0].message.contains("self_ -> self_"), "{expr}: {}", e.render());
    }

    // A name read both lagged and in the same bin has both edges: still a same-bin cycle.
    let both = "grid: {bins: 2, binSize: 1, binUnit: hours}
nodes:
  - {id: a, kind: expr, expr: \"SHIFT(b, 1) + b\"}
  - {id: b, kind: expr, expr: \"a\"}
";
    let e = errors(both);
    assert!(e.0[0].message.contains("a -> b -> a"), "{}", e.render());
}

// ---------------------------------------------------------------------------------------------
// §3 template placeholders inside expressions.

const TEMPLATE: &str = "parameters:
  - {name: k, type: number, default: 2}
  - {name: lag, type: integer, default: 1, min: 0}
  - {name: q0, type: number, default: 5}
grid: {bins: 3, binSize: 1, binUnit: hours}
nodes:
  - {id: x, kind: const, values: [1, 2, 3]}
  - {id: y, kind: expr, expr: \"x * {{k}}\"}
  - {id: z, kind: expr, expr: \"SHIFT(x, {{lag}})\"}
  - {id: w, kind: expr, expr: \"SHIFT(w, {{lag}}) + x\", initial: \"{{q0}}\"}
  - {id: c, kind: expr, expr: \"CONV(x, [{{k}}, 1])\"}
  - {id: c2, kind: expr, expr: \"CONV(x, [0, -{{k}}])\"}
  - {id: p, kind: expr, expr: \"PULSE({{lag}}, 0, {{k}})\"}
";

#[test]
fn template_parameters_in_expressions_and_as_shift_lag() {
    let (_, _, ev) = eval_with(TEMPLATE, &BTreeMap::new());
    // Defaults k = 2, lag = 1, q0 = 5.
    assert_series(&ev, "y", &[2.0, 4.0, 6.0], "x * k");
    assert_series(&ev, "z", &[0.0, 1.0, 2.0], "SHIFT(x, lag)");
    // Running sum from 5: 5 + 1, 6 + 2, 8 + 3.
    assert_series(&ev, "w", &[6.0, 8.0, 11.0], "self SHIFT with initial q0");
    // 2·1; 2·2 + 1·1; 2·3 + 1·2.
    assert_series(&ev, "c", &[2.0, 5.0, 8.0], "CONV with a parameter coefficient");
    // Lagged by the leading 0: 0; -2·1; -2·2.
    assert_series(&ev, "c2", &[0.0, -2.0, -4.0], "CONV with a negated parameter");
    assert_series(&ev, "p", &[2.0, 2.0, 2.0], "PULSE(1, 0, 2)");

    let supplied = BTreeMap::from([
        ("k".to_string(), Supplied::Text("0.5".into())),
        ("lag".to_string(), Supplied::Text("2".into())),
        ("q0".to_string(), Supplied::Text("-1".into())),
    ]);
    let (_, _, ev) = eval_with(TEMPLATE, &supplied);
    assert_series(&ev, "y", &[0.5, 1.0, 1.5], "x * 0.5");
    assert_series(&ev, "z", &[0.0, 0.0, 1.0], "SHIFT(x, 2)");
    // Lag 2 from q0 = -1: -1 + 1; -1 + 2; w0 + 3.
    assert_series(&ev, "w", &[0.0, 1.0, 3.0], "SHIFT(w, 2) + x, initial -1");
    // 0.5; 1 + 1; 1.5 + 2.
    assert_series(&ev, "c", &[0.5, 2.0, 3.5], "CONV(x, [0.5, 1])");
    assert_series(&ev, "c2", &[0.0, -0.5, -1.0], "CONV(x, [0, -0.5])");
    assert_series(&ev, "p", &[0.5, 0.0, 0.5], "PULSE(2, 0, 0.5)");
}

#[test]
fn template_lag_parameter_is_checked_with_its_value() {
    // lag = 0 makes `PULSE({{lag}}, 0, {{k}})` a period of 0: an error naming the field and the
    // parameter, with the caret under the placeholder.
    let supplied = BTreeMap::from([("lag".to_string(), Supplied::Text("0".into()))]);
    let e = errors_with(TEMPLATE, &supplied);
    let d = e.0.iter().find(|d| d.message.contains("PULSE's period")).unwrap_or_else(|| panic!("{}", e.render()));
    assert!(d.message.contains("at least 1") && d.message.contains("`lag`"), "{}", e.render());
    let x = d.expr.as_ref().expect("caret");
    assert_eq!(&x.text[x.offset..x.offset + x.len], "{{lag}}");
    assert_eq!(d.path.as_deref(), Some("nodes[6] (id p).expr"));

    // A lag parameter of 0 turns a self-SHIFT into a same-bin self-read: a cycle.
    let tpl = "parameters: [{name: lag, type: integer, default: 1}]
grid: {bins: 3, binSize: 1, binUnit: hours}
nodes:
  - {id: w, kind: expr, expr: \"SHIFT(w, {{lag}}) + 1\", initial: 0}
";
    // lag 1: 0 + 1, 1 + 1, 2 + 1.
    assert_series(&eval(tpl), "w", &[1.0, 2.0, 3.0], "counter");
    let e = errors_with(tpl, &supplied);
    assert!(e.0[0].message.contains("w -> w"), "{}", e.render());
}

// ---------------------------------------------------------------------------------------------
// The printer.

#[test]
fn printer_writes_the_canonical_form_and_reparses() {
    for (src, printed) in [
        ("a + b * c", "a + b * c"),
        ("(a + b) * c", "(a + b) * c"),
        ("((a)) - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("a / (b * c)", "a / (b * c)"),
        ("-a * b", "-a * b"),
        ("-(a * b)", "-(a * b)"),
        ("- -a", "--a"),
        ("x - -1", "x - -1"),
        ("shift(x, 2)", "SHIFT(x, 2)"),
        ("CONV(x, [0, -0.5, 1e-3])", "CONV(x, [0, -0.5, 0.001])"),
        ("pulse(3, 1, -x)", "PULSE(3, 1, -x)"),
        ("x * {{k}}", "x * {{k}}"),
        ("SHIFT(x, {{lag}})", "SHIFT(x, {{lag}})"),
        ("Infer_From_Saturation(s,q)", "infer_from_saturation(s, q)"),
    ] {
        let e = parse(src, Mode::Node).unwrap_or_else(|e| panic!("{src}: {e:?}"));
        assert_eq!(e.to_string(), printed, "{src}");
        let again = parse(printed, Mode::Node).unwrap();
        assert_eq!(strip_spans(&again), strip_spans(&e), "{src}");
    }
    let e = parse("a + 1 >= (b)", Mode::Check).unwrap();
    assert_eq!(e.to_string(), "a + 1 >= b");
}

#[test]
fn deep_expressions_near_the_nesting_limit_print_and_reparse() {
    // Whatever the parser accepts, its printed form must parse back to the same tree; the
    // printer adds parentheses, so nesting limits must not count them against the user.
    let mut cases = Vec::new();
    for n in [100, 150, 200, 250, 255, 256, 257] {
        cases.push(format!("{}x", "-".repeat(n)));
        cases.push(format!("x{}", "+1".repeat(n)));
        cases.push(format!("{}x{}", "(".repeat(n), ")".repeat(n)));
        cases.push(format!("{}x{}", "ABS(".repeat(n), ")".repeat(n)));
        cases.push(format!("{}x{}", "(1 - ".repeat(n), ")".repeat(n)));
    }
    for src in &cases {
        roundtrip(src, Mode::Node).unwrap_or_else(|e| panic!("{}…: {e}", &src[..src.len().min(40)]));
    }
}

#[test]
fn expressions_at_the_limits_evaluate_and_beyond_them_are_located_errors() {
    // At the limits (256 operations tall, 64 levels of parentheses, calls and unary minus) the
    // loader, the compiler and both evaluators recurse on a test thread's stack.
    let chain = format!("x{}", " + 1".repeat(256));
    let calls = format!("{}-x{}", "ABS(".repeat(63), ")".repeat(63));
    let mut groups = String::from("x");
    for _ in 0..63 {
        groups = format!("({groups}) + 1 + 1 + 1 + 1");
    }
    let x: &[f64] = &[1.0, 2.0];
    let ev = eval(&model(2, &[("x", x)], &[&chain, &calls, &groups]));
    // x + 256; |-x|; x + 63·4.
    assert_series(&ev, "e0", &[257.0, 258.0], "256 additions");
    assert_series(&ev, "e1", &[1.0, 2.0], "63 nested calls");
    assert_series(&ev, "e2", &[253.0, 254.0], "63 nested groups");
    // The same limits inside feedback loops (bin-by-bin evaluation): 255 additions and one more
    // for the lagged self-read; 63 calls around a unary minus and a SHIFT call.
    let mut y = model(2, &[("x", x)], &[]);
    let chain = format!("x{} + 0 * SHIFT(l0, 1)", " + 1".repeat(255));
    let calls = format!("{}-x + 0 * SHIFT(l1, 1){}", "ABS(".repeat(63), ")".repeat(63));
    for (id, e) in [("l0", chain), ("l1", calls)] {
        y.push_str(&format!("  - {{id: {id}, kind: expr, expr: '{e}', initial: 0}}\n"));
    }
    let ev = eval(&y);
    // x + 255 + 0; |-x + 0|.
    assert_series(&ev, "l0", &[256.0, 257.0], "loop with 256 operations");
    assert_series(&ev, "l1", &[1.0, 2.0], "loop with 64 levels of nesting");

    // One operation more: the caret is under the 257th `+`, the last one; the diagnostic quotes
    // a window of the expression around it, never the whole 1 KB.
    let too_tall = format!("x{}", " + 1".repeat(257));
    let e = errors(&model(1, &[("x", &[1.0])], &[&too_tall]));
    let d = &e.0[0];
    assert!(d.message.contains("more than 256"), "{}", d.message);
    let x = d.expr.as_ref().unwrap();
    assert_eq!((&x.text[x.offset..], x.len), ("+ 1", 1), "{x:?}");
    assert!(x.text.starts_with('…') && x.text.chars().count() <= 2 * flowtime::diag::EXCERPT, "{x:?}");

    // One level of nesting more: the caret is under the 65th `(`, the one before `x` (in a
    // window of the expression, as above).
    let too_deep = format!("{}x{}", "(".repeat(65), ")".repeat(65));
    let e = errors(&model(1, &[("x", &[1.0])], &[&too_deep]));
    let d = &e.0[0];
    assert!(d.message.contains("nested more than 64"), "{}", d.message);
    let x = d.expr.as_ref().unwrap();
    assert_eq!((&x.text[x.offset..x.offset + 2], x.len), ("(x", 1), "{x:?}");
}

#[test]
fn number_literals_that_overflow_are_rejected() {
    // `1e999` would be infinity, which prints as `inf`: a name, not a number.
    let e = parse("x * 1e999", Mode::Node).unwrap_err();
    assert!(e.message.contains("too large"), "{}", e.message);
    assert_eq!((e.span.start, e.span.end), (4, 9));
    assert!(parse("1.7976931348623157e308", Mode::Node).is_ok());
}

/// The `Debug` form of a tree without its spans (which differ between the source and the
/// printed form).
fn strip_spans(e: &impl std::fmt::Debug) -> String {
    let s = format!("{e:?}");
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(i) = rest.find("Span {") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').map_or(rest.len(), |j| i + j + 1);
        out.push_str("Span");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Parses `src`; when it parses, printing it and parsing that must give the same tree and the
/// same printed form. Errors must point inside the text.
fn roundtrip(src: &str, mode: Mode) -> Result<(), String> {
    match parse(src, mode) {
        Err(e) => {
            let (s, end) = (e.span.start as usize, e.span.end as usize);
            if !(s <= end && end <= src.len() && src.is_char_boundary(s) && src.is_char_boundary(end)) {
                return Err(format!("error span {s}..{end} outside the text of length {}", src.len()));
            }
            if e.message.is_empty() {
                return Err("empty error message".into());
            }
            Ok(())
        }
        Ok(e) => {
            let printed = e.to_string();
            let again =
                parse(&printed, mode).map_err(|err| format!("printed form `{printed}` does not parse: {err:?}"))?;
            if again.to_string() != printed {
                return Err(format!("printed `{printed}`, reprinted `{again}`"));
            }
            if strip_spans(&again) != strip_spans(&e) {
                return Err(format!("`{src}` and its printed form `{printed}` parse to different trees"));
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests.

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        rng_seed: RngSeed::Fixed(0x5eed),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text built from the expression language's own tokens, so that the parser's deeper paths are
/// reached far more often than by arbitrary text.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just(","),
        Just("+"),
        Just("-"),
        Just("*"),
        Just("/"),
        Just("<"),
        Just("<="),
        Just("=="),
        Just("!="),
        Just("="),
        Just("!"),
        Just(" "),
        Just("x"),
        Just("queue_depth"),
        Just("1"),
        Just("2.5"),
        Just(".5"),
        Just("1e"),
        Just("1e-3"),
        Just("1e999"),
        Just("."),
        Just("{{"),
        Just("}}"),
        Just("{{k}}"),
        Just("{"),
        Just("SHIFT("),
        Just("CONV("),
        Just("MIN("),
        Just("max("),
        Just("CLAMP("),
        Just("MOD("),
        Just("ROUND("),
        Just("STEP("),
        Just("PULSE("),
        Just("infer_from_saturation("),
        Just("NOPE("),
        Just("é"),
        Just("\u{1F600}"),
        Just("\t"),
    ];
    prop::collection::vec(token, 0..60).prop_map(|ts| ts.concat())
}

/// Pathological shapes: deep parentheses, long operator chains, deep unary minus and calls.
fn deep() -> impl Strategy<Value = String> {
    (0usize..6, 0usize..3000, 0usize..3000, "[-+*/ ]{0,3}").prop_map(|(shape, n, m, op)| match shape {
        0 => format!("{}x{}", "(".repeat(n), ")".repeat(m)),
        1 => format!("x{}", format!("{op}1").repeat(n)),
        2 => format!("{}x", "-".repeat(n)),
        3 => format!("{}x{}", "ABS(".repeat(n), ")".repeat(m)),
        4 => format!("{}x{}", "SHIFT(".repeat(n), ", 1)".repeat(m)),
        _ => format!("CONV(x, [{}])", "1,".repeat(n)),
    })
}

/// Valid expressions from the grammar of §5.1 with the arities of §5.2.
fn valid_expr() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        (0u32..1000).prop_map(|n| n.to_string()),
        (0u32..1000, 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
        (0u32..100).prop_map(|n| format!(".{n}")),
        (0u32..100).prop_map(|n| format!("{n}.")),
        (1u32..10, -20i32..20).prop_map(|(m, e)| format!("{m}e{e}")),
        (1u32..10, 0u32..20).prop_map(|(m, e)| format!("{m}E+{e}")),
    ];
    let leaf = prop_oneof![
        number.clone(),
        prop_oneof![Just("x"), Just("y"), Just("queue_depth"), Just("_a1"), Just("Served")].prop_map(String::from),
        prop_oneof![Just("{{k}}"), Just("{{ k2 }}")].prop_map(String::from),
    ];
    let int_lit = prop_oneof![
        (0u32..5).prop_map(|n| n.to_string()),
        (0u32..5).prop_map(|n| format!("{n}.0")),
        Just("{{lag}}".to_string())
    ];
    let coef = prop_oneof![
        number.clone(),
        number.prop_map(|n| format!("-{n}")),
        Just("{{k}}".to_string()),
        Just("-{{k}}".to_string())
    ];
    leaf.prop_recursive(6, 48, 4, move |inner| {
        let name = |n: &'static str| prop_oneof![Just(n.to_string()), Just(n.to_ascii_lowercase())];
        prop_oneof![
            (inner.clone(), prop_oneof![Just("+"), Just("-"), Just("*"), Just("/")], inner.clone())
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            (inner.clone(), prop_oneof![Just("+"), Just("-"), Just("*"), Just("/")], inner.clone())
                .prop_map(|(a, op, b)| format!("({a}){op}({b})")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("({a})")),
            (name("SHIFT"), inner.clone(), int_lit.clone()).prop_map(|(f, a, k)| format!("{f}({a}, {k})")),
            (name("CONV"), inner.clone(), prop::collection::vec(coef.clone(), 0..4))
                .prop_map(|(f, a, ks)| format!("{f}({a}, [{}])", ks.join(", "))),
            (prop_oneof![name("MIN"), name("MAX")], prop::collection::vec(inner.clone(), 2..4))
                .prop_map(|(f, xs)| format!("{f}({})", xs.join(", "))),
            (name("CLAMP"), inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(f, a, b, c)| format!("{f}({a}, {b}, {c})")),
            (prop_oneof![name("MOD"), name("STEP")], inner.clone(), inner.clone())
                .prop_map(|(f, a, b)| format!("{f}({a},{b})")),
            (prop_oneof![name("FLOOR"), name("CEIL"), name("ABS"), name("ROUND")], inner.clone())
                .prop_map(|(f, a)| format!("{f}({a})")),
            (name("PULSE"), 1u32..5, prop::option::of((0u32..5, prop::option::of(inner.clone())))).prop_map(
                |(f, p, rest)| match rest {
                    None => format!("{f}({p})"),
                    Some((ph, None)) => format!("{f}({p}, {ph})"),
                    Some((ph, Some(a))) => format!("{f}({p}, {ph}, {a})"),
                }
            ),
        ]
    })
}

/// A valid model whose mutations feed the loader.
const VALID_MODEL: &str = "schemaVersion: 1
parameters:
  - {name: q0, type: number, default: 2, min: 0}
  - {name: k, type: integer, default: 1}
grid:
  bins: 6
  binSize: 5
  binUnit: minutes
  start: \"2025-10-07T00:00:00Z\"
nodes:
  - {id: arrivals, kind: const, values: [10, 10, 10, 10, 0, 0]}
  - {id: served, kind: const, values: [5]}
  - id: queue_depth
    kind: expr
    expr: \"MAX(0, SHIFT(queue_depth, {{k}}) + arrivals - served)\"
    initial: \"{{q0}}\"
  - {id: p, kind: pmf, pmf: {values: [1, 2], probabilities: [0.5, 0.5]}}
  - {id: mix, kind: expr, expr: \"CONV(arrivals, [0, 0.5, 0.5]) * p / MOD(served, 3)\"}
  - {id: r, kind: router, router: {inputs: {queue: arrivals}, routes: [{target: left, weight: 1}, {target: right}]}}
topology:
  nodes:
    - id: Svc
      kind: serviceWithBuffer
      semantics: {arrivals: arrivals, served: served, queueDepth: self}
      initialCondition: {queueDepth: 1}
validation:
  - {id: big, type: expr, expr: \"queue_depth > 10\"}
outputs:
  - {series: \"*\"}
";

/// Loads (and, when it loads and is small, evaluates and validates) YAML text: must not panic.
fn load_anything(text: &str) {
    let mut host = Host::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/no-such-dir");
    if let Ok(m) = host.load_text(text, "fuzz.yaml", &BTreeMap::new(), &dir) {
        let small = host.compiled(&m).is_ok_and(|c| c.grid.bins <= 10_000 && c.series.len() <= 1_000);
        if small && let Ok(ev) = host.evaluate(&m, None) {
            let _ = host.warnings(&m, &ev).unwrap();
        }
    }
}

/// YAML-looking text: keys of the document format, flow and block punctuation, scalars.
fn yamlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop_oneof![
            Just("grid"),
            Just("bins"),
            Just("binSize"),
            Just("binUnit"),
            Just("start"),
            Just("nodes"),
            Just("expressions"),
            Just("id"),
            Just("kind"),
            Just("expr"),
            Just("values"),
            Just("initial"),
            Just("source"),
            Just("pmf"),
            Just("router"),
            Just("parameters"),
            Just("topology"),
            Just("classes"),
            Just("validation"),
            Just("outputs"),
        ]
        .prop_map(String::from),
        prop_oneof![
            Just(": "),
            Just(":"),
            Just("\n"),
            Just("\n  "),
            Just("\n    "),
            Just("- "),
            Just("["),
            Just("]"),
            Just("{"),
            Just("}"),
            Just(", "),
            Just("\""),
            Just("'"),
            Just("#"),
            Just("&a "),
            Just("*a"),
            Just("!!str "),
            Just("|\n  "),
            Just("? "),
            Just("---\n"),
            Just("~"),
        ]
        .prop_map(String::from),
        prop_oneof![
            Just("const"),
            Just("expr"),
            Just("hours"),
            Just("minutes"),
            Just("1"),
            Just("3"),
            Just("-1"),
            Just("0.5"),
            Just(".nan"),
            Just("1e9"),
            Just("1000000"),
            Just("\"SHIFT(a, 1) + b\""),
            Just("a"),
            Just("b"),
            Just("file:x.csv"),
            Just("file:../x.csv"),
            Just("{{q0}}"),
            Just("\"2025-10-07T00:00:00Z\""),
        ]
        .prop_map(String::from),
        "[ -~]{0,8}",
    ];
    prop::collection::vec(piece, 0..80).prop_map(|ps| ps.concat())
}

#[derive(Clone, Debug)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    Replace { at: usize, ch: char },
    DuplicateLine { line: usize },
    SwapLines { a: usize, b: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let snippet = prop_oneof![
        Just(String::from("\n")),
        Just(String::from("  ")),
        Just(String::from(":")),
        Just(String::from("-")),
        Just(String::from("{{")),
        Just(String::from("}}")),
        Just(String::from("[")),
        Just(String::from("0")),
        Just(String::from("SHIFT(")),
        Just(String::from(", ")),
        Just(String::from("a")),
        "[ -~]{1,6}",
    ];
    prop_oneof![
        (0usize..4000, 1usize..20).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (0usize..4000, snippet).prop_map(|(at, text)| Mutation::Insert { at, text }),
        (0usize..4000, prop_oneof![Just(' '), Just('x'), Just('9'), Just(':'), Just('\t'), Just('"'), Just('é')])
            .prop_map(|(at, ch)| Mutation::Replace { at, ch }),
        (0usize..60).prop_map(|line| Mutation::DuplicateLine { line }),
        (0usize..60, 0usize..60).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    match m {
        Mutation::Delete { at, len } => {
            let at = at % n.max(1);
            let end = (at + len).min(n);
            chars[..at].iter().chain(&chars[end..]).collect()
        }
        Mutation::Insert { at, text } => {
            let at = at % (n + 1);
            let mut s: String = chars[..at].iter().collect();
            s.push_str(text);
            s.extend(&chars[at..]);
            s
        }
        Mutation::Replace { at, ch } => {
            let at = at % n.max(1);
            chars.iter().enumerate().map(|(i, c)| if i == at { *ch } else { *c }).collect()
        }
        Mutation::DuplicateLine { line } => {
            let mut lines: Vec<&str> = text.lines().collect();
            let l = line % lines.len().max(1);
            if let Some(x) = lines.get(l).copied() {
                lines.insert(l, x);
            }
            lines.join("\n")
        }
        Mutation::SwapLines { a, b } => {
            let mut lines: Vec<&str> = text.lines().collect();
            let len = lines.len().max(1);
            lines.swap(a % len, b % len);
            lines.join("\n")
        }
    }
}

#[test]
fn the_mutation_base_model_is_valid() {
    // Mutations start from a model that loads and evaluates, so they probe every stage.
    let (_, _, ev) = eval_with(VALID_MODEL, &BTreeMap::new());
    // Q0 = 2 + 10 - 5 = 7; Q1 = 12; Q2 = 17; Q3 = 22; Q4 = 17; Q5 = 12.
    assert_series(&ev, "queue_depth", &[7.0, 12.0, 17.0, 22.0, 17.0, 12.0], "queue_depth");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parser_never_panics_on_arbitrary_text(s in "\\PC{0,80}") {
        for mode in [Mode::Node, Mode::Check] {
            roundtrip(&s, mode).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn parser_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        let s = String::from_utf8_lossy(&bytes);
        roundtrip(&s, Mode::Node).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn parser_never_panics_on_token_soup(s in token_soup()) {
        for mode in [Mode::Node, Mode::Check] {
            roundtrip(&s, mode).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn parser_never_panics_on_deep_nesting_and_long_chains(s in deep()) {
        roundtrip(&s, Mode::Node).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn valid_expressions_parse_and_print_round_trips(s in valid_expr(), cmp in prop::option::of((prop_oneof![Just("<"), Just("<="), Just(">"), Just(">="), Just("=="), Just("!=")], valid_expr()))) {
        prop_assert!(parse(&s, Mode::Node).is_ok(), "valid expression rejected: {} ({:?})", s, parse(&s, Mode::Node).err());
        roundtrip(&s, Mode::Node).map_err(TestCaseError::fail)?;
        if let Some((op, rhs)) = cmp {
            let check = format!("{s} {op} {rhs}");
            prop_assert!(parse(&check, Mode::Check).is_ok(), "valid check rejected: {}", check);
            roundtrip(&check, Mode::Check).map_err(TestCaseError::fail)?;
        }
    }

    #[test]
    fn loader_never_panics_on_yamlish_text(s in yamlish()) {
        load_anything(&s);
    }

    #[test]
    fn loader_never_panics_on_mutations_of_a_valid_model(ms in prop::collection::vec(mutation(), 1..4)) {
        let mut text = VALID_MODEL.to_string();
        for m in &ms {
            text = apply(&text, m);
        }
        load_anything(&text);
    }
}
