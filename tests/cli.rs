//! The `flowtime` binary end to end: run, validate, exit codes, JSON output, run directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) fn flowtime() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowtime"))
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn run(args: &[&str], cwd: &Path) -> Output {
    flowtime().args(args).current_dir(cwd).output().expect("spawn flowtime")
}

pub(crate) fn text(b: &[u8]) -> String {
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
    assert!(stdout.contains("evaluated 17 of 17 series definitions (0 reused)"), "{stdout}");
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
    assert_eq!(v["accounting"]["nodes_total"], 17);
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
    // A near miss gets the name it missed, like an unknown series does.
    let out = run(&["run", tpl.to_str().unwrap(), "-p", "demand_scal=1"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("did you mean `demand_scale`?"), "{}", text(&out.stderr));
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
        let yaml = flowtime::artifacts::instantiated_yaml(&model.source, &model.params).unwrap();
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
    // A table cut short says where and how many rows it left out.
    let q = ok(&["query", "replay", "served"]);
    assert!(q.contains("\n 99  2025-10-07T08:15:00Z"), "{q}");
    assert!(q.contains("… bins 100..288 not shown (188 more); narrow --bins or use --json"), "{q}");
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
    // Each result follows its `ok N`, indented.
    assert_eq!(lines[0], "ok 1");
    assert_eq!(lines[1], "  created variant replay/a");
    assert_eq!(lines[2], "    demand_scale = 1.1");
    assert_eq!(lines[3], "error 3: variant `replay/a` already exists", "{lines:?}");
    assert_eq!(lines[4], "ok 4");
    assert_eq!(lines[5], "  replay  order-system@1.0.0  revision 3  2 variants");
}

#[test]
fn serve_seeds_a_fresh_database_answers_clients_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("fresh.redb");
    // Run from an empty directory: the bundled data is compiled into the binary.
    let server = Serve::start(&db, tmp.path());
    assert!(
        server.banner[0].contains("sessions: capacity-whatif, order-pipeline, order-system"),
        "{:?}",
        server.banner
    );
    // Without `http://`: host:port is enough.
    let url = server.addr.clone();
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
    server.stop();
    assert!(!tmp.path().join("fresh.redb.holder").exists());
    // The file reopens with its sessions.
    let out = run(&["--db", db.to_str().unwrap(), "session", "list"], tmp.path());
    assert!(text(&out.stdout).contains("order-system"), "{}", text(&out.stdout));
}

