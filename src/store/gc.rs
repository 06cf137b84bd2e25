//! Blob references and their garbage collection (mark and sweep).
//!
//! A blob is live while a record references it. [`references`] is the one list of owner kinds —
//! stored series (their values), sessions and variants (pinned file inputs, const-node overrides,
//! `snapshot:` parameter values) — and collection and `db check` both follow it; a new kind of
//! owner adds its table there. (The result cache is not in the store: it is an object store of
//! its own, `host::cache`, collected by its writer's sweep and `flowtime db gc`.)
//!
//! Collection marks every referenced blob and removes the others (index entry and chunks) in one
//! write transaction, so it can never meet a half-written record. It refuses to run when a record
//! cannot be read (a damaged record might hold the only reference to a blob). The host runs it
//! when `flowtime db gc` (`AdminService.CollectGarbage`) asks, and on its own after a write once
//! more blob bytes were written since the last collection than were live after it (and at least
//! [`AUTO_GC_MIN_BYTES`], 1 MiB): garbage stays below about the live bytes, at a cost per written byte
//! that does not grow with the database. Only a blob write can make a collection due, so the
//! store reads the counters (`Store::garbage_due`) only after a committed write stored a blob,
//! or once after it opens, never on the path of every other change.

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableTable, ReadableTableMetadata};

use super::tables::{BLOB_CHUNKS, BLOB_INDEX, META, SERIES, SESSIONS, VARIANTS};
use super::{Reader, Result, SeriesRecord, SessionRecord, VariantRecord, Writer};
use super::{decode_u64, series_record, session_record, variant_record};

/// `meta` key: blob bytes written since the last collection (u64 LE).
pub(super) const WRITTEN: &str = "blob_bytes_written";
/// `meta` key: blob bytes live after the last collection (u64 LE).
pub(super) const LIVE: &str = "blob_bytes_live";
/// Automatic collection never runs before this many blob bytes were written since the last one.
pub const AUTO_GC_MIN_BYTES: u64 = 1 << 20;

/// What a collection did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: u64,
    /// Raw value bytes of the removed blobs (8 per value).
    pub bytes_removed: u64,
    pub blobs_live: u64,
    pub bytes_live: u64,
    /// Result-cache entries removed (other engine versions, over the bound) and their bytes;
    /// filled by the host, which owns the cache.
    pub cache_entries_removed: u64,
    pub cache_bytes_removed: u64,
}

impl SeriesRecord {
    /// The blobs this record references.
    pub fn blob_refs(&self) -> Vec<&str> {
        vec![self.blob.as_str()]
    }
}

/// `snapshot:<sha>` parameter values reference blobs.
fn snapshot_refs(params: &BTreeMap<String, serde_json::Value>) -> impl Iterator<Item = &str> {
    params.values().filter_map(|v| v.as_str()?.strip_prefix("snapshot:"))
}

impl SessionRecord {
    /// The blobs this record references: pinned inputs, overrides, `snapshot:` parameters.
    pub fn blob_refs(&self) -> Vec<&str> {
        let pins = self.inputs.values().map(|p| p.sha256.as_str());
        pins.chain(self.overrides.values().map(String::as_str)).chain(snapshot_refs(&self.params)).collect()
    }
}

impl VariantRecord {
    /// The blobs this record references: pinned inputs, overrides, `snapshot:` parameters.
    pub fn blob_refs(&self) -> Vec<&str> {
        let pins = self.inputs.values().map(|p| p.sha256.as_str());
        pins.chain(self.overrides.values().map(String::as_str)).chain(snapshot_refs(&self.params)).collect()
    }
}

/// Every blob reference: sha256 → its owners (`stored series `x``, `session `s1``, `variant
/// `s1/v``), read from the tables of every owner kind. A record that cannot be read is an error.
pub(super) fn references(
    series: &impl ReadableTable<&'static str, &'static [u8]>,
    sessions: &impl ReadableTable<&'static str, &'static [u8]>,
    variants: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |owner: String, shas: Vec<&str>| {
        for sha in shas.into_iter().collect::<BTreeSet<_>>() {
            out.entry(sha.to_string()).or_default().push(owner.clone());
        }
    };
    for e in series.iter()? {
        let (k, v) = e?;
        let rec = series_record(k.value(), v.value())?;
        add(format!("stored series `{}`", rec.name), rec.blob_refs());
    }
    for e in sessions.iter()? {
        let (k, v) = e?;
        let rec = session_record(k.value(), v.value())?;
        add(format!("session `{}`", rec.id), rec.blob_refs());
    }
    for e in variants.iter()? {
        let (k, v) = e?;
        let rec = variant_record(k.value(), v.value())?;
        add(format!("variant `{}/{}`", rec.session, rec.name), rec.blob_refs());
    }
    Ok(out)
}

/// Whether an automatic collection is due (see the module doc).
pub(super) fn due(tx: &redb::ReadTransaction) -> Result<bool> {
    let meta = tx.open_table(META)?;
    let get = |k: &str| -> Result<u64> { Ok(meta.get(k)?.and_then(|v| decode_u64(v.value())).unwrap_or(0)) };
    let (written, live) = (get(WRITTEN)?, get(LIVE)?);
    Ok(written >= AUTO_GC_MIN_BYTES && written > live)
}

impl Reader {
    /// Every blob reference (sha256 → owners); see [`references`].
    pub fn blob_references(&self) -> Result<BTreeMap<String, Vec<String>>> {
        self.guarded(|| {
            references(&self.tx.open_table(SERIES)?, &self.tx.open_table(SESSIONS)?, &self.tx.open_table(VARIANTS)?)
        })
    }
}

impl Writer<'_> {
    /// Removes every blob no record references, in this transaction.
    pub fn collect_garbage(&mut self) -> Result<GcReport> {
        let live =
            references(&self.tx.open_table(SERIES)?, &self.tx.open_table(SESSIONS)?, &self.tx.open_table(VARIANTS)?)?;
        let mut index = self.tx.open_table(BLOB_INDEX)?;
        let mut report = GcReport::default();
        let mut dead = Vec::new();
        for e in index.iter()? {
            let (k, v) = e?;
            let (id, len) = v.value();
            if live.contains_key(k.value()) {
                report.blobs_live += 1;
                report.bytes_live += len * 8;
            } else {
                report.blobs_removed += 1;
                report.bytes_removed += len * 8;
                dead.push((k.value().to_string(), id));
            }
        }
        let mut chunks = self.tx.open_table(BLOB_CHUNKS)?;
        for (sha, id) in &dead {
            index.remove(sha.as_str())?;
            let keys: Vec<u32> = chunks
                .range((*id, 0)..=(*id, u32::MAX))?
                .map(|e| e.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()?;
            for c in keys {
                chunks.remove((*id, c))?;
            }
        }
        debug_assert_eq!(index.len()?, report.blobs_live);
        let mut meta = self.tx.open_table(META)?;
        meta.insert(WRITTEN, &0u64.to_le_bytes()[..])?;
        meta.insert(LIVE, &report.bytes_live.to_le_bytes()[..])?;
        Ok(report)
    }
}
