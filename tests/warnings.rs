//! Issue 3 acceptance: post-evaluation warnings (§7.1). For every built-in code one model that
//! triggers it (code, severity, node, first bins and value asserted) and one that must not; the
//! template checks `conservation` and `expr`; ordering and the `bins` cap.

use flowtime::diag::Severity;
use flowtime::engine::warnings::Warning;

use crate::topology::{eval, get, grid, konst, load_in};

/// Warnings of a model (which must evaluate: warnings never block a run).
fn warnings(yaml: &str) -> Vec<Warning> {
    let (host, model, ev) = eval(yaml);
    host.warnings(&model, &ev).unwrap()
}

/// The warnings with `code`.
fn with_code<'a>(ws: &'a [Warning], code: &str) -> Vec<&'a Warning> {
    ws.iter().filter(|w| w.code == code).collect()
}

/// Asserts exactly one warning with `code` and returns it.
#[track_caller]
fn one<'a>(ws: &'a [Warning], code: &str) -> &'a Warning {
    let hits = with_code(ws, code);
    assert_eq!(hits.len(), 1, "expected one `{code}` warning, got {ws:#?}");
    hits[0]
}

#[track_caller]
fn none(ws: &[Warning], code: &str) {
    assert!(with_code(ws, code).is_empty(), "unexpected `{code}` warning in {ws:#?}");
}

#[track_caller]
fn check(w: &Warning, severity: Severity, node: &str, bins: &[u32], value: Option<f64>) {
    assert_eq!(w.severity, severity, "{w:?}");
    assert_eq!(w.node_id, node, "{w:?}");
    assert_eq!(w.bins, bins, "{w:?}");
    match (w.value, value) {
        (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "value {a}, expected {b}: {w:?}"),
        (a, b) => assert_eq!(a, b, "{w:?}"),
    }
}

/// One service `Svc` with the given role series (each a const node of the same name).
fn service(kind: &str, roles: &[(&str, &[f64])], extra: &str) -> String {
    let bins = roles[0].1.len();
    let mut y = grid(bins) + "nodes:\n";
    let mut sem = Vec::new();
    for (role, xs) in roles {
        y.push_str(&konst(role, xs));
        sem.push(if *role == "q" { "queueDepth: q".to_string() } else { format!("{role}: {role}") });
    }
    y.push_str(&format!(
        "topology:\n  nodes:\n    - id: Svc\n      kind: {kind}\n{extra}      semantics: {{{}}}\n",
        sem.join(", ")
    ));
    y
}

// ---------------------------------------------------------------------------------------------
// Sign rules.

#[test]
fn negative_roles_warn() {
    let ws = warnings(&service(
        "service",
        &[
            ("arrivals", &[1.0, -2.0, 3.0, -5.0]),
            ("served", &[1.0, 0.0, -0.5, 0.0]),
            ("errors", &[0.0, 0.0, 0.0, -3.0]),
            ("q", &[0.0, -1.0, 0.0, 0.0]),
        ],
        "",
    ));
    // value is the worst (most negative) offending value.
    check(one(&ws, "arrivals_negative"), Severity::Warning, "Svc", &[1, 3], Some(-5.0));
    check(one(&ws, "served_negative"), Severity::Warning, "Svc", &[2], Some(-0.5));
    check(one(&ws, "errors_negative"), Severity::Warning, "Svc", &[3], Some(-3.0));
    check(one(&ws, "queue_negative"), Severity::Warning, "Svc", &[1], Some(-1.0));
}

#[test]
fn negatives_within_tolerance_do_not_warn() {
    let tiny = -0.9e-6;
    let ws = warnings(&service(
        "service",
        &[("arrivals", &[1.0, tiny]), ("served", &[tiny, 0.0]), ("errors", &[tiny, 0.0]), ("q", &[0.0, tiny])],
        "",
    ));
    for code in ["arrivals_negative", "served_negative", "errors_negative", "queue_negative"] {
        none(&ws, code);
    }
    // Just beyond the tolerance.
    let ws = warnings(&service("service", &[("arrivals", &[1.0, -1.1e-6])], ""));
    check(one(&ws, "arrivals_negative"), Severity::Warning, "Svc", &[1], Some(-1.1e-6));
}

// ---------------------------------------------------------------------------------------------
// Comparisons between roles.

