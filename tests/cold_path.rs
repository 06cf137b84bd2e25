//! The cold path (issue 14): a request parses its document once, compiling for other parameter
//! values reuses the parsed tree, storing a template compiles it once for the sessions opened
//! with its defaults, and the generated benchmark models load and evaluate.

use std::collections::BTreeMap;
use std::path::Path;

use flowtime::artifacts::{RunInput, write_run};
use flowtime::host::{Host, OpenRequest, Target};
use flowtime::model::generate;
use flowtime::model::params::ParamValue;
use flowtime::model::yaml::parse_count;

/// A model with a structural parameter (a lag) and an evaluable one.
const MODEL: &str = "
parameters:
  - {name: lag, type: integer, default: 1}
  - {name: k, type: number, default: 2}
grid: {bins: 6, binSize: 1, binUnit: hours}
nodes:
  - {id: a, kind: const, values: [1, 2, 3, 4, 5, 6]}
  - {id: b, kind: expr, expr: \"SHIFT(a, {{lag}}) * {{k}}\"}
";

#[test]
fn a_load_parses_its_text_once_and_never_again() {
    let mut host = Host::new();
    let before = parse_count();
    let mut m = host.load_text(MODEL, "m.yaml", &BTreeMap::new(), Path::new(".")).unwrap();
    assert_eq!(parse_count() - before, 1, "loading parses the text once");
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.get("b").unwrap()[..3], [0.0, 2.0, 4.0]);
    // A structural change recompiles from the parsed tree; an evaluable one does not compile.
    host.set_param(&mut m, "lag", ParamValue::Integer(2)).unwrap();
    host.set_param(&mut m, "k", ParamValue::Number(3.0)).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    assert_eq!(ev.get("b").unwrap()[..3], [0.0, 0.0, 3.0]);
    let ws = host.warnings(&m, &ev).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inputs = m.input_data();
    let run = RunInput {
        source: &m.source,
        params: &m.params,
        inputs: &inputs,
        evaluation: &ev,
        warnings: &ws,
        tenant: None,
    };
    let out = write_run(dir.path(), &run).unwrap();
    let model_yaml = std::fs::read_to_string(out.dir.join("model.yaml")).unwrap();
    assert!(model_yaml.contains("SHIFT(a, 2) * 3"), "{model_yaml}");
    assert_eq!(parse_count() - before, 1, "changes, evaluation and the run directory parse nothing");
}

#[test]
fn a_stored_template_is_parsed_once_for_storing_and_opening() {
    let text = format!("id: chain\nversion: \"1\"\n{}", generate::chain(20, 24));
    let mut host = Host::new();
    let before = parse_count();
    host.put_template(&text, "chain.yaml").unwrap();
    host.open_session(OpenRequest {
        template_id: "chain".into(),
        template_version: "1".into(),
        id: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    let ev = host.evaluate_target(&Target::parse("s"), None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, 20);
    assert_eq!(parse_count() - before, 1, "storing the template parses it; opening a session reuses it");
}

#[test]
fn generated_models_load_and_evaluate() {
    let mut host = Host::new();
    let chain = host.load_text(&generate::chain(30, 48), "chain.yaml", &BTreeMap::new(), Path::new(".")).unwrap();
    let ev = host.evaluate(&chain, None).unwrap();
    assert_eq!(ev.accounting.nodes_evaluated, 30);
    assert!(ev.series.values().all(|s| s.iter().all(|v| v.is_finite())));
    let topo = host.load_text(&generate::topology(5, 48), "topo.yaml", &BTreeMap::new(), Path::new(".")).unwrap();
    let ev = host.evaluate(&topo, None).unwrap();
    // Per service: in, cap, out, the queue (with its overflow), utilisation, latency,
    // throughput ratio; per edge a flow.
    assert_eq!(ev.compiled.series.len(), 1 + 5 * 8 + 4);
    let q = ev.get("s4_queue").unwrap();
    assert!(q.iter().all(|v| (0.0..=510.0).contains(v)), "{q:?}");
}
