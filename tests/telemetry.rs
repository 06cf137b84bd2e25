//! The TelemetryLoader (§12) and the replay → what-if → compare story end to end.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use flowtime::host::{Host, OpenRequest, StoredSeriesInput, Target};
use flowtime::model::template::Supplied;
use flowtime::telemetry::{Bytes, Format, LoadOptions, Loaded, load};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const START: i64 = 29_329_920; // 2025-10-07T00:00Z in minutes

fn window(bins: u32) -> LoadOptions {
    LoadOptions { start_minutes: Some(START), bins: Some(bins), bin_minutes: Some(5), ..Default::default() }
}

fn run(text: &str, opts: &LoadOptions) -> Result<Loaded, flowtime::diag::Diagnostics> {
    load(&mut Bytes(text.as_bytes()), opts, &mut |_| {})
}

fn series<'a>(l: &'a Loaded, name: &str) -> &'a flowtime::telemetry::LoadedSeries {
    l.series.iter().find(|s| s.name() == name).unwrap_or_else(|| panic!("no {name}"))
}

const CSV: &str = "ts,node,arrivals,served,errors,queue_depth\n\
2025-10-07T00:00:00Z,A,10,8,1,3\n\
2025-10-07T00:05:00Z,A,12,,0,NaN\n\
2025-10-07T00:15:00Z,A,9,9,0,1\n\
2025-10-07T00:00:00Z,B,5,5,0,\n\
2025-10-07T00:05:00Z,B,6,6,0,\n\
2025-10-07T00:10:00Z,B,7,7,0,\n\
2025-10-07T00:15:00Z,B,8,8,0,\n\
2025-10-07T00:20:00Z,B,1,1,0,\n";

const NDJSON: &str = "{\"ts\":\"2025-10-07T00:00:00Z\",\"node\":\"A\",\"arrivals\":10,\"served\":8,\"errors\":1,\"queue_depth\":3}\n\
{\"ts\":\"2025-10-07T00:05:00Z\",\"node\":\"A\",\"arrivals\":12,\"served\":null,\"errors\":0,\"queue_depth\":null}\n\
{\"ts\":\"2025-10-07T00:15:00Z\",\"node\":\"A\",\"arrivals\":9,\"served\":9,\"errors\":0,\"queue_depth\":1}\n\
{\"ts\":\"2025-10-07T00:00:00Z\",\"node\":\"B\",\"arrivals\":5,\"served\":5,\"errors\":0}\n\
{\"ts\":\"2025-10-07T00:05:00Z\",\"node\":\"B\",\"arrivals\":6,\"served\":6,\"errors\":0}\n\
{\"ts\":\"2025-10-07T00:10:00Z\",\"node\":\"B\",\"arrivals\":7,\"served\":7,\"errors\":0}\n\
{\"ts\":\"2025-10-07T00:15:00Z\",\"node\":\"B\",\"arrivals\":8,\"served\":8,\"errors\":0}\n\
{\"ts\":\"2025-10-07T00:20:00Z\",\"node\":\"B\",\"arrivals\":1,\"served\":1,\"errors\":0}\n";

#[test]
fn gaps_are_zero_filled_and_listed_nans_kept_and_rows_outside_counted() {
    // A window of 4 bins: B's 00:20 row is outside; A has no 00:10 row.
    let l = run(CSV, &window(4)).unwrap();
    assert_eq!(l.rows, 8);
    assert_eq!(l.rows_outside, 1);
    let a = series(&l, "A_arrivals");
    assert_eq!(a.values, vec![10.0, 12.0, 0.0, 9.0]);
    assert_eq!(a.gaps, vec![2]);
    let served = series(&l, "A_served");
    assert!(served.values[1].is_nan());
    assert_eq!(served.nans, vec![1]);
    let qd = series(&l, "A_queue_depth");
    assert!(qd.values[1].is_nan());
    assert!(l.series.iter().all(|s| s.name() != "B_queue_depth"), "B never reports a queue depth");
    let codes: Vec<(&str, &str)> = l.warnings.iter().map(|w| (w.code.as_str(), w.node_id.as_str())).collect();
    assert!(codes.contains(&("data_gap", "A")), "{codes:?}");
    let gap = l.warnings.iter().find(|w| w.code == "data_gap").unwrap();
    assert_eq!(gap.bins, vec![2]);
    assert!(codes.contains(&("nan_detected", "A")));
    assert!(codes.contains(&("rows_outside_window", "")));
}

