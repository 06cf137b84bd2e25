//! Evaluation benchmarks: cold evaluation of generated chain models and a one-leaf parameter
//! change (fetching only the changed series), for 100 / 1,000 / 10,000 nodes × 288 / 8,760 bins.
//!
//! Run with `cargo bench --bench eval`. Compare `leaf_change` with `cold` of the same size: the
//! ratio is the incremental speed-up measured in one run.

use std::collections::BTreeMap;
use std::path::Path;

use flowtime::host::{Host, Model};
use flowtime::model::params::ParamValue;

fn main() {
    divan::main();
}

/// `n0` const, `n1..n{N-2}` a chain, and a leaf `leaf = n{N-2} * {{k}}` (a unit no other reads).
fn chain_model(nodes: usize, bins: usize) -> String {
    let vals: Vec<String> = (0..bins).map(|t| ((t * 7) % 13).to_string()).collect();
    let mut y = format!(
        "grid: {{bins: {bins}, binSize: 1, binUnit: hours}}\nparameters:\n  - {{name: k, type: number, default: 2}}\nnodes:\n  - {{id: n0, kind: const, values: [{}]}}\n",
        vals.join(",")
    );
    for i in 1..nodes - 1 {
        y.push_str(&format!("  - {{id: n{i}, kind: expr, expr: \"n{} * 0.5 + 1\"}}\n", i - 1));
    }
    y.push_str(&format!("  - {{id: leaf, kind: expr, expr: \"n{} * {{{{k}}}}\"}}\n", nodes - 2));
    y
}

fn load(nodes: usize, bins: usize) -> (Host, Model) {
    let mut host = Host::new();
    let m = host.load_text(&chain_model(nodes, bins), "chain.yaml", &BTreeMap::new(), Path::new(".")).unwrap();
    (host, m)
}

/// Load + compile + evaluate every series from scratch.
#[divan::bench(consts = [100, 1000, 10000], args = [288, 8760], sample_count = 5)]
fn cold<const N: usize>(bencher: divan::Bencher, bins: usize) {
    let text = chain_model(N, bins);
    bencher.bench_local(|| {
        let mut host = Host::new();
        let m = host.load_text(&text, "chain.yaml", &BTreeMap::new(), Path::new(".")).unwrap();
        let ev = host.evaluate(&m, None).unwrap();
        assert_eq!(ev.accounting.nodes_evaluated as usize, N);
        ev
    });
}

/// Evaluation only (model already loaded and compiled): the full re-evaluation baseline.
#[divan::bench(consts = [100, 1000, 10000], args = [288, 8760], sample_count = 5)]
fn full_reevaluation<const N: usize>(bencher: divan::Bencher, bins: usize) {
    bencher
        .with_inputs(|| {
            let (mut host, mut m) = load(N, bins);
            host.evaluate(&m, None).unwrap();
            // Invalidate everything: the root feeds every node.
            host.override_series(&mut m, "n0", vec![1.0; bins]).unwrap();
            (host, m)
        })
        .bench_local_values(|(host, m)| {
            let ev = host.evaluate(&m, None).unwrap();
            assert_eq!(ev.accounting.nodes_evaluated as usize, N);
            (host, m, ev)
        });
}

/// Change the leaf's parameter, then fetch the leaf: one unit re-evaluates.
#[divan::bench(consts = [100, 1000, 10000], args = [288, 8760], sample_count = 20)]
fn leaf_change<const N: usize>(bencher: divan::Bencher, bins: usize) {
    let (mut host, mut m) = load(N, bins);
    host.evaluate(&m, None).unwrap();
    let c = host.compiled(&m).unwrap();
    let leaf = c.by_id["leaf"];
    let mut k = 2.0;
    bencher.bench_local(|| {
        k += 1.0;
        host.set_param(&mut m, "k", ParamValue::Number(k)).unwrap();
        let ev = host.evaluate(&m, Some(&[leaf])).unwrap();
        assert_eq!(ev.accounting.nodes_evaluated, 1);
    });
}
