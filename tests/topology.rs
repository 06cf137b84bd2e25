//! Issue 3 acceptance: topology semantics (§6) and capacity inference (§7.2).
//!
//! Every expectation here is computed independently of the engine: by a closed form, by a
//! straightforward re-implementation of the §6 rule in the test, or by hand (the arithmetic is
//! written next to the numbers). Property tests run 1,000 cases each with a fixed seed.

use std::collections::BTreeMap;
use std::path::Path;

use flowtime::diag::{Diagnostic, Diagnostics};
use flowtime::engine::Evaluation;
use flowtime::host::{Host, Model};
use flowtime::model::params::ParamValue;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

// ---------------------------------------------------------------------------------------------
// Helpers shared with `warnings.rs`.

/// Loads a model from text with default parameters; `file:` inputs resolve against `root`.
pub(crate) fn load_in(yaml: &str, root: &Path) -> (Host, Model) {
    let mut host = Host::new();
    let model = match host.load_text(yaml, "model.yaml", &BTreeMap::new(), root) {
        Ok(m) => m,
        Err(d) => panic!("model does not load:\n{}\n--- model ---\n{yaml}", d.render()),
    };
    (host, model)
}

pub(crate) fn load(yaml: &str) -> (Host, Model) {
    load_in(yaml, Path::new("."))
}

pub(crate) fn eval(yaml: &str) -> (Host, Model, Evaluation) {
    let (host, model) = load(yaml);
    let ev = match host.evaluate(&model, None) {
        Ok(ev) => ev,
        Err(d) => panic!("model does not evaluate:\n{}\n--- model ---\n{yaml}", d.render()),
    };
    (host, model, ev)
}

/// The series `id` of an evaluation, as a vector.
#[track_caller]
pub(crate) fn get(ev: &Evaluation, id: &str) -> Vec<f64> {
    match ev.get(id) {
        Some(s) => s.to_vec(),
        None => {
            let ids: Vec<&String> = ev.compiled.by_id.keys().collect();
            panic!("no series `{id}`; series: {ids:?}")
        }
    }
}

/// The errors a model is rejected with (at load or at evaluation).
#[track_caller]
pub(crate) fn load_err(yaml: &str) -> Diagnostics {
    let mut host = Host::new();
    match host.load_text(yaml, "bad.yaml", &BTreeMap::new(), Path::new(".")) {
        Err(d) => d,
        Ok(m) => match host.evaluate(&m, None) {
            Err(d) => d,
            Ok(_) => panic!("model was accepted but must be rejected:\n{yaml}"),
        },
    }
}

/// Asserts equality bin by bin: NaN matches NaN, numbers within `1e-9 · max(1, |expected|)`.
#[track_caller]
pub(crate) fn assert_series(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length; actual {actual:?}, expected {expected:?}");
    for (t, (a, e)) in actual.iter().zip(expected).enumerate() {
        let ok = if e.is_nan() { a.is_nan() } else { (a - e).abs() <= 1e-9 * e.abs().max(1.0) };
        assert!(ok, "{what}[{t}]: actual {a}, expected {e}\n actual   {actual:?}\n expected {expected:?}");
    }
}

/// A `values: [...]` list in YAML; non-finite numbers use YAML's `.nan` / `.inf` spellings.
pub(crate) fn yaml_list(xs: &[f64]) -> String {
    let items: Vec<String> = xs
        .iter()
        .map(|x| match x {
            x if x.is_nan() => ".nan".to_string(),
            x if *x == f64::INFINITY => ".inf".to_string(),
            x if *x == f64::NEG_INFINITY => "-.inf".to_string(),
            x => format!("{x:?}"),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

pub(crate) fn grid(bins: usize) -> String {
    format!("grid: {{bins: {bins}, binSize: 1, binUnit: hours}}\n")
}

/// A const node line for `nodes:`.
pub(crate) fn konst(id: &str, xs: &[f64]) -> String {
    format!("  - {{id: {id}, kind: const, values: {}}}\n", yaml_list(xs))
}

/// The one diagnostic with `code`, or a panic listing them all.
#[track_caller]
pub(crate) fn diag<'a>(d: &'a Diagnostics, code: &str) -> &'a Diagnostic {
    match d.0.iter().find(|x| x.code == code) {
        Some(x) => x,
        None => panic!("no `{code}` diagnostic in:\n{}", d.render()),
    }
}

/// Prefix sums in order, starting from 0.0.
fn running_sum(d: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    d.iter()
        .map(|x| {
            acc += x;
            acc
        })
        .collect()
}

fn config(seed: u64) -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Non-negative values with two decimals, so YAML round trips them exactly.
fn amounts(bins: usize, max_cents: u32) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((0..=max_cents).prop_map(|c| c as f64 / 100.0), bins)
}

// ---------------------------------------------------------------------------------------------
// Property tests (§6 invariants).

/// Inputs of one queue: arrivals, served, errors (optional), initial depth (optional).
#[derive(Debug, Clone)]
struct QueueCase {
    arrivals: Vec<f64>,
    served: Vec<f64>,
    errors: Option<Vec<f64>>,
    q0: Option<f64>,
}

fn queue_case() -> impl Strategy<Value = QueueCase> {
    (1usize..=40).prop_flat_map(|bins| {
        (
            amounts(bins, 3000),
            amounts(bins, 3000),
            prop::option::of(amounts(bins, 1000)),
            prop::option::of((0u32..=5000).prop_map(|c| c as f64 / 100.0)),
        )
            .prop_map(|(arrivals, served, errors, q0)| QueueCase { arrivals, served, errors, q0 })
    })
}

impl QueueCase {
    fn bins(&self) -> usize {
        self.arrivals.len()
    }

    /// `in − out − loss` per bin.
    fn net(&self) -> Vec<f64> {
        (0..self.bins())
            .map(|t| self.arrivals[t] - self.served[t] - self.errors.as_ref().map_or(0.0, |e| e[t]))
            .collect()
    }

    /// The model: one queue `Buffer` (series `buffer_queue`), with an optional extra node line.
    fn yaml(&self, extra: &str) -> String {
        let mut y = grid(self.bins());
        y.push_str("nodes:\n");
        y.push_str(&konst("arrivals", &self.arrivals));
        y.push_str(&konst("served", &self.served));
        if let Some(e) = &self.errors {
            y.push_str(&konst("errors", e));
        }
        y.push_str("topology:\n  nodes:\n    - id: Buffer\n      kind: queue\n");
        if let Some(q0) = self.q0 {
            y.push_str(&format!("      initialCondition: {{queueDepth: {q0:?}}}\n"));
        }
        y.push_str(extra);
        y.push_str("      semantics: {arrivals: arrivals, served: served");
        if self.errors.is_some() {
            y.push_str(", errors: errors");
        }
        y.push_str("}\n");
        y
    }
}

proptest! {
    #![proptest_config(config(0x5eed_0001))]

    /// Without a limit, `Q[t] = max(Q0 + S[t], max_{j≤t}(S[t] − S[j]))`.
    #[test]
    fn queue_matches_closed_form(case in queue_case()) {
        let (_, _, ev) = eval(&case.yaml(""));
        let q = get(&ev, "buffer_queue");
        let d = case.net();
        let s = running_sum(&d);
        let q0 = case.q0.unwrap_or(0.0);
        let tol = 1e-9 * d.iter().map(|x| x.abs()).sum::<f64>();
        prop_assert!(ev.get("buffer_overflow").is_none(), "no limit, no overflow series");
        for t in 0..case.bins() {
            let best_restart = (0..=t).map(|j| s[t] - s[j]).fold(f64::NEG_INFINITY, f64::max);
            let closed = (q0 + s[t]).max(best_restart);
            prop_assert!((q[t] - closed).abs() <= tol, "bin {t}: engine {} closed form {closed} (tol {tol})", q[t]);
        }
    }
}