#[test]
fn served_exceeds_arrivals_only_for_services() {
    let roles: &[(&str, &[f64])] = &[("arrivals", &[5.0, 5.0, 5.0]), ("served", &[5.0, 6.5, 5.0000005])];
    let ws = warnings(&service("service", roles, ""));
    check(one(&ws, "served_exceeds_arrivals"), Severity::Warning, "Svc", &[1], Some(1.5));
    // A queue may serve more than arrives in a bin (it drains its backlog).
    none(&warnings(&service("queue", roles, "")), "served_exceeds_arrivals");
    let ws = warnings(&service("service", &[("arrivals", &[5.0, 5.0]), ("served", &[5.0000009, 1.0])], ""));
    none(&ws, "served_exceeds_arrivals");
}

#[test]
fn served_exceeds_capacity_times_parallelism() {
    let roles: &[(&str, &[f64])] =
        &[("arrivals", &[20.0, 20.0, 20.0]), ("served", &[5.0, 12.0, 9.0]), ("capacity", &[10.0, 10.0, 4.0])];
    // Limit = capacity × 2 = 20, 20, 8: bin 2 exceeds by 1.
    let ws = warnings(&service("service", roles, "      parallelism: 2\n"));
    check(one(&ws, "served_exceeds_capacity"), Severity::Warning, "Svc", &[2], Some(1.0));
    // Without parallelism (1): bins 1 (12 > 10) and 2 (9 > 4); worst excess 5 at bin 2.
    let ws = warnings(&service("service", roles, ""));
    check(one(&ws, "served_exceeds_capacity"), Severity::Warning, "Svc", &[1, 2], Some(5.0));
    // Descriptive kinds are checked too (§6: "descriptive (UI, warnings)").
    let ws = warnings(&service("external", roles, ""));
    check(one(&ws, "served_exceeds_capacity"), Severity::Warning, "Svc", &[1, 2], Some(5.0));
    // Parallelism 3: limit 30, 30, 12.
    none(&warnings(&service("service", roles, "      parallelism: 3\n")), "served_exceeds_capacity");
}

#[test]
fn errors_exceed_arrivals() {
    let ws = warnings(&service("service", &[("arrivals", &[5.0, 5.0, 2.0]), ("errors", &[1.0, 7.0, 2.0])], ""));
    check(one(&ws, "errors_exceed_arrivals"), Severity::Warning, "Svc", &[1], Some(2.0));
    let ws = warnings(&service("service", &[("arrivals", &[5.0, 5.0]), ("errors", &[5.0, 0.0])], ""));
    none(&ws, "errors_exceed_arrivals");
}

// ---------------------------------------------------------------------------------------------
// Conservation of an observed queue.

#[test]
fn conservation_violation_of_an_observed_queue() {
    let roles: &[(&str, &[f64])] = &[("arrivals", &[10.0; 4]), ("served", &[5.0; 4]), ("q", &[5.0, 10.3, 20.3, 22.3])];
    // Residual Q[t] − (Q[t−1] + 10 − 5): bin 1: 0.3 > 0.01 · 10.3; bin 2: +5; bin 3:
    // 22.3 − 25.3 = −3. Bin 0 is not checked without an initial condition.
    let ws = warnings(&service("queue", roles, ""));
    check(one(&ws, "conservation_violation"), Severity::Warning, "Svc", &[1, 2, 3], Some(5.0));
    // With initialCondition 3, bin 0 is checked too: 5 − (3 + 5) = −3.
    let ws = warnings(&service("queue", roles, "      initialCondition: {queueDepth: 3}\n"));
    check(one(&ws, "conservation_violation"), Severity::Warning, "Svc", &[0, 1, 2, 3], Some(5.0));
}

#[test]
fn conservation_within_one_percent_does_not_warn() {
    // Residuals 0, 0, 0.1 (≤ 0.01 · 15.1), 0; initial condition 0 makes bin 0 exact.
    let roles: &[(&str, &[f64])] = &[("arrivals", &[10.0; 4]), ("served", &[5.0; 4]), ("q", &[5.0, 10.0, 15.1, 20.1])];
    let ws = warnings(&service("queue", roles, "      initialCondition: {queueDepth: 0}\n"));
    none(&ws, "conservation_violation");
    // A synthesised queue clamps at 0 and is never checked.
    let ws = warnings(&service("queue", &[("arrivals", &[1.0, 1.0]), ("served", &[5.0, 5.0])], ""));
    none(&ws, "conservation_violation");
}

