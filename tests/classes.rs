//! Issue 16 acceptance: classes (§6.1). Per-class series through expressions, queues and
//! routers; totals unchanged; the well-mixed queue against a hand-written recursion; class
//! routes; incrementality of share changes by accounting; located errors.
//!
//! Expectations are computed independently of the engine: by hand, or by a re-implementation of
//! the §6.1 rule in the test.

use std::collections::BTreeMap;

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
    assert!(host.warnings(&model, &ev).iter().all(|w| w.code != "router_class_unrouted"));

    // Beta has nowhere to go: dropped, with a warning naming the router, class and bins.
    let yaml = yaml.replace("        - {target: general, classes: [Beta]}\n", "");
    let (host, model) = load(&yaml);
    let ev = eval_classes(&host, &model);
    assert_series(&get(&ev, "airport"), &[40.0; 3], "airport");
    let ws = host.warnings(&model, &ev);
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
