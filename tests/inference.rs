//! §7.2 capacity inference under what-ifs: a what-if's inferred capacity equals the modelled
//! capacity, or is NaN with a `capacity_not_inferable` warning that says why (the what-if changed
//! what the queue depends on while `served` stayed replayed telemetry).

use std::collections::BTreeMap;
use std::path::Path;

use flowtime::host::{Host, OpenRequest, Target};
use flowtime::model::template::Supplied;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, Supplied> {
    pairs.iter().map(|(k, v)| (k.to_string(), Supplied::Text(v.to_string()))).collect()
}

/// The inferred capacity (bin 0) of `node` and the `capacity_not_inferable` message for it.
fn infer(template: &str, node: &str, pairs: &[(&str, &str)]) -> (f64, Option<String>) {
    let mut host = Host::new();
    let m = host.load_file(&repo().join("templates").join(template), &params(pairs), None).unwrap();
    let ev = host.evaluate(&m, None).unwrap();
    let warning = host
        .warnings(&m, &ev)
        .unwrap()
        .into_iter()
        .find(|w| w.code == "capacity_not_inferable" && w.node_id == node)
        .map(|w| w.message);
    (ev.get(node).unwrap()[0], warning)
}

#[test]
fn replays_infer_and_what_ifs_infer_the_modelled_capacity_or_refuse_with_why() {
    // Replays infer from telemetry (the generators' OrderService capacity is 110 attempts/bin).
    let (cap, w) = infer("order-system.yaml", "capacity_inferred", &[]);
    assert_eq!((cap, w), (109.0, None));
    let (cap, w) = infer("order-pipeline.yaml", "order_capacity_inferred", &[]);
    assert_eq!((cap, w), (110.0, None));

    // Backlog and demand what-ifs on replayed served: refused, naming the parameter.
    for (name, value) in [("q0", "500"), ("demand_scale", "1.2")] {
        let (cap, w) = infer("order-system.yaml", "capacity_inferred", &[(name, value)]);
        assert!(cap.is_nan(), "{name}={value}: inferred {cap} from a replayed served");
        let w = w.unwrap_or_else(|| panic!("{name}={value}: no capacity_not_inferable"));
        assert!(w.contains(&format!("{name} = {value}")) && w.contains("model `served`"), "{w}");
    }
    let (cap, w) = infer("order-pipeline.yaml", "order_capacity_inferred", &[("q0", "300")]);
    assert!(cap.is_nan() && w.is_some_and(|w| w.contains("q0 = 300")));

    // The same what-ifs with served modelled infer exactly the modelled capacity.
    for extra in [("q0", "500"), ("demand_scale", "1.2"), ("demand_scale", "0.5")] {
        for capacity in ["109", "95"] {
            let pairs = [extra, ("served_source", "served_modeled"), ("capacity", capacity)];
            let (cap, w) = infer("order-system.yaml", "capacity_inferred", &pairs);
            let expected: f64 = capacity.parse().unwrap();
            match w {
                // Too little load to saturate the modelled capacity: nothing to infer, and it says so.
                Some(w) => assert!(cap.is_nan() && w.contains("no saturated bins"), "{pairs:?}: {cap} {w}"),
                None => assert_eq!(cap, expected, "{pairs:?}"),
            }
        }
    }
    let what_if = [
        ("order_served_source", "order_served_modeled"),
        ("billing_served_source", "billing_served_modeled"),
        ("order_capacity", "150"),
    ];
    assert_eq!(infer("order-pipeline.yaml", "order_capacity_inferred", &what_if), (150.0, None));
    assert_eq!(infer("order-pipeline.yaml", "billing_capacity_inferred", &what_if), (125.0, None));
}

/// An override of a series the queue depends on (and served does not) refuses too; a variant
/// that models served as well infers again.
#[test]
fn an_overridden_input_of_the_queue_refuses_inference_in_a_variant() {
    let mut host = Host::new();
    let text = std::fs::read_to_string(repo().join("templates/order-system.yaml")).unwrap();
    let (id, version, _) = host.put_template(&text, "order-system.yaml").unwrap();
    host.set_data_root(repo());
    host.open_session(OpenRequest {
        template_id: id,
        template_version: version,
        id: Some("s".into()),
        ..Default::default()
    })
    .unwrap();
    let more: Vec<f64> = (0..288).map(|t| 100.0 + (t % 23) as f64).collect();
    let series = BTreeMap::from([("arrivals_observed".to_string(), more)]);
    host.create_variant("s", "busier", &BTreeMap::new(), &series).unwrap();
    host.create_variant("s", "busier-modelled", &params(&[("served_source", "served_modeled")]), &series).unwrap();
    let cap = |t: &str| {
        let target = Target::parse(t);
        let ev = host.evaluate_target(&target, None).unwrap();
        let w = host.view().warnings(&target, &ev).unwrap();
        let w = w.into_iter().find(|w| w.code == "capacity_not_inferable").map(|w| w.message);
        (ev.get("capacity_inferred").unwrap()[0], w)
    };
    assert_eq!(cap("s"), (109.0, None));
    let (c, w) = cap("s/busier");
    assert!(c.is_nan(), "{c}");
    assert!(w.is_some_and(|w| w.contains("override of `arrivals_observed`")));
    assert_eq!(cap("s/busier-modelled"), (109.0, None));
}
