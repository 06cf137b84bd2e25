//! Incrementality (§9), asserted by the accounting: a change re-evaluates exactly its downstream
//! cone, a recomputed series that is bitwise unchanged stops propagation, and deep chains do not
//! depend on the thread stack.

use std::collections::{BTreeMap, BTreeSet};

use flowtime::host::Host;
use flowtime::model::params::ParamValue;
use flowtime::model::template::Supplied;

/// A layered model: 10 const roots, then expr nodes each reading two earlier nodes.
fn dag_model(n: usize, bins: usize) -> (String, Vec<Vec<usize>>) {
    let mut y = format!("grid: {{bins: {bins}, binSize: 1, binUnit: hours}}\nnodes:\n");
    let mut reads = Vec::new();
    for i in 0..n {
        if i < 10 {
            let vals: Vec<String> = (0..bins).map(|t| ((i * 7 + t) % 13).to_string()).collect();
            y.push_str(&format!("  - {{id: n{i}, kind: const, values: [{}]}}\n", vals.join(", ")));
            reads.push(vec![]);
        } else {
            let a = i - 1 - (i * 31 % 7).min(i - 1);
            let b = (i * 17) % i;
            y.push_str(&format!("  - {{id: n{i}, kind: expr, expr: \"n{a} * 0.5 + n{b} / 3 + {i}\"}}\n"));
            reads.push(vec![a, b]);
        }
    }
    (y, reads)
}

fn cone(reads: &[Vec<usize>], root: usize) -> BTreeSet<usize> {
    let mut hit = BTreeSet::from([root]);
    for (i, r) in reads.iter().enumerate() {
        if r.iter().any(|d| hit.contains(d)) {
            hit.insert(i);
        }
    }
    hit
}

#[test]
fn changing_one_const_reevaluates_exactly_its_cone() {
    let (yaml, reads) = dag_model(1000, 24);
    let mut host = Host::new();
    let mut m = host.load_text(&yaml, "dag.yaml", &BTreeMap::new(), std::path::Path::new(".")).unwrap();
    let cold = host.evaluate(&m, None).unwrap();
    assert_eq!(cold.accounting.nodes_total, 1000);
    assert_eq!(cold.accounting.nodes_evaluated, 1000);

    let warm = host.evaluate(&m, None).unwrap();
    assert_eq!(warm.accounting.nodes_evaluated, 0, "nothing changed");

    for (round, root) in [3usize, 7, 3].into_iter().enumerate() {
        let values: Vec<f64> = (0..24).map(|t| (t * (round + 2)) as f64 + 0.25).collect();
        host.override_series(&mut m, &format!("n{root}"), values).unwrap();
        let ev = host.evaluate(&m, None).unwrap();
        let want = cone(&reads, root);
        assert_eq!(ev.accounting.nodes_evaluated as usize, want.len(), "round {round}: cone of n{root}");
        assert_eq!(ev.accounting.nodes_reused as usize, 1000 - want.len());
    }
}

#[test]
fn unchanged_result_stops_propagation() {
    let yaml = "grid: {bins: 4, binSize: 1, binUnit: hours}\n\
        parameters:\n  - {name: level, type: number, default: 5}\n\
        nodes:\n\
        \x20 - {id: c, kind: const, values: [\"{{level}}\"]}\n\
        \x20 - {id: clipped, kind: expr, expr: \"MAX(0, c - 100)\"}\n\
        \x20 - {id: d1, kind: expr, expr: \"clipped + 1\"}\n\
        \x20 - {id: d2, kind: expr, expr: \"d1 * 2\"}\n";
    let mut host = Host::new();
    let mut m = host.load_text(yaml, "m.yaml", &BTreeMap::new(), std::path::Path::new(".")).unwrap();
    host.evaluate(&m, None).unwrap();
    host.set_param(&mut m, "level", ParamValue::Number(6.0)).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    // c changes, clipped recomputes to the same bits, so d1 and d2 are not re-evaluated.
    assert_eq!(ev.accounting.nodes_evaluated, 2);
    assert_eq!(ev.get("d2").unwrap()[0], 2.0);
    // Setting the value it already has is not a change at all.
    host.set_param(&mut m, "level", ParamValue::Number(6.0)).unwrap();
    assert_eq!(host.evaluate(&m, None).unwrap().accounting.nodes_evaluated, 0);
    // A change that does cross the clip propagates through the whole cone.
    host.set_param(&mut m, "level", ParamValue::Number(150.0)).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, 4);
    assert_eq!(ev.get("d2").unwrap()[0], 102.0);
}

