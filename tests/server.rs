//! The gRPC server end to end: a real server on a loopback port (port 0) with a temp redb file,
//! driven through the generated Rust client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flowtime::host::{Host, SharedHost};
use flowtime::server::pb;
use flowtime::server::pb::query_service_client::QueryServiceClient;
use flowtime::server::pb::run_service_client::RunServiceClient;
use flowtime::server::pb::series_service_client::SeriesServiceClient;
use flowtime::server::pb::session_service_client::SessionServiceClient;
use flowtime::server::pb::template_service_client::TemplateServiceClient;
use flowtime::server::pb::watch_service_client::WatchServiceClient;
use flowtime::server::{ServerOptions, bind, serve};
use tonic::Code;
use tonic::transport::Channel;

/// A server on a free loopback port; stops (gracefully) when dropped via `stop`.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub(crate) async fn start(db: &Path, opts: ServerOptions) -> TestServer {
        TestServer::start_in(db, opts, &PathBuf::from(env!("CARGO_MANIFEST_DIR"))).await
    }

    /// A server whose `file:` references and LoadGold paths resolve under `root`.
    pub(crate) async fn start_in(db: &Path, opts: ServerOptions, root: &Path) -> TestServer {
        let host = Host::open(db, "test server", root).unwrap();
        let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let shared = Arc::new(SharedHost::new(host));
        let done = tokio::spawn(async move {
            serve(listener, shared, opts, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestServer { addr, stop: Some(tx), done: Some(done) }
    }

    pub(crate) async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.unwrap();
    }
}

fn template_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/order-system.yaml")).unwrap()
}

fn target(session: &str, variant: &str) -> Option<pb::Target> {
    Some(pb::Target { session: session.into(), variant: variant.into() })
}

fn num(x: f64) -> pb::ParamValue {
    pb::ParamValue { kind: Some(pb::param_value::Kind::Number(x)) }
}

