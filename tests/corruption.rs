//! A damaged database file never panics and never answers with wrong values.
//!
//! The harness builds a small database (the order-system template, stored telemetry, one session
//! reading it, a variant with a parameter and a series override), closes it cleanly, and makes
//! seeded mutations of the file (100 of each kind): single bit flips anywhere, bit flips inside
//! stored series values, bursts of random bytes, zeroed pages, changed digits inside stored
//! records, header damage and truncation. Each mutated copy
//! is opened, queried (templates, stored series and their values, sessions, both scenarios fully
//! evaluated with their warnings) and checked (`store::check_file`, what `flowtime db check`
//! runs). Every answer must equal the undamaged file's answer or be an error that says the file
//! is damaged and to run `flowtime db check`; `db check` must find damage whenever an answer was
//! an error. The mutations run in a child process (this test re-run with
//! `FLOWTIME_CORRUPTION_WORKER`), so even an abort inside redb would be counted, not fatal.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use flowtime::host::{Host, OpenRequest, Target};
use flowtime::model::template::Supplied;
use redb::{ReadableDatabase, ReadableTable};
use sha2::{Digest, Sha256};

const ORDER_SYSTEM: &str = include_str!("../templates/order-system.yaml");
/// Minutes since the epoch of 2025-10-07T00:00Z, the template's grid start.
const DAY_START: i64 = 29_329_920;
const MUTATIONS: usize = 700;
const SEED: u64 = 0x0c0ffee5;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The undamaged database: stored telemetry read by a session, a variant with a parameter and a
/// series override. Closed cleanly when this returns.
fn build_base(path: &Path) {
    let mut host = Host::open(path, "test", repo()).unwrap();
    host.put_template(ORDER_SYSTEM, "order-system.yaml").unwrap();
    let served: Vec<f64> = (0..288).map(|i| 40.0 + ((i * 7) % 13) as f64).collect();
    let arrivals: Vec<f64> = (0..288).map(|i| 45.0 + ((i * 11) % 17) as f64).collect();
    host.put_series("served", &served, Some(DAY_START), 5, serde_json::json!({"source": "harness"})).unwrap();
    host.put_series("arrivals", &arrivals, Some(DAY_START), 5, serde_json::json!({"source": "harness"})).unwrap();
    let p = |pairs: &[(&str, &str)]| -> BTreeMap<String, Supplied> {
        pairs.iter().map(|(k, v)| (k.to_string(), Supplied::Text(v.to_string()))).collect()
    };
    host.open_session(OpenRequest {
        template_id: "order-system".into(),
        template_version: "1.0.0".into(),
        params: p(&[("served_source", "series:served"), ("arrivals_source", "series:arrivals")]),
        id: Some("s1".into()),
        ..Default::default()
    })
    .unwrap();
    let errors: BTreeMap<String, Vec<f64>> = [("errors".to_string(), vec![1.5; 288])].into();
    host.create_variant("s1", "v", &p(&[("q0", "500"), ("demand_scale", "1.5")]), &errors).unwrap();
}

/// Each question asked of a database, with a digest of its answer or the error it gave.
type Answers = Vec<(String, Result<String, String>)>;

