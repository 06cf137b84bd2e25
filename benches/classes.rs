//! The cost of classes (§6.1, issue 16): the generated chain (1,000 nodes × 8,760 bins) and
//! topology (1,000 services × 288 bins) with 1, 4 and 16 classes mixed at their sources (so every
//! series downstream is classed), against the same model without classes, in one run.
//!
//! Per model and class count: the evaluation of every total (`evaluate`) plus every mix
//! (`evaluate_mixes`, what a request for all per-class series, a run or the class warnings
//! costs) from a freshly loaded model, best of `REPS` runs interleaved with the classless
//! baseline; and the memory of the evaluated series (values plus mixes, `bins × k` f64 each)
//! against the classless values. The budget of issue 16 is `1 + classes` for both.
//!
//! Analysis points with per-class metrics (§6.1 in analyses): on the chain with 4 classes and a
//! share parameter `s0` (class c0's share at the source), 10-point sweeps of the leaf parameter
//! `k` and of the share `s0`, each with the metric `max(leaf)` and with `max(leaf@c0)`, timed
//! whole; against the session path for the same question (a share change, then `leaf@c0` read
//! through salsa: `evaluate` plus `evaluate_mixes`), measured in the same run.
//!
//! Run with `cargo bench --bench classes` (release). Prints two tables.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use flowtime::analysis::{self, Common, Control, Limits, Progress, Sweep, Vary};
use flowtime::host::{Host, OpenRequest, Target};
use flowtime::model::generate;
use flowtime::model::template::Supplied;

const REPS: usize = 3;

/// The model with `k` classes declared and mixed at `source` (shares `1, 2, …, k`).
fn classed(text: &str, source: &str, k: usize) -> String {
    if k == 0 {
        return text.to_string();
    }
    let ids: Vec<String> = (0..k).map(|c| format!("{{id: c{c}}}")).collect();
    let shares: Vec<String> = (0..k).map(|c| format!("c{c}: {}", c + 1)).collect();
    let needle = format!("  - {{id: {source}, kind: const, values: [");
    let at = text.find(&needle).expect("source node");
    let end = at + text[at..].find("]}").expect("end of source");
    let mut out = String::with_capacity(text.len() + 256);
    out.push_str(&text[..end + 1]);
    out.push_str(&format!(", classMix: {{{}}}", shares.join(", ")));
    out.push_str(&text[end + 1..]);
    out.insert_str(0, &format!("classes: [{}]\n", ids.join(", ")));
    out
}

/// (seconds, bytes of values, bytes of mixes, classed series) of one cold evaluation.
fn run(text: &str) -> (f64, usize, usize, usize) {
    let mut host = Host::new();
    let m = host.load_text(text, "model.yaml", &BTreeMap::new(), Path::new(".")).unwrap();
    let start = Instant::now();
    let mut ev = host.evaluate(&m, None).unwrap();
    host.evaluate_mixes(&m, &mut ev, None).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let values: usize = ev.series.values().map(|s| s.len() * 8).sum();
    let mixes: usize = ev.mixes.values().map(|s| s.len() * 8).sum();
    (secs, values, mixes, ev.mixes.len())
}

/// A 10-point sweep of `param` from `from` with `metric` on session `s`: (seconds, units
/// evaluated per point, mixes per point is not reported by the API).
fn sweep(host: &mut Host, param: &str, from: f64, metric: &str) -> (f64, u64) {
    let req = Sweep {
        vary: vec![Vary { name: param.into(), values: (0..10).map(|i| from + i as f64 * 0.5).collect() }],
        metrics: vec![metric.into()],
        series: vec![],
    };
    let base = host.analysis_base(&Target::parse("s")).unwrap();
    let cancel = AtomicBool::new(false);
    let progress = |_: &Progress| {};
    let ctl = Control {
        cancel: &cancel,
        progress: &progress,
        threads: 1,
        limits: Limits { eval_budget: u64::MAX, max_points: 1000 },
    };
    let t = Instant::now();
    let (r, _) = analysis::sweep(base, &Common::default(), &req, &ctl).unwrap();
    let secs = t.elapsed().as_secs_f64();
    (secs, r.points.iter().map(|p| p.accounting.nodes_evaluated).max().unwrap_or(0))
}

