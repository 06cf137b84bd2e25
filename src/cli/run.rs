//! `flowtime run` and `flowtime validate`.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;

use crate::artifacts::{self, RunInput};
use crate::cli::output::{
    accounting_json, accounting_text, count, inference_text, mean, series_table, values_json, warnings_json,
    warnings_text,
};
use crate::cli::{Failure, RunArgs, ValidateArgs, parse_params};
use crate::engine::Evaluation;
use crate::host::{Host, Model};

/// Rows for the series table, in id order.
fn rows<'a>(
    ev: &'a Evaluation,
    params: &std::collections::BTreeMap<String, f64>,
) -> Vec<(String, &'a str, &'a [f64], Option<String>)> {
    let c = &ev.compiled;
    c.by_id
        .iter()
        .filter_map(|(id, s)| {
            let v = ev.series.get(s)?;
            let note =
                artifacts::inference_json(ev, *s, params).map(|i| inference_text(&crate::server::inference_label(&i)));
            Some((id.clone(), artifacts::artifact_kind(c, *s), &v[..], note))
        })
        .collect()
}

fn load(
    host: &mut Host,
    file: &std::path::Path,
    params: &[String],
    data_root: Option<&std::path::Path>,
) -> Result<Model, Failure> {
    let supplied = parse_params(params)?;
    Ok(host.load_file(file, &supplied, data_root)?)
}

pub(crate) fn run(a: &RunArgs, data_root: Option<&std::path::Path>, json: bool) -> Result<ExitCode, Failure> {
    refuse_urls(&a.out)?;
    let mut host = Host::new();
    let model = load(&mut host, &a.file, &a.params, data_root)?;
    let mut ev = host.evaluate(&model, None)?;
    // Per-class series are written with the totals (§6.1, §8).
    host.evaluate_mixes(&model, &mut ev, None)?;
    let warnings = host.warnings(&model, &ev)?;
    let inputs = model.input_data();
    let out = artifacts::write_run(
        &a.out,
        &RunInput {
            source: &model.source,
            params: &model.params,
            inputs: &inputs,
            evaluation: &ev,
            warnings: &warnings,
            tenant: None,
        },
    )?;
    let params = model.numeric_params();
    let mut stdout = std::io::stdout().lock();
    let res = if json {
        let series: Vec<_> = rows(&ev, &params)
            .into_iter()
            .map(|(id, kind, v, _)| {
                let s = ev.compiled.by_id[&id];
                json!({"id": id, "kind": kind, "first": values_json(&v[..v.len().min(6)]), "mean": artifacts::num(mean(v)), "inference": artifacts::inference_json(&ev, s, &params)})
            })
            .collect();
        let body = json!({
            "ok": true,
            "runId": out.run_id,
            "runHash": out.run_hash,
            "dir": out.dir.display().to_string(),
            "reused": out.reused,
            "grid": ev.compiled.grid.to_json(),
            "series": series,
            "warnings": warnings_json(&warnings),
            "accounting": accounting_json(&ev.accounting),
        });
        writeln!(stdout, "{}", serde_json::to_string_pretty(&body).unwrap_or_default())
    } else {
        let g = &ev.compiled.grid;
        let start = g.start_utc().map(|s| format!(" from {s}")).unwrap_or_default();
        write!(
            stdout,
            "run {}{}\n  {}\ngrid: {} × {} ({} per bin){start}\n\n{}\n{}{}\n",
            out.run_id,
            if out.reused { " (already on disk, verified)" } else { "" },
            out.dir.display(),
            count(g.bins as u64, "bin"),
            count(g.bin_size as u64, g.bin_unit.name().trim_end_matches('s')),
            count(g.bin_minutes(), "minute"),
            series_table(&rows(&ev, &params)),
            warnings_text(&warnings),
            accounting_text(&ev.accounting)
        )
    };
    Ok(done(res))
}

pub(crate) fn validate(a: &ValidateArgs, data_root: Option<&std::path::Path>, json: bool) -> Result<ExitCode, Failure> {
    let mut host = Host::new();
    let model = load(&mut host, &a.file, &a.params, data_root)?;
    let ev = host.evaluate(&model, None)?;
    let warnings = host.warnings(&model, &ev)?;
    let c = &ev.compiled;
    let mut stdout = std::io::stdout().lock();
    let res = if json {
        let body =
            json!({"ok": true, "series": c.series.len(), "units": c.units.len(), "warnings": warnings_json(&warnings)});
        writeln!(stdout, "{}", serde_json::to_string_pretty(&body).unwrap_or_default())
    } else {
        write!(
            stdout,
            "ok: {} is valid ({} series in {})\n{}",
            model.label,
            c.series.len(),
            count(c.units.len() as u64, "unit"),
            warnings_text(&warnings)
        )
    };
    Ok(done(res))
}

/// `--out s3://bucket/x` writes to object storage (`objstore`); a URL of a scheme it does not
/// know would make a local `foo:` directory, so it is refused.
fn refuse_urls(out: &std::path::Path) -> Result<(), Failure> {
    let s = out.to_string_lossy();
    match s.split_once("://") {
        Some((scheme, _))
            if !crate::objstore::is_url(&s)
                && !scheme.is_empty()
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Err(crate::diag::Diagnostic::error(
                "bad_argument",
                format!("--out {s} is a URL of a scheme runs cannot be written to"),
            )
            .at_path("--out")
            .with_help("give a directory (--out runs) or an object-store URL: s3://, gs://, az://, abfss://, file:///")
            .into())
        }
        _ => Ok(()),
    }
}

/// A closed pipe (e.g. `| head`) is not an error.
fn done(res: std::io::Result<()>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}
