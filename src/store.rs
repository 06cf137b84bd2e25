//! The redb store (§10): templates, stored series, content-addressed series blobs, sessions,
//! variants and runs in one file, with a schema-version record.
//!
//! It knows bytes, keys and versions, not queries: the host decides what to store and applies
//! committed changes to salsa. Every write transaction commits with immediate durability, so a
//! write the caller saw succeed survives a crash.

pub mod tables;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
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
        }
    }
}

impl std::error::Error for StoreError {}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Storage(e.to_string())
            }
        }
    )*};
}
storage_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError,
    serde_json::Error,
    std::io::Error
);

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
    holder_file: Option<PathBuf>,
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

impl Store {
    /// Opens (or creates) the file. `role` names this process for others that find the file in
    /// use, e.g. "`flowtime serve` (pid 42); use `--server`".
    pub fn open(path: &Path, role: &str) -> Result<Store> {
        let shown = path.display().to_string();
        let existed = sys::exists(path);
        if existed {
            // Check the schema on a read-only open first, so a refused file is left untouched.
            Store::check_readonly(path)?;
        }
        let db = match redb::Database::builder().create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                let holder = sys::read_to_string(&holder_path(path)).unwrap_or_else(|_| "another process".into());
                return Err(StoreError::InUse { path: shown, holder: holder.trim().to_string() });
            }
            Err(e) => return Err(StoreError::Storage(format!("{shown}: {e}"))),
        };
        let mut store = Store { db, path: path.to_path_buf(), holder_file: None };
        store.check_or_init_schema(existed)?;
        let holder = holder_path(path);
        let _ = sys::write(&holder, role.as_bytes());
        store.holder_file = Some(holder);
        Ok(store)
    }

    fn check_readonly(path: &Path) -> Result<()> {
        let shown = path.display().to_string();
        let db = match redb::Database::builder().open_read_only(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                let holder = sys::read_to_string(&holder_path(path)).unwrap_or_else(|_| "another process".into());
                return Err(StoreError::InUse { path: shown, holder: holder.trim().to_string() });
            }
            // Files that need repair (e.g. after a crash) can only be checked by a writable open.
            Err(_) => return Ok(()),
        };
        let rtx = db.begin_read()?;
        let found = match rtx.open_table(META) {
            Ok(t) => t.get("schema_version")?.map(|v| decode_u64(v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let has_tables = rtx.list_tables()?.next().is_some();
        match found {
            Some(Some(SCHEMA_VERSION)) => Ok(()),
            None if !has_tables => Ok(()),
            Some(v) => {
                Err(StoreError::SchemaVersion { path: shown, found: v.map_or("unreadable".into(), |v| v.to_string()) })
            }
            None => Err(StoreError::SchemaVersion { path: shown, found: "missing".into() }),
        }
    }

    /// An in-memory store (tests and one-shot commands).
    pub fn in_memory() -> Result<Store> {
        let db = redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        let store = Store { db, path: PathBuf::from(":memory:"), holder_file: None };
        store.check_or_init_schema(false)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
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
                path: self.path.display().to_string(),
                found: v.map_or("unreadable".into(), |v| v.to_string()),
            }),
            None if has_tables || (existed && self.has_data()) => {
                Err(StoreError::SchemaVersion { path: self.path.display().to_string(), found: "missing".into() })
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
        let tx = self.db.begin_write()?;
        let mut w = Writer { tx: &tx };
        match f(&mut w) {
            Ok(v) => {
                tx.commit()?;
                Ok(v)
            }
            Err(e) => {
                tx.abort()?;
                Err(e)
            }
        }
    }

    /// A consistent read snapshot.
    pub fn read(&self) -> Result<Reader> {
        Ok(Reader { tx: self.db.begin_read()? })
    }

    /// Compacts the file (reclaims free pages).
    pub fn compact(&mut self) -> Result<()> {
        while self.db.compact()? {}
        Ok(())
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

fn parse<T: for<'de> Deserialize<'de>>(b: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| StoreError::Storage(format!("corrupt {what} record: {e}")))
}

/// Writes inside one transaction.
pub struct Writer<'a> {
    tx: &'a redb::WriteTransaction,
}

