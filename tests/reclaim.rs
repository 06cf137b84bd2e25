//! Disk and memory are reclaimed: blobs nothing references are collected (by `flowtime db gc`
//! and automatically), the file shrinks on `db compact`, and everything still referenced keeps
//! verifying.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use flowtime::host::{Host, OpenRequest, Target};
use flowtime::model::template::Supplied;

const DAY_START: i64 = 29_329_920;

fn series(seed: usize, bins: usize) -> Vec<f64> {
    (0..bins).map(|t| ((t * 31 + seed * 7) % 977) as f64 * 0.25 + seed as f64).collect()
}

fn flowtime(db: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_flowtime")).arg("--db").arg(db).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// 300 re-puts of one 8,760-value series: automatic collection keeps the file bounded while they
/// run, and after `db gc` and `db compact` it is at most twice the size of a file holding one
/// copy; the live series still verifies.
#[test]
fn re_putting_a_series_300_times_leaves_one_copy_after_gc() {
    let dir = tempfile::tempdir().unwrap();
    let bins = 8760;
    let one = dir.path().join("one.redb");
    {
        let mut host = Host::open(&one, "test", Path::new(".")).unwrap();
        host.put_series("load", &series(0, bins), Some(DAY_START), 60, serde_json::json!({})).unwrap();
    }
    flowtime(&one, &["db", "compact"]);
    let one_copy = size(&one);

    let many = dir.path().join("many.redb");
    let mut peak = 0;
    {
        let mut host = Host::open(&many, "test", Path::new(".")).unwrap();
        for i in 0..300 {
            host.put_series("load", &series(i, bins), Some(DAY_START), 60, serde_json::json!({"put": i})).unwrap();
            peak = peak.max(size(&many));
        }
    }
    let before = size(&many);
    let gc = flowtime(&many, &["--json", "db", "gc"]);
    let gc: serde_json::Value = serde_json::from_str(&gc).unwrap();
    flowtime(&many, &["db", "compact"]);
    let after = size(&many);
    eprintln!(
        "one copy {one_copy} bytes; 300 re-puts: peak {peak}, {before} before gc ({} blobs removed), {after} after gc + compact ({:.2}×)",
        gc["blobsRemoved"],
        after as f64 / one_copy as f64
    );
    assert!(after <= 2 * one_copy, "{after} bytes after gc + compact, one copy is {one_copy}");
    // Without collection the 300 copies would need 300 × 70 KB = 21 MB; automatic collection
    // (every 1 MiB of new blobs while the live bytes are below that) keeps the file near that
    // allowance plus the live data.
    assert!(peak < 4 << 20, "the file reached {peak} bytes during the re-puts");
    assert_eq!(gc["blobsLive"], 1, "{gc}");

    let report = flowtime::store::check_file(&many).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!((report.counts["blobs"], report.counts["unreferenced_blobs"]), (1, 0));
    let host = Host::open(&many, "test", Path::new(".")).unwrap();
    let (_, values) = host.stored_series_values("load").unwrap();
    assert!(values.iter().zip(series(299, bins)).all(|(a, b)| a.to_bits() == b.to_bits()));
}

const TELE: &str = "id: tele\nversion: \"1\"\n\
parameters:\n  - {name: demand_source, type: series, default: \"series:demand\"}\n  - {name: k, type: number, default: 1}\n\
grid: {bins: 4, binSize: 5, binUnit: minutes, start: \"2025-10-07T00:00:00Z\"}\n\
nodes:\n\
  - {id: demand, kind: const, source: \"{{demand_source}}\"}\n\
  - {id: base, kind: const, values: [1, 1, 1, 1]}\n\
  - {id: out, kind: expr, expr: \"demand * {{k}} + base\"}\n";

fn p(pairs: &[(&str, &str)]) -> BTreeMap<String, Supplied> {
    pairs.iter().map(|(k, v)| (k.to_string(), Supplied::Text(v.to_string()))).collect()
}

fn out(host: &Host, target: &str) -> Vec<f64> {
    host.evaluate_target(&Target::parse(target), None).unwrap().get("out").unwrap().to_vec()
}

/// Every kind of reference keeps its blob through a collection: stored series, a session's
/// series binding (a `snapshot:` parameter) and const-node override, a variant's override and
/// snapshot. Dropping the owners (replacing the series, deleting the variant, closing the
/// session) lets exactly their blobs go, and what stays still evaluates to the same values after
/// a reopen.
#[test]
fn collection_keeps_every_referenced_blob_and_removes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.redb");
    let mut host = Host::open(&path, "test", Path::new(".")).unwrap();
    host.put_template(TELE, "tele.yaml").unwrap();
    host.put_series("demand", &[1.0, 2.0, 3.0, 4.0], Some(DAY_START), 5, serde_json::json!({})).unwrap();
    let open = |host: &mut Host, id: &str, series: BTreeMap<String, Vec<f64>>| {
        host.open_session(OpenRequest {
            template_id: "tele".into(),
            template_version: "1".into(),
            id: Some(id.into()),
            series,
            ..Default::default()
        })
        .unwrap();
    };
    // s1 reads stored telemetry and binds `base`; s2 binds `demand_source` to values (a snapshot).
    open(&mut host, "s1", [("base".to_string(), vec![10.0; 4])].into());
    open(&mut host, "s2", [("demand_source".to_string(), vec![7.0; 4])].into());
    host.create_variant("s1", "v", &p(&[("k", "2")]), &[("base".to_string(), vec![20.0; 4])].into()).unwrap();
    host.create_variant("s2", "w", &BTreeMap::new(), &[("demand_source".to_string(), vec![8.0; 4])].into()).unwrap();
    let blobs = |host: &Host| host.store().read().unwrap().counts().unwrap()["blobs"];
    // demand, base 10, demand 7, base 20, demand 8.
    assert_eq!(blobs(&host), 5);
    assert_eq!(host.collect_garbage().unwrap().blobs_removed, 0, "everything is referenced");
    let want: Vec<(&str, Vec<f64>)> = ["s1", "s1/v", "s2", "s2/w"].iter().map(|t| (*t, out(&host, t))).collect();
    assert_eq!(want[1].1, vec![22.0, 24.0, 26.0, 28.0]);

    // Replacing `demand` drops its old values; deleting `v` drops base 20.
    host.put_series("demand", &[5.0, 6.0, 7.0, 8.0], Some(DAY_START), 5, serde_json::json!({})).unwrap();
    host.delete_variant("s1", "v").unwrap();
    let gc = host.collect_garbage().unwrap();
    assert_eq!((gc.blobs_removed, gc.bytes_removed, gc.blobs_live), (2, 64, 4));
    drop(host);

    let mut host = Host::open(&path, "test", Path::new(".")).unwrap();
    assert_eq!(out(&host, "s1"), vec![15.0, 16.0, 17.0, 18.0]);
    assert_eq!(out(&host, "s2"), want[2].1);
    assert_eq!(out(&host, "s2/w"), want[3].1);
    // Closing s2 drops both snapshots; the stored series and s1's binding stay.
    host.close_session("s2").unwrap();
    assert_eq!(host.collect_garbage().unwrap().blobs_removed, 2);
    assert_eq!(blobs(&host), 2);
    // A snapshot reference to collected values is refused, not answered from memory.
    let sha = flowtime::store::values_sha(&[7.0; 4]);
    let err = host
        .open_session(OpenRequest {
            template_id: "tele".into(),
            template_version: "1".into(),
            params: p(&[("demand_source", &format!("snapshot:{sha}"))]),
            id: Some("s3".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains(&sha), "{err}");
    let report = host.check_store().unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.counts["unreferenced_blobs"], 0);
}

/// Automatic collection runs after the write that crosses the threshold, not before: a telemetry
/// load's staged blobs are never collected before their records are published.
#[test]
fn automatic_collection_follows_the_written_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.redb");
    let mut host = Host::open(&path, "test", Path::new(".")).unwrap();
    let bins = 8760;
    let per_put = (bins * 8) as u64;
    let puts_to_threshold = flowtime::store::AUTO_GC_MIN_BYTES.div_ceil(per_put) as usize;
    let blobs = |host: &Host| host.store().read().unwrap().counts().unwrap()["blobs"] as usize;
    for i in 0..puts_to_threshold - 1 {
        host.put_series("x", &series(i, bins), Some(DAY_START), 60, serde_json::json!({})).unwrap();
    }
    assert_eq!(blobs(&host), puts_to_threshold - 1, "below the threshold nothing is collected");
    host.put_series("x", &series(10_000, bins), Some(DAY_START), 60, serde_json::json!({})).unwrap();
    assert_eq!(blobs(&host), 1, "the write that crossed the threshold collected the old values");

    // A batch larger than the threshold: every series it stores survives.
    let items: Vec<flowtime::host::StoredSeriesInput> = (0..puts_to_threshold + 5)
        .map(|i| flowtime::host::StoredSeriesInput { name: format!("n{i}"), values: series(i + 1, bins), gaps: vec![] })
        .collect();
    host.put_series_batch(&items, Some(DAY_START), 60, serde_json::json!({})).unwrap();
    assert_eq!(blobs(&host), items.len() + 1);
    for it in &items {
        assert_eq!(host.stored_series_values(&it.name).unwrap().1, it.values);
    }
}