/// Per-class metrics in analysis points against the session path (see the module comment).
fn points() {
    let text = generate::chain(1000, 8760);
    let mut text = classed(&text, "n0", 4).replacen("c0: 1", "c0: \"{{s0}}\"", 1);
    text = text.replacen(
        "parameters:\n",
        "id: big\nversion: \"1\"\nparameters:\n  - {name: s0, type: number, default: 1, min: 0}\n",
        1,
    );
    let mut host = Host::new();
    host.put_template(&text, "bench.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "big".into(),
        template_version: "1".into(),
        id: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    let t = Target::parse("s");
    let c = host.compiled_target(&t).unwrap();
    let leaf = c.by_id["leaf"];
    let mut ev = host.evaluate_target(&t, None).unwrap();
    host.view().evaluate_mixes(&t, &mut ev, &[leaf]).unwrap();
    // The session path: a share change, then leaf@c0 through salsa (values memoised, the share's
    // mix cone re-executed).
    let mut session = f64::INFINITY;
    for i in 0..REPS {
        let v = 2.0 + i as f64;
        host.set_session_params("s", &BTreeMap::from([("s0".to_string(), Supplied::Text(v.to_string()))])).unwrap();
        let start = Instant::now();
        let mut ev = host.evaluate_target(&t, Some(&[leaf])).unwrap();
        host.view().evaluate_mixes(&t, &mut ev, &[leaf]).unwrap();
        session = session.min(start.elapsed().as_secs_f64());
    }
    println!();
    println!(
        "sweep (10 points, 1 thread), chain 1000 x 8760, 4 classes   time_s   per_point_s  units/point  per_point / session path"
    );
    for (param, from) in [("k", 10.0), ("s0", 10.0)] {
        for metric in ["max(leaf)", "max(leaf@c0)"] {
            let (secs, units) = (0..REPS)
                .map(|i| sweep(&mut host, param, from + 100.0 * i as f64, metric))
                .fold((f64::INFINITY, 0), |a, b| if b.0 < a.0 { b } else { a });
            println!(
                "vary {param:<3} metric {metric:<14}                              {secs:>7.3}  {:>11.4}  {units:>11}  {:>8.2}",
                secs / 10.0,
                secs / 10.0 / session
            );
        }
    }
    println!("session path (s0 change, then leaf@c0): {session:.4} s");
}

fn main() {
    points();
    let models = [
        ("chain 1000 x 8760", generate::chain(1000, 8760), "n0"),
        ("topology 1000 x 288", generate::topology(1000, 288), "demand"),
    ];
    println!("model                 classes  classed  time_s   time_ratio  mem_MB    mem_ratio  budget");
    for (name, text, source) in &models {
        let texts: Vec<(usize, String)> = [0usize, 1, 4, 16].iter().map(|k| (*k, classed(text, source, *k))).collect();
        let mut best: Vec<(f64, usize, usize, usize)> = vec![(f64::INFINITY, 0, 0, 0); texts.len()];
        for _ in 0..REPS {
            for (i, (_, t)) in texts.iter().enumerate() {
                let r = run(t);
                if r.0 < best[i].0 {
                    best[i] = r;
                }
            }
        }
        let (t0, v0, _, _) = best[0];
        for ((k, _), (t, v, m, n)) in texts.iter().zip(&best) {
            println!(
                "{name:<21} {k:>7}  {n:>7}  {t:>7.3}  {:>10.2}  {:>8.1}  {:>9.2}  {:>6}",
                t / t0,
                (v + m) as f64 / 1e6,
                (v + m) as f64 / v0 as f64,
                1 + k
            );
        }
    }
}
