//! Run artifacts (§8): deterministic run directories with series CSVs, an index, the
//! instantiated model, topology for a UI, run metadata and a sha256 manifest.
//!
//! Same inputs give the same bytes in every file except `run.json`'s `createdUtc`. A directory
//! for an existing run id is verified against its manifest and reused, never rewritten.
//!
//! Series files are written at disk speed: each in one buffered pass, formatted straight into a
//! 64 KiB buffer and hashed as the buffer is flushed, several files at once on separate threads.
//! Memory beyond the evaluation is one buffer per writing thread; the bytes do not depend on
//! the thread count (the manifest is sorted by path).

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
    let mut out = Vec::new();
    push_value(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends a value as [`fmt_value`] formats it. Whole numbers below 2^53 (most series) print
/// their integer digits, which is what `Display` prints for them; the rest go through `Display`.
fn push_value(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if v == 0.0 {
        out.push(b'0');
        return;
    }
    let i = v as i64;
    if v.abs() < EXACT && i as f64 == v {
        out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    } else {
        let _ = write!(out, "{v}");
    }
}

/// The decimal digits of a counter, incremented in place (cheaper than formatting each index).
struct Counter {
    digits: [u8; 20],
    start: usize,
}

impl Counter {
    fn new() -> Counter {
        let mut digits = [b'0'; 20];
        digits[19] = b'0';
        Counter { digits, start: 19 }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }

    fn increment(&mut self) {
        let mut i = self.digits.len();
        while i > 0 {
            i -= 1;
            if self.digits[i] == b'9' {
                self.digits[i] = b'0';
            } else {
                self.digits[i] += 1;
                self.start = self.start.min(i);
                return;
            }
        }
    }
}

/// Writes the row of a whole-number value (`|v| < 2^53`) right to left into `row` ending at
/// `end`; returns where it starts. Same digits as `Display` prints for such a value.
fn whole_digits(row: &mut [u8; 48], mut end: usize, v: f64) -> usize {
    let negative = v < 0.0;
    let mut n = v.abs() as u64;
    loop {
        end -= 1;
        row[end] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        end -= 1;
        row[end] = b'-';
    }
    end
}

/// Appends the CSV rows of a series (`bin_index,value`) to `out`, calling `flush` whenever the
/// buffer holds more than `limit` bytes. A row of a whole number (most rows) is assembled in a
/// small array and appended in one copy; other values go through [`push_value`].
fn csv_rows(
    values: &[f64],
    out: &mut Vec<u8>,
    limit: usize,
    flush: &mut dyn FnMut(&mut Vec<u8>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    out.extend_from_slice(b"bin_index,value\n");
    let mut index = Counter::new();
    let mut row = [0u8; 48];
    for &v in values {
        let idx = index.as_bytes();
        if v.abs() < EXACT && (v as i64) as f64 == v {
            // -0.0 prints as 0: its digits are those of +0.
            let mut start = whole_digits(&mut row, 47, if v == 0.0 { 0.0 } else { v });
            row[47] = b'\n';
            start -= 1;
            row[start] = b',';
            start -= idx.len();
            row[start..start + idx.len()].copy_from_slice(idx);
            out.extend_from_slice(&row[start..]);
        } else {
            out.extend_from_slice(idx);
            out.push(b',');
            push_value(out, v);
            out.push(b'\n');
        }
        index.increment();
        if out.len() > limit {
            flush(out)?;
        }
    }
    Ok(())
}

pub fn series_csv(values: &[f64]) -> String {
    let mut out = Vec::with_capacity(values.len() * 12 + 16);
    let _ = csv_rows(values, &mut out, usize::MAX, &mut |_| Ok(()));
    String::from_utf8(out).unwrap_or_default()
}

/// Writes a series CSV to `path` in one buffered pass, hashing while writing; returns the
/// file's sha256. (Syncing is left to [`sync_files`], which overlaps the waits.)
fn write_series_file(path: &Path, values: &[f64], buf: &mut Vec<u8>) -> std::io::Result<String> {
    use std::io::Write;
    const LIMIT: usize = 64 * 1024;
    let mut file = sys::create(path)?;
    let mut hash = Sha256::new();
    buf.clear();
    let mut flush = |b: &mut Vec<u8>| {
        hash.update(&b[..]);
        file.write_all(b)?;
        b.clear();
        Ok(())
    };
    csv_rows(values, buf, LIMIT, &mut flush)?;
    flush(buf)?;
    Ok(hex(&hash.finalize()))
}

/// Flushes files to disk, many at once: each sync mostly waits for the device, so the waits of
/// up to 32 files overlap (the run directory is renamed into place only after all are durable).
fn sync_files(paths: &[std::path::PathBuf]) -> std::io::Result<()> {
    let threads = paths.len().min(32);
    if threads <= 1 {
        return paths.iter().try_for_each(|p| sys::open(p)?.sync_all());
    }
    let results: Vec<std::io::Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| s.spawn(move || paths.iter().skip(k).step_by(threads).try_for_each(|p| sys::open(p)?.sync_all())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("a sync thread panicked"))))
            .collect()
    });
    results.into_iter().collect()
}