/// A collection an earlier process left due (blobs written, none collected) runs after the
/// first change of the next one, even a change that stores no blob: the store asks whether one
/// is due after its open, and after every write that stored a blob, not only after those.
#[test]
fn a_collection_left_due_runs_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.redb");
    let bins = 8760;
    let n = flowtime::store::AUTO_GC_MIN_BYTES.div_ceil(bins as u64 * 8) as usize + 1;
    {
        let store = flowtime::store::Store::open(&path, "test").unwrap();
        store
            .write(|w| {
                for i in 0..n {
                    w.put_blob(&series(i, bins))?;
                }
                Ok(())
            })
            .unwrap();
    }
    let mut host = Host::open(&path, "test", Path::new(".")).unwrap();
    let blobs = |host: &Host| host.store().read().unwrap().counts().unwrap()["blobs"] as usize;
    assert_eq!(blobs(&host), n, "opening collects nothing");
    let plain = "id: plain\nversion: \"1\"\ngrid: {bins: 4, binSize: 5, binUnit: minutes, start: \"2025-10-07T00:00:00Z\"}\nnodes:\n  - {id: a, kind: const, values: [1, 2, 3, 4]}\n";
    crate::cache::session(&mut host, plain, "plain.yaml", "plain", "s", &[]);
    assert_eq!(blobs(&host), 0, "the first change after the reopen collected what nothing references");
}

