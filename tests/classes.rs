//! Issue 16 acceptance: classes (§6.1). Per-class series through expressions, queues and
//! routers; totals unchanged; the well-mixed queue against a hand-written recursion; class
//! routes; incrementality of share changes by accounting; located errors.
//!
//! Expectations are computed independently of the engine: by hand, or by a re-implementation of
//! the §6.1 rule in the test.

use flowtime::engine::Evaluation;
use flowtime::engine::db::ClassId;
use flowtime::host::{Host, Model};
use flowtime::model::params::ParamValue;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

use crate::topology::{assert_series, diag, get, grid, konst, load, load_err, yaml_list};

/// Full evaluation with every classed series' mix.
fn eval_classes(host: &Host, model: &Model) -> Evaluation {
    let mut ev = host.evaluate(model, None).unwrap_or_else(|d| panic!("does not evaluate:\n{}", d.render()));
    host.evaluate_mixes(model, &mut ev, None).unwrap_or_else(|d| panic!("mixes:\n{}", d.render()));
    ev
}

/// `id@class` of an evaluation with mixes.
#[track_caller]
fn per_class(ev: &Evaluation, id: &str, class: &str) -> Vec<f64> {
    let s = ev.compiled.by_id[id];
    let cid = if class == "_unattributed" {
        ClassId::Unattributed
    } else {
        let cp = ev.compiled.classes.as_ref().expect("classes");
        ClassId::Declared(cp.ids.iter().position(|c| c == class).expect("class"))
    };
    ev.class_series(s, cid).unwrap_or_else(|| panic!("`{id}` has no per-class series"))
}

/// Σ_c x@c = x for every classed series and bin, to 1e-9 · max(1, |x|).
#[track_caller]
fn assert_sums(ev: &Evaluation) {
    let cp = ev.compiled.classes.as_ref().expect("classes");
    let mut classed = 0;
    for (&s, x) in &ev.series {
        if cp.series_mix[s as usize].is_none() {
            continue;
        }
        classed += 1;
        let classes = ev.classes_of(s);
        assert!(!classes.is_empty(), "{} is classed but has no mix", ev.compiled.series_id(s));
        let parts: Vec<Vec<f64>> = (0..cp.k())
            .map(ClassId::Declared)
            .chain([ClassId::Unattributed])
            .map(|c| ev.class_series(s, c).expect("per-class series"))
            .collect();
        for t in 0..x.len() {
            let sum = parts.iter().fold(0.0, |a, p| a + p[t]);
            let ok = if x[t].is_nan() { sum.is_nan() } else { (sum - x[t]).abs() <= 1e-9 * x[t].abs().max(1.0) };
            assert!(ok, "{}[{t}]: Σ per class {sum} ≠ {}", ev.compiled.series_id(s), x[t]);
            for p in &parts {
                assert!(x[t].is_nan() || p[t] * x[t] >= -1e-12 * x[t].abs().max(1.0), "a class share is negative");
            }
        }
    }
    assert!(classed > 0, "no classed series");
}

const CLASSES: &str = "classes: [{id: Alpha}, {id: Beta, displayName: Beta flow}]\n";

#[test]
fn router_sends_each_class_its_way_and_drops_the_unrouted() {
    let yaml = format!(
        "{}{CLASSES}nodes:\n{}  - id: split\n    kind: router\n    router:\n      inputs: {{queue: demand}}\n      routes:\n        - {{target: airport, classes: [Alpha]}}\n        - {{target: general, classes: [Beta]}}\n",
        grid(3),
        "  - {id: demand, kind: const, values: [100], classMix: {Alpha: 0.4, Beta: 0.6}}\n"
    );
    let (host, model) = load(&yaml);
    let ev = eval_classes(&host, &model);
    assert_series(&get(&ev, "airport"), &[40.0; 3], "airport");
    assert_series(&get(&ev, "general"), &[60.0; 3], "general");
    assert_series(&per_class(&ev, "airport", "Alpha"), &[40.0; 3], "airport@Alpha");
    assert_series(&per_class(&ev, "airport", "Beta"), &[0.0; 3], "airport@Beta");
    assert_series(&per_class(&ev, "general", "Beta"), &[60.0; 3], "general@Beta");
    assert_sums(&ev);
    assert!(host.warnings(&model, &ev).unwrap().iter().all(|w| w.code != "router_class_unrouted"));

    // Beta has nowhere to go: dropped, with a warning naming the router, class and bins.
    let yaml = yaml.replace("        - {target: general, classes: [Beta]}\n", "");
    let (host, model) = load(&yaml);
    let ev = eval_classes(&host, &model);
    assert_series(&get(&ev, "airport"), &[40.0; 3], "airport");
    let ws = host.warnings(&model, &ev).unwrap();
    let w = ws.iter().find(|w| w.code == "router_class_unrouted").expect("router_class_unrouted");
    assert_eq!(w.node_id, "split");
    assert_eq!(w.bins, vec![0, 1, 2]);
    assert_eq!(w.value, Some(60.0));
    assert!(w.message.contains("Beta"), "{}", w.message);

    // Unlisted classes follow the routes without `classes`, split by weight.
    let yaml = format!(
        "{}{CLASSES}nodes:\n{}  - id: split\n    kind: router\n    router:\n      inputs: {{queue: demand}}\n      routes:\n        - {{target: a, classes: [Alpha]}}\n        - {{target: b, weight: 1}}\n        - {{target: c, weight: 3}}\n",
        grid(2),
        "  - {id: demand, kind: const, values: [100], classMix: {Alpha: 0.4, Beta: 0.6}}\n"
    );
    let (host, model) = load(&yaml);
    let ev = eval_classes(&host, &model);
    assert_series(&get(&ev, "a"), &[40.0; 2], "a");
    assert_series(&get(&ev, "b"), &[15.0; 2], "b");
    assert_series(&get(&ev, "c"), &[45.0; 2], "c");
    assert_series(&per_class(&ev, "c", "Beta"), &[45.0; 2], "c@Beta");
    assert_sums(&ev);
}