/// How many threads write the series files: one per ~100,000 values, at most the machine's
/// parallelism (and 8); small runs are not worth a thread.
fn writer_threads(files: &[(String, &[f64])]) -> usize {
    let points: usize = files.iter().map(|(_, v)| v.len()).sum();
    std::thread::available_parallelism().map_or(1, usize::from).min(8).min(points / 100_000 + 1)
}

/// Writes every series file under `dir` (`(relative path, values)`) on up to `threads` threads;
/// returns their sha256 in the same order.
fn write_series_files(dir: &Path, files: &[(String, &[f64])], threads: usize) -> std::io::Result<Vec<String>> {
    let threads = threads.min(files.len()).max(1);
    let write_some = |k: usize| -> std::io::Result<Vec<(usize, String)>> {
        let mut buf = Vec::with_capacity(80 * 1024);
        let mut out = Vec::new();
        for (i, (path, values)) in files.iter().enumerate().skip(k).step_by(threads) {
            out.push((i, write_series_file(&dir.join(path), values, &mut buf)?));
        }
        Ok(out)
    };
    let parts: Vec<std::io::Result<Vec<(usize, String)>>> = if threads == 1 {
        vec![write_some(0)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|k| s.spawn(move || write_some(k))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("a writer thread panicked"))))
                .collect()
        })
    };
    let mut shas = vec![String::new(); files.len()];
    for part in parts {
        for (i, sha) in part? {
            shas[i] = sha;
        }
    }
    Ok(shas)
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

/// Writes the run directory under `runs`, or verifies and reuses an existing one. `runs` may be
/// an object-store URL (`s3://bucket/prefix/`, `file:///dir/`, …; see `objstore`): the run is
/// then written to a local scratch directory exactly as it would be under a directory (same
/// files, same bytes, same manifest) and uploaded under `<prefix>/<run id>/`, `manifest.json`
/// last, so a run whose manifest exists is whole.
pub fn write_run(runs: &Path, r: &RunInput<'_>) -> Result<RunOutput, Diagnostics> {
    match runs.to_str().filter(|s| crate::objstore::is_url(s)) {
        Some(url) => write_run_to_object_store(url, r),
        None => write_run_dir(runs, r),
    }
}

fn write_run_to_object_store(url: &str, r: &RunInput<'_>) -> Result<RunOutput, Diagnostics> {
    let fail = |e: String| Diagnostics::one(Diagnostic::error("object_store", e).at_path("--out"));
    let loc = crate::objstore::Location::parse(url).map_err(fail)?;
    let hash = run_hash(r.source.text(), r.params, r.inputs);
    let id = run_id(&r.evaluation.compiled, &hash);
    let shown = PathBuf::from(format!("{}/{id}", url.trim_end_matches('/')));
    if let Some(manifest) = crate::objstore::get(&loc, &loc.child(&format!("{id}/manifest.json"))).map_err(fail)? {
        verify_object_run(&loc, &id, &manifest)?;
        return Ok(RunOutput { run_id: id, run_hash: hash, dir: shown, reused: true });
    }
    // One scratch directory per call: two requests writing the same run at once (runs are
    // written without a lock) must not share, and so delete, each other's.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = sys::temp_dir().join(format!("flowtime-run-{id}-{}-{call}", sys::process_id()));
    let out = write_run_dir(&scratch, r);
    let uploaded = out.and_then(|out| {
        crate::objstore::upload_dir(&loc, &out.dir, &id, Some("manifest.json")).map_err(fail)?;
        Ok(RunOutput { dir: shown, ..out })
    });
    let _ = sys::remove_dir_all(&scratch);
    uploaded
}

/// Checks a run in an object store against its manifest, as [`verify_run`] checks a directory:
/// content that does not match is `run_corrupt`, a store that cannot be read `object_store`.
fn verify_object_run(loc: &crate::objstore::Location, id: &str, manifest: &[u8]) -> Result<(), Diagnostics> {
    verify_files(manifest, |path| crate::objstore::get(loc, &loc.child(&format!("{id}/{path}")))).map_err(|e| {
        let d = match e {
            Unverified::Corrupt(msg) => Diagnostic::error("run_corrupt", format!("run {id} in {}: {msg}", loc.url))
                .with_help("delete the run from the store and run again"),
            Unverified::Unreadable(msg) => {
                Diagnostic::error("object_store", format!("run {id} in {}: {msg}", loc.url)).at_path("--out")
            }
        };
        Diagnostics::one(d)
    })
}

