//! The `flowtime` binary end to end: run, validate, exit codes, JSON output, run directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) fn flowtime() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowtime"))
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str], cwd: &Path) -> Output {
    flowtime().args(args).current_dir(cwd).output().expect("spawn flowtime")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn run_prints_id_table_warnings_and_accounting() {
    let tmp = tempfile::tempdir().unwrap();
    let tpl = repo().join("templates/order-system.yaml");
    let out = run(&["run", tpl.to_str().unwrap(), "--out", tmp.path().to_str().unwrap()], tmp.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.starts_with("run run_order-system_"), "{stdout}");
    assert!(stdout.contains("queue_depth") && stdout.contains("first bins") && stdout.contains("mean"), "{stdout}");
    // The shipped data carries one documented defect: a stale OrderQueue depth metric.
    assert!(stdout.contains("orders_conservation ×1 (warning)"), "{stdout}");
    assert!(stdout.contains("inferred (saturation"), "{stdout}");
    assert!(stdout.contains("evaluated 16 of 16 series definitions (0 reused)"), "{stdout}");
}

#[test]
fn run_json_is_machine_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let tpl = repo().join("templates/order-system.yaml");
    let out = run(
        &["--json", "run", tpl.to_str().unwrap(), "-p", "q0=500", "--out", tmp.path().to_str().unwrap()],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["ok"], true);
    assert_eq!(v["grid"]["binMinutes"], 5);
    let q = v["series"].as_array().unwrap().iter().find(|s| s["id"] == "queue_depth").unwrap();
    // queue_depth[0] = max(0, 500 + arrivals[0] - served[0] - errors[0]) = 500 + 43 - 43 - 0.
    assert_eq!(q["first"][0], 500.0);
    assert_eq!(v["accounting"]["nodes_total"], 16);
    let dir = PathBuf::from(v["dir"].as_str().unwrap());
    assert!(dir.join("series/queue_depth.csv").exists());
}

#[test]
fn validate_reports_located_errors_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("bad.yaml");
    std::fs::write(&model, "grid: {bins: 3, binSize: 1, binUnit: hours}\nnodes:\n  - {id: a, kind: const, values: [1, 2, 3]}\n  - {id: b, kind: expr, expr: \"a + arivals\"}\n").unwrap();
    let out = run(&["validate", model.to_str().unwrap()], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("unknown series `arivals`"), "{err}");
    assert!(err.contains("line 4") && err.contains("nodes[1] (id b).expr"), "{err}");
    // The caret sits under the reference: `a + arivals` has it at offset 4.
    assert!(err.contains("   | a + arivals\n   |     ^^^^^^^"), "{err}");

    let out = run(&["--json", "validate", model.to_str().unwrap()], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"][0]["code"], "unknown_reference");
    assert_eq!(v["errors"][0]["line"], 4);
}

#[test]
fn validate_passes_with_warnings_and_exit_0() {
    let tmp = tempfile::tempdir().unwrap();
    let tpl = repo().join("templates/order-system.yaml");
    let out = run(&["validate", tpl.to_str().unwrap()], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("is valid") && stdout.contains("conservation_violation"), "{stdout}");
}

