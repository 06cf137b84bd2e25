//! Load test (issue 5): 32 concurrent gRPC clients issue 10,000 cached series queries on a
//! 1,000-node × 8,760-bin session and a variant, while a writer alters the variant every 100 ms.
//! Prints p50/p99 latency and throughput; every answer is checked against a fresh
//! single-threaded evaluation. Run with `cargo bench --bench load`.

#[path = "../tests/support/loadtest.rs"]
mod loadtest;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cfg = loadtest::LoadConfig {
        nodes: 1000,
        bins: 8760,
        clients: 32,
        queries: 10_000,
        write_every_ms: 100,
        window: 288,
    };
    let report = rt.block_on(loadtest::run_load(&cfg));
    println!("load: {report}");
    assert_eq!(report.mismatches, 0);
    assert_eq!(report.failures, 0);
}