#[test]
fn parameter_in_expression_reevaluates_only_its_readers() {
    let yaml = "grid: {bins: 3, binSize: 1, binUnit: hours}\n\
        parameters:\n  - {name: k, type: number, default: 2}\n\
        nodes:\n\
        \x20 - {id: a, kind: const, values: [1, 2, 3]}\n\
        \x20 - {id: b, kind: expr, expr: \"a * 10\"}\n\
        \x20 - {id: scaled, kind: expr, expr: \"a * {{k}}\"}\n\
        \x20 - {id: total, kind: expr, expr: \"scaled + b\"}\n";
    let mut host = Host::new();
    let mut supplied = BTreeMap::new();
    supplied.insert("k".to_string(), Supplied::Text("3".into()));
    let mut m = host.load_text(yaml, "m.yaml", &supplied, std::path::Path::new(".")).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(&ev.get("total").unwrap()[..], &[13.0, 26.0, 39.0]);
    host.set_param(&mut m, "k", ParamValue::Number(4.0)).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, 2, "scaled and total");
    assert_eq!(&ev.get("total").unwrap()[..], &[14.0, 28.0, 42.0]);
}

/// Runs on a test thread (2 MiB stack) in debug builds.
#[test]
fn ten_thousand_node_chain_does_not_overflow_the_stack() {
    let n = 10_000;
    let mut y = String::from(
        "grid: {bins: 4, binSize: 1, binUnit: hours}\nnodes:\n  - {id: n0, kind: const, values: [1, 2, 3, 4]}\n",
    );
    for i in 1..n {
        y.push_str(&format!("  - {{id: n{i}, kind: expr, expr: \"n{} + 1\"}}\n", i - 1));
    }
    let mut host = Host::new();
    let mut m = host.load_text(&y, "chain.yaml", &BTreeMap::new(), std::path::Path::new(".")).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.get(&format!("n{}", n - 1)).unwrap()[0], n as f64);
    host.override_series(&mut m, "n0", vec![0.0; 4]).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, n as u64);
    assert_eq!(ev.get(&format!("n{}", n - 1)).unwrap()[3], (n - 1) as f64);
}

#[test]
fn parameter_cells_are_volatile_only_when_their_cone_is_small() {
    // 32 nodes in a chain; `root` feeds all of them, `tip` only the last one.
    let mut y = String::from(
        "grid: {bins: 2, binSize: 1, binUnit: hours}\nparameters:\n  - {name: root, type: number, default: 1}\n  - {name: tip, type: number, default: 1}\nnodes:\n  - {id: n0, kind: const, values: [\"{{root}}\"]}\n",
    );
    for i in 1..32 {
        let extra = if i == 31 { " + {{tip}}" } else { "" };
        y.push_str(&format!("  - {{id: n{i}, kind: expr, expr: \"n{} + 1{extra}\"}}\n", i - 1));
    }
    let mut host = Host::new();
    let m = host.load_text(&y, "m.yaml", &BTreeMap::new(), std::path::Path::new(".")).unwrap();
    let c = host.evaluate(&m, None).unwrap().compiled;
    use flowtime::engine::db::param_durability;
    assert_eq!(param_durability(&c, "tip"), salsa::Durability::LOW);
    assert_eq!(param_durability(&c, "root"), salsa::Durability::MEDIUM);
    assert_eq!(param_durability(&c, "unread"), salsa::Durability::MEDIUM);
}