#[test]
fn csv_and_ndjson_give_identical_results() {
    let a = run(CSV, &window(5)).unwrap();
    let b = run(NDJSON, &LoadOptions { format: Some(Format::Ndjson), ..window(5) }).unwrap();
    assert_eq!(a.series.len(), b.series.len());
    for (x, y) in a.series.iter().zip(&b.series) {
        assert_eq!(x.name(), y.name());
        assert!(x.values.iter().zip(&y.values).all(|(p, q)| p.to_bits() == q.to_bits()), "{}", x.name());
        assert_eq!((&x.gaps, &x.nans), (&y.gaps, &y.nans), "{}", x.name());
    }
    // The format is also sniffed from the content.
    let c = run(NDJSON, &window(5)).unwrap();
    assert_eq!(c.series.len(), a.series.len());
}

#[test]
fn the_window_and_bin_size_are_inferred_when_not_given() {
    let l = run(CSV, &LoadOptions::default()).unwrap();
    assert_eq!((l.window.start_minutes, l.window.bins, l.window.bin_minutes), (START, 5, 5));
    assert!(l.bin_inferred);
    assert!(l.warnings.iter().any(|w| w.code == "bin_size_inferred" && w.message.contains("5 minutes")));
    // Gaps of 5 and 7 minutes: no bin size divides both; the row off the 5-minute bins the
    // others are on is named.
    let bad = "ts,node,arrivals,served,errors\n2025-10-07T00:00:00Z,A,1,1,0\n2025-10-07T00:05:00Z,A,1,1,0\n2025-10-07T00:12:00Z,A,1,1,0\n";
    let e = run(bad, &LoadOptions::default()).unwrap_err();
    assert_eq!(e.0[0].line, Some(4));
    assert!(e.0[0].message.contains("00:12:00Z is not aligned to the 5-minute bins"), "{}", e.0[0].message);
}

#[test]
fn misaligned_timestamps_and_duplicates_are_errors_with_the_line() {
    let mis = "ts,node,arrivals,served,errors\n2025-10-07T00:00:00Z,A,1,1,0\n2025-10-07T00:07:00Z,A,1,1,0\n";
    let e = run(mis, &window(4)).unwrap_err();
    let d = &e.0[0];
    assert_eq!(d.line, Some(3));
    assert!(d.message.contains("not aligned") && d.message.contains("2025-10-07T00:05:00Z"), "{}", d.message);
    assert!(d.help.as_deref().unwrap().contains("--align floor"));
    // With --align floor it lands in the 00:05 bin.
    let l = run(mis, &LoadOptions { align_floor: true, ..window(4) }).unwrap();
    assert_eq!(series(&l, "A_arrivals").values, vec![1.0, 1.0, 0.0, 0.0]);
    let dup = "ts,node,arrivals,served,errors\n2025-10-07T00:00:00Z,A,1,1,0\n2025-10-07T00:05:00Z,A,1,1,0\n2025-10-07T00:00:00Z,A,2,2,0\n";
    let e = run(dup, &window(4)).unwrap_err();
    assert_eq!(e.0[0].line, Some(4));
    assert!(e.0[0].message.contains("a second row for node `A` at 2025-10-07T00:00:00Z"), "{}", e.0[0].message);
    // Two rows landing in one bin after flooring are an error too.
    let two = "ts,node,arrivals,served,errors\n2025-10-07T00:05:00Z,A,1,1,0\n2025-10-07T00:07:00Z,A,1,1,0\n";
    let e = run(two, &LoadOptions { align_floor: true, ..window(4) }).unwrap_err();
    assert_eq!(e.0[0].line, Some(3));
    // A missing required column names it.
    let e = run("ts,node,arrivals,served\n", &window(4)).unwrap_err();
    assert!(e.0[0].message.contains("required column `errors`"));
    let e = run("{\"ts\":\"2025-10-07T00:00:00Z\",\"node\":\"A\",\"arrivals\":\"x\"}\n", &window(4)).unwrap_err();
    assert_eq!(e.0[0].line, Some(1));
    // A bad value names its column: `served` starts at column 26 of this line.
    let bad = "ts,node,arrivals,served,errors\n2025-10-07T00:00:00Z,A,1,x,0\n";
    let e = run(bad, &window(4)).unwrap_err();
    assert_eq!((e.0[0].line, e.0[0].column), (Some(2), Some(26)), "{}", e.0[0].message);
    // Without a bin size, a misaligned row is reported as such (with its line), not as a bin
    // size that cannot be inferred.
    let rows: String = ["00:00", "00:05", "00:10", "00:17", "00:20", "00:25"]
        .iter()
        .map(|t| format!("2025-10-07T{t}:00Z,A,1,1,0\n"))
        .collect();
    let e = run(&format!("ts,node,arrivals,served,errors\n{rows}"), &LoadOptions::default()).unwrap_err();
    let d = &e.0[0];
    assert_eq!(d.line, Some(5));
    assert!(d.message.contains("2025-10-07T00:17:00Z is not aligned to the 5-minute bins"), "{}", d.message);
    assert!(d.help.as_deref().unwrap().contains("--bin-size 5m --align floor"));
}