/// Stores `text` (template `id`), opens session `s` on it and watches it past the initial event.
async fn open_and_watch(ch: &Channel, text: &str, id: &str) -> tonic::Streaming<pb::WatchEvent> {
    TemplateServiceClient::new(ch.clone())
        .put_template(pb::PutTemplateRequest { text: text.into(), ..Default::default() })
        .await
        .unwrap();
    SessionServiceClient::new(ch.clone())
        .open_session(pb::OpenSessionRequest { template_id: id.into(), session_id: "s".into(), ..Default::default() })
        .await
        .unwrap();
    let mut stream = WatchServiceClient::new(ch.clone())
        .watch(pb::WatchRequest { target: target("s", ""), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().unwrap().initial);
    stream
}

async fn setup(ch: &Channel) {
    let mut tpl = TemplateServiceClient::new(ch.clone());
    let put = tpl
        .put_template(pb::PutTemplateRequest { text: template_text(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((put.id.as_str(), put.version.as_str(), put.created), ("order-system", "1.0.0", true));
    let mut sess = SessionServiceClient::new(ch.clone());
    let s = sess
        .open_session(pb::OpenSessionRequest {
            template_id: "order-system".into(),
            session_id: "replay".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.grid.unwrap().bin_minutes, 5);
    sess.create_variant(pb::CreateVariantRequest {
        session_id: "replay".into(),
        name: "backlog".into(),
        parameters: HashMap::from([("q0".to_string(), num(500.0))]),
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_queries_state_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        &dir.path().join("f.redb"),
        ServerOptions { runs_dir: dir.path().join("runs"), ..Default::default() },
    )
    .await;
    let ch = server.channel().await;
    setup(&ch).await;
    let mut q = QueryServiceClient::new(ch.clone());

    // Series by pattern with a window; the grid travels with it.
    let r = q
        .get_series(pb::GetSeriesRequest {
            target: target("replay", "backlog"),
            pattern: "queue_*".into(),
            window: Some(pb::BinWindow { start: 0, end: 3 }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.grid.as_ref().unwrap().bin_minutes, 5);
    assert_eq!(r.series.len(), 1);
    // queue_depth[0] = max(0, 500 + arrivals[0] − served[0] − errors[0]) = 500 + 43 − 43 − 0.
    assert_eq!(r.series[0].values, vec![500.0, 500.0, 500.0]);
    // An inferred capacity asked for alone carries its label (it is inferred from series the
    // request did not name), and a refused one says why.
    for (variant, refused) in [("", false), ("backlog", true)] {
        let cap = q
            .get_series(pb::GetSeriesRequest {
                target: target("replay", variant),
                ids: vec!["capacity_inferred".into()],
                window: Some(pb::BinWindow { start: 0, end: 1 }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let label = cap.series[0].inference.clone().expect("the inference label");
        assert_eq!(label.method, "saturation");
        if refused {
            assert!(cap.series[0].values[0].is_nan() && label.refused.contains("q0 = 500"), "{label:?}");
        } else {
            assert_eq!((cap.series[0].values[0], label.saturated_bins), (109.0, 22));
            assert!(label.refused.is_empty() && (label.confidence - 22.0 / 288.0).abs() < 1e-12);
        }
    }
    let info = r.info.unwrap();
    assert_eq!(info.overrides["q0"], num(500.0));
    assert_eq!(info.revision, 2);
    // The same query again evaluates nothing.
    let again = q
        .get_series(pb::GetSeriesRequest {
            target: target("replay", "backlog"),
            pattern: "queue_*".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.info.unwrap().accounting.unwrap().nodes_evaluated, 0);

    // State by index and by aligned timestamp agree.
    let by_index = q
        .get_state(pb::GetStateRequest { target: target("replay", ""), at: Some(pb::get_state_request::At::Bin(126)) })
        .await
        .unwrap()
        .into_inner();
    let by_ts = q
        .get_state(pb::GetStateRequest {
            target: target("replay", ""),
            at: Some(pb::get_state_request::At::Timestamp("2025-10-07T10:30:00Z".into())),
        })
        .await
        .unwrap()
        .into_inner();
    let st = by_index.state.unwrap();
    assert_eq!(st, by_ts.state.unwrap());
    assert_eq!(st.bin.as_ref().unwrap().start_utc, "2025-10-07T10:30:00Z");
    assert_eq!(st.bin.as_ref().unwrap().end_utc, "2025-10-07T10:35:00Z");
    let node = st.nodes.iter().find(|n| n.id == "OrderQueue").unwrap();
    assert_eq!(node.roles["arrivals"], st.series["served"]);
    // The shipped data's stale queue metric is flagged at this bin.
    assert!(st.warnings.iter().any(|w| w.code == "orders_conservation"), "{:?}", st.warnings);
    let svc = st.nodes.iter().find(|n| n.id == "OrderService").unwrap();
    assert_eq!(svc.inference.as_ref().unwrap().method, "saturation");
    assert!(svc.derived.contains_key("utilization") && svc.derived.contains_key("latency_min"));

    // A misaligned timestamp names the bin that contains it.
    let e = q
        .get_state(pb::GetStateRequest {
            target: target("replay", ""),
            at: Some(pb::get_state_request::At::Timestamp("2025-10-07T10:32:00Z".into())),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("bin 126") && e.message().contains("10:30:00Z"), "{}", e.message());
    // Also inside a minute (a timestamp with seconds).
    let e = q
        .get_state(pb::GetStateRequest {
            target: target("replay", ""),
            at: Some(pb::get_state_request::At::Timestamp("2025-10-07T10:30:30Z".into())),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("bin 126") && e.message().contains("10:30:00Z"), "{}", e.message());
    let e = q
        .get_state(pb::GetStateRequest { target: target("replay", ""), at: Some(pb::get_state_request::At::Bin(288)) })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange);

    // State window, metrics, graph, warnings.
    let w = q
        .get_state_window(pb::GetStateWindowRequest {
            target: target("replay", ""),
            window: Some(pb::BinWindow { start: 100, end: 110 }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.states.len(), 10);
    assert_eq!(w.states[0].bin.as_ref().unwrap().index, 100);
    let m =
        q.get_metrics(pb::GetMetricsRequest { target: target("replay", ""), window: None }).await.unwrap().into_inner();
    let os = m.nodes.iter().find(|n| n.id == "OrderService").unwrap();
    assert_eq!(os.sla_min, Some(30.0));
    let share = os.sla_share.unwrap();
    assert!((0.0..=1.0).contains(&share));
    assert!(os.roles["arrivals"].max >= os.roles["arrivals"].mean);
    let g = q.get_graph(pb::GetGraphRequest { target: target("replay", "") }).await.unwrap().into_inner();
    assert_eq!(g.nodes.len(), 3);
    assert_eq!(g.edges.len(), 2);
    assert_eq!(g.nodes.iter().find(|n| n.id == "OrderService").unwrap().ui_x, Some(120.0));
    let ws = q.get_warnings(pb::GetWarningsRequest { target: target("replay", "") }).await.unwrap().into_inner();
    assert!(ws.warnings.iter().any(|w| w.code == "conservation_violation"));

    // Compare: outside the cone of q0 is identical without evaluation.
    let c = q
        .compare(pb::CompareRequest {
            a: Some(pb::Operand { kind: Some(pb::operand::Kind::Target(target("replay", "").unwrap())) }),
            b: Some(pb::Operand { kind: Some(pb::operand::Kind::Target(target("replay", "backlog").unwrap())) }),
            include_values: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let row = |id: &str| c.series.iter().find(|s| s.id == id).unwrap().clone();
    assert!(row("served").not_downstream_of_any_difference);
    let qd = row("queue_depth");
    assert!(!qd.identical && qd.max_abs_diff == 500.0 && qd.bins_differ as usize == qd.a.len());
    assert!(qd.diff.iter().zip(qd.a.iter().zip(&qd.b)).all(|(d, (a, b))| *d == b - a));
    assert!(qd.rel_diff[0].is_nan(), "a = 0 gives NaN relative difference");
    let sum = c.summary.unwrap();
    assert_eq!(sum.identical + sum.differing, sum.series);

    // Runs: written once, compared like a target.
    let mut runs = RunServiceClient::new(ch.clone());
    let run = runs.create_run(pb::CreateRunRequest { target: target("replay", "backlog") }).await.unwrap().into_inner();
    assert!(run.id.starts_with("run_order-system_") && Path::new(&run.dir).join("manifest.json").exists());
    // The run against the target it was written from.
    let run_vs_target = || pb::CompareRequest {
        a: Some(pb::Operand { kind: Some(pb::operand::Kind::RunId(run.id.clone())) }),
        b: Some(pb::Operand { kind: Some(pb::operand::Kind::Target(target("replay", "backlog").unwrap())) }),
        ..Default::default()
    };
    let c = q.compare(run_vs_target()).await.unwrap().into_inner();
    assert_eq!(c.summary.unwrap().differing, 0, "a run equals the target it was written from");
    assert_eq!(runs.list_runs(pb::ListRunsRequest {}).await.unwrap().into_inner().runs.len(), 1);
    // A stored run whose files no longer match its manifest is DATA_LOSS, not the request's fault.
    let served = Path::new(&run.dir).join("series/served.csv");
    std::fs::write(&served, "bin_index,value\n0,1\n").unwrap();
    let e = runs.create_run(pb::CreateRunRequest { target: target("replay", "backlog") }).await.unwrap_err();
    assert_eq!(e.code(), Code::DataLoss, "{}", e.message());
    assert!(e.message().contains("series/served.csv does not match its manifest hash"), "{}", e.message());
    assert!(e.message().contains("delete the run directory and run again"), "the fix is kept: {}", e.message());
    // Compared as an operand, the same run is the same error.
    let e = q.compare(run_vs_target()).await.unwrap_err();
    assert_eq!(e.code(), Code::DataLoss, "{}", e.message());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes_and_the_store_is_unchanged_by_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ServerOptions { max_message_bytes: 1 << 20, eval_budget: 1_000, ..Default::default() };
    let server = TestServer::start(&dir.path().join("f.redb"), opts).await;
    let ch = server.channel().await;
    setup(&ch).await;
    let mut tpl = TemplateServiceClient::new(ch.clone());
    let mut sess = SessionServiceClient::new(ch.clone());
    let mut q = QueryServiceClient::new(ch.clone());
    let before = sess.get_session(pb::GetSessionRequest { session_id: "replay".into() }).await.unwrap().into_inner();

    // Malformed YAML: INVALID_ARGUMENT with a field violation that locates it.
    let e = tpl
        .put_template(pb::PutTemplateRequest {
            text: "id: x\nversion: \"1\"\ngrid: {bins: 3\nnodes: []".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    use tonic_types::StatusExt;
    let details = e.get_error_details();
    let v = &details.bad_request().unwrap().field_violations[0];
    assert!(v.field.starts_with("text") && v.description.contains("line"), "{v:?}");
    // An unknown reference: the violation names the YAML path and the caret.
    let bad = template_text()
        .replace("version: \"1.0.0\"", "version: \"2.0.0\"")
        .replace("arrivals - served - errors", "arrivals - servd - errors");
    let e = tpl.put_template(pb::PutTemplateRequest { text: bad, ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let details = e.get_error_details();
    let v = &details.bad_request().unwrap().field_violations[0];
    assert!(v.field.contains("nodes[4] (id queue_depth).expr") && v.description.contains("^^^^^"), "{v:?}");
    // Different text under a stored version.
    let e = tpl
        .put_template(pb::PutTemplateRequest {
            text: template_text().replace("Order processing system", "Changed"),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    // Unknown session / variant.
    let e = sess
        .create_variant(pb::CreateVariantRequest { session_id: "nope".into(), name: "x".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = q
        .get_series(pb::GetSeriesRequest {
            target: target("replay", "nope"),
            pattern: "*".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // A parameter override of the wrong type names the parameter.
    let e = sess
        .create_variant(pb::CreateVariantRequest {
            session_id: "replay".into(),
            name: "x".into(),
            parameters: HashMap::from([(
                "q0".to_string(),
                pb::ParamValue { kind: Some(pb::param_value::Kind::Text("lots".into())) },
            )]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("parameter `q0`"), "{}", e.message());
    // A bins window outside the grid.
    let e = q
        .get_series(pb::GetSeriesRequest {
            target: target("replay", ""),
            ids: vec!["served".into()],
            window: Some(pb::BinWindow { start: 280, end: 300 }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange);
    // The evaluation budget (1,000 bins × units here).
    let e = q
        .get_series(pb::GetSeriesRequest {
            target: target("replay", ""),
            ids: vec!["queue_depth".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    // A run evaluates everything: the same budget applies, and no run is recorded.
    let mut runs = RunServiceClient::new(ch.clone());
    let e = runs.create_run(pb::CreateRunRequest { target: target("replay", "") }).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert!(runs.list_runs(pb::ListRunsRequest {}).await.unwrap().into_inner().runs.is_empty());
    // An oversized message (limit 1 MiB here).
    let mut series = SeriesServiceClient::new(ch.clone()).max_encoding_message_size(8 << 20);
    let e = series
        .put_series(pb::PutSeriesRequest {
            name: "big".into(),
            bin_minutes: 5,
            values: vec![1.0; 200_000],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    // A timestamp on a model without a start.
    let mut tpl2 = TemplateServiceClient::new(ch.clone());
    tpl2.put_template(pb::PutTemplateRequest { text: "id: nostart\nversion: \"1\"\ngrid: {bins: 2, binSize: 1, binUnit: hours}\nnodes:\n  - {id: a, kind: const, values: [1, 2]}\n".into(), ..Default::default() }).await.unwrap();
    sess.open_session(pb::OpenSessionRequest {
        template_id: "nostart".into(),
        session_id: "ns".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = q
        .get_state(pb::GetStateRequest {
            target: target("ns", ""),
            at: Some(pb::get_state_request::At::Timestamp("2025-10-07T00:00:00Z".into())),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    // Different grids.
    let e = q
        .compare(pb::CompareRequest {
            a: Some(pb::Operand { kind: Some(pb::operand::Kind::Target(target("ns", "").unwrap())) }),
            b: Some(pb::Operand { kind: Some(pb::operand::Kind::Target(target("replay", "").unwrap())) }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);

    // The server still serves and the session is as it was.
    let after = sess.get_session(pb::GetSessionRequest { session_id: "replay".into() }).await.unwrap().into_inner();
    assert_eq!(before, after);
    assert_eq!(
        sess.list_variants(pb::ListVariantsRequest { session_id: "replay".into() })
            .await
            .unwrap()
            .into_inner()
            .variants
            .len(),
        1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_receives_exactly_the_series_downstream_of_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("f.redb"), ServerOptions::default()).await;
    let ch = server.channel().await;
    setup(&ch).await;
    let mut w = WatchServiceClient::new(ch.clone());
    let mut stream = w
        .watch(pb::WatchRequest { target: target("replay", "backlog"), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(first.initial);
    assert_eq!(first.series.len(), 17);

    let mut sess = SessionServiceClient::new(ch.clone());
    sess.update_variant(pb::UpdateVariantRequest {
        session_id: "replay".into(),
        name: "backlog".into(),
        parameters: HashMap::from([("q0".to_string(), num(600.0))]),
        ..Default::default()
    })
    .await
    .unwrap();
    let ev =
        tokio::time::timeout(std::time::Duration::from_secs(20), stream.message()).await.unwrap().unwrap().unwrap();
    assert!(!ev.initial);
    let mut ids: Vec<&str> = ev.series.iter().map(|s| s.id.as_str()).collect();
    ids.sort();
    // q0 feeds queue_depth; it feeds the inferred capacity, the modelled served (unused by this
    // replay), OrderService's latency and utilization (through capacity) — and nothing else.
    assert_eq!(
        ids,
        vec![
            "capacity_inferred",
            "order_service_latency_min",
            "order_service_utilization",
            "queue_depth",
            "served_modeled"
        ]
    );
    let qd = ev.series.iter().find(|s| s.id == "queue_depth").unwrap();
    assert!(qd.changed && qd.values[0] == 600.0);
    // The inferred capacity is recomputed to the same value (NaN: q0 changes the queue of a
    // replayed served, so inference is refused either way): listed, not changed, no values.
    let cap = ev.series.iter().find(|s| s.id == "capacity_inferred").unwrap();
    assert!(!cap.changed && cap.values.is_empty());
    // Evaluated: queue_depth, served_modeled, capacity_inferred and the latency. The capacity
    // came out bitwise equal, so the utilization (which reads only it and served) was not
    // re-evaluated.
    assert_eq!(ev.accounting.unwrap().nodes_evaluated, 4);
    let util = ev.series.iter().find(|s| s.id == "order_service_utilization").unwrap();
    assert!(!util.changed);

    // A change elsewhere (another variant) sends nothing to this watcher; a session parameter
    // the variant shares does.
    sess.create_variant(pb::CreateVariantRequest {
        session_id: "replay".into(),
        name: "other".into(),
        parameters: HashMap::from([("q0".to_string(), num(1.0))]),
        ..Default::default()
    })
    .await
    .unwrap();
    sess.set_session_parameters(pb::SetSessionParametersRequest {
        session_id: "replay".into(),
        parameters: HashMap::from([("demand_scale".to_string(), num(1.5))]),
    })
    .await
    .unwrap();
    let ev =
        tokio::time::timeout(std::time::Duration::from_secs(20), stream.message()).await.unwrap().unwrap().unwrap();
    assert!(
        ev.series.iter().any(|s| s.id == "arrivals" && s.changed),
        "{:?}",
        ev.series.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
    assert!(ev.series.iter().all(|s| s.id != "served"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_sessions_and_answers_identically() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.redb");
    let req =
        || pb::GetSeriesRequest { target: target("replay", "backlog"), pattern: "*".into(), ..Default::default() };
    let first = {
        let server = TestServer::start(&db, ServerOptions::default()).await;
        let ch = server.channel().await;
        setup(&ch).await;
        let r = QueryServiceClient::new(ch).get_series(req()).await.unwrap().into_inner();
        server.stop().await;
        r
    };
    let server = TestServer::start(&db, ServerOptions::default()).await;
    let mut q = QueryServiceClient::new(server.channel().await);
    let second = q.get_series(req()).await.unwrap().into_inner();
    // Bit for bit (the variant's inferred capacity is NaN: a backlog what-if on replayed served).
    let bits = |r: &pb::GetSeriesResponse| -> Vec<(String, Vec<u64>)> {
        r.series.iter().map(|s| (s.id.clone(), s.values.iter().map(|v| v.to_bits()).collect())).collect()
    };
    assert_eq!(bits(&first), bits(&second));
    assert_eq!(first.info.as_ref().unwrap().revision, second.info.as_ref().unwrap().revision);
    let third = q.get_series(req()).await.unwrap().into_inner();
    assert_eq!(third.info.unwrap().accounting.unwrap().nodes_evaluated, 0, "warm: nothing evaluated");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("f.redb"), ServerOptions::default()).await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else { panic!("{resp:?}") };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for s in [
        "flowtime.v1.TemplateService",
        "flowtime.v1.SessionService",
        "flowtime.v1.QueryService",
        "flowtime.v1.WatchService",
        "flowtime.v1.RunService",
        "flowtime.v1.SeriesService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == s), "{s} missing from {names:?}");
    }
    // Health says SERVING.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let h = health
        .check(tonic_health::pb::HealthCheckRequest { service: "flowtime.v1.QueryService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_stored_telemetry_reaches_watchers_with_its_cone() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("f.redb"), ServerOptions::default()).await;
    let ch = server.channel().await;
    let mut series = SeriesServiceClient::new(ch.clone());
    let put = |values: Vec<f64>| pb::PutSeriesRequest {
        name: "demand".into(),
        start: "2025-10-07T00:00:00Z".into(),
        bin_minutes: 5,
        values,
        provenance: [("source".to_string(), "test".to_string())].into(),
    };
    series.put_series(put(vec![10.0, 20.0, 30.0, 40.0])).await.unwrap();
    let info = series.get_stored_series(pb::GetStoredSeriesRequest { name: "demand".into() }).await.unwrap();
    let provenance = info.into_inner().info.unwrap().provenance;
    assert_eq!(provenance, HashMap::from([("source".to_string(), "test".to_string())]));
    let text = "id: tele\nversion: \"1\"\ngrid: {bins: 4, binSize: 5, binUnit: minutes, start: \"2025-10-07T00:00:00Z\"}\nnodes:\n  - {id: demand, kind: const, source: \"series:demand\"}\n  - {id: other, kind: const, values: [1, 2, 3, 4]}\n  - {id: doubled, kind: expr, expr: \"demand * 2\"}\n  - {id: plus, kind: expr, expr: \"other + 1\"}\n";
    let mut stream = open_and_watch(&ch, text, "tele").await;
    // A corrected series: the watcher hears about `demand` and `doubled`, nothing else.
    let r = series.put_series(put(vec![10.0, 25.0, 30.0, 40.0])).await.unwrap().into_inner();
    assert!(r.changed);
    let ev =
        tokio::time::timeout(std::time::Duration::from_secs(20), stream.message()).await.unwrap().unwrap().unwrap();
    let ids: Vec<&str> = ev.series.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, vec!["demand", "doubled"]);
    assert_eq!(ev.series[1].values, vec![20.0, 50.0, 60.0, 80.0]);
    assert_eq!(ev.accounting.unwrap().nodes_evaluated, 2);
    drop(stream);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_switched_to_the_input_another_node_read_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("f.redb"), ServerOptions::default()).await;
    let ch = server.channel().await;
    let mut series = SeriesServiceClient::new(ch.clone());
    for (name, values) in [("a", vec![1.0, 2.0, 3.0]), ("b", vec![10.0, 20.0, 30.0])] {
        series
            .put_series(pb::PutSeriesRequest {
                name: name.into(),
                start: "2025-10-07T00:00:00Z".into(),
                bin_minutes: 60,
                values,
                provenance: Default::default(),
            })
            .await
            .unwrap();
    }
    let text = "id: two\nversion: \"1\"\nparameters:\n  - {name: src_a, type: series, default: \"series:a\"}\n  - {name: src_b, type: series, default: \"series:b\"}\ngrid: {bins: 3, binSize: 1, binUnit: hours, start: \"2025-10-07T00:00:00Z\"}\nnodes:\n  - {id: a, kind: const, source: \"{{src_a}}\"}\n  - {id: b, kind: const, source: \"{{src_b}}\"}\n  - {id: c, kind: expr, expr: \"a + b\"}\n";
    let mut stream = open_and_watch(&ch, text, "two").await;
    let mut sess = SessionServiceClient::new(ch.clone());
    // `a` now reads exactly what `b` read before: still a change of `a`.
    sess.set_session_parameters(pb::SetSessionParametersRequest {
        session_id: "s".into(),
        parameters: HashMap::from([(
            "src_a".to_string(),
            pb::ParamValue { kind: Some(pb::param_value::Kind::Text("series:b".into())) },
        )]),
    })
    .await
    .unwrap();
    let ev =
        tokio::time::timeout(std::time::Duration::from_secs(20), stream.message()).await.unwrap().unwrap().unwrap();
    let ids: Vec<(&str, bool)> = ev.series.iter().map(|s| (s.id.as_str(), s.changed)).collect();
    assert_eq!(ids, vec![("a", true), ("c", true)]);
    assert_eq!(ev.series[0].values, vec![10.0, 20.0, 30.0]);
    assert_eq!(ev.series[1].values, vec![20.0, 40.0, 60.0]);
    drop(stream);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_gold_streams_uploads_reads_paths_under_the_data_root_only_and_caps_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    let gold = "ts,node,arrivals,served,errors\n\
2025-10-07T00:00:00Z,A,3,2,0\n2025-10-07T00:05:00Z,A,4,4,1\n2025-10-07T00:10:00Z,A,5,5,0\n";
    std::fs::write(root.join("day.csv"), gold).unwrap();
    let outside = dir.path().join("secret.csv");
    std::fs::write(&outside, gold.replace("A,", "S,")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, root.join("link.csv")).unwrap();
    let opts = ServerOptions { max_upload_bytes: 1024, ..Default::default() };
    let server = TestServer::start_in(&dir.path().join("f.redb"), opts, &root).await;
    let ch = server.channel().await;
    let mut series = SeriesServiceClient::new(ch.clone());
    let chunks = |opts: pb::LoadGoldOptions, data: Vec<u8>| {
        let mut msgs = vec![pb::LoadGoldChunk { options: Some(opts), data: Vec::new() }];
        msgs.extend(data.chunks(16).map(|c| pb::LoadGoldChunk { options: None, data: c.to_vec() }));
        tokio_stream::iter(msgs)
    };
    // The reply streams progress, then the result; an error ends the stream.
    let loader = series.clone();
    let load = |opts: pb::LoadGoldOptions, data: Vec<u8>| {
        let mut series = loader.clone();
        async move {
            let mut events = series.load_gold(chunks(opts, data)).await?.into_inner();
            let mut progress = Vec::new();
            while let Some(e) = events.message().await? {
                match e.event {
                    Some(pb::load_gold_event::Event::Progress(p)) => progress.push(p),
                    Some(pb::load_gold_event::Event::Result(r)) => {
                        assert!(events.message().await?.is_none(), "the result is the last event");
                        return Ok::<_, tonic::Status>((progress, r));
                    }
                    None => {}
                }
            }
            panic!("the stream ended without a result")
        }
    };

    // An upload in 16-byte chunks.
    let (progress, r) = load(pb::LoadGoldOptions::default(), gold.as_bytes().to_vec()).await.unwrap();
    // Progress covers the whole file, in order, within its size.
    let last = progress.last().expect("progress events");
    assert_eq!(last.bytes_total, gold.len() as u64);
    assert!(progress.windows(2).all(|w| (w[0].pass, w[0].bytes_read) <= (w[1].pass, w[1].bytes_read)));
    assert!(progress.iter().all(|p| p.bytes_read <= p.bytes_total));
    assert_eq!(r.series, vec!["A_arrivals", "A_served", "A_errors"]);
    assert_eq!(r.rows, 3);
    assert!(r.bin_size_inferred);
    assert_eq!(r.grid.as_ref().unwrap().bin_minutes, 5);
    let stored = series.get_stored_series(pb::GetStoredSeriesRequest { name: "A_served".into() }).await.unwrap();
    let stored = stored.into_inner();
    assert_eq!(stored.values, vec![2.0, 4.0, 5.0]);
    // Provenance is a map of text: the source, the file's sha256, no extraction time for uploads.
    let provenance = stored.info.unwrap().provenance;
    assert_eq!(provenance["source"], "upload");
    assert_eq!(provenance["sha256"].len(), 64);
    assert_eq!(provenance["extraction_ts"], "");
    assert_eq!(provenance, r.provenance);

    // A session replaying stored telemetry: the `series` parameter whose default file is
    // `A_served.csv` reads `series:A_served`; one whose file is not stored keeps its default.
    let replay = "id: replay\nversion: \"1\"\nparameters:\n  - {name: served_src, type: series, default: \"file:gold/A_served.csv\"}\n  - {name: other_src, type: series, default: \"file:day.csv\"}\ngrid: {bins: 3, binSize: 5, binUnit: minutes, start: \"2025-10-07T00:00:00Z\"}\nnodes:\n  - {id: served, kind: const, source: \"{{served_src}}\"}\n";
    let mut tpl = TemplateServiceClient::new(ch.clone());
    tpl.put_template(pb::PutTemplateRequest { text: replay.into(), ..Default::default() }).await.unwrap();
    let mut sess = SessionServiceClient::new(ch.clone());
    let open = |stored_telemetry: bool, id: &str| pb::OpenSessionRequest {
        template_id: "replay".into(),
        session_id: id.into(),
        stored_telemetry,
        ..Default::default()
    };
    let s = sess.open_session(open(true, "r")).await.unwrap().into_inner();
    assert_eq!(s.bound_to_stored, vec!["served_src"]);
    let text = |v: &pb::ParamValue| match &v.kind {
        Some(pb::param_value::Kind::Series(x) | pb::param_value::Kind::Text(x)) => x.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(text(&s.parameters["served_src"]), "series:A_served");
    assert_eq!(text(&s.parameters["other_src"]), "file:day.csv");
    let got = sess.get_session(pb::GetSessionRequest { session_id: "r".into() }).await.unwrap().into_inner();
    assert!(got.bound_to_stored.is_empty(), "only OpenSession reports what it bound");
    let mut q = QueryServiceClient::new(ch.clone());
    let values = q
        .get_series(pb::GetSeriesRequest { target: target("r", ""), pattern: "served".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .series
        .remove(0)
        .values;
    assert_eq!(values, vec![2.0, 4.0, 5.0]);

    // A path under the data root, with the file name as its source.
    let opts = pb::LoadGoldOptions { path: "day.csv".into(), ..Default::default() };
    let (_, r) = load(opts, Vec::new()).await.unwrap();
    assert_eq!(r.provenance["source"], "day.csv", "{:?}", r.provenance);
    assert!(r.changed.is_empty(), "same values as the upload: {:?}", r.changed);

    // Paths that leave the data root, textually or through a link, are refused.
    let opts = pb::LoadGoldOptions { path: "../secret.csv".into(), ..Default::default() };
    let e = load(opts, Vec::new()).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    #[cfg(unix)]
    {
        let opts = pb::LoadGoldOptions { path: "link.csv".into(), ..Default::default() };
        let e = load(opts, Vec::new()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
        assert!(e.message().contains("outside the data root"), "{}", e.message());
    }
    let list = series.list_series(pb::ListSeriesRequest {}).await.unwrap().into_inner();
    assert!(list.series.iter().all(|s| !s.name.starts_with("S_")));

    // A file of another kind under the data root is named as such, its content never quoted.
    let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n";
    std::fs::write(root.join("id_ed25519"), key).unwrap();
    for opts in [
        pb::LoadGoldOptions { path: "id_ed25519".into(), format: "csv".into(), ..Default::default() },
        pb::LoadGoldOptions { format: "csv".into(), ..Default::default() },
    ] {
        let upload = if opts.path.is_empty() { key.as_bytes().to_vec() } else { Vec::new() };
        let e = load(opts, upload).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
        assert!(e.message().contains("not a Gold CSV: the header has no `ts`/`node` column"), "{}", e.message());
        let details = String::from_utf8_lossy(e.details()).to_ascii_lowercase();
        for secret in ["openssh", "b3blbnnzac1"] {
            assert!(!e.message().to_ascii_lowercase().contains(secret), "{}", e.message());
            assert!(!details.contains(secret), "{details}");
        }
    }

    // An upload over the cap is refused and stores nothing.
    let big = gold.repeat(20).into_bytes();
    let e = load(pb::LoadGoldOptions::default(), big).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    assert_eq!(series.list_series(pb::ListSeriesRequest {}).await.unwrap().into_inner().series.len(), 3);
    server.stop().await;
}
