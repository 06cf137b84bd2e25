//! Run artifacts (§8): deterministic run directories with series CSVs, an index, the
//! instantiated model, topology for a UI, run metadata and a sha256 manifest.
//!
//! Same inputs give the same bytes in every file except `run.json`'s `createdUtc`. A directory
//! for an existing run id is verified against its manifest and reused, never rewritten.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::diag::{Diagnostic, Diagnostics};
use crate::engine::inference::Inferred;
use crate::engine::plan::Compiled;
use crate::engine::warnings::Warning;
use crate::engine::{Evaluation, InputSeries};
use crate::model::params::{ParamValue, hex, instantiation_hash, substitute_tree};
use crate::model::source::Source;
use crate::sys;

/// What a run is made of.
pub struct RunInput<'a> {
    /// The template or model, parsed once (its text, and its tree for `model.yaml`).
    pub source: &'a Source,
    pub params: &'a BTreeMap<String, ParamValue>,
    pub inputs: &'a BTreeMap<String, InputSeries>,
    pub evaluation: &'a Evaluation,
    pub warnings: &'a [Warning],
    /// Optional label carried into run.json (seed NG4).
    pub tenant: Option<&'a str>,
}

/// The result of writing (or reusing) a run directory.
#[derive(Clone, Debug)]
pub struct RunOutput {
    pub run_id: String,
    pub run_hash: String,
    pub dir: PathBuf,
    pub reused: bool,
}

/// sha256 over the instantiation hash and the sorted `(reference, sha256)` of every input.
pub fn run_hash(text: &str, params: &BTreeMap<String, ParamValue>, inputs: &BTreeMap<String, InputSeries>) -> String {
    let mut h = Sha256::new();
    h.update(instantiation_hash(text, params).as_bytes());
    for (key, data) in inputs {
        h.update(b"\n");
        h.update(key.as_bytes());
        h.update(b" ");
        h.update(data.sha256.as_bytes());
    }
    hex(&h.finalize())
}

pub fn run_id(c: &Compiled, hash: &str) -> String {
    let id = c.document.meta.id.as_deref().unwrap_or("model");
    format!("run_{id}_{}", &hash[..16])
}

/// Formats a value for CSV: Rust `Display` (shortest round trip), `-0` written `0`.
pub fn fmt_value(v: f64) -> String {
    if v == 0.0 { "0".to_string() } else { format!("{v}") }
}

pub fn series_csv(values: &[f64]) -> String {
    let mut s = String::with_capacity(values.len() * 12 + 16);
    s.push_str("bin_index,value\n");
    for (i, v) in values.iter().enumerate() {
        s.push_str(&i.to_string());
        s.push(',');
        s.push_str(&fmt_value(*v));
        s.push('\n');
    }
    s
}

/// JSON with sorted keys, two-space indent and a final newline.
pub fn json_bytes(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// A number as JSON; NaN and infinities become null.
pub fn num(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn sha(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The §8 series kind: a topology node's queue (observed or synthesised) is `stock`, ratios and
/// times by metric, everything else `flow`.
pub fn artifact_kind(c: &Compiled, s: u32) -> &'static str {
    let info = &c.series[s as usize];
    if c.topology.nodes.iter().any(|n| n.queue.as_deref() == Some(info.id.as_str())) {
        return "stock";
    }
    info.kind.artifact_kind()
}

/// `{method, confidence, saturated_bins}` for an inferred-capacity series, with `refused` (why)
/// when a what-if made the inference meaningless (see `engine::inference`).
pub fn inference_json(ev: &Evaluation, s: u32, params: &BTreeMap<String, f64>) -> Option<Value> {
    Some(match crate::engine::inference::inferred(ev, s, params)? {
        Inferred::Value(inf) => json!({
            "method": "saturation",
            "confidence": num(inf.saturated_bins as f64 / inf.bins.max(1) as f64),
            "saturated_bins": inf.saturated_bins,
        }),
        Inferred::Refused(why) => {
            json!({"method": "saturation", "confidence": 0.0, "saturated_bins": 0, "refused": why})
        }
    })
}

pub fn warning_json(w: &Warning) -> Value {
    json!({
        "code": w.code,
        "severity": w.severity,
        "nodeId": w.node_id,
        "message": w.message,
        "bins": w.bins,
        "value": w.value.map_or(Value::Null, num),
    })
}

/// The topology for a UI: `{nodes: [{id, kind, group, ui, semantics}], edges: [{from, to, weight}]}`.
pub fn topology_json(c: &Compiled) -> Value {
    let nodes: Vec<Value> = c
        .topology
        .nodes
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "kind": n.kind.name(),
                "group": n.group,
                "ui": n.ui.clone().unwrap_or(Value::Null),
                "semantics": Value::Object(n.semantics.clone()),
            })
        })
        .collect();
    let edges: Vec<Value> =
        c.topology.edges.iter().map(|e| json!({"from": e.from, "to": e.to, "weight": num(e.weight)})).collect();
    json!({"nodes": nodes, "edges": edges})
}

