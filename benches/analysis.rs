//! Analysis benchmarks (issue 10), each a ratio against full re-evaluations measured in the same
//! run: 100-point sweeps of a leaf and a root parameter on the 1000-node × 8,760-bin chain of
//! `benches/db.rs` (with a pmf added to its last node) and on `order-pipeline`; Monte Carlo with
//! 1,000 samples of that leaf pmf; goal seek on `order-pipeline`.
//!
//! Baselines, measured first: a full re-evaluation (a `root` change, then every series fetched)
//! and one leaf change (a `leaf_k` change, then the last node fetched), as in `benches/db.rs`:
//! from "input set in memory" to "every changed series fetched", store commits not timed.
//! Analyses are timed whole (taking the target apart, preparation, every point, the result).
//!
//! Memory: the heap held after a 100-point root sweep is compared with the heap held before it
//! (an analysis keeps nothing: points are not memoised).
//!
//! Run with `cargo bench --bench analysis`; prints a Markdown table with the targets.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flowtime::analysis::{self, Common, Control, GoalSeek, Limits, MonteCarlo, Progress, Sweep, Vary};
use flowtime::host::{Host, OpenRequest, Target};
use flowtime::model::template::Supplied;

struct CountingAlloc;

static CURRENT: AtomicUsize = AtomicUsize::new(0);

#[expect(unsafe_code, reason = "a counting global allocator that forwards to System")]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwards to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            CURRENT.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwards to the system allocator; `ptr` came from it with `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_add(new_size, Ordering::Relaxed);
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const BINS: usize = 8760;
const N: usize = 1000;

/// The chain of `benches/db.rs`: node i reads i−1 and an earlier node; `root` feeds n0, `leaf_k`
/// the last node (which nothing reads), and so does the pmf `jitter`.
fn chain() -> String {
    let mut y = format!(
        "id: big\nversion: \"1\"\nparameters:\n  - {{name: root, type: number, default: 1}}\n  - {{name: leaf_k, type: number, default: 1}}\ngrid: {{bins: {BINS}, binSize: 1, binUnit: hours, start: \"2025-01-01T00:00:00Z\"}}\nnodes:\n  - {{id: load, kind: const, source: \"file:load.csv\"}}\n  - {{id: jitter, kind: pmf, pmf: {{values: [0, 1, 2], probabilities: [0.25, 0.5, 0.25]}}}}\n  - {{id: n0, kind: expr, expr: \"load * {{{{root}}}}\"}}\n"
    );
    for i in 1..N {
        let b = (i * 7919) % i;
        let extra = if i == N - 1 { " + {{leaf_k}} + jitter" } else { "" };
        y.push_str(&format!(
            "  - {{id: n{i}, kind: expr, expr: \"MOD(n{} + 2 * n{b}{extra} + {i}, 1048576)\"}}\n",
            i - 1
        ));
    }
    y
}

fn data_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let mut csv = String::from("bin_index,value\n");
        for t in 0..BINS {
            csv.push_str(&format!("{t},{}\n", (t * 37) % 101));
        }
        std::fs::write(d.path().join("load.csv"), csv).unwrap();
        d
    })
    .path()
}

fn open(text: &str, id: &str, version: &str, root: &Path, params: &[(&str, &str)]) -> Host {
    let mut host = Host::new();
    host.set_data_root(root);
    host.put_template(text, "bench.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: id.into(),
        template_version: version.into(),
        id: Some("s".into()),
        params: params.iter().map(|(k, v)| (k.to_string(), Supplied::Text(v.to_string()))).collect(),
        ..Default::default()
    })
    .unwrap();
    host.evaluate_target(&Target::parse("s"), None).unwrap();
    host
}

