//! Load-test harness shared by `tests/load.rs` (bounded) and `benches/load.rs` (full size): a real
//! server on a loopback port with a session and a variant on a generated model; `clients`
//! concurrent clients issue `queries` series queries in total while a writer alters the variant
//! every `write_every_ms`. Every answer is checked against a fresh single-threaded evaluation of
//! the parameter values the answer reports.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flowtime::host::{Host, OpenRequest, SharedHost};
use flowtime::model::template::Supplied;
use flowtime::server::pb;
use flowtime::server::pb::query_service_client::QueryServiceClient;
use flowtime::server::pb::session_service_client::SessionServiceClient;
use flowtime::server::{ServerOptions, bind, serve};

pub(crate) struct LoadConfig {
    pub(crate) nodes: usize,
    pub(crate) bins: usize,
    pub(crate) clients: usize,
    pub(crate) queries: usize,
    pub(crate) write_every_ms: u64,
    /// Bins per query window.
    pub(crate) window: u32,
}

pub(crate) struct LoadReport {
    pub(crate) ok: usize,
    pub(crate) cancelled: usize,
    pub(crate) failures: usize,
    pub(crate) mismatches: usize,
    pub(crate) writes: usize,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
    pub(crate) elapsed: Duration,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.ok + self.cancelled + self.failures;
        write!(
            f,
            "{total} queries in {:.2} s ({:.0}/s): p50 {} µs, p99 {} µs, max {} µs; {} ok, {} cancelled (retryable), {} failed, {} mismatches; {} writes",
            self.elapsed.as_secs_f64(),
            total as f64 / self.elapsed.as_secs_f64(),
            self.p50_us,
            self.p99_us,
            self.max_us,
            self.ok,
            self.cancelled,
            self.failures,
            self.mismatches,
            self.writes
        )
    }
}

/// Node i reads i−1 and an earlier node (integer arithmetic modulo 2^20 keeps values exact);
/// `leaf_k` feeds the last node, which nothing reads.
pub(crate) fn template(n: usize, bins: usize) -> String {
    let vals: Vec<String> = (0..bins).map(|t| ((t * 37) % 101).to_string()).collect();
    let mut y = format!(
        "id: load\nversion: \"1\"\nparameters:\n  - {{name: leaf_k, type: number, default: 1}}\ngrid: {{bins: {bins}, binSize: 1, binUnit: hours, start: \"2025-01-01T00:00:00Z\"}}\nnodes:\n  - {{id: n0, kind: const, values: [{}]}}\n",
        vals.join(",")
    );
    for i in 1..n {
        let b = (i * 7919) % i;
        let extra = if i == n - 1 { " + {{leaf_k}}" } else { "" };
        y.push_str(&format!(
            "  - {{id: n{i}, kind: expr, expr: \"MOD(n{} + 2 * n{b}{extra} + {i}, 1048576)\"}}\n",
            i - 1
        ));
    }
    y
}

const LEAF_VALUES: [f64; 4] = [1.0, 2.0, 3.0, 4.0];

