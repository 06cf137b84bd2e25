//! The redb store itself: round trips, content addressing, storage overhead, and crash safety
//! under SIGKILL.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use flowtime::host::Host;
use flowtime::store::{SeriesRecord, Store};

#[test]
fn blobs_round_trip_bit_for_bit_and_are_content_addressed() {
    let store = Store::in_memory().unwrap();
    let values: Vec<f64> = (0..1234)
        .map(|i| match i % 5 {
            0 => f64::NAN,
            1 => -0.0,
            2 => f64::INFINITY,
            _ => i as f64 * 0.1,
        })
        .collect();
    let sha = store.write(|w| w.put_blob(&values)).unwrap();
    let again = store.write(|w| w.put_blob(&values)).unwrap();
    assert_eq!(sha, again);
    assert_eq!(store.read().unwrap().counts().unwrap()["blobs"], 1, "equal content is stored once");
    let back = store.read().unwrap().blob(&sha).unwrap();
    assert_eq!(back.len(), values.len());
    assert!(back.iter().zip(&values).all(|(a, b)| a.to_bits() == b.to_bits()));
    let rec = SeriesRecord {
        name: "x".into(),
        start_minutes: Some(60),
        bin_minutes: 5,
        bins: 1234,
        blob: sha,
        provenance: serde_json::json!({"source": "t"}),
        gaps: vec![3],
        stored_utc: "2026-01-01T00:00:00Z".into(),
    };
    store.write(|w| w.put_series(&rec)).unwrap();
    assert_eq!(store.read().unwrap().series("x").unwrap(), Some(rec));
}

#[test]
fn a_failed_write_transaction_leaves_nothing_behind() {
    let store = Store::in_memory().unwrap();
    let r: Result<(), _> = store.write(|w| {
        w.put_blob(&[1.0, 2.0])?;
        Err(flowtime::store::StoreError::Invalid("rejected".into()))
    });
    assert!(r.is_err());
    assert_eq!(store.read().unwrap().counts().unwrap()["blobs"], 0);
}

/// Storage overhead (§10): file size ÷ raw f64 bytes after loading 8,760-bin series into an empty
/// database and compacting stays at most 1.3.
#[test]
fn stored_series_overhead_is_at_most_1_3_of_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("series.redb");
    let n = 200;
    let bins = 8760;
    {
        let mut host = Host::open(&path, "test", Path::new(".")).unwrap();
        for s in 0..n {
            let values: Vec<f64> = (0..bins).map(|t| ((t * 31 + s * 7) % 977) as f64 * 0.25 + s as f64).collect();
            host.put_series(
                &format!("node_{s:03}_arrivals"),
                &values,
                Some(0),
                60,
                serde_json::json!({"source": "bench"}),
            )
            .unwrap();
        }
    }
    let mut store = Store::open(&path, "test").unwrap();
    store.compact().unwrap();
    drop(store);
    let size = std::fs::metadata(&path).unwrap().len() as f64;
    let raw = (n * bins * 8) as f64;
    let ratio = size / raw;
    eprintln!("storage overhead: {size} bytes for {raw} raw bytes = {ratio:.3}×");
    assert!(ratio <= 1.3, "overhead {ratio:.3}× exceeds 1.3×");
}