/// A WIP-limited queue: a number limit, or a series limit that may hold NaN or +inf.
#[derive(Debug, Clone)]
struct WipCase {
    queue: QueueCase,
    limit: Result<f64, Vec<f64>>,
}

fn limit_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (0u32..=4000).prop_map(|c| c as f64 / 100.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
    ]
}

fn wip_case(no_drain: bool) -> impl Strategy<Value = WipCase> {
    queue_case().prop_flat_map(move |mut queue| {
        if no_drain {
            // arrivals ≥ served + errors in every bin: the queue never clamps at 0.
            for t in 0..queue.bins() {
                queue.arrivals[t] += queue.served[t] + queue.errors.as_ref().map_or(0.0, |e| e[t]);
            }
        }
        let bins = queue.bins();
        let limit = prop_oneof![
            (0u32..=4000).prop_map(|c| Ok(c as f64 / 100.0)),
            prop::collection::vec(limit_value(), bins).prop_map(Err),
        ];
        (Just(queue), limit).prop_map(|(queue, limit)| WipCase { queue, limit })
    })
}

impl WipCase {
    fn yaml(&self) -> String {
        match &self.limit {
            Ok(l) => self.queue.yaml(&format!("      wipLimit: {l:?}\n")),
            Err(series) => {
                let y = self.queue.yaml("      wipLimitSeries: limit\n");
                y.replacen("nodes:\n", &format!("nodes:\n{}", konst("limit", series)), 1)
            }
        }
    }

    fn limit_at(&self, t: usize) -> f64 {
        match &self.limit {
            Ok(l) => *l,
            Err(s) => s[t],
        }
    }
}

proptest! {
    #![proptest_config(config(0x5eed_0002))]

    /// Per bin `Q[t] + overflow[t] = max(0, Q[t−1] + in − out − loss)` and `0 ≤ Q ≤ L`; a NaN or
    /// +inf limit never clamps.
    #[test]
    fn wip_limit_splits_excess_into_overflow(case in wip_case(false)) {
        let (_, _, ev) = eval(&case.yaml());
        let q = get(&ev, "buffer_queue");
        let ov = get(&ev, "buffer_overflow");
        let d = case.queue.net();
        let mut prev = case.queue.q0.unwrap_or(0.0);
        for t in 0..case.queue.bins() {
            let l = case.limit_at(t);
            let unclamped = (prev + d[t]).max(0.0);
            let tol = 1e-9 * unclamped.abs().max(1.0);
            prop_assert!((q[t] + ov[t] - unclamped).abs() <= tol, "bin {t}: Q {} + overflow {} != {unclamped}", q[t], ov[t]);
            prop_assert!(q[t] >= 0.0 && ov[t] >= 0.0, "bin {t}: Q {} overflow {}", q[t], ov[t]);
            if l.is_finite() {
                prop_assert!(q[t] <= l, "bin {t}: Q {} above limit {l}", q[t]);
                // The queue is clamped exactly when it would exceed the limit.
                let expected_q = unclamped.min(l);
                prop_assert!((q[t] - expected_q).abs() <= tol, "bin {t}: Q {} expected {expected_q}", q[t]);
            } else {
                prop_assert_eq!(ov[t], 0.0, "bin {}: NaN/inf limit must not clamp", t);
            }
            prev = q[t];
        }
    }

    /// Queue plus cumulative overflow conserves mass: `Q[t] + Σ_{k≤t} overflow[k] = Q0 + S[t]`
    /// (inputs never drain the queue below 0).
    #[test]
    fn wip_limit_conserves_mass(case in wip_case(true)) {
        let (_, _, ev) = eval(&case.yaml());
        let q = get(&ev, "buffer_queue");
        let ov = get(&ev, "buffer_overflow");
        let d = case.queue.net();
        let s = running_sum(&d);
        let q0 = case.queue.q0.unwrap_or(0.0);
        let cum_ov = running_sum(&ov);
        for t in 0..case.queue.bins() {
            let expected = q0 + s[t];
            let tol = 1e-9 * expected.abs().max(1.0);
            prop_assert!((q[t] + cum_ov[t] - expected).abs() <= tol,
                "bin {t}: Q {} + Σoverflow {} != Q0 + S {expected}", q[t], cum_ov[t]);
        }
    }
}

#[derive(Debug, Clone)]
struct RouterCase {
    source: Vec<f64>,
    /// (target index, weight in hundredths); several routes may share a target.
    routes: Vec<(usize, u32)>,
}

fn router_case() -> impl Strategy<Value = RouterCase> {
    (1usize..=12, 1usize..=6).prop_flat_map(|(bins, n_routes)| {
        (amounts(bins, 100_000), prop::collection::vec((0usize..4, 0u32..=1000), n_routes))
            .prop_filter("Σw > 0", |(_, routes)| routes.iter().any(|(_, w)| *w > 0))
            .prop_map(|(source, routes)| RouterCase { source, routes })
    })
}

proptest! {
    #![proptest_config(config(0x5eed_0003))]

    /// Router targets sum to the source, and each target is `src × Σ(its w) / Σw`.
    #[test]
    fn router_targets_sum_to_source(case in router_case()) {
        let bins = case.source.len();
        let mut y = grid(bins);
        y.push_str("nodes:\n");
        y.push_str(&konst("src", &case.source));
        y.push_str("  - id: split\n    kind: router\n    router:\n      inputs: {queue: src}\n      routes:\n");
        for (target, w) in &case.routes {
            y.push_str(&format!("        - {{target: t{target}, weight: {:?}}}\n", *w as f64 / 100.0));
        }
        let (_, _, ev) = eval(&y);
        let total_w: f64 = case.routes.iter().map(|(_, w)| *w as f64 / 100.0).sum();
        let targets: std::collections::BTreeSet<usize> = case.routes.iter().map(|(t, _)| *t).collect();
        prop_assert_eq!(get(&ev, "split"), case.source.clone(), "a router's own series is its source");
        for t in 0..bins {
            let mut sum = 0.0;
            for target in &targets {
                let v = get(&ev, &format!("t{target}"))[t];
                let w: f64 = case.routes.iter().filter(|(x, _)| x == target).map(|(_, w)| *w as f64 / 100.0).sum();
                let want = case.source[t] * w / total_w;
                prop_assert!((v - want).abs() <= 1e-9 * want.abs().max(1.0), "t{target}[{t}] = {v}, want {want}");
                sum += v;
            }
            prop_assert!((sum - case.source[t]).abs() <= 1e-9 * case.source[t].max(1.0),
                "bin {t}: targets sum to {sum}, source {}", case.source[t]);
        }
    }
}

#[derive(Debug, Clone)]
struct ConstraintCase {
    cap: Vec<f64>,
    demands: Vec<Vec<f64>>,
}

fn constraint_case() -> impl Strategy<Value = ConstraintCase> {
    (1usize..=20, 1usize..=5).prop_flat_map(|(bins, members)| {
        (amounts(bins, 10_000), prop::collection::vec(amounts(bins, 5_000), members))
            .prop_map(|(cap, demands)| ConstraintCase { cap, demands })
    })
}