/// Two sources of different constant mixes into one queue: the well-mixed rule by hand.
#[test]
fn queue_matches_the_well_mixed_recursion() {
    let bins = 12;
    let a = [10.0, 0.0, 5.0, 20.0, 0.0, 0.0, 7.0, 3.0, 0.0, 0.0, 11.0, 2.0];
    let b = [0.0, 8.0, 5.0, 1.0, 0.0, 4.0, 0.0, 9.0, 0.0, 0.0, 0.0, 6.0];
    let served = [3.0, 6.0, 4.0, 5.0, 9.0, 2.0, 4.0, 30.0, 1.0, 0.0, 5.0, 4.0];
    let errors = [0.0, 1.0, 0.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let yaml = format!(
        "{}{CLASSES}nodes:\n  - {{id: a, kind: const, values: {}, classMix: {{Alpha: 3, Beta: 1}}}}\n  - {{id: b, kind: const, values: {}, classMix: {{Beta: 1}}}}\n  - {{id: arrivals, kind: expr, expr: \"a + b\"}}\n{}{}topology:\n  nodes:\n    - id: Q\n      kind: queue\n      initialCondition: {{queueDepth: 4}}\n      initialClassMix: {{Alpha: 1}}\n      semantics: {{arrivals: arrivals, served: served, errors: errors}}\n",
        grid(bins),
        yaml_list(&a),
        yaml_list(&b),
        konst("served", &served),
        konst("errors", &errors),
    );
    let (host, model) = load(&yaml);
    let ev = eval_classes(&host, &model);
    // The recursion of §6.1, written out: mixes as [Alpha, Beta].
    let (ma, mb) = ([0.75, 0.25], [0.0, 1.0]);
    let mut q_prev = 4.0;
    let mut m_prev = [1.0, 0.0];
    let mut q = vec![0.0; bins];
    let mut qc = [vec![0.0; bins], vec![0.0; bins]];
    let mut outc = [vec![0.0; bins], vec![0.0; bins]];
    let mut lossc = [vec![0.0; bins], vec![0.0; bins]];
    let mut inc = [vec![0.0; bins], vec![0.0; bins]];
    for t in 0..bins {
        let inflow = a[t] + b[t];
        let m_in = if inflow > 0.0 {
            [(a[t] * ma[0] + b[t] * mb[0]) / inflow, (a[t] * ma[1] + b[t] * mb[1]) / inflow]
        } else {
            [0.0, 0.0]
        };
        let avail = q_prev + inflow;
        let m = if avail > 0.0 {
            [(q_prev * m_prev[0] + inflow * m_in[0]) / avail, (q_prev * m_prev[1] + inflow * m_in[1]) / avail]
        } else {
            m_prev
        };
        q[t] = f64::max(0.0, q_prev + inflow - served[t] - errors[t]);
        for c in 0..2 {
            qc[c][t] = q[t] * m[c];
            outc[c][t] = served[t] * m[c];
            lossc[c][t] = errors[t] * m[c];
            inc[c][t] = a[t] * ma[c] + b[t] * mb[c];
        }
        q_prev = q[t];
        m_prev = m;
    }
    assert_series(&get(&ev, "q_queue"), &q, "Q");
    for (c, name) in ["Alpha", "Beta"].iter().enumerate() {
        assert_series(&per_class(&ev, "q_queue", name), &qc[c], &format!("Q@{name}"));
        assert_series(&per_class(&ev, "served", name), &outc[c], &format!("served@{name}"));
        assert_series(&per_class(&ev, "errors", name), &lossc[c], &format!("errors@{name}"));
        assert_series(&per_class(&ev, "arrivals", name), &inc[c], &format!("arrivals@{name}"));
        // Q@c[t] = Q@c[t−1] + in@c[t] − out@c[t] − loss@c[t] wherever the queue does not empty
        // below zero (here: every bin, as served never exceeds what is available).
        let mut prev = if c == 0 { 4.0 } else { 0.0 };
        for t in 0..bins {
            let rhs = prev + inc[c][t] - outc[c][t] - lossc[c][t];
            assert!(
                (qc[c][t] - rhs).abs() <= 1e-9 * rhs.abs().max(1.0),
                "{name} balance at {t}: {} vs {rhs}",
                qc[c][t]
            );
            prev = qc[c][t];
        }
    }
    assert_sums(&ev);
}

// ---------------------------------------------------------------------------------------------
// Random topologies with random mixes.

#[derive(Clone, Debug)]
struct Case {
    k: usize,
    bins: usize,
    /// s1, s2, s3 (unclassed), served1, errors1, served2, cap, served3.
    series: Vec<Vec<f64>>,
    /// Shares of s1 and s2 per class.
    shares: [Vec<f64>; 2],
    limit: f64,
    class_routes: bool,
    weights: (f64, f64),
    initial_mix: bool,
}

fn config(seed: u64, cases: u32) -> ProptestConfig {
    ProptestConfig { cases, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..ProptestConfig::default() }
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=4, 4usize..=16).prop_flat_map(|(k, bins)| {
        let v = || prop::collection::vec(prop_oneof![Just(0.0), 0.0..30.0f64], bins);
        let share = || prop::collection::vec(prop_oneof![Just(0.0), Just(1.0), 0.0..5.0f64], k);
        (
            prop::collection::vec(v(), 8),
            share(),
            share(),
            prop_oneof![Just(f64::INFINITY), 5.0..40.0f64],
            any::<bool>(),
            (0.1..3.0f64, 0.1..3.0f64),
            any::<bool>(),
        )
            .prop_map(move |(series, a, b, limit, class_routes, weights, initial_mix)| Case {
                k,
                bins,
                series,
                shares: [a, b],
                limit,
                class_routes,
                weights,
                initial_mix,
            })
    })
}

impl Case {
    fn mix(&self, which: usize) -> String {
        let parts: Vec<String> = self.shares[which].iter().enumerate().map(|(c, w)| format!("C{c}: {w:?}")).collect();
        format!(", classMix: {{{}}}", parts.join(", "))
    }

    /// The model, with or without its classes.
    fn yaml(&self, classes: bool) -> String {
        let mut y = grid(self.bins);
        if classes {
            let ids: Vec<String> = (0..self.k).map(|c| format!("{{id: C{c}}}")).collect();
            y += &format!("classes: [{}]\n", ids.join(", "));
        }
        let names = ["s1", "s2", "s3", "served1", "errors1", "served2", "cap", "served3"];
        y += "nodes:\n";
        for (i, (n, v)) in names.iter().zip(&self.series).enumerate() {
            let mix = if classes && i < 2 { self.mix(i) } else { String::new() };
            y += &format!("  - {{id: {n}, kind: const, values: {}{mix}}}\n", yaml_list(v));
        }
        y += "  - {id: e1, kind: expr, expr: \"s1 * 0.5 + SHIFT(s2, 1) + s3\"}\n";
        y += "  - {id: e2, kind: expr, expr: \"CONV(e1, [0.5, 0.3, 0.2]) + MAX(s2 - s3, 0)\"}\n";
        y += "  - {id: fb, kind: expr, expr: \"0.3 * SHIFT(fb, 1) + e2\", initial: 1}\n";
        y += "  - {id: arr1, kind: expr, expr: \"fb + q1_retry_echo\"}\n";
        y += "  - {id: arr2, kind: expr, expr: \"ra + s2 + SHIFT(q2_queue, 2)\"}\n";
        y += "  - {id: down, kind: expr, expr: \"served1 + rb * 2\"}\n";
        let (wa, wb) = self.weights;
        let routes = if classes && self.class_routes {
            format!("[{{target: ra, classes: [C0]}}, {{target: rb, weight: {wb:?}}}]")
        } else {
            format!("[{{target: ra, weight: {wa:?}}}, {{target: rb, weight: {wb:?}}}]")
        };
        y += &format!("  - {{id: r, kind: router, router: {{inputs: {{queue: s1}}, routes: {routes}}}}}\n");
        let limit = if self.limit.is_finite() {
            format!("wipLimit: {:?}, wipOverflow: Q2, ", self.limit)
        } else {
            String::new()
        };
        let imix = if classes && self.initial_mix { ", initialClassMix: {C0: 1}" } else { "" };
        y += &format!(
            "topology:\n  nodes:\n    - {{id: Q1, kind: queue, {limit}constraints: [c1], semantics: {{arrivals: arr1, served: served1, errors: errors1, retryKernel: [0, 0.3, 0.1]}}}}\n    - {{id: Q2, kind: serviceWithBuffer, constraints: [c1], initialCondition: {{queueDepth: 3}}{imix}, semantics: {{arrivals: arr2, served: served2}}}}\n    - {{id: S, kind: service, semantics: {{arrivals: down, served: served3}}}}\n  constraints: [{{id: c1, semantics: {{served: cap}}}}]\n"
        );
        y
    }
}

