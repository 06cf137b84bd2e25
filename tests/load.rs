//! Concurrent clients against a real server while a writer alters a variant: every answer equals
//! a fresh single-threaded evaluation, and no request fails except retryable cancellations.
//! The full-size run (32 clients, 10,000 queries, 1,000 × 8,760) is `cargo bench --bench load`;
//! this test runs the same harness with bounded counts.

#[path = "support/loadtest.rs"]
mod loadtest;

use loadtest::{LoadConfig, run_load};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_queries_with_a_writer_match_fresh_evaluations() {
    let cfg = LoadConfig { nodes: 120, bins: 288, clients: 8, queries: 2000, write_every_ms: 5, window: 96 };
    let report = run_load(&cfg).await;
    eprintln!("{report}");
    assert_eq!(report.mismatches, 0, "answers differing from fresh evaluations");
    assert_eq!(report.failures, 0, "non-retryable failures");
    assert_eq!(report.ok + report.cancelled, cfg.queries);
    assert!(report.writes >= 2, "the writer ran ({} writes)", report.writes);
    assert!(report.ok > 0);
}
