//! The AnalysisService over a real gRPC server on loopback: progress before the result, a client
//! cancel that stops the work and leaves the database as it was, keeping points as variants,
//! located bad input and the limits. The CLI forms are at the end.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowtime::client::Client;
use flowtime::host::{Host, SharedHost};
use flowtime::server::{ServerOptions, bind, pb, serve};
use tonic::Code;

/// A server over `host` on a free loopback port; the test keeps a handle on the host.
struct Server {
    addr: SocketAddr,
    host: Arc<SharedHost>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(host: Host, opts: ServerOptions) -> Server {
        let host = Arc::new(SharedHost::new(host));
        let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shared = host.clone();
        let done = tokio::spawn(async move {
            serve(listener, shared, opts, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server { addr, host, stop: Some(tx), done: Some(done) }
    }

    async fn client(&self) -> Client {
        Client::connect(&self.addr.to_string()).await.unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.unwrap();
    }
}

/// A chain of `n` nodes × 24 bins; `root` feeds every node, `leaf` the last.
fn chain(n: usize) -> String {
    let mut y = String::from(
        "id: chain\nversion: \"1\"\nparameters:\n  - {name: root, type: number, default: 1, min: 0}\n  - {name: leaf, type: number, default: 1}\n  - {name: steps, type: integer, default: 1}\ngrid: {bins: 24, binSize: 1, binUnit: hours}\nnodes:\n  - {id: n0, kind: expr, expr: \"{{root}} + 1\"}\n",
    );
    for i in 1..n {
        let extra = if i == n - 1 { " + {{leaf}}" } else { "" };
        y.push_str(&format!("  - {{id: n{i}, kind: expr, expr: \"n{} * 0.5 + 1{extra}\"}}\n", i - 1));
    }
    y
}

fn host_with(text: &str) -> Host {
    crate::analysis::session(text, &[])
}

fn options(keep: &str) -> Option<pb::AnalysisOptions> {
    Some(pb::AnalysisOptions {
        target: Some(pb::Target { session: "s".into(), variant: String::new() }),
        keep_prefix: keep.into(),
        ..Default::default()
    })
}

fn vary(name: &str, values: Vec<f64>) -> pb::Vary {
    pb::Vary { name: name.into(), values, range: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_comes_before_the_result_and_kept_points_become_variants() {
    let server = Server::start(host_with(&chain(50)), ServerOptions::default()).await;
    let c = server.client().await;
    let mut stream = c
        .analysis()
        .sweep(pb::SweepRequest {
            options: options("leafy"),
            vary: vec![pb::Vary {
                name: "leaf".into(),
                values: vec![],
                range: Some(pb::ValueRange { lo: 0.0, hi: 4.0, steps: 4 }),
            }],
            metrics: vec!["max(n49)".into(), "first_bin_above(n49, 1000)".into()],
            series: vec!["n49".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let mut progress = Vec::new();
    let mut result = None;
    while let Some(ev) = stream.message().await.unwrap() {
        match ev.event.unwrap() {
            pb::sweep_event::Event::Progress(p) => {
                assert!(result.is_none(), "no progress after the result");
                progress.push(p);
            }
            pb::sweep_event::Event::Result(r) => result = Some(r),
        }
    }
    let r = result.expect("one result ends the stream");
    assert!(!progress.is_empty(), "progress events arrive before the result");
    assert_eq!(progress.last().map(|p| (p.points_done, p.points_total)), Some((5, 5)));
    let values: Vec<f64> = r.points.iter().map(|p| p.params[0].value).collect();
    assert_eq!(values, vec![0.0, 1.0, 2.0, 3.0, 4.0], "LO..HI/STEPS is steps + 1 values, in order");
    // n49 = chain value + leaf: each step of `leaf` adds exactly 1.
    let peaks: Vec<f64> = r.points.iter().map(|p| p.metrics[0].value).collect();
    assert!(peaks.windows(2).all(|w| w[1] - w[0] == 1.0), "{peaks:?}");
    assert!(r.points[0].metrics[1].value.is_nan(), "first_bin_above is NaN when never above");
    assert_eq!(r.points[0].series[0].values.len(), 24);
    assert!(r.points.iter().all(|p| p.accounting.as_ref().unwrap().nodes_evaluated == 1));
    let summary = r.summary.unwrap();
    assert_eq!(summary.kept, (0..5).map(|i| format!("leafy-{i}")).collect::<Vec<_>>());
    // The kept variants are real: they answer queries with the point's values.
    let got = c
        .queries()
        .get_series(pb::GetSeriesRequest {
            target: Some(pb::Target { session: "s".into(), variant: "leafy-3".into() }),
            ids: vec!["n49".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.series[0].values.iter().cloned().fold(f64::NEG_INFINITY, f64::max), peaks[3]);
    // The same prefix again could clash: refused before any work.
    let err = c
        .analysis()
        .sweep(pb::SweepRequest {
            options: options("leafy"),
            vary: vec![vary("leaf", vec![9.0])],
            metrics: vec!["max(n49)".into()],
            series: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_mid_sweep_stops_promptly_and_changes_nothing() {
    let opts = ServerOptions { eval_budget: u64::MAX, ..Default::default() };
    let server = Server::start(host_with(&chain(400)), opts).await;
    let c = server.client().await;
    let before = c.sessions().get_session(pb::GetSessionRequest { session_id: "s".into() }).await.unwrap().into_inner();
    let baseline = Arc::strong_count(&server.host);
    // 50,000 root points: minutes of work unless the cancel stops it.
    let values: Vec<f64> = (0..50_000).map(|i| 1.0 + i as f64 * 1e-3).collect();
    let mut stream = c
        .analysis()
        .sweep(pb::SweepRequest {
            options: options("kept"),
            vary: vec![vary("root", values)],
            metrics: vec!["max(n399)".into()],
            series: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(matches!(first.event, Some(pb::sweep_event::Event::Progress(_))));
    assert!(Arc::strong_count(&server.host) > baseline, "the analysis holds the host while it runs");
    drop(stream);
    let t = Instant::now();
    while Arc::strong_count(&server.host) > baseline {
        assert!(t.elapsed() < Duration::from_secs(10), "the analysis did not stop after the cancel");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = c.sessions().get_session(pb::GetSessionRequest { session_id: "s".into() }).await.unwrap().into_inner();
    assert_eq!(after.revision, before.revision, "nothing was written");
    assert!(after.variants.is_empty(), "no point was kept");
    // The server still answers at once.
    let r = c
        .analysis()
        .sweep(pb::SweepRequest {
            options: options(""),
            vary: vec![vary("leaf", vec![2.0])],
            metrics: vec!["max(n399)".into()],
            series: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap();
    assert!(r.is_some());
    server.stop().await;
}

/// The first event's error, for requests refused before any work.
async fn refused(c: &Client, req: pb::SweepRequest) -> tonic::Status {
    c.analysis().sweep(req).await.unwrap().into_inner().message().await.expect_err("refused")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_limits_are_refused_before_any_work() {
    let opts = ServerOptions { eval_budget: 50 * 24 * 10, ..Default::default() };
    let server = Server::start(host_with(&chain(50)), opts).await;
    let c = server.client().await;
    let sweep = |vary: Vec<pb::Vary>, metric: &str| pb::SweepRequest {
        options: options(""),
        vary,
        metrics: vec![metric.into()],
        series: vec![],
    };
    let e = refused(&c, sweep(vec![vary("lef", vec![1.0])], "max(n49)")).await;
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("unknown parameter `lef`"), "{}", e.message());
    let details = tonic_types::StatusExt::get_error_details(&e);
    let v = &details.bad_request().unwrap().field_violations[0];
    assert_eq!(v.field, "request: vary[0].name");
    assert!(v.description.contains("did you mean `leaf`?"), "{}", v.description);

    let e = refused(&c, sweep(vec![vary("root", vec![1.0, -2.0])], "max(n49)")).await;
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("root") && e.message().contains("vary[0].values[1]"), "{}", e.message());

    let e = refused(&c, sweep(vec![vary("steps", vec![1.5])], "max(n49)")).await;
    assert!(e.message().contains("not a whole number"), "{}", e.message());

    let e = refused(&c, sweep(vec![vary("leaf", vec![1.0])], "max(n4x)")).await;
    assert_eq!(e.code(), Code::InvalidArgument);
    let details = tonic_types::StatusExt::get_error_details(&e);
    let v = &details.bad_request().unwrap().field_violations[0];
    assert_eq!(v.field, "request: metrics[0]");
    assert!(
        v.description.contains("max(n4x)\n") && v.description.contains("    ^^^"),
        "a caret under the series:\n{}",
        v.description
    );

    let e = refused(&c, sweep(vec![vary("leaf", vec![1.0])], "max(n49[10..10])")).await;
    assert!(e.message().contains("empty"), "{}", e.message());

    // Too many points: 100 × 100 × 100 = 10⁶ > 100,000.
    let hundred: Vec<f64> = (0..100).map(f64::from).collect();
    let e = refused(
        &c,
        sweep(vec![vary("leaf", hundred.clone()), vary("root", hundred.clone()), vary("steps", hundred)], "max(n49)"),
    )
    .await;
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("100000"), "{}", e.message());

    // Over the budget: 20 root points × 50 units × 24 bins > 12,000.
    let e = refused(&c, sweep(vec![vary("root", (0..20).map(f64::from).collect())], "max(n49)")).await;
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // The same count of leaf points fits: each evaluates one unit.
    let ok = c.analysis().sweep(sweep(vec![vary("leaf", (0..20).map(f64::from).collect())], "max(n49)")).await.unwrap();
    assert!(ok.into_inner().message().await.is_ok());

    let mut a = c.analysis();
    let e = a
        .goal_seek(pb::GoalSeekRequest {
            options: options(""),
            param: "leaf".into(),
            lo: 3.0,
            hi: 3.0,
            metric: "max(n49)".into(),
            target: 5.0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("lo < hi"), "{}", e.message());
    let e = a
        .monte_carlo(pb::MonteCarloRequest {
            options: options(""),
            samples: 0,
            series: vec!["n49".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap_err();
    assert!(e.message().contains("zero samples"), "{}", e.message());
    let e = a
        .sweep(pb::SweepRequest {
            options: Some(pb::AnalysisOptions {
                target: Some(pb::Target { session: "nope".into(), variant: String::new() }),
                ..Default::default()
            }),
            vary: vec![vary("leaf", vec![1.0])],
            metrics: vec!["max(n49)".into()],
            series: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let info = c.sessions().get_session(pb::GetSessionRequest { session_id: "s".into() }).await.unwrap().into_inner();
    assert!(info.variants.is_empty());
    server.stop().await;
}

/// In process and over a socket, the same request gives the same result (but elapsed time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_and_socket_analyse_alike() {
    let text = chain(20);
    let req = || pb::SensitivityRequest {
        options: options(""),
        params: vec!["root".into(), "leaf".into()],
        metric: "mean(n19)".into(),
        ..Default::default()
    };
    let result = |mut s: tonic::Streaming<pb::SensitivityEvent>| async move {
        let mut last = None;
        while let Some(ev) = s.message().await.unwrap() {
            last = ev.event;
        }
        match last {
            Some(pb::sensitivity_event::Event::Result(mut r)) => {
                r.summary = None;
                for p in &mut r.points {
                    p.accounting = None;
                }
                r
            }
            other => panic!("{other:?}"),
        }
    };
    let local = Client::in_process(Arc::new(SharedHost::new(host_with(&text))), ServerOptions::default()).await;
    let a = result(local.client.analysis().sensitivity(req()).await.unwrap().into_inner()).await;
    let server = Server::start(host_with(&text), ServerOptions::default()).await;
    let b = result(server.client().await.analysis().sensitivity(req()).await.unwrap().into_inner()).await;
    server.stop().await;
    assert_eq!(a, b);
    // n19 = leaf + … + root / 2¹⁹: the leaf matters far more at the end of the chain.
    assert_eq!(a.rows[0].param, "leaf");
    assert!((a.rows[1].gradient - 0.5f64.powi(19)).abs() < 1e-9, "{:?}", a.rows[1]);
}

// ---- The CLI forms (the contract outside checks use) ----

fn cli(args: &[&str], cwd: &Path) -> std::process::Output {
    crate::cli::flowtime().args(args).current_dir(cwd).output().expect("spawn flowtime")
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// A queue model file without id or version (a one-shot model), fed by the arrivals of
/// `analysis::queue_model`.
const QUEUE: &str = "parameters:\n  - {name: capacity, type: number, default: 10, min: 0}\n  - {name: scale, type: number, default: 1}\ngrid: {bins: 6, binSize: 1, binUnit: hours}\nnodes:\n  - {id: arrivals, kind: const, values: [12, 15, 3, 20, 9, 8]}\n  - {id: q, kind: expr, expr: \"MAX(0, SHIFT(q, 1) + arrivals * {{scale}} - {{capacity}})\", initial: 0}\n  - {id: noise, kind: pmf, pmf: {values: [0, 10], probabilities: [0.5, 0.5]}}\n  - {id: noisy, kind: expr, expr: \"q + noise\"}\n";

#[test]
fn cli_sweep_and_goal_seek_on_a_model_file_print_the_documented_json() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("q.yaml"), QUEUE).unwrap();
    let v = json_of(&cli(
        &["analyze", "sweep", "q.yaml", "-p", "scale=1", "--vary", "capacity=8,10,12", "--metric", "max(q)", "--json"],
        tmp.path(),
    ));
    assert_eq!(v["mode"], "sweep");
    let points = v["points"].as_array().unwrap();
    // q: 12-8=4, 4+15-8=11, 11+3-8=6, 6+20-8=18, 18+9-8=19, 19+8-8=19 → 19; at 10: 10; at 12: 8.
    let peaks: Vec<f64> = points.iter().map(|p| p["metrics"]["max(q)"].as_f64().unwrap()).collect();
    assert_eq!(peaks, vec![19.0, 10.0, 8.0]);
    assert_eq!(points[1]["params"]["capacity"], 10.0);
    assert_eq!(points[0]["accounting"]["nodes_evaluated"], 1, "only the queue is in the cone");
    assert!(v["accounting"]["nodes_total"].as_u64().unwrap() > 0);

    let v = json_of(&cli(
        &[
            "analyze",
            "goal-seek",
            "q.yaml",
            "--param",
            "capacity",
            "--lo",
            "5",
            "--hi",
            "20",
            "--metric",
            "max(q)",
            "--target",
            "5",
            "--tolerance",
            "1e-6",
            "--json",
        ],
        tmp.path(),
    ));
    assert_eq!(v["mode"], "goal-seek");
    assert_eq!(v["converged"], true);
    assert!((v["achieved"].as_f64().unwrap() - 5.0).abs() <= 1e-6);
    assert!((v["value"].as_f64().unwrap() - 15.0).abs() < 1e-5, "{v}");
    assert!(v["iterations"].as_u64().unwrap() >= 1);
    assert!(v["trace"].as_array().unwrap().len() >= 3);

    // Located bad input: exit 2, the metric quoted with a caret, a hint.
    let out = cli(&["analyze", "sweep", "q.yaml", "--vary", "capacity=8", "--metric", "max(qq)"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown series `qq`") && err.contains("   |     ^^") && err.contains("did you mean `q`?"),
        "{err}"
    );
    let out = cli(
        &[
            "analyze",
            "goal-seek",
            "q.yaml",
            "--param",
            "capacity",
            "--lo",
            "9",
            "--hi",
            "3",
            "--metric",
            "max(q)",
            "--target",
            "5",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lo < hi"));
    let out = cli(&["analyze", "monte-carlo", "q.yaml", "--samples", "0", "--series", "q"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zero samples"));
}

#[test]
fn cli_monte_carlo_json_is_the_same_bytes_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("q.yaml"), QUEUE).unwrap();
    let mc = |threads: &str, seed: &str| {
        let out = cli(
            &[
                "analyze",
                "monte-carlo",
                "q.yaml",
                "--samples",
                "500",
                "--seed",
                seed,
                "--series",
                "noisy",
                "--metric",
                "max(noisy)",
                "--threads",
                threads,
                "--json",
            ],
            tmp.path(),
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let one = mc("1", "7");
    assert_eq!(one, mc("2", "7"));
    assert_ne!(one, mc("2", "8"));
    let v: serde_json::Value = serde_json::from_slice(&one).unwrap();
    assert_eq!(
        (v["mode"].as_str(), v["samples"].as_u64(), v["seed"].as_u64()),
        (Some("monte-carlo"), Some(500), Some(7))
    );
    let band = &v["bands"]["noisy"];
    for k in ["p5", "p50", "p95", "mean"] {
        assert_eq!(band[k].as_array().unwrap().len(), 6, "{k}");
    }
    let m = &v["metrics"]["max(noisy)"];
    for k in ["mean", "p5", "p50", "p95"] {
        assert!(m[k].is_f64(), "{k}: {m}");
    }
}

#[test]
fn cli_fit_recovers_the_gold_capacity_from_the_shipped_template() {
    let tmp = tempfile::tempdir().unwrap();
    let tpl = repo().join("templates/order-pipeline.yaml");
    let v = json_of(&cli(
        &[
            "analyze",
            "fit",
            tpl.to_str().unwrap(),
            "-p",
            "order_served_source=order_served_modeled",
            "-p",
            "order_capacity=70",
            "--param",
            "order_capacity=50..200",
            "--modelled",
            "orders_backlog",
            "--observed",
            "file:data/gold/series/OrdersQueue_queue_depth.csv",
            "--loss",
            "sse",
            "--json",
        ],
        tmp.path(),
    ));
    assert_eq!(v["mode"], "fit");
    let cap = v["params"]["order_capacity"].as_f64().unwrap();
    assert!((cap - 110.0).abs() <= 2.2, "{cap}");
    assert!(v["loss"].as_f64().unwrap() >= 0.0 && v["r2"].as_f64().unwrap() > 0.9, "{v}");
    assert!(v["iterations"].as_u64().unwrap() >= 1);
}

#[test]
fn cli_analyses_a_database_session_in_process_and_keeps_points() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("q.yaml"), format!("id: q\nversion: \"1\"\n{QUEUE}")).unwrap();
    let out = cli(&["--db", "f.redb", "session", "open", "q.yaml", "--name", "s"], tmp.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_of(&cli(
        &[
            "--db",
            "f.redb",
            "analyze",
            "sweep",
            "s",
            "-p",
            "scale=2",
            "--vary",
            "capacity=10,12",
            "--metric",
            "max(q)",
            "--keep",
            "cap",
            "--json",
        ],
        tmp.path(),
    ));
    // With scale 2: 24-10=14, 14+30-10=34, 34+6-10=30, 30+40-10=60, 60+18-10=68, 68+16-10=74.
    assert_eq!(v["points"][0]["metrics"]["max(q)"], 74.0);
    assert_eq!(v["kept"], serde_json::json!(["cap-0", "cap-1"]));
    let out = cli(&["--db", "f.redb", "--json", "session", "show", "s"], tmp.path());
    let s = json_of(&out);
    assert_eq!(s["variants"], serde_json::json!(["cap-0", "cap-1"]), "{s}");
    // A table on a pipe: no progress bar, readable rows.
    let out = cli(
        &[
            "--db",
            "f.redb",
            "analyze",
            "sensitivity",
            "s",
            "--param",
            "capacity",
            "--param",
            "scale",
            "--metric",
            "max(q)",
        ],
        tmp.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("rank") && text.contains("elasticity"), "{text}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("points"), "no progress bar off a terminal");
    // A session that does not exist, and a database that does not.
    let out =
        cli(&["--db", "f.redb", "analyze", "sweep", "nope", "--vary", "capacity=1", "--metric", "max(q)"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    let out = cli(
        &["--db", "missing.redb", "analyze", "sweep", "s", "--vary", "capacity=1", "--metric", "max(q)"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!tmp.path().join("missing.redb").exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_analyses_a_session_on_a_server() {
    let server = Server::start(host_with(&chain(30)), ServerOptions::default()).await;
    let addr = server.addr.to_string();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        cli(
            &["--server", &addr, "analyze", "sweep", "s", "--vary", "leaf=1..3/2", "--metric", "max(n29)", "--json"],
            &dir,
        )
    })
    .await
    .unwrap();
    let v = json_of(&out);
    assert_eq!(v["points"].as_array().unwrap().len(), 3);
    assert_eq!(v["points"][2]["params"]["leaf"], 3.0);
    server.stop().await;
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