#[test]
fn extra_columns_are_ignored_with_one_info() {
    let text = "ts,node,arrivals,served,errors,region,pod\n2025-10-07T00:00:00Z,A,1,1,0,eu,7\n";
    let l = run(text, &window(1)).unwrap();
    assert_eq!(l.extra_columns, vec!["region".to_string(), "pod".to_string()]);
    let infos: Vec<_> = l.warnings.iter().filter(|w| w.code == "extra_columns").collect();
    assert_eq!(infos.len(), 1);
    assert!(infos[0].message.contains("region, pod"));
}

#[test]
fn the_shipped_series_are_what_the_loader_writes_and_the_manifest_hashes_match() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowtime"))
        .args([
            "telemetry",
            "load",
            "data/gold/order-day.csv",
            "--out",
            dir.path().to_str().unwrap(),
            "--extraction-ts",
            "2025-10-08T00:15:00Z",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shipped = repo().join("data/gold/series");
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    names.sort();
    assert!(names.len() > 10);
    for n in &names {
        assert_eq!(
            std::fs::read(dir.path().join(n)).unwrap(),
            std::fs::read(shipped.join(n)).unwrap(),
            "data/gold/series/{n} is stale: regenerate it (data/gold/README.md)"
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    for f in manifest["files"].as_array().unwrap() {
        let bytes = std::fs::read(dir.path().join(f["path"].as_str().unwrap())).unwrap();
        let sha = flowtime::model::params::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        assert_eq!(f["sha256"].as_str().unwrap(), sha);
    }
    let src = std::fs::read(repo().join("data/gold/order-day.csv")).unwrap();
    assert_eq!(
        manifest["provenance"]["sha256"].as_str().unwrap(),
        flowtime::model::params::hex(&<sha2::Sha256 as sha2::Digest>::digest(&src))
    );
    assert_eq!(manifest["provenance"]["extraction_ts"], "2025-10-08T00:15:00Z");
    assert_eq!(manifest["grid"]["binMinutes"], 5);
}

/// Re-loading a corrected telemetry series re-evaluates only its downstream cone.
#[test]
fn a_corrected_series_reevaluates_only_its_cone() {
    let text = std::fs::read(repo().join("data/gold/order-day.csv")).unwrap();
    let loaded = load(&mut Bytes(&text), &LoadOptions::default(), &mut |_| {}).unwrap();
    let mut host = Host::new();
    let items: Vec<StoredSeriesInput> = loaded
        .series
        .iter()
        .map(|s| StoredSeriesInput { name: s.name(), values: s.values.clone(), gaps: s.gaps.clone() })
        .collect();
    host.put_series_batch(&items, Some(loaded.window.start_minutes), 5, serde_json::json!({"source": "test"})).unwrap();
    let tpl = std::fs::read_to_string(repo().join("templates/order-pipeline.yaml")).unwrap();
    host.put_template(&tpl, "order-pipeline.yaml").unwrap();
    let stored: Vec<String> = items.iter().map(|i| i.name.clone()).collect();
    let params: BTreeMap<String, Supplied> = stored
        .iter()
        .filter_map(|s| {
            let p = match s.as_str() {
                "OrdersQueue_arrivals" => "demand_source",
                "OrdersQueue_queue_depth" => "orders_depth_source",
                "OrderService_served" => "order_served_source",
                "OrderService_errors" => "order_errors_source",
                "BillingQueue_queue_depth" => "billing_depth_source",
                "BillingService_served" => "billing_served_source",
                "BillingService_errors" => "billing_errors_source",
                _ => return None,
            };
            Some((p.to_string(), Supplied::Text(format!("series:{s}"))))
        })
        .collect();
    assert_eq!(params.len(), 7);
    host.open_session(OpenRequest {
        template_id: "order-pipeline".into(),
        template_version: "1.0.0".into(),
        params,
        id: Some("replay".into()),
        ..Default::default()
    })
    .unwrap();
    let t = Target::parse("replay");
    let before = host.evaluate_target(&t, None).unwrap();
    // The session sees the loader's data_gap for BillingQueue.
    let ws = host.view().warnings(&t, &before).unwrap();
    assert!(
        ws.iter().any(|w| w.code == "data_gap" && w.bins == vec![230, 231]),
        "{:?}",
        ws.iter().map(|w| &w.code).collect::<Vec<_>>()
    );

    // Correct BillingService's errors during the spike: only its readers re-evaluate.
    let mut errors = items.iter().find(|i| i.name == "BillingService_errors").unwrap().values.clone();
    errors[172] += 1.0;
    host.put_series(
        "BillingService_errors",
        &errors,
        Some(loaded.window.start_minutes),
        5,
        serde_json::json!({"source": "test"}),
    )
    .unwrap();
    let after = host.evaluate_target(&t, None).unwrap();
    // billing_errors → billing_taken, billing_served_modeled; billing_taken → billing_backlog,
    // BillingQueue throughput, BillingService throughput, the BillingQueue→BillingService edge.
    let c = &after.compiled;
    let unit = c.series[c.by_id["billing_errors"] as usize].unit;
    let cone = c.downstream(&[unit]);
    let cone_weight: u64 = cone.iter().map(|u| c.units[*u as usize].weight as u64).sum();
    assert!(
        after.accounting.nodes_evaluated <= cone_weight && after.accounting.nodes_evaluated >= 3,
        "{} of cone {cone_weight}",
        after.accounting.nodes_evaluated
    );
    assert!(after.accounting.nodes_evaluated < after.accounting.nodes_total / 2);
    assert_eq!(before.get("orders_backlog"), after.get("orders_backlog"));
    assert_ne!(before.get("billing_taken"), after.get("billing_taken"));
}

/// The README tour, through the CLI against a server on loopback.
#[test]
fn the_readme_tour_replays_a_day_and_shows_the_what_if() {
    let story: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo().join("data/gold/story.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_flowtime");
    let mut server = Command::new(exe)
        .args(["--db", tmp.path().join("tour.redb").to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let url = loop {
        let l = lines.next().unwrap().unwrap();
        if let Some(a) = l.strip_prefix("listening on ") {
            break format!("http://{a}");
        }
    };
    let cli = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(exe)
            .args([&["--server", &url, "--json"][..], args].concat())
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    let values = |v: &serde_json::Value| -> Vec<f64> {
        v["series"][0]["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
    };
    let max_at = |xs: &[f64]| {
        xs.iter().enumerate().fold((0usize, f64::MIN), |(i, m), (j, x)| if *x > m { (j, *x) } else { (i, m) })
    };

    // 1. Load the Gold day into the server's database.
    let loaded = cli(&["telemetry", "load", "data/gold/order-day.csv"]);
    assert_eq!(loaded["series"].as_array().unwrap().len(), 15);
    assert!(loaded["warnings"].as_array().unwrap().iter().any(|w| w["code"] == "data_gap"));
    // 2. A replay session bound to the stored telemetry.
    let s = cli(&["session", "open", "order-pipeline", "--name", "replay", "--stored-telemetry"]);
    assert_eq!(s["parameters"]["order_served_source"], "series:OrderService_served");
    // 3. The queue builds to the generator's peak, and the capacity is inferred.
    let backlog = values(&cli(&["query", "replay", "orders_backlog"]));
    let (at, peak) = max_at(&backlog);
    assert_eq!(peak, story["peakOrdersBacklog"].as_f64().unwrap());
    assert_eq!(at as u64, story["peakOrdersBacklogBin"].as_u64().unwrap());
    let cap = values(&cli(&["query", "replay", "order_capacity_inferred", "--bins", "0..1"]))[0];
    let truth = story["orderCapacity"].as_f64().unwrap();
    assert!((cap - truth).abs() <= 0.01 * truth, "inferred {cap}, true {truth}");
    // Billing is not the bottleneck today: its capacity cannot be inferred.
    assert!(values(&cli(&["query", "replay", "billing_capacity_inferred", "--bins", "0..1"]))[0].is_nan());
    // 4. What if OrderService could complete 150 orders per bin?
    cli(&[
        "variant",
        "create",
        "replay",
        "more-capacity",
        "-p",
        "order_served_source=order_served_modeled",
        "-p",
        "billing_served_source=billing_served_modeled",
        "-p",
        "order_capacity=150",
    ]);
    let c = cli(&["compare", "replay", "replay/more-capacity"]);
    let row = |id: &str| c["series"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(row("demand")["notDownstreamOfAnyDifference"], true);
    assert_eq!(row("orders_backlog")["identical"], false);
    // 5. The backlog clears: its peak falls by more than 90 %...
    let after = values(&cli(&["query", "replay/more-capacity", "orders_backlog"]));
    let (_, peak_after) = max_at(&after);
    assert!(peak_after < 0.1 * peak, "peak {peak} → {peak_after}");
    // ...and the bottleneck moves to billing, whose capacity is now inferred at its true value.
    let billing = values(&cli(&["query", "replay/more-capacity", "billing_backlog"]));
    let (_, billing_peak) = max_at(&billing);
    assert!(billing_peak > peak_after, "billing backlog {billing_peak} vs orders {peak_after}");
    let bcap = values(&cli(&["query", "replay/more-capacity", "billing_capacity_inferred", "--bins", "0..1"]))[0];
    assert_eq!(bcap, story["billingCapacity"].as_f64().unwrap());
    eprintln!(
        "replay peak backlog {peak} at bin {at}; with capacity 150: orders peak {peak_after}, billing peak {billing_peak}; inferred {cap} (true {truth}), billing {bcap}"
    );

    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    assert!(server.wait().unwrap().success());
}

#[test]
fn byte_order_marks_padded_and_unsafe_node_names_and_missing_metrics() {
    // NDJSON with a byte-order mark is still NDJSON; node names are trimmed as in CSV.
    let nd = format!("\u{feff}{}", NDJSON.replace("\"node\":\"B\"", "\"node\":\" B \""));
    let a = run(CSV, &window(5)).unwrap();
    let b = run(&nd, &window(5)).unwrap();
    let names = |l: &Loaded| l.series.iter().map(|s| s.name()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));

    // Node names become file names: nothing may climb out of the output directory.
    for bad in ["../escaped", "a/b", ".hidden", "x y"] {
        let text = format!("ts,node,arrivals,served,errors\n2025-10-07T00:00:00Z,{bad},1,1,0\n");
        let e = run(&text, &window(1)).unwrap_err();
        assert_eq!(e.0[0].line, Some(2), "{bad}");
        assert!(e.0[0].message.contains(&format!("node name `{bad}`")), "{}", e.0[0].message);
    }

    // A row without one metric: that bin is a gap of that series, and a warning says so.
    let text = "{\"ts\":\"2025-10-07T00:00:00Z\",\"node\":\"A\",\"arrivals\":1,\"served\":1,\"errors\":0}\n\
{\"ts\":\"2025-10-07T00:05:00Z\",\"node\":\"A\",\"arrivals\":2,\"errors\":0}\n";
    let l = run(text, &window(2)).unwrap();
    let served = series(&l, "A_served");
    assert_eq!((served.values.clone(), served.gaps.clone()), (vec![1.0, 0.0], vec![1]));
    let w: Vec<_> = l.warnings.iter().filter(|w| w.code == "data_gap").collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].message.contains("no served value") && w[0].bins == vec![1], "{:?}", w[0]);
}
