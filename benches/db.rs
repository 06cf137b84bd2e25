//! Incremental database benchmarks (issue 4): generated models of 1,000 and 10,000 nodes ×
//! 8,760 bins in a session. Cold evaluation; one-leaf, mid-chain and root parameter changes
//! (each fetching exactly the changed series); variant creation + fetch of one series; reopen of
//! a database file + first query. The root change re-evaluates every node: it is the full
//! re-evaluation baseline for the others, measured in the same run.
//!
//! Before the timings it prints, per size:
//! - the peak heap during a cold evaluation as a ratio of the raw bytes of all series (target
//!   ≤ 1.5×);
//! - `full re-evaluation / cold`: a root change re-evaluating every node, against a cold session
//!   (store the template, open, evaluate everything), medians of the same run (target ≤ 0.7×);
//! - `store template + session open + first full query / one-shot`: storing the template,
//!   opening a session on it and fetching every series, against loading the same text as a
//!   one-shot model and evaluating it (target ≤ 1.2×).
//!
//! - issue 15, the result cache: `reopen + full query` (open the file again and fetch every
//!   series) with the cache and without it, against a cold session (target ≤ 0.2× with the
//!   cache); and a one-leaf change on a file-backed session with the cache on against the same
//!   with it off, alternating samples in one run (target ≤ 1.2×).
//!
//! Run with `cargo bench --bench db`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flowtime::host::cache::{CacheConfig, DEFAULT_MAX_BYTES};
use flowtime::host::{Host, OpenRequest, Target};
use flowtime::model::template::Supplied;

struct PeakAlloc;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[expect(unsafe_code, reason = "a counting global allocator that forwards to System")]
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwards to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
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
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

const BINS: usize = 8760;