#[test]
fn conservation_rules_use_the_queue_nodes_own_initial() {
    // q = SHIFT(q, 1) + 10 − 5 + 1 with initial 3: 9, 15, 21. Every bin is off by +1, bin 0
    // included (Q[−1] = 3 comes from the node's `initial`).
    let y = grid(3)
        + "nodes:\n"
        + &konst("arrivals", &[10.0; 3])
        + &konst("served", &[5.0; 3])
        + "  - {id: q, kind: expr, expr: \"SHIFT(q, 1) + arrivals - served + 1\", initial: 3}
topology:
  nodes:
    - {id: Svc, kind: queue, semantics: {arrivals: arrivals, served: served, queueDepth: q}}
validation:
  - {id: svc_conservation, type: conservation, node: Svc, tolerance: 0.01}
";
    let ws = warnings(&y);
    check(one(&ws, "conservation_violation"), Severity::Warning, "Svc", &[0, 1, 2], Some(1.0));
    check(one(&ws, "svc_conservation"), Severity::Warning, "Svc", &[0, 1, 2], Some(1.0));
}

// ---------------------------------------------------------------------------------------------
// Info rules: stationarity and backlog growth.

#[test]
fn non_stationary_arrivals() {
    // n = 5: means over bins [0, 2) = 1 and [2, 5) = 2: |1 − 2| / 2 = 0.5 > 0.25.
    let ws = warnings(&service("service", &[("arrivals", &[1.0, 1.0, 2.0, 2.0, 2.0])], ""));
    check(one(&ws, "non_stationary"), Severity::Info, "Svc", &[], Some(0.5));
    // 4 vs 5: 0.2.
    none(&warnings(&service("service", &[("arrivals", &[4.0, 4.0, 5.0, 5.0])], "")), "non_stationary");
    // Skipped when max ≤ 0.
    none(&warnings(&service("service", &[("arrivals", &[0.0, 0.0, -1.0, -4.0])], "")), "non_stationary");
}

#[test]
fn backlog_growth_streak_of_three_bins() {
    // Growth at bins 1, 2, 3 (each above its predecessor), then flat.
    let roles: &[(&str, &[f64])] = &[("arrivals", &[1.0; 5]), ("q", &[0.0, 1.0, 2.0, 3.0, 3.0])];
    let ws = warnings(&service("queue", roles, ""));
    check(one(&ws, "backlog_growth_streak"), Severity::Info, "Svc", &[1, 2, 3], Some(3.0));
    // Two growing bins (1, 2), a flat one, then one more: no streak of three.
    let roles: &[(&str, &[f64])] = &[("arrivals", &[1.0; 5]), ("q", &[0.0, 1.0, 2.0, 2.0, 3.0])];
    none(&warnings(&service("queue", roles, "")), "backlog_growth_streak");
    // A synthesised queue: 3, 6, 9, 12 grows at bins 1, 2, 3.
    let ws = warnings(&service("queue", &[("arrivals", &[4.0; 4]), ("served", &[1.0; 4])], ""));
    check(one(&ws, "backlog_growth_streak"), Severity::Info, "Svc", &[1, 2, 3], Some(3.0));
}

// ---------------------------------------------------------------------------------------------
// Input data quality: these need a file.

fn file_model(csv: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), csv).unwrap();
    let y = grid(4)
        + "nodes:\n  - {id: a, kind: const, source: \"file:a.csv\"}\n  - {id: b, kind: expr, expr: \"a * 2\"}\n";
    (dir, y)
}

fn file_warnings(csv: &str) -> (Vec<Warning>, Vec<f64>) {
    let (dir, y) = file_model(csv);
    let (host, model) = load_in(&y, dir.path());
    let ev = host.evaluate(&model, None).unwrap();
    (host.warnings(&model, &ev).unwrap(), get(&ev, "a"))
}