/// Why a run could not be verified.
enum Unverified {
    /// A file is missing, or its bytes (or the manifest's) are not what the manifest says.
    Corrupt(String),
    /// A file could not be read (the store or the file system failed).
    Unreadable(String),
}

/// Checks every file a run's manifest (`manifest.json`'s bytes) lists against its sha256,
/// reading each with `read` (None: missing): the one verification of a run being reused,
/// wherever it is stored. The message names the file and what is wrong with it.
fn verify_files(
    manifest: &[u8],
    read: impl Fn(&str) -> Result<Option<bytes::Bytes>, String>,
) -> Result<(), Unverified> {
    let m: Value =
        serde_json::from_slice(manifest).map_err(|e| Unverified::Corrupt(format!("manifest.json is not JSON: {e}")))?;
    let files = m
        .get("files")
        .and_then(Value::as_object)
        .ok_or_else(|| Unverified::Corrupt("manifest.json lists no files".into()))?;
    for (path, want) in files {
        let bytes = read(path).map_err(Unverified::Unreadable)?;
        let bytes = bytes.ok_or_else(|| Unverified::Corrupt(format!("{path} is missing")))?;
        if Some(sha(&bytes).as_str()) != want.as_str() {
            return Err(Unverified::Corrupt(format!("{path} does not match its manifest hash")));
        }
    }
    Ok(())
}

fn write_run_dir(runs: &Path, r: &RunInput<'_>) -> Result<RunOutput, Diagnostics> {
    let ev = r.evaluation;
    let c = &ev.compiled;
    let hash = run_hash(r.source.text(), r.params, r.inputs);
    let id = run_id(c, &hash);
    let dir = runs.join(&id);
    // The server's runs directory failing is not the request's fault (`run_io`, INTERNAL).
    let io = |what: &str, e: std::io::Error| Diagnostics::one(Diagnostic::error("run_io", format!("{what}: {e}")));
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
    let params_f64: BTreeMap<String, f64> =
        r.params.iter().filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x))).collect();

    // The series files first (streamed, hashed, in parallel), then the small files.
    let mut series: Vec<(u32, String, &[f64], Option<String>)> = c
        .outputs
        .iter()
        .filter_map(|o| ev.series.get(&o.series).map(|v| (o.series, format!("series/{}", o.file_name), &v[..], None)))
        .collect();
    // §6.1: every selected classed series' per-class series, `series/<id>@<class>.csv`.
    let per_class: Vec<(u32, String, Vec<f64>)> = c
        .outputs
        .iter()
        .flat_map(|o| {
            ev.classes_of(o.series)
                .into_iter()
                .filter_map(move |k| Some((o.series, ev.class_series_id(o.series, k), ev.class_series(o.series, k)?)))
        })
        .collect();
    for (s, id, v) in &per_class {
        let class = id.rsplit_once('@').map(|x| x.1.to_string());
        series.push((*s, format!("series/{id}.csv"), &v[..], class));
    }
    if !per_class.is_empty() {
        // Series in id order (§8), per-class ids among them.
        let key = |s: &(u32, String, &[f64], Option<String>)| match &s.3 {
            Some(k) => format!("{}@{k}", c.series_id(s.0)),
            None => c.series_id(s.0).to_string(),
        };
        series.sort_by_key(key);
    }
    let jobs: Vec<(String, &[f64])> = series.iter().map(|(_, p, v, _)| (p.clone(), *v)).collect();
    let shas =
        write_series_files(&tmp, &jobs, writer_threads(&jobs)).map_err(|e| io("cannot write the series files", e))?;
    let written: Vec<PathBuf> = jobs.iter().map(|(p, _)| tmp.join(p)).collect();
    sync_files(&written).map_err(|e| io("cannot flush the series files to disk", e))?;
    // Path → sha256 of every file but manifest.json and run.json.
    let mut manifest: BTreeMap<String, String> = BTreeMap::new();
    let mut index = Vec::new();
    let mut listed = Vec::new();
    for ((s, path, values, class), file_sha) in series.iter().zip(shas) {
        let info = &c.series[*s as usize];
        let mut entry = Map::new();
        let id = match class {
            Some(k) => format!("{}@{k}", info.id),
            None => info.id.clone(),
        };
        if let Some(k) = class {
            entry.insert("class".into(), k.clone().into());
        }
        entry.insert("id".into(), id.clone().into());
        entry.insert("path".into(), path.clone().into());
        entry.insert("kind".into(), artifact_kind(c, *s).into());
        entry.insert("points".into(), values.len().into());
        entry.insert("sha256".into(), file_sha.clone().into());
        if class.is_none()
            && let Some(inf) = inference_json(ev, *s, &params_f64)
        {
            entry.insert("inference".into(), inf);
        }
        index.push(Value::Object(entry));
        listed.push(json!({"id": id, "path": path}));
        manifest.insert(path.clone(), file_sha);
    }
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert("series/index.json".into(), json_bytes(&json!({"grid": c.grid.to_json(), "series": index})));
    files.insert("model.yaml".into(), instantiated_yaml(r.source, r.params)?.into_bytes());
    files.insert("topology.json".into(), json_bytes(&topology_json(c)));
    for (p, b) in &files {
        manifest.insert(p.clone(), sha(b));
    }
    let manifest: Map<String, Value> = manifest.into_iter().map(|(p, h)| (p, Value::String(h))).collect();
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
    // Verified just now: what cannot be read is the file system's failure, what does not parse
    // is damage the manifest did not cover.
    let bad = |m: String| Diagnostics::one(Diagnostic::error("run_corrupt", m));
    let unreadable = |what: &str, e: std::io::Error| {
        Diagnostics::one(Diagnostic::error("run_io", format!("{}: cannot read {what}: {e}", dir.display())))
    };
    let index: Value = serde_json::from_slice(
        &sys::read(&dir.join("series/index.json")).map_err(|e| unreadable("series/index.json", e))?,
    )
    .map_err(|e| bad(format!("series/index.json: {e}")))?;
    let mut out = BTreeMap::new();
    for s in index["series"].as_array().cloned().unwrap_or_default() {
        let (Some(id), Some(path)) = (s["id"].as_str(), s["path"].as_str()) else { continue };
        let text = sys::read_to_string(&dir.join(path)).map_err(|e| unreadable(path, e))?;
        let values: Vec<f64> =
            text.lines().skip(1).filter_map(|l| l.split_once(',').and_then(|(_, v)| v.parse().ok())).collect();
        out.insert(id.to_string(), values);
    }
    Ok((index["grid"].clone(), out))
}