/// A `flowtime serve` child process on a fresh database, stopped when dropped.
struct Served {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start() -> Served {
        use std::io::BufRead;
        // In memory where Linux offers it: these tests measure memory, not commit latency.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
        let db = dir.path().join("mem.redb");
        // An existing (empty) database: no bundled templates are seeded.
        drop(Host::open(&db, "test", Path::new(".")).unwrap());
        // The plain server, as users run it (its allocator returns freed memory; under glibc's
        // malloc, per-thread arenas kept +2.8 MiB over the variant cycles with a flat live heap).
        // Only warnings are logged: a line per request would fill the terminal.
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowtime"))
            .arg("--db")
            .arg(&db)
            // These cycles measure session and variant reclamation; the result cache (which keeps
            // nothing per entry in memory) would only add ~300,000 small files to /dev/shm.
            .args(["--cache", "off", "serve", "--log", "warn", "--listen", "127.0.0.1:0", "--runs"])
            .arg(dir.path().join("runs"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let l = lines.next().expect("the server prints its address").unwrap();
            if let Some(a) = l.strip_prefix("listening on ") {
                break a.to_string();
            }
        };
        Served { child, addr, _dir: dir }
    }

    /// Resident memory of the server, from /proc.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CYCLE_BINS: usize = 96;
const CYCLE_NODES: usize = 8;

/// A model with a parameter-driven cone (`k` feeds the second half of a chain of nodes).
fn cycle_template() -> String {
    let mut y = format!(
        "id: cycles\nversion: \"1\"\nparameters:\n  - {{name: k, type: number, default: 1}}\n  - {{name: base, type: number, default: 2}}\n\
         grid: {{bins: {CYCLE_BINS}, binSize: 15, binUnit: minutes, start: \"2025-10-07T00:00:00Z\"}}\nnodes:\n",
    );
    let vals: Vec<String> = (0..CYCLE_BINS).map(|t| ((t * 7) % 31).to_string()).collect();
    y.push_str(&format!("  - {{id: load, kind: const, values: [{}]}}\n", vals.join(", ")));
    for i in 0..CYCLE_NODES {
        let prev = if i == 0 { "load".to_string() } else { format!("n{}", i - 1) };
        let p = if i >= CYCLE_NODES / 2 { "{{k}}" } else { "{{base}}" };
        y.push_str(&format!("  - {{id: n{i}, kind: expr, expr: \"{prev} * 0.5 + {p} + SHIFT({prev}, 1)\"}}\n"));
    }
    y
}

fn num(x: f64) -> flowtime::server::pb::ParamValue {
    flowtime::server::pb::ParamValue { kind: Some(flowtime::server::pb::param_value::Kind::Number(x)) }
}

/// Cycles before measuring: enough for the store to reach its steady state (a few automatic
/// collections of the blobs the variant cycles write) and for salsa to reuse collected keys.
const WARM_UP: usize = 5_000;
const CYCLES: usize = 10_000;
/// Allowed growth of the server's resident memory over `CYCLES` after `WARM_UP`.
const MAX_GROWTH_KIB: u64 = 1024;
/// Clients sharing the cycles (each on its own names). One: concurrent clients make glibc's
/// malloc spread freed memory over per-thread arenas, which RSS counts, hiding what the server
/// itself keeps.
const WORKERS: usize = 1;

/// Which cycles worker `w` runs of `from..to`.
fn share(w: usize, from: usize, to: usize) -> impl Iterator<Item = usize> {
    (from + w..to).step_by(WORKERS)
}

/// A read cancelled twice by concurrent writes is UNAVAILABLE (retryable): retry it.
async fn series_of(client: flowtime::client::Client, session: String, variant: String) -> usize {
    use flowtime::server::pb;
    let mut queries = client.queries();
    loop {
        let target = Some(pb::Target { session: session.clone(), variant: variant.clone() });
        let req = pb::GetSeriesRequest { target, pattern: "*".to_string(), ..Default::default() };
        match queries.get_series(req).await {
            Ok(r) => return r.into_inner().series.len(),
            Err(e) if e.code() == tonic::Code::Unavailable => continue,
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// Worker `w`'s variant cycles of `from..to`: create `v<w>` (its own parameter value and series
/// binding), query every series, delete it.
async fn variant_cycles(client: flowtime::client::Client, w: usize, from: usize, to: usize) {
    use flowtime::server::pb;
    let mut sessions = client.sessions();
    for i in share(w, from, to) {
        let name = format!("v{w}");
        let values: Vec<f64> = (0..CYCLE_BINS).map(|t| (t + i) as f64).collect();
        sessions
            .create_variant(pb::CreateVariantRequest {
                session_id: "s".into(),
                name: name.clone(),
                parameters: [("k".to_string(), num(i as f64))].into(),
                series: vec![pb::SeriesBinding { target: "load".into(), values, ..Default::default() }],
            })
            .await
            .unwrap();
        assert_eq!(series_of(client.clone(), "s".to_string(), name.clone()).await, CYCLE_NODES + 1);
        sessions.delete_variant(pb::DeleteVariantRequest { session_id: "s".into(), name }).await.unwrap();
    }
}

/// Worker `w`'s session cycles of `from..to`: open `s<w>` (its own parameter values), query
/// every series, close it.
async fn session_cycles(client: flowtime::client::Client, w: usize, from: usize, to: usize) {
    use flowtime::server::pb;
    let mut sessions = client.sessions();
    for i in share(w, from, to) {
        let id = format!("s{w}");
        let open = pb::OpenSessionRequest {
            template_id: "cycles".into(),
            session_id: id.clone(),
            parameters: [("k".to_string(), num(i as f64)), ("base".to_string(), num((i % 3) as f64))].into(),
            ..Default::default()
        };
        sessions.open_session(open).await.unwrap();
        assert_eq!(series_of(client.clone(), id.clone(), String::new()).await, CYCLE_NODES + 1);
        sessions.close_session(pb::CloseSessionRequest { session_id: id }).await.unwrap();
    }
}

/// Worker `w`'s analysis cycles of `from..to`: create `a<w>` (its own parameter value, never
/// queried), sweep `base` over three values on it, delete it. The sweep is the variant's only
/// evaluation, so its unit keys are made for the analysis.
async fn sweep_cycles(client: flowtime::client::Client, w: usize, from: usize, to: usize) {
    use flowtime::server::pb;
    let mut sessions = client.sessions();
    let mut analyses = client.analysis();
    for i in share(w, from, to) {
        let name = format!("a{w}");
        sessions
            .create_variant(pb::CreateVariantRequest {
                session_id: "s".into(),
                name: name.clone(),
                parameters: [("k".to_string(), num(i as f64))].into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let target = Some(pb::Target { session: "s".into(), variant: name.clone() });
        let req = pb::SweepRequest {
            options: Some(pb::AnalysisOptions { target, threads: 1, ..Default::default() }),
            vary: vec![pb::Vary { name: "base".into(), values: vec![1.0, 2.0, (i % 7) as f64], range: None }],
            metrics: vec![format!("max(n{})", CYCLE_NODES - 1)],
            series: Vec::new(),
        };
        let mut events = analyses.sweep(req).await.unwrap().into_inner();
        let mut points = 0;
        while let Some(e) = events.message().await.unwrap() {
            if let Some(pb::sweep_event::Event::Result(r)) = e.event {
                points = r.points.len();
            }
        }
        assert_eq!(points, 3);
        sessions.delete_variant(pb::DeleteVariantRequest { session_id: "s".into(), name }).await.unwrap();
    }
}

/// What the measured cycles do.
#[derive(Clone, Copy, PartialEq)]
enum Cycle {
    Variants,
    Sessions,
    Sweeps,
}

/// Runs the warm-up and then the measured cycles with `WORKERS` concurrent clients (a thread and
/// a connection each); returns the server's RSS after each phase.
fn measure(server: &Served, cycle: Cycle, warm_up: usize, cycles: usize) -> (u64, u64) {
    use flowtime::server::pb;
    let run = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    };
    let addr = server.addr.clone();
    run(Box::pin(async move {
        let client = flowtime::client::Client::connect(&addr).await.unwrap();
        client
            .templates()
            .put_template(pb::PutTemplateRequest { text: cycle_template(), ..Default::default() })
            .await
            .unwrap();
        if cycle != Cycle::Sessions {
            let open =
                pb::OpenSessionRequest { template_id: "cycles".into(), session_id: "s".into(), ..Default::default() };
            client.sessions().open_session(open).await.unwrap();
        }
    }));
    let phase = |from: usize, to: usize| {
        std::thread::scope(|scope| {
            for w in 0..WORKERS {
                let addr = server.addr.clone();
                scope.spawn(move || {
                    run(Box::pin(async move {
                        let c = flowtime::client::Client::connect(&addr).await.unwrap();
                        match cycle {
                            Cycle::Variants => variant_cycles(c, w, from, to).await,
                            Cycle::Sessions => session_cycles(c, w, from, to).await,
                            Cycle::Sweeps => sweep_cycles(c, w, from, to).await,
                        }
                    }))
                });
            }
        });
    };
    phase(0, warm_up);
    let warm = server.rss_kib();
    phase(warm_up, warm_up + cycles);
    (warm, server.rss_kib())
}

/// Created, queried and deleted variants leave nothing behind: after a warm-up, 10,000 cycles
/// (each with its own parameter value and a series binding) grow the server's resident memory
/// by at most 1 MiB.
#[test]
fn variant_cycles_do_not_grow_the_server() {
    let server = Served::start();
    let (warm, after) = measure(&server, Cycle::Variants, WARM_UP, CYCLES);
    eprintln!("variant cycles: RSS {warm} KiB after {WARM_UP} warm-up cycles, {after} KiB after {CYCLES} more");
    assert!(after <= warm + MAX_GROWTH_KIB, "RSS grew from {warm} to {after} KiB over {CYCLES} variant cycles");
}

/// The same for sessions opened (each with its own parameter values), queried and closed.
#[test]
fn session_cycles_do_not_grow_the_server() {
    let server = Served::start();
    let (warm, after) = measure(&server, Cycle::Sessions, WARM_UP, CYCLES);
    eprintln!("session cycles: RSS {warm} KiB after {WARM_UP} warm-up cycles, {after} KiB after {CYCLES} more");
    assert!(after <= warm + MAX_GROWTH_KIB, "RSS grew from {warm} to {after} KiB over {CYCLES} session cycles");
}

/// Analyses leave nothing behind either: variants created, swept (their only evaluation) and
/// deleted, 10,000 times after 5,000 of warm-up, grow the server by at most 1 MiB (their unit
/// keys are interned in the variant's own query, so they are collected with it, and no timer
/// outlives its analysis).
#[test]
fn sweep_cycles_do_not_grow_the_server() {
    let server = Served::start();
    let (warm, after) = measure(&server, Cycle::Sweeps, WARM_UP, CYCLES);
    eprintln!("sweep cycles: RSS {warm} KiB after {WARM_UP} warm-up cycles, {after} KiB after {CYCLES} more");
    assert!(after <= warm + MAX_GROWTH_KIB, "RSS grew from {warm} to {after} KiB over {CYCLES} sweep cycles");
}

/// Reclamation never costs an open session its memos: while sessions on other template
/// versions (each a new set of unit definitions, so new interned keys) are opened, evaluated and
/// closed far more often than salsa's collection window, an idle session keeps every memo (its
/// next query evaluates nothing), and the number of interned unit keys stays bounded.
#[test]
fn an_idle_session_keeps_its_memos_while_others_are_reclaimed() {
    let mut host = Host::new();
    host.put_template(&cycle_template(), "cycles.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "cycles".into(),
        template_version: "1".into(),
        id: Some("idle".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(host.evaluate_target(&Target::parse("idle"), None).unwrap().accounting.nodes_evaluated, 9);
    let keys = |host: &Host| {
        let info = (host.db() as &dyn salsa::Database).memory_usage();
        info.structs.iter().find(|i| i.debug_name() == "UnitKey").map_or(0, |i| i.count())
    };
    let cycles = 3 * flowtime::engine::db::KEY_REVISIONS;
    let mut most = 0;
    for i in 0..cycles {
        // Another version whose first node adds `i`: every unit reads it, so all are new keys.
        let text = cycle_template()
            .replace("version: \"1\"", &format!("version: \"2.{i}\""))
            .replace("expr: \"load * 0.5", &format!("expr: \"{i} + load * 0.5"));
        host.put_template(&text, "cycles.yaml").unwrap();
        host.open_session(OpenRequest {
            template_id: "cycles".into(),
            template_version: format!("2.{i}"),
            id: Some("busy".into()),
            ..Default::default()
        })
        .unwrap();
        let ev = host.evaluate_target(&Target::parse("busy"), None).unwrap();
        assert_eq!(ev.accounting.nodes_evaluated, 8, "cycle {i}: every unit but the shared `load`");
        host.close_session("busy").unwrap();
        most = most.max(keys(&host));
    }
    let idle = host.evaluate_target(&Target::parse("idle"), None).unwrap();
    assert_eq!(idle.accounting.nodes_evaluated, 0, "the idle session lost memos");
    // Without collection every cycle would add 8 keys (every unit but `load`).
    assert!(most < cycles * 8 / 2, "{most} unit keys after {cycles} cycles");
}