proptest! {
    #![proptest_config(config(0x5eed_0004))]

    /// Constrained inflows sum to `min(cap, Σ demand)`. Served is 0, so the queues never clamp
    /// and each inflow is `Q[t] − Q[t−1]`.
    #[test]
    fn constrained_inflows_sum_to_min_of_capacity_and_demand(case in constraint_case()) {
        let bins = case.cap.len();
        let mut y = grid(bins);
        y.push_str("nodes:\n");
        y.push_str(&konst("cap", &case.cap));
        y.push_str(&konst("zero", &vec![0.0; bins]));
        for (i, d) in case.demands.iter().enumerate() {
            y.push_str(&konst(&format!("demand{i}"), d));
        }
        y.push_str("topology:\n  nodes:\n");
        for i in 0..case.demands.len() {
            y.push_str(&format!(
                "    - {{id: Member{i}, kind: queue, constraints: [pool], semantics: {{arrivals: demand{i}, served: zero}}}}\n"
            ));
        }
        y.push_str("  constraints:\n    - {id: pool, semantics: {served: cap}}\n");
        let (_, _, ev) = eval(&y);
        let queues: Vec<Vec<f64>> = (0..case.demands.len()).map(|i| get(&ev, &format!("member{i}_queue"))).collect();
        for t in 0..bins {
            let total_demand: f64 = case.demands.iter().map(|d| d[t]).sum();
            let want = case.cap[t].min(total_demand);
            let mut sum = 0.0;
            for (i, q) in queues.iter().enumerate() {
                let inflow = q[t] - if t == 0 { 0.0 } else { q[t - 1] };
                // No member receives more than it asked for.
                prop_assert!(inflow <= case.demands[i][t] + 1e-9 * case.demands[i][t].max(1.0));
                sum += inflow;
            }
            prop_assert!((sum - want).abs() <= 1e-9 * want.max(1.0) * case.demands.len() as f64,
                "bin {t}: inflows sum to {sum}, want min(cap {}, Σdemand {total_demand}) = {want}", case.cap[t]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-computed: derived metrics (§6), including the undefined cases.

#[test]
fn derived_metrics_by_hand_with_nan_where_undefined() {
    // binSize 5 minutes: latency is Q / served × 5.
    let y = "grid: {bins: 4, binSize: 5, binUnit: minutes}
nodes:
  - {id: arrivals, kind: const, values: [10, 0, 8, 4]}
  - {id: served, kind: const, values: [5, 2, 0, 4]}
  - {id: capacity, kind: const, values: [10, 4, 0, 8]}
  - {id: par, kind: const, values: [1, 2, 3, 0]}
  - {id: pts, kind: const, values: [100, 50, 0, 30]}
  - {id: cnt, kind: const, values: [5, 0, 0, 3]}
topology:
  nodes:
    - id: OrderQueue
      kind: queue
      semantics: {arrivals: arrivals, served: served, capacity: capacity, parallelism: par,
                  processingTimeMsSum: pts, servedCount: cnt}
";
    let (_, _, ev) = eval(y);
    // Q: 0+10-5 = 5; 5+0-2 = 3; 3+8-0 = 11; 11+4-4 = 11.
    assert_series(&get(&ev, "order_queue_queue"), &[5.0, 3.0, 11.0, 11.0], "queue");
    let nan = f64::NAN;
    // served / (capacity × par): 5/10, 2/8, capacity 0 → NaN, parallelism 0 → NaN.
    assert_series(&get(&ev, "order_queue_utilization"), &[0.5, 0.25, nan, nan], "utilization");
    // Q / served × 5: 5/5·5, 3/2·5, served 0 → NaN, 11/4·5.
    assert_series(&get(&ev, "order_queue_latency_min"), &[5.0, 7.5, nan, 13.75], "latency");
    // served / arrivals: 0.5, arrivals 0 → NaN, 0/8 = 0 (a real zero), 1.
    assert_series(&get(&ev, "order_queue_throughput_ratio"), &[0.5, nan, 0.0, 1.0], "throughput ratio");
    // processingTimeMsSum / servedCount: 20, count 0 → NaN twice, 10.
    assert_series(&get(&ev, "order_queue_service_time_ms"), &[20.0, nan, nan, 10.0], "service time");
}

#[test]
fn derived_metrics_exist_only_when_their_inputs_do() {
    let y = format!(
        "{}nodes:\n{}{}topology:\n  nodes:\n    - {{id: Api, kind: service, semantics: {{arrivals: arrivals, served: served}}}}\n    - {{id: Sink, kind: sink, semantics: {{arrivals: arrivals, served: served}}}}\n",
        grid(2),
        konst("arrivals", &[4.0, 2.0]),
        konst("served", &[2.0, 2.0]),
    );
    let (_, _, ev) = eval(&y);
    assert_series(&get(&ev, "api_throughput_ratio"), &[0.5, 1.0], "throughput ratio");
    for missing in ["api_utilization", "api_latency_min", "api_service_time_ms", "api_queue", "sink_throughput_ratio"] {
        assert!(ev.get(missing).is_none(), "`{missing}` must not exist");
    }
}

#[test]
fn parallelism_as_number_and_as_series() {
    let y = format!(
        "{}nodes:\n{}{}{}topology:\n  nodes:
    - {{id: NodeLevel, parallelism: 2, semantics: {{served: served, capacity: capacity}}}}
    - {{id: SemanticsWins, parallelism: 4, semantics: {{served: served, capacity: capacity, parallelism: 2.5}}}}
    - {{id: AsSeries, semantics: {{served: served, capacity: capacity, parallelism: workers}}}}
    - {{id: Default, semantics: {{served: served, capacity: capacity}}}}
",
        grid(3),
        konst("served", &[6.0, 3.0, 9.0]),
        konst("capacity", &[3.0, 3.0, 3.0]),
        konst("workers", &[1.0, 4.0, 0.0]),
    );
    let (_, _, ev) = eval(&y);
    // served / (3 × p)
    assert_series(&get(&ev, "node_level_utilization"), &[1.0, 0.5, 1.5], "parallelism 2");
    assert_series(&get(&ev, "semantics_wins_utilization"), &[0.8, 0.4, 1.2], "parallelism 2.5 (semantics wins)");
    assert_series(&get(&ev, "as_series_utilization"), &[2.0, 0.25, f64::NAN], "parallelism series");
    assert_series(&get(&ev, "default_utilization"), &[2.0, 1.0, 3.0], "parallelism default 1");
}

// ---------------------------------------------------------------------------------------------
// Hand-computed: dispatch, retry echo, overflow routing, edges.

#[test]
fn dispatch_with_negative_phase_is_normalised_mod_period() {
    // Period 3 with phase −1, −4 or 5 all dispatch on t ≥ 2 with (t − 2) mod 3 == 0: bins 2, 5.
    for phase in [-1, -4, 5, 2] {
        let y = format!(
            "{}nodes:\n{}{}topology:\n  nodes:
    - id: Batch
      kind: queue
      dispatchSchedule: {{kind: time-based, periodBins: 3, phaseOffset: {phase}}}
      semantics: {{arrivals: arrivals, served: served}}
",
            grid(7),
            konst("arrivals", &[10.0; 7]),
            konst("served", &[4.0; 7]),
        );
        let (_, _, ev) = eval(&y);
        // out = [0, 0, 4, 0, 0, 4, 0]; Q accumulates 10 a bin.
        let q = [10.0, 20.0, 26.0, 36.0, 46.0, 52.0, 62.0];
        assert_series(&get(&ev, "batch_queue"), &q, &format!("queue with phaseOffset {phase}"));
        // Metrics still use served (4 every bin), not the gated outflow: Q / 4 × 60.
        let lat: Vec<f64> = q.iter().map(|x| x / 4.0 * 60.0).collect();
        assert_series(&get(&ev, "batch_latency_min"), &lat, "latency uses served");
    }
}

#[test]
fn dispatch_with_capacity_series() {
    let y = format!(
        "{}nodes:\n{}{}{}topology:\n  nodes:
    - id: Batch
      kind: queue
      dispatchSchedule: {{kind: periodic, periodBins: 3, phaseOffset: -1, capacitySeries: gate}}
      semantics: {{arrivals: arrivals, served: served}}
",
        grid(9),
        konst("arrivals", &[10.0; 9]),
        konst("served", &[4.0; 9]),
        konst("gate", &[0.0, 0.0, 3.0, 9.0, 9.0, f64::NAN, 9.0, 9.0, 9.0]),
    );
    let (_, _, ev) = eval(&y);
    // Dispatch bins 2, 5, 8: out = min(4, 3) = 3; min(4, NaN→0) = 0; min(4, 9) = 4.
    let q = [10.0, 20.0, 27.0, 37.0, 47.0, 57.0, 67.0, 77.0, 83.0];
    assert_series(&get(&ev, "batch_queue"), &q, "queue");
}

#[test]
fn retry_echo_with_kernel_longer_than_grid() {
    let y = format!(
        "{}nodes:\n{}{}{}topology:\n  nodes:
    - id: PaymentAPI
      semantics: {{arrivals: arrivals, errors: errors, retryKernel: [0.5, 0.25, 0.125, 0.0625, 0.03125]}}
    - id: Twin
      semantics: {{arrivals: arrivals, errors: errors, failures: failures, retryKernel: [1, 1, 1, 1, 1, 1]}}
    - id: Empty
      semantics: {{errors: errors, retryKernel: []}}
",
        grid(3),
        konst("arrivals", &[100.0, 100.0, 100.0]),
        konst("errors", &[10.0, 20.0, 40.0]),
        konst("failures", &[1.0, 2.0, 4.0]),
    );
    let (_, _, ev) = eval(&y);
    // 10·.5 = 5; 20·.5 + 10·.25 = 12.5; 40·.5 + 20·.25 + 10·.125 = 26.25.
    assert_series(&get(&ev, "payment_api_retry_echo"), &[5.0, 12.5, 26.25], "echo of errors");
    // failures win over errors: running sums 1, 3, 7.
    assert_series(&get(&ev, "twin_retry_echo"), &[1.0, 3.0, 7.0], "echo of failures");
    assert_series(&get(&ev, "empty_retry_echo"), &[0.0, 0.0, 0.0], "empty kernel");
}

#[test]
fn retry_loop_through_a_lagged_echo_is_legal() {
    let y = format!(
        "{}nodes:\n{}  - {{id: arrivals, kind: expr, expr: \"base + retries\"}}
  - {{id: errors, kind: expr, expr: \"arrivals * 0.1\"}}
topology:
  nodes:
    - {{id: Svc, semantics: {{arrivals: arrivals, errors: errors, retryEcho: retries, retryKernel: [0, 1]}}}}
",
        grid(4),
        konst("base", &[100.0; 4]),
    );
    let (_, _, ev) = eval(&y);
    // retries[t] = errors[t−1]: 0, 10, 11, 11.1; arrivals = 100 + retries.
    assert_series(&get(&ev, "retries"), &[0.0, 10.0, 11.0, 11.1], "retries");
    assert_series(&get(&ev, "arrivals"), &[100.0, 110.0, 111.0, 111.1], "arrivals");
    assert!(ev.get("svc_retry_echo").is_none(), "synthesised under the name retryEcho gives");
}

#[test]
fn overflow_routed_to_other_queues() {
    // Declared out of order: the routing does not depend on declaration order.
    let y = format!(
        "{}nodes:\n{}{}{}{}{}topology:\n  nodes:
    - {{id: Spill, kind: queue, wipLimit: 10, wipOverflow: Dlq, semantics: {{arrivals: spill_in, served: spill_out}}}}
    - {{id: Dlq, kind: dlq, semantics: {{arrivals: zero, served: one}}}}
    - {{id: Main, kind: queue, wipLimit: 12, wipOverflow: Spill, semantics: {{arrivals: main_in, served: main_out}}}}
",
        grid(4),
        konst("main_in", &[10.0; 4]),
        konst("main_out", &[2.0; 4]),
        konst("spill_in", &[1.0; 4]),
        konst("spill_out", &[3.0; 4]),
        konst("zero", &[0.0; 4]) + &konst("one", &[1.0; 4]),
    );
    let (_, _, ev) = eval(&y);
    // Main: 8, 16→12 (+4), 20→12 (+8), 20→12 (+8).
    assert_series(&get(&ev, "main_queue"), &[8.0, 12.0, 12.0, 12.0], "main queue");
    assert_series(&get(&ev, "main_overflow"), &[0.0, 4.0, 8.0, 8.0], "main overflow");
    // Spill: in = 1 + [0, 4, 8, 8]; out 3: 0, 2, 8, 14→10 (+4).
    assert_series(&get(&ev, "spill_queue"), &[0.0, 2.0, 8.0, 10.0], "spill queue");
    assert_series(&get(&ev, "spill_overflow"), &[0.0, 0.0, 0.0, 4.0], "spill overflow");
    // Dlq: in = 0 + [0, 0, 0, 4]; out 1: 0, 0, 0, 3.
    assert_series(&get(&ev, "dlq_queue"), &[0.0, 0.0, 0.0, 3.0], "dlq queue");
    assert!(ev.get("dlq_overflow").is_none(), "no limit, no overflow series");
    // Reported arrivals are unchanged: throughput ratio is served / own arrivals (3 / 1).
    assert_series(&get(&ev, "spill_throughput_ratio"), &[3.0; 4], "spill throughput ratio");
}

#[test]
fn overflow_with_explicit_loss_goes_nowhere() {
    let y = format!(
        "{}nodes:\n{}{}topology:\n  nodes:
    - {{id: A, kind: queue, wipLimit: 5, wipOverflow: loss, semantics: {{arrivals: a_in, served: a_out}}}}
    - {{id: B, kind: queue, semantics: {{arrivals: a_out, served: a_out}}}}
",
        grid(3),
        konst("a_in", &[7.0; 3]),
        konst("a_out", &[1.0; 3]),
    );
    let (_, _, ev) = eval(&y);
    assert_series(&get(&ev, "a_queue"), &[5.0, 5.0, 5.0], "a queue");
    assert_series(&get(&ev, "a_overflow"), &[1.0, 6.0, 6.0], "a overflow");
    assert_series(&get(&ev, "b_queue"), &[0.0, 0.0, 0.0], "b queue");
}

#[test]
fn overflow_series_is_named_after_the_node() {
    // §6: `<snake(id)>_overflow`, also when queueDepth names the synthesised queue.
    let y = format!(
        "{}nodes:\n{}{}topology:\n  nodes:
    - {{id: Billing2, kind: queue, wipLimit: 1, semantics: {{arrivals: a, served: s, queueDepth: billing_queue}}}}
",
        grid(2),
        konst("a", &[3.0, 3.0]),
        konst("s", &[1.0, 1.0]),
    );
    let (_, _, ev) = eval(&y);
    assert_series(&get(&ev, "billing_queue"), &[1.0, 1.0], "named queue");
    assert_series(&get(&ev, "billing2_overflow"), &[1.0, 2.0], "overflow");
}

#[test]
fn edge_flows_with_weights_multiplier_and_lag() {
    let y = format!(
        "{}nodes:\n{}{}{}topology:
  nodes:
    - {{id: A, semantics: {{served: served_a}}}}
    - {{id: B, kind: queue, semantics: {{arrivals: one, served: zero}}}}
    - {{id: C, kind: sink}}
    - {{id: D, kind: external, semantics: {{served: served_a}}}}
  edges:
    - {{from: \"A:out\", to: B, weight: 3}}
    - {{source: A, target: \"C:in\", multiplier: 2, lag: 1, type: throughput, measure: served}}
    - {{from: D, to: B, weight: 0}}
",
        grid(4),
        konst("served_a", &[10.0, 20.0, 30.0, 40.0]),
        konst("one", &[1.0; 4]),
        konst("zero", &[0.0; 4]),
    );
    let (_, _, ev) = eval(&y);
    // served × 3 / (3 + 1) × 1.
    assert_series(&get(&ev, "edge_A_B_flow"), &[7.5, 15.0, 22.5, 30.0], "A -> B");
    // served[t − 1] × 1 / 4 × 2, 0 for t < 1.
    assert_series(&get(&ev, "edge_A_C_flow"), &[0.0, 5.0, 10.0, 15.0], "A -> C");
    // The only edge leaving D has weight 0: Σ = 0 gives 0.
    assert_series(&get(&ev, "edge_D_B_flow"), &[0.0; 4], "D -> B");
    // Edges never add to a target's arrivals.
    assert_series(&get(&ev, "b_queue"), &[1.0, 2.0, 3.0, 4.0], "B's queue");
    let edges: Vec<(String, String, f64)> =
        ev.compiled.topology.edges.iter().map(|e| (e.from.clone(), e.to.clone(), e.weight)).collect();
    assert_eq!(
        edges,
        vec![("A".into(), "B".into(), 3.0), ("A".into(), "C".into(), 1.0), ("D".into(), "B".into(), 0.0)]
    );
}

#[test]
fn constraint_member_of_two_constraints_takes_smallest_allocation() {
    let y = format!(
        "{}nodes:\n{}{}{}{}{}topology:
  nodes:
    - {{id: A, kind: queue, constraints: [cpu, io], semantics: {{arrivals: da, served: zero}}}}
    - {{id: B, kind: queue, constraints: [cpu], semantics: {{arrivals: db, served: zero}}}}
    - {{id: C, kind: queue, constraints: [io], semantics: {{arrivals: dc, served: zero}}}}
  constraints:
    - {{id: cpu, semantics: {{served: cpu_cap}}}}
    - {{id: io, semantics: {{served: io_cap}}}}
",
        grid(2),
        konst("da", &[30.0, 10.0]),
        konst("db", &[10.0, 10.0]),
        konst("dc", &[30.0, 10.0]) + &konst("zero", &[0.0, 0.0]),
        konst("cpu_cap", &[20.0, 100.0]),
        konst("io_cap", &[12.0, 100.0]),
    );
    let (_, _, ev) = eval(&y);
    // Bin 0: cpu gives A 20·30/40 = 15, io gives A 12·30/60 = 6 → A takes 6; B 20·10/40 = 5;
    // C 12·30/60 = 6. Bin 1: nothing binds.
    assert_series(&get(&ev, "a_queue"), &[6.0, 16.0], "A");
    assert_series(&get(&ev, "b_queue"), &[5.0, 15.0], "B");
    assert_series(&get(&ev, "c_queue"), &[6.0, 16.0], "C");
}

#[test]
fn non_finite_queue_terms_count_as_zero() {
    let y = format!(
        "{}nodes:\n{}{}{}topology:\n  nodes:\n    - {{id: Q, kind: queue, semantics: {{arrivals: a, served: s, errors: e}}}}\n",
        grid(4),
        konst("a", &[5.0, f64::NAN, 5.0, f64::INFINITY]),
        konst("s", &[1.0, 1.0, f64::NAN, 1.0]),
        konst("e", &[f64::NEG_INFINITY, 0.0, 1.0, 0.0]),
    );
    let (_, _, ev) = eval(&y);
    // 0+5-1-0 = 4; 4+0-1 = 3; 3+5-0-1 = 7; 7+0-1 = 6.
    assert_series(&get(&ev, "q_queue"), &[4.0, 3.0, 7.0, 6.0], "queue");
}

#[test]
fn queue_without_served_drains_at_capacity_and_self_names_the_synthesised_queue() {
    let y = format!(
        "{}nodes:\n{}{}topology:\n  nodes:
    - {{id: Drain, kind: queue, semantics: {{arrivals: a, capacity: cap, queueDepth: self}}}}
",
        grid(3),
        konst("a", &[5.0, 5.0, 1.0]),
        konst("cap", &[3.0, 3.0, 3.0]),
    );
    let (_, _, ev) = eval(&y);
    // 0+5−3 = 2, 2+5−3 = 4, 4+1−3 = 2.
    assert_series(&get(&ev, "drain_queue"), &[2.0, 4.0, 2.0], "queue");
    // Metrics that need served do not exist.
    for missing in ["drain_utilization", "drain_latency_min", "drain_throughput_ratio"] {
        assert!(ev.get(missing).is_none(), "`{missing}` must not exist");
    }
}

#[test]
fn wip_limit_series_wins_over_number() {
    let y = format!(
        "{}nodes:\n{}{}{}topology:\n  nodes:
    - {{id: W, kind: queue, wipLimit: 100, wipLimitSeries: lim, semantics: {{arrivals: a, served: s}}}}
",
        grid(3),
        konst("a", &[5.0; 3]),
        konst("s", &[1.0; 3]),
        konst("lim", &[2.0, f64::NAN, 6.0]),
    );
    let (_, _, ev) = eval(&y);
    // 4→2 (+2); NaN never clamps: 2+4 = 6; 10→6 (+4).
    assert_series(&get(&ev, "w_queue"), &[2.0, 6.0, 6.0], "queue");
    assert_series(&get(&ev, "w_overflow"), &[2.0, 0.0, 4.0], "overflow");
}

#[test]
fn shift_of_an_observed_queue_reads_its_initial_condition() {
    let y = format!(
        "{}nodes:\n{}{}{}  - {{id: prev, kind: expr, expr: \"SHIFT(backlog, 1)\"}}
topology:
  nodes:
    - {{id: Obs, kind: queue, initialCondition: {{queueDepth: 7}}, semantics: {{arrivals: a, served: s, queueDepth: backlog}}}}
",
        grid(3),
        konst("a", &[1.0; 3]),
        konst("s", &[1.0; 3]),
        konst("backlog", &[4.0, 5.0, 6.0]),
    );
    let (_, _, ev) = eval(&y);
    assert_series(&get(&ev, "prev"), &[7.0, 4.0, 5.0], "SHIFT reads initialCondition before bin 0");
    assert!(ev.get("obs_queue").is_none(), "an observed queue is not synthesised");
    // Latency uses the observed queue: 4 / 1 × 60.
    assert_series(&get(&ev, "obs_latency_min"), &[240.0, 300.0, 360.0], "latency");
}

// ---------------------------------------------------------------------------------------------
// Bad input: located errors.

/// The 1-based line of the first line of `yaml` that contains `needle`.
#[track_caller]
fn line_of(yaml: &str, needle: &str) -> u32 {
    match yaml.lines().position(|l| l.contains(needle)) {
        Some(i) => i as u32 + 1,
        None => panic!("`{needle}` not in the model"),
    }
}

/// Asserts code, a message fragment, the YAML path and the line of one diagnostic.
#[track_caller]
fn assert_located(yaml: &str, code: &str, message: &str, path: &str, line_needle: &str) {
    let d = load_err(yaml);
    let x = diag(&d, code);
    assert!(x.message.contains(message), "message `{}` lacks `{message}`", x.message);
    assert_eq!(x.path.as_deref(), Some(path), "path of {}", x.render());
    assert_eq!(x.line, Some(line_of(yaml, line_needle)), "line of {}", x.render());
}

fn two_queues(extra_a: &str, extra_b: &str) -> String {
    format!(
        "{}nodes:\n{}{}topology:
  nodes:
    - id: A
      kind: queue
{extra_a}      semantics: {{arrivals: a, served: s}}
    - id: B
      kind: queue
{extra_b}      semantics: {{arrivals: a, served: s}}
",
        grid(3),
        konst("a", &[1.0; 3]),
        konst("s", &[1.0; 3]),
    )
}

#[test]
fn error_edge_to_unknown_node() {
    let y = two_queues("", "") + "  edges:\n    - {from: A, to: Nope}\n";
    assert_located(
        &y,
        "unknown_reference",
        "edge endpoint `Nope` is not a topology node",
        "topology.edges[0] (A -> Nope)",
        "{from: A, to: Nope}",
    );
}

#[test]
fn error_unknown_semantics_role() {
    let y = format!(
        "{}nodes:\n{}topology:\n  nodes:\n    - id: A\n      semantics:\n        arrivals: a\n        arival: a\n",
        grid(3),
        konst("a", &[1.0; 3])
    );
    let d = load_err(&y);
    let x = diag(&d, "unknown_role");
    assert!(x.message.contains("unknown semantics role `arival`"), "{}", x.message);
    assert!(x.help.as_deref().unwrap_or("").contains("did you mean `arrivals`"), "{}", x.render());
    assert!(x.path.as_deref().unwrap_or("").contains("semantics.arival"), "{}", x.render());
    assert_eq!(x.line, Some(line_of(&y, "arival:")), "{}", x.render());
}

#[test]
fn error_overflow_cycle_even_without_limits() {
    // B has no limit; the declarations still form a cycle.
    let y = two_queues("      wipLimit: 5\n      wipOverflow: B\n", "      wipOverflow: A\n");
    let d = load_err(&y);
    let x = diag(&d, "overflow_cycle");
    assert!(x.message.contains("A -> B -> A"), "{}", x.render());
    assert_eq!(x.path.as_deref(), Some("topology.nodes[0] (id A)"), "{}", x.render());
    assert_eq!(x.line, Some(line_of(&y, "- id: A")), "{}", x.render());
    // A self-loop is a cycle too.
    let y = two_queues("      wipLimit: 5\n      wipOverflow: A\n", "");
    assert!(diag(&load_err(&y), "overflow_cycle").message.contains("A -> A"));
}

#[test]
fn error_overflow_target_without_synthesised_queue() {
    let y = two_queues("      wipLimit: 5\n      wipOverflow: Ghost\n", "");
    assert_located(&y, "unknown_reference", "`Ghost`", "topology.nodes[0] (id A)", "- id: A");
    let y = format!(
        "{}nodes:\n{}{}topology:\n  nodes:
    - {{id: A, kind: queue, wipLimit: 1, wipOverflow: S, semantics: {{arrivals: a, served: s}}}}
    - {{id: S, kind: service, semantics: {{arrivals: a, served: s}}}}
",
        grid(3),
        konst("a", &[1.0; 3]),
        konst("s", &[1.0; 3]),
    );
    let d = load_err(&y);
    assert!(diag(&d, "bad_overflow").message.contains("`S` has no synthesised queue"), "{}", d.render());
}

#[test]
fn error_dispatch_period_zero() {
    let y = two_queues("      dispatchSchedule: {kind: periodic, periodBins: 0}\n", "");
    assert_located(
        &y,
        "bad_value",
        "periodBins must be at least 1, got 0",
        "topology.nodes[0] (id A).dispatchSchedule.periodBins",
        "dispatchSchedule",
    );
}

#[test]
fn error_router_weights_must_sum_above_zero() {
    for routes in
        ["[{target: x, weight: 0}, {target: y, weight: 0}]", "[{target: x, weight: -1}, {target: y, weight: 2}]"]
    {
        let y = format!(
            "{}nodes:\n{}  - id: split\n    kind: router\n    router: {{inputs: {{queue: src}}, routes: {routes}}}\n",
            grid(2),
            konst("src", &[1.0, 2.0])
        );
        assert_located(
            &y,
            "bad_router",
            "finite weights ≥ 0 that sum to more than 0",
            "nodes[1] (id split)",
            "- id: split",
        );
    }
}

#[test]
fn error_constraint_naming_missing_node_or_undeclared_id() {
    let y = two_queues("      constraints: [pool]\n", "")
        + "  constraints:\n    - {id: pool, semantics: {served: nowhere}}\n";
    assert_located(
        &y,
        "unknown_reference",
        "unknown series `nowhere`",
        "topology.constraints[0] (id pool)",
        "id: pool",
    );
    let y = two_queues("      constraints: [ghost]\n", "");
    assert_located(
        &y,
        "unknown_reference",
        "lists constraint `ghost`, which topology.constraints does not declare",
        "topology.nodes[0] (id A)",
        "- id: A",
    );
}

#[test]
fn error_traffic_points_at_classes() {
    let key = "traffic";
    let y = format!("{}{key}: [gold, silver]\nnodes:\n{}", grid(2), konst("a", &[1.0, 2.0]));
    let d = load_err(&y);
    let x = diag(&d, "unsupported");
    assert!(x.message.contains("use `classes` and `classMix` (§6.1)"), "{}", x.render());
    assert_eq!(x.path.as_deref(), Some(key));
    assert_eq!(x.line, Some(line_of(&y, &format!("{key}:"))), "{}", x.render());
}

#[test]
fn error_edge_source_without_served() {
    let y = two_queues("", "") + "  edges:\n    - {from: A, to: B}\n";
    // Both queues have served; a sink does not.
    let y = y.replace("  edges:", "    - {id: S, kind: sink}\n  edges:\n    - {from: S, to: A}");
    assert_located(&y, "missing_key", "`S` has no served series", "topology.edges[0] (S -> A)", "{from: S, to: A}");
}

#[test]
fn error_duplicate_edge_and_series_collision() {
    let y = two_queues("", "") + "  edges:\n    - {from: A, to: B}\n    - {from: \"A:x\", to: B}\n";
    assert_located(
        &y,
        "duplicate_id",
        "duplicate edge A -> B",
        "topology.edges[1] (A:x -> B)",
        "{from: \"A:x\", to: B}",
    );
    // A node named like a synthesised series collides with it.
    let y = two_queues("", "")
        .replace("nodes:\n  - {id: a", "nodes:\n  - {id: a_queue, kind: const, values: [0]}\n  - {id: a");
    let d = load_err(&y);
    assert!(diag(&d, "duplicate_id").message.contains("`a_queue` is defined twice"), "{}", d.render());
}

#[test]
fn error_retry_kernel_without_errors_or_failures() {
    let y = format!(
        "{}nodes:\n{}topology:\n  nodes:\n    - {{id: A, semantics: {{arrivals: a, retryKernel: [0, 1]}}}}\n",
        grid(2),
        konst("a", &[1.0, 1.0])
    );
    assert_located(&y, "missing_key", "neither failures nor errors", "topology.nodes[0] (id A)", "{id: A");
}

#[test]
fn error_conflicting_initial_conditions() {
    let y = format!(
        "{}nodes:\n{}  - {{id: q, kind: expr, expr: \"SHIFT(q, 1) + a\", initial: 1}}
topology:
  nodes:
    - {{id: Obs, kind: queue, initialCondition: {{queueDepth: 2}}, semantics: {{arrivals: a, served: a, queueDepth: q}}}}
",
        grid(2),
        konst("a", &[1.0, 1.0]),
    );
    assert_located(&y, "initial_conflict", "queue `q` has initial 1", "topology.nodes[0] (id Obs)", "{id: Obs");
}

#[test]
fn error_retry_loop_with_same_bin_echo_is_a_cycle() {
    // A leading non-zero kernel coefficient reads errors in the same bin: errors → echo →
    // arrivals → errors is a same-bin cycle.
    let y = format!(
        "{}nodes:\n{}  - {{id: arrivals, kind: expr, expr: \"base + retries\"}}
  - {{id: errors, kind: expr, expr: \"arrivals * 0.1\"}}
topology:
  nodes:
    - {{id: Svc, semantics: {{arrivals: arrivals, errors: errors, retryEcho: retries, retryKernel: [0.5, 0.5]}}}}
",
        grid(2),
        konst("base", &[100.0; 2]),
    );
    let d = load_err(&y);
    let x = diag(&d, "cycle");
    assert!(x.message.starts_with("same-bin cycle: "), "{}", x.render());
    for id in ["arrivals", "errors", "retries"] {
        assert!(x.message.contains(id), "{}", x.render());
    }
}

// ---------------------------------------------------------------------------------------------
// Capacity inference (§7.2).

/// A saturating service: the queue builds while arrivals exceed `cap`, and
/// `served = min(Q[t−1] + arrivals, cap)` (arrivals up to capacity plus queue drain).
fn saturating(arrivals: &[f64], cap: f64) -> (Vec<f64>, Vec<f64>) {
    let mut q = Vec::new();
    let mut served = Vec::new();
    let mut prev = 0.0;
    for a in arrivals {
        let s = (prev + a).min(cap);
        prev = prev + a - s;
        served.push(s);
        q.push(prev);
    }
    (served, q)
}

fn inference_model(served: &[f64], queue: &[f64]) -> String {
    format!(
        "{}nodes:\n{}{}  - {{id: capacity_inferred, kind: expr, expr: \"infer_from_saturation(served, queue)\"}}\n",
        grid(served.len()),
        konst("served", served),
        konst("queue", queue),
    )
}

proptest! {
    #![proptest_config(config(0x5eed_0005))]

    /// A generated series with a known capacity infers exactly that capacity.
    #[test]
    fn inference_recovers_a_known_capacity(
        cap_cents in 100u32..=5000,
        arrivals in prop::collection::vec(0u32..=8000, 2..=60),
        burst in any::<prop::sample::Index>(),
    ) {
        let cap = cap_cents as f64 / 100.0;
        let mut arrivals: Vec<f64> = arrivals.into_iter().map(|c| c as f64 / 100.0).collect();
        // At least one bin exceeds capacity, so the queue builds somewhere.
        let i = burst.index(arrivals.len());
        arrivals[i] = cap + 1.0;
        let (served, queue) = saturating(&arrivals, cap);
        let (host, model, ev) = eval(&inference_model(&served, &queue));
        let inferred = get(&ev, "capacity_inferred");
        prop_assert!(inferred.iter().all(|c| *c == cap), "inferred {inferred:?}, capacity {cap}");
        let ws = host.warnings(&model, &ev).unwrap();
        prop_assert!(ws.iter().all(|w| w.code != "capacity_not_inferable"), "{ws:?}");
    }
}

#[test]
fn inference_of_a_never_saturated_series_is_nan_with_a_warning() {
    let arrivals = [3.0, 5.0, 2.0, 4.0, 0.0];
    let (served, queue) = saturating(&arrivals, 6.0);
    assert!(queue.iter().all(|q| *q == 0.0), "never saturated");
    let (host, model, ev) = eval(&inference_model(&served, &queue));
    assert!(get(&ev, "capacity_inferred").iter().all(|c| c.is_nan()));
    let ws = host.warnings(&model, &ev).unwrap();
    let w: Vec<_> = ws.iter().filter(|w| w.code == "capacity_not_inferable").collect();
    assert_eq!(w.len(), 1, "{ws:?}");
    assert_eq!(w[0].node_id, "capacity_inferred");
    assert_eq!(w[0].severity, flowtime::diag::Severity::Warning);
}

#[test]
fn inference_median_by_hand_and_initial_condition() {
    // Saturated bins (Q > 0 and Q ≥ Q[t−1]): 1 (3 ≥ 0), 2 (6 ≥ 3), 3 (6 ≥ 6); bin 4 drains.
    // served there: 10, 12, 20 → median 12 (the mean would be 14).
    let (_, _, ev) = eval(&inference_model(&[5.0, 10.0, 12.0, 20.0, 4.0], &[0.0, 3.0, 6.0, 6.0, 2.0]));
    assert!(get(&ev, "capacity_inferred").iter().all(|c| *c == 12.0));
    // Even count: mean of the two middle values (8 and 10 over bins 0, 1, 2, 3 → 9).
    let (_, _, ev) = eval(&inference_model(&[8.0, 10.0, 7.0, 12.0], &[1.0, 2.0, 3.0, 4.0]));
    assert!(get(&ev, "capacity_inferred").iter().all(|c| *c == 9.0));
    // A synthesised queue starting at 10 that drains: Q = 8, 6 — never Q ≥ Q[−1] = 10.
    let y = format!(
        "{}nodes:\n{}{}  - {{id: cap_inf, kind: expr, expr: \"infer_from_saturation(s, b_queue)\"}}
topology:
  nodes:
    - {{id: B, kind: queue, initialCondition: {{queueDepth: 10}}, semantics: {{arrivals: a, served: s}}}}
",
        grid(2),
        konst("a", &[1.0, 1.0]),
        konst("s", &[3.0, 3.0]),
    );
    let (host, model, ev) = eval(&y);
    assert_series(&get(&ev, "b_queue"), &[8.0, 6.0], "queue");
    assert!(get(&ev, "cap_inf").iter().all(|c| c.is_nan()), "initial condition 10 makes bin 0 draining");
    assert!(
        host.warnings(&model, &ev)
            .unwrap()
            .iter()
            .any(|w| w.code == "capacity_not_inferable" && w.node_id == "cap_inf")
    );
}

// ---------------------------------------------------------------------------------------------
// Incrementality through topology (§9).

/// Units: 6 consts (a_in, a_out, b_in, b_out, c_in, c_out), `pressure` (reads A's queue),
/// `bystander` (reads b_in), queue units A, B, C, and the derived metrics: latency and throughput
/// ratio for each queue (6). A's overflow goes to B. 17 units in all. The const series are
/// pairwise different: equal definitions would share one memoised unit (§9).
fn incremental_model(limit_a: &str, q0_a: &str) -> String {
    format!(
        "parameters:
  - {{name: lim_a, type: number, default: 12}}
  - {{name: q0_a, type: number, default: 0}}
{}nodes:
{}{}{}{}{}{}  - {{id: pressure, kind: expr, expr: \"a_queue / 10\"}}
  - {{id: bystander, kind: expr, expr: \"b_in * 2\"}}
topology:
  nodes:
    - id: A
      kind: queue
      wipLimit: {limit_a}
      wipOverflow: B
      initialCondition: {{queueDepth: {q0_a}}}
      semantics: {{arrivals: a_in, served: a_out}}
    - {{id: B, kind: queue, semantics: {{arrivals: b_in, served: b_out}}}}
    - {{id: C, kind: queue, wipLimit: 5, semantics: {{arrivals: c_in, served: c_out}}}}
",
        grid(6),
        konst("a_in", &[10.0; 6]),
        konst("a_out", &[4.0, 4.0, 4.0, 4.0, 4.0, 4.0]),
        konst("b_in", &[1.0; 6]),
        konst("b_out", &[2.0; 6]),
        konst("c_in", &[3.0; 6]),
        konst("c_out", &[0.5; 6]),
    )
}

/// A's queue, its latency, `pressure` (reads the queue), and through A's overflow B's queue and
/// B's latency. Throughput ratios read only served and arrivals; C and `bystander` are unrelated.
const CONE_OF_A: u64 = 5;
const UNITS: u64 = 17;

#[test]
fn changing_wip_limit_parameter_reevaluates_only_the_queue_cone() {
    let (mut host, mut m) = load(&incremental_model("\"{{lim_a}}\"", "\"{{q0_a}}\""));
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.accounting.nodes_total, UNITS);
    assert_eq!(ev.accounting.nodes_evaluated, UNITS);
    // A: 6, 12, 12 (+6), … ; overflow 0, 0, 6, 6, 6, 6.
    assert_series(&get(&ev, "a_queue"), &[6.0, 12.0, 12.0, 12.0, 12.0, 12.0], "A");
    assert_series(&get(&ev, "a_overflow"), &[0.0, 0.0, 6.0, 6.0, 6.0, 6.0], "A overflow");
    assert_series(&get(&ev, "b_queue"), &[0.0, 0.0, 5.0, 10.0, 15.0, 20.0], "B");

    host.set_param(&mut m, "lim_a", ParamValue::Number(9.0)).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, CONE_OF_A);
    assert_eq!(ev.accounting.nodes_reused, UNITS - CONE_OF_A);
    // A: 6, 12→9 (+3), 15→9 (+6), …; B: 0, 1+3−2 = 2, 2+7−2 = 7, 12, 17, 22.
    assert_series(&get(&ev, "a_queue"), &[6.0, 9.0, 9.0, 9.0, 9.0, 9.0], "A after");
    assert_series(&get(&ev, "b_queue"), &[0.0, 2.0, 7.0, 12.0, 17.0, 22.0], "B after");
    assert_series(&get(&ev, "pressure"), &[0.6, 0.9, 0.9, 0.9, 0.9, 0.9], "pressure after");

    // The same limit again is not a change.
    host.set_param(&mut m, "lim_a", ParamValue::Number(9.0)).unwrap();
    assert_eq!(host.evaluate(&m, None).unwrap().accounting.nodes_evaluated, 0);
}

#[test]
fn changing_initial_condition_parameter_reevaluates_only_the_queue_cone() {
    let (mut host, mut m) = load(&incremental_model("\"{{lim_a}}\"", "\"{{q0_a}}\""));
    host.evaluate(&m, None).unwrap();
    host.set_param(&mut m, "q0_a", ParamValue::Number(3.0)).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, CONE_OF_A);
    // A: 3+6 = 9, 15→12 (+3), 18→12 (+6), …; B: 0, 1+3−2 = 2, 2+7−2 = 7, …
    assert_series(&get(&ev, "a_queue"), &[9.0, 12.0, 12.0, 12.0, 12.0, 12.0], "A");
    assert_series(&get(&ev, "a_overflow"), &[0.0, 3.0, 6.0, 6.0, 6.0, 6.0], "A overflow");
    assert_series(&get(&ev, "b_queue"), &[0.0, 2.0, 7.0, 12.0, 17.0, 22.0], "B");

    // A change of Q that leaves the overflow bitwise equal stops at A's readers: the queue and
    // its overflow are one unit, but B reads only the overflow output.
    host.set_param(&mut m, "q0_a", ParamValue::Number(2.0)).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    // A: 8, 14→12 (+2), 18→12 (+6), …: overflow changes at bin 1 (3 → 2), so B is in.
    assert_eq!(ev.accounting.nodes_evaluated, CONE_OF_A);
    assert_series(&get(&ev, "a_overflow"), &[0.0, 2.0, 6.0, 6.0, 6.0, 6.0], "A overflow");
}

#[test]
fn queue_change_with_unchanged_overflow_stops_before_the_overflow_target() {
    // A drains to 0 at bin 1 whatever its initial depth (≤ 2), so only bin 0 of Q depends on it.
    let y = incremental_model("12", "\"{{q0_a}}\"")
        .replace(&konst("a_out", &[4.0; 6]), &konst("a_out", &[2.0, 20.0, 4.0, 4.0, 4.0, 4.0]));
    let (mut host, mut m) = load(&y);
    let base = host.evaluate(&m, None).unwrap();
    // q0 = 0: 8, max(0, 8+10−20) = 0, 6, 12, 18→12 (+6), 12 (+6).
    assert_series(&get(&base, "a_queue"), &[8.0, 0.0, 6.0, 12.0, 12.0, 12.0], "A, q0 = 0");
    host.set_param(&mut m, "q0_a", ParamValue::Number(1.5)).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    // q0 = 1.5: 9.5, max(0, −0.5) = 0, 6, …: only bin 0 of Q changes; the overflow is equal.
    assert_series(&get(&ev, "a_queue"), &[9.5, 0.0, 6.0, 12.0, 12.0, 12.0], "A, q0 = 1.5");
    assert_eq!(get(&ev, "a_overflow"), get(&base, "a_overflow"));
    assert_eq!(get(&ev, "b_queue"), get(&base, "b_queue"));
    // §9 allows at most the cone of A's unit (5). Re-evaluated: A's queue unit, A's latency and
    // `pressure`; B's queue reads only the unchanged overflow output, so it is not re-run.
    assert_eq!(ev.accounting.nodes_evaluated, 3);
}

#[test]
fn editing_wip_limit_and_initial_condition_in_text_reevaluates_only_the_queue_cone() {
    let (mut host, mut m) = load(&incremental_model("12", "0"));
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, UNITS);

    host.set_text(&mut m, &incremental_model("9", "0")).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, CONE_OF_A, "wipLimit 12 → 9");
    assert_series(&get(&ev, "a_queue"), &[6.0, 9.0, 9.0, 9.0, 9.0, 9.0], "A");
    assert_series(&get(&ev, "b_queue"), &[0.0, 2.0, 7.0, 12.0, 17.0, 22.0], "B");

    host.set_text(&mut m, &incremental_model("9", "2")).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, CONE_OF_A, "queueDepth 0 → 2");
    // A: 8, 14→9 (+5), 15→9 (+6); B: 0, 1+5−2 = 4, 4+7−2 = 9, …
    assert_series(&get(&ev, "a_queue"), &[8.0, 9.0, 9.0, 9.0, 9.0, 9.0], "A");
    assert_series(&get(&ev, "b_queue"), &[0.0, 4.0, 9.0, 14.0, 19.0, 24.0], "B");

    // C's limit: C's queue and latency only (nothing reads C's overflow).
    host.set_text(&mut m, &incremental_model("9", "2").replace("wipLimit: 5", "wipLimit: 4")).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, 2, "C's wipLimit 5 → 4");
    // C: 2.5, 5→4 (+1), 6.5→4 (+2.5), …
    assert_series(&get(&ev, "c_queue"), &[2.5, 4.0, 4.0, 4.0, 4.0, 4.0], "C");
}
