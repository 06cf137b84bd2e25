//! Concurrent readers on snapshots with a writer: every read sees one consistent revision, and
//! writes cancel in-flight reads, which retry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use flowtime::host::{Host, OpenRequest, ReadError, SharedHost, Target};
use flowtime::model::template::Supplied;

/// Every node is `level + i` (through a chain), so a consistent read has `n_i − i` equal for all i.
fn chain(n: usize) -> String {
    let mut y = String::from(
        "id: chain\nversion: \"1\"\nparameters:\n  - {name: level, type: number, default: 0}\ngrid: {bins: 2000, binSize: 1, binUnit: hours}\nnodes:\n  - {id: n0, kind: const, values: [\"{{level}}\"]}\n",
    );
    for i in 1..n {
        y.push_str(&format!("  - {{id: n{i}, kind: expr, expr: \"n{} + 1\"}}\n", i - 1));
    }
    y
}

#[test]
fn readers_never_see_a_half_applied_change() {
    let n = 300;
    let mut host = Host::new();
    host.put_template(&chain(n), "chain.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "chain".into(),
        template_version: "1".into(),
        id: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    host.create_variant("s", "v", &BTreeMap::new(), &BTreeMap::new()).unwrap();
    let shared = Arc::new(SharedHost::new(host));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for r in 0..3 {
        let (shared, stop, reads, cancelled) = (shared.clone(), stop.clone(), reads.clone(), cancelled.clone());
        readers.push(std::thread::spawn(move || {
            let target = Target::parse(if r % 2 == 0 { "s" } else { "s/v" });
            while !stop.load(Ordering::Relaxed) {
                match shared.read(0, |v| v.evaluate_target(&target, None)) {
                    Ok(ev) => {
                        let base = ev.get("n0").unwrap()[0];
                        for i in 0..n {
                            let s = ev.get(&format!("n{i}")).unwrap();
                            assert!(s.iter().all(|x| *x == base + i as f64), "inconsistent read: n{i} vs level {base}");
                        }
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(ReadError::Cancelled) => {
                        cancelled.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
        }));
    }
    for level in 1..=40 {
        shared.write(|h| {
            h.set_session_params("s", &BTreeMap::from([("level".to_string(), Supplied::Text(level.to_string()))]))
                .unwrap()
        });
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    eprintln!("{} consistent reads, {} cancelled", reads.load(Ordering::Relaxed), cancelled.load(Ordering::Relaxed));
    assert!(reads.load(Ordering::Relaxed) > 0);
    // The final state is visible to a fresh read.
    let ev = shared.read(3, |v| v.evaluate_target(&Target::parse("s/v"), None)).unwrap();
    assert_eq!(ev.get("n0").unwrap()[0], 40.0);
}
