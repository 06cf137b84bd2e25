//! Run directories (§8): byte-identical across runs except `createdUtc`, manifest hashes, reuse
//! of an existing run, and the file formats.

use std::collections::BTreeMap;
use std::path::Path;

use flowtime::artifacts::{RunInput, series_csv, verify_run, write_run};
use flowtime::host::Host;
use flowtime::model::template::Supplied;

fn run_into(out: &Path, q0: &str) -> flowtime::artifacts::RunOutput {
    try_run_into(out, q0).unwrap_or_else(|d| panic!("{}", d.render()))
}

fn try_run_into(out: &Path, q0: &str) -> Result<flowtime::artifacts::RunOutput, flowtime::diag::Diagnostics> {
    let tpl = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/order-system.yaml");
    let mut host = Host::new();
    let mut supplied = BTreeMap::new();
    supplied.insert("q0".to_string(), Supplied::Text(q0.into()));
    let m = host.load_file(&tpl, &supplied, None).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    let ws = host.warnings(&m, &ev).unwrap();
    let inputs = m.input_data();
    write_run(
        out,
        &RunInput {
            source: &m.source,
            params: &m.params,
            inputs: &inputs,
            evaluation: &ev,
            warnings: &ws,
            tenant: None,
        },
    )
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["", "series"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                out.insert(format!("{sub}/{}", p.file_name().unwrap().to_string_lossy()), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn two_runs_are_byte_identical_except_created_utc() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ra = run_into(a.path(), "5");
    let rb = run_into(b.path(), "5");
    assert_eq!(ra.run_id, rb.run_id);
    let (fa, fb) = (files(&ra.dir), files(&rb.dir));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        if name == "/run.json" {
            let strip = |b: &[u8]| {
                let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
                v.as_object_mut().unwrap().remove("createdUtc");
                v
            };
            assert_eq!(strip(bytes), strip(&fb[name]));
        } else {
            assert!(bytes == &fb[name], "{name} differs between runs");
        }
    }
    // Different parameters give a different run.
    assert_ne!(run_into(a.path(), "6").run_id, ra.run_id);
}

#[test]
fn manifest_covers_every_file_and_existing_runs_are_verified_not_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_into(tmp.path(), "0");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.dir.join("manifest.json")).unwrap()).unwrap();
    let listed: Vec<&String> = manifest["files"].as_object().unwrap().keys().collect();
    let on_disk: Vec<String> = files(&r.dir)
        .keys()
        .map(|k| k.trim_start_matches('/').to_string())
        .filter(|k| k != "manifest.json" && k != "run.json")
        .collect();
    assert_eq!(listed.len(), on_disk.len());
    assert!(on_disk.iter().all(|f| listed.contains(&f)));
    let again = run_into(tmp.path(), "0");
    assert!(again.reused);
    // Tampering is detected.
    std::fs::write(r.dir.join("series/served.csv"), "bin_index,value\n0,1\n").unwrap();
    let err = verify_run(&r.dir).unwrap_err();
    assert!(err.0[0].message.contains("series/served.csv"), "{}", err.0[0].message);
}

/// A run being reused is verified against its manifest the same way in a directory and in an
/// object store: a changed file and a missing one are named, and nothing is rewritten.
#[test]
fn reused_runs_are_verified_alike_in_a_directory_and_an_object_store() {
    let tmp = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(tmp.path().join("bucket")).unwrap().to_string();
    for (out, dir) in
        [(tmp.path().join("runs"), None), (Path::new(&url).to_path_buf(), Some(tmp.path().join("bucket")))]
    {
        let r = run_into(&out, "0");
        let dir = dir.map_or(r.dir.clone(), |d| d.join(&r.run_id));
        assert!(run_into(&out, "0").reused, "{}", out.display());
        std::fs::write(dir.join("series/served.csv"), "bin_index,value\n0,1\n").unwrap();
        let err = try_run_into(&out, "0").unwrap_err();
        assert_eq!(err.0[0].code, "run_corrupt", "{}", out.display());
        let err = err.render();
        assert!(err.contains("series/served.csv does not match its manifest hash"), "{err}");
        std::fs::remove_file(dir.join("series/served.csv")).unwrap();
        let err = try_run_into(&out, "0").unwrap_err();
        assert_eq!(err.0[0].code, "run_corrupt", "{}", out.display());
        let err = err.render();
        assert!(err.contains("series/served.csv is missing"), "{err}");
        assert!(!dir.join("series/served.csv").exists(), "a run being reused was rewritten");
    }
}

#[test]
fn run_json_and_index_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run_into(tmp.path(), "0");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(r.dir.join("run.json")).unwrap()).unwrap();
    for key in [
        "schemaVersion",
        "runId",
        "runHash",
        "engineVersion",
        "grid",
        "templateId",
        "templateVersion",
        "parameters",
        "inputs",
        "provenance",
        "warnings",
        "series",
        "createdUtc",
    ] {
        assert!(run.get(key).is_some(), "run.json lacks {key}");
    }
    assert_eq!(run["grid"]["binMinutes"], 5);
    assert_eq!(run["templateId"], "order-system");
    assert!(run["inputs"].as_array().unwrap().iter().any(|i| i["ref"] == "file:data/order-system/served.csv"));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.dir.join("series/index.json")).unwrap()).unwrap();
    let series = index["series"].as_array().unwrap();
    let kind = |id: &str| series.iter().find(|s| s["id"] == id).unwrap()["kind"].clone();
    assert_eq!(kind("queue_depth"), "stock");
    assert_eq!(kind("order_service_utilization"), "ratio");
    assert_eq!(kind("order_service_latency_min"), "time");
    assert_eq!(kind("served"), "flow");
    let cap = series.iter().find(|s| s["id"] == "capacity_inferred").unwrap();
    assert_eq!(cap["inference"]["method"], "saturation");
    assert!(cap["inference"]["saturated_bins"].as_u64().unwrap() > 0);
    // Ids are in order.
    let ids: Vec<&str> = series.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}

#[test]
fn csv_format_is_display_with_negative_zero_as_zero() {
    assert_eq!(
        series_csv(&[1.5, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.1 + 0.2]),
        "bin_index,value\n0,1.5\n1,0\n2,NaN\n3,inf\n4,-inf\n5,0.30000000000000004\n"
    );
}