/// Node i reads i−1 and an earlier node; `root` feeds n0, `mid` node N/2, `leaf_k` the last
/// node (which nothing reads). Integer arithmetic modulo 2^20 keeps values exact.
fn template(n: usize) -> String {
    let mut y = format!(
        "id: big\nversion: \"1\"\nparameters:\n  - {{name: root, type: number, default: 1}}\n  - {{name: mid, type: number, default: 1}}\n  - {{name: leaf_k, type: number, default: 1}}\ngrid: {{bins: {BINS}, binSize: 1, binUnit: hours, start: \"2025-01-01T00:00:00Z\"}}\nnodes:\n  - {{id: load, kind: const, source: \"file:load.csv\"}}\n  - {{id: n0, kind: expr, expr: \"load * {{{{root}}}}\"}}\n"
    );
    for i in 1..n {
        let b = (i * 7919) % i;
        let extra = if i == n / 2 {
            " + {{mid}}"
        } else if i == n - 1 {
            " + {{leaf_k}}"
        } else {
            ""
        };
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

fn session(host: &mut Host, n: usize) {
    host.set_data_root(data_dir());
    host.put_template(&template(n), "big.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "big".into(),
        template_version: "1".into(),
        id: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
}

fn target() -> Target {
    Target::parse("s")
}

fn set(host: &mut Host, name: &str, v: f64) {
    host.set_session_params("s", &BTreeMap::from([(name.to_string(), Supplied::Text(v.to_string()))])).unwrap();
}

/// The sizes `main` measures: `DB_BENCH_NODES=1000` limits them (the 10,000-node result-cache
/// measurements write ~700 MB of entries per database).
fn sizes() -> Vec<usize> {
    match std::env::var("DB_BENCH_NODES") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => vec![1000, 10_000],
    }
}

fn main() {
    for n in sizes() {
        let before = CURRENT.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let mut host = Host::new();
        session(&mut host, n);
        let ev = host.evaluate_target(&target(), None).unwrap();
        let raw = (n + 1) * BINS * 8;
        let peak = PEAK.load(Ordering::Relaxed) - before;
        let held = CURRENT.load(Ordering::Relaxed) - before;
        println!(
            "memory {n} nodes × {BINS} bins: raw series {:.1} MB, peak heap during cold evaluation {:.1} MB ({:.2}× raw), held after {:.1} MB ({:.2}× raw)",
            raw as f64 / 1e6,
            peak as f64 / 1e6,
            peak as f64 / raw as f64,
            held as f64 / 1e6,
            held as f64 / raw as f64
        );
        drop(ev);
    }
    for n in sizes() {
        ratios(n);
    }
    divan::main();
}

/// The median of `runs` timings of `f` (after `setup`, which is not timed).
fn median<S, T>(runs: usize, mut setup: impl FnMut() -> S, mut f: impl FnMut(S) -> T) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = setup();
            let start = Instant::now();
            let out = f(s);
            let d = start.elapsed();
            drop(out);
            d
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// The issue 14 ratios, measured in one run.
fn ratios(n: usize) {
    let runs = if n >= 10_000 { 3 } else { 7 };
    let cold = median(
        runs,
        || (),
        |()| {
            let mut host = Host::new();
            session(&mut host, n);
            let ev = host.evaluate_target(&target(), None).unwrap();
            (host, ev)
        },
    );
    let v = std::cell::Cell::new(1.0);
    let full = median(
        runs,
        || {
            let mut host = warm(n);
            v.set(v.get() + 1.0);
            set(&mut host, "root", v.get());
            host
        },
        |host| {
            let ev = host.evaluate_target(&target(), None).unwrap();
            assert_eq!(ev.accounting.nodes_evaluated as usize, n);
            (host, ev)
        },
    );
    let text = template(n);
    let one_shot = median(
        runs,
        || (),
        |()| {
            let mut host = Host::new();
            let m = host.load_text(&text, "big.yaml", &BTreeMap::new(), data_dir()).unwrap();
            let ev = host.evaluate(&m, None).unwrap();
            (host, ev)
        },
    );
    let open_query = median(
        runs,
        || {
            let mut host = Host::new();
            host.set_data_root(data_dir());
            host
        },
        |mut host| {
            host.put_template(&text, "big.yaml").unwrap();
            host.open_session(OpenRequest {
                template_id: "big".into(),
                template_version: "1".into(),
                id: Some("s".into()),
                ..Default::default()
            })
            .unwrap();
            let ev = host.evaluate_target(&target(), None).unwrap();
            (host, ev)
        },
    );
    // Artifacts: writing the run directory against the evaluation it records, and the heap the
    // writing adds on top of the evaluation (target: ≤ 2× the time, ≤ one file buffer per thread).
    let load = || {
        let mut host = Host::new();
        let m = host.load_text(&text, "big.yaml", &BTreeMap::new(), data_dir()).unwrap();
        (host, m)
    };
    let eval = median(runs, load, |(host, m)| {
        let ev = host.evaluate(&m, None).unwrap();
        (host, ev)
    });
    let loaded = load();
    let (host, m) = &loaded;
    let ev = host.evaluate(m, None).unwrap();
    let ws = host.warnings(m, &ev).unwrap();
    let inputs = m.input_data();
    let runs_dir = tempfile::tempdir().unwrap();
    let mut extra_heap = 0;
    let write = median(
        runs,
        || {
            let _ = std::fs::remove_dir_all(runs_dir.path());
            let before = CURRENT.load(Ordering::Relaxed);
            PEAK.store(before, Ordering::Relaxed);
            before
        },
        |before| {
            let run = flowtime::artifacts::RunInput {
                source: &m.source,
                params: &m.params,
                inputs: &inputs,
                evaluation: &ev,
                warnings: &ws,
                tenant: None,
            };
            let out = flowtime::artifacts::write_run(runs_dir.path(), &run).unwrap();
            assert!(!out.reused);
            extra_heap = PEAK.load(Ordering::Relaxed) - before;
        },
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (reopen_cached, reopen_uncached) = reopen_full(n, runs);
    // The floor of any cache that copies series into memory: copying them, from memory, into
    // fresh allocations (a reopen's series must end up in the new process's memory).
    let held: Vec<std::sync::Arc<[f64]>> = ev.series.values().map(|s| s.0.clone()).collect();
    let copy = median(
        runs,
        || (),
        |()| held.iter().map(|s| s.iter().copied().collect()).collect::<Vec<std::sync::Arc<[f64]>>>(),
    );
    println!(
        "result cache {n} nodes × {BINS} bins: reopen + full query with the cache {:.1} ms / cold {:.1} ms = {:.2}× (target ≤ 0.2); without the cache {:.1} ms = {:.2}× cold; floor: copying the {:.1} MB of series from memory into fresh memory {:.1} ms = {:.2}× cold",
        ms(reopen_cached),
        ms(cold),
        reopen_cached.as_secs_f64() / cold.as_secs_f64(),
        ms(reopen_uncached),
        reopen_uncached.as_secs_f64() / cold.as_secs_f64(),
        ((n + 1) * BINS * 8) as f64 / 1e6,
        ms(copy),
        copy.as_secs_f64() / cold.as_secs_f64(),
    );
    let (cold_on, cold_off) = (cold_file(n, runs, true), cold_file(n, runs, false));
    println!(
        "result cache {n} nodes × {BINS} bins: cold session on a file with an empty cache {:.1} ms / without a cache {:.1} ms = {:.2}× (the entries are written in the background, after)",
        ms(cold_on),
        ms(cold_off),
        cold_on.as_secs_f64() / cold_off.as_secs_f64(),
    );
    let (leaf_on, leaf_off) = leaf_with_and_without_cache(n);
    println!(
        "result cache {n} nodes × {BINS} bins: leaf change with the cache {:.1} µs / without {:.1} µs = {:.2}× (target ≤ 1.2)",
        leaf_on.as_secs_f64() * 1e6,
        leaf_off.as_secs_f64() * 1e6,
        leaf_on.as_secs_f64() / leaf_off.as_secs_f64(),
    );
    println!(
        "artifacts {n} nodes × {BINS} bins: writing the run {:.1} ms / evaluating it {:.1} ms = {:.2}× (target ≤ 2); heap while writing +{:.2} MB over the evaluation's {:.1} MB",
        ms(write),
        ms(eval),
        write.as_secs_f64() / eval.as_secs_f64(),
        extra_heap as f64 / 1e6,
        ((n + 1) * BINS * 8) as f64 / 1e6
    );
    println!(
        "ratios {n} nodes × {BINS} bins: full re-evaluation {:.1} ms / cold {:.1} ms = {:.2}× (target ≤ 0.7); store template + session open + first full query {:.1} ms / one-shot load + evaluate {:.1} ms = {:.2}× (target ≤ 1.2)",
        ms(full),
        ms(cold),
        full.as_secs_f64() / cold.as_secs_f64(),
        ms(open_query),
        ms(one_shot),
        open_query.as_secs_f64() / one_shot.as_secs_f64()
    );
}

/// A result cache in a fresh directory under `dir`.
fn cache_in(dir: &Path, name: &str) -> CacheConfig {
    let url = url::Url::from_directory_path(dir.join(name)).unwrap().to_string();
    CacheConfig { url, max_bytes: DEFAULT_MAX_BYTES }
}

/// A database file with the session evaluated once (so the cache, when given, holds every unit).
fn populated(path: &Path, n: usize, cache: Option<&CacheConfig>) {
    let mut host = Host::open_with_cache(path, "bench", data_dir(), cache).unwrap();
    session(&mut host, n);
    host.evaluate_target(&target(), None).unwrap();
    // Dropping the host writes the pending cache entries.
}

/// The median of a cold session (store the template, open, evaluate everything) on a new file,
/// with an empty result cache or none.
fn cold_file(n: usize, runs: usize, cached: bool) -> Duration {
    median(
        runs,
        || tempfile::tempdir().unwrap(),
        |dir| {
            let cfg = cached.then(|| cache_in(dir.path(), "cache"));
            let mut host =
                Host::open_with_cache(&dir.path().join("db.redb"), "bench", data_dir(), cfg.as_ref()).unwrap();
            session(&mut host, n);
            let ev = host.evaluate_target(&target(), None).unwrap();
            assert_eq!(ev.accounting.nodes_evaluated as usize, n + 1);
            (host, ev, dir)
        },
    )
}

/// Medians of reopening a file and fetching every series, with the result cache and without.
fn reopen_full(n: usize, runs: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cache_in(dir.path(), "cache");
    let (with, without) = (dir.path().join("with.redb"), dir.path().join("without.redb"));
    populated(&with, n, Some(&cfg));
    populated(&without, n, None);
    let run = |path: &Path, cache: Option<&CacheConfig>, loaded: usize| {
        median(
            runs,
            || (),
            |()| {
                let host = Host::open_with_cache(path, "bench", data_dir(), cache).unwrap();
                let ev = host.evaluate_target(&target(), None).unwrap();
                assert_eq!(ev.accounting.nodes_loaded as usize, loaded);
                (host, ev)
            },
        )
    };
    (run(&with, Some(&cfg), n + 1), run(&without, None, 0))
}

/// Medians of a one-leaf change with the cache on and off, samples alternating between the two
/// hosts so that both see the same machine.
fn leaf_with_and_without_cache(n: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cache_in(dir.path(), "cache");
    let open = |name: &str, cache: Option<&CacheConfig>| {
        let mut host = Host::open_with_cache(&dir.path().join(name), "bench", data_dir(), cache).unwrap();
        session(&mut host, n);
        host.evaluate_target(&target(), None).unwrap();
        host
    };
    let mut hosts = [open("on.redb", Some(&cfg)), open("off.redb", None)];
    let c = hosts[0].compiled_target(&target()).unwrap();
    let leaf = c.by_id[&format!("n{}", n - 1)];
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for i in 0..400 {
        for (h, host) in hosts.iter_mut().enumerate() {
            set(host, "leaf_k", 2.0 + i as f64);
            let start = Instant::now();
            let ev = host.evaluate_target(&target(), Some(&[leaf])).unwrap();
            times[h].push(start.elapsed());
            assert_eq!(ev.accounting.nodes_evaluated, 1);
        }
    }
    for t in &mut times {
        t.sort();
    }
    (times[0][times[0].len() / 2], times[1][times[1].len() / 2])
}

#[divan::bench(consts = [1000, 10000], sample_count = 3, sample_size = 1)]
fn cold<const N: usize>(bencher: divan::Bencher) {
    bencher.bench_local(|| {
        let mut host = Host::new();
        session(&mut host, N);
        let ev = host.evaluate_target(&target(), None).unwrap();
        assert_eq!(ev.accounting.nodes_evaluated as usize, N + 1);
        (host, ev)
    });
}

fn warm(n: usize) -> Host {
    let mut host = Host::new();
    session(&mut host, n);
    host.evaluate_target(&target(), None).unwrap();
    host
}

/// Times from "input set in memory" to "every changed series fetched": the parameter is set
/// (and committed to the store) before each timed run; the commit is timed by `param_commit`.
fn change_then_fetch(bencher: divan::Bencher, host: Host, param: &'static str, fetch: Option<Vec<u32>>, expect: usize) {
    let host = std::cell::RefCell::new(host);
    let v = std::cell::Cell::new(1.0);
    bencher
        .with_inputs(|| {
            v.set(v.get() + 1.0);
            set(&mut host.borrow_mut(), param, v.get());
        })
        .bench_local_values(|()| {
            let ev = host.borrow().evaluate_target(&target(), fetch.as_deref()).unwrap();
            assert_eq!(ev.accounting.nodes_evaluated as usize, expect);
            ev
        });
}

/// The full re-evaluation baseline: `root` feeds every node.
#[divan::bench(consts = [1000, 10000], sample_count = 5, sample_size = 1)]
fn root_change_full_reevaluation<const N: usize>(bencher: divan::Bencher) {
    change_then_fetch(bencher, warm(N), "root", None, N);
}

#[divan::bench(consts = [1000, 10000], sample_count = 20, sample_size = 1)]
fn mid_change<const N: usize>(bencher: divan::Bencher) {
    let host = warm(N);
    let c = host.compiled_target(&target()).unwrap();
    let unit = c.series[c.by_id[&format!("n{}", N / 2)] as usize].unit;
    let cone: Vec<u32> = c.downstream(&[unit]).iter().flat_map(|u| c.units[*u as usize].series.clone()).collect();
    let n = cone.len();
    change_then_fetch(bencher, host, "mid", Some(cone), n);
}

#[divan::bench(consts = [1000, 10000], sample_count = 200, sample_size = 1)]
fn leaf_change<const N: usize>(bencher: divan::Bencher) {
    let host = warm(N);
    let c = host.compiled_target(&target()).unwrap();
    let leaf = c.by_id[&format!("n{}", N - 1)];
    change_then_fetch(bencher, host, "leaf_k", Some(vec![leaf]), 1);
}

/// The store commit (and salsa input update) of one parameter change, timed on its own.
#[divan::bench(consts = [1000, 10000], sample_count = 100, sample_size = 1)]
fn param_commit<const N: usize>(bencher: divan::Bencher) {
    let mut host = warm(N);
    let mut v = 1.0;
    bencher.bench_local(|| {
        v += 1.0;
        set(&mut host, "leaf_k", v);
    });
}

#[divan::bench(consts = [1000, 10000], sample_count = 20, sample_size = 1)]
fn variant_create_and_fetch_one<const N: usize>(bencher: divan::Bencher) {
    let mut host = warm(N);
    let c = host.compiled_target(&target()).unwrap();
    let leaf = c.by_id[&format!("n{}", N - 1)];
    let mut i = 0;
    bencher.bench_local(|| {
        i += 1;
        let name = format!("v{i}");
        host.create_variant(
            "s",
            &name,
            &BTreeMap::from([("leaf_k".to_string(), Supplied::Text((i + 1).to_string()))]),
            &BTreeMap::new(),
        )
        .unwrap();
        let ev = host.evaluate_target(&Target::parse(&format!("s/{name}")), Some(&[leaf])).unwrap();
        assert_eq!(ev.accounting.nodes_evaluated, 1);
    });
}

/// Reopen of a database file + every series: loaded from the result cache (`cached`), or
/// evaluated again.
fn reopen_full_bench(bencher: divan::Bencher, n: usize, cached: bool) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cached.then(|| cache_in(dir.path(), "cache"));
    let path = dir.path().join("db.redb");
    populated(&path, n, cfg.as_ref());
    bencher.bench_local(|| {
        let host = Host::open_with_cache(&path, "bench", data_dir(), cfg.as_ref()).unwrap();
        let ev = host.evaluate_target(&target(), None).unwrap();
        let a = ev.accounting;
        assert_eq!((if cached { a.nodes_loaded } else { a.nodes_evaluated }) as usize, n + 1);
        (host, ev)
    });
}

#[divan::bench(consts = [1000, 10000], sample_count = 3, sample_size = 1)]
fn reopen_and_full_query<const N: usize>(bencher: divan::Bencher) {
    reopen_full_bench(bencher, N, true);
}

#[divan::bench(consts = [1000, 10000], sample_count = 3, sample_size = 1)]
fn reopen_and_full_query_without_cache<const N: usize>(bencher: divan::Bencher) {
    reopen_full_bench(bencher, N, false);
}

#[divan::bench(consts = [1000, 10000], sample_count = 3, sample_size = 1)]
fn reopen_and_first_query<const N: usize>(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let mut host = Host::open(&path, "bench", data_dir()).unwrap();
        session(&mut host, N);
    }
    bencher.bench_local(|| {
        let host = Host::open(&path, "bench", data_dir()).unwrap();
        let c = host.compiled_target(&target()).unwrap();
        let first = c.by_id["n1"];
        let ev = host.evaluate_target(&target(), Some(&[first])).unwrap();
        assert!(ev.accounting.nodes_evaluated >= 2);
    });
}