/// Checks every file listed in a run's manifest against its sha256.
/// A damaged or incomplete run is `run_corrupt`; one the file system cannot read, `run_io`.
pub fn verify_run(dir: &Path) -> Result<(), Diagnostics> {
    let read = |path: &str| match sys::read(&dir.join(path)) {
        Ok(bytes) => Ok(Some(bytes::Bytes::from(bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {path}: {e}")),
    };
    let checked = match read("manifest.json") {
        Ok(Some(m)) => verify_files(&m, read),
        Ok(None) => Err(Unverified::Corrupt("manifest.json is missing".into())),
        Err(msg) => Err(Unverified::Unreadable(msg)),
    };
    checked.map_err(|e| {
        Diagnostics::one(match e {
            Unverified::Corrupt(msg) => Diagnostic::error("run_corrupt", format!("{}: {msg}", dir.display()))
                .with_help("delete the run directory and run again"),
            Unverified::Unreadable(msg) => Diagnostic::error("run_io", format!("{}: {msg}", dir.display())),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_format_as_display_does() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            -2.25,
            1e-7,
            1.5e300,
            123456.789,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            -9_007_199_254_740_993.0,
            1e21,
            5e-324,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1 + 0.2,
        ];
        values.extend((-500..500).map(|i| f64::from(i) * 0.75));
        let display = |v: f64| if v == 0.0 { "0".to_string() } else { format!("{v}") };
        for &v in &values {
            assert_eq!(fmt_value(v), display(v), "{v:?}");
        }
        // The CSV rows (whole numbers assembled digit by digit, indices counted in place).
        let mut want = String::from("bin_index,value\n");
        for (i, v) in values.iter().enumerate() {
            want.push_str(&format!("{i},{}\n", display(*v)));
        }
        assert_eq!(series_csv(&values), want);
    }

    /// The bytes and hashes of series files do not depend on how many threads write them.
    #[test]
    fn series_files_are_the_same_bytes_on_any_number_of_threads() {
        let data: Vec<Vec<f64>> = (0..7).map(|k| (0..3000).map(|t| f64::from(t * k) / 7.0).collect()).collect();
        let files: Vec<(String, &[f64])> =
            data.iter().enumerate().map(|(k, v)| (format!("s{k}.csv"), &v[..])).collect();
        let one = tempfile::tempdir().unwrap();
        let three = tempfile::tempdir().unwrap();
        let a = write_series_files(one.path(), &files, 1).unwrap();
        let b = write_series_files(three.path(), &files, 3).unwrap();
        assert_eq!(a, b);
        for ((name, values), h) in files.iter().zip(&a) {
            let bytes = sys::read(&three.path().join(name)).unwrap();
            assert_eq!(bytes, sys::read(&one.path().join(name)).unwrap());
            assert_eq!(bytes, series_csv(values).into_bytes());
            assert_eq!(&sha(&bytes), h);
        }
    }
}
