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

#[test]
fn goal_seek_finds_the_capacity_that_gives_a_peak_and_says_when_it_cannot() {
    let a = arrivals(200, 7);
    let mut h = session(&queue_model(&a), &[]);
    let target_peak = 40.0;
    let req = GoalSeek {
        param: "capacity".into(),
        lo: 5.0,
        hi: 15.0,
        metric: "max(queue)".into(),
        target: target_peak,
        tolerance: Some(1e-6),
        ..Default::default()
    };
    let base = h.analysis_base(&target()).unwrap();
    let ((r, _), progress) = with_ctl(1, |ctl| analysis::goal_seek(base, &Common::default(), &req, ctl).unwrap());
    assert!(r.converged && r.bracketed, "{}", r.message);
    assert!((r.achieved - target_peak).abs() <= 1e-6, "{}", r.achieved);
    assert!((peak(&a, r.value) - target_peak).abs() <= 1e-6, "the closed form agrees at {}", r.value);
    assert!(r.iterations >= 1 && r.trace.len() as u64 >= 2 + r.iterations);
    assert_eq!(r.trace[0].params, vec![("capacity".to_string(), 5.0)], "the ends come first");
    assert!(progress.iter().any(|p| p.best.is_some()), "progress carries the best point so far");

    // A peak below what any capacity in the bracket gives: not bracketed, a result.
    let req = GoalSeek { target: -5.0, ..req };
    let base = h.analysis_base(&target()).unwrap();
    let (r, _) = with_ctl(1, |ctl| analysis::goal_seek(base, &Common::default(), &req, ctl).unwrap()).0;
    assert!(!r.converged && !r.bracketed);
    assert_eq!(r.value, 15.0, "the end nearest the target");
    assert!(r.message.contains("not bracketed"), "{}", r.message);
}

/// `out`'s mean is (a − 3)² + (b + 1)²: a convex bowl with its minimum at (3, −1).
const BOWL: &str = "id: bowl\nversion: \"1\"\nparameters:\n  - {name: a, type: number, default: 0, min: -10, max: 10}\n  - {name: b, type: number, default: 0, min: -10, max: 10}\ngrid: {bins: 4, binSize: 1, binUnit: hours}\nnodes:\n  - {id: out, kind: expr, expr: \"({{a}} - 3) * ({{a}} - 3) + ({{b}} + 1) * ({{b}} + 1)\"}\n  - {id: a_series, kind: expr, expr: \"{{a}} + 0\"}\n";

#[test]
fn optimize_recovers_a_known_minimum_and_stops_on_an_active_bound() {
    let mut h = session(BOWL, &[]);
    let bounds = vec![Bound { name: "a".into(), lo: -10.0, hi: 10.0 }, Bound { name: "b".into(), lo: -10.0, hi: 10.0 }];
    let req =
        Optimize { params: bounds.clone(), objective: "mean(out)".into(), max_iterations: 500, ..Default::default() };
    let base = h.analysis_base(&target()).unwrap();
    let (r, _) = with_ctl(2, |ctl| analysis::optimize(base, &Common::default(), &req, ctl).unwrap()).0;
    let v: BTreeMap<String, f64> = r.params.iter().cloned().collect();
    assert!((v["a"] - 3.0).abs() < 1e-3 && (v["b"] + 1.0).abs() < 1e-3, "{v:?} after {} iterations", r.iterations);
    assert!(r.converged && r.feasible && r.objective < 1e-5, "{r:?}");

    // With max(a_series) <= 2 the bowl's minimum is out of reach: the best point is on a = 2.
    let req =
        Optimize { constraints: vec![Constraint { metric: "max(a_series)".into(), cmp: Cmp::Le, bound: 2.0 }], ..req };
    let base = h.analysis_base(&target()).unwrap();
    let (r, _) = with_ctl(2, |ctl| analysis::optimize(base, &Common::default(), &req, ctl).unwrap()).0;
    let v: BTreeMap<String, f64> = r.params.iter().cloned().collect();
    assert!((v["a"] - 2.0).abs() < 1e-3 && (v["b"] + 1.0).abs() < 1e-3, "{v:?}: {}", r.message);
    assert!(r.feasible, "the constraint holds at the best point: {:?}", r.constraints);
    assert!((r.objective - 1.0).abs() < 1e-3);

    // Maximise within the box: a corner (−10, 10): (−13)² + 11² = 290.
    let req = Optimize { maximize: true, constraints: vec![], ..req };
    let base = h.analysis_base(&target()).unwrap();
    let (r, _) = with_ctl(2, |ctl| analysis::optimize(base, &Common::default(), &req, ctl).unwrap()).0;
    assert!((r.objective - 290.0).abs() < 1e-3, "{:?} {}", r.params, r.objective);
}

