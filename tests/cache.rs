//! The content-addressed result cache (issue 15): results outlive the process and are shared by
//! value across sessions, restarts and servers; damaged and foreign entries are never served;
//! `db gc` and the byte bound keep it collectable; runs go to object storage with the same bytes.
//! Every claim is checked by counting evaluated and loaded series definitions.

use std::path::{Path, PathBuf};

use flowtime::engine::cache::{ContentKey, ENGINE_VERSION};
use flowtime::host::cache::{CacheConfig, decode_entry, encode_entry};
use flowtime::host::{Host, OpenRequest, Target};

use crate::cli::{Serve, flowtime, repo, text};
use crate::sessions::{TINY, p};

/// A chain whose every unit reads `root`, so a `root` change re-evaluates all of it.
fn chain(n: usize) -> String {
    let mut y = String::from(
        "id: chain\nversion: \"1\"\nparameters:\n  - {name: root, type: number, default: 1}\n  - {name: leaf, type: number, default: 1}\ngrid: {bins: 24, binSize: 1, binUnit: hours}\nnodes:\n  - {id: n0, kind: const, values: [\"{{root}}\"]}\n",
    );
    for i in 1..n {
        let extra = if i == n - 1 { " + {{leaf}}" } else { "" };
        y.push_str(&format!("  - {{id: n{i}, kind: expr, expr: \"MOD(n{} * 3 + {i}{extra}, 1000)\"}}\n", i - 1));
    }
    y
}

/// `n` independent units, each reading `root` only: every unit's entry is looked up on its own
/// (a unit reading one just computed is not looked up).
fn fan(n: usize) -> String {
    let mut y = String::from(
        "id: chain\nversion: \"1\"\nparameters:\n  - {name: root, type: number, default: 1}\ngrid: {bins: 24, binSize: 1, binUnit: hours}\nnodes:\n",
    );
    for i in 0..n {
        y.push_str(&format!("  - {{id: n{i}, kind: expr, expr: \"{{{{root}}}} * {} + {i}\"}}\n", i + 1));
    }
    y
}

fn cache_at(dir: &Path) -> CacheConfig {
    CacheConfig { url: url::Url::from_directory_path(dir).unwrap().to_string(), max_bytes: 1 << 30 }
}

fn open(db: &Path, cache: Option<&CacheConfig>) -> Host {
    Host::open_with_cache(db, "test", Path::new("."), cache).unwrap_or_else(|e| panic!("open {}: {e}", db.display()))
}

/// Stores `text` (as `file`) and opens session `id` of its version "1" with `params`.
pub(crate) fn session(host: &mut Host, text: &str, file: &str, template: &str, id: &str, params: &[(&str, &str)]) {
    host.put_template(text, file).unwrap();
    host.open_session(OpenRequest {
        template_id: template.into(),
        template_version: "1".into(),
        params: p(params),
        id: Some(id.into()),
        ..Default::default()
    })
    .unwrap();
}

/// Series by id.
type Named = Vec<(String, Vec<f64>)>;

/// Every series of `target`, by id, and the accounting (evaluated, loaded, total).
fn all(host: &Host, target: &str) -> (Named, (u64, u64, u64)) {
    let ev = host.evaluate_target(&Target::parse(target), None).unwrap();
    let a = ev.accounting;
    assert_eq!(a.nodes_total, a.nodes_evaluated + a.nodes_reused + a.nodes_loaded, "{a:?}");
    let mut series: Vec<(String, Vec<f64>)> =
        ev.series.iter().map(|(s, v)| (ev.compiled.series_id(*s).to_string(), v.to_vec())).collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    (series, (a.nodes_evaluated, a.nodes_loaded, a.nodes_total))
}

/// The entry files under a cache directory.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else if e.file_name().len() == 64 {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn key_of(path: &Path) -> ContentKey {
    let name = path.file_name().unwrap().to_str().unwrap();
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&name[i * 2..i * 2 + 2], 16).unwrap();
    }
    k
}

