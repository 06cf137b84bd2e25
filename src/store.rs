//! The redb store (§10): templates, stored series, content-addressed series blobs, sessions,
//! variants and runs in one file, with a schema-version record.
//!
//! It knows bytes, keys and versions, not queries: the host decides what to store and applies
//! committed changes to salsa. Every write transaction commits with immediate durability, so a
//! write the caller saw succeed survives a crash.
//!
//! A damaged file never panics or lies: opening an existing file runs redb's integrity check
//! (every page checksum of the committed trees), every blob is verified against its sha256 when
//! read, every record against its key, a template's text against its sha256, and a panic inside
//! redb is caught (`guard`) and reported as [`StoreError::Damaged`]. `verify` is `db check`,
//! `gc` collects blobs nothing references.

mod gc;
pub(crate) mod guard;
pub mod tables;
mod verify;

pub use gc::{AUTO_GC_MIN_BYTES, GcReport};
pub use verify::{CheckJob, CheckReport, Problem, check_file};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::params::hex;
use crate::sys;
use tables::*;

/// A failure at the storage boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process has the file open.
    InUse {
        path: String,
        holder: String,
    },
    /// The file's schema version is not this build's.
    SchemaVersion {
        path: String,
        found: String,
    },
    NotFound(String),
    AlreadyExists(String),
    Invalid(String),
    Storage(String),
    /// The file cannot be read as a database: redb's integrity check fails, or reading it
    /// panicked. `path` is filled in by the store call that met it.
    Damaged {
        path: String,
        detail: String,
    },
    /// One stored item failed its verification: a blob whose values do not match their sha256, a
    /// record that does not parse or names another key, a template whose text does not match its
    /// sha256, a reference to a blob that is not stored. `what` names the item (`series blob
    /// 3fa4…`, `session `s1``), `problem` says what is wrong with it.
    DataLoss {
        path: String,
        what: String,
        problem: String,
    },
}

impl StoreError {
    /// A problem with one stored item (its file is filled in by the store call).
    pub fn data_loss(what: impl Into<String>, problem: impl Into<String>) -> StoreError {
        StoreError::DataLoss { path: String::new(), what: what.into(), problem: problem.into() }
    }

    /// Names the database file in a damage report that does not name it yet.
    pub fn at(self, file: &str) -> StoreError {
        match self {
            StoreError::Damaged { path, detail } if path.is_empty() => {
                StoreError::Damaged { path: file.into(), detail }
            }
            StoreError::DataLoss { path, what, problem } if path.is_empty() => {
                StoreError::DataLoss { path: file.into(), what, problem }
            }
            other => other,
        }
    }

    /// Whether this is a damage report (the gRPC `DATA_LOSS` code).
    pub fn is_damage(&self) -> bool {
        matches!(self, StoreError::Damaged { .. } | StoreError::DataLoss { .. })
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::InUse { path, holder } => write!(f, "{path} is in use by {holder}"),
            StoreError::SchemaVersion { path, found } => write!(
                f,
                "{path} has schema version {found}, but this flowtime reads schema version {SCHEMA_VERSION}; the file was left unchanged (use a matching flowtime build)"
            ),
            StoreError::NotFound(w) => write!(f, "{w} not found"),
            StoreError::AlreadyExists(w) => write!(f, "{w} already exists"),
            StoreError::Invalid(w) => f.write_str(w),
            StoreError::Storage(w) => write!(f, "storage error: {w}"),
            StoreError::Damaged { path, detail } => {
                write!(f, "the database file {path} is damaged: {detail}; run `flowtime db check --db {path}`")
            }
            StoreError::DataLoss { path, what, problem } => {
                write!(f, "{what} in {path} {problem}; run `flowtime db check --db {path}`")
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> StoreError {
        match e {
            // redb's checksums or structure do not hold, or an earlier call panicked inside redb
            // (on a damaged page) and poisoned its state.
            redb::Error::Corrupted(detail) => StoreError::Damaged { path: String::new(), detail },
            redb::Error::LockPoisoned(_) | redb::Error::TransactionPoisoned => StoreError::Damaged {
                path: String::new(),
                detail: format!("an earlier read of a damaged page left redb unusable ({e})"),
            },
            // A file that is not (or no longer) a redb database, or shorter than its pages.
            redb::Error::Io(io)
                if matches!(io.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof) =>
            {
                StoreError::Damaged { path: String::new(), detail: io.to_string() }
            }
            other => StoreError::Storage(other.to_string()),
        }
    }
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::from(redb::Error::from(e))
            }
        }
    )*};
}
redb_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Storage(e.to_string())
            }
        }
    )*};
}
storage_from!(serde_json::Error, std::io::Error);

