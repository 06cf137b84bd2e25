//! Evaluation benchmarks on the generated models of `flowtime::model::generate` (the text the
//! callgrind measurements use, see `examples/bench_model.rs`):
//! - `cold`: load + compile + evaluate every series of a chain (100 / 1,000 / 10,000 nodes ×
//!   288 / 8,760 bins) from scratch;
//! - `full_reevaluation`: every unit of a loaded chain re-evaluated after its root changed;
//! - `leaf_change`: one parameter change, fetching only the changed series (one unit);
//! - `validate`: what `flowtime validate FILE` does after reading the file (load, evaluate,
//!   warnings) on the 2,000-node chain and the 300-service topology × 288 bins: the median time
//!   is the instruction-free proxy of their callgrind totals;
//! - `topology_cold`: the topology shape at 1,000 / 10,000 services × 288 bins.
//!
//! Run with `cargo bench --bench eval`. Ratios in one run: `leaf_change` / `cold` is the
//! incremental speed-up, `full_reevaluation` / `cold` what a cold run pays beyond evaluation.

use std::collections::BTreeMap;
use std::path::Path;

use flowtime::host::{Host, Model};
use flowtime::model::generate;
use flowtime::model::params::ParamValue;

fn main() {
    divan::main();
}

fn load(text: &str) -> (Host, Model) {
    let mut host = Host::new();
    let m = host.load_text(text, "model.yaml", &BTreeMap::new(), Path::new(".")).unwrap();
    (host, m)
}

/// Load + compile + evaluate every series from scratch.
#[divan::bench(consts = [100, 1000, 10000], args = [288, 8760], sample_count = 5)]
fn cold<const N: usize>(bencher: divan::Bencher, bins: usize) {
    let text = generate::chain(N, bins);
    bencher.bench_local(|| {
        let (host, m) = load(&text);
        let ev = host.evaluate(&m, None).unwrap();
        assert_eq!(ev.accounting.nodes_evaluated as usize, N);
        ev
    });
}

/// Evaluation only (model already loaded and compiled): the full re-evaluation baseline.
#[divan::bench(consts = [100, 1000, 10000], args = [288, 8760], sample_count = 5)]
fn full_reevaluation<const N: usize>(bencher: divan::Bencher, bins: usize) {
    let text = generate::chain(N, bins);
    bencher
        .with_inputs(|| {
            let (mut host, mut m) = load(&text);
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
    let (mut host, mut m) = load(&generate::chain(N, bins));
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

/// `flowtime validate` after reading the file: load, evaluate everything, warnings.
fn validate(bencher: divan::Bencher, text: &str) {
    bencher.bench_local(|| {
        let (host, m) = load(text);
        let ev = host.evaluate(&m, None).unwrap();
        host.warnings(&m, &ev).unwrap().len()
    });
}

/// The 2,000-node chain × 288 bins of the callgrind measurement.
#[divan::bench(sample_count = 20)]
fn validate_chain_2000x288(bencher: divan::Bencher) {
    validate(bencher, &generate::chain(2000, 288));
}

/// The 300-service topology × 288 bins of the callgrind measurement.
#[divan::bench(sample_count = 20)]
fn validate_topology_300x288(bencher: divan::Bencher) {
    validate(bencher, &generate::topology(300, 288));
}

/// Load + compile + evaluate a generated topology from scratch.
#[divan::bench(args = [1000, 10000], sample_count = 5)]
fn topology_cold(bencher: divan::Bencher, services: usize) {
    let text = generate::topology(services, 288);
    bencher.bench_local(|| {
        let (host, m) = load(&text);
        host.evaluate(&m, None).unwrap()
    });
}
