//! `flowtime::client::Client`: the in-process router and a socket answer the same calls with the
//! same messages and the same status codes (one implementation of each operation).

use std::path::Path;
use std::sync::Arc;

use flowtime::client::Client;
use flowtime::host::{Host, SharedHost};
use flowtime::server::{ServerOptions, pb};
use tonic::Code;

use crate::server::TestServer;

fn template_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/order-system.yaml")).unwrap()
}

/// Stores the order-system template, opens session `s`, and fetches `queue_depth` over bins 96..100.
async fn exercise(c: &Client) -> (pb::GetSeriesResponse, Code) {
    c.templates().put_template(pb::PutTemplateRequest { text: template_text(), ..Default::default() }).await.unwrap();
    c.sessions()
        .open_session(pb::OpenSessionRequest {
            template_id: "order-system".into(),
            session_id: "s".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut series = c
        .queries()
        .get_series(pb::GetSeriesRequest {
            target: Some(pb::Target { session: "s".into(), variant: String::new() }),
            pattern: "queue_depth".into(),
            window: Some(pb::BinWindow { start: 96, end: 100 }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // Both databases evaluate from cold, so only the elapsed time may differ.
    let acc = series.info.as_mut().and_then(|i| i.accounting.as_mut()).expect("GetSeries carries accounting");
    assert!(acc.nodes_evaluated > 0);
    acc.elapsed_us = 0;
    let missing = c
        .sessions()
        .get_session(pb::GetSessionRequest { session_id: "nope".into() })
        .await
        .expect_err("an unknown session is an error")
        .code();
    (series, missing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_and_socket_answer_alike() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    let host = Host::open(&dir.path().join("local.redb"), "test", root).unwrap();
    let local = Client::in_process(Arc::new(SharedHost::new(host)), ServerOptions::default()).await;
    let (a, a_code) = exercise(&local.client).await;

    let server = TestServer::start(&dir.path().join("remote.redb"), ServerOptions::default()).await;
    // No scheme: `host:port` means http.
    let remote = Client::connect(&server.addr.to_string()).await.unwrap();
    let (b, b_code) = exercise(&remote).await;
    server.stop().await;

    assert_eq!(a_code, Code::NotFound);
    assert_eq!(a_code, b_code);
    assert_eq!(a.series.len(), 1);
    assert_eq!(a.series[0].values.len(), 4);
    assert_eq!(a, b);
}
