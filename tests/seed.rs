//! `serve` seeds the bundled templates (and their default sessions) a database lacks, on every
//! start, and a seed cut short by a kill is finished by the next start.

use std::time::{Duration, Instant};

use crate::cli::{Serve, flowtime, run, text};

const BUNDLED: [&str; 3] = ["capacity-whatif", "order-pipeline", "order-system"];

/// A small seeded generator (xorshift64*), so the kill moments are the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Template ids and session ids the server at `addr` has.
fn contents(addr: &str, cwd: &std::path::Path) -> (Vec<String>, Vec<String>) {
    let ids = |args: &[&str], key: &str| -> Vec<String> {
        let out = run(&[&["--server", addr, "--json"][..], args].concat(), cwd);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array().unwrap().iter().map(|x| x[key].as_str().unwrap().to_string()).collect()
    };
    (ids(&["template", "list"], "id"), ids(&["session", "list"], "id"))
}

#[test]
fn a_seed_killed_at_random_moments_is_finished_by_the_next_start() {
    // How long a first start takes to seed and listen: kills are spread over that time.
    let tmp = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let s = Serve::start(&tmp.path().join("timing.redb"), tmp.path());
    let full = t0.elapsed();
    s.stop();
    let mut rng = Rng(0x5eed_f10e);
    // Ten trials at least; more (up to 40) while fewer than three kills interrupted a seed, since
    // on a loaded machine a start's length varies from the one measured.
    let mut cut_short = 0;
    let mut trials = 0;
    for trial in 0..40 {
        if trial >= 10 && cut_short >= 3 {
            break;
        }
        trials += 1;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("seed.redb");
        let mut child = flowtime()
            .args(["--db", db.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let at = Duration::from_micros(rng.below(full.as_micros() as u64 * 11 / 10));
        std::thread::sleep(at);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // A later start completes the seed, whatever the kill left.
        let s = Serve::start(&db, dir.path());
        if !s.banner.is_empty() {
            cut_short += 1;
        }
        let (templates, sessions) = contents(&s.addr, dir.path());
        assert_eq!(templates, BUNDLED, "trial {trial}: killed after {at:?}");
        assert_eq!(sessions, BUNDLED, "trial {trial}: killed after {at:?}");
        s.stop();
        // The seed is complete: a third start has nothing to add.
        let s = Serve::start(&db, dir.path());
        assert!(s.banner.is_empty(), "trial {trial}: {:?}", s.banner);
        s.stop();
    }
    // The kills landed during seeding, not only before it began or after it ended.
    assert!(cut_short >= 3, "only {cut_short} of {trials} kills interrupted a seed (a full start takes {full:?})");
}

/// A database made by the CLI (a session of one bundled template) gets the others, and the
/// default session of the one it has, from `serve`; a session a user closed stays closed.
#[test]
fn serve_adds_what_a_database_lacks_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flowtime.redb");
    let tpl = crate::cli::repo().join("templates/order-system.yaml");
    let out =
        run(&["--db", db.to_str().unwrap(), "session", "open", tpl.to_str().unwrap(), "--name", "replay"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = Serve::start(&db, dir.path());
    assert_eq!(
        s.banner,
        vec![format!(
            "added the bundled templates {} lacked: capacity-whatif@1.0.0, order-pipeline@1.0.0; sessions: capacity-whatif, order-pipeline, order-system",
            db.display()
        )]
    );
    let (_, sessions) = contents(&s.addr, dir.path());
    assert_eq!(sessions, ["capacity-whatif", "order-pipeline", "order-system", "replay"]);
    let out = run(&["--server", &s.addr, "session", "close", "order-system"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    s.stop();
    let s = Serve::start(&db, dir.path());
    assert!(s.banner.is_empty(), "{:?}", s.banner);
    let (_, sessions) = contents(&s.addr, dir.path());
    assert_eq!(sessions, ["capacity-whatif", "order-pipeline", "replay"]);
    s.stop();
}

/// A kill while a new database file is being made never leaves a file that later opens refuse:
/// the file appears under its name only once it is whole (before, 16 of 80 kills in the first
/// 40 ms left "Not a redb database: magic number mismatch" for good).
#[test]
fn a_kill_while_the_file_is_created_leaves_no_half_made_file() {
    let mut mid_creation = 0;
    for trial in 0..80u64 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new.redb");
        let mut child = flowtime()
            .args(["--db", db.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill moments sweep the first 32 ms of the process, where the file is made.
        std::thread::sleep(Duration::from_micros(trial * 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if dir.path().join("new.redb.creating").exists() {
            mid_creation += 1;
        }
        if !db.exists() {
            continue;
        }
        let out = run(&["--db", db.to_str().unwrap(), "template", "list"], dir.path());
        assert!(out.status.success(), "trial {trial} (killed after {} µs): {}", trial * 400, text(&out.stderr));
    }
    // Some kills landed while the file was being made (they left its scratch file behind), so the
    // sweep covered the moment that used to leave a half-made file.
    assert!(mid_creation >= 1, "no kill landed while the file was being made");
}