/// Runs a store call: a panic inside redb becomes [`StoreError::Damaged`], and damage reports name
/// `path`.
fn guarded<T>(path: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match guard::catch(f) {
        Ok(r) => r.map_err(|e| e.at(path)),
        Err(panic) => Err(StoreError::Damaged {
            path: path.to_string(),
            detail: format!("reading it failed inside redb ({panic})"),
        }),
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateRecord {
    pub id: String,
    pub version: String,
    pub text: String,
    pub sha256: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub stored_utc: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesRecord {
    pub name: String,
    /// Window start (minutes since the epoch), bin width and length.
    pub start_minutes: Option<i64>,
    pub bin_minutes: u64,
    pub bins: u32,
    /// sha256 of the values (little-endian f64), the blob key.
    pub blob: String,
    pub provenance: serde_json::Value,
    /// Bins that were missing in the source (zero-filled).
    #[serde(default)]
    pub gaps: Vec<u32>,
    pub stored_utc: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub template_id: String,
    pub template_version: String,
    /// Every parameter's value after defaults, as JSON.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Input key (`file:…`) → pinned content: the session's file inputs are read once, stored
    /// content-addressed, and never reread.
    pub inputs: BTreeMap<String, InputPin>,
    /// Const node → blob sha256 (series bound at open).
    pub overrides: BTreeMap<String, String>,
    pub tenant: Option<String>,
    pub revision: u64,
    pub created_utc: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantRecord {
    pub session: String,
    pub name: String,
    pub params: BTreeMap<String, serde_json::Value>,
    /// Const node → blob sha256.
    pub overrides: BTreeMap<String, String>,
    /// File inputs only this variant reads (e.g. a series parameter switched to another file).
    pub inputs: BTreeMap<String, InputPin>,
    pub revision: u64,
    pub created_utc: String,
}

/// A pinned input: the blob and the bins that were missing when it was read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputPin {
    pub sha256: String,
    pub gaps: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub dir: String,
    pub summary: serde_json::Value,
}

/// The sha256 of a series' values (little-endian f64), its content address.
pub fn values_sha(values: &[f64]) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    hex(&h.finalize())
}

pub struct Store {
    db: redb::Database,
    path: PathBuf,
    /// The path as shown in messages.
    shown: String,
    holder_file: Option<PathBuf>,
    /// Set when a committed write stored a new blob (and at open: an earlier process may have
    /// left a collection due); cleared when [`Store::garbage_due`] finds none due. Only blob
    /// writes make a collection due, so a change that stores none costs no read of the meta
    /// table to ask.
    blobs_written: AtomicBool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

fn holder_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".holder");
    PathBuf::from(p)
}

/// How an existing file looked to a read-only open, before anything writes to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shutdown {
    /// Closed cleanly: its last commit must pass redb's integrity check as it is.
    Clean,
    /// Not closed cleanly (a crash, or a copy of an open file): redb recovers it on open, which
    /// may roll back a commit that a crash interrupted.
    NeedsRecovery,
}

