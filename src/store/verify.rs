//! `flowtime db check`: redb's integrity check (every page checksum of the committed trees) and a
//! verification of everything stored: every record parses and names its key, every template's
//! text matches its sha256, every blob's chunks are complete and its values match its sha256,
//! every reference resolves to a stored blob, and no chunk lacks its blob.
//!
//! The check never writes to the file it checks: it copies it next to itself and checks the copy
//! (redb's integrity check commits, and recovering a file that was not closed cleanly rewrites
//! it). A live store is copied while its owner holds the host lock, so no commit is in flight and
//! the copy's last commit must verify as it is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable};

use super::tables::{BLOB_CHUNKS, BLOB_INDEX, META, RUNS, SERIES, SESSIONS, TEMPLATES, VARIANTS};
use super::variant_record;
use super::{Reader, Result, Shutdown, Store, StoreError, guarded};
use super::{decode_u64, gc, open_redb, read_blob, run_record, series_record, session_record, template_record};
use crate::sys;

/// One damaged item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The item: `the database file`, `series blob 3fa4…`, `session `s1``, `table variants`.
    pub what: String,
    /// What is wrong with it.
    pub problem: String,
    /// Records that reference it (for a blob).
    pub referenced_by: Vec<String>,
}

/// What `db check` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The file checked (`:memory:` for an in-memory store).
    pub file: String,
    pub file_bytes: u64,
    /// Items counted: `templates`, `series`, `sessions`, `variants`, `runs`, `blobs`, `chunks`,
    /// `blob_bytes` (raw value bytes), `references`, `unreferenced_blobs`, `unreferenced_bytes`.
    pub counts: BTreeMap<String, u64>,
    /// Everything damaged; empty when the file is sound.
    pub problems: Vec<Problem>,
    /// Facts that are not damage (a file recovered from a crash, blobs awaiting collection).
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, what: impl Into<String>, problem: impl Into<String>) {
        self.problems.push(Problem { what: what.into(), problem: problem.into(), referenced_by: Vec::new() });
    }

    /// Records a failed step: a damaged item as itself, anything else against `table`.
    fn failed(&mut self, table: &str, e: StoreError) {
        match e {
            StoreError::DataLoss { what, problem, .. } => self.problem(what, problem),
            StoreError::Damaged { detail, .. } => {
                self.problem(format!("table {table}"), format!("cannot be read: {detail}"))
            }
            other => self.problem(format!("table {table}"), format!("cannot be read: {other}")),
        }
    }
}

/// Removes the temporary copy however the check ends.
#[derive(Debug)]
struct TempCopy(PathBuf);

impl Drop for TempCopy {
    fn drop(&mut self) {
        let _ = sys::remove_file(&self.0);
    }
}

fn temp_copy(path: &Path) -> Result<TempCopy> {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".check-{}", sys::process_id()));
    let copy = TempCopy(PathBuf::from(p));
    sys::copy(path, &copy.0)
        .map_err(|e| StoreError::Storage(format!("cannot copy {} to check it: {e}", path.display())))?;
    Ok(copy)
}

/// Checks the database file at `path` without writing to it (see the module doc). A file another
/// process holds is checked as it is on disk. Errors only when the file cannot be copied.
pub fn check_file(path: &Path) -> Result<CheckReport> {
    let shown = path.display().to_string();
    let mut report =
        CheckReport { file: shown.clone(), file_bytes: sys::file_size(path).unwrap_or(0), ..Default::default() };
    let copy = temp_copy(path)?;
    match guarded(&shown, || Store::check_readonly(&copy.0)) {
        Ok(shutdown) => check_copy(&copy.0, shutdown == Shutdown::Clean, &mut report),
        Err(StoreError::Damaged { detail, .. }) => {
            report.problem("the database file", format!("cannot be opened: {detail}"))
        }
        Err(e) => report.problem("the database file", e.to_string().replace(&copy.0.display().to_string(), &shown)),
    }
    Ok(report)
}