#[test]
fn bad_parameter_is_exit_2_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let tpl = repo().join("templates/order-system.yaml");
    let out = run(&["run", tpl.to_str().unwrap(), "-p", "q0=-5", "--out", tmp.path().to_str().unwrap()], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("parameter `q0`") && err.contains("minimum 0"), "{err}");
    let out = run(&["run", tpl.to_str().unwrap(), "-p", "nope=1"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown parameter `nope`"));
}

#[test]
fn every_shipped_template_loads_and_evaluates_with_defaults() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo().join("templates")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let mut host = flowtime::host::Host::new();
        let model = host
            .load_file(&path, &Default::default(), None)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.render()));
        let ev = host.evaluate(&model, None).unwrap_or_else(|e| panic!("{}: {}", path.display(), e.render()));
        assert!(ev.series.values().all(|s| s.len() == ev.compiled.grid.len()));
        let yaml = flowtime::artifacts::instantiated_yaml(&model.text, &model.params).unwrap();
        assert!(!yaml.contains("{{"), "{}: instantiated model still has placeholders", path.display());
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn database_commands_open_query_compare_and_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("f.redb");
    let dbs = db.to_str().unwrap();
    let tpl = repo().join("templates/order-system.yaml");
    let ok = |args: &[&str]| {
        let out = run(&[&["--db", dbs][..], args].concat(), tmp.path());
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    assert!(ok(&["session", "open", tpl.to_str().unwrap(), "--name", "replay"]).starts_with("opened session replay"));
    ok(&["variant", "create", "replay", "backlog", "-p", "q0=500"]);
    let q = ok(&["--json", "query", "replay/backlog", "queue_depth", "--bins", "0..3"]);
    let v: serde_json::Value = serde_json::from_str(&q).unwrap();
    // queue_depth[0] = max(0, 500 + arrivals[0] − served[0] − errors[0]) = 500 + 43 − 43 − 0.
    assert_eq!(v["series"][0]["values"], serde_json::json!([500.0, 500.0, 500.0]));
    assert_eq!(v["window"], serde_json::json!([0, 3]));
    let c: serde_json::Value = serde_json::from_str(&ok(&["--json", "compare", "replay", "replay/backlog"])).unwrap();
    let rows = c["series"].as_array().unwrap();
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(row("served")["notDownstreamOfAnyDifference"], true);
    assert_eq!(row("queue_depth")["identical"], false);
    assert_eq!(row("queue_depth")["maxAbsDiff"], 500.0);
    // Out-of-range windows and unknown targets are bad input.
    let out = run(&["--db", dbs, "query", "replay", "served", "--bins", "0..999"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("outside the grid of 288 bins"));
    let out = run(&["--db", dbs, "variant", "create", "nope", "x"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("session `nope` not found"));

    // batch: one line per command, results as they commit.
    let mut child = flowtime()
        .args(["--db", dbs, "batch"])
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"variant create replay a -p demand_scale=1.1\n# comment\nvariant create replay a\nsession list\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "ok 1");
    assert!(lines[1].starts_with("error 3:") && lines[1].contains("already exists"), "{lines:?}");
    assert_eq!(lines[2], "ok 4");
}

#[test]
fn serve_seeds_a_fresh_database_answers_clients_and_stops_on_sigterm() {
    use std::io::BufRead as _;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("fresh.redb");
    // Run from an empty directory: the bundled data is compiled into the binary.
    let mut child = flowtime()
        .args(["--db", db.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let seeded = lines.next().unwrap().unwrap();
    assert!(seeded.contains("sessions: capacity-whatif, order-pipeline, order-system"), "{seeded}");
    let listening = lines.next().unwrap().unwrap();
    let addr = listening.strip_prefix("listening on ").unwrap().to_string();
    let url = format!("http://{addr}");
    let out = run(&["--server", &url, "--json", "query", "order-system", "queue_depth", "--bins", "0..2"], tmp.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["series"][0]["values"], serde_json::json!([0.0, 0.0]));
    // A second process opening the file is told who holds it.
    let out = run(&["--db", db.to_str().unwrap(), "session", "list"], tmp.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("`flowtime serve`") && text(&out.stderr).contains(&url),
        "{}",
        text(&out.stderr)
    );
    // SIGTERM: graceful stop, exit 0, the store closed (its holder note removed).
    let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(lines.next().map(|l| l.unwrap()), Some("stopped".to_string()));
    assert!(!tmp.path().join("fresh.redb.holder").exists());
    // The file reopens with its sessions.
    let out = run(&["--db", db.to_str().unwrap(), "session", "list"], tmp.path());
    assert!(text(&out.stdout).contains("order-system"), "{}", text(&out.stdout));
}
