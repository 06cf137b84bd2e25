//! The incremental database (§9, §10): a real redb file in a temp dir; sessions and variants
//! survive reopening; unknown schema versions are refused untouched; bad requests leave the
//! store unchanged; variants share work outside an override's cone.

use std::collections::BTreeMap;
use std::path::Path;

use flowtime::host::{Host, HostError, OpenRequest, Target};
use flowtime::model::template::Supplied;

pub(crate) const TINY: &str = "id: tiny\nversion: \"1\"\n\
parameters:\n  - {name: k, type: number, default: 2}\n  - {name: base, type: number, default: 1}\n  - {name: label, type: string, default: x}\n\
grid: {bins: 4, binSize: 1, binUnit: hours, start: \"2025-10-07T00:00:00Z\"}\n\
nodes:\n\
  - {id: a, kind: const, values: [\"{{base}}\"]}\n\
  - {id: load, kind: const, values: [1, 2, 3, 4]}\n\
  - {id: b, kind: expr, expr: \"a * {{k}} + load\"}\n\
  - {id: c, kind: expr, expr: \"b + 1\"}\n\
  - {id: d, kind: expr, expr: \"a + 10\"}\n";

pub(crate) fn p(pairs: &[(&str, &str)]) -> BTreeMap<String, Supplied> {
    pairs.iter().map(|(k, v)| (k.to_string(), Supplied::Text(v.to_string()))).collect()
}

pub(crate) fn open_db(path: &Path) -> Host {
    Host::open(path, "test", Path::new(".")).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn open_tiny(host: &mut Host, id: &str) {
    host.put_template(TINY, "tiny.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "tiny".into(),
        template_version: "1".into(),
        params: p(&[("k", "3")]),
        id: Some(id.into()),
        ..Default::default()
    })
    .unwrap();
}

fn t(s: &str) -> Target {
    Target::parse(s)
}

fn values(host: &Host, target: &str, id: &str) -> Vec<f64> {
    host.evaluate_target(&t(target), None).unwrap().get(id).unwrap().to_vec()
}