#[test]
fn data_gap_lists_missing_bins() {
    let (ws, a) = file_warnings("bin_index,value\n0,1\n2,3\n");
    assert_eq!(a, vec![1.0, 0.0, 3.0, 0.0], "missing bins are 0");
    // value: the number of missing bins.
    check(one(&ws, "data_gap"), Severity::Warning, "a", &[1, 3], Some(2.0));
    none(&ws, "nan_detected");
    let (ws, _) = file_warnings("bin_index,value\n3,4\n1,2\n0,1\n2,3\n");
    none(&ws, "data_gap");
}

#[test]
fn nan_detected_lists_empty_and_nan_cells() {
    let (ws, a) = file_warnings("bin_index,value\n0,1\n1,\n2,NaN\n3,4\n");
    assert!(a[1].is_nan() && a[2].is_nan() && a[0] == 1.0 && a[3] == 4.0, "{a:?}");
    check(one(&ws, "nan_detected"), Severity::Warning, "a", &[1, 2], Some(2.0));
    none(&ws, "data_gap");
    let (ws, _) = file_warnings("bin_index,value\n0,1\n1,2\n2,3\n3,4\n");
    none(&ws, "nan_detected");
}

#[test]
fn data_quality_warnings_name_the_role_series_of_a_topology_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("arr.csv"), "bin_index,value\n0,1\n1,1\n").unwrap();
    let y = grid(3)
        + "nodes:\n"
        + &konst("served", &[1.0; 3])
        + "topology:\n  nodes:\n    - {id: CheckoutAPI, semantics: {arrivals: \"file:arr.csv\", served: served}}\n";
    let (host, model) = load_in(&y, dir.path());
    let ev = host.evaluate(&model, None).unwrap();
    assert_eq!(get(&ev, "checkout_api_arrivals"), vec![1.0, 1.0, 0.0]);
    check(
        one(&host.warnings(&model, &ev).unwrap(), "data_gap"),
        Severity::Warning,
        "checkout_api_arrivals",
        &[2],
        Some(1.0),
    );
}

// ---------------------------------------------------------------------------------------------
// Compile-time info: feedback without initial condition, renormalised pmf.

#[test]
fn feedback_initial_defaulted() {
    let loop_model = |initial: &str| {
        format!(
            "{}nodes:\n{}  - {{id: a, kind: expr, expr: \"base + SHIFT(b, 1)\"}}\n  - {{id: b, kind: expr, expr: \"a * 0.5\"{initial}}}\n  - {{id: c, kind: expr, expr: \"SHIFT(base, 1)\"}}\n",
            grid(3),
            konst("base", &[1.0; 3])
        )
    };
    let (host, model, ev) = eval(&loop_model(""));
    // a = 1 + b[t−1] with b[−1] read as 0: 1, 1.5, 1.75.
    assert_eq!(get(&ev, "a"), vec![1.0, 1.5, 1.75]);
    let ws = host.warnings(&model, &ev).unwrap();
    check(one(&ws, "feedback_initial_defaulted"), Severity::Info, "b", &[], None);
    // With `initial: 2` on b: a = 3, 2.5, 2.25; `c` SHIFTs outside any loop and never warns.
    let (host, model, ev) = eval(&loop_model(", initial: 2"));
    assert_eq!(get(&ev, "a"), vec![3.0, 2.5, 2.25]);
    none(&host.warnings(&model, &ev).unwrap(), "feedback_initial_defaulted");
}

#[test]
fn feedback_through_a_queue_uses_its_initial_condition() {
    // The queue is read by SHIFT inside the loop; initialCondition gives its value before bin 0.
    let model = |ic: &str| {
        format!(
            "{}nodes:\n{}{}  - {{id: inflow, kind: expr, expr: \"MAX(0, raw - SHIFT(backlog, 1))\"}}
topology:
  nodes:
    - id: Buf
      kind: queue
{ic}      semantics: {{arrivals: inflow, served: served, queueDepth: backlog}}
",
            grid(3),
            konst("raw", &[10.0; 3]),
            konst("served", &[4.0; 3]),
        )
    };
    let (host, m, ev) = eval(&model(""));
    // inflow 10 − 0 = 10, Q 6; inflow 4, Q 6; inflow 4, Q 6.
    assert_eq!(get(&ev, "backlog"), vec![6.0, 6.0, 6.0]);
    check(one(&host.warnings(&m, &ev).unwrap(), "feedback_initial_defaulted"), Severity::Info, "backlog", &[], None);
    let (host, m, ev) = eval(&model("      initialCondition: {queueDepth: 8}\n"));
    // inflow 10 − 8 = 2, Q 8 + 2 − 4 = 6; then as above.
    assert_eq!(get(&ev, "inflow"), vec![2.0, 4.0, 4.0]);
    none(&host.warnings(&m, &ev).unwrap(), "feedback_initial_defaulted");
}

