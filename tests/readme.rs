//! The README works exactly as written: every `sh` block, in order, run by bash in a fresh copy
//! of the repository's `templates/`, `data/` and `clients/python/` (under
//! `target/readme-tour/`), with the numbers the text claims checked.
//!
//! Three things are not the README's text: a `cargo` shell function (defined before the blocks)
//! answers `cargo run [--release] [--quiet] [--locked] -- ARGS` with the binary under test, so
//! nothing is built twice; the README's own test command (`scripts/test.sh`) is left out, since
//! this test is part of it; and the Python client's virtual environment, `target/py` there, is
//! kept between runs (created by the README's command on the first), so the client's
//! dependencies are installed once per checkout, not in every run. The README has no other command to leave
//! out (`cargo bench` appears only as prose). Where the text starts a server (`flowtime serve`),
//! it runs in the background until the next server starts (the text says to stop it first) or
//! the last block has run, and must then stop cleanly on SIGTERM; while it runs, its web page is
//! fetched once.

use std::path::Path;
use std::process::Command;

use crate::cli::repo;

/// A shell command of the README, as written (continuation lines joined).
struct Step {
    text: String,
    /// A command that starts the server (run in the background).
    serve: bool,
}

/// The `sh` blocks of `readme`, split into commands; heredoc bodies stay with their command.
fn steps(readme: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if !in_sh {
            in_sh = line.trim() == "```sh";
            continue;
        }
        if line.trim() == "```" {
            in_sh = false;
            continue;
        }
        let code = line.split(" #").next().unwrap_or("").trim_end();
        if code.trim().is_empty() || code.trim_start().starts_with('#') {
            continue;
        }
        let mut text = line.to_string();
        while text.trim_end().ends_with('\\') {
            text.push('\n');
            text.push_str(lines.next().unwrap_or(""));
        }
        // A heredoc: its body up to the terminator belongs to the command.
        if let Some(i) = text.find("<<'") {
            let end = text[i + 3..].split('\'').next().unwrap_or("").to_string();
            for body in lines.by_ref() {
                text.push('\n');
                text.push_str(body);
                if body.trim() == end {
                    break;
                }
            }
        }
        let serve = text.split(" #").next().unwrap_or("").trim_end().ends_with(" serve")
            || text.split_whitespace().take(2).eq(["flowtime", "serve"]);
        // The server's line runs with its output redirected: its comment must not swallow that.
        let text = if serve { code.to_string() } else { text };
        out.push(Step { serve, text });
    }
    out
}

/// The `cargo` stand-in: `cargo run [--release] [--quiet] [--locked] -- ARGS` runs the binary
/// under test with ARGS; anything else is an error.
const CARGO_SHIM: &str = r#"cargo() {
  if [ "${1:-}" != run ]; then echo "cargo shim: only \`cargo run\` is answered here, not \`cargo $*\`" >&2; return 2; fi
  shift
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
    case "$1" in
      --release|--quiet|--locked) shift ;;
      *) echo "cargo shim: unexpected option $1" >&2; return 2 ;;
    esac
  done
  if [ "${1:-}" = -- ]; then shift; fi
  "$FLOWTIME_BIN" "$@"
}
"#;

