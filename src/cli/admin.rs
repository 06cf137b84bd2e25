//! `flowtime db check|compact|gc`: looking after the database file through the AdminService, in
//! process on `--db FILE` or on a running server (`--server URL`).
//!
//! Exit codes: `check` exits 1 when anything is damaged (the report lists it), 0 when the file is
//! sound. A file too damaged to open is still checked: the same store check the service runs
//! (`store::check_file`) runs on it directly, since there is no database to serve the call.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::cli::Failure;
use crate::client::Client;
use crate::host::{Host, HostError, SharedHost};
use crate::server::ServerOptions;
use crate::server::pb;
use crate::sys;

#[derive(clap::Subcommand, Debug)]
pub enum DbCmd {
    /// Verify the file: redb's integrity check, every record, every blob against its sha256,
    /// every reference. Exits 1 with a report of what is damaged. Never writes to the file.
    Check,
    /// Return the file's free pages to the file system (run `db gc` first to free unreferenced
    /// blobs).
    Compact,
    /// Remove the series blobs no stored series, session or variant references.
    Gc,
}

/// Runs a `db` command on the file `db` or the server at `server`.
pub(crate) fn run(
    cmd: DbCmd,
    db: &Path,
    server: Option<&str>,
    data_root: Option<&Path>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let rt = crate::cli::api::runtime()?;
    rt.block_on(async move {
        let client = match server {
            Some(url) => {
                let c = crate::cli::api::connect(url).await?;
                return call(&c, cmd, json).await;
            }
            None => {
                // Check, compact and gc look after a file: a missing one is a mistake, not a
                // new database.
                if !sys::exists(db) {
                    return Err(crate::cli::api::missing_database(db));
                }
                let root = match data_root {
                    Some(r) => r.to_path_buf(),
                    None => sys::current_dir().map_err(|e| Failure::Runtime(e.into()))?,
                };
                let role = format!("`flowtime db` (pid {})", sys::process_id());
                match Host::open_with_cache(db, &role, &root, crate::cli::cache_for(db).as_ref()) {
                    Ok(host) => Client::in_process(Arc::new(SharedHost::new(host)), ServerOptions::default()).await,
                    Err(HostError::DataLoss(_)) if matches!(cmd, DbCmd::Check) => {
                        let report =
                            crate::store::check_file(db).map_err(|e| Failure::Runtime(anyhow::anyhow!("{e}")))?;
                        return Ok(print_check(&reply_json(&pb::CheckReply::from(report)), json));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        call(&client.client, cmd, json).await
    })
}

async fn call(client: &Client, cmd: DbCmd, json: bool) -> Result<ExitCode, Failure> {
    let status = crate::cli::api::status;
    let mut admin = client.admin();
    match cmd {
        DbCmd::Check => {
            let r = admin.check(pb::CheckRequest {}).await.map_err(status)?.into_inner();
            Ok(print_check(&reply_json(&r), json))
        }
        DbCmd::Compact => {
            let r = admin.compact(pb::CompactRequest {}).await.map_err(status)?.into_inner();
            if json {
                println!("{}", json!({"ok": true, "bytesBefore": r.bytes_before, "bytesAfter": r.bytes_after}));
            } else {
                println!("compacted: {} → {} bytes", r.bytes_before, r.bytes_after);
            }
            Ok(ExitCode::SUCCESS)
        }
        DbCmd::Gc => {
            let r = admin.collect_garbage(pb::CollectGarbageRequest {}).await.map_err(status)?.into_inner();
            if json {
                println!(
                    "{}",
                    json!({"ok": true, "blobsRemoved": r.blobs_removed, "bytesRemoved": r.bytes_removed,
                           "blobsLive": r.blobs_live, "bytesLive": r.bytes_live,
                           "cacheEntriesRemoved": r.cache_entries_removed, "cacheBytesRemoved": r.cache_bytes_removed})
                );
            } else {
                println!(
                    "removed {} unreferenced blobs ({} bytes); {} blobs ({} bytes) are referenced{}",
                    r.blobs_removed,
                    r.bytes_removed,
                    r.blobs_live,
                    r.bytes_live,
                    if r.blobs_removed > 0 {
                        "; `flowtime db compact` returns the freed pages to the file system"
                    } else {
                        ""
                    }
                );
                if r.cache_entries_removed > 0 {
                    println!(
                        "removed {} result-cache entries ({} bytes)",
                        r.cache_entries_removed, r.cache_bytes_removed
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The check reply as the `--json` document (and the source of the text report).
fn reply_json(r: &pb::CheckReply) -> serde_json::Value {
    let counts: std::collections::BTreeMap<&String, &u64> = r.counts.iter().collect();
    let problems: Vec<serde_json::Value> = r
        .problems
        .iter()
        .map(|p| json!({"what": p.what, "problem": p.problem, "referencedBy": p.referenced_by}))
        .collect();
    json!({"ok": r.ok, "file": r.file, "fileBytes": r.file_bytes, "counts": counts, "problems": problems, "notes": r.notes})
}

/// Prints a check report; exit 1 when anything is damaged.
fn print_check(v: &serde_json::Value, json: bool) -> ExitCode {
    let ok = v["ok"].as_bool().unwrap_or(false);
    if json {
        println!("{v}");
    } else {
        let n = |k: &str| v["counts"][k].as_u64().unwrap_or(0);
        let head = format!("{} ({} bytes)", v["file"].as_str().unwrap_or(""), v["fileBytes"]);
        println!("{} {head}", if ok { "ok:" } else { "damaged:" });
        for p in v["problems"].as_array().into_iter().flatten() {
            let by: Vec<&str> = p["referencedBy"].as_array().into_iter().flatten().filter_map(|x| x.as_str()).collect();
            let by = if by.is_empty() { String::new() } else { format!(" (referenced by {})", by.join(", ")) };
            println!("  {} {}{by}", p["what"].as_str().unwrap_or(""), p["problem"].as_str().unwrap_or(""));
        }
        let counted = v["counts"].as_object().is_some_and(|c| c.values().any(|n| n.as_u64() != Some(0)));
        if ok || counted {
            println!(
                "{} templates, {} stored series, {} sessions, {} variants, {} runs; {} blobs ({} bytes in {} chunks), {} references",
                n("templates"),
                n("series"),
                n("sessions"),
                n("variants"),
                n("runs"),
                n("blobs"),
                n("blob_bytes"),
                n("chunks"),
                n("references")
            );
        }
        if n("unreferenced_blobs") > 0 {
            println!(
                "{} unreferenced blobs ({} bytes) await `flowtime db gc`",
                n("unreferenced_blobs"),
                n("unreferenced_bytes")
            );
        }
        for note in v["notes"].as_array().into_iter().flatten() {
            println!("note: {}", note.as_str().unwrap_or(""));
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
