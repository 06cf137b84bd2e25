//! Generated benchmark models: the chain and topology documents that `benches/eval.rs`, the
//! tests and the instruction-count measurements of the cold path share, so every number about
//! "the 2,000-node chain" or "the 300-service topology" is about the same text.
//!
//! Both are pure functions of their sizes (no randomness), written in the flow style a person
//! would write by hand, with the value patterns chosen so that series stay bounded and finite.

use std::fmt::Write;

/// A chain of `nodes` expression nodes over `bins` bins.
///
/// `n0` is a const series (`(7t mod 13)`); node `i` (1 ≤ i ≤ N−2) reads node `i−1`: every fifth
/// node is a SHIFT queue `MAX(0, SHIFT(n_i, 1) + n_{i−1} − 4)` (a one-member feedback loop,
/// evaluated bin by bin, with an `initial`), the others `0.5 * n_{i−1} + 0.25 * SHIFT(n_{i−1}, 1)
/// + 1` (whole-series, with a lagged read). The last node is a
/// leaf `leaf = n_{N−2} * {{k}}` that nothing reads, so changing `k` re-evaluates one unit.
/// Every unit except `n0` reads the chain above it: changing `n0` re-evaluates everything.
pub fn chain(nodes: usize, bins: usize) -> String {
    assert!(nodes >= 3, "a chain needs a root, a link and a leaf");
    let mut y = String::with_capacity(nodes * 72 + bins * 3 + 256);
    y.push_str("# A generated chain model (flowtime::model::generate::chain).\n");
    let _ = writeln!(y, "grid: {{bins: {bins}, binSize: 1, binUnit: hours}}");
    y.push_str("parameters:\n  - {name: k, type: number, default: 2, description: Leaf multiplier}\n");
    const_node(&mut y, "n0", bins, |t| (t * 7) % 13);
    for i in 1..nodes - 1 {
        if i % 5 == 0 {
            let _ = writeln!(
                y,
                "  - {{id: n{i}, kind: expr, expr: \"MAX(0, SHIFT(n{i}, 1) + n{} - 4)\", initial: 0}}",
                i - 1
            );
        } else {
            let p = i - 1;
            let _ = writeln!(y, "  - {{id: n{i}, kind: expr, expr: \"0.5 * n{p} + 0.25 * SHIFT(n{p}, 1) + 1\"}}");
        }
    }
    let _ = writeln!(y, "  - {{id: leaf, kind: expr, expr: \"n{} * {{{{k}}}}\"}}", nodes - 2);
    y
}

/// A pipeline of `services` buffered services over `bins` bins, each fed by expression nodes.
///
/// Shared: `demand` (a const series) and the parameter `{{scale}}`. Service `i` has nodes
/// `in_i` (arrivals; service 0: `demand * {{scale}}`, later ones the previous service's served
/// plus a small constant), `cap_i` (a broadcast const) and `out_i = MIN(in_i + SHIFT(s<i>_queue,
/// 1), cap_i)` (served), which reads the queue the engine synthesises for topology node `S<i>`
/// (a `serviceWithBuffer` with a WIP limit, an SLA and derived metrics); and an edge from the
/// previous service. Per service the plan has the three nodes, the queue with its overflow (in
/// one feedback loop with `out_i`), utilisation, latency, throughput ratio and the edge flow.
pub fn topology(services: usize, bins: usize) -> String {
    assert!(services >= 1, "a topology needs a service");
    let mut y = String::with_capacity(services * 380 + bins * 3 + 512);
    y.push_str("# A generated topology model (flowtime::model::generate::topology).\n");
    let _ = writeln!(y, "grid: {{bins: {bins}, binSize: 5, binUnit: minutes}}");
    y.push_str("parameters:\n  - {name: scale, type: number, default: 1, min: 0, description: Demand multiplier}\n");
    const_node(&mut y, "demand", bins, |t| 40 + (t * 11) % 23);
    for i in 0..services {
        if i == 0 {
            y.push_str("  - {id: in_0, kind: expr, expr: \"demand * {{scale}}\"}\n");
        } else {
            let _ = writeln!(y, "  - {{id: in_{i}, kind: expr, expr: \"out_{} + {}\"}}", i - 1, i % 3);
        }
        let _ = writeln!(y, "  - {{id: cap_{i}, kind: const, values: [{}]}}", 45 + i % 7);
        let _ = writeln!(y, "  - {{id: out_{i}, kind: expr, expr: \"MIN(in_{i} + SHIFT(s{i}_queue, 1), cap_{i})\"}}");
    }
    y.push_str("topology:\n  nodes:\n");
    for i in 0..services {
        let _ = writeln!(
            y,
            "    - id: S{i}\n      kind: serviceWithBuffer\n      wipLimit: {}\n      semantics: {{arrivals: in_{i}, served: out_{i}, capacity: cap_{i}, slaMin: 30}}",
            500 + i % 11
        );
    }
    if services > 1 {
        y.push_str("  edges:\n");
        for i in 1..services {
            let _ = writeln!(y, "    - {{from: \"S{}:out\", to: \"S{i}:in\"}}", i - 1);
        }
    }
    y
}

/// `nodes:` and its first node, a const series `f(t)` of `bins` values.
fn const_node(y: &mut String, id: &str, bins: usize, f: impl Fn(usize) -> usize) {
    let _ = write!(y, "nodes:\n  - {{id: {id}, kind: const, values: [");
    for t in 0..bins {
        if t > 0 {
            y.push_str(", ");
        }
        let _ = write!(y, "{}", f(t));
    }
    y.push_str("]}\n");
}
