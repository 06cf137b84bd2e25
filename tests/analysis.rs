//! Analyses (issue 10): each mode against a closed form or a known answer, incrementality by
//! counting evaluated units per point, determinism across thread counts, limits and bad input.
//! The gRPC and CLI surfaces are in `analysis_api`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use flowtime::analysis::{
    self, AnalysisError, Bound, Cmp, Common, Constraint, Control, Distribution, Fit, GoalSeek, Limits, Loss,
    MonteCarlo, Observed, Optimize, Progress, Sensitivity, Sweep, Vary,
};
use flowtime::host::{Host, HostError, OpenRequest, Target};
use flowtime::model::template::Supplied;

/// A host with `text` stored and session `s` opened on it (with `params`).
pub(crate) fn session(text: &str, params: &[(&str, &str)]) -> Host {
    let mut h = Host::new();
    let (id, version, _) = h.put_template(text, "t.yaml").unwrap();
    h.open_session(OpenRequest {
        template_id: id,
        template_version: version,
        id: Some("s".into()),
        params: params.iter().map(|(k, v)| (k.to_string(), Supplied::Text(v.to_string()))).collect(),
        ..Default::default()
    })
    .unwrap();
    h
}

/// Runs `f` with a control of `threads` workers, collecting progress.
pub(crate) fn with_ctl<T>(threads: usize, f: impl FnOnce(&Control<'_>) -> T) -> (T, Vec<Progress>) {
    let cancel = AtomicBool::new(false);
    let seen = Mutex::new(Vec::new());
    let progress = |p: &Progress| seen.lock().unwrap().push(p.clone());
    let ctl = Control { cancel: &cancel, progress: &progress, threads, limits: Limits::default() };
    let out = f(&ctl);
    (out, seen.into_inner().unwrap())
}

fn target() -> Target {
    Target::parse("s")
}

/// Seeded arrivals in [0, 20): a small LCG, so the test owns its data.
fn arrivals(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) % 2000) as f64 / 100.0
        })
        .collect()
}

/// A single queue fed by `a`, drained at `capacity` per bin.
fn queue_model(a: &[f64]) -> String {
    let values = a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ");
    format!(
        "id: q\nversion: \"1\"\nparameters:\n  - {{name: capacity, type: number, default: 10, min: 0}}\ngrid: {{bins: {}, binSize: 1, binUnit: hours}}\nnodes:\n  - {{id: arrivals, kind: const, values: [{values}]}}\n  - {{id: queue, kind: expr, expr: \"MAX(0, SHIFT(queue, 1) + arrivals - {{{{capacity}}}})\", initial: 0}}\n",
        a.len()
    )
}

/// The closed form: max over t of (partial sums of a − c) minus their running minimum (from 0),
/// floored at 0 (Lindley's recursion unrolled).
fn peak(a: &[f64], c: f64) -> f64 {
    let (mut s, mut low, mut best) = (0.0f64, 0.0f64, 0.0f64);
    for x in a {
        s += x - c;
        best = best.max(s - low);
        low = low.min(s);
    }
    best
}

#[test]
fn sweep_of_a_queue_capacity_matches_the_closed_form() {
    let a = arrivals(200, 7);
    let mut h = session(&queue_model(&a), &[]);
    let caps: Vec<f64> = (0..=12).map(|i| 6.0 + i as f64 * 0.5).collect();
    let req = Sweep {
        vary: vec![Vary { name: "capacity".into(), values: caps.clone() }],
        metrics: vec!["max(queue)".into(), "final(queue)".into()],
        series: vec![],
    };
    let base = h.analysis_base(&target()).unwrap();
    let ((out, totals), progress) = with_ctl(2, |ctl| analysis::sweep(base, &Common::default(), &req, ctl).unwrap());
    assert_eq!(out.points.len(), caps.len());
    for (p, c) in out.points.iter().zip(&caps) {
        assert_eq!(p.params, vec![("capacity".to_string(), *c)], "points come back in input order");
        let got = p.metrics[0].value;
        let want = peak(&a, *c);
        assert!((got - want).abs() <= 1e-9 * want.max(1.0), "capacity {c}: {got} vs {want}");
        assert_eq!(p.metrics[0].metric, "max(queue)");
    }
    assert!(out.points.windows(2).all(|w| w[0].metrics[0].value >= w[1].metrics[0].value), "more capacity, lower peak");
    assert_eq!(progress.last().map(|p| (p.done, p.total)), Some((13, 13)));
    assert_eq!(totals.points.len(), 13);
    // The session itself is untouched: no variant, same revision.
    let info = h.session_info("s").unwrap();
    assert!(info.variants.is_empty());
    assert_eq!(info.revision, totals.revision);
}

#[test]
fn a_point_evaluates_only_the_cone_of_what_it_changes() {
    // A 1,000-node chain; `leaf` feeds the last node only, `root` the first.
    let n = 1000;
    let mut y = String::from(
        "id: chain\nversion: \"1\"\nparameters:\n  - {name: root, type: number, default: 1}\n  - {name: leaf, type: number, default: 1}\ngrid: {bins: 24, binSize: 1, binUnit: hours}\nnodes:\n  - {id: n0, kind: expr, expr: \"{{root}} + 1\"}\n",
    );
    for i in 1..n {
        let extra = if i == n - 1 { " + {{leaf}}" } else { "" };
        y.push_str(&format!("  - {{id: n{i}, kind: expr, expr: \"n{} * 0.5 + 1{extra}\"}}\n", i - 1));
    }
    let mut h = session(&y, &[]);
    let sweep = |h: &mut Host, name: &str| {
        let req = Sweep {
            vary: vec![Vary { name: name.into(), values: vec![2.0, 3.0, 4.0] }],
            metrics: vec![format!("max(n{})", n - 1)],
            series: vec![],
        };
        let base = h.analysis_base(&target()).unwrap();
        with_ctl(2, |ctl| analysis::sweep(base, &Common::default(), &req, ctl).unwrap()).0
    };
    let (leaf, totals) = sweep(&mut h, "leaf");
    for p in &leaf.points {
        assert_eq!(p.accounting.nodes_total, n as u64, "the metric needs the whole chain");
        assert_eq!(p.accounting.nodes_evaluated, 1, "only the leaf is in the cone");
        assert_eq!(p.accounting.nodes_reused, n as u64 - 1);
    }
    assert_eq!(totals.preparation.nodes_evaluated, n as u64 - 1, "the rest of the chain, once");
    let (root, totals) = sweep(&mut h, "root");
    for p in &root.points {
        assert_eq!(p.accounting.nodes_evaluated, n as u64, "a root change reaches every node");
    }
    assert_eq!(totals.preparation.nodes_evaluated, 0, "the chain is memoised from the first sweep");
    assert_eq!(totals.accounting.nodes_evaluated, 3 * n as u64);
}