/// The instantiated model (every placeholder substituted), as YAML.
pub fn instantiated_yaml(source: &Source, params: &BTreeMap<String, ParamValue>) -> Result<String, Diagnostics> {
    let v = substitute_tree(&source.doc().root.to_serde(), params)
        .map_err(|e| Diagnostics::one(Diagnostic::error("placeholder", e)))?;
    yaml_serde::to_string(&v)
        .map_err(|e| Diagnostics::one(Diagnostic::error("yaml", format!("cannot write model.yaml: {e}"))))
}

/// Writes the run directory under `runs`, or verifies and reuses an existing one.
pub fn write_run(runs: &Path, r: &RunInput<'_>) -> Result<RunOutput, Diagnostics> {
    let ev = r.evaluation;
    let c = &ev.compiled;
    let hash = run_hash(r.source.text(), r.params, r.inputs);
    let id = run_id(c, &hash);
    let dir = runs.join(&id);
    let io = |what: &str, e: std::io::Error| Diagnostics::one(Diagnostic::error("io", format!("{what}: {e}")));
    if sys::exists(&dir) {
        verify_run(&dir)?;
        return Ok(RunOutput { run_id: id, run_hash: hash, dir, reused: true });
    }
    sys::create_dir_all(runs).map_err(|e| io(&format!("cannot create {}", runs.display()), e))?;
    let tmp = runs.join(format!(".tmp-{id}-{}", sys::process_id()));
    if sys::exists(&tmp) {
        sys::remove_dir_all(&tmp).map_err(|e| io("cannot clear a stale temporary directory", e))?;
    }
    sys::create_dir_all(&tmp.join("series")).map_err(|e| io("cannot create the run directory", e))?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let params_f64: BTreeMap<String, f64> =
        r.params.iter().filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x))).collect();

    let mut index = Vec::new();
    let mut listed = Vec::new();
    for o in &c.outputs {
        let info = &c.series[o.series as usize];
        let Some(values) = ev.series.get(&o.series) else { continue };
        let csv = series_csv(values);
        let path = format!("series/{}", o.file_name);
        let mut entry = Map::new();
        entry.insert("id".into(), info.id.clone().into());
        entry.insert("path".into(), path.clone().into());
        entry.insert("kind".into(), artifact_kind(c, o.series).into());
        entry.insert("points".into(), values.len().into());
        entry.insert("sha256".into(), sha(csv.as_bytes()).into());
        if let Some(inf) = inference_json(ev, o.series, &params_f64) {
            entry.insert("inference".into(), inf);
        }
        index.push(Value::Object(entry));
        listed.push(json!({"id": info.id, "path": path}));
        files.insert(path, csv.into_bytes());
    }
    files.insert("series/index.json".into(), json_bytes(&json!({"grid": c.grid.to_json(), "series": index})));
    files.insert("model.yaml".into(), instantiated_yaml(r.source, r.params)?.into_bytes());
    files.insert("topology.json".into(), json_bytes(&topology_json(c)));
    let manifest: Map<String, Value> = files.iter().map(|(p, b)| (p.clone(), Value::String(sha(b)))).collect();
    let manifest_bytes = json_bytes(&json!({"files": manifest}));

    let meta = &c.document.meta;
    let inputs: Vec<Value> = r.inputs.iter().map(|(k, d)| json!({"ref": k, "sha256": &*d.sha256})).collect();
    let params: Map<String, Value> = r.params.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
    let mut run = Map::new();
    run.insert("schemaVersion".into(), 1.into());
    run.insert("runId".into(), id.clone().into());
    run.insert("runHash".into(), hash.clone().into());
    run.insert("engineVersion".into(), env!("CARGO_PKG_VERSION").into());
    run.insert("grid".into(), c.grid.to_json());
    run.insert("templateId".into(), meta.id.clone().map_or(Value::Null, Value::String));
    run.insert("templateVersion".into(), meta.version.clone().map_or(Value::Null, Value::String));
    run.insert("parameters".into(), Value::Object(params));
    run.insert("inputs".into(), Value::Array(inputs));
    run.insert("provenance".into(), c.document.provenance.clone().unwrap_or(Value::Null));
    run.insert("warnings".into(), Value::Array(r.warnings.iter().map(warning_json).collect()));
    run.insert("series".into(), Value::Array(listed));
    if let Some(t) = r.tenant {
        run.insert("tenant".into(), t.into());
    }
    run.insert("createdUtc".into(), sys::now_utc().into());
    files.insert("manifest.json".into(), manifest_bytes);
    files.insert("run.json".into(), json_bytes(&Value::Object(run)));

    for (path, bytes) in &files {
        sys::write(&tmp.join(path), bytes).map_err(|e| io(&format!("cannot write {path}"), e))?;
    }
    match sys::rename(&tmp, &dir) {
        Ok(()) => Ok(RunOutput { run_id: id, run_hash: hash, dir, reused: false }),
        Err(e) => {
            let _ = sys::remove_dir_all(&tmp);
            // A concurrent writer may have produced the same run; it must verify.
            if sys::exists(&dir) {
                verify_run(&dir)?;
                return Ok(RunOutput { run_id: id, run_hash: hash, dir, reused: true });
            }
            Err(io("cannot move the run directory into place", e))
        }
    }
}