impl Writer<'_> {
    /// Stores a template; identical text again is a no-op (false), different text under the same
    /// `(id, version)` is `AlreadyExists`.
    pub fn put_template(&mut self, rec: &TemplateRecord) -> Result<bool> {
        let mut t = self.tx.open_table(TEMPLATES)?;
        if let Some(old) = t.get((rec.id.as_str(), rec.version.as_str()))? {
            let old: TemplateRecord = parse(old.value(), "template")?;
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
    pub fn put_blob(&mut self, values: &[f64]) -> Result<String> {
        let sha = values_sha(values);
        let mut index = self.tx.open_table(BLOB_INDEX)?;
        if index.get(sha.as_str())?.is_some() {
            return Ok(sha);
        }
        let mut meta = self.tx.open_table(META)?;
        let id = meta.get("next_blob")?.and_then(|v| decode_u64(v.value())).unwrap_or(0);
        meta.insert("next_blob", &(id + 1).to_le_bytes()[..])?;
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
        self.tx.open_table(SESSIONS)?.get(id)?.map(|v| parse(v.value(), "session")).transpose()
    }
}

/// Reads from one consistent snapshot.
pub struct Reader {
    tx: redb::ReadTransaction,
}

impl Reader {
    pub fn template(&self, id: &str, version: &str) -> Result<Option<TemplateRecord>> {
        self.tx.open_table(TEMPLATES)?.get((id, version))?.map(|v| parse(v.value(), "template")).transpose()
    }

    pub fn templates(&self) -> Result<Vec<TemplateRecord>> {
        let t = self.tx.open_table(TEMPLATES)?;
        t.iter()?.map(|e| parse(e?.1.value(), "template")).collect()
    }

    pub fn blob(&self, sha: &str) -> Result<Vec<f64>> {
        let Some((id, len)) = self.tx.open_table(BLOB_INDEX)?.get(sha)?.map(|v| v.value()) else {
            return Err(StoreError::NotFound(format!("series blob {sha}")));
        };
        let chunks = self.tx.open_table(BLOB_CHUNKS)?;
        let mut out = Vec::with_capacity(len as usize);
        for e in chunks.range((id, 0)..=(id, u32::MAX))? {
            let (_, v) = e?;
            for b in v.value().chunks_exact(8) {
                out.push(f64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
            }
        }
        if out.len() as u64 != len {
            return Err(StoreError::Storage(format!("series blob {sha} has {} values, expected {len}", out.len())));
        }
        Ok(out)
    }

    /// A note set with [`Writer::put_note`].
    pub fn note(&self, key: &str) -> Result<Option<String>> {
        Ok(self.tx.open_table(META)?.get(key)?.map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    pub fn has_blob(&self, sha: &str) -> Result<bool> {
        Ok(self.tx.open_table(BLOB_INDEX)?.get(sha)?.is_some())
    }

    pub fn series(&self, name: &str) -> Result<Option<SeriesRecord>> {
        self.tx.open_table(SERIES)?.get(name)?.map(|v| parse(v.value(), "series")).transpose()
    }

    pub fn series_list(&self) -> Result<Vec<SeriesRecord>> {
        self.tx.open_table(SERIES)?.iter()?.map(|e| parse(e?.1.value(), "series")).collect()
    }

    pub fn session(&self, id: &str) -> Result<Option<SessionRecord>> {
        self.tx.open_table(SESSIONS)?.get(id)?.map(|v| parse(v.value(), "session")).transpose()
    }

    pub fn sessions(&self) -> Result<Vec<SessionRecord>> {
        self.tx.open_table(SESSIONS)?.iter()?.map(|e| parse(e?.1.value(), "session")).collect()
    }

    pub fn variant(&self, session: &str, name: &str) -> Result<Option<VariantRecord>> {
        self.tx.open_table(VARIANTS)?.get((session, name))?.map(|v| parse(v.value(), "variant")).transpose()
    }

    pub fn variants(&self, session: &str) -> Result<Vec<VariantRecord>> {
        let t = self.tx.open_table(VARIANTS)?;
        let mut out = Vec::new();
        for e in t.range((session, "")..)? {
            let (k, v) = e?;
            if k.value().0 != session {
                break;
            }
            out.push(parse(v.value(), "variant")?);
        }
        Ok(out)
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        self.tx.open_table(RUNS)?.get(id)?.map(|v| parse(v.value(), "run")).transpose()
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        self.tx.open_table(RUNS)?.iter()?.map(|e| parse(e?.1.value(), "run")).collect()
    }

    /// Counts of records per table, for diagnostics and tests.
    pub fn counts(&self) -> Result<BTreeMap<&'static str, u64>> {
        let mut m = BTreeMap::new();
        m.insert("templates", self.tx.open_table(TEMPLATES)?.len()?);
        m.insert("series", self.tx.open_table(SERIES)?.len()?);
        m.insert("blobs", self.tx.open_table(BLOB_INDEX)?.len()?);
        m.insert("sessions", self.tx.open_table(SESSIONS)?.len()?);
        m.insert("variants", self.tx.open_table(VARIANTS)?.len()?);
        m.insert("runs", self.tx.open_table(RUNS)?.len()?);
        Ok(m)
    }
}