/// A two-point pmf (0 w.p. 0.3, 10 w.p. 0.7: mean 7, sd √21) feeding `y = demand * 2`.
const PMF: &str = "id: mc\nversion: \"1\"\nparameters:\n  - {name: k, type: number, default: 1, min: 0}\ngrid: {bins: 8, binSize: 1, binUnit: hours}\nnodes:\n  - {id: demand, kind: pmf, pmf: {values: [0, 10], probabilities: [0.3, 0.7]}}\n  - {id: y, kind: expr, expr: \"demand * {{k}}\"}\n  - {id: fixed, kind: expr, expr: \"{{k}} + 1\"}\n";

fn monte_carlo_json(threads: usize, seed: u64, samples: u32) -> String {
    let mut h = session(PMF, &[]);
    let req = MonteCarlo {
        samples,
        seed,
        series: vec!["y".into()],
        metrics: vec!["mean(y)".into()],
        distributions: vec![("k".into(), Distribution::Uniform { lo: 1.0, hi: 2.0 })],
    };
    let base = h.analysis_base(&target()).unwrap();
    let (r, _) = with_ctl(threads, |ctl| analysis::monte_carlo(base, &Common::default(), &req, ctl).unwrap()).0;
    assert_eq!(r.drawn, vec!["demand".to_string()], "only pmf nodes the series read are drawn");
    serde_json::to_string(&(
        &r.bands.iter().map(|(id, b)| (id, &b.p5, &b.p50, &b.p95, &b.mean)).collect::<Vec<_>>(),
        &r.metrics.iter().map(|(m, s)| (m, s.mean, s.p5, s.p50, s.p95)).collect::<Vec<_>>(),
        &r.params,
    ))
    .unwrap()
}

#[test]
fn monte_carlo_of_a_two_point_pmf_is_unbiased_and_deterministic() {
    let mut h = session(PMF, &[]);
    let n = 10_000u32;
    let req = MonteCarlo {
        samples: n,
        seed: 42,
        series: vec!["demand".into()],
        metrics: vec!["max(demand)".into()],
        ..Default::default()
    };
    let base = h.analysis_base(&target()).unwrap();
    let (r, _) = with_ctl(2, |ctl| analysis::monte_carlo(base, &Common::default(), &req, ctl).unwrap()).0;
    let band = &r.bands[0].1;
    let se = 21f64.sqrt() / (n as f64).sqrt();
    for (t, m) in band.mean.iter().enumerate() {
        assert!((m - 7.0).abs() <= 3.0 * se, "bin {t}: mean {m} is more than 3 standard errors from 7");
    }
    assert!(band.p5.iter().all(|v| *v == 0.0) && band.p95.iter().all(|v| *v == 10.0));
    // max over 8 bins is 10 unless all 8 draws are 0 (0.3⁸ ≈ 7e-5).
    assert_eq!(r.metrics[0].1.p50, 10.0);
    assert_eq!(r.sample_accounting.len(), n as usize);
    assert!(r.sample_accounting.iter().all(|a| a.nodes_evaluated == 1), "a sample evaluates the drawn node only");
    // Outside Monte Carlo the pmf stays its expected value.
    let ev = h.evaluate_target(&target(), None).unwrap();
    assert!(ev.get("demand").unwrap().iter().all(|v| *v == 7.0));

    let one = monte_carlo_json(1, 9, 300);
    assert_eq!(one, monte_carlo_json(2, 9, 300), "same seed, same bytes, whatever the thread count");
    assert_ne!(one, monte_carlo_json(2, 10, 300), "another seed differs");
}

/// `out = 3a + 0.5b + 10c` at a = 1, b = 4, c = 0.1: m = 6, gradients 3, 0.5, 10, elasticities
/// 0.5, 1/3, 1/6.
const LINEAR: &str = "id: lin\nversion: \"1\"\nparameters:\n  - {name: a, type: number, default: 1}\n  - {name: b, type: number, default: 4}\n  - {name: c, type: number, default: 0.1}\n  - {name: z, type: number, default: 0}\ngrid: {bins: 3, binSize: 1, binUnit: hours}\nnodes:\n  - {id: out, kind: expr, expr: \"3 * {{a}} + 0.5 * {{b}} + 10 * {{c}} + 2 * {{z}}\"}\n";