/// Opens (or creates) a redb file. An existing file is integrity-checked (every page checksum of
/// the committed trees); when `rollback_is_damage`, a last commit that fails the check is
/// reported as damage instead of being rolled back to the commit before it (redb's crash
/// recovery, right only when a crash interrupted that commit).
///
/// Returns the database and whether redb rolled back a last commit that failed its checksums.
fn open_redb(path: &Path, check: bool, rollback_is_damage: bool) -> Result<(redb::Database, bool)> {
    let rolled_back = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = rolled_back.clone();
    let mut builder = redb::Database::builder();
    builder.set_check_integrity_on_open(check);
    builder.set_repair_callback(move |session| {
        // redb calls back at 0.3 only when the last commit fails its checksums, just before it
        // falls back to the commit before.
        if (session.progress() - 0.3).abs() < 0.05 {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            if rollback_is_damage {
                session.abort();
            }
        }
    });
    match builder.create(path) {
        Ok(db) => Ok((db, rolled_back.load(std::sync::atomic::Ordering::SeqCst))),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            let holder = sys::read_to_string(&holder_path(path)).unwrap_or_else(|_| "another process".into());
            Err(StoreError::InUse { path: path.display().to_string(), holder: holder.trim().to_string() })
        }
        Err(redb::DatabaseError::RepairAborted) if rolled_back.load(std::sync::atomic::Ordering::SeqCst) => {
            Err(StoreError::Damaged {
                path: String::new(),
                detail: "its last commit fails redb's page checksums (the file changed after it was written)".into(),
            })
        }
        Err(e) => match StoreError::from(e) {
            StoreError::Storage(w) => Err(StoreError::Storage(format!("{}: {w}", path.display()))),
            other => Err(other),
        },
    }
}

impl Store {
    fn new(db: redb::Database, path: PathBuf, shown: String) -> Store {
        Store { db, path, shown, holder_file: None, blobs_written: AtomicBool::new(true) }
    }

    /// Opens (or creates) the file. `role` names this process for others that find the file in
    /// use, e.g. "`flowtime serve` (pid 42); use `--server`".
    ///
    /// An existing file is checked first on a read-only open (a file with another schema version
    /// is refused untouched), then opened with redb's integrity check, so a file damaged outside
    /// redb is refused with [`StoreError::Damaged`] instead of answering from broken pages.
    pub fn open(path: &Path, role: &str) -> Result<Store> {
        let shown = path.display().to_string();
        guarded(&shown, || Store::open_inner(path, role))
    }

    fn open_inner(path: &Path, role: &str) -> Result<Store> {
        let shown = path.display().to_string();
        let mut existed = sys::exists(path) && sys::file_size(path).map_or(true, |n| n > 0);
        if !existed {
            Store::create_file(path)?;
            existed = true;
        }
        // Check the schema on a read-only open first, so a refused file is left untouched.
        let shutdown = if existed { Store::check_readonly(path)? } else { Shutdown::Clean };
        let (db, _) = open_redb(path, existed, shutdown == Shutdown::Clean)?;
        let mut store = Store::new(db, path.to_path_buf(), shown);
        store.check_or_init_schema(existed)?;
        let holder = holder_path(path);
        let _ = sys::write(&holder, role.as_bytes());
        store.holder_file = Some(holder);
        Ok(store)
    }