#[test]
fn a_restart_loads_every_unit_from_the_cache_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.redb");
    let text = chain(50);
    let cold = {
        let mut host = Host::open(&db, "test", Path::new(".")).unwrap();
        session(&mut host, &text, "chain.yaml", "chain", "s", &[("root", "3")]);
        let (series, (evaluated, loaded, total)) = all(&host, "s");
        assert_eq!((evaluated, loaded, total), (50, 0, 50));
        series
        // Dropping the host writes what is pending.
    };
    // The default cache is the directory next to the file.
    let cache_dir = dir.path().join("f.redb.results");
    assert_eq!(entries(&cache_dir).len(), 50);
    let mut host = Host::open(&db, "test", Path::new(".")).unwrap();
    let (warm, (evaluated, loaded, total)) = all(&host, "s");
    assert_eq!((evaluated, loaded, total), (0, 50, 50));
    assert_eq!(warm, cold);
    // The first unit was found in the cache, so the other 49 were fetched at once, ahead.
    let stats = host.result_cache().unwrap().stats();
    assert_eq!((stats.hits, stats.prefetched, stats.misses), (50, 49, 0), "{stats:?}");
    // Once loaded, the series are memoised like computed ones.
    assert_eq!(all(&host, "s").1, (0, 0, 50));
    // A change whose first recomputed unit is not in the cache fetches nothing ahead, and looks
    // up nothing downstream of it: one miss, not 50 (units reading a unit just computed have
    // new keys too).
    host.set_session_params("s", &p(&[("root", "4")])).unwrap();
    assert_eq!(all(&host, "s").1, (50, 0, 50));
    let stats = host.result_cache().unwrap().stats();
    assert_eq!((stats.prefetched, stats.misses), (49, 1), "{stats:?}");
    // Back to a value computed before: loaded, the rest fetched ahead again.
    host.set_session_params("s", &p(&[("root", "3")])).unwrap();
    assert_eq!(all(&host, "s"), (cold.clone(), (0, 50, 50)));
    assert_eq!(host.result_cache().unwrap().stats().prefetched, 98);
    drop(host);

    // The cache can be deleted at any time: the answers stay, the cost comes back.
    std::fs::remove_dir_all(&cache_dir).unwrap();
    let host = Host::open(&db, "test", Path::new(".")).unwrap();
    let (again, counts) = all(&host, "s");
    assert_eq!((again, counts), (cold.clone(), (50, 0, 50)));
    drop(host);

    // Without a cache, a restart recomputes everything.
    let host = open(&db, None);
    assert_eq!(all(&host, "s"), (cold, (50, 0, 50)));
}

#[test]
fn identical_scenarios_in_two_sessions_compute_each_unit_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = open(&dir.path().join("f.redb"), Some(&cache_at(&dir.path().join("cache"))));
    session(&mut host, TINY, "tiny.yaml", "tiny", "a", &[("k", "3")]);
    session(&mut host, TINY, "tiny.yaml", "tiny", "b", &[("k", "3")]);
    let (sa, ca) = all(&host, "a");
    assert_eq!(ca, (5, 0, 5));
    // Session b holds its own parameter cells, so only `load` (which reads no cell) shares a memo;
    // the other four are shared by value.
    let (sb, cb) = all(&host, "b");
    assert_eq!((sb, cb), (sa.clone(), (0, 4, 5)));

    // Variants agreeing with each other (one in each session) share too; only the units their
    // override changes are computed, once.
    host.create_variant("a", "v", &p(&[("k", "5")]), &Default::default()).unwrap();
    host.create_variant("b", "w", &p(&[("k", "5")]), &Default::default()).unwrap();
    let (va, (evaluated, loaded, _)) = all(&host, "a/v");
    // b and c read k; a, load and d are the session's memos.
    assert_eq!((evaluated, loaded), (2, 0));
    let (vb, (evaluated, loaded, _)) = all(&host, "b/w");
    assert_eq!((vb, evaluated, loaded), (va, 0, 2));

    // A session parameter changed to a value computed before is loaded, not computed.
    host.set_session_params("a", &p(&[("k", "5")])).unwrap();
    let (_, (evaluated, loaded, _)) = all(&host, "a");
    assert_eq!((evaluated, loaded), (0, 2));

    // Across a restart, a new session with the same values computes nothing.
    drop(host);
    let mut host = open(&dir.path().join("g.redb"), Some(&cache_at(&dir.path().join("cache"))));
    session(&mut host, TINY, "tiny.yaml", "tiny", "c", &[("k", "3")]);
    assert_eq!(all(&host, "c"), (sa, (0, 5, 5)));

    // Without the cache the same sessions share nothing.
    let mut host = Host::new();
    session(&mut host, TINY, "tiny.yaml", "tiny", "a", &[("k", "3")]);
    session(&mut host, TINY, "tiny.yaml", "tiny", "b", &[("k", "3")]);
    assert_eq!(all(&host, "a").1, (5, 0, 5));
    assert_eq!(all(&host, "b").1, (4, 0, 5));
}