/// The series of a run directory (verified against its manifest): grid JSON and id → values.
pub fn read_run_series(dir: &Path) -> Result<(Value, BTreeMap<String, Vec<f64>>), Diagnostics> {
    verify_run(dir)?;
    let bad = |m: String| Diagnostics::one(Diagnostic::error("run_corrupt", m));
    let index: Value = serde_json::from_slice(
        &sys::read(&dir.join("series/index.json")).map_err(|e| bad(format!("{}: {e}", dir.display())))?,
    )
    .map_err(|e| bad(format!("series/index.json: {e}")))?;
    let mut out = BTreeMap::new();
    for s in index["series"].as_array().cloned().unwrap_or_default() {
        let (Some(id), Some(path)) = (s["id"].as_str(), s["path"].as_str()) else { continue };
        let text = sys::read_to_string(&dir.join(path)).map_err(|e| bad(format!("{path}: {e}")))?;
        let values: Vec<f64> =
            text.lines().skip(1).filter_map(|l| l.split_once(',').and_then(|(_, v)| v.parse().ok())).collect();
        out.insert(id.to_string(), values);
    }
    Ok((index["grid"].clone(), out))
}

/// Checks every file listed in a run's manifest against its sha256.
pub fn verify_run(dir: &Path) -> Result<(), Diagnostics> {
    let bad = |msg: String| {
        Diagnostics::one(Diagnostic::error("run_corrupt", msg).with_help("delete the run directory and run again"))
    };
    let manifest = sys::read(&dir.join("manifest.json"))
        .map_err(|e| bad(format!("{}: cannot read manifest.json: {e}", dir.display())))?;
    let m: Value = serde_json::from_slice(&manifest)
        .map_err(|e| bad(format!("{}: manifest.json is not JSON: {e}", dir.display())))?;
    let Some(files) = m.get("files").and_then(Value::as_object) else {
        return Err(bad(format!("{}: manifest.json lists no files", dir.display())));
    };
    for (path, want) in files {
        let bytes =
            sys::read(&dir.join(path)).map_err(|e| bad(format!("{}: cannot read {path}: {e}", dir.display())))?;
        if Some(sha(&bytes).as_str()) != want.as_str() {
            return Err(bad(format!("{}: {path} does not match its manifest hash", dir.display())));
        }
    }
    Ok(())
}