#[test]
fn templates_are_immutable_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = open_db(&dir.path().join("f.redb"));
    assert_eq!(host.put_template(TINY, "tiny.yaml").unwrap(), ("tiny".into(), "1".into(), true));
    assert_eq!(
        host.put_template(TINY, "tiny.yaml").unwrap(),
        ("tiny".into(), "1".into(), false),
        "identical text is a no-op"
    );
    let changed = TINY.replace("a + 10", "a + 11");
    match host.put_template(&changed, "tiny.yaml") {
        Err(HostError::AlreadyExists(m)) => assert!(m.contains("tiny") && m.contains("new version"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(host.template("tiny", "1").unwrap().text, TINY);
    let bad = TINY.replace("a + 10", "a + nope");
    let bad = bad.replace("version: \"1\"", "version: \"2\"");
    match host.put_template(&bad, "tiny.yaml") {
        Err(HostError::BadInput(d)) => assert!(d.0[0].message.contains("unknown series `nope`")),
        other => panic!("{other:?}"),
    }
    assert!(host.template("tiny", "2").is_err(), "an invalid template is not stored");
}

#[test]
fn reopen_restores_sessions_variants_and_parameters_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.redb");
    let (before_s, before_v, info_s, info_v);
    {
        let mut host = open_db(&path);
        open_tiny(&mut host, "s");
        host.create_variant(
            "s",
            "v",
            &p(&[("base", "5")]),
            &BTreeMap::from([("load".to_string(), vec![0.5, -0.0, f64::NAN, 7.0])]),
        )
        .unwrap();
        before_s = host.evaluate_target(&t("s"), None).unwrap();
        before_v = host.evaluate_target(&t("s/v"), None).unwrap();
        info_s = host.session_info("s").unwrap();
        info_v = host.variant_info("s", "v").unwrap();
    }
    let host = open_db(&path);
    assert_eq!(host.session_info("s").unwrap(), info_s);
    assert_eq!(host.variant_info("s", "v").unwrap(), info_v);
    for (target, before) in [("s", &before_s), ("s/v", &before_v)] {
        let after = host.evaluate_target(&t(target), None).unwrap();
        for (id, s) in &before.compiled.by_id {
            let (x, y) = (&before.series[s], after.get(id).unwrap());
            assert!(x == y, "{target}/{id} differs after reopen");
        }
    }
    // The override kept its bits: -0.0 and NaN survive the store.
    let b = values(&host, "s/v", "b");
    assert_eq!(b[1].to_bits(), (5.0f64 * 3.0 + -0.0).to_bits());
    assert!(b[2].is_nan());
    // After warm-up, a repeated query evaluates nothing.
    assert_eq!(host.evaluate_target(&t("s/v"), None).unwrap().accounting.nodes_evaluated, 0);
}

#[test]
fn unknown_schema_version_is_refused_and_the_file_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut t = tx.open_table(meta).unwrap();
            t.insert("schema_version", &99u64.to_le_bytes()[..]).unwrap();
        }
        tx.commit().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Host::open(&path, "test", Path::new(".")).err().expect("must refuse");
    let msg = err.to_string();
    assert!(msg.contains("schema version 99") && msg.contains("left unchanged"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file was modified");
}

#[test]
fn a_second_process_is_told_who_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.redb");
    let _host = Host::open(&path, "`flowtime serve` (pid 1); use `--server`", Path::new(".")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowtime"))
        .args(["--db", path.to_str().unwrap(), "session", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by `flowtime serve`") && err.contains("--server"), "{err}");
}

#[test]
fn bad_requests_are_clear_errors_and_leave_the_store_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = open_db(&dir.path().join("f.redb"));
    open_tiny(&mut host, "s");
    host.create_variant("s", "v", &p(&[("k", "4")]), &BTreeMap::new()).unwrap();
    let counts = host.store().read().unwrap().counts().unwrap();
    let session = host.session_info("s").unwrap();
    let expect_bad = |r: Result<flowtime::host::VariantInfo, HostError>, needle: &str| match r {
        Err(e) => assert!(e.to_string().contains(needle), "`{e}` lacks `{needle}`"),
        Ok(v) => panic!("accepted: {v:?}"),
    };
    expect_bad(host.create_variant("nope", "x", &BTreeMap::new(), &BTreeMap::new()), "session `nope` not found");
    expect_bad(host.create_variant("s", "x", &p(&[("zzz", "1")]), &BTreeMap::new()), "unknown parameter `zzz`");
    expect_bad(host.create_variant("s", "x", &p(&[("k", "fast")]), &BTreeMap::new()), "parameter `k` (number)");
    expect_bad(
        host.create_variant("s", "x", &BTreeMap::new(), &BTreeMap::from([("load".to_string(), vec![1.0; 3])])),
        "series for `load` has 3 values; the grid has 4 bins",
    );
    expect_bad(
        host.create_variant("s", "x", &BTreeMap::new(), &BTreeMap::from([("b".to_string(), vec![1.0; 4])])),
        "`b` is not a const node",
    );
    expect_bad(host.create_variant("s", "v", &BTreeMap::new(), &BTreeMap::new()), "variant `s/v` already exists");
    match host.open_session(OpenRequest {
        template_id: "tiny".into(),
        template_version: "1".into(),
        id: Some("s".into()),
        ..Default::default()
    }) {
        Err(HostError::AlreadyExists(m)) => assert!(m.contains("session `s`")),
        other => panic!("{other:?}"),
    }
    match host.open_session(OpenRequest {
        template_id: "tiny".into(),
        template_version: "9".into(),
        ..Default::default()
    }) {
        Err(HostError::NotFound(m)) => assert!(m.contains("template `tiny` version `9`")),
        other => panic!("{other:?}"),
    }
    assert_eq!(host.store().read().unwrap().counts().unwrap(), counts);
    assert_eq!(host.session_info("s").unwrap(), session);
    assert_eq!(host.variant_info("s", "v").unwrap().params["k"], flowtime::model::params::ParamValue::Number(4.0));
}

/// A layered 1,000-node model whose nodes each read two earlier ones; parameter `leaf_k` is read
/// only by the last node, `root` by the first. Integer arithmetic modulo 2^20 keeps every value
/// exact and bounded, so a change reaches every node of its cone (no change is rounded away).
fn big_template(n: usize) -> (String, Vec<Vec<usize>>) {
    let mut y = String::from(
        "id: big\nversion: \"1\"\nparameters:\n  - {name: root, type: number, default: 1}\n  - {name: mid, type: number, default: 1}\n  - {name: leaf_k, type: number, default: 1}\ngrid: {bins: 48, binSize: 1, binUnit: hours}\nnodes:\n  - {id: n0, kind: const, values: [\"{{root}}\"]}\n",
    );
    let mut reads = vec![vec![]];
    for i in 1..n {
        let a = i - 1;
        let b = (i * 7919) % i;
        let extra = if i == n / 2 {
            " + {{mid}}"
        } else if i == n - 1 {
            " + {{leaf_k}}"
        } else {
            ""
        };
        y.push_str(&format!("  - {{id: n{i}, kind: expr, expr: \"MOD(n{a} + 2 * n{b}{extra} + {i}, 1048576)\"}}\n"));
        reads.push(if a == b { vec![a] } else { vec![a, b] });
    }
    (y, reads)
}

fn cone(reads: &[Vec<usize>], root: usize) -> usize {
    let mut hit = vec![false; reads.len()];
    hit[root] = true;
    for (i, r) in reads.iter().enumerate() {
        if r.iter().any(|d| hit[*d]) {
            hit[i] = true;
        }
    }
    hit.iter().filter(|h| **h).count()
}

#[test]
fn parameter_changes_reevaluate_exactly_their_cone_and_variants_share_the_rest() {
    let (text, reads) = big_template(1000);
    let dir = tempfile::tempdir().unwrap();
    let mut host = open_db(&dir.path().join("f.redb"));
    host.put_template(&text, "big.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "big".into(),
        template_version: "1".into(),
        id: Some("a".into()),
        ..Default::default()
    })
    .unwrap();
    let cold = host.evaluate_target(&t("a"), None).unwrap();
    assert_eq!((cold.accounting.nodes_total, cold.accounting.nodes_evaluated), (1000, 1000));

    for (param, node, value) in [("leaf_k", 999, "2"), ("mid", 500, "3"), ("root", 0, "4")] {
        host.set_session_params("a", &p(&[(param, value)])).unwrap();
        let ev = host.evaluate_target(&t("a"), None).unwrap();
        assert_eq!(ev.accounting.nodes_evaluated as usize, cone(&reads, node), "change of {param}");
        // The same value again is no change at all.
        host.set_session_params("a", &p(&[(param, value)])).unwrap();
        assert_eq!(host.evaluate_target(&t("a"), None).unwrap().accounting.nodes_evaluated, 0, "{param} unchanged");
    }

    // Variant B of A differing in `mid` evaluates only `mid`'s cone.
    host.create_variant("a", "b", &p(&[("mid", "7")]), &BTreeMap::new()).unwrap();
    let evb = host.evaluate_target(&t("a/b"), None).unwrap();
    let mid_cone = cone(&reads, 500);
    assert_eq!(evb.accounting.nodes_evaluated as usize, mid_cone);
    assert_eq!(evb.accounting.nodes_reused as usize, 1000 - mid_cone);

    // Comparing A and B evaluates nothing new; everything outside the cone is identical by
    // construction.
    let cmp = host.compare(&t("a"), &t("a/b")).unwrap();
    assert_eq!(cmp.accounting.nodes_evaluated, 0);
    let by_construction = cmp.series.iter().filter(|d| d.identical_by_construction).count();
    assert_eq!(by_construction, 1000 - mid_cone);
    assert!(cmp.series.iter().filter(|d| !d.identical_by_construction).all(|d| !d.bins_differ.is_empty()));
}

const TELE: &str = "id: tele\nversion: \"1\"\n\
parameters:\n  - {name: demand_source, type: series, default: \"series:demand\"}\n\
grid: {bins: 4, binSize: 5, binUnit: minutes, start: \"2025-10-07T00:10:00Z\"}\n\
nodes:\n\
  - {id: demand, kind: const, source: \"{{demand_source}}\"}\n\
  - {id: other, kind: const, values: [1, 1, 1, 1]}\n\
  - {id: doubled, kind: expr, expr: \"demand * 2\"}\n\
  - {id: plus, kind: expr, expr: \"other + 1\"}\n";

/// Minutes since the epoch of 2025-10-07T00:00Z.
const DAY_START: i64 = 29_329_920;

#[test]
fn series_references_read_stored_telemetry_by_window_and_follow_replacements() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.redb");
    let mut host = open_db(&path);
    let tel: Vec<f64> = (0..10).map(|i| i as f64 * 10.0).collect();
    host.put_series("demand", &tel, Some(DAY_START), 5, serde_json::json!({"source": "test"})).unwrap();
    host.put_template(TELE, "tele.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "tele".into(),
        template_version: "1".into(),
        id: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    // The model starts at 00:10, i.e. stored bin 2.
    assert_eq!(values(&host, "s", "doubled"), vec![40.0, 60.0, 80.0, 100.0]);
    let rev = host.session_info("s").unwrap().revision;

    // A corrected series: only `demand` and its reader re-evaluate.
    let mut fixed = tel.clone();
    fixed[3] = 35.0;
    assert!(host.put_series("demand", &fixed, Some(DAY_START), 5, serde_json::json!({"source": "test"})).unwrap());
    let ev = host.evaluate_target(&t("s"), None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, 2);
    assert_eq!(ev.get("doubled").unwrap().to_vec(), vec![40.0, 70.0, 80.0, 100.0]);
    assert_eq!(host.session_info("s").unwrap().revision, rev + 1, "the change bumps the session's revision");
    // Storing identical content again is not a change.
    assert!(!host.put_series("demand", &fixed, Some(DAY_START), 5, serde_json::json!({"source": "test"})).unwrap());

    // Reopen: still live, still the corrected values.
    drop(host);
    let host = open_db(&path);
    assert_eq!(values(&host, "s", "doubled"), vec![40.0, 70.0, 80.0, 100.0]);
}

#[test]
fn a_stored_series_that_does_not_cover_the_window_names_both_grids() {
    let mut host = Host::new();
    host.put_series("demand", &[1.0; 3], Some(DAY_START), 5, serde_json::json!({})).unwrap();
    host.put_template(TELE, "tele.yaml").unwrap();
    let err = host
        .open_session(OpenRequest { template_id: "tele".into(), template_version: "1".into(), ..Default::default() })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2025-10-07T00:00:00Z + 3 × 5 min") && err.contains("2025-10-07T00:10:00Z + 4 × 5 min"),
        "{err}"
    );
    host.put_series("hourly", &[1.0; 10], Some(DAY_START), 60, serde_json::json!({})).unwrap();
    let err = host
        .open_session(OpenRequest {
            template_id: "tele".into(),
            template_version: "1".into(),
            params: p(&[("demand_source", "series:hourly")]),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("× 60 min") && err.contains("× 5 min"), "{err}");
    assert_eq!(host.session_ids().len(), 0);
}

#[test]
fn values_bound_to_a_series_parameter_become_a_content_addressed_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.redb");
    {
        let mut host = open_db(&path);
        host.put_series("demand", &[5.0; 10], Some(DAY_START), 5, serde_json::json!({})).unwrap();
        host.put_template(TELE, "tele.yaml").unwrap();
        host.open_session(OpenRequest {
            template_id: "tele".into(),
            template_version: "1".into(),
            id: Some("s".into()),
            ..Default::default()
        })
        .unwrap();
        host.evaluate_target(&t("s"), None).unwrap();
        let v = host
            .create_variant(
                "s",
                "what_if",
                &BTreeMap::new(),
                &BTreeMap::from([("demand_source".to_string(), vec![1.0, 2.0, 3.0, 4.0])]),
            )
            .unwrap();
        let flowtime::model::params::ParamValue::Series(r) = &v.params["demand_source"] else { panic!("{v:?}") };
        assert!(r.starts_with("snapshot:"), "{r}");
        let ev = host.evaluate_target(&t("s/what_if"), None).unwrap();
        assert_eq!(ev.get("doubled").unwrap().to_vec(), vec![2.0, 4.0, 6.0, 8.0]);
        // `other` and `plus` are shared with the session.
        assert_eq!(ev.accounting.nodes_evaluated, 2);
        let err = host
            .create_variant("s", "short", &BTreeMap::new(), &BTreeMap::from([("demand_source".to_string(), vec![1.0])]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("parameter `demand_source` has 1 values; the grid has 4 bins"), "{err}");
    }
    let host = open_db(&path);
    assert_eq!(values(&host, "s/what_if", "doubled"), vec![2.0, 4.0, 6.0, 8.0]);
}

/// TELE at another bin size, same start and bin count (a different window over the same name).
const TELE_10: &str = "id: tele10\nversion: \"1\"\n\
grid: {bins: 4, binSize: 10, binUnit: minutes, start: \"2025-10-07T00:10:00Z\"}\n\
nodes:\n\
  - {id: demand, kind: const, source: \"series:demand\"}\n";

#[test]
fn a_replacement_that_would_strand_an_open_session_is_refused_and_the_file_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.redb");
    let mut host = open_db(&path);
    let tel: Vec<f64> = (0..10).map(|i| i as f64).collect();
    host.put_series("demand", &tel, Some(DAY_START), 5, serde_json::json!({})).unwrap();
    host.put_template(TELE, "tele.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "tele".into(),
        template_version: "1".into(),
        id: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    let rev = host.session_info("s").unwrap().revision;
    // Two values no longer cover the session's window (stored bins 2..6).
    let err = host.put_series("demand", &[1.0, 2.0], Some(DAY_START), 5, serde_json::json!({})).unwrap_err();
    assert!(matches!(err, HostError::FailedPrecondition(_)), "{err}");
    assert!(err.to_string().contains("`s`") || err.to_string().contains(" s"), "names the session: {err}");
    assert_eq!(host.stored_series_values("demand").unwrap().1, tel, "the stored series is untouched");
    assert_eq!(host.session_info("s").unwrap().revision, rev);
    assert_eq!(values(&host, "s", "doubled"), vec![4.0, 6.0, 8.0, 10.0]);
    drop(host);
    let mut host = open_db(&path);
    assert_eq!(values(&host, "s", "doubled"), vec![4.0, 6.0, 8.0, 10.0]);
    // Once no session reads the window, the replacement is accepted, and a new reader is told.
    host.close_session("s").unwrap();
    assert!(host.put_series("demand", &[1.0, 2.0], Some(DAY_START), 5, serde_json::json!({})).unwrap());
    let err = host
        .open_session(OpenRequest { template_id: "tele".into(), template_version: "1".into(), ..Default::default() })
        .unwrap_err()
        .to_string();
    assert!(err.contains("grid_mismatch") || err.contains("covers"), "{err}");
    drop(host);
    open_db(&path);
}

#[test]
fn stored_slices_are_told_apart_by_bin_size_and_by_position() {
    let mut host = Host::new();
    let tel: Vec<f64> = (0..10).map(|i| i as f64).collect();
    host.put_series("demand", &tel, Some(DAY_START), 5, serde_json::json!({})).unwrap();
    host.put_template(TELE, "tele.yaml").unwrap();
    host.put_template(TELE_10, "tele10.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "tele".into(),
        template_version: "1".into(),
        id: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    // Same start and bin count, 10-minute bins: the 5-minute series does not fit.
    let err = host
        .open_session(OpenRequest { template_id: "tele10".into(), template_version: "1".into(), ..Default::default() })
        .unwrap_err()
        .to_string();
    assert!(err.contains("× 10 min") && err.contains("× 5 min"), "{err}");

    // The same values stored one bin earlier: the window reads different values, so the input's
    // identity changes too (watchers, run hashes).
    let before = host.view().unit_reads(&t("s")).unwrap().unwrap();
    assert!(host.put_series("demand", &tel, Some(DAY_START - 5), 5, serde_json::json!({})).unwrap());
    assert_eq!(values(&host, "s", "demand"), vec![3.0, 4.0, 5.0, 6.0]);
    let after = host.view().unit_reads(&t("s")).unwrap().unwrap();
    assert_ne!(before, after, "the shifted slice is a new input");

    // A reload that only refreshes provenance changes nothing a reader sees.
    let rev = host.session_info("s").unwrap().revision;
    assert!(!host.put_series("demand", &tel, Some(DAY_START - 5), 5, serde_json::json!({"source": "again"})).unwrap());
    assert_eq!(host.stored_series_values("demand").unwrap().0.provenance, serde_json::json!({"source": "again"}));
    assert_eq!(host.session_info("s").unwrap().revision, rev);
    let ev = host.evaluate_target(&t("s"), None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, 0);
}

const FILES: &str = "id: files\nversion: \"1\"\n\
parameters:\n  - {name: dir, type: string, default: a}\n  - {name: f, type: string, default: x}\n  - {name: src, type: series, default: \"file:a/x.csv\"}\n\
grid: {bins: 2, binSize: 1, binUnit: hours}\n\
nodes:\n\
  - {id: picked, kind: const, source: \"file:{{dir}}/{{f}}.csv\"}\n\
  - {id: modelled, kind: const, values: [7, 7]}\n\
  - {id: chosen, kind: const, source: \"{{src}}\"}\n";

#[test]
fn variants_follow_session_parameter_changes_into_new_inputs_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    for (d, f, v) in [("a", "x", 1.0), ("a", "y", 2.0), ("b", "x", 3.0), ("b", "y", 4.0)] {
        std::fs::create_dir_all(root.join(d)).unwrap();
        std::fs::write(root.join(d).join(format!("{f}.csv")), format!("bin_index,value\n0,{v}\n1,{v}\n")).unwrap();
    }
    let path = dir.path().join("f.redb");
    let open = || Host::open(&path, "test", &root).unwrap_or_else(|e| panic!("open: {e}"));
    let mut host = open();
    host.put_template(FILES, "files.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "files".into(),
        template_version: "1".into(),
        id: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    // `v` reads another directory, and binds `src` to what the session reads too.
    host.create_variant("s", "v", &p(&[("dir", "b"), ("src", "file:a/x.csv")]), &BTreeMap::new()).unwrap();
    assert_eq!(values(&host, "s/v", "picked"), vec![3.0, 3.0]);
    // The session moves on: `f` changes what the variant reads (a file nobody read yet), and the
    // session stops reading a/x.csv, which the variant still does.
    host.set_session_params("s", &p(&[("f", "y"), ("src", "modelled")])).unwrap();
    assert_eq!(values(&host, "s", "picked"), vec![2.0, 2.0]);
    assert_eq!(values(&host, "s", "chosen"), vec![7.0, 7.0]);
    assert_eq!(values(&host, "s/v", "picked"), vec![4.0, 4.0]);
    assert_eq!(values(&host, "s/v", "chosen"), vec![1.0, 1.0]);
    // Pinned: a changed or deleted file is never reread, in memory or after reopening.
    drop(host);
    std::fs::remove_file(root.join("b/y.csv")).unwrap();
    std::fs::write(root.join("a/x.csv"), "bin_index,value\n0,100\n1,100\n").unwrap();
    let host = open();
    assert_eq!(values(&host, "s/v", "picked"), vec![4.0, 4.0]);
    assert_eq!(values(&host, "s/v", "chosen"), vec![1.0, 1.0]);
    assert_eq!(values(&host, "s", "picked"), vec![2.0, 2.0]);
}

#[test]
fn comparisons_accept_the_same_bins_written_in_other_units() {
    let mut host = Host::new();
    let text = |id: &str, size: &str, unit: &str| {
        format!(
            "id: {id}\nversion: \"1\"\ngrid: {{bins: 3, binSize: {size}, binUnit: {unit}, start: \"2025-10-07T00:00:00Z\"}}\nnodes:\n  - {{id: a, kind: const, values: [1, 2, 3]}}\n"
        )
    };
    for (id, size, unit) in [("m", "60", "minutes"), ("h", "1", "hours"), ("h2", "2", "hours")] {
        host.put_template(&text(id, size, unit), "t.yaml").unwrap();
        host.open_session(OpenRequest {
            template_id: id.into(),
            template_version: "1".into(),
            id: Some(id.into()),
            ..Default::default()
        })
        .unwrap();
    }
    let cmp = host.compare(&t("m"), &t("h")).unwrap();
    assert!(cmp.series.iter().all(|d| d.a == d.b));
    // A bin known on one side only: it differs, and the largest difference is unknown, not 0.
    host.create_variant("m", "v", &BTreeMap::new(), &BTreeMap::from([("a".to_string(), vec![1.0, f64::NAN, 4.0])]))
        .unwrap();
    let cmp = host.compare(&t("m"), &t("m/v")).unwrap();
    let a = cmp.series.iter().find(|d| d.id == "a").unwrap();
    assert_eq!(a.bins_differ, vec![1, 2]);
    assert!(a.max_abs_diff.is_nan());
    let err = host.compare(&t("m"), &t("h2")).unwrap_err();
    assert!(matches!(err, HostError::FailedPrecondition(_)), "{err}");
    assert!(err.to_string().contains("3 × 60 min") && err.to_string().contains("3 × 120 min"), "{err}");
}

#[test]
fn setting_negative_zero_over_zero_is_a_change_in_memory_and_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.redb");
    let text = "id: z\nversion: \"1\"\nparameters:\n  - {name: k, type: number, default: 0}\n\
grid: {bins: 1, binSize: 1, binUnit: hours}\nnodes:\n  - {id: x, kind: const, values: [-1]}\n  - {id: y, kind: expr, expr: \"x * {{k}}\"}\n";
    let mut host = open_db(&path);
    host.put_template(text, "z.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "z".into(),
        template_version: "1".into(),
        id: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(values(&host, "s", "y")[0].to_bits(), (-0.0f64).to_bits(), "-1 × 0 = -0");
    host.set_session_params("s", &p(&[("k", "-0.0")])).unwrap();
    let ev = host.evaluate_target(&t("s"), None).unwrap();
    assert_eq!(ev.get("y").unwrap()[0].to_bits(), 0.0f64.to_bits(), "-1 × -0 = +0");
    assert_eq!(ev.accounting.nodes_evaluated, 1);
    drop(host);
    let host = open_db(&path);
    assert_eq!(values(&host, "s", "y")[0].to_bits(), 0.0f64.to_bits());
}