/// A check begun under the host lock ([`Store::begin_check`]) and finished without it.
#[derive(Debug)]
pub struct CheckJob {
    report: CheckReport,
    /// The copy to check; None when the check is already done (an in-memory store).
    copy: Option<TempCopy>,
}

impl CheckJob {
    /// Checks the copy (no lock needed) and deletes it.
    pub fn finish(mut self) -> CheckReport {
        if let Some(copy) = self.copy.take() {
            check_copy(&copy.0, true, &mut self.report);
        }
        self.report
    }
}

impl Store {
    /// Begins checking this store as [`check_file`] does: copies its file now (the caller holds
    /// the host lock, so no commit is in flight and the copy's last commit must verify as it is);
    /// [`CheckJob::finish`] checks the copy. An in-memory store is verified now, in place (there
    /// is no file for redb to check).
    pub fn begin_check(&self) -> Result<CheckJob> {
        let mut report = CheckReport { file: self.shown.clone(), file_bytes: self.file_bytes(), ..Default::default() };
        if !self.is_file() {
            report.notes.push("an in-memory store: redb's file integrity check does not apply".into());
            match self.read() {
                Ok(r) => verify_contents(&r, &mut report),
                Err(e) => report.failed("meta", e),
            }
            return Ok(CheckJob { report, copy: None });
        }
        Ok(CheckJob { report, copy: Some(temp_copy(&self.path)?) })
    }
}

/// redb's integrity check on the copy, then the contents. `rollback_is_damage`: whether a last
/// commit that fails its checksums is damage (a cleanly closed or live file) rather than a commit
/// a crash interrupted.
fn check_copy(copy: &Path, rollback_is_damage: bool, report: &mut CheckReport) {
    let shown = report.file.clone();
    match guarded(&shown, || open_redb(copy, true, rollback_is_damage)) {
        Ok((db, rolled_back)) => {
            if rolled_back {
                report.notes.push(
                    "the file was not closed cleanly and a crash interrupted its last commit: opening it rolls back \
                     to the commit before (redb's crash recovery)"
                        .into(),
                );
            }
            let path: std::sync::Arc<str> = shown.as_str().into();
            match guarded(&shown, || Ok(Reader { tx: db.begin_read()?, path })) {
                Ok(r) => verify_contents(&r, report),
                Err(e) => report.failed("meta", e),
            }
        }
        Err(e) => {
            let detail = match e {
                StoreError::Damaged { detail, .. } => detail,
                other => other.to_string(),
            };
            report.problem("the database file", format!("fails redb's integrity check: {detail}"));
            // List what can still be read, without trusting it to be sound.
            if let Ok(Ok(db)) = super::guard::catch(|| redb::Database::builder().open_read_only(copy)) {
                let path: std::sync::Arc<str> = shown.as_str().into();
                if let Ok(tx) = guarded(&shown, || Ok(db.begin_read()?)) {
                    verify_contents(&Reader { tx, path }, report);
                }
            }
        }
    }
}

fn bump(report: &mut CheckReport, key: &str, n: u64) {
    *report.counts.entry(key.to_string()).or_default() += n;
}

/// Decodes every record of `table`, each on its own (one damaged record does not hide the
/// others), passing the sound ones to `keep`.
fn each_record<K: redb::Key + 'static, T>(
    r: &Reader,
    table: redb::TableDefinition<K, &'static [u8]>,
    name: &str,
    decode: impl for<'a> Fn(K::SelfType<'a>, &'a [u8]) -> Result<T>,
    mut keep: impl FnMut(T),
    report: &mut CheckReport,
) {
    let res = r.guarded(|| {
        for e in r.tx.open_table(table)?.iter()? {
            let (k, v) = e?;
            match decode(k.value(), v.value()) {
                Ok(rec) => {
                    bump(report, name, 1);
                    keep(rec);
                }
                Err(e) => report.failed(name, e),
            }
        }
        Ok(())
    });
    if let Err(e) = res {
        report.failed(name, e);
    }
}