    /// Creates a new database file so that no kill can leave a half-made one under `path`: the
    /// file is made and given its schema under a scratch name next to it, closed, then published
    /// under `path` only if nothing has that name yet (another process may have won the race; its
    /// file is then the one opened). A scratch file a killed creator left behind is replaced.
    fn create_file(path: &Path) -> Result<()> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".creating");
        let scratch = path.with_file_name(name);
        let storage = |e: std::io::Error| StoreError::Storage(format!("{}: {e}", path.display()));
        if sys::exists(&scratch) {
            sys::remove_file(&scratch).map_err(storage)?;
        }
        let (db, _) = open_redb(&scratch, false, false)?;
        let store = Store::new(db, scratch.clone(), scratch.display().to_string());
        store.check_or_init_schema(false)?;
        drop(store);
        match sys::publish_new(&scratch, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = sys::remove_file(&scratch);
                Ok(())
            }
            Err(e) => Err(storage(e)),
        }
    }

    fn check_readonly(path: &Path) -> Result<Shutdown> {
        let shown = path.display().to_string();
        let db = match redb::Database::builder().open_read_only(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                let holder = sys::read_to_string(&holder_path(path)).unwrap_or_else(|_| "another process".into());
                return Err(StoreError::InUse { path: shown, holder: holder.trim().to_string() });
            }
            // A file that needs recovery (after a crash) can only be checked by a writable open.
            Err(redb::DatabaseError::RepairAborted) => return Ok(Shutdown::NeedsRecovery),
            Err(e) => return Err(e.into()),
        };
        let rtx = db.begin_read()?;
        let found = match rtx.open_table(META) {
            Ok(t) => t.get("schema_version")?.map(|v| decode_u64(v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let has_tables = rtx.list_tables()?.next().is_some();
        match found {
            Some(Some(SCHEMA_VERSION)) => Ok(Shutdown::Clean),
            None if !has_tables => Ok(Shutdown::Clean),
            Some(v) => {
                Err(StoreError::SchemaVersion { path: shown, found: v.map_or("unreadable".into(), |v| v.to_string()) })
            }
            None => Err(StoreError::SchemaVersion { path: shown, found: "missing".into() }),
        }
    }

    /// An in-memory store (tests and one-shot commands).
    pub fn in_memory() -> Result<Store> {
        let db = redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        let store = Store::new(db, PathBuf::from(":memory:"), ":memory:".into());
        store.check_or_init_schema(false)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store lives in a file (not in memory).
    pub fn is_file(&self) -> bool {
        self.holder_file.is_some()
    }

    fn check_or_init_schema(&self, existed: bool) -> Result<()> {
        let rtx = self.db.begin_read()?;
        let found = match rtx.open_table(META) {
            Ok(t) => t.get("schema_version")?.map(|v| decode_u64(v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let has_tables = rtx.list_tables()?.next().is_some();
        drop(rtx);
        match found {
            Some(Some(SCHEMA_VERSION)) => Ok(()),
            Some(v) => Err(StoreError::SchemaVersion {
                path: self.shown.clone(),
                found: v.map_or("unreadable".into(), |v| v.to_string()),
            }),
            None if has_tables || (existed && self.has_data()) => {
                Err(StoreError::SchemaVersion { path: self.shown.clone(), found: "missing".into() })
            }
            None => {
                let tx = self.db.begin_write()?;
                {
                    let mut meta = tx.open_table(META)?;
                    meta.insert("schema_version", &SCHEMA_VERSION.to_le_bytes()[..])?;
                    meta.insert("next_blob", &0u64.to_le_bytes()[..])?;
                    // Create every table so readers never meet a missing one.
                    tx.open_table(TEMPLATES)?;
                    tx.open_table(SERIES)?;
                    tx.open_table(BLOB_INDEX)?;
                    tx.open_table(BLOB_CHUNKS)?;
                    tx.open_table(SESSIONS)?;
                    tx.open_table(VARIANTS)?;
                    tx.open_table(RUNS)?;
                }
                tx.commit()?;
                Ok(())
            }
        }
    }

    fn has_data(&self) -> bool {
        self.db.begin_read().ok().and_then(|r| r.list_tables().ok().map(|mut t| t.next().is_some())).unwrap_or(false)
    }

    /// Runs `f` in one write transaction, committed (durably) when `f` succeeds and rolled back
    /// when it fails, so a rejected request leaves the store as it was.
    pub fn write<T>(&self, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        guarded(&self.shown, || {
            let tx = self.db.begin_write()?;
            let mut w = Writer { tx: &tx, wrote_blob: false };
            match f(&mut w) {
                Ok(v) => {
                    let wrote_blob = w.wrote_blob;
                    tx.commit()?;
                    if wrote_blob {
                        self.blobs_written.store(true, Ordering::Release);
                    }
                    Ok(v)
                }
                Err(e) => {
                    tx.abort()?;
                    Err(e)
                }
            }
        })
    }

    /// A consistent read snapshot.
    pub fn read(&self) -> Result<Reader> {
        let path: std::sync::Arc<str> = self.shown.as_str().into();
        guarded(&self.shown, || Ok(Reader { tx: self.db.begin_read()?, path }))
    }

    /// The file's size in bytes (0 in memory).
    pub fn file_bytes(&self) -> u64 {
        if self.is_file() { sys::file_size(&self.path).unwrap_or(0) } else { 0 }
    }

    /// Compacts the file (moves pages down and truncates the free space at its end); returns the
    /// file's size before and after.
    pub fn compact(&mut self) -> Result<(u64, u64)> {
        let before = self.file_bytes();
        let shown = self.shown.clone();
        let db = &mut self.db;
        guarded(&shown, || {
            while db.compact()? {}
            Ok(())
        })?;
        Ok((before, self.file_bytes()))
    }

    /// Removes every blob no record references (see [`GcReport`]), in one transaction.
    pub fn collect_garbage(&self) -> Result<GcReport> {
        self.write(|w| w.collect_garbage())
    }

    /// Whether enough blob bytes were written since the last collection that one is due: more
    /// than the live bytes then, and at least [`gc::AUTO_GC_MIN_BYTES`]. Reads the meta table
    /// only when a blob was written since it last said no (or since the store was opened).
    pub fn garbage_due(&self) -> Result<bool> {
        // Cleared before reading, so a blob committed meanwhile sets it again for the next ask.
        if !self.blobs_written.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let due = self.read().and_then(|r| r.guarded(|| gc::due(&r.tx)));
        if !matches!(due, Ok(false)) {
            // Due (until a collection resets the written bytes) or unknown: ask again next time.
            self.blobs_written.store(true, Ordering::Release);
        }
        due
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(h) = &self.holder_file {
            let _ = sys::remove_file(h);
        }
    }
}

fn decode_u64(b: &[u8]) -> Option<u64> {
    b.try_into().ok().map(u64::from_le_bytes)
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(v)?)
}

/// Decodes a stored record; `what` names it in the damage report (`session `s1``).
fn parse<T: for<'de> Deserialize<'de>>(b: &[u8], what: impl FnOnce() -> String) -> Result<T> {
    serde_json::from_slice(b)
        .map_err(|e| StoreError::data_loss(what(), format!("is damaged: its record does not parse ({e})")))
}

/// A record whose own name is not the key it is stored under is damaged.
fn check_key(what: impl FnOnce() -> String, key: &str, named: &str) -> Result<()> {
    if key == named {
        Ok(())
    } else {
        Err(StoreError::data_loss(what(), format!("is damaged: its record names `{named}`")))
    }
}

fn template_record(key: (&str, &str), bytes: &[u8]) -> Result<TemplateRecord> {
    let what = || format!("stored template {}@{}", key.0, key.1);
    let rec: TemplateRecord = parse(bytes, what)?;
    check_key(what, &format!("{}@{}", key.0, key.1), &format!("{}@{}", rec.id, rec.version))?;
    if hex(&Sha256::digest(rec.text.as_bytes())) != rec.sha256 {
        return Err(StoreError::data_loss(what(), "is damaged: its text does not match its sha256"));
    }
    Ok(rec)
}

/// Decodes a record stored under `key` (as `what` names it) and checks that it names that key.
fn keyed<T: for<'de> Deserialize<'de>>(
    what: String,
    key: &str,
    bytes: &[u8],
    named: impl FnOnce(&T) -> String,
) -> Result<T> {
    let rec: T = parse(bytes, || what.clone())?;
    check_key(|| what, key, &named(&rec))?;
    Ok(rec)
}

fn series_record(key: &str, bytes: &[u8]) -> Result<SeriesRecord> {
    keyed(format!("stored series `{key}`"), key, bytes, |r: &SeriesRecord| r.name.clone())
}

fn session_record(key: &str, bytes: &[u8]) -> Result<SessionRecord> {
    keyed(format!("session `{key}`"), key, bytes, |r: &SessionRecord| r.id.clone())
}

fn variant_record(key: (&str, &str), bytes: &[u8]) -> Result<VariantRecord> {
    let k = format!("{}/{}", key.0, key.1);
    keyed(format!("variant `{k}`"), &k, bytes, |r: &VariantRecord| format!("{}/{}", r.session, r.name))
}

fn run_record(key: &str, bytes: &[u8]) -> Result<RunRecord> {
    keyed(format!("run `{key}`"), key, bytes, |r: &RunRecord| r.id.clone())
}

/// Reads blob `sha` (`id`, `len` values) from its chunks and verifies it: every chunk present and
/// full (but the last), nothing after the last, and the values' sha256 equal to the key.
fn read_blob(chunks: &impl ReadableTable<(u64, u32), &'static [u8]>, sha: &str, id: u64, len: u64) -> Result<Vec<f64>> {
    let what = || format!("series blob {sha}");
    let n_chunks = len.div_ceil(CHUNK_VALUES as u64);
    // A damaged length must not turn into a huge allocation.
    let mut out = Vec::with_capacity(len.min(1 << 20) as usize);
    let mut h = Sha256::new();
    let mut next = 0u64;
    for e in chunks.range((id, 0)..=(id, u32::MAX))? {
        let (k, v) = e?;
        let c = u64::from(k.value().1);
        if c != next || c >= n_chunks {
            let problem = if c >= n_chunks {
                format!("is damaged: it has a chunk {c} beyond the {n_chunks} its {len} values fill")
            } else {
                format!("is damaged: chunk {next} of {n_chunks} is missing")
            };
            return Err(StoreError::data_loss(what(), problem));
        }
        let want = (len - c * CHUNK_VALUES as u64).min(CHUNK_VALUES as u64) * 8;
        let bytes = v.value();
        if bytes.len() as u64 != want {
            return Err(StoreError::data_loss(
                what(),
                format!("is damaged: chunk {c} of {n_chunks} has {} bytes, not {want}", bytes.len()),
            ));
        }
        h.update(bytes);
        out.extend(bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))));
        next += 1;
    }
    if next != n_chunks {
        return Err(StoreError::data_loss(what(), format!("is damaged: chunk {next} of {n_chunks} is missing")));
    }
    if hex(&h.finalize()) != sha {
        return Err(StoreError::data_loss(what(), "is damaged: its values do not match their sha256"));
    }
    Ok(out)
}

/// Writes inside one transaction.
pub struct Writer<'a> {
    tx: &'a redb::WriteTransaction,
    /// Whether this transaction stored a new blob (see `Store::garbage_due`).
    wrote_blob: bool,
}