/// Every answer the database gives.
fn answers(host: &Host) -> Answers {
    fn digest(s: String) -> String {
        flowtime::model::params::hex(&Sha256::digest(s.as_bytes()))
    }
    let mut out = Vec::new();
    out.push((
        "templates".to_string(),
        host.templates()
            .map(|ts| digest(format!("{:?}", ts.iter().map(|t| (&t.id, &t.version, &t.text)).collect::<Vec<_>>())))
            .map_err(|e| e.to_string()),
    ));
    out.push((
        "stored series".into(),
        host.stored_series().map(|s| digest(format!("{s:?}"))).map_err(|e| e.to_string()),
    ));
    for name in ["served", "arrivals"] {
        let v = host
            .stored_series_values(name)
            .map(|(r, v)| digest(format!("{r:?} {:?}", v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())));
        out.push((format!("values of {name}"), v.map_err(|e| e.to_string())));
    }
    let sessions: Vec<_> =
        host.session_ids().into_iter().map(|id| host.session_info(&id).map_err(|e| e.to_string())).collect();
    out.push(("sessions".into(), Ok(digest(format!("{sessions:?}")))));
    for target in ["s1", "s1/v"] {
        let t = Target::parse(target);
        let ev = host.evaluate_target(&t, None).and_then(|ev| {
            let w = host.view().warnings(&t, &ev)?;
            let series: Vec<(String, Vec<u64>)> = ev
                .compiled
                .series
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    Some((s.id.clone(), ev.series.get(&(i as u32))?.iter().map(|x| x.to_bits()).collect()))
                })
                .collect();
            Ok(digest(format!("{series:?} {w:?}")))
        });
        out.push((format!("evaluate {target}"), ev.map_err(|e| e.to_string())));
    }
    out
}

/// Opens a copy and answers, or the error of the open.
fn open_and_answer(path: &Path) -> Result<Answers, String> {
    let host = Host::open(path, "test", repo()).map_err(|e| e.to_string())?;
    Ok(answers(&host))
}