#[test]
fn sensitivity_ranks_parameters_by_elasticity() {
    let mut h = session(LINEAR, &[]);
    let req = Sensitivity {
        params: vec!["c".into(), "b".into(), "a".into(), "z".into()],
        metric: "mean(out)".into(),
        ..Default::default()
    };
    let base = h.analysis_base(&target()).unwrap();
    let (r, _) = with_ctl(2, |ctl| analysis::sensitivity(base, &Common::default(), &req, ctl).unwrap()).0;
    assert_eq!(r.metric.value, 6.0);
    let order: Vec<&str> = r.rows.iter().map(|x| x.param.as_str()).collect();
    assert_eq!(order, vec!["a", "b", "c", "z"]);
    let by: BTreeMap<&str, &analysis::SensitivityRow> = r.rows.iter().map(|x| (x.param.as_str(), x)).collect();
    for (p, g, e) in [("a", 3.0, 0.5), ("b", 0.5, 1.0 / 3.0), ("c", 10.0, 1.0 / 6.0)] {
        assert!((by[p].gradient - g).abs() < 1e-9, "{p}: gradient {}", by[p].gradient);
        assert!((by[p].elasticity - e).abs() < 1e-9, "{p}: elasticity {}", by[p].elasticity);
        assert!(!by[p].absolute && by[p].scheme == "central");
    }
    assert!(by["z"].absolute, "a zero value takes the absolute step, and says so");
    assert!((by["z"].gradient - 2.0).abs() < 1e-9);
    assert_eq!(by["z"].elasticity, 0.0);
    assert_eq!(r.rows.iter().map(|x| x.rank).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
}

#[test]
fn fit_recovers_order_service_capacity_from_the_gold_day() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/order-pipeline.yaml")).unwrap();
    let mut h = Host::new();
    h.set_data_root(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    h.put_template(&text, "order-pipeline.yaml").unwrap();
    h.open_session(OpenRequest {
        template_id: "order-pipeline".into(),
        template_version: "1.0.0".into(),
        id: Some("s".into()),
        params: [("order_served_source", "order_served_modeled"), ("order_capacity", "70")]
            .iter()
            .map(|(k, v)| (k.to_string(), Supplied::Text(v.to_string())))
            .collect(),
        ..Default::default()
    })
    .unwrap();
    let req = Fit {
        params: vec![Bound { name: "order_capacity".into(), lo: 50.0, hi: 200.0 }],
        modelled: "orders_backlog".into(),
        observed: Observed::Series("orders_depth_observed".into()),
        window: None,
        loss: Loss::Sse,
        max_iterations: 200,
        tolerance: None,
    };
    let base = h.analysis_base(&target()).unwrap();
    let (r, _) = with_ctl(2, |ctl| analysis::fit(base, &Common::default(), &req, ctl).unwrap()).0;
    let cap = r.params[0].1;
    assert!((cap - 110.0).abs() <= 0.02 * 110.0, "fitted capacity {cap} (loss {}, r2 {})", r.loss, r.r2);
    assert!(r.r2 > 0.9, "r2 {}", r.r2);
    assert_eq!(r.residuals.len(), 288);
    let f = &r.flatness[0];
    assert!(f.low_loss > r.loss && f.high_loss > r.loss, "the optimum is a minimum: {f:?} vs {}", r.loss);
}

#[test]
fn a_structural_parameter_is_allowed_and_reported() {
    let text = "id: lag\nversion: \"1\"\nparameters:\n  - {name: lag, type: integer, default: 1, min: 0}\n  - {name: k, type: number, default: 1}\ngrid: {bins: 6, binSize: 1, binUnit: hours}\nnodes:\n  - {id: x, kind: const, values: [1, 2, 3, 4, 5, 6]}\n  - {id: y, kind: expr, expr: \"SHIFT(x, {{lag}}) * {{k}}\"}\n";
    let mut h = session(text, &[]);
    let req = Sweep {
        vary: vec![
            Vary { name: "lag".into(), values: vec![0.0, 1.0, 2.0] },
            Vary { name: "k".into(), values: vec![1.0, 2.0] },
        ],
        metrics: vec!["sum(y)".into()],
        series: vec![],
    };
    let base = h.analysis_base(&target()).unwrap();
    let (r, _) = with_ctl(2, |ctl| analysis::sweep(base, &Common::default(), &req, ctl).unwrap()).0;
    let got: Vec<(f64, f64, f64, bool)> =
        r.points.iter().map(|p| (p.params[0].1, p.params[1].1, p.metrics[0].value, p.structural)).collect();
    assert_eq!(
        got,
        vec![
            (0.0, 1.0, 21.0, true),
            (0.0, 2.0, 42.0, true),
            (1.0, 1.0, 15.0, false),
            (1.0, 2.0, 30.0, false),
            (2.0, 1.0, 10.0, true),
            (2.0, 2.0, 20.0, true),
        ]
    );
}

#[test]
fn a_concurrent_write_interrupts_an_analysis_and_proceeds() {
    use flowtime::host::SharedHost;
    use std::sync::Arc;
    let a = arrivals(2000, 3);
    let shared = Arc::new(SharedHost::new(session(&queue_model(&a), &[])));
    let base = shared.lock().analysis_base(&target()).unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let worker = {
        let started = started.clone();
        std::thread::spawn(move || {
            let cancel = AtomicBool::new(false);
            let progress = |p: &Progress| {
                if p.done > 0 {
                    started.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            };
            let ctl = Control { cancel: &cancel, progress: &progress, threads: 2, limits: Limits::default() };
            let req = Sweep {
                vary: vec![Vary {
                    name: "capacity".into(),
                    values: (0..50_000).map(|i| 5.0 + i as f64 * 1e-4).collect(),
                }],
                metrics: vec!["max(queue)".into()],
                series: vec![],
            };
            analysis::sweep(base, &Common::default(), &req, &ctl).map(|_| ())
        })
    };
    while !started.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::yield_now();
    }
    // The write cancels the analysis's snapshots and goes ahead.
    shared
        .write(|h| h.set_session_params("s", &BTreeMap::from([("capacity".to_string(), Supplied::Text("11".into()))])))
        .unwrap();
    match worker.join().unwrap() {
        Err(AnalysisError::Interrupted) => {}
        other => panic!("expected Interrupted, got {other:?}"),
    }
    assert_eq!(
        shared.lock().session_info("s").unwrap().params["capacity"],
        flowtime::model::params::ParamValue::Number(11.0)
    );
}

#[test]
fn bad_requests_are_located() {
    let mut h = session(LINEAR, &[]);
    let err = |r: Result<(), AnalysisError>| match r {
        Err(AnalysisError::Host(HostError::BadInput(d))) => {
            d.0.iter().map(|x| format!("{}: {}", x.path.clone().unwrap_or_default(), x.message)).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    let base = h.analysis_base(&target()).unwrap();
    let opt = Optimize {
        params: vec![Bound { name: "a".into(), lo: 2.0, hi: 1.0 }, Bound { name: "q".into(), lo: 0.0, hi: 1.0 }],
        objective: "mean(nope)".into(),
        max_iterations: 10,
        ..Default::default()
    };
    let e = err(with_ctl(1, |ctl| analysis::optimize(base, &Common::default(), &opt, ctl).map(|_| ())).0);
    assert!(e.iter().any(|x| x.starts_with("params[0]: ") && x.contains("lo < hi")), "{e:?}");
    assert!(e.iter().any(|x| x.starts_with("params[1].name: ") && x.contains("unknown parameter `q`")), "{e:?}");
    assert!(e.iter().any(|x| x.starts_with("objective: ") && x.contains("unknown series `nope`")), "{e:?}");
    let base = h.analysis_base(&target()).unwrap();
    let fit = Fit {
        params: vec![Bound { name: "a".into(), lo: 0.0, hi: 2.0 }],
        modelled: "out".into(),
        observed: Observed::Values(vec![1.0]),
        window: Some((2, 2)),
        loss: Loss::Mae,
        max_iterations: 10,
        tolerance: None,
    };
    let e = err(with_ctl(1, |ctl| analysis::fit(base, &Common::default(), &fit, ctl).map(|_| ())).0);
    assert!(e.iter().any(|x| x.starts_with("observed: ") && x.contains("3 bins")), "{e:?}");
    assert!(e.iter().any(|x| x.starts_with("window: ") && x.contains("empty")), "{e:?}");
    let base = h.analysis_base(&target()).unwrap();
    let common = Common { params: BTreeMap::from([("b".to_string(), Supplied::Text("x".into()))]), keep: None };
    let e = err(with_ctl(1, |ctl| {
        analysis::sweep(
            base,
            &common,
            &Sweep {
                vary: vec![Vary { name: "a".into(), values: vec![1.0] }],
                metrics: vec!["mean(out)".into()],
                series: vec![],
            },
            ctl,
        )
        .map(|_| ())
    })
    .0);
    assert!(e.iter().any(|x| x.starts_with("parameters[b]: ")), "{e:?}");
}