/// A burst of changes to one parameter (a slider dragged) writes the changed unit's last result,
/// not one entry per change, and that last result is what a restart loads.
#[test]
fn a_burst_of_changes_writes_each_unit_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.redb");
    let cache = dir.path().join("cache");
    let cfg = cache_at(&cache);
    let mut host = open(&db, Some(&cfg));
    session(&mut host, &chain(20), "chain.yaml", "chain", "s", &[]);
    all(&host, "s");
    host.result_cache().unwrap().flush();
    let before = host.result_cache().unwrap().stats().written;
    assert_eq!(before, 20);
    let changes = 40u32;
    let start = std::time::Instant::now();
    for i in 0..changes {
        host.set_session_params("s", &p(&[("leaf", &(10 + i).to_string())])).unwrap();
        assert_eq!(all(&host, "s").1, (1, 0, 20));
    }
    let elapsed = start.elapsed();
    let last = all(&host, "s").0;
    host.result_cache().unwrap().flush();
    let written = host.result_cache().unwrap().stats().written - before;
    // The writer wakes once per tick: at most one entry per tick that passed during the burst,
    // plus the final flush.
    let ticks = (elapsed.as_secs_f64() / flowtime::host::cache::TICK.as_secs_f64()).ceil() as u64 + 1;
    assert!(
        written >= 1 && written <= ticks.min(changes as u64),
        "{written} entries for {changes} changes in {elapsed:?}"
    );
    assert_eq!(entries(&cache).len() as u64, 20 + written);
    drop(host);
    let host = open(&db, Some(&cfg));
    assert_eq!(all(&host, "s"), (last, (0, 20, 20)));
}

#[test]
fn damaged_and_foreign_version_entries_are_recomputed_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.redb");
    let cfg = cache_at(&dir.path().join("cache"));
    let text = fan(20);
    let cold = {
        let mut host = open(&db, Some(&cfg));
        session(&mut host, &text, "chain.yaml", "chain", "s", &[]);
        all(&host, "s").0
    };
    let files = entries(&dir.path().join("cache"));
    assert_eq!(files.len(), 20);

    // Damage: one flipped bit in a value of every entry (the checksum catches it).
    for f in &files {
        let mut b = std::fs::read(f).unwrap();
        let at = b.len() - 20;
        b[at] ^= 0x10;
        std::fs::write(f, b).unwrap();
    }
    {
        let host = open(&db, Some(&cfg));
        let (series, counts) = all(&host, "s");
        assert_eq!((series, counts), (cold.clone(), (20, 0, 20)));
        assert_eq!(host.result_cache().unwrap().stats().rejected, 20);
    }
    // The recomputed results replaced the damaged entries.
    {
        let host = open(&db, Some(&cfg));
        assert_eq!(all(&host, "s"), (cold.clone(), (0, 20, 20)));
    }

    // Foreign engine version: well-formed entries under the right keys, with wrong values, written
    // by "another version". They must not be served.
    for f in &files {
        let key = key_of(f);
        let good = std::fs::read(f).unwrap();
        // The true entry decodes; a forged one with another version does not.
        let outputs = decode_entry(&good, &key, 1, 24).unwrap();
        let wrong: Vec<std::sync::Arc<[f64]>> = outputs.iter().map(|o| o.iter().map(|v| v + 1.0).collect()).collect();
        let forged = encode_entry("flowtime 0.0.0 results/0", &key, &wrong);
        assert!(decode_entry(&forged, &key, 1, 24).is_err());
        std::fs::write(f, forged).unwrap();
    }
    {
        let host = open(&db, Some(&cfg));
        let (series, counts) = all(&host, "s");
        assert_eq!((series, counts), (cold.clone(), (20, 0, 20)));
        assert_eq!(host.result_cache().unwrap().stats().rejected, 20);
    }
    // An entry of this version under another key (a misplaced file) is not served either.
    let a = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[1], &a).unwrap();
    let host = open(&db, Some(&cfg));
    let (series, (evaluated, loaded, _)) = all(&host, "s");
    assert_eq!((series, evaluated, loaded), (cold, 1, 19));
    assert!(ENGINE_VERSION.starts_with("flowtime "));
}