pub(crate) async fn run_load(cfg: &LoadConfig) -> LoadReport {
    let text = template(cfg.nodes, cfg.bins);
    let ids: Vec<String> = [cfg.nodes - 1, cfg.nodes / 2, 3].iter().map(|i| format!("n{i}")).collect();

    // Fresh single-threaded evaluations: leaf_k value → series.
    let mut reference: HashMap<u64, BTreeMap<String, Vec<f64>>> = HashMap::new();
    for v in LEAF_VALUES {
        let mut host = Host::new();
        let supplied = BTreeMap::from([("leaf_k".to_string(), Supplied::Text(v.to_string()))]);
        let m = host.load_text(&text, "load.yaml", &supplied, Path::new(".")).unwrap();
        let ev = host.evaluate(&m, None).unwrap();
        reference.insert(v.to_bits(), ids.iter().map(|id| (id.clone(), ev.get(id).unwrap().to_vec())).collect());
    }

    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::open(&dir.path().join("load.redb"), "load test", Path::new(".")).unwrap();
    host.put_template(&text, "load.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "load".into(),
        template_version: "1".into(),
        id: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    host.create_variant(
        "s",
        "v",
        &BTreeMap::from([("leaf_k".to_string(), Supplied::Text("2".into()))]),
        &BTreeMap::new(),
    )
    .unwrap();
    let shared = Arc::new(SharedHost::new(host));
    let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, shared, ServerOptions::default(), async {
        let _ = stop_rx.await;
    }));
    let url = format!("http://{addr}");

    // Warm-up: the session and the variant are evaluated once.
    let mut q = QueryServiceClient::connect(url.clone()).await.unwrap();
    for variant in ["", "v"] {
        // Every series is evaluated; one bin of each comes back (the whole model exceeds a message).
        q.get_series(pb::GetSeriesRequest {
            target: Some(pb::Target { session: "s".into(), variant: variant.into() }),
            pattern: "*".into(),
            window: Some(pb::BinWindow { start: 0, end: 1 }),
            ..Default::default()
        })
        .await
        .unwrap();
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, writes, url) = (stop.clone(), writes.clone(), url.clone());
        let every = Duration::from_millis(cfg.write_every_ms);
        tokio::spawn(async move {
            let mut s = SessionServiceClient::connect(url).await.unwrap();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                i += 1;
                let v = LEAF_VALUES[i % LEAF_VALUES.len()];
                s.update_variant(pb::UpdateVariantRequest {
                    session_id: "s".into(),
                    name: "v".into(),
                    parameters: HashMap::from([(
                        "leaf_k".to_string(),
                        pb::ParamValue { kind: Some(pb::param_value::Kind::Number(v)) },
                    )]),
                    ..Default::default()
                })
                .await
                .unwrap();
                writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let reference = Arc::new(reference);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let (url, reference, next, ids) = (url.clone(), reference.clone(), next.clone(), ids.clone());
        let (total, bins, window) = (cfg.queries, cfg.bins as u32, cfg.window);
        tasks.push(tokio::spawn(async move {
            let mut q = QueryServiceClient::connect(url).await.unwrap();
            let (mut lat, mut cancelled, mut failed, mut mismatched) = (Vec::new(), 0, 0, 0);
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total {
                    break;
                }
                let variant = if (k + c) % 2 == 0 { "v" } else { "" };
                let start = ((k * 131) as u32) % (bins - window + 1);
                let t0 = Instant::now();
                let res = q
                    .get_series(pb::GetSeriesRequest {
                        target: Some(pb::Target { session: "s".into(), variant: variant.into() }),
                        ids: ids.clone(),
                        window: Some(pb::BinWindow { start, end: start + window }),
                        ..Default::default()
                    })
                    .await;
                let us = t0.elapsed().as_micros() as u64;
                match res {
                    Ok(r) => {
                        lat.push(us);
                        let r = r.into_inner();
                        let leaf = r.info.as_ref().and_then(|i| i.overrides.get("leaf_k")).and_then(|p| match p.kind {
                            Some(pb::param_value::Kind::Number(x)) => Some(x),
                            _ => None,
                        });
                        let expect = &reference[&leaf.unwrap_or(1.0).to_bits()];
                        for s in &r.series {
                            let want = &expect[&s.id][start as usize..(start + window) as usize];
                            if s.values.len() != want.len()
                                || s.values.iter().zip(want).any(|(a, b)| a.to_bits() != b.to_bits())
                            {
                                mismatched += 1;
                            }
                        }
                    }
                    Err(s) if s.code() == tonic::Code::Unavailable => cancelled += 1,
                    Err(_) => failed += 1,
                }
            }
            (lat, cancelled, failed, mismatched)
        }));
    }
    let mut lat = Vec::new();
    let (mut cancelled, mut failures, mut mismatches) = (0, 0, 0);
    for t in tasks {
        let (l, c, f, m) = t.await.unwrap();
        lat.extend(l);
        cancelled += c;
        failures += f;
        mismatches += m;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);
    LoadReport {
        ok: lat.len(),
        cancelled,
        failures,
        mismatches,
        writes: writes.load(Ordering::Relaxed),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        max_us: lat.last().copied().unwrap_or(0),
        elapsed,
    }
}