/// The script: the shim, then each step preceded by a marker line `@@@ <index>`. A server step
/// runs in its own process group in the background; the next server step, or the end, stops it
/// with SIGTERM (as Ctrl-C would) and waits for its `stopped`.
fn script(steps: &[Step]) -> String {
    let mut s = String::from("set -euo pipefail\nset -m\n");
    s.push_str(CARGO_SHIM);
    // Stops the running server (if any) and shows its log.
    s.push_str(
        "stop_server() {\n\
           if [ -n \"${server:-}\" ]; then\n\
             trap - EXIT; kill -TERM -- \"-$server\"; wait \"$server\" || true\n\
             for _ in $(seq 1 300); do grep -q '^stopped' serve.log && break; sleep 0.1; done\n\
             cat serve.log; server=\n\
           fi\n\
         }\n",
    );
    for (i, st) in steps.iter().enumerate() {
        s.push_str(&format!("echo '@@@ {i}'\n"));
        if st.serve {
            s.push_str("stop_server\n");
            s.push_str(&format!("{} > serve.log 2>&1 &\nserver=$!\n", st.text));
            // A failing command ends the script: the server must not outlive it.
            s.push_str("trap 'kill -TERM -- \"-$server\" 2>/dev/null || true' EXIT\n");
            s.push_str(
                "for _ in $(seq 1 1200); do grep -q '^listening on' serve.log && break; sleep 0.1; done\n\
                 grep -q '^listening on' serve.log || { echo 'no `listening on` in 120 s:'; cat serve.log; exit 1; }\n\
                 cat serve.log\n",
            );
            // The page on the address it prints: its title, fetched over plain HTTP/1.1.
            s.push_str(
                "addr=\"$(sed -n 's/^listening on //p' serve.log)\"\n\
                 exec 3<>\"/dev/tcp/${addr%:*}/${addr##*:}\"\n\
                 printf 'GET / HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n' \"$addr\" >&3\n\
                 echo \"page: $(grep -o '<title>[^<]*</title>' <&3)\"\n\
                 exec 3<&-\n",
            );
        } else {
            s.push_str(&st.text);
            s.push('\n');
        }
    }
    s.push_str("echo '@@@ end'\nstop_server\n");
    s
}

/// The output of the step whose text starts with `prefix` (the `n`th such step).
fn output<'a>(log: &'a str, steps: &[Step], prefix: &str, n: usize) -> &'a str {
    let i = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.text.starts_with(prefix))
        .nth(n)
        .unwrap_or_else(|| panic!("the README has no command `{prefix}…` (#{n})"))
        .0;
    let start =
        log.find(&format!("@@@ {i}\n")).unwrap_or_else(|| panic!("step {i} did not run")) + format!("@@@ {i}\n").len();
    let end = log[start..].find("@@@ ").map_or(log.len(), |e| start + e);
    &log[start..end]
}

/// A row of a `query` table: bin, time, values by column.
type Row = (u32, String, Vec<f64>);

/// The columns and rows of a `query` table.
fn table(out: &str) -> (Vec<String>, Vec<Row>) {
    let mut lines = out.lines().skip_while(|l| !l.trim_start().starts_with("bin "));
    let header: Vec<String> = lines.next().unwrap_or("").split_whitespace().skip(3).map(str::to_string).collect();
    let rows = lines
        .map_while(|l| {
            let mut w = l.split_whitespace();
            let bin = w.next()?.parse().ok()?;
            let time = w.next()?.to_string();
            let values = w.map(|x| if x == "NaN" { f64::NAN } else { x.parse().unwrap_or(f64::NAN) }).collect();
            Some((bin, time, values))
        })
        .collect();
    (header, rows)
}

/// The first bin where column `col` reaches its maximum: (time, value).
fn peak(rows: &[Row], col: usize) -> (String, f64) {
    let mut best = (String::new(), f64::MIN);
    for (_, t, v) in rows {
        if v[col] > best.1 {
            best = (t.clone(), v[col]);
        }
    }
    best
}