#[test]
fn the_cache_is_bounded_and_collected_by_db_gc() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.redb");
    let cache = dir.path().join("cache");
    let chain_text = fan(30);
    // Each entry is a little over 24 × 8 bytes; room for about ten.
    let small = CacheConfig { max_bytes: 2_600, ..cache_at(&cache) };
    {
        let mut host = open(&db, Some(&small));
        session(&mut host, &chain_text, "chain.yaml", "chain", "s", &[]);
        all(&host, "s");
        host.result_cache().unwrap().flush();
        let stats = host.result_cache().unwrap().stats();
        assert_eq!(stats.written, 30);
        assert!(stats.evicted >= 19, "{stats:?}");
    }
    let bytes: u64 = entries(&cache).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    assert!(bytes <= 2_600 && !entries(&cache).is_empty(), "{bytes}");
    // What the bound kept is served (each unit of the fan is looked up on its own).
    let host = open(&db, Some(&small));
    let (_, (evaluated, loaded, _)) = all(&host, "s");
    assert!(loaded >= 9 && evaluated + loaded == 30, "{evaluated} {loaded}");
    drop(host);

    // `db gc` removes entries of other engine versions and trims to the bound.
    let foreign = cache.join("v-0000000000000000").join("ab");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("ab".repeat(32)), b"old").unwrap();
    let out = flowtime()
        .args(["--db", db.to_str().unwrap(), "--cache", &small.url, "--cache-bytes", "2600", "--json", "db", "gc"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["cacheEntriesRemoved"].as_u64().unwrap() >= 1, "{v}");
    assert!(!foreign.join("ab".repeat(32)).exists());
    assert!(!entries(&cache).is_empty());
}

/// Two servers on one cache directory: the second server's first query loads what the first
/// computed.
#[test]
fn two_servers_share_one_object_store_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = url::Url::from_directory_path(dir.path().join("shared-cache")).unwrap().to_string();
    let a = Serve::start_with(&dir.path().join("a.redb"), dir.path(), "127.0.0.1:0", &["--cache", &cache]);
    let b = Serve::start_with(&dir.path().join("b.redb"), dir.path(), "127.0.0.1:0", &["--cache", &cache]);
    let query = |s: &Serve| -> serde_json::Value {
        let out = flowtime()
            .args(["--server", &s.addr, "--json", "query", "order-system", "*"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["accounting"].clone()
    };
    let first = query(&a);
    let total = first["nodes_total"].as_u64().unwrap();
    assert!(total > 10 && first["nodes_evaluated"].as_u64() == Some(total), "{first}");
    // `db gc` writes what is pending before it collects.
    let gc = flowtime().args(["--server", &a.addr, "db", "gc"]).output().unwrap();
    assert!(gc.status.success(), "{}", text(&gc.stderr));
    let second = query(&b);
    assert_eq!(second["nodes_evaluated"].as_u64(), Some(0), "{second}");
    assert_eq!(second["nodes_loaded"].as_u64(), Some(total), "{second}");
    a.stop();
    b.stop();
}

/// The same run written to a directory and to a local object store: the same files, byte for
/// byte (manifest hashes included); a second write verifies and reuses it.
#[test]
fn runs_in_a_local_object_store_have_the_same_manifest_as_a_directory_run() {
    let dir = tempfile::tempdir().unwrap();
    let tpl = repo().join("templates/order-system.yaml");
    let local = dir.path().join("runs");
    let store = dir.path().join("bucket");
    let url = format!("{}prefix/", url::Url::from_directory_path(&store).unwrap());
    let run = |out: &str| {
        let o = flowtime().args(["--json", "run", tpl.to_str().unwrap(), "--out", out]).output().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let a = run(local.to_str().unwrap());
    let b = run(&url);
    assert_eq!(a["runId"], b["runId"]);
    assert_eq!(b["reused"], false);
    let id = a["runId"].as_str().unwrap();
    let in_store = store.join("prefix").join(id);
    let manifest = |d: &Path| std::fs::read(d.join("manifest.json")).unwrap();
    assert_eq!(manifest(&local.join(id)), manifest(&in_store));
    let m: serde_json::Value = serde_json::from_slice(&manifest(&in_store)).unwrap();
    for f in m["files"].as_object().unwrap().keys() {
        assert_eq!(std::fs::read(local.join(id).join(f)).unwrap(), std::fs::read(in_store.join(f)).unwrap(), "{f}");
    }
    assert_eq!(run(&url)["reused"], true);

    // A server with `--runs` on the object store writes the same run for the seeded session.
    let s = Serve::start_with(&dir.path().join("s.redb"), dir.path(), "127.0.0.1:0", &["--runs", &url]);
    let o = flowtime().args(["--server", &s.addr, "--json", "runs", "create", "order-system"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let created: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rid = created["runId"].as_str().or(created["id"].as_str()).unwrap().to_string();
    assert!(store.join("prefix").join(&rid).join("manifest.json").exists(), "{created}");
    s.stop();
}