proptest! {
    #![proptest_config(config(0x5eed_0016, 300))]

    /// Σ_c x@c = x for every classed series and bin; without class routes, every total equals
    /// the classless model's bit for bit.
    #[test]
    fn per_class_series_sum_to_totals_and_totals_do_not_change(case in case()) {
        let (host, model) = load(&case.yaml(true));
        let ev = eval_classes(&host, &model);
        assert_sums(&ev);
        let cp = ev.compiled.classes.as_ref().expect("classes");
        // Classed through expressions, loops, queues (with overflow, constraints, retry echo),
        // borrowed served/errors and routers.
        for id in ["e2", "fb", "arr1", "q1_queue", "q1_retry_echo", "served1", "errors1", "q2_queue", "ra", "down", "served3", "q1_overflow"] {
            if id == "q1_overflow" && !case.limit.is_finite() {
                continue;
            }
            prop_assert!(cp.series_mix[ev.compiled.by_id[id] as usize].is_some(), "{id} is not classed");
        }
        if !case.class_routes {
            let (h0, m0) = load(&case.yaml(false));
            let plain = h0.evaluate(&m0, None).expect("classless evaluates");
            for (id, &s) in &ev.compiled.by_id {
                let a = &ev.series[&s];
                let b = plain.get(id).expect("same series ids");
                prop_assert!(a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits()), "{id} differs: {a:?} vs {b:?}");
            }
            prop_assert_eq!(ev.compiled.by_id.len(), plain.compiled.by_id.len());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Incrementality and errors.

const SHARED: &str = "parameters:\n  - {name: share_a, type: number, default: 1}\nclasses: [{id: A}, {id: B}]\n";

/// A chain of expressions and a queue fed by a source whose class share is a parameter, plus
/// an independent classed branch that the share does not reach.
fn share_model(class_route: bool) -> String {
    let route = if class_route {
        "  - {id: r, kind: router, router: {inputs: {queue: c3}, routes: [{target: ra, classes: [A]}, {target: rb}]}}\n  - {id: after_route, kind: expr, expr: \"ra * 2\"}\n"
    } else {
        ""
    };
    format!(
        "{}{SHARED}nodes:\n  - {{id: src, kind: const, values: [5, 7, 9, 2, 4, 6], classMix: {{A: \"{{{{share_a}}}}\", B: 1}}}}\n  - {{id: other, kind: const, values: [1, 2, 3, 4, 5, 6], classMix: {{B: 1}}}}\n  - {{id: c1, kind: expr, expr: \"src * 2\"}}\n  - {{id: c2, kind: expr, expr: \"c1 + SHIFT(c1, 1)\"}}\n  - {{id: c3, kind: expr, expr: \"c2 + 1\"}}\n  - {{id: lone, kind: expr, expr: \"other * 3\"}}\n  - {{id: served, kind: const, values: [4]}}\n{route}topology:\n  nodes:\n    - {{id: Q, kind: queue, semantics: {{arrivals: c3, served: served}}}}\n",
        grid(6)
    )
}

#[test]
fn a_share_change_reevaluates_mixes_only() {
    let (mut host, mut model) = load(&share_model(false));
    let ev = eval_classes(&host, &model);
    let total_units = ev.accounting.nodes_total;
    assert!(ev.mixes_evaluated > 0);
    host.set_param(&mut model, "share_a", ParamValue::Number(3.0)).expect("set");
    let mut ev = host.evaluate(&model, None).expect("evaluates");
    assert_eq!(ev.accounting.nodes_evaluated, 0, "a share change re-evaluated a total");
    assert_eq!(ev.accounting.nodes_reused, total_units);
    host.evaluate_mixes(&model, &mut ev, None).expect("mixes");
    // Downstream of src: src, c1, c2, c3, q_queue (and served, which borrows the queue's mix,
    // is the same mix). `other` and `lone` are not recomputed.
    assert_eq!(ev.mixes_evaluated, 5, "mixes outside the share's cone were recomputed");
    // The per-class series match a fresh evaluation with the new share.
    let fresh_text = share_model(false).replace("default: 1}", "default: 3}");
    let (h2, m2) = load(&fresh_text);
    let fresh = eval_classes(&h2, &m2);
    for id in ["src", "c1", "c2", "c3", "q_queue", "served", "lone"] {
        for class in ["A", "B"] {
            let a = per_class(&ev, id, class);
            let b = per_class(&fresh, id, class);
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{id}@{class}: {a:?} vs {b:?}");
        }
    }
    // A = 3/4 of src now.
    assert_series(&per_class(&ev, "src", "A"), &[3.75, 5.25, 6.75, 1.5, 3.0, 4.5], "src@A");
}

#[test]
fn a_share_change_reevaluates_totals_only_downstream_of_a_class_route() {
    let (mut host, mut model) = load(&share_model(true));
    let ev = host.evaluate(&model, None).expect("evaluates");
    // c3 = [11, 25, 33, 23, 13, 21] carries src's mix (A: 1/2), so A's half goes to ra.
    assert_series(&get(&ev, "ra"), &[5.5, 12.5, 16.5, 11.5, 6.5, 10.5], "ra");
    host.set_param(&mut model, "share_a", ParamValue::Number(3.0)).expect("set");
    let ev = host.evaluate(&model, None).expect("evaluates");
    // Only the class-routed targets and their reader: ra, rb, after_route.
    assert_eq!(ev.accounting.nodes_evaluated, 3);
    let c3 = get(&ev, "c3");
    let ra = get(&ev, "ra");
    let rb = get(&ev, "rb");
    for t in 0..6 {
        // c3 = 2 src + 2 src[t-1] + 1 carries src's mix weighted with the unclassed constant
        // ignored: A share 3/4 wherever src is classed (always here).
        assert!((ra[t] - c3[t] * 0.75).abs() < 1e-9, "ra[{t}] = {} vs {}", ra[t], c3[t] * 0.75);
        assert!((ra[t] + rb[t] - c3[t]).abs() < 1e-9);
    }
}

#[test]
fn bad_class_input_gets_located_errors() {
    let base = |classes: &str, node_extra: &str| {
        format!("{}{classes}nodes:\n  - {{id: a, kind: const, values: [1]{node_extra}}}\n", grid(2))
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (base(CLASSES, ", classMix: {Gamma: 1}"), "unknown_class", "nodes[0] (id a).classMix.Gamma"),
        (base(CLASSES, ", classMix: {Alpha: -1}"), "bad_share", "nodes[0] (id a).classMix.Alpha"),
        (base(CLASSES, ", classMix: {Alpha: .nan}"), "bad_share", "nodes[0] (id a).classMix.Alpha"),
        (base(CLASSES, ", classMix: {Alpha: .inf}"), "bad_share", "nodes[0] (id a).classMix.Alpha"),
        (base("", ", classMix: {Alpha: 1}"), "unknown_class", "nodes[0] (id a).classMix.Alpha"),
        (base("classes: [{id: A}, {id: A}]\n", ""), "duplicate_id", "classes[1].id"),
        (base("classes: [{id: _unattributed}]\n", ""), "duplicate_id", "classes[0].id"),
        (base("traffic: {arrivals: {}}\n", ""), "unsupported", "traffic"),
        (
            format!(
                "{}{CLASSES}nodes:\n  - {{id: a, kind: const, values: [1], classMix: {{Alpha: 1}}}}\n  - {{id: r, kind: router, router: {{inputs: {{queue: a}}, routes: [{{target: x, classes: [Alpha, Beta, Alpha]}}]}}}}\n",
                grid(2)
            ),
            "duplicate_class",
            "nodes[1] (id r).router.routes[0].classes[2]",
        ),
        (
            format!(
                "{}{CLASSES}nodes:\n  - {{id: a, kind: const, values: [1]}}\n  - {{id: r, kind: router, router: {{inputs: {{queue: a}}, routes: [{{target: x, classes: [Alpha]}}]}}}}\n",
                grid(2)
            ),
            "unclassed_router",
            "nodes[1] (id r).router.routes[0]",
        ),
    ];
    for (yaml, code, path) in cases {
        let d = load_err(&yaml);
        let x = diag(&d, code);
        assert_eq!(x.path.as_deref(), Some(path), "{code}: {}", d.render());
        assert!(x.line.is_some(), "{code} has no line: {}", d.render());
        assert!(x.help.is_some(), "{code} has no help: {}", d.render());
    }
    let many: Vec<String> = (0..65).map(|c| format!("{{id: c{c}}}")).collect();
    let d = load_err(&base(&format!("classes: [{}]\n", many.join(", ")), ""));
    assert!(diag(&d, "too_many_classes").message.contains("at most 64"), "{}", d.render());
    let traffic = load_err(&base("traffic: {}\n", ""));
    assert!(diag(&traffic, "unsupported").message.contains("§6.1"));
}

// ---------------------------------------------------------------------------------------------
// Through the API: GetSeries (ids and patterns with `@`), GetState, runs, rejected templates.

const API_TEMPLATE: &str = "id: classy\nversion: \"1\"\nparameters:\n  - {name: refund_share, type: number, default: 1}\ngrid: {bins: 4, binSize: 1, binUnit: hours, start: \"2026-01-01T00:00:00Z\"}\nclasses: [{id: order}, {id: refund}]\nnodes:\n  - {id: orders, kind: const, values: [6, 6, 3, 0], classMix: {order: 3, refund: \"{{refund_share}}\"}}\n  - {id: served, kind: const, values: [2]}\ntopology:\n  nodes:\n    - {id: Svc, kind: queue, semantics: {arrivals: orders, served: served}}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_class_series_through_the_api_and_in_runs() {
    use flowtime::client::Client;
    use flowtime::host::SharedHost;
    use flowtime::server::{ServerOptions, pb};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let host = Host::open(&dir.path().join("db.redb"), "test", root).unwrap();
    let opts = ServerOptions { runs_dir: dir.path().join("runs"), ..ServerOptions::default() };
    let local = Client::in_process(Arc::new(SharedHost::new(host)), opts).await;
    let c = &local.client;

    // A template with a bad class is rejected and stores nothing.
    let bad = API_TEMPLATE.replace("refund: \"{{refund_share}}\"", "refnd: 1");
    let e = c.templates().put_template(pb::PutTemplateRequest { text: bad, ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("unknown class `refnd`"), "{}", e.message());
    let listed = c.templates().list_templates(pb::ListTemplatesRequest {}).await.unwrap().into_inner();
    assert!(listed.templates.iter().all(|t| t.id != "classy"), "a rejected template was stored");

    c.templates()
        .put_template(pb::PutTemplateRequest { text: API_TEMPLATE.into(), ..Default::default() })
        .await
        .unwrap();
    c.sessions()
        .open_session(pb::OpenSessionRequest {
            template_id: "classy".into(),
            session_id: "s".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let target = Some(pb::Target { session: "s".into(), variant: String::new() });
    let get = |ids: Vec<&str>, pattern: &str| {
        let req = pb::GetSeriesRequest {
            target: target.clone(),
            ids: ids.into_iter().map(String::from).collect(),
            pattern: pattern.into(),
            ..Default::default()
        };
        let c = c.clone();
        async move { c.queries().get_series(req).await }
    };
    // Q = [4, 8, 9, 7]; its mix is orders' (3:1), so refund is a quarter.
    let r = get(vec![], "svc_queue@*").await.unwrap().into_inner();
    let ids: Vec<&str> = r.series.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["svc_queue@order", "svc_queue@refund"]);
    assert_eq!(r.series[1].class_id, "refund");
    assert_eq!(r.series[1].kind, "stock");
    assert_eq!(r.series[1].values, vec![1.0, 2.0, 2.25, 1.75]);
    assert_eq!(r.series[0].values, vec![3.0, 6.0, 6.75, 5.25]);
    let r = get(vec!["served@order", "svc_queue"], "").await.unwrap().into_inner();
    assert_eq!(r.series.len(), 2);
    assert_eq!(r.series[0].id, "svc_queue");
    assert_eq!(r.series[0].class_id, "");
    assert_eq!(r.series[1].values, vec![1.5; 4]);
    let r = get(vec![], "*@refund").await.unwrap().into_inner();
    let ids: Vec<&str> = r.series.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["orders@refund", "served@refund", "svc_queue@refund"]);
    // Totals-only patterns do not list per-class series.
    let r = get(vec![], "*").await.unwrap().into_inner();
    assert!(r.series.iter().all(|s| !s.id.contains('@')));
    assert_eq!(get(vec!["svc_queue@gold"], "").await.unwrap_err().code(), tonic::Code::NotFound);
    assert_eq!(get(vec!["svc_queue_latency_min@order"], "").await.unwrap_err().code(), tonic::Code::NotFound);

    // A share change: the totals are reused, the per-class series follow.
    c.sessions()
        .set_session_parameters(pb::SetSessionParametersRequest {
            session_id: "s".into(),
            parameters: [(
                "refund_share".to_string(),
                pb::ParamValue { kind: Some(pb::param_value::Kind::Number(3.0)) },
            )]
            .into(),
        })
        .await
        .unwrap();
    let r = get(vec!["svc_queue", "svc_queue@refund"], "").await.unwrap().into_inner();
    assert_eq!(r.info.as_ref().and_then(|i| i.accounting.as_ref()).map(|a| a.nodes_evaluated), Some(0));
    assert_eq!(r.series[1].values, vec![2.0, 4.0, 4.5, 3.5]);

    // GetState lists per-class series with the totals.
    let st = c
        .queries()
        .get_state(pb::GetStateRequest { target: target.clone(), at: Some(pb::get_state_request::At::Bin(2)) })
        .await
        .unwrap()
        .into_inner();
    let series = st.state.unwrap().series;
    assert_eq!(series["svc_queue"], 9.0);
    assert_eq!(series["svc_queue@order"], 4.5);
    assert_eq!(series["svc_queue@refund"], 4.5);

    // Compare per class: a variant with another share leaves every total identical by
    // construction and changes the per-class series.
    c.sessions()
        .create_variant(pb::CreateVariantRequest {
            session_id: "s".into(),
            name: "more-orders".into(),
            parameters: [(
                "refund_share".to_string(),
                pb::ParamValue { kind: Some(pb::param_value::Kind::Number(1.0)) },
            )]
            .into(),
            series: vec![],
        })
        .await
        .unwrap();
    let operand = |variant: &str| pb::Operand {
        kind: Some(pb::operand::Kind::Target(pb::Target { session: "s".into(), variant: variant.into() })),
    };
    let cmp = c
        .queries()
        .compare(pb::CompareRequest { a: Some(operand("")), b: Some(operand("more-orders")), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let row = |id: &str| cmp.series.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("no {id} in compare"));
    assert!(row("svc_queue").not_downstream_of_any_difference);
    let refund = row("svc_queue@refund");
    assert!(!refund.identical);
    assert_eq!(refund.bins_differ, 4);
    // Q = [4, 8, 9, 7]: refund is 1/2 of it in the session (share 3:3), 1/4 in the variant.
    assert_eq!(refund.max_abs_diff, 4.5 - 2.25);
    assert!(row("orders@order").bins_differ > 0);

    // A run writes series/<id>@<class>.csv, listed in the index with its class.
    let run = c.runs().create_run(pb::CreateRunRequest { target: target.clone() }).await.unwrap().into_inner();
    let rdir = std::path::PathBuf::from(&run.dir);
    let csv = std::fs::read_to_string(rdir.join("series/svc_queue@refund.csv")).unwrap();
    assert_eq!(csv, "bin_index,value\n0,2\n1,4\n2,4.5\n3,3.5\n");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rdir.join("series/index.json")).unwrap()).unwrap();
    let entry = index["series"].as_array().unwrap().iter().find(|e| e["id"] == "svc_queue@refund").expect("indexed");
    assert_eq!(entry["class"], "refund");
    assert_eq!(entry["path"], "series/svc_queue@refund.csv");
    let ids: Vec<&str> = index["series"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "index in id order");
}

const SWEEP_TEMPLATE: &str = "id: classy-sweep
version: \"1\"
parameters:
  - {name: refund_share, type: number, default: 1, min: 0}
  - {name: cap, type: number, default: 4, min: 0}
grid: {bins: 8, binSize: 1, binUnit: hours, start: \"2026-01-01T00:00:00Z\"}
classes: [{id: order}, {id: refund}]
nodes:
  - {id: orders, kind: const, values: [6, 6, 3, 0, 8, 2, 5, 5], classMix: {order: 3, refund: \"{{refund_share}}\"}}
  - {id: returns, kind: const, values: [0, 2, 2, 4, 0, 1, 3, 0], classMix: {refund: 1}}
  - {id: arrivals, kind: expr, expr: \"orders + returns\"}
  - {id: served, kind: expr, expr: \"{{cap}}\"}
  - id: split
    kind: router
    router:
      inputs: {queue: arrivals}
      routes:
        - {target: refund_desk, classes: [refund]}
        - {target: main_line}
  - {id: desk_load, kind: expr, expr: \"refund_desk * 2\"}
topology:
  nodes:
    - {id: Svc, kind: queue, semantics: {arrivals: arrivals, served: served}}
";

/// GetSeries sizes a reply by the per-class series it selects: an exact `x@c` is one series, a
/// pattern `x@g` as many as the classes `g` matches (`_unattributed` included when it does), so
/// a request for one part of a long series fits where all its parts would not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_series_sizes_per_class_replies_by_the_classes_selected() {
    use flowtime::client::Client;
    use flowtime::host::SharedHost;
    use flowtime::server::{ServerOptions, pb};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let host = Host::open(&dir.path().join("db.redb"), "test", root).unwrap();
    // 10,000 bins: 80,000 bytes a series; two fit in the limit, three (order, refund and
    // `_unattributed`) do not.
    let opts = ServerOptions { max_message_bytes: 200_000, ..ServerOptions::default() };
    let local = Client::in_process(Arc::new(SharedHost::new(host)), opts).await;
    let c = &local.client;
    let text = API_TEMPLATE.replace("bins: 4,", "bins: 10000,").replace("values: [6, 6, 3, 0]", "values: [6]");
    c.templates().put_template(pb::PutTemplateRequest { text, ..Default::default() }).await.unwrap();
    let open = pb::OpenSessionRequest { template_id: "classy".into(), session_id: "s".into(), ..Default::default() };
    c.sessions().open_session(open).await.unwrap();
    let get = |ids: &[&str], pattern: &str| {
        let req = pb::GetSeriesRequest {
            target: Some(pb::Target { session: "s".into(), variant: String::new() }),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            pattern: pattern.into(),
            ..Default::default()
        };
        let c = c.clone();
        async move { c.queries().get_series(req).await.map(|r| r.into_inner().series) }
    };
    let ids = |got: Vec<pb::Series>| got.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(get(&["svc_queue@refund"], "").await.unwrap()), ["svc_queue@refund"]);
    assert_eq!(ids(get(&["svc_queue@refund", "svc_queue@order"], "").await.unwrap()).len(), 2);
    assert_eq!(ids(get(&[], "svc_queue@ref*").await.unwrap()), ["svc_queue@refund"]);
    for pattern in ["svc_queue@*", "svc_queue@*r*"] {
        let e = get(&[], pattern).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{pattern}: {e:?}");
        assert!(e.message().contains("3 series × 10000 bins"), "{pattern}: {}", e.message());
    }
}

/// §6.1 in analyses: a sweep whose metrics and series are per-class (`max(svc_queue@refund)`,
/// downstream of a class route too) gives, at every point, what GetSeries of `x@c` gives on a
/// variant with the point's values; the share varies mixes only, the capacity values and mixes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_of_per_class_metrics_equals_get_series_of_variants() {
    use flowtime::client::Client;
    use flowtime::host::SharedHost;
    use flowtime::server::{ServerOptions, pb};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let host = Host::open(&dir.path().join("db.redb"), "test", root).unwrap();
    let local = Client::in_process(Arc::new(SharedHost::new(host)), ServerOptions::default()).await;
    let c = &local.client;
    c.templates()
        .put_template(pb::PutTemplateRequest { text: SWEEP_TEMPLATE.into(), ..Default::default() })
        .await
        .unwrap();
    let open =
        pb::OpenSessionRequest { template_id: "classy-sweep".into(), session_id: "s".into(), ..Default::default() };
    c.sessions().open_session(open).await.unwrap();
    let target = |variant: &str| Some(pb::Target { session: "s".into(), variant: variant.into() });
    let metrics =
        ["max(svc_queue@refund)", "sum(served@order)", "mean(desk_load@refund)", "final(svc_queue@_unattributed)"];
    let series = ["svc_queue@refund", "refund_desk@refund", "main_line@order"];
    let sweep = pb::SweepRequest {
        options: Some(pb::AnalysisOptions { target: target(""), ..Default::default() }),
        vary: vec![
            pb::Vary { name: "refund_share".into(), values: vec![0.0, 1.0, 3.0], range: None },
            pb::Vary { name: "cap".into(), values: vec![2.0, 5.0], range: None },
        ],
        metrics: metrics.iter().map(|m| m.to_string()).collect(),
        series: series.iter().map(|s| s.to_string()).collect(),
    };
    let mut stream = c.analysis().sweep(sweep).await.unwrap().into_inner();
    let mut result = None;
    while let Some(ev) = stream.message().await.unwrap() {
        if let Some(pb::sweep_event::Event::Result(r)) = ev.event {
            result = Some(r);
        }
    }
    let points = result.expect("a result").points;
    assert_eq!(points.len(), 6);
    let mut peaks = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let params: std::collections::HashMap<String, pb::ParamValue> = p
            .params
            .iter()
            .map(|x| (x.name.clone(), pb::ParamValue { kind: Some(pb::param_value::Kind::Number(x.value)) }))
            .collect();
        let name = format!("p{i}");
        let variant =
            pb::CreateVariantRequest { session_id: "s".into(), name: name.clone(), parameters: params, series: vec![] };
        c.sessions().create_variant(variant).await.unwrap();
        let mut ids: Vec<String> = series.iter().map(|s| s.to_string()).collect();
        ids.extend(["served@order", "desk_load@refund"].map(String::from));
        let req = pb::GetSeriesRequest { target: target(&name), ids, ..Default::default() };
        let got = c.queries().get_series(req).await.unwrap().into_inner().series;
        let of = |id: &str| got.iter().find(|s| s.id == id).unwrap_or_else(|| panic!("{id}")).values.clone();
        // The point's requested series are GetSeries of the same per-class ids, bit for bit.
        for (k, id) in series.iter().enumerate() {
            assert_eq!(p.series[k].id, *id);
            assert_eq!(p.series[k].values, of(id), "point {i}: {id}");
        }
        let q = of("svc_queue@refund");
        let max = q.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(p.metrics[0].value, max, "point {i}: max(svc_queue@refund)");
        assert_eq!(p.metrics[1].value, of("served@order").iter().sum::<f64>(), "point {i}: sum(served@order)");
        let load = of("desk_load@refund");
        assert_eq!(
            p.metrics[2].value,
            load.iter().sum::<f64>() / load.len() as f64,
            "point {i}: mean(desk_load@refund)"
        );
        // The queue starts empty and every source is classed: no flow of unknown class.
        assert_eq!(p.metrics[3].value, 0.0, "point {i}");
        peaks.push(max);
    }
    // The share and the capacity both move the refund part (not a constant). Points are
    // row-major (the share varies slowest).
    assert!(peaks[0] < peaks[2] && peaks[2] < peaks[4], "more refund share, more refunds queued: {peaks:?}");
    assert!((0..3).all(|i| peaks[2 * i] > peaks[2 * i + 1]), "more capacity, less queued: {peaks:?}");

    // A per-class metric or series of a series without classes, or of an unknown class, is
    // located, and said the same way in both fields and by GetSeries.
    let bad = |metric: Option<&str>, series: Option<&str>| pb::SweepRequest {
        options: Some(pb::AnalysisOptions { target: target(""), ..Default::default() }),
        vary: vec![pb::Vary { name: "cap".into(), values: vec![2.0], range: None }],
        metrics: metric.map(|m| format!("max({m})")).into_iter().collect(),
        series: series.map(String::from).into_iter().collect(),
    };
    for (id, says) in [
        ("svc_queue@refnd", "no class `refnd` in `svc_queue@refnd`"),
        ("svc_latency_min@order", "`svc_latency_min` carries no class, so `svc_latency_min@order` does not exist"),
    ] {
        for (req, field) in [(bad(Some(id), None), "metrics[0]"), (bad(Some("svc_queue"), Some(id)), "series[0]")] {
            let e = match c.analysis().sweep(req).await {
                Err(e) => e,
                Ok(s) => s.into_inner().message().await.unwrap_err(),
            };
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{id}: {e:?}");
            assert!(e.message().contains(says) && e.message().contains(field), "{id}: {}", e.message());
        }
        let req = pb::GetSeriesRequest { target: target(""), ids: vec![id.into()], ..Default::default() };
        let e = c.queries().get_series(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{id}: {e:?}");
        assert!(e.message().contains(says), "{id}: {}", e.message());
    }
}

/// Analysis points reuse the target's router targets with class routes exactly when the mixes
/// they read are the target's. A structural parameter that only a queue's `initialClassMix`
/// reads changes a mix and no value unit, so the router's targets downstream are a point's own
/// work: each point of a sweep gives what GetSeries gives on a variant with its value. A
/// parameter outside the router's cone leaves them to the target's memos: a point evaluates its
/// own cone only (the router's targets were once recomputed at every point, because their mix
/// was judged before the queue it reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_reuse_class_routes_exactly_when_their_mixes_are_the_targets() {
    use flowtime::client::Client;
    use flowtime::host::SharedHost;
    use flowtime::server::{ServerOptions, pb};
    use std::sync::Arc;

    const TEMPLATE: &str = "id: initial-mix-sweep
version: \"1\"
parameters:
  - {name: held_refunds, type: number, default: 0, min: 0}
  - {name: k, type: number, default: 1}
grid: {bins: 6, binSize: 1, binUnit: hours, start: \"2026-01-01T00:00:00Z\"}
classes: [{id: order}, {id: refund}]
nodes:
  - {id: orders, kind: const, values: [1, 1, 1, 1, 1, 1], classMix: {order: 1}}
  - {id: served, kind: const, values: [3, 3, 3, 3, 3, 3]}
  - {id: extra, kind: expr, expr: \"{{k}} * 2\"}
  - id: split
    kind: router
    router:
      inputs: {queue: served}
      routes:
        - {target: refund_desk, classes: [refund]}
        - {target: main_line}
topology:
  nodes:
    - {id: Svc, kind: queue, initialCondition: {queueDepth: 10},
       initialClassMix: {order: 1, refund: \"{{held_refunds}}\"},
       semantics: {arrivals: orders, served: served}}
";
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let host = Host::open(&dir.path().join("db.redb"), "test", root).unwrap();
    let local = Client::in_process(Arc::new(SharedHost::new(host)), ServerOptions::default()).await;
    let c = &local.client;
    c.templates().put_template(pb::PutTemplateRequest { text: TEMPLATE.into(), ..Default::default() }).await.unwrap();
    let open = pb::OpenSessionRequest {
        template_id: "initial-mix-sweep".into(),
        session_id: "s".into(),
        ..Default::default()
    };
    c.sessions().open_session(open).await.unwrap();
    let target = |variant: &str| Some(pb::Target { session: "s".into(), variant: variant.into() });
    let sweep = |name: &str, values: &[f64], metric: &str| {
        let req = pb::SweepRequest {
            options: Some(pb::AnalysisOptions { target: target(""), ..Default::default() }),
            vary: vec![pb::Vary { name: name.into(), values: values.to_vec(), range: None }],
            metrics: vec![metric.into()],
            series: vec!["refund_desk".into(), "main_line".into()],
        };
        async move {
            let mut stream = c.analysis().sweep(req).await.unwrap().into_inner();
            let mut result = None;
            while let Some(ev) = stream.message().await.unwrap() {
                if let Some(pb::sweep_event::Event::Result(r)) = ev.event {
                    result = Some(r);
                }
            }
            result.expect("a result").points
        }
    };
    let session = c
        .queries()
        .get_series(pb::GetSeriesRequest { target: target(""), pattern: "*".into(), ..Default::default() })
        .await
        .unwrap();
    let of = |id: &str| session.get_ref().series.iter().find(|s| s.id == id).unwrap().values.clone();
    for p in sweep("k", &[2.0, 3.0], "sum(extra)").await {
        assert_eq!(p.accounting.unwrap().nodes_evaluated, 1, "`extra` only");
        assert_eq!(p.series[0].values, of("refund_desk"));
        assert_eq!(p.series[1].values, of("main_line"));
    }

    let values = [0.0, 1.0, 4.0];
    let points = sweep("held_refunds", &values, "sum(refund_desk)").await;
    assert_eq!(points.len(), values.len());
    let mut desk = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let name = format!("p{i}");
        let parameters =
            [("held_refunds".to_string(), pb::ParamValue { kind: Some(pb::param_value::Kind::Number(values[i])) })]
                .into();
        let variant =
            pb::CreateVariantRequest { session_id: "s".into(), name: name.clone(), parameters, series: vec![] };
        c.sessions().create_variant(variant).await.unwrap();
        let ids = vec!["refund_desk".to_string(), "main_line".to_string()];
        let req = pb::GetSeriesRequest { target: target(&name), ids: ids.clone(), ..Default::default() };
        let got = c.queries().get_series(req).await.unwrap().into_inner().series;
        for (k, id) in ids.iter().enumerate() {
            assert_eq!(p.series[k].id, *id);
            assert_eq!(p.series[k].values, got[k].values, "point {i} (held_refunds = {}): {id}", values[i]);
        }
        desk.push(p.metrics[0].value);
    }
    // The queue starts with refunds only when the parameter says so, and drains them first bins.
    assert_eq!(desk[0], 0.0, "{desk:?}");
    assert!(0.0 < desk[1] && desk[1] < desk[2], "more held refunds, more at the desk: {desk:?}");
}

/// §6.1 in Watch, over a real socket: with `classes` set the initial event carries the
/// per-class series of the classes asked for (what GetSeries returns for them); a share change
/// changes no total but reports every part it moved, with its new values; a capacity change
/// reports the totals of its cone and their parts. Without `classes`, totals only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_per_class_series_when_asked() {
    use flowtime::client::Client;
    use flowtime::server::pb;

    let dir = tempfile::tempdir().unwrap();
    let server = crate::cli::Serve::start(&dir.path().join("db.redb"), dir.path());
    let c = Client::connect(&server.addr).await.unwrap();
    let text = API_TEMPLATE
        .replace("{id: served, kind: const, values: [2]}", "{id: served, kind: expr, expr: \"{{cap}}\"}")
        .replace("parameters:\n", "parameters:\n  - {name: cap, type: number, default: 2}\n");
    c.templates().put_template(pb::PutTemplateRequest { text, ..Default::default() }).await.unwrap();
    let open = pb::OpenSessionRequest { template_id: "classy".into(), session_id: "s".into(), ..Default::default() };
    c.sessions().open_session(open).await.unwrap();
    let target = Some(pb::Target { session: "s".into(), variant: String::new() });
    let watch = |classes: &str| {
        let req = pb::WatchRequest { target: target.clone(), classes: classes.into() };
        let c = c.clone();
        async move { c.watch().watch(req).await.unwrap().into_inner() }
    };
    let get = |ids: Vec<String>| {
        let req = pb::GetSeriesRequest { target: target.clone(), ids, ..Default::default() };
        let c = c.clone();
        async move {
            let r = c.queries().get_series(req).await.unwrap().into_inner();
            r.series.into_iter().map(|s| (s.id, s.values)).collect::<std::collections::BTreeMap<_, _>>()
        }
    };
    let set = |name: &str, v: f64| {
        let req = pb::SetSessionParametersRequest {
            session_id: "s".into(),
            parameters: [(name.to_string(), pb::ParamValue { kind: Some(pb::param_value::Kind::Number(v)) })].into(),
        };
        let c = c.clone();
        async move { c.sessions().set_session_parameters(req).await.unwrap() }
    };
    let ids = |ev: &pb::WatchEvent| ev.series.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    async fn next(s: &mut tonic::Streaming<pb::WatchEvent>) -> pb::WatchEvent {
        let m = tokio::time::timeout(std::time::Duration::from_secs(30), s.message()).await;
        m.expect("a watch event within 30 s").unwrap().expect("the stream goes on")
    }

    let mut totals = watch("").await;
    let first = next(&mut totals).await;
    assert!(first.series.iter().all(|s| !s.id.contains('@')), "without classes, totals only: {:?}", ids(&first));
    let mut refund = watch("refund").await;
    let first = next(&mut refund).await;
    assert!(first.initial);
    let parts: Vec<String> = ids(&first).into_iter().filter(|id| id.contains('@')).collect();
    assert_eq!(
        parts,
        ["orders@refund", "served@refund", "svc_queue@refund"],
        "the refund part of every classed series"
    );
    let truth = get(parts.clone()).await;
    for s in first.series.iter().filter(|s| s.id.contains('@')) {
        assert_eq!(s.values, truth[&s.id], "{}", s.id);
    }
    let mut every = watch("*").await;
    let all = next(&mut every).await;
    let all_parts: Vec<String> = ids(&all).into_iter().filter(|id| id.contains('@')).collect();
    assert_eq!(all_parts.len(), 9, "order, refund and _unattributed of three series: {all_parts:?}");

    // A share change: no total changes, every refund part does.
    set("refund_share", 3.0).await;
    let ev = next(&mut refund).await;
    assert!(!ev.initial);
    assert_eq!(ids(&ev), parts, "only the parts the share moved");
    assert_eq!(ev.accounting.unwrap().nodes_evaluated, 0, "no total recomputed");
    let truth = get(parts.clone()).await;
    for s in &ev.series {
        assert!(s.changed, "{}", s.id);
        assert_eq!(s.values, truth[&s.id], "{}", s.id);
    }

    // A capacity change: its totals and their parts.
    let revision = set("cap", 3.0).await.into_inner().revision;
    let ev = next(&mut refund).await;
    let listed = ids(&ev);
    assert!(listed.contains(&"served".to_string()) && listed.contains(&"svc_queue".to_string()), "{listed:?}");
    assert!(
        listed.contains(&"served@refund".to_string()) && listed.contains(&"svc_queue@refund".to_string()),
        "{listed:?}"
    );
    assert!(!listed.contains(&"orders@refund".to_string()), "orders did not move: {listed:?}");
    let truth = get(vec!["served@refund".into(), "svc_queue@refund".into()]).await;
    for s in ev.series.iter().filter(|s| s.id.contains('@')) {
        assert!(s.changed);
        assert_eq!(s.values, truth[&s.id], "{}", s.id);
    }
    // The totals watcher got no event for the share change (an empty cone): its next one is the
    // capacity's, totals only.
    let ev = next(&mut totals).await;
    assert_eq!(ev.revision, revision, "the share change sent a totals watcher nothing");
    assert!(ev.series.iter().all(|s| !s.id.contains('@')), "{:?}", ids(&ev));
    drop((totals, refund, every));
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// Telemetry with a `class` column.

#[test]
fn gold_class_column_gives_per_class_series_and_checks_totals() {
    use flowtime::telemetry::{Bytes, LoadOptions, load};
    let opts =
        LoadOptions { start_minutes: Some(29_329_920), bins: Some(2), bin_minutes: Some(5), ..Default::default() };
    // Svc: per-class rows only (totals are their sums); Db: totals and classes, bin 1 disagrees.
    let csv = "ts,node,class,arrivals,served,errors\n\
2025-10-07T00:00:00Z,Svc,order,6,5,0\n\
2025-10-07T00:00:00Z,Svc,refund,2,1,0\n\
2025-10-07T00:05:00Z,Svc,order,4,4,1\n\
2025-10-07T00:00:00Z,Db,,3,3,0\n\
2025-10-07T00:05:00Z,Db,,9,3,0\n\
2025-10-07T00:00:00Z,Db,order,3,3,0\n\
2025-10-07T00:05:00Z,Db,order,4,3,0\n";
    let l = load(&mut Bytes(csv.as_bytes()), &opts, &mut |_| {}).unwrap();
    let find = |name: &str| l.series.iter().find(|s| s.name() == name).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(find("Svc_arrivals@order").values, vec![6.0, 4.0]);
    assert_eq!(find("Svc_arrivals@refund").values, vec![2.0, 0.0]);
    assert_eq!(find("Svc_arrivals").values, vec![8.0, 4.0]);
    assert_eq!(find("Svc_errors").values, vec![0.0, 1.0]);
    assert_eq!(find("Db_arrivals").values, vec![3.0, 9.0]);
    let w: Vec<_> = l.warnings.iter().filter(|w| w.code == "class_total_mismatch").collect();
    assert_eq!(w.len(), 1, "{:?}", l.warnings);
    assert_eq!(w[0].node_id, "Db");
    assert_eq!(w[0].bins, vec![1]);
    assert_eq!(w[0].value, Some(5.0));
    assert!(w[0].message.contains("arrivals"));
    // A refund absent from a bin is no gap.
    assert!(l.warnings.iter().all(|w| w.code != "data_gap"), "{:?}", l.warnings);

    // NDJSON carries the class the same way; a class that cannot name a file is an error.
    let nd = "{\"ts\":\"2025-10-07T00:00:00Z\",\"node\":\"Svc\",\"class\":\"refund\",\"arrivals\":2,\"served\":1,\"errors\":0}\n";
    let l = load(&mut Bytes(nd.as_bytes()), &opts, &mut |_| {}).unwrap();
    assert_eq!(l.series.iter().find(|s| s.name() == "Svc_arrivals@refund").unwrap().values, vec![2.0, 0.0]);
    let bad = "ts,node,class,arrivals,served,errors\n2025-10-07T00:00:00Z,Svc,a/b,1,1,0\n";
    let e = load(&mut Bytes(bad.as_bytes()), &opts, &mut |_| {}).unwrap_err();
    assert!(e.render().contains("class `a/b`"), "{}", e.render());
}

/// The evaluation budget counts per-class work (§6.1): a sweep of a class share recomputes the
/// mixes downstream of it (`bins × k` values for each series a mix unit holds), and those count
/// per point, so a share sweep is bounded by the budget like any other, not only by `max_points`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_counts_the_mixes_a_share_sweep_recomputes() {
    use flowtime::client::Client;
    use flowtime::host::SharedHost;
    use flowtime::server::{ServerOptions, pb};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut host = Host::open(&dir.path().join("db.redb"), "test", root).unwrap();
    crate::cache::session(&mut host, SWEEP_TEMPLATE, "sweep.yaml", "classy-sweep", "s", &[]);
    // The metric's closure: the queue's totals, and its mixes.
    let plan = host.compiled_target(&flowtime::host::Target::parse("s")).unwrap();
    let q = plan.by_id["svc_queue"];
    let (closure, totals) = (plan.work(Some(&[q]), &[q]), plan.work(Some(&[q]), &[]));
    let k = plan.classes.as_ref().unwrap().k() as u64;
    let opts = ServerOptions { eval_budget: 4_000, ..ServerOptions::default() };
    let local = Client::in_process(Arc::new(SharedHost::new(host)), opts).await;
    let c = &local.client;
    let sweep = |points: usize| pb::SweepRequest {
        options: Some(pb::AnalysisOptions {
            target: Some(pb::Target { session: "s".into(), variant: String::new() }),
            ..Default::default()
        }),
        vary: vec![pb::Vary {
            name: "refund_share".into(),
            values: (0..points).map(|i| i as f64).collect(),
            range: None,
        }],
        metrics: vec!["max(svc_queue@refund)".into()],
        series: vec![],
    };
    let run = |points: usize| async move {
        let mut stream = c.analysis().sweep(sweep(points)).await?.into_inner();
        let mut n = 0;
        while let Some(ev) = stream.message().await? {
            if let Some(pb::sweep_event::Event::Result(r)) = ev.event {
                n = r.points.len();
            }
        }
        Ok::<usize, tonic::Status>(n)
    };
    assert_eq!(run(5).await.unwrap(), 5, "a few share points fit the budget");
    let e = run(1_000).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("1000 points ×"), "{}", e.message());
    assert!(e.message().contains(&format!("({closure} + 1000 points ×")), "{}", e.message());
    // The share changes none of the queue's totals: a point's work is mixes only (k units per
    // series), some of them (the returns' mix reads no share), and not nothing.
    let per_point: u64 =
        e.message().split("1000 points × ").nth(1).unwrap().split(')').next().unwrap().parse().unwrap();
    assert!(per_point > 0 && per_point % k == 0 && per_point < closure - totals, "{}", e.message());
}

/// A request for per-class series counts the mixes it computes against the evaluation budget
/// ([`flowtime::engine::plan::Compiled::work`]): with a budget that fits a total's closure and
/// not its mixes, GetSeries of `x` answers and GetSeries of `x@c` is RESOURCE_EXHAUSTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_class_request_counts_its_mixes_against_the_budget() {
    use flowtime::client::Client;
    use flowtime::host::{SharedHost, Target};
    use flowtime::server::{ServerOptions, pb};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut host = Host::open(&dir.path().join("db.redb"), "test", root).unwrap();
    crate::cache::session(&mut host, SWEEP_TEMPLATE, "sweep.yaml", "classy-sweep", "s", &[]);
    let c = host.compiled_target(&Target::parse("s")).unwrap();
    let q = c.by_id["svc_queue"];
    let (totals, with_mixes) = (c.work(Some(&[q]), &[]), c.work(Some(&[q]), &[q]));
    assert!(with_mixes > totals, "the queue's mix is work: {totals} vs {with_mixes}");
    let opts = ServerOptions { eval_budget: totals * c.grid.bins as u64, ..ServerOptions::default() };
    let local = Client::in_process(Arc::new(SharedHost::new(host)), opts).await;
    let get = |id: &str| {
        let req = pb::GetSeriesRequest {
            target: Some(pb::Target { session: "s".into(), variant: String::new() }),
            ids: vec![id.into()],
            ..Default::default()
        };
        let c = local.client.clone();
        async move { c.queries().get_series(req).await }
    };
    assert_eq!(get("svc_queue").await.unwrap().into_inner().series.len(), 1);
    let e = get("svc_queue@refund").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains(&format!("{with_mixes} series definitions")), "{}", e.message());
}
