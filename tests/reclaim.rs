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
    // (every 4 MiB of new blobs while the live bytes are below that) keeps the file near that
    // allowance plus the live data.
    assert!(peak < 12 << 20, "the file reached {peak} bytes during the re-puts");
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