#[test]
fn pmf_renormalised() {
    let y = grid(2) + "nodes:\n  - {id: p, kind: pmf, pmf: {values: [1, 2], probabilities: [1, 1]}}\n";
    let (host, model, ev) = eval(&y);
    // (1·1 + 2·1) / 2.
    assert_eq!(get(&ev, "p"), vec![1.5, 1.5]);
    // value: the sum the probabilities had.
    check(one(&host.warnings(&model, &ev).unwrap(), "pmf_renormalised"), Severity::Info, "p", &[], Some(2.0));
    let y = grid(2) + "nodes:\n  - {id: p, kind: pmf, pmf: {values: [1, 2], probabilities: [0.25, 0.75]}}\n";
    let (host, model, ev) = eval(&y);
    assert_eq!(get(&ev, "p"), vec![1.75, 1.75]);
    none(&host.warnings(&model, &ev).unwrap(), "pmf_renormalised");
}

#[test]
fn capacity_not_inferable() {
    let model = |queue: &[f64]| {
        grid(3)
            + "nodes:\n"
            + &konst("served", &[4.0, 5.0, 6.0])
            + &konst("queue", queue)
            + "  - {id: cap, kind: expr, expr: \"infer_from_saturation(served, queue)\"}\n"
    };
    let ws = warnings(&model(&[0.0, 0.0, 0.0]));
    check(one(&ws, "capacity_not_inferable"), Severity::Warning, "cap", &[], None);
    // Saturated at bins 0 (1 > 0, 1 ≥ 0) and 1 (2 ≥ 1): median of 4 and 5 is 4.5.
    let (host, m, ev) = eval(&model(&[1.0, 2.0, 0.0]));
    assert_eq!(get(&ev, "cap"), vec![4.5; 3]);
    none(&host.warnings(&m, &ev).unwrap(), "capacity_not_inferable");
}

// ---------------------------------------------------------------------------------------------
// Template checks (`validation:`).

fn checked_model(validation: &str) -> String {
    service(
        "queue",
        &[
            ("arrivals", &[10.0; 4]),
            ("served", &[5.0, 9.5, 5.0, 9.0]),
            ("capacity", &[10.0; 4]),
            ("q", &[5.0, 5.5, 10.5, 12.0]),
        ],
        "",
    ) + "validation:\n"
        + validation
}

#[test]
fn template_conservation_check_uses_its_tolerance() {
    // Residuals: bin 1: 5.5 − (5 + 10 − 9.5) = 0; bin 2: 10.5 − 10.5 = 0; bin 3: 12 − 11.5 = 0.5.
    let ws =
        warnings(&checked_model("  - {id: orders_conservation, type: conservation, node: Svc, tolerance: 0.01}\n"));
    check(one(&ws, "orders_conservation"), Severity::Warning, "Svc", &[3], Some(0.5));
    // 0.5 ≤ 0.05 · 12.
    let ws =
        warnings(&checked_model("  - {id: orders_conservation, type: conservation, node: Svc, tolerance: 0.05}\n"));
    none(&ws, "orders_conservation");
    let ws =
        warnings(&checked_model("  - {id: loose, type: conservation, node: Svc, tolerance: 0.01, action: info}\n"));
    check(one(&ws, "loose"), Severity::Info, "Svc", &[3], Some(0.5));
}