/// Copies a directory tree, leaving out build products and caches (an in-tree pip build reuses
/// `build/`, so a stale one must not come along).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if ["build", "__pycache__", ".mypy_cache", ".pytest_cache"].contains(&name.as_str())
            || name.ends_with(".egg-info")
        {
            continue;
        }
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_readme_tour_works_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut all = steps(&readme);
    // The README's own test command: this test is part of it.
    let before = all.len();
    all.retain(|s| s.text.split(" #").next().unwrap_or("").trim() != "scripts/test.sh");
    assert_eq!(before - all.len(), 1, "the README's test command `scripts/test.sh` is in a sh block once");
    assert_eq!(all.iter().filter(|s| s.serve).count(), 2, "the README starts a server for the page, then for gRPC");
    // The server listens on the README's address: it must be free.
    if let Err(e) = std::net::TcpListener::bind("127.0.0.1:50051") {
        panic!("the README's server address 127.0.0.1:50051 is taken ({e}); stop what listens there");
    }

    // The tour's directory: fixed, so the virtual environment it creates (see the module doc)
    // keeps valid paths in its scripts from one run to the next; everything else is fresh.
    let dir = repo().join("target").join("readme-tour");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.map(Result::unwrap).filter(|e| e.file_name() != "target") {
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    std::fs::create_dir_all(dir.join("target")).unwrap();
    for d in ["templates", "data", "clients/python"] {
        copy_dir(&repo().join(d), &dir.join(d));
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(script(&all))
        .env("FLOWTIME_BIN", env!("CARGO_BIN_EXE_flowtime"))
        .current_dir(&dir)
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the README's commands failed:\n{log}");
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(log.contains("@@@ end"), "{log}");

    // The tour starts with the page: the server prints its address and serves the workbench.
    let page = output(&log, &all, "cargo run --release -- --db web.redb serve", 0);
    assert!(page.contains("listening on 127.0.0.1:50051"), "{page}");
    assert!(page.contains("page: <title>flowtime workbench</title>"), "{page}");
    let next = output(&log, &all, "flowtime serve", 0);
    let stopped = next.find("stopped").unwrap_or(usize::MAX);
    assert!(stopped < next.find("lacked").unwrap_or(0), "the page's server stops before section 5's starts: {next}");

    // 0. The replay: the backlog builds to 800 at 10:25; OrderService's capacity is 110/bin.
    let (cols, rows) = table(output(&log, &all, "flowtime query replay orders_backlog", 0));
    assert_eq!(cols, ["orders_backlog"]);
    assert_eq!(peak(&rows, 0), ("2025-10-07T10:25:00Z".into(), 800.0));
    let out = output(&log, &all, "flowtime query replay '*capacity_inferred'", 0);
    let (cols, rows) = table(out);
    assert_eq!(cols, ["order_capacity_inferred", "billing_capacity_inferred"]);
    assert_eq!(rows[0].2[0], 110.0);
    assert!(rows[0].2[1].is_nan());
    assert!(out.contains("order_capacity_inferred: inferred (saturation, confidence"), "{out}");
    let plot = output(&log, &all, "flowtime plot replay/more-capacity", 0);
    assert!(plot.contains("wrote backlog.png (replay/more-capacity (revision"), "{plot}");
    assert!(std::fs::read(dir.join("backlog.png")).unwrap().starts_with(b"\x89PNG"));
    // With 150/bin: orders peak at 43 (09:40) and are gone by 10:15; billing builds to 437
    // (10:20) and its capacity, 125/bin, is inferred.
    let (cols, rows) = table(output(&log, &all, "flowtime query replay/more-capacity '*_backlog'", 0));
    assert_eq!(cols, ["orders_backlog", "billing_backlog"]);
    assert_eq!(peak(&rows, 0), ("2025-10-07T09:40:00Z".into(), 43.0));
    assert!(rows.iter().filter(|r| r.1.as_str() >= "2025-10-07T10:15:00Z").all(|r| r.2[0] == 0.0));
    assert!(rows.iter().any(|r| r.1 == "2025-10-07T10:10:00Z" && r.2[0] > 0.0));
    assert_eq!(peak(&rows, 1), ("2025-10-07T10:20:00Z".into(), 437.0));
    let (_, rows) = table(output(&log, &all, "flowtime query replay/more-capacity '*capacity_inferred'", 0));
    assert_eq!(rows[0].2, [150.0, 125.0]);
    let cmp = output(&log, &all, "flowtime compare replay replay/more-capacity", 0);
    assert!(cmp.contains("max |b − a|") && cmp.contains("differing bins"), "{cmp}");
    assert!(cmp.contains("identical, 5 of them by construction (not downstream of any difference)"), "{cmp}");
    let state = output(&log, &all, "flowtime state replay", 0);
    assert!(state.contains("at bin 125: 2025-10-07T10:25:00Z to 2025-10-07T10:30:00Z"), "{state}");
    assert!(state.contains("queueDepth 800"), "{state}");

    // 1. The replay of order-system: 17 definitions, capacity 109 with its label.
    let run = output(&log, &all, "cargo run --release -- run templates/order-system.yaml", 0);
    assert!(run.contains("evaluated 17 of 17 series definitions"), "{run}");
    assert!(run.contains("inferred (saturation, confidence 0.0764, 22 saturated bins)"), "{run}");
    assert!(run.contains("orders_conservation ×1") && run.contains("(bins 126..130)"), "{run}");
    // 2. What-ifs: the backlog drains and the modelled 109 is inferred; a demand what-if on
    // replayed served refuses to infer.
    let backlog = output(&log, &all, "cargo run --release -- run templates/order-system.yaml -p q0=500", 0);
    assert!(backlog.contains("queue_depth") && backlog.contains("434, 365, 293"), "{backlog}");
    assert!(backlog.contains("109, 109, 109") && !backlog.contains("capacity_not_inferable"), "{backlog}");
    let demand = output(&log, &all, "cargo run --release -- run templates/order-system.yaml -p demand_scale", 0);
    assert!(demand.contains("not inferred (saturation): demand_scale = 1.2 (default 1)"), "{demand}");
    assert!(demand.contains("capacity_not_inferable ×1"), "{demand}");
    // 3. A broken model exits 2.
    assert!(output(&log, &all, "cargo run --release -- validate broken.yaml", 0).contains("exit code 2"));
    // 4. The backlog drains by 00:35; 8 series differ, 8 of the 9 identical ones by construction.
    let (_, rows) = table(output(&log, &all, "flowtime query replay/backlog queue_depth", 0));
    assert_eq!(rows[0].2[0], 434.0);
    assert!(rows.iter().all(|r| (r.1.as_str() < "2025-10-07T00:35:00Z") == (r.2[0] > 0.0)), "drained at 00:35");
    let summary = "8 of 17 series differ; 9 identical, 8 of them by construction";
    assert!(output(&log, &all, "flowtime compare replay replay/backlog", 0).contains(summary));
    // 5. The server adds the bundled templates and sessions, and answers the same.
    let serve = output(&log, &all, "flowtime serve", 0);
    assert!(serve.contains(
        "lacked: capacity-whatif@1.0.0, order-pipeline@1.0.0; sessions: capacity-whatif, order-pipeline, order-system"
    ), "{serve}");
    assert!(output(&log, &all, "flowtime --server http://127.0.0.1:50051 compare", 0).contains(summary));
    let list = output(&log, &all, "flowtime --server 127.0.0.1:50051 session list", 0);
    assert_eq!(list.lines().count(), 4, "{list}");
    // The Python client against the same server: the peak, and the series that differ most.
    let py = output(&log, &all, "target/py/bin/python", 0);
    assert!(py.contains("peak 800.0 at 2025-10-07 10:25:00+00:00"), "{py}");
    let rows: Vec<Vec<&str>> =
        py.lines().skip_while(|l| !l.starts_with("series")).skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[..2], [["orders_backlog", "800.0", "46"], ["billing_backlog", "437.0", "33"]], "{py}");
    let tail = &log[log.find("@@@ end").unwrap_or(0)..];
    assert!(tail.trim_end().ends_with("stopped"), "the server stops on SIGTERM:\n{tail}");
    // 6. A model of your own.
    let mine = output(&log, &all, "cargo run --release -- --json run my-model.yaml", 0);
    let v: serde_json::Value = serde_json::from_str(mine.trim()).unwrap_or_else(|e| panic!("{e}: {mine}"));
    let q = v["series"].as_array().unwrap().iter().find(|s| s["id"] == "queue_depth").unwrap();
    // queue_depth = max(0, 5 + 10 − 12) = 3, then 1, then 0.
    assert_eq!(q["first"], serde_json::json!([3.0, 1.0, 0.0, 0.0, 0.0, 0.0]));
}

/// CI runs the README's test command as written: the second command of the first `sh` block
/// (the set-up block: the main job, then the tests) is a line of `.ci/run`, so what the README
/// calls the tests is what CI runs.
#[test]
fn ci_runs_the_readme_test_command() {
    let root = repo();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let setup = steps(&readme);
    let test = setup.get(1).map(|s| s.text.split(" #").next().unwrap_or("").trim().to_string());
    let test = test.expect("the README's set-up block has a test command");
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == test), "`.ci/run` does not run the README's test command `{test}`");
}
