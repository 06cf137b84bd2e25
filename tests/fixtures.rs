//! Golden test: every fixture in ../shared/fixtures whose `needs` is supported evaluates and
//! matches its expected series to 1e-9 · max(1, |expected|). New fixtures are picked up without
//! code changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flowtime::host::Host;

/// Capabilities this engine provides, as named in the fixtures README's `needs` column.
const SUPPORTED: &[&str] = &["core", "topology", "router", "constraint"];

/// Fixture folders: `$FLOWTIME_FIXTURES` when set; else the vendored copy in `tests/data/fixtures`
/// plus the live shared folder next to the checkout when it exists (so fixtures added there are
/// picked up without code changes).
fn fixture_dirs() -> Vec<PathBuf> {
    if let Some(env) = std::env::var_os("FLOWTIME_FIXTURES") {
        return vec![PathBuf::from(env)];
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("tests/data/fixtures")];
    let shared = root.join("../shared/fixtures");
    if shared.join("README.md").exists() {
        dirs.push(shared);
    }
    dirs
}

/// `(name, needs)` rows of the README's fixture table.
fn index(dir: &Path) -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("fixtures README");
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in readme.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() >= 2 && cells[0] == "fixture" && cells[1] == "needs" {
            in_table = true;
            continue;
        }
        if !in_table || !line.trim_start().starts_with('|') {
            in_table = in_table && line.trim_start().starts_with('|');
            continue;
        }
        if cells[0].starts_with("---") {
            continue;
        }
        rows.push((cells[0].to_string(), cells[1].to_string()));
    }
    rows
}

fn read_expected(path: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows: Vec<(usize, f64)> = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (i, v) = l.split_once(',').unwrap();
            let v = v.trim();
            let v = if v.eq_ignore_ascii_case("nan") || v.is_empty() { f64::NAN } else { v.parse().unwrap() };
            (i.trim().parse().unwrap(), v)
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    rows.into_iter().map(|r| r.1).collect()
}

#[test]
fn shared_fixtures_match_expected_series() {
    for dir in fixture_dirs() {
        check_dir(&dir);
    }
}

fn check_dir(dir: &Path) {
    let rows = index(dir);
    assert!(!rows.is_empty(), "no fixtures listed in {}", dir.display());
    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, needs) in rows {
        let needs: Vec<&str> = needs.split([',', ' ']).filter(|s| !s.is_empty()).collect();
        if !needs.iter().all(|n| SUPPORTED.contains(n)) {
            continue;
        }
        let fdir = dir.join(&name);
        let mut host = Host::new();
        let model = match host.load_file(&fdir.join("model.yaml"), &BTreeMap::new(), None) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: does not load:\n{}", e.render()));
                continue;
            }
        };
        let ev = match host.evaluate(&model, None) {
            Ok(ev) => ev,
            Err(e) => {
                failures.push(format!("{name}: does not evaluate:\n{}", e.render()));
                continue;
            }
        };
        for entry in std::fs::read_dir(fdir.join("expected")).unwrap() {
            let path = entry.unwrap().path();
            let id = path.file_stem().unwrap().to_string_lossy().to_string();
            let expected = read_expected(&path);
            let Some(actual) = ev.get(&id) else {
                failures.push(format!("{name}: no series `{id}`"));
                continue;
            };
            if actual.len() != expected.len() {
                failures.push(format!("{name}/{id}: {} bins, expected {}", actual.len(), expected.len()));
                continue;
            }
            for (t, (a, e)) in actual.iter().zip(&expected).enumerate() {
                let ok = (a.is_nan() && e.is_nan()) || (a - e).abs() <= 1e-9 * e.abs().max(1.0);
                if !ok {
                    failures.push(format!("{name}/{id}[{t}]: got {a}, expected {e}"));
                    break;
                }
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "fixture mismatches:\n{}", failures.join("\n"));
    assert!(checked > 0);
}