impl Writer<'_> {
    /// Stores a template; identical text again is a no-op (false), different text under the same
    /// `(id, version)` is `AlreadyExists`.
    pub fn put_template(&mut self, rec: &TemplateRecord) -> Result<bool> {
        let mut t = self.tx.open_table(TEMPLATES)?;
        if let Some(old) = t.get((rec.id.as_str(), rec.version.as_str()))? {
            let old = template_record((&rec.id, &rec.version), old.value())?;
            if old.text == rec.text {
                return Ok(false);
            }
            return Err(StoreError::AlreadyExists(format!(
                "template {} version {} with different text (templates are immutable; store a new version)",
                rec.id, rec.version
            )));
        }
        t.insert((rec.id.as_str(), rec.version.as_str()), json(rec)?.as_slice())?;
        Ok(true)
    }

    /// Stores values content-addressed; returns their sha256. Storing equal values again is free.
    /// A blob nothing references is collected by the next garbage collection, so a caller stores
    /// the record that references it in the same transaction (or, for a batch staged over several
    /// transactions, before the host's next collection).
    pub fn put_blob(&mut self, values: &[f64]) -> Result<String> {
        let sha = values_sha(values);
        let mut index = self.tx.open_table(BLOB_INDEX)?;
        if index.get(sha.as_str())?.is_some() {
            return Ok(sha);
        }
        let mut meta = self.tx.open_table(META)?;
        let id = meta.get("next_blob")?.and_then(|v| decode_u64(v.value())).unwrap_or(0);
        meta.insert("next_blob", &(id + 1).to_le_bytes()[..])?;
        let written = meta.get(gc::WRITTEN)?.and_then(|v| decode_u64(v.value())).unwrap_or(0);
        meta.insert(gc::WRITTEN, &(written + values.len() as u64 * 8).to_le_bytes()[..])?;
        self.wrote_blob = true;
        let mut chunks = self.tx.open_table(BLOB_CHUNKS)?;
        let mut buf = Vec::with_capacity(CHUNK_VALUES * 8);
        for (c, chunk) in values.chunks(CHUNK_VALUES).enumerate() {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            chunks.insert((id, c as u32), buf.as_slice())?;
        }
        index.insert(sha.as_str(), (id, values.len() as u64))?;
        Ok(sha)
    }

    pub fn put_series(&mut self, rec: &SeriesRecord) -> Result<()> {
        self.tx.open_table(SERIES)?.insert(rec.name.as_str(), json(rec)?.as_slice())?;
        Ok(())
    }

    pub fn put_session(&mut self, rec: &SessionRecord) -> Result<()> {
        self.tx.open_table(SESSIONS)?.insert(rec.id.as_str(), json(rec)?.as_slice())?;
        Ok(())
    }

    /// Removes a session and its variants.
    pub fn delete_session(&mut self, id: &str) -> Result<()> {
        if self.tx.open_table(SESSIONS)?.remove(id)?.is_none() {
            return Err(StoreError::NotFound(format!("session `{id}`")));
        }
        let mut v = self.tx.open_table(VARIANTS)?;
        let names: Vec<String> = v
            .range((id, "")..)?
            .map_while(|e| e.ok())
            .take_while(|(k, _)| k.value().0 == id)
            .map(|(k, _)| k.value().1.to_string())
            .collect();
        for n in names {
            v.remove((id, n.as_str()))?;
        }
        Ok(())
    }

    pub fn put_variant(&mut self, rec: &VariantRecord) -> Result<()> {
        self.tx.open_table(VARIANTS)?.insert((rec.session.as_str(), rec.name.as_str()), json(rec)?.as_slice())?;
        Ok(())
    }

    pub fn delete_variant(&mut self, session: &str, name: &str) -> Result<()> {
        match self.tx.open_table(VARIANTS)?.remove((session, name))? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("variant `{session}/{name}`"))),
        }
    }

    pub fn put_run(&mut self, rec: &RunRecord) -> Result<()> {
        self.tx.open_table(RUNS)?.insert(rec.id.as_str(), json(rec)?.as_slice())?;
        Ok(())
    }

    /// Sets a note in the meta table (keys other than the store's own: `schema_version`,
    /// `next_blob`).
    pub fn put_note(&mut self, key: &str, value: &str) -> Result<()> {
        if key == "schema_version" || key == "next_blob" {
            return Err(StoreError::Invalid(format!("`{key}` is the store's own meta key")));
        }
        self.tx.open_table(META)?.insert(key, value.as_bytes())?;
        Ok(())
    }

    /// Reads within the write transaction (sees its own writes).
    pub fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        self.tx.open_table(SESSIONS)?.get(id)?.map(|v| session_record(id, v.value())).transpose()
    }
}