/// A tiny linear congruential generator: a fixed seed gives the same kill points every run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// A child process writes 1,000 variants through `flowtime batch` and is killed with SIGKILL at
/// random points; after every kill the database opens cleanly and holds every variant the child
/// reported as committed.
#[test]
fn sigkill_never_loses_a_committed_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.redb");
    let tpl = dir.path().join("tiny.yaml");
    std::fs::write(&tpl, crate::sessions::TINY).unwrap();
    let exe = env!("CARGO_BIN_EXE_flowtime");
    let st = Command::new(exe)
        .args(["--db", db.to_str().unwrap(), "session", "open", tpl.to_str().unwrap(), "--name", "s"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));

    let total = 1000usize;
    let mut rng = Lcg(0x5eed_f10e);
    let mut committed: Vec<usize> = Vec::new();
    let mut kills = 0;
    let mut next = 0usize;
    while next < total {
        let mut child = Command::new(exe)
            .args(["--db", db.to_str().unwrap(), "batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let first = next;
        let lines: String = (first..total).map(|i| format!("variant create s v{i:04} -p k={i}\n")).collect();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(lines.as_bytes());
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<usize>();
        let reader = std::thread::spawn(move || {
            let mut oks = Vec::new();
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ok ").and_then(|n| n.parse::<usize>().ok()) {
                    oks.push(first + n - 1);
                    let _ = tx.send(oks.len());
                }
            }
            oks
        });
        // Kill after a random number of reported commits plus a random sub-millisecond to few-
        // millisecond delay, so kills land both between and inside transactions, at a rate that
        // does not depend on the machine's speed.
        let wanted = 5 + (rng.next() % 40) as usize;
        while let Ok(seen) = rx.recv() {
            if seen >= wanted {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(rng.next() % 3000));
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        let _ = writer.join();
        let oks = reader.join().unwrap();
        committed.extend(&oks);

        let host = Host::open(&db, "test", Path::new(".")).unwrap_or_else(|e| panic!("reopen after kill {kills}: {e}"));
        let info = host.session_info("s").unwrap();
        for v in &committed {
            assert!(
                info.variants.contains(&format!("v{v:04}")),
                "variant v{v:04} was reported committed but is missing after kill {kills}"
            );
        }
        // Variants are created in order: continue after the last one present.
        next =
            info.variants.iter().filter_map(|v| v.strip_prefix('v')?.parse::<usize>().ok()).max().map_or(0, |m| m + 1);
        if finished {
            break;
        }
    }
    eprintln!("{kills} kills, {} writes reported committed", committed.len());
    assert!(kills >= 20, "only {kills} kills");
    let host = Host::open(&db, "test", Path::new(".")).unwrap();
    assert_eq!(host.session_info("s").unwrap().variants.len(), total);
}

/// What is stored is bounded like what a template may declare: a series window a grid could read
/// (bin size, length, ending by 9999-12-31), names that are names (not `.`, `..`, `-a`,
/// `.hidden`), and a tenant label of reasonable length. A refused write stores nothing.
#[test]
fn stored_windows_names_and_labels_are_bounded() {
    use flowtime::host::OpenRequest;
    let mut host = Host::new();
    let err = |r: Result<bool, flowtime::host::HostError>| r.unwrap_err().to_string();
    let e = err(host.put_series("x", &[1.0], Some(0), u64::MAX, serde_json::json!({})));
    assert!(e.contains("bin_minutes must be between 1 and"), "{e}");
    let e = err(host.put_series("x", &[1.0], Some(0), 0, serde_json::json!({})));
    assert!(e.contains("bin_minutes"), "{e}");
    let e = err(host.put_series("x", &[], Some(0), 5, serde_json::json!({})));
    assert!(e.contains("between 1 and"), "{e}");
    // 9999-12-30T00:00Z plus two days of hourly bins ends after 9999-12-31.
    let late = 4_223_368_800;
    let e = err(host.put_series("x", &[1.0; 48], Some(late), 60, serde_json::json!({})));
    assert!(e.contains("9999-12-31"), "{e}");
    assert!(host.stored_series().unwrap().is_empty(), "nothing was stored");
    assert!(host.put_series("x", &[1.0; 48], Some(0), 60, serde_json::json!({})).unwrap());

    host.put_template(crate::sessions::TINY, "tiny.yaml").unwrap();
    let open = |host: &mut Host, id: &str, tenant: Option<String>| {
        host.open_session(OpenRequest {
            template_id: "tiny".into(),
            template_version: "1".into(),
            id: Some(id.into()),
            tenant,
            ..Default::default()
        })
    };
    for bad in [".", "..", "-a", ".hidden"] {
        let e = open(&mut host, bad, None).unwrap_err().to_string();
        assert!(e.contains("must be 1–128 letters"), "{bad}: {e}");
    }
    let e = open(&mut host, "s", Some("t".repeat(1 << 20))).unwrap_err().to_string();
    assert!(e.contains("tenant is 1048576 bytes; at most 256"), "{e}");
    open(&mut host, "s", Some("team-a".into())).unwrap();
    for bad in [".", "..", "-a", ".hidden"] {
        let e = host.create_variant("s", bad, &Default::default(), &Default::default()).unwrap_err().to_string();
        assert!(e.contains("must be 1–128 letters"), "{bad}: {e}");
    }
    assert!(host.session_info("s").unwrap().variants.is_empty());
}
