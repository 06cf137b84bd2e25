//! The workbench (issue 12): the page in a real browser (Debian's chromium driven through
//! chromedriver, headless) against a real `flowtime serve` on loopback; the JSON gateway over
//! HTTP/1.1 on the gRPC port; and the page's calls, each found in the API.
//!
//! Chromium and chromedriver come from Debian (`scripts/test.sh`, the README's test command,
//! installs them); a test that cannot find them fails and says so, it never skips.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Locator, key::Key};
use flowtime::client::Client;
use flowtime::server::pb;
use serde_json::{Value, json};

use crate::cli::{Serve, flowtime, repo};

// ---- the browser ---------------------------------------------------------------------------

struct Browser {
    client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// chromedriver on a free loopback port and a headless chromium session with a fresh profile.
async fn browser() -> Browser {
    let port = free_port();
    let driver = Command::new("chromedriver")
        .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start chromedriver ({e}): the browser tests need Debian's chromium and chromium-driver; \
                 run the tests with scripts/test.sh, which installs them"
            )
        });
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on port {port} within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            format!("--user-data-dir={}", profile.path().display()), "--window-size=1400,1000",
        ]}),
    );
    let client = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e}"));
    Browser { client, driver, _profile: profile }
}

impl Browser {
    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Waits until the page has no call in flight, no edit pending and its watch stream is
    /// live, and has stayed so for a moment.
    async fn settle(&self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut calm = 0;
        while calm < 3 {
            let idle = self.js("return !!(window.flowtime && window.flowtime.idle())").await == json!(true);
            calm = if idle { calm + 1 } else { 0 };
            if Instant::now() > deadline {
                let err = self.text("#error").await;
                let state = self.js("return window.flowtime && window.flowtime.debug()").await;
                panic!("the page did not settle after {what} (error banner: {err:?}; {state})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        let v = self.js(&format!("const e = document.querySelector({css:?}); return e ? e.textContent : null")).await;
        v.as_str().unwrap_or("").to_string()
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
    }

    /// A screenshot of the page, under target/.
    async fn shot(&self, name: &str) -> PathBuf {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The values a chart draws for `series` (null = NaN, a gap).
    async fn chart_values(&self, series: &str) -> Vec<Option<f64>> {
        let css = format!("path[data-series=\"{series}\"]");
        let v =
            self.js(&format!("const p = document.querySelector({css:?}); return p ? p.dataset.values : null")).await;
        let text = v.as_str().unwrap_or_else(|| panic!("no chart of `{series}` on the page"));
        serde_json::from_str(text).unwrap()
    }
}

// ---- the server ----------------------------------------------------------------------------

/// A server whose database holds the README's replay: the Gold day loaded and a session of
/// order-pipeline bound to it (besides the bundled sessions).
fn replay_server(dir: &Path) -> Serve {
    let db = dir.join("web.redb");
    let server = Serve::start(&db, dir);
    let url = format!("http://{}", server.addr);
    for args in [
        &["telemetry", "load", "data/gold/order-day.csv"][..],
        &["session", "open", "order-pipeline", "--name", "replay", "--stored-telemetry"][..],
    ] {
        let out = flowtime().args(["--server", &url]).args(args).current_dir(repo()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    server
}

fn target(s: &str) -> Option<pb::Target> {
    let (session, variant) = s.split_once('/').unwrap_or((s, ""));
    Some(pb::Target { session: session.into(), variant: variant.into() })
}

fn text_params(kv: &[(&str, &str)]) -> HashMap<String, pb::ParamValue> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), pb::ParamValue { kind: Some(pb::param_value::Kind::Text(v.to_string())) }))
        .collect()
}

async fn series(api: &Client, t: &str, id: &str) -> Vec<Option<f64>> {
    let r = api
        .queries()
        .get_series(pb::GetSeriesRequest { target: target(t), ids: vec![id.into()], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    r.series[0].values.iter().map(|v| v.is_finite().then_some(*v)).collect()
}

async fn variants(api: &Client, session: &str) -> Vec<String> {
    let r = api.sessions().list_variants(pb::ListVariantsRequest { session_id: session.into() }).await.unwrap();
    r.into_inner().variants.into_iter().map(|v| v.name).collect()
}

const WHAT_IF: [(&str, &str); 2] =
    [("order_served_source", "order_served_modeled"), ("billing_served_source", "billing_served_modeled")];

// ---- the tests -----------------------------------------------------------------------------

/// Every check of the issue's acceptance, in one browser session on one server: topology,
/// scrubbing to 10:25, dragging the capacity slider, compare, an invalid value, warnings,
/// heatmap, dark mode, a lost connection; a screenshot of each view under target/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbench_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let server = replay_server(tmp.path());
    let addr = server.addr.clone();
    let api = Client::connect(&addr).await.unwrap();
    let b = browser().await;
    let page = format!("http://{addr}/");

    // 1. The topology draws every node of order-pipeline.
    b.client.goto(&format!("{page}#replay")).await.unwrap();
    b.settle("opening replay").await;
    let graph = api.queries().get_graph(pb::GetGraphRequest { target: target("replay") }).await.unwrap().into_inner();
    let want: BTreeSet<String> = graph.nodes.iter().map(|n| n.id.clone()).collect();
    assert_eq!(want.len(), 4, "order-pipeline has four topology nodes");
    let drawn =
        b.js("return [...document.querySelectorAll('svg.topology [data-node]')].map(e => e.dataset.node)").await;
    let drawn: BTreeSet<String> = serde_json::from_value(drawn).unwrap();
    assert_eq!(drawn, want, "the topology draws every node");
    let edges = b.js("return document.querySelectorAll('svg.topology [data-edge]').length").await;
    assert_eq!(edges, json!(graph.edges.len()));
    b.shot("explore").await;

    // 2. Scrubbing the replay to 10:25 shows the orders backlog at its peak, 800.
    b.click("[data-node='OrdersQueue']").await;
    b.js("const s = document.getElementById('scrub'); s.value = 125; s.dispatchEvent(new Event('input'))").await;
    b.settle("scrubbing to bin 125").await;
    let when = b.text("#bin-time").await;
    assert!(when.contains("2025-10-07 10:25"), "the scrubber shows the bin's UTC time: {when}");
    assert_eq!(b.text("#inspect tr[data-role='queueDepth'] td.value").await, "800");
    assert_eq!(b.text("[data-node='OrdersQueue'] .node-value").await, "queueDepth 800");
    b.shot("scrubbed").await;

    // 3. Dragging the capacity slider to 150 redraws the backlog with what the API computes
    //    for the same overrides.
    let created = api
        .sessions()
        .create_variant(pb::CreateVariantRequest {
            session_id: "replay".into(),
            name: "more-capacity".into(),
            parameters: text_params(&WHAT_IF),
            ..Default::default()
        })
        .await;
    created.unwrap();
    b.client.goto(&format!("{page}#replay/more-capacity")).await.unwrap();
    b.settle("opening the variant").await;
    assert_eq!(b.text("#target-name").await, "replay/more-capacity");
    b.click("[data-node='OrdersQueue']").await;
    b.settle("selecting OrdersQueue").await;
    let before = b.chart_values("orders_backlog").await;
    // The arrow keys move the slider one step per press: 40 input events, 110 → 150, a key
    // every 10 ms (a drag's pace).
    b.js("document.querySelector(\"[data-param='order_capacity'] input[type='range']\").focus()").await;
    let right = Key::Right.chars().next().unwrap();
    let mut keys = fantoccini::actions::KeyActions::new("keyboard".into());
    for _ in 0..40 {
        use fantoccini::actions::{InputSource as _, KeyAction};
        keys = keys
            .then(KeyAction::Down { value: right })
            .then(KeyAction::Up { value: right })
            .then(KeyAction::Pause { duration: Duration::from_millis(10) });
    }
    b.client.perform_actions(keys).await.unwrap();
    b.settle("dragging order_capacity").await;
    assert_eq!(b.text("[data-param='order_capacity'] output").await, "150");
    let v = api
        .sessions()
        .get_variant(pb::GetVariantRequest { session_id: "replay".into(), name: "more-capacity".into() })
        .await
        .unwrap()
        .into_inner();
    let cap = v.parameters.get("order_capacity").and_then(|p| p.kind.clone());
    assert_eq!(cap, Some(pb::param_value::Kind::Number(150.0)), "the drag updated the variant");
    let mut same = WHAT_IF.to_vec();
    same.push(("order_capacity", "150"));
    api.sessions()
        .create_variant(pb::CreateVariantRequest {
            session_id: "replay".into(),
            name: "check".into(),
            parameters: text_params(&same),
            ..Default::default()
        })
        .await
        .unwrap();
    let truth = series(&api, "replay/check", "orders_backlog").await;
    let drawn = b.chart_values("orders_backlog").await;
    assert_ne!(before, drawn, "the chart changed");
    assert_eq!(drawn, truth, "the chart shows what the API returns for order_capacity=150");
    assert_eq!(truth.iter().flatten().fold(0.0f64, |m, v| m.max(*v)), 43.0, "the README's peak with 150/bin");
    let redraws: Vec<f64> = serde_json::from_value(b.js("return window.flowtime.redraws()").await).unwrap();
    assert!(!redraws.is_empty(), "the page measured its redraws after the drag");
    eprintln!("drag → redraw (ms, from the input event to the redrawn charts): {redraws:?}");
    b.shot("what-if").await;
    api.sessions()
        .delete_variant(pb::DeleteVariantRequest { session_id: "replay".into(), name: "check".into() })
        .await
        .unwrap();

    // 4. Compare marks the series identical without evaluation.
    b.client.goto(&format!("{page}#replay/more-capacity")).await.unwrap();
    b.settle("reopening the variant").await;
    b.click("#tabs [data-view='compare']").await;
    b.js("document.getElementById('cmp-a').value = 'replay'; document.getElementById('cmp-b').value = 'replay/more-capacity'")
        .await;
    b.click("#compare-form button[type='submit']").await;
    b.settle("comparing").await;
    let cmp = api
        .queries()
        .compare(pb::CompareRequest {
            a: Some(pb::Operand { kind: Some(pb::operand::Kind::Target(target("replay").unwrap())) }),
            b: Some(pb::Operand { kind: Some(pb::operand::Kind::Target(target("replay/more-capacity").unwrap())) }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let by_construction: BTreeSet<String> =
        cmp.series.iter().filter(|s| s.identical && s.not_downstream_of_any_difference).map(|s| s.id.clone()).collect();
    assert!(!by_construction.is_empty(), "some series are identical by construction");
    let marked = b
        .js("return [...document.querySelectorAll('tr[data-identical=\"construction\"]')].map(e => e.dataset.series)")
        .await;
    let marked: BTreeSet<String> = serde_json::from_value(marked).unwrap();
    assert_eq!(marked, by_construction, "the compare view marks the series identical without evaluation");
    let overlay = b.js("return document.querySelectorAll('.compare-detail path.line').length").await;
    assert_eq!(overlay, json!(3), "a differing series: both sides overlaid, and their difference");
    b.shot("compare").await;

    // 4b. Analyses: a sweep of the capacity (100 to 200 in 4 steps) draws max(orders_backlog) at each value; at 150 it
    //     is the README's peak, 43.
    b.click("#tabs [data-view='analyses']").await;
    b.js("const f = document.querySelector('.analysis-form'); f.param.value = 'order_capacity'; f.lo.value = '100'; \
          f.hi.value = '200'; f.steps.value = '4'; f.metric.value = 'max(orders_backlog)'")
        .await;
    b.click(".analysis-form button[type='submit']").await;
    b.settle("sweeping").await;
    let curve = b.chart_values("max(orders_backlog)").await;
    assert_eq!(curve.len(), 5, "{curve:?}");
    assert_eq!(curve[2], Some(43.0), "{curve:?}");
    assert!(curve[0] > curve[4], "more capacity, less backlog: {curve:?}");
    b.shot("analyses").await;

    // 5. An invalid value shows the server's located message and stores nothing.
    b.client.goto(&format!("{page}#replay")).await.unwrap();
    b.settle("reopening replay").await;
    let listed = variants(&api, "replay").await;
    let q0 = b.client.find(Locator::Css("[data-param='q0'] input")).await.unwrap();
    q0.clear().await.unwrap();
    q0.send_keys(&format!("-5{}", &*Key::Enter)).await.unwrap();
    b.settle("typing q0 = -5").await;
    let err = b.text("[data-param='q0'] .param-error").await;
    assert!(err.contains("below the minimum 0") && err.contains("parameters.q0"), "the located message: {err:?}");
    let shown = b.js("return !document.querySelector(\"[data-param='q0'] .param-error\").hidden").await;
    assert_eq!(shown, json!(true));
    assert_eq!(variants(&api, "replay").await, listed, "the variant list is unchanged");
    let on_page = b.js("return [...document.querySelectorAll(\"[data-session='replay'] [data-variant]\")].map(e => e.dataset.variant)").await;
    assert_eq!(on_page, json!(listed), "the page lists the same variants");
    b.shot("invalid-value").await;

    // 6. Warnings: a click scrubs to the bin and selects the node.
    b.click("#tabs [data-view='warnings']").await;
    let warnings = api.queries().get_warnings(pb::GetWarningsRequest { target: target("replay") }).await.unwrap();
    let warnings = warnings.into_inner().warnings;
    let items = b.js("return document.querySelectorAll('#warnings li.warning').length").await;
    assert_eq!(items, json!(warnings.len()));
    b.shot("warnings").await;
    let w = warnings.iter().find(|w| !w.bins.is_empty() && graph.nodes.iter().any(|n| n.id == w.node_id)).unwrap();
    b.click(&format!("#warnings li.warning[data-node='{}'][data-code='{}'] .bin-chip", w.node_id, w.code)).await;
    b.settle("picking a warning").await;
    assert_eq!(b.js("return document.getElementById('scrub').value").await, json!(w.bins[0].to_string()));
    let selected = b.js("return document.querySelector('svg.topology .node.selected').dataset.node").await;
    assert_eq!(selected, json!(w.node_id));

    // 7. The heatmap: one row per node with a backlog.
    b.click("#tabs [data-view='heatmap']").await;
    let rows = b.js("return [...document.querySelectorAll('svg.heatmap text.tick')].map(e => e.textContent)").await;
    let rows: Vec<String> = serde_json::from_value(rows).unwrap();
    assert!(rows.contains(&"OrdersQueue".to_string()) && rows.contains(&"BillingQueue".to_string()), "{rows:?}");
    b.shot("heatmap").await;

    // 8. Dark mode.
    b.click("#tabs [data-view='explore']").await;
    b.click("#theme").await;
    let theme =
        b.js("return [document.documentElement.dataset.theme, getComputedStyle(document.body).backgroundColor]").await;
    assert_eq!(theme[0], "dark");
    assert_eq!(theme[1], "rgb(21, 24, 28)");
    b.shot("explore-dark").await;
    b.click("#theme").await;

    // 9. A lost connection shows a banner, and the page reconnects when the server is back.
    let db = tmp.path().join("web.redb");
    server.stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.js("return document.getElementById('banner').hidden").await != json!(false) {
        assert!(Instant::now() < deadline, "no banner after the server stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.shot("connection-lost").await;
    let again = Serve::start_on(&db, tmp.path(), &addr);
    b.settle("reconnecting").await;
    assert_eq!(b.js("return document.getElementById('banner').hidden").await, json!(true));
    assert_eq!(b.text("#target-name").await, "replay");

    // First load: every asset the page fetched, against the 300 KB budget.
    b.client.goto(&page).await.unwrap();
    b.settle("a fresh load").await;
    let bytes = b
        .js("return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))\
             .filter(e => !e.name.includes('/api/')).reduce((s, e) => s + e.transferSize, 0)")
        .await;
    let bytes = bytes.as_f64().unwrap();
    eprintln!("first load: {bytes} bytes of assets transferred");
    assert!(bytes > 10_000.0 && bytes <= 300_000.0, "first load transfers {bytes} bytes");
    b.client.clone().close().await.unwrap();
    again.stop();
}

const CLASSY: &str = "id: classy
version: \"1\"
parameters:
  - {name: refund_share, type: number, default: 1}
grid: {bins: 12, binSize: 1, binUnit: hours, start: \"2026-01-01T00:00:00Z\"}
classes: [{id: order}, {id: refund}]
nodes:
  - {id: orders, kind: const, values: [6, 6, 3, 0, 8, 2, 5, 5, 1, 0, 4, 7], classMix: {order: 3, refund: \"{{refund_share}}\"}}
  - {id: returns, kind: const, values: [0, 2, 2, 4, 0, 1, 3, 0, 0, 2, 2, 1], classMix: {refund: 1}}
  - {id: arrivals, kind: expr, expr: \"orders + returns\"}
  - {id: served, kind: const, values: [3]}
topology:
  nodes:
    - {id: Svc, kind: queue, semantics: {arrivals: arrivals, served: served}}
";

/// GetSeries of several ids at once (per-class ids included), by id.
async fn series_map(api: &Client, t: &str, ids: &[String]) -> HashMap<String, Vec<Option<f64>>> {
    let r = api
        .queries()
        .get_series(pb::GetSeriesRequest { target: target(t), ids: ids.to_vec(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    r.series.into_iter().map(|s| (s.id, s.values.iter().map(|v| v.is_finite().then_some(*v)).collect())).collect()
}

/// SPEC §6.1 on the page: a classed model offers a class selector; one class draws each classed
/// series' part `x@c` (what GetSeries returns for it, also after a what-if), stacked draws every
/// class's part under the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_class_selector_draws_per_class_series() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Serve::start(&tmp.path().join("classes.redb"), tmp.path());
    let api = Client::connect(&server.addr).await.unwrap();
    api.templates().put_template(pb::PutTemplateRequest { text: CLASSY.into(), ..Default::default() }).await.unwrap();
    let open = pb::OpenSessionRequest { template_id: "classy".into(), session_id: "s".into(), ..Default::default() };
    api.sessions().open_session(open).await.unwrap();
    // The node's classed series: what GetState lists per class.
    let graph = api.queries().get_graph(pb::GetGraphRequest { target: target("s") }).await.unwrap().into_inner();
    let svc = graph.nodes.iter().find(|n| n.id == "Svc").unwrap();
    let at_0 = pb::GetStateRequest { target: target("s"), at: Some(pb::get_state_request::At::Bin(0)) };
    let state = api.queries().get_state(at_0).await.unwrap().into_inner().state.unwrap();
    let mut classed: Vec<String> =
        svc.roles.values().filter(|sid| state.series.contains_key(&format!("{sid}@refund"))).cloned().collect();
    classed.sort();
    classed.dedup();
    assert!(classed.len() >= 3, "arrivals, served and the queue of Svc are classed: {classed:?}");

    let b = browser().await;
    let page = format!("http://{}/", server.addr);
    b.client.goto(&format!("{page}#s")).await.unwrap();
    b.settle("opening the classed session").await;
    assert_eq!(
        b.js("return document.getElementById('class-pick').hidden").await,
        json!(false),
        "a classed model offers a class selector"
    );
    let options = b.js("return [...document.querySelectorAll('#class option')].map(o => o.value)").await;
    let options: Vec<String> = serde_json::from_value(options).unwrap();
    assert_eq!(&options[..4], ["", "*", "order", "refund"], "all, stacked, then each class: {options:?}");
    b.click("[data-node='Svc']").await;
    b.settle("selecting Svc").await;
    let choose = |c: &str| {
        format!("const s = document.getElementById('class'); s.value = {c:?}; s.dispatchEvent(new Event('change'))")
    };

    // One class: each classed series of the node is drawn as its refund part.
    b.js(&choose("refund")).await;
    b.settle("choosing refund").await;
    let ids: Vec<String> = classed.iter().map(|sid| format!("{sid}@refund")).collect();
    let truth = series_map(&api, "s", &ids).await;
    for id in &ids {
        let drawn = b.chart_values(id).await;
        assert_eq!(&drawn, &truth[id], "the chart of {id} is GetSeries of {id}");
        let row = b.js(&format!("return !!document.querySelector('#inspect tr[data-series=\"{id}\"]')")).await;
        assert_eq!(row, json!(true), "the node panel lists {id} at the bin");
    }
    let total = series(&api, "s", &classed[0]).await;
    assert_ne!(truth[&ids[0]], total, "a part is not its total");
    b.shot("class-refund").await;
    // Scrubbing keeps the selector as it is (rebuilt, an open <select> closes under the pointer).
    b.js("window.lastOption = document.querySelector('#class option:last-child')").await;
    for bin in [3, 7] {
        b.js(&format!(
            "const s = document.getElementById('scrub'); s.value = {bin}; s.dispatchEvent(new Event('input'))"
        ))
        .await;
        b.settle("scrubbing with a class chosen").await;
    }
    let kept = b.js("return document.querySelector('#class option:last-child') === window.lastOption").await;
    assert_eq!(kept, json!(true), "scrubbing rebuilt the class selector");
    assert_eq!(b.js("return document.getElementById('class').value").await, json!("refund"));

    // A what-if on the class share: the variant's parts, as GetSeries computes them.
    let more = pb::CreateVariantRequest {
        session_id: "s".into(),
        name: "more-refunds".into(),
        parameters: text_params(&[("refund_share", "3")]),
        ..Default::default()
    };
    api.sessions().create_variant(more).await.unwrap();
    b.js("location.hash = 's/more-refunds'").await;
    b.settle("opening the variant with the refund class chosen").await;
    assert_eq!(b.text("#target-name").await, "s/more-refunds");
    let truth2 = series_map(&api, "s/more-refunds", &ids).await;
    for id in &ids {
        assert_eq!(&b.chart_values(id).await, &truth2[id], "the variant's chart of {id}");
    }
    assert_ne!(truth2, truth, "the share changed the parts");

    // Stacked: every class's part of each classed series, under its dashed total.
    b.js(&choose("*")).await;
    b.settle("stacking by class").await;
    for sid in &classed {
        let parts: Vec<String> = ["order", "refund"].iter().map(|c| format!("{sid}@{c}")).collect();
        let truth = series_map(&api, "s/more-refunds", &parts).await;
        let total = b.chart_values(sid).await;
        let mut sum = vec![0.0; total.len()];
        for p in &parts {
            let drawn = b.chart_values(p).await;
            assert_eq!(&drawn, &truth[p], "the stacked part {p}");
            for (s, v) in sum.iter_mut().zip(&drawn) {
                *s += v.unwrap();
            }
        }
        for (s, t) in sum.iter().zip(&total) {
            assert!(
                (s - t.unwrap()).abs() <= 1e-9 * t.unwrap().abs().max(1.0),
                "{sid}: the parts pile up to the total"
            );
        }
    }
    let areas = b.js("return document.querySelectorAll('#inspect path.area').length").await;
    assert_eq!(areas, json!(classed.len() * 2), "one filled area per class in each stacked chart");
    b.shot("class-stacked").await;

    // Back to totals.
    b.js(&choose("")).await;
    b.settle("back to totals").await;
    assert_eq!(b.chart_values(&classed[0]).await, series(&api, "s/more-refunds", &classed[0]).await);
    b.client.clone().close().await.unwrap();
    server.stop();
}

/// The page reaches the server only through `/api/<service>/<method>`, and every method it
/// names is a unary or server-streaming method of the API's descriptor set.
#[test]
fn every_call_of_the_page_is_an_api_method() {
    let pool = prost_reflect::DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
    let dir = repo().join("src/web/assets");
    let mut calls = BTreeSet::new();
    let mut files = BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        files.insert(name.clone());
        if !name.ends_with(".js") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if name != "api.js" {
            assert!(
                !text.contains("fetch(") && !text.contains("XMLHttpRequest") && !text.contains("WebSocket"),
                "{name} talks to the server itself"
            );
        }
        let mut rest = text.as_str();
        while let Some(i) = rest.find("'flowtime.v1.") {
            let lit = &rest[i + 1..];
            let end = lit.find('\'').unwrap();
            calls.insert(lit[..end].to_string());
            rest = &lit[end..];
        }
    }
    let api = std::fs::read_to_string(dir.join("api.js")).unwrap();
    assert_eq!(api.matches("fetch(").count(), 1, "one place fetches");
    assert!(api.contains("fetch(`/api/${method}`"), "and only the gateway");
    for want in ["WatchService/Watch", "QueryService/GetState", "SessionService/UpdateVariant", "QueryService/Compare"]
    {
        assert!(calls.contains(&format!("flowtime.v1.{want}")), "the page calls {want}: {calls:?}");
    }
    for call in &calls {
        let (service, method) = call.split_once('/').unwrap();
        let svc =
            pool.get_service_by_name(service).unwrap_or_else(|| panic!("{call}: no service {service} in the API"));
        let m = svc.methods().find(|m| m.name() == method).unwrap_or_else(|| panic!("{call}: no method {method}"));
        assert!(!m.is_client_streaming(), "{call} streams requests: the gateway cannot carry it");
    }
    // Every file is compiled into the binary, and nothing else is.
    let embedded: BTreeSet<String> = flowtime::web::ASSETS.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(embedded, files);
    let total: usize = flowtime::web::ASSETS.iter().map(|(_, b)| b.len()).sum();
    assert!(total <= 300_000, "the page's assets are {total} bytes; the first load may transfer 300 KB");
}

/// One HTTP/1.1 exchange on the gRPC port: (status, content type, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_string))
        .unwrap_or_default();
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_string() };
    (status, ctype, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// The gateway on the gRPC port: the page, JSON replies, errors as the gRPC status with its
/// located details, streams as NDJSON; gRPC keeps working on the same listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_speaks_json_on_the_grpc_port() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Serve::start(&tmp.path().join("g.redb"), tmp.path());
    let addr = server.addr.clone();
    let a = addr.clone();
    let checks = tokio::task::spawn_blocking(move || {
        let (status, ctype, body) = http(&a, "GET", "/", "");
        assert_eq!((status, ctype.as_str()), (200, "text/html; charset=utf-8"));
        assert!(body.contains("<script type=\"module\" src=\"/assets/app.js\">"), "{body}");
        let (status, ctype, _) = http(&a, "GET", "/assets/chart.js", "");
        assert_eq!((status, ctype.as_str()), (200, "text/javascript; charset=utf-8"));
        assert_eq!(http(&a, "GET", "/assets/nope.js", "").0, 404);

        let (status, _, body) = http(&a, "POST", "/api/flowtime.v1.SessionService/ListSessions", "");
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let ids: Vec<&str> = v["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["capacity-whatif", "order-pipeline", "order-system"]);

        // An invalid value: the status, its field violation and the located diagnostic.
        let bad = r#"{"sessionId": "order-pipeline", "name": "x", "parameters": {"q0": {"text": "-5"}}}"#;
        let (status, _, body) = http(&a, "POST", "/api/flowtime.v1.SessionService/CreateVariant", bad);
        assert_eq!(status, 400, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["codeName"], "INVALID_ARGUMENT");
        assert_eq!(v["code"], 3);
        assert_eq!(v["diagnostics"][0]["path"], "parameters.q0");
        assert_eq!(v["diagnostics"][0]["code"], "parameter_range");
        assert!(v["fieldViolations"][0]["field"].as_str().unwrap().contains("parameters.q0"), "{v}");
        // Not found, with the HTTP status of its code.
        let (status, _, body) =
            http(&a, "POST", "/api/flowtime.v1.SessionService/GetSession", r#"{"sessionId": "nope"}"#);
        assert_eq!(status, 404, "{body}");
        // A body that is not the request message.
        let (status, _, body) = http(&a, "POST", "/api/flowtime.v1.SessionService/GetSession", r#"{"sessionID": "x"}"#);
        assert_eq!(status, 400);
        assert!(body.contains("flowtime.v1.GetSessionRequest"), "{body}");
        // Unknown methods and client streams are not reachable: the API's methods only.
        let (status, _, body) = http(&a, "POST", "/api/flowtime.v1.SessionService/Nope", "{}");
        assert_eq!(status, 501);
        assert!(body.contains("OpenSession"), "lists the methods there are: {body}");
        let (status, _, body) = http(&a, "POST", "/api/flowtime.v1.SeriesService/LoadGold", "{}");
        assert_eq!(status, 501);
        assert!(body.contains("gRPC"), "{body}");
        // A server stream: NDJSON, the watch's first event with every series (NaN as "NaN").
        let (status, _, body) = http(
            &a,
            "POST",
            "/api/flowtime.v1.QueryService/GetSeries",
            r#"{"target": {"session": "order-pipeline"}, "ids": ["billing_capacity_inferred"], "window": {"start": 0, "end": 2}}"#,
        );
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["series"][0]["values"], json!(["NaN", "NaN"]), "{v}");
        assert_eq!(v["series"][0]["inference"]["method"], "saturation");
    });
    checks.await.unwrap();
    // A watch stream, read line by line until its first event.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let body = r#"{"target": {"session": "order-pipeline"}}"#;
    write!(
        s,
        "POST /api/flowtime.v1.WatchService/Watch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 65536];
    while !got.contains("\"initial\":true") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.to_ascii_lowercase().contains("content-type: application/x-ndjson"), "{got}");
    assert!(got.contains("{\"result\":{"), "{got}");
    drop(s);
    // gRPC on the same listener.
    let api = Client::connect(&addr).await.unwrap();
    let n = api.sessions().list_sessions(pb::ListSessionsRequest {}).await.unwrap().into_inner().sessions.len();
    assert_eq!(n, 3);
    drop(api);
    server.stop();
}