/// An error a user can act on: it says the file is damaged (or a stored item is) and what to run.
fn well_worded(e: &str) -> bool {
    (e.contains("damaged") || e.contains("does not parse") || e.contains("not stored"))
        && e.contains("flowtime db check")
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 17
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Mutation `i` of `good` (deterministic in `SEED` and `i`), and its description.
fn mutate(good: &[u8], i: usize) -> (Vec<u8>, String) {
    let mut rng = Lcg(SEED ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut b = good.to_vec();
    let pages = b.len() / 4096;
    let desc = match i % 7 {
        0 => {
            let at = rng.below(b.len());
            let bit = rng.below(8);
            b[at] ^= 1 << bit;
            format!("flip bit {bit} of byte {at}")
        }
        1 => {
            // A bit of a stored value: where the bytes of a value of `served` (40..52) appear.
            let targets: Vec<usize> = (0..b.len().saturating_sub(8))
                .filter(|&o| {
                    let v = f64::from_le_bytes(b[o..o + 8].try_into().unwrap());
                    (40.0..53.0).contains(&v) && v.fract() == 0.0
                })
                .collect();
            let at = targets[rng.below(targets.len())] + rng.below(8);
            let bit = rng.below(8);
            b[at] ^= 1 << bit;
            format!("flip bit {bit} of byte {at} (in a stored value)")
        }
        2 => {
            let at = rng.below(b.len());
            let n = 1 + rng.below(64);
            for k in at..(at + n).min(b.len()) {
                b[k] = rng.next() as u8;
            }
            format!("{n} random bytes at {at}")
        }
        3 => {
            let p = rng.below(pages);
            b[p * 4096..(p + 1) * 4096].fill(0);
            format!("zero page {p}")
        }
        4 => {
            // A number in a stored record (a parameter value, a window start, a revision): the
            // first digit after a `:`, its lowest bit (`5` → `4`).
            let targets: Vec<usize> = (1..b.len()).filter(|&o| b[o - 1] == b':' && b[o].is_ascii_digit()).collect();
            let at = targets[rng.below(targets.len())];
            b[at] ^= 1;
            format!("change digit at {at} (in a record)")
        }
        5 => {
            let at = rng.below(4096);
            b[at] ^= 1 << rng.below(8);
            format!("flip a bit of header byte {at}")
        }
        _ => {
            let len = rng.below(b.len());
            b.truncate(len);
            format!("truncate to {len} bytes")
        }
    };
    (b, desc)
}

/// One mutated copy: what happened, as one line for the parent.
fn run_one(dir: &Path, good: &[u8], baseline: &Answers, i: usize) -> String {
    let (bytes, desc) = mutate(good, i);
    let path = dir.join(format!("m{i}.redb"));
    std::fs::write(&path, &bytes).unwrap();
    let caught = std::panic::catch_unwind(|| {
        let opened = open_and_answer(&path);
        let report = flowtime::store::check_file(&path).expect("a copy of the file can be made");
        (opened, report)
    });
    let _ = std::fs::remove_file(&path);
    let (opened, report) = match caught {
        Ok(r) => r,
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            return format!("PANIC\t{desc}\t{}", msg.unwrap_or_default());
        }
    };
    let mut errors = Vec::new();
    match opened {
        Err(e) => errors.push(format!("open: {e}")),
        Ok(got) => {
            for ((what, want), (_, got)) in baseline.iter().zip(&got) {
                match got {
                    Ok(g) if Ok(g) != want.as_ref() => {
                        return format!("WRONG\t{desc}\t{what} differs from the undamaged answer");
                    }
                    Ok(_) => {}
                    Err(e) => errors.push(format!("{what}: {e}")),
                }
            }
        }
    }
    if let Some(e) = errors.iter().find(|e| !well_worded(e)) {
        return format!("UNCLEAR\t{desc}\t{e}");
    }
    if !errors.is_empty() && report.ok() {
        return format!("MISSED\t{desc}\tdb check found nothing after: {}", errors[0]);
    }
    if errors.is_empty() { format!("SAME\t{desc}\t") } else { format!("ERROR\t{desc}\t{}", errors[0]) }
}

/// The child: runs mutations `from..MUTATIONS`, printing `@@ <i> start` before and `@@ <i> <line>`
/// after each.
fn worker(base: &Path, from: usize) {
    let dir = base.parent().unwrap().join(format!("worker-{from}"));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read(base).unwrap();
    // The undamaged answers, from a copy (opening a file writes to it).
    let copy = dir.join("good.redb");
    std::fs::write(&copy, &good).unwrap();
    let baseline = open_and_answer(&copy).expect("the undamaged copy opens");
    assert!(baseline.iter().all(|(_, a)| a.is_ok()), "the undamaged copy answers everything: {baseline:?}");
    let mut out = std::io::stdout().lock();
    for i in from..MUTATIONS {
        writeln!(out, "@@ {i} start").unwrap();
        out.flush().unwrap();
        let line = run_one(&dir, &good, &baseline, i);
        writeln!(out, "@@ {i} {line}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn mutated_copies_never_panic_and_never_answer_wrong() {
    if let Ok(base) = std::env::var("FLOWTIME_CORRUPTION_WORKER") {
        let from = std::env::var("FLOWTIME_CORRUPTION_FROM").unwrap().parse().unwrap();
        return worker(Path::new(&base), from);
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.redb");
    build_base(&base);

    let mut lines: BTreeMap<usize, String> = BTreeMap::new();
    let mut from = 0;
    while from < MUTATIONS {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["corruption::mutated_copies_never_panic_and_never_answer_wrong", "--exact", "--nocapture"])
            .args(["--test-threads", "1"])
            .env("FLOWTIME_CORRUPTION_WORKER", &base)
            .env("FLOWTIME_CORRUPTION_FROM", from.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let mut started = None;
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(rest) = l.strip_prefix("@@ ") else { continue };
            let (i, what) = rest.split_once(' ').unwrap();
            let i: usize = i.parse().unwrap();
            if what == "start" {
                started = Some(i);
            } else {
                lines.insert(i, what.to_string());
                started = None;
            }
        }
        match started {
            // The child died inside mutation `i`: an abort, counted, and the rest continue.
            Some(i) => {
                let tail: String =
                    String::from_utf8_lossy(&out.stderr).lines().rev().take(3).collect::<Vec<_>>().join(" | ");
                lines.insert(i, format!("ABORT\tmutation {i}\t{} {tail}", out.status));
                from = i + 1;
            }
            None if lines.len() >= MUTATIONS => break,
            None => panic!("the worker stopped early: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr)),
        }
    }

    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for l in lines.values() {
        *by_kind.entry(l.split('\t').next().unwrap()).or_default() += 1;
    }
    eprintln!("{MUTATIONS} mutated copies: {by_kind:?}");
    let bad: Vec<&String> =
        lines.values().filter(|l| !(l.starts_with("SAME") || l.starts_with("ERROR"))).take(12).collect();
    assert!(bad.is_empty(), "panics, aborts, wrong answers, unclear errors or missed damage:\n{bad:#?}");
    // The harness bites: most mutations hit data the answers depend on.
    assert!(by_kind.get("ERROR").copied().unwrap_or(0) * 2 >= MUTATIONS, "{by_kind:?}");
    assert_eq!(lines.len(), MUTATIONS);
}

/// Damage redb cannot see (a blob chunk rewritten through redb itself, with valid page
/// checksums) is caught by the blob's sha256: `DATA_LOSS` naming the blob and the file, from the
/// library, the gRPC API and the CLI, and `db check` lists it with the records that reference it.
#[test]
fn a_blob_that_does_not_match_its_sha256_is_data_loss_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.redb");
    build_base(&path);
    let sha = {
        let db = redb::Database::open(&path).unwrap();
        let r = db.begin_read().unwrap();
        let series = r.open_table(redb::TableDefinition::<&str, &[u8]>::new("series")).unwrap();
        let rec: serde_json::Value = serde_json::from_slice(series.get("served").unwrap().unwrap().value()).unwrap();
        let sha = rec["blob"].as_str().unwrap().to_string();
        let index = r.open_table(redb::TableDefinition::<&str, (u64, u64)>::new("blob_index")).unwrap();
        let (id, _) = index.get(sha.as_str()).unwrap().unwrap().value();
        drop((series, index, r));
        // 43.0 → 86.0 in bin 3: one exponent bit, as a flipped bit on disk would do.
        let tx = db.begin_write().unwrap();
        {
            let mut chunks = tx.open_table(redb::TableDefinition::<(u64, u32), &[u8]>::new("blob_chunks")).unwrap();
            let mut bytes = chunks.get((id, 0)).unwrap().unwrap().value().to_vec();
            let v = f64::from_le_bytes(bytes[24..32].try_into().unwrap());
            bytes[24..32].copy_from_slice(&(v * 2.0).to_le_bytes());
            chunks.insert((id, 0), bytes.as_slice()).unwrap();
        }
        tx.commit().unwrap();
        sha
    };

    // The session reads `served` when it is rebuilt: the open fails, naming the blob and the file.
    let err = Host::open(&path, "test", repo()).err().expect("the open fails").to_string();
    assert!(err.contains(&format!("series blob {sha}")), "{err}");
    assert!(err.contains("its values do not match their sha256"), "{err}");
    assert!(err.contains(&path.display().to_string()) && err.contains("flowtime db check"), "{err}");

    let report = flowtime::store::check_file(&path).unwrap();
    assert!(!report.ok());
    let p = report.problems.iter().find(|p| p.what == format!("series blob {sha}")).expect("the blob is listed");
    assert!(p.referenced_by.contains(&"stored series `served`".to_string()), "{p:?}");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);

    // The CLI: exit 1, the report on stdout, no panic.
    let exe = env!("CARGO_BIN_EXE_flowtime");
    let out = Command::new(exe).args(["--db", path.to_str().unwrap(), "db", "check"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("damaged: "), "{stdout}");
    assert!(
        stdout.contains(&format!("series blob {sha} is damaged: its values do not match their sha256")),
        "{stdout}"
    );
    assert!(stdout.contains("referenced by stored series `served`"), "{stdout}");
    let out = Command::new(exe).args(["--db", path.to_str().unwrap(), "query", "s1", "served"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("series blob {sha}")) && !stderr.contains("panicked"), "{stderr}");
}

/// A damaged record found while the database is open (here: a stored series' blob rewritten
/// under a server that never read it) is `DATA_LOSS` over gRPC, and `db check` on the live server
/// reports it.
#[test]
fn damage_found_at_runtime_is_data_loss_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.redb");
    {
        let mut host = Host::open(&path, "test", repo()).unwrap();
        host.put_series("x", &[1.0, 2.0, 3.0], Some(DAY_START), 5, serde_json::json!({})).unwrap();
    }
    damage_blob_of(&path, "x");
    // Nothing read `x` on open: the server starts, and reading `x` is DATA_LOSS.
    let host = Host::open(&path, "test", repo()).unwrap();
    let shared = std::sync::Arc::new(flowtime::host::SharedHost::new(host));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = flowtime::client::Client::in_process(shared, Default::default()).await;
        let err = p
            .client
            .series()
            .get_stored_series(flowtime::server::pb::GetStoredSeriesRequest { name: "x".into() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
        assert!(err.message().contains("is damaged: its values do not match their sha256"), "{}", err.message());
        let report = p.client.admin().check(flowtime::server::pb::CheckRequest {}).await.unwrap().into_inner();
        assert!(!report.ok);
        assert_eq!(report.problems[0].referenced_by, vec!["stored series `x`".to_string()]);
        assert_eq!(report.counts["series"], 1);
    });
}

/// Rewrites the first value of stored series `name`'s blob through redb (valid page checksums,
/// wrong content).
fn damage_blob_of(path: &Path, name: &str) {
    let db = redb::Database::open(path).unwrap();
    let r = db.begin_read().unwrap();
    let series = r.open_table(redb::TableDefinition::<&str, &[u8]>::new("series")).unwrap();
    let rec: serde_json::Value = serde_json::from_slice(series.get(name).unwrap().unwrap().value()).unwrap();
    let index = r.open_table(redb::TableDefinition::<&str, (u64, u64)>::new("blob_index")).unwrap();
    let (id, _) = index.get(rec["blob"].as_str().unwrap()).unwrap().unwrap().value();
    drop((series, index, r));
    let tx = db.begin_write().unwrap();
    {
        let mut chunks = tx.open_table(redb::TableDefinition::<(u64, u32), &[u8]>::new("blob_chunks")).unwrap();
        let mut bytes = chunks.get((id, 0)).unwrap().unwrap().value().to_vec();
        bytes[0] ^= 0x40;
        chunks.insert((id, 0), bytes.as_slice()).unwrap();
    }
    tx.commit().unwrap();
}

/// A damaged file through the CLI: the error names the file and `flowtime db check`, no panic
/// message reaches the terminal, and `db check` exits 1 with a report.
#[test]
fn the_cli_on_a_damaged_file_says_so_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.redb");
    build_base(&base);
    let good = std::fs::read(&base).unwrap();
    let exe = env!("CARGO_BIN_EXE_flowtime");
    let mut damaged = 0;
    for i in (0..60).map(|k| k * 7 + 3) {
        let (bytes, desc) = mutate(&good, i);
        let path: PathBuf = dir.path().join(format!("m{i}.redb"));
        std::fs::write(&path, &bytes).unwrap();
        let q =
            Command::new(exe).args(["--db", path.to_str().unwrap(), "query", "s1/v", "queue_depth"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&q.stderr);
        assert!(!stderr.contains("panicked"), "{desc}: {stderr}");
        if q.status.success() {
            continue;
        }
        damaged += 1;
        assert_eq!(q.status.code(), Some(1), "{desc}: {stderr}");
        assert!(well_worded(&stderr), "{desc}: {stderr}");
        let c = Command::new(exe).args(["--db", path.to_str().unwrap(), "db", "check"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&c.stdout);
        assert_eq!(c.status.code(), Some(1), "{desc}: {stdout} {}", String::from_utf8_lossy(&c.stderr));
        assert!(stdout.starts_with("damaged: "), "{desc}: {stdout}");
        if damaged == 10 {
            break;
        }
    }
    assert_eq!(damaged, 10, "zeroed pages damage the file");
}