/// Verifies every record and blob readable through `r` (see the module doc).
pub(super) fn verify_contents(r: &Reader, report: &mut CheckReport) {
    let mut refs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut own = |owner: String, shas: Vec<&str>| {
        for sha in shas.into_iter().collect::<BTreeSet<_>>() {
            refs.entry(sha.to_string()).or_default().push(owner.clone());
        }
    };
    each_record(r, TEMPLATES, "templates", template_record, |_| {}, report);
    each_record(
        r,
        SERIES,
        "series",
        series_record,
        |rec| own(format!("stored series `{}`", rec.name), rec.blob_refs()),
        report,
    );
    each_record(
        r,
        SESSIONS,
        "sessions",
        session_record,
        |rec| own(format!("session `{}`", rec.id), rec.blob_refs()),
        report,
    );
    each_record(
        r,
        VARIANTS,
        "variants",
        variant_record,
        |rec| own(format!("variant `{}/{}`", rec.session, rec.name), rec.blob_refs()),
        report,
    );
    each_record(r, RUNS, "runs", run_record, |_| {}, report);

    // Blobs: every chunk of every blob, verified against its sha256.
    let mut ids = BTreeSet::new();
    let mut stored = BTreeSet::new();
    let res = r.guarded(|| {
        let index = r.tx.open_table(BLOB_INDEX)?;
        let chunks = r.tx.open_table(BLOB_CHUNKS)?;
        let next = r.tx.open_table(META)?.get("next_blob")?.and_then(|v| decode_u64(v.value())).unwrap_or(0);
        for e in index.iter()? {
            let (k, v) = e?;
            let sha = k.value().to_string();
            let (id, len) = v.value();
            ids.insert(id);
            stored.insert(sha.clone());
            bump(report, "blobs", 1);
            if id >= next {
                report.problem(
                    format!("series blob {sha}"),
                    format!("is damaged: its id {id} is not below the next id {next}"),
                );
            }
            match r.guarded(|| read_blob(&chunks, &sha, id, len)) {
                Ok(values) => {
                    bump(report, "chunks", values.len().div_ceil(super::CHUNK_VALUES) as u64);
                    bump(report, "blob_bytes", values.len() as u64 * 8);
                    if !refs.contains_key(&sha) {
                        bump(report, "unreferenced_blobs", 1);
                        bump(report, "unreferenced_bytes", values.len() as u64 * 8);
                    }
                }
                Err(e) => {
                    let (what, problem) = match e {
                        StoreError::DataLoss { what, problem, .. } => (what, problem),
                        other => (format!("series blob {sha}"), format!("cannot be read: {other}")),
                    };
                    let referenced_by = refs.get(&sha).cloned().unwrap_or_default();
                    report.problems.push(Problem { what, problem, referenced_by });
                }
            }
        }
        // Chunks whose blob has no index entry: an index entry was lost.
        let mut orphans: BTreeMap<u64, u64> = BTreeMap::new();
        for e in chunks.iter()? {
            let (k, _) = e?;
            if !ids.contains(&k.value().0) {
                *orphans.entry(k.value().0).or_default() += 1;
            }
        }
        for (id, n) in orphans {
            report.problem(format!("blob id {id}"), format!("has {n} chunks but no index entry (its sha256 is lost)"));
        }
        Ok(())
    });
    if let Err(e) = res {
        report.failed("blob_chunks", e);
    }

    // References: every referenced blob is stored.
    bump(report, "references", refs.values().map(|o| o.len() as u64).sum());
    for (sha, owners) in &refs {
        if !stored.contains(sha) {
            report.problems.push(Problem {
                what: format!("series blob {sha}"),
                problem: "is referenced but not stored".into(),
                referenced_by: owners.clone(),
            });
        }
    }
    if let Ok(true) = r.guarded(|| gc::due(&r.tx)) {
        report.notes.push("an automatic garbage collection is due after the next write".into());
    }
    for k in ["templates", "series", "sessions", "variants", "runs", "blobs", "chunks", "blob_bytes", "references"] {
        report.counts.entry(k.to_string()).or_default();
    }
    for k in ["unreferenced_blobs", "unreferenced_bytes"] {
        report.counts.entry(k.to_string()).or_default();
    }
}