#[test]
fn template_expr_checks_warn_where_nonzero() {
    let ws = warnings(&checked_model(
        "  - {id: near_capacity, type: expr, expr: \"served >= 0.9 * capacity\", message: \"Near capacity\", action: info}
  - {id: never, type: expr, expr: \"served < 0\"}
  - {id: backlog_high, type: expr, expr: \"q - 10\"}
",
    ));
    let w = one(&ws, "near_capacity");
    // served ≥ 9 at bins 1 and 3; comparisons give 1. Attributed to the first series it reads.
    check(w, Severity::Info, "served", &[1, 3], Some(1.0));
    assert_eq!(w.message, "Near capacity");
    none(&ws, "never");
    // A plain expression: non-zero and not NaN at bins 0, 1, 2, 3 except where q = 10 (none).
    check(one(&ws, "backlog_high"), Severity::Warning, "q", &[0, 1, 2, 3], Some(-5.0));
}

#[test]
fn template_expr_check_ignores_nan_and_treats_ne_specially() {
    let y = grid(3)
        + "nodes:\n"
        + &konst("x", &[f64::NAN, 1.0, 0.0])
        + "validation:\n  - {id: nan_gt, type: expr, expr: \"x > 0.5\"}\n  - {id: nan_ne, type: expr, expr: \"x != 0\"}\n  - {id: plain, type: expr, expr: \"x\"}\n";
    let ws = warnings(&y);
    check(one(&ws, "nan_gt"), Severity::Warning, "x", &[1], Some(1.0));
    // NaN != 0 is true (1).
    check(one(&ws, "nan_ne"), Severity::Warning, "x", &[0, 1], Some(1.0));
    // A NaN value never warns.
    check(one(&ws, "plain"), Severity::Warning, "x", &[1], Some(1.0));
}

// ---------------------------------------------------------------------------------------------
// Ordering and the bins cap.

#[test]
fn warnings_are_ordered_by_code_node_first_bin_and_bins_are_capped() {
    let n = 150;
    let neg: Vec<f64> = (0..n).map(|t| if t % 3 == 0 { 1.0 } else { -(t as f64) }).collect();
    // Negative only in the last 5 bins, so that the halves' means stay within 25%.
    let late: Vec<f64> = (0..n).map(|t| if t < 145 { 1.0 } else { -1.0 }).collect();
    let y = grid(n)
        + "nodes:\n"
        + &konst("neg", &neg)
        + &konst("late", &late)
        + &konst("zero", &vec![0.0; n])
        + "  - {id: pz, kind: pmf, pmf: {values: [1], probabilities: [3]}}
  - {id: pa, kind: pmf, pmf: {values: [1], probabilities: [2]}}
topology:
  nodes:
    - {id: Zed, semantics: {arrivals: neg}}
    - {id: Alpha, semantics: {arrivals: late}}
    - {id: Beta, semantics: {arrivals: neg, errors: zero}}
    - {id: Beta2, kind: sink, semantics: {arrivals: late, served: neg}}
";
    let ws = warnings(&y);
    let keys: Vec<(&str, &str, Option<u32>)> =
        ws.iter().map(|w| (w.code.as_str(), w.node_id.as_str(), w.bins.first().copied())).collect();
    assert_eq!(
        keys,
        vec![
            ("arrivals_negative", "Alpha", Some(145)),
            ("arrivals_negative", "Beta", Some(1)),
            ("arrivals_negative", "Beta2", Some(145)),
            ("arrivals_negative", "Zed", Some(1)),
            ("errors_exceed_arrivals", "Beta", Some(1)),
            ("pmf_renormalised", "pa", None),
            ("pmf_renormalised", "pz", None),
            ("served_negative", "Beta2", Some(1)),
        ],
        "{ws:#?}"
    );
    // `neg` is negative in the 100 bins with t mod 3 ≠ 0; the worst value is −149.
    let w = &ws[1];
    let expected: Vec<u32> = (0..n as u32).filter(|t| t % 3 != 0).take(100).collect();
    assert_eq!(w.bins, expected);
    assert_eq!(w.value, Some(-149.0));
    // A violation in more than 100 bins lists the first 100.
    let y = grid(n)
        + "nodes:\n"
        + &konst("a", &vec![-1.0; n])
        + "topology:\n  nodes:\n    - {id: S, semantics: {arrivals: a}}\n";
    let ws = warnings(&y);
    let w = one(&ws, "arrivals_negative");
    assert_eq!(w.bins, (0..100).collect::<Vec<u32>>());
    assert!(w.message.contains("150"), "the message counts every offending bin: {}", w.message);
}

#[test]
fn warnings_never_block_a_run() {
    let (_, _, ev) = eval(&service("service", &[("arrivals", &[-1.0, -1.0]), ("served", &[-5.0, f64::NAN])], ""));
    assert_eq!(ev.accounting.nodes_evaluated, ev.accounting.nodes_total);
}