/// Strips what legitimately differs between a server and a fresh process: how much was
/// memoised already (the server keeps its memos between calls), and times.
fn untimed(s: &str) -> String {
    s.lines()
        .map(|l| match l.find(" of ") {
            Some(i) if l.starts_with("evaluated ") => &l[i..l.find(" series definitions").unwrap_or(l.len())],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One implementation, one rendering: every database command prints the same on a file (the
/// API in process) as against a server (the API over a socket).
#[test]
fn a_file_and_a_server_answer_every_command_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Serve::start(&tmp.path().join("served.redb"), tmp.path());
    let addr = server.addr.clone();
    let file = tmp.path().join("file.redb");
    let tpl = repo().join("templates/order-system.yaml");
    let csv = tmp.path().join("served.csv");
    std::fs::write(
        &csv,
        (0..288).map(|i| format!("{i},{}\n", 40 + i % 7)).fold("bin_index,value\n".to_string(), |a, l| a + &l),
    )
    .unwrap();
    let binding = format!("served={}", csv.display());
    let commands: Vec<Vec<&str>> = vec![
        vec!["session", "open", tpl.to_str().unwrap(), "--name", "s", "-p", "demand_scale=1.1"],
        vec!["variant", "create", "s", "v", "-p", "q0=500"],
        vec!["variant", "create", "s/w", "--series", &binding],
        vec!["variant", "list", "s"],
        vec!["variant", "show", "s", "v"],
        vec!["query", "s/v", "queue_depth", "--bins", "0..3"],
        vec!["query", "s", "*capacity*", "--bins", "100.."],
        vec!["state", "s/v", "--bin", "100"],
        vec!["state", "s", "--at", "2025-10-07T08:20:00Z"],
        vec!["compare", "s", "s/v"],
        vec!["compare", "s", "s/w", "--all"],
        vec!["session", "set", "s", "-p", "q0=10"],
        vec!["session", "show", "s"],
        vec!["template", "show", "order-system@1.0.0"],
        vec!["template", "instantiate", "order-system", "-p", "q0=3"],
        vec!["variant", "delete", "s/v"],
        vec!["query", "s/v", "queue_depth"],
        vec!["session", "open", "templates/order-sytem.yaml"],
        vec!["runs", "list"],
    ];
    for args in &commands {
        for json in [false, true] {
            let mut base: Vec<&str> = if json { vec!["--json"] } else { Vec::new() };
            base.extend(args);
            let local = run(&[&["--db", file.to_str().unwrap()][..], &base].concat(), &repo());
            let remote = run(&[&["--server", &addr][..], &base].concat(), &repo());
            assert_eq!(local.status.code(), remote.status.code(), "{args:?}: {}", text(&local.stderr));
            let (mut a, mut b) = (text(&local.stdout), text(&remote.stdout));
            if json {
                // Creation times and what was memoised already are the only fields that differ.
                for s in [&mut a, &mut b] {
                    let mut v: serde_json::Value = serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
                    strip(&mut v);
                    *s = v.to_string();
                }
            }
            assert_eq!(untimed(&a), untimed(&b), "{args:?}");
            // Only a database this process creates says so.
            let err = text(&local.stderr).replace(&format!("created {}\n", file.display()), "");
            assert_eq!(err, text(&remote.stderr), "{args:?}");
        }
    }
    server.stop();
}

/// `flowtime serve` on a port of its choosing; killed if the test ends early.
pub(crate) struct Serve {
    child: std::process::Child,
    pub(crate) addr: String,
    /// The lines it printed before `listening on`.
    pub(crate) banner: Vec<String>,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    /// Where its stderr goes (a file, so a chatty server never blocks on a full pipe).
    _stderr: tempfile::NamedTempFile,
}

impl Serve {
    pub(crate) fn start(db: &Path, cwd: &Path) -> Serve {
        Serve::start_with(db, cwd, "127.0.0.1:0", &[])
    }

    /// On a given address (a restart on the address a page is connected to).
    pub(crate) fn start_on(db: &Path, cwd: &Path, listen: &str) -> Serve {
        Serve::start_with(db, cwd, listen, &[])
    }

    /// On `listen`, with more arguments.
    pub(crate) fn start_with(db: &Path, cwd: &Path, listen: &str, args: &[&str]) -> Serve {
        use std::io::BufRead as _;
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = flowtime()
            .args(["--db", db.to_str().unwrap(), "serve", "--listen", listen])
            .args(args)
            .current_dir(cwd)
            .stdout(std::process::Stdio::piped())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let addr = loop {
            let Some(l) = lines.next() else {
                let _ = child.wait();
                let err = std::fs::read_to_string(stderr.path()).unwrap_or_default();
                panic!("serve ended without printing its address; it printed {banner:?} and on stderr:\n{err}");
            };
            let l = l.unwrap();
            match l.strip_prefix("listening on ") {
                Some(a) => break a.to_string(),
                None => banner.push(l),
            }
        };
        Serve { child, addr, banner, lines, _stderr: stderr }
    }

    /// SIGTERM; the server must stop cleanly and say so.
    pub(crate) fn stop(mut self) {
        let st = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(st.success());
        assert!(self.child.wait().unwrap().success());
        assert_eq!(self.lines.next().map(|l| l.unwrap()), Some("stopped".to_string()));
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // Only a test that failed leaves it running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("elapsed_us");
            m.remove("nodes_evaluated");
            m.remove("nodes_reused");
            m.remove("nodes_loaded");
            m.remove("createdUtc");
            m.values_mut().for_each(strip);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

/// Issue 9 §4: mistakes that used to mislead get errors that say what and where.
#[test]
fn mistakes_get_errors_that_say_what_and_where() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("flowtime.redb");
    let dbs = db.to_str().unwrap();
    let tpl = repo().join("templates/order-system.yaml");
    let bad = |args: &[&str]| -> String {
        let out = run(args, dir);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stdout));
        text(&out.stderr)
    };
    // A read-only command on a missing database is an error naming it (and creates nothing);
    // a command that writes creates it and says so.
    let err = bad(&["--db", dbs, "session", "list"]);
    assert!(err.contains(&format!("the database file {dbs} does not exist")), "{err}");
    assert!(!db.exists());
    let out = run(&["--db", dbs, "session", "open", tpl.to_str().unwrap(), "--name", "replay"], dir);
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), format!("created {dbs}\n"));
    let typo = dir.join("flowtime.rdb");
    let err = bad(&["--db", typo.to_str().unwrap(), "session", "list"]);
    assert!(err.contains(&format!("did you mean `--db {}`?", db.display())), "{err}");
    // A template file that does not exist says so, with the nearest name.
    let err = bad(&["--db", dbs, "session", "open", repo().join("templates/order-sytem.yaml").to_str().unwrap()]);
    assert!(err.contains("order-sytem.yaml does not exist") && err.contains("templates/order-system.yaml?"), "{err}");
    // Runs go to a local directory or object storage, never to a URL-shaped directory.
    let err = bad(&["run", tpl.to_str().unwrap(), "--out", "ftp://bucket/x"]);
    assert!(err.contains("--out ftp://bucket/x is a URL of a scheme runs cannot be written to"), "{err}");
    assert!(!dir.join("ftp:").exists());
    // NOT_FOUND lists what exists.
    let err = bad(&["--db", dbs, "query", "replya", "served"]);
    assert!(err.contains("session `replya` not found; did you mean `replay`? (open sessions: replay)"), "{err}");
    let err = bad(&["--db", dbs, "query", "replay", "servd"]);
    assert!(err.contains("did you mean `served`?"), "{err}");
    // `variant … SESSION NAME` and `… SESSION/NAME` both work, for every variant command.
    for args in [
        &["variant", "create", "replay/a", "-p", "q0=1"][..],
        &["variant", "create", "replay", "b", "-p", "q0=2"],
        &["variant", "show", "replay", "a"],
        &["variant", "set", "replay/b", "-p", "q0=3"],
        &["variant", "delete", "replay", "a"],
        &["variant", "delete", "replay/b"],
    ] {
        let out = run(&[&["--db", dbs][..], args].concat(), dir);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let err = bad(&["--db", dbs, "variant", "show", "replay/a", "b"]);
    assert!(err.contains("names the variant twice"), "{err}");
    // A series CSV reports every bad row, each with the column of its field.
    let csv = dir.join("bad.csv");
    std::fs::write(&csv, "bin_index,value\n0,1\n1,x\n2,\"y\"\nz,3\n").unwrap();
    let err = bad(&["--db", dbs, "variant", "create", "replay", "c", "--series", &format!("served={}", csv.display())]);
    for want in ["line 3, column 3", "value `x` is not a number", "line 4, column 3", "line 5, column 1", "3 errors"] {
        assert!(err.contains(want), "{want}: {err}");
    }
    // A misaligned Gold timestamp (no --bin-size) is reported as such, with its file and line.
    let gold = dir.join("day.csv");
    let rows: String =
        ["00:00", "00:05", "00:12", "00:15"].iter().map(|t| format!("2025-10-07T{t}:00Z,A,1,1,0\n")).collect();
    std::fs::write(&gold, format!("ts,node,arrivals,served,errors\n{rows}")).unwrap();
    let err = bad(&["--db", dbs, "telemetry", "load", gold.to_str().unwrap()]);
    assert!(err.contains("day.csv:line 4") && err.contains("not aligned to the 5-minute bins"), "{err}");
}