fn set(host: &mut Host, name: &str, v: f64) {
    host.set_session_params("s", &BTreeMap::from([(name.to_string(), Supplied::Text(v.to_string()))])).unwrap();
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Median time of evaluating `fetch` after setting `param`, over `runs` changes.
fn change(host: &mut Host, param: &str, fetch: Option<&[u32]>, runs: usize) -> Duration {
    let mut v = 1.0;
    median(
        (0..runs)
            .map(|_| {
                v += 1.0;
                set(host, param, v);
                let t = Instant::now();
                let ev = host.evaluate_target(&Target::parse("s"), fetch).unwrap();
                let d = t.elapsed();
                assert!(ev.accounting.nodes_evaluated >= 1);
                d
            })
            .collect(),
    )
}

/// Runs an analysis with `threads` workers and no evaluation budget; returns its wall time.
fn timed<T>(threads: usize, f: impl FnOnce(&Control<'_>) -> T) -> (T, Duration) {
    let cancel = AtomicBool::new(false);
    let progress = |_: &Progress| {};
    let ctl = Control {
        cancel: &cancel,
        progress: &progress,
        threads,
        limits: Limits { eval_budget: u64::MAX, max_points: 1_000_000 },
    };
    let t = Instant::now();
    let out = f(&ctl);
    (out, t.elapsed())
}

fn sweep(host: &mut Host, param: &str, from: f64, metric: &str, threads: usize) -> (Vec<u64>, Duration) {
    let req = Sweep {
        vary: vec![Vary { name: param.into(), values: (0..100).map(|i| from + i as f64 * 0.5).collect() }],
        metrics: vec![metric.into()],
        series: vec![],
    };
    let base = host.analysis_base(&Target::parse("s")).unwrap();
    let ((r, _), d) = timed(threads, |ctl| analysis::sweep(base, &Common::default(), &req, ctl).unwrap());
    (r.points.iter().map(|p| p.accounting.nodes_evaluated).collect(), d)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

struct Row {
    scenario: String,
    time: Duration,
    baseline: String,
    ratio: String,
    target: String,
    met: bool,
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
    let mut rows = Vec::new();

    // ---- 1000 × 8,760 chain ----
    let mut host = open(&chain(), "big", "1", data_dir(), &[]);
    let full = change(&mut host, "root", None, 5);
    let c = host.compiled_target(&Target::parse("s")).unwrap();
    let last = c.by_id[&format!("n{}", N - 1)];
    let leaf = change(&mut host, "leaf_k", Some(&[last]), 50);
    println!("baselines at {N} × {BINS}: full re-evaluation {}, one leaf change {}", ms(full), ms(leaf));

    let metric = format!("max(n{})", N - 1);
    let (evaluated, d) = (0..3)
        .map(|i| sweep(&mut host, "leaf_k", 10.0 + 100.0 * i as f64, &metric, threads))
        .min_by_key(|r| r.1)
        .unwrap();
    assert!(evaluated.iter().all(|e| *e == 1), "a leaf point evaluates one unit");
    let budget = leaf * 100 + Duration::from_millis(10);
    rows.push(Row {
        scenario: format!("sweep, leaf parameter, 100 points, {N} × {BINS}, {threads} threads"),
        time: d,
        baseline: format!("100 × leaf change + 10 ms = {}; 100 × full = {}", ms(budget), ms(full * 100)),
        ratio: format!(
            "{:.2} of the leaf budget; {:.0}× faster than 100 full",
            d.as_secs_f64() / budget.as_secs_f64(),
            (full * 100).as_secs_f64() / d.as_secs_f64()
        ),
        target: "≤ 100 × leaf + 10 ms, ≥ 1000× faster".into(),
        met: d <= budget && (full * 100).as_secs_f64() / d.as_secs_f64() >= 1000.0,
    });

    let held_before = CURRENT.load(Ordering::Relaxed);
    let (evaluated, seq) = sweep(&mut host, "root", 1000.0, &metric, 1);
    let held_after = CURRENT.load(Ordering::Relaxed);
    assert!(evaluated.iter().all(|e| *e == N as u64), "a root point evaluates every node (the pmf stays memoised)");
    println!(
        "heap held before a 100-point root sweep {:.1} MB, after {:.1} MB (one point's cone is {:.1} MB)",
        held_before as f64 / 1e6,
        held_after as f64 / 1e6,
        (N * BINS * 8) as f64 / 1e6
    );
    let (_, par) = sweep(&mut host, "root", 2000.0, &metric, threads);
    rows.push(Row {
        scenario: format!("sweep, root parameter, 100 points, {N} × {BINS}, 1 thread"),
        time: seq,
        baseline: format!("100 × full = {}", ms(full * 100)),
        ratio: format!("{:.2}× the baseline", seq.as_secs_f64() / (full * 100).as_secs_f64()),
        target: "≤ 100 × full".into(),
        met: seq <= full * 100,
    });
    rows.push(Row {
        scenario: "heap held after that sweep, minus before".into(),
        time: Duration::ZERO,
        baseline: format!("one point's cone = {:.1} MB", (N * BINS * 8) as f64 / 1e6),
        ratio: format!("{:+.2} MB", (held_after as f64 - held_before as f64) / 1e6),
        target: "< one point's cone (nothing kept)".into(),
        met: held_after < held_before + N * BINS * 8,
    });
    let speedup = seq.as_secs_f64() / par.as_secs_f64();
    rows.push(Row {
        scenario: format!("sweep, root parameter, 100 points, {N} × {BINS}, {threads} threads"),
        time: par,
        baseline: format!("1 thread = {}", ms(seq)),
        ratio: format!("{speedup:.2}× faster"),
        target: "≥ 1.8× on 2 cores".into(),
        met: speedup >= 1.8,
    });

    let mc = MonteCarlo {
        samples: 1000,
        seed: 1,
        series: vec![],
        metrics: vec![format!("mean(n{})", N - 1)],
        distributions: vec![],
    };
    let base = host.analysis_base(&Target::parse("s")).unwrap();
    let ((r, _), d) = timed(threads, |ctl| analysis::monte_carlo(base, &Common::default(), &mc, ctl).unwrap());
    assert_eq!(r.drawn, vec!["jitter".to_string()]);
    assert!(r.sample_accounting.iter().all(|a| a.nodes_evaluated == 2), "a sample evaluates the pmf and its reader");
    rows.push(Row {
        scenario: format!("Monte Carlo, leaf pmf, 1,000 samples, {N} × {BINS}, {threads} threads"),
        time: d,
        baseline: format!("1 s; 1,000 × full = {}", ms(full * 1000)),
        ratio: format!(
            "{:.2} s; {:.0}× faster than 1,000 full",
            d.as_secs_f64(),
            (full * 1000).as_secs_f64() / d.as_secs_f64()
        ),
        target: "≤ 1 s".into(),
        met: d <= Duration::from_secs(1),
    });
    drop(host);

    // ---- order-pipeline (288 bins) ----
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(repo.join("templates/order-pipeline.yaml")).unwrap();
    // Replay: `order_capacity` feeds only `order_served_modeled`, a leaf.
    let mut replay = open(&text, "order-pipeline", "1.0.0", repo, &[]);
    let full_op = change(&mut replay, "q0", None, 50);
    let (evaluated, d) = sweep(&mut replay, "order_capacity", 60.0, "max(order_served_modeled)", threads);
    assert!(evaluated.iter().all(|e| *e == 1));
    rows.push(Row {
        scenario: format!(
            "sweep, leaf parameter (replay order_capacity), 100 points, order-pipeline, {threads} threads"
        ),
        time: d,
        baseline: format!("100 × full = {}", ms(full_op * 100)),
        ratio: format!("{:.1}× faster", (full_op * 100).as_secs_f64() / d.as_secs_f64()),
        target: "faster than 100 full".into(),
        met: d < full_op * 100,
    });
    // What-if: served is modelled, so `q0` reaches the whole pipeline.
    let mut whatif = open(
        &text,
        "order-pipeline",
        "1.0.0",
        repo,
        &[("order_served_source", "order_served_modeled"), ("billing_served_source", "billing_served_modeled")],
    );
    let full_wi = change(&mut whatif, "q0", None, 50);
    let (_, d) = sweep(&mut whatif, "q0", 10.0, "max(billing_backlog)", threads);
    rows.push(Row {
        scenario: format!("sweep, root parameter (what-if q0), 100 points, order-pipeline, {threads} threads"),
        time: d,
        baseline: format!("100 × full = {}", ms(full_wi * 100)),
        ratio: format!("{:.2}× the baseline", d.as_secs_f64() / (full_wi * 100).as_secs_f64()),
        target: "≤ 100 × full".into(),
        met: d <= full_wi * 100,
    });
    let gs = GoalSeek {
        param: "order_capacity".into(),
        lo: 60.0,
        hi: 200.0,
        metric: "max(orders_backlog)".into(),
        target: 200.0,
        tolerance: Some(1e-6),
        ..Default::default()
    };
    let base = whatif.analysis_base(&Target::parse("s")).unwrap();
    let ((r, _), d) = timed(threads, |ctl| analysis::goal_seek(base, &Common::default(), &gs, ctl).unwrap());
    assert!(r.converged, "{}", r.message);
    let n = r.trace.len() as u32;
    rows.push(Row {
        scenario: format!("goal seek, order_capacity for a peak backlog of 200, order-pipeline ({n} evaluations)"),
        time: d,
        baseline: format!("{n} × full = {}", ms(full_wi * n)),
        ratio: format!("{:.2}× the baseline", d.as_secs_f64() / (full_wi * n).as_secs_f64()),
        target: "converges; ≈ evaluations × full".into(),
        met: r.converged,
    });

    println!("\n| scenario | time | baseline (same run) | ratio | target | met |\n|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.scenario,
            ms(r.time),
            r.baseline,
            r.ratio,
            r.target,
            if r.met { "yes" } else { "NO" }
        );
    }
    println!("\ngoal seek found order_capacity = {:.4} (peak {:.6})", r.value, r.achieved);
}