/// Reads from one consistent snapshot.
pub struct Reader {
    tx: redb::ReadTransaction,
    /// The file, for damage reports.
    path: std::sync::Arc<str>,
}

impl Reader {
    /// Runs one read: a panic inside redb becomes [`StoreError::Damaged`] naming the file.
    fn guarded<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        guarded(&self.path, f)
    }

    /// Every record of `table`, decoded (and verified) by `decode`.
    fn all<K: redb::Key + 'static, T>(
        &self,
        table: TableDefinition<K, &'static [u8]>,
        decode: impl for<'a> Fn(K::SelfType<'a>, &'a [u8]) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.guarded(|| {
            self.tx
                .open_table(table)?
                .iter()?
                .map(|e| {
                    let (k, v) = e?;
                    decode(k.value(), v.value())
                })
                .collect()
        })
    }

    pub fn template(&self, id: &str, version: &str) -> Result<Option<TemplateRecord>> {
        self.guarded(|| {
            self.tx
                .open_table(TEMPLATES)?
                .get((id, version))?
                .map(|v| template_record((id, version), v.value()))
                .transpose()
        })
    }

    pub fn templates(&self) -> Result<Vec<TemplateRecord>> {
        self.all(TEMPLATES, template_record)
    }

    /// The values of blob `sha`, verified against it (a mismatch is [`StoreError::DataLoss`]
    /// naming the blob); `NotFound` when no blob has that sha256.
    pub fn blob(&self, sha: &str) -> Result<Vec<f64>> {
        self.guarded(|| {
            let Some((id, len)) = self.tx.open_table(BLOB_INDEX)?.get(sha)?.map(|v| v.value()) else {
                return Err(StoreError::NotFound(format!("series blob {sha}")));
            };
            read_blob(&self.tx.open_table(BLOB_CHUNKS)?, sha, id, len)
        })
    }

    /// A note set with [`Writer::put_note`].
    pub fn note(&self, key: &str) -> Result<Option<String>> {
        Ok(self.tx.open_table(META)?.get(key)?.map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    pub fn has_blob(&self, sha: &str) -> Result<bool> {
        self.guarded(|| Ok(self.tx.open_table(BLOB_INDEX)?.get(sha)?.is_some()))
    }

    pub fn series(&self, name: &str) -> Result<Option<SeriesRecord>> {
        self.guarded(|| self.tx.open_table(SERIES)?.get(name)?.map(|v| series_record(name, v.value())).transpose())
    }

    pub fn series_list(&self) -> Result<Vec<SeriesRecord>> {
        self.all(SERIES, series_record)
    }

    pub fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        self.guarded(|| self.tx.open_table(SESSIONS)?.get(id)?.map(|v| session_record(id, v.value())).transpose())
    }

    pub fn sessions(&self) -> Result<Vec<SessionRecord>> {
        self.all(SESSIONS, session_record)
    }

    pub fn variant(&self, session: &str, name: &str) -> Result<Option<VariantRecord>> {
        self.guarded(|| {
            self.tx
                .open_table(VARIANTS)?
                .get((session, name))?
                .map(|v| variant_record((session, name), v.value()))
                .transpose()
        })
    }

    pub fn variants(&self, session: &str) -> Result<Vec<VariantRecord>> {
        self.guarded(|| {
            let t = self.tx.open_table(VARIANTS)?;
            let mut out = Vec::new();
            for e in t.range((session, "")..)? {
                let (k, v) = e?;
                if k.value().0 != session {
                    break;
                }
                out.push(variant_record(k.value(), v.value())?);
            }
            Ok(out)
        })
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        self.guarded(|| self.tx.open_table(RUNS)?.get(id)?.map(|v| run_record(id, v.value())).transpose())
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        self.all(RUNS, run_record)
    }

    /// Counts of records per table, for diagnostics and tests.
    pub fn counts(&self) -> Result<BTreeMap<&'static str, u64>> {
        self.guarded(|| {
            let mut m = BTreeMap::new();
            m.insert("templates", self.tx.open_table(TEMPLATES)?.len()?);
            m.insert("series", self.tx.open_table(SERIES)?.len()?);
            m.insert("blobs", self.tx.open_table(BLOB_INDEX)?.len()?);
            m.insert("sessions", self.tx.open_table(SESSIONS)?.len()?);
            m.insert("variants", self.tx.open_table(VARIANTS)?.len()?);
            m.insert("runs", self.tx.open_table(RUNS)?.len()?);
            Ok(m)
        })
    }
}
