//! The result cache: unit results by content key (`engine::cache`) in an object store — a
//! directory next to the database file by default, or any `--cache URL` — so results outlive the
//! process and are shared by every session, variant and server that computes the same unit.
//!
//! Layout: one object per entry, `<prefix>/<version tag>/<first two hex digits>/<key hex>`, where
//! the version tag is a digest of [`ENGINE_VERSION`]. An entry is self-verifying:
//!
//! ```text
//! "FTRESULT"  u16 version length, version (UTF-8)  32-byte key  u32 outputs  u32 bins
//! outputs × bins little-endian f64  16-byte XXH3-128 of everything before it
//! ```
//!
//! A read serves an entry only when its checksum, engine version, key and shape all match;
//! anything else is a miss (counted as rejected) and the unit is recomputed, and the recomputed
//! result overwrites the entry. The checksum detects damage; it need not resist forgery (the key
//! is sha256, and anyone who can write the store could write a well-formed wrong entry anyway),
//! and XXH3 checks ~20 GB/s where sha256 runs ~2 GB/s: a warm restart reads every series.
//!
//! Writes never wait, and a burst of changes writes each unit once: `put` keeps the outputs
//! (reference-counted, shared with the memo) in a pending map by unit slot, where a newer offer
//! for the same unit replaces (and releases) the older one; `get` consults it first, and a
//! background thread writes what is pending every [`TICK`], eight objects at a time. So a slider
//! dragged through 400 values of one parameter writes the unit's last value, not 400 entries, and
//! a superseded result's memory is released at once for the next change to reuse. (Writing every
//! offered result made a leaf change cost 1.46× on 2 cores, `cargo bench --bench db`: file
//! creation on the writer's core and fresh pages for each change's outputs.) Offering never wakes
//! the writer, so a leaf change makes no system call for it. Dropping the cache (with the host),
//! a flush and `db gc` write what is pending first.
//!
//! The cache is bounded in bytes, least recently used first, with no per-entry state in memory
//! (so a long-running server's memory does not grow with the cache): an entry's modification
//! time is its last use, because a hit on an entry last written more than [`REFRESH_SECS`] ago
//! writes it again; with the first batch a process writes, and whenever an eighth of the bound
//! has been written since the last sweep, the writer lists this version's entries and deletes the oldest until
//! the total fits. Every server sharing the store sweeps the same way, so the bound holds for the
//! store, not per process. `flowtime db gc` sweeps too and removes entries of other engine
//! versions. Deleting the cache at any time changes no answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use object_store::ObjectStore;
use object_store::path::Path as ObjPath;

use crate::engine::cache::{ContentKey, ENGINE_VERSION, ResultCache, key_hex};
use crate::objstore::Location;

/// Default bound of the cache in bytes (entries' encoded size).
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// A hit on an entry older than this (seconds since it was written) writes it again, so that
/// modification times order entries by last use (to this granularity).
pub const REFRESH_SECS: i64 = 600;

const MAGIC: &[u8; 8] = b"FTRESULT";

/// Where results are cached and how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// An object-store URL (`file:///dir`, `s3://bucket/prefix`, …).
    pub url: String,
    pub max_bytes: u64,
}

impl CacheConfig {
    /// The default cache of a database file: the directory `<file>.results` next to it.
    pub fn beside(db: &std::path::Path) -> Option<CacheConfig> {
        let abs = if db.is_absolute() { db.to_path_buf() } else { crate::sys::current_dir().ok()?.join(db) };
        let mut dir = abs.into_os_string();
        dir.push(".results");
        let url = url::Url::from_directory_path(std::path::PathBuf::from(dir)).ok()?;
        Some(CacheConfig { url: url.to_string(), max_bytes: DEFAULT_MAX_BYTES })
    }
}

/// Counters since the cache opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries found but not served: damaged, foreign engine version, wrong key or shape.
    pub rejected: u64,
    pub written: u64,
    pub evicted: u64,
    /// Entries fetched ahead of an evaluation that reached a scenario's results in the cache
    /// (`engine::db::evaluate_in_order`); they are among the hits.
    pub prefetched: u64,
    /// Encoded bytes of this version's entries at the last sweep.
    pub bytes: u64,
}

/// The directory name of this engine version's entries.
fn version_tag() -> String {
    let h = xxhash_rust::xxh3::xxh3_64(ENGINE_VERSION.as_bytes());
    format!("v-{h:016x}")
}

/// Encodes an entry (see the module doc). `version` is [`ENGINE_VERSION`] except in tests that
/// make foreign entries.
pub fn encode_entry(version: &str, key: &ContentKey, outputs: &[Arc<[f64]>]) -> Vec<u8> {
    let bins = outputs.first().map_or(0, |o| o.len());
    let mut b = Vec::with_capacity(64 + version.len() + outputs.len() * bins * 8);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&(version.len() as u16).to_le_bytes());
    b.extend_from_slice(version.as_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(&(outputs.len() as u32).to_le_bytes());
    b.extend_from_slice(&(bins as u32).to_le_bytes());
    for o in outputs {
        for v in o.iter() {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    let sum = xxhash_rust::xxh3::xxh3_128(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

/// Why an entry was not served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    Checksum,
    Version(String),
    Key,
    Shape,
}

/// Decodes and verifies an entry for `key` with `n` outputs of `bins` values.
pub fn decode_entry(b: &[u8], key: &ContentKey, n: usize, bins: usize) -> Result<Vec<Arc<[f64]>>, Rejected> {
    if b.len() < 16 + MAGIC.len() + 2 {
        return Err(Rejected::Checksum);
    }
    let (body, sum) = b.split_at(b.len() - 16);
    if xxhash_rust::xxh3::xxh3_128(body).to_le_bytes() != sum || &body[..8] != MAGIC {
        return Err(Rejected::Checksum);
    }
    let vlen = u16::from_le_bytes([body[8], body[9]]) as usize;
    let rest = &body[10..];
    if rest.len() < vlen + 32 + 8 {
        return Err(Rejected::Shape);
    }
    let version = &rest[..vlen];
    if version != ENGINE_VERSION.as_bytes() {
        return Err(Rejected::Version(String::from_utf8_lossy(version).into_owned()));
    }
    let rest = &rest[vlen..];
    if &rest[..32] != key {
        return Err(Rejected::Key);
    }
    let got_n = u32::from_le_bytes(rest[32..36].try_into().map_err(|_| Rejected::Shape)?) as usize;
    let got_bins = u32::from_le_bytes(rest[36..40].try_into().map_err(|_| Rejected::Shape)?) as usize;
    let data = &rest[40..];
    if got_n != n || got_bins != bins || data.len() != n * bins * 8 {
        return Err(Rejected::Shape);
    }
    Ok(data
        .chunks_exact(bins.max(1) * 8)
        .take(n)
        .map(|c| c.chunks_exact(8).map(|v| f64::from_le_bytes(v.try_into().unwrap_or([0; 8]))).collect())
        .collect())
}

/// The slot of an offer that no unit made (a hit written again to refresh its age).
const NO_SLOT: u64 = u64::MAX;

/// A pending offer: the slot that made it and the outputs.
type Offer = (u64, Vec<Arc<[f64]>>);

/// Offered results not yet written: by content key, at most one per unit slot.
#[derive(Default)]
struct Pending {
    /// The offering slot and the outputs, by key.
    by_key: HashMap<ContentKey, Offer>,
    by_slot: HashMap<u64, ContentKey>,
}

impl Pending {
    /// Offers `outputs` under `key` for `slot`, releasing the slot's earlier offer.
    fn insert(&mut self, slot: u64, key: ContentKey, outputs: Vec<Arc<[f64]>>) {
        if slot == NO_SLOT {
            self.by_key.entry(key).or_insert((slot, outputs));
            return;
        }
        if let Some(old) = self.by_slot.insert(slot, key)
            && old != key
            && self.by_key.get(&old).is_some_and(|e| e.0 == slot)
        {
            self.by_key.remove(&old);
        }
        if let Some((prev, _)) = self.by_key.insert(key, (slot, outputs))
            && prev != slot
            && self.by_slot.get(&prev) == Some(&key)
        {
            self.by_slot.remove(&prev);
        }
    }

    fn get(&self, key: &ContentKey) -> Option<&[Arc<[f64]>]> {
        self.by_key.get(key).map(|e| &e.1[..])
    }

    fn remove(&mut self, key: &ContentKey) {
        if let Some((slot, _)) = self.by_key.remove(key)
            && self.by_slot.get(&slot) == Some(key)
        {
            self.by_slot.remove(&slot);
        }
    }

    fn keys(&self) -> impl Iterator<Item = &ContentKey> {
        self.by_key.keys()
    }

    fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

enum Msg {
    Flush(SyncSender<()>),
}

/// How often the writer looks at the pending map (offering a result never wakes it: a leaf
/// change should cost no system call).
pub const TICK: std::time::Duration = std::time::Duration::from_millis(50);

struct Shared {
    loc: Location,
    dir: ObjPath,
    max_bytes: u64,
    /// Offered results not yet written (see the module doc).
    pending: Mutex<Pending>,
    /// Bytes written since the last sweep.
    since_sweep: AtomicU64,
    /// The local directory of a `file://` store, read directly (a failed `get` through the object
    /// store costs ~19 µs, a fifth of a leaf change).
    local_dir: Option<std::path::PathBuf>,
    /// This version's bytes at the last sweep.
    swept_bytes: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
    written: AtomicU64,
    evicted: AtomicU64,
    prefetched: AtomicU64,
}

impl Shared {
    fn path(&self, key: &ContentKey) -> ObjPath {
        let hex = key_hex(key);
        self.dir.child(&hex[..2]).child(hex.as_str())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the pending entries named in `keys`, 256 at a time, then evicts when due.
    fn write_batch(&self, keys: Vec<ContentKey>) {
        for chunk in keys.chunks(256) {
            self.write_chunk(chunk);
        }
    }

    fn write_chunk(&self, keys: &[ContentKey]) {
        // Only reference counts are copied under the lock: `put` and `get` on the evaluation's
        // path never wait for an encoding.
        let offered: Vec<(ContentKey, Vec<Arc<[f64]>>)> = {
            let pending = self.pending();
            keys.iter().filter_map(|k| pending.get(k).map(|o| (*k, o.to_vec()))).collect()
        };
        let jobs: Vec<(ContentKey, ObjPath, Vec<u8>)> =
            offered.iter().map(|(k, o)| (*k, self.path(k), encode_entry(ENGINE_VERSION, k, o))).collect();
        drop(offered);
        let store = self.loc.store.clone();
        let done: Vec<(ContentKey, u64)> = self.loc.run(async move {
            use futures::StreamExt;
            futures::stream::iter(jobs.into_iter().map(|(k, path, bytes)| {
                let store = store.clone();
                async move {
                    let n = bytes.len() as u64;
                    store.put(&path, bytes.into()).await.ok().map(|_| (k, n))
                }
            }))
            .buffer_unordered(8)
            .filter_map(|r| async move { r })
            .collect()
            .await
        });
        {
            let mut pending = self.pending();
            for k in keys {
                pending.remove(k);
            }
        }
        self.written.fetch_add(done.len() as u64, Ordering::Relaxed);
        let bytes: u64 = done.iter().map(|(_, n)| n).sum();
        if self.since_sweep.fetch_add(bytes, Ordering::Relaxed) + bytes >= self.max_bytes / 8 {
            // The writer's sweep is best effort: the next one retries.
            let _ = self.sweep();
        }
    }

    /// Lists this version's entries and deletes the least recently used until they fit the
    /// bound; returns (entries, bytes) removed, or why the store could not be listed.
    fn sweep(&self) -> Result<(u64, u64), String> {
        self.since_sweep.store(0, Ordering::Relaxed);
        let store = self.loc.store.clone();
        let dir = self.dir.clone();
        let url = self.loc.url.clone();
        let mut listed: Vec<(ObjPath, u64, i64)> = self.loc.run(async move {
            use futures::TryStreamExt;
            store
                .list(Some(&dir))
                .map_ok(|m| (m.location, m.size, m.last_modified.timestamp_nanos_opt().unwrap_or(0)))
                .try_collect()
                .await
                .map_err(|e| format!("cannot list the result cache at {url}: {e}"))
        })?;
        let listed_bytes: u64 = listed.iter().map(|e| e.1).sum();
        let (mut left, mut dead) = (listed_bytes, Vec::new());
        if left > self.max_bytes {
            listed.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
            for (path, size, _) in listed {
                if left <= self.max_bytes {
                    break;
                }
                left -= size;
                dead.push((path, size));
            }
        }
        let removed = self.delete(dead);
        self.swept_bytes.store(listed_bytes - removed.1, Ordering::Relaxed);
        self.evicted.fetch_add(removed.0, Ordering::Relaxed);
        Ok(removed)
    }

    /// Deletes `entries` (path, size), eight at a time; returns the (entries, bytes) actually
    /// removed (one already gone counts: another server swept it).
    fn delete(&self, entries: Vec<(ObjPath, u64)>) -> (u64, u64) {
        if entries.is_empty() {
            return (0, 0);
        }
        let store = self.loc.store.clone();
        let gone: Vec<u64> = self.loc.run(async move {
            use futures::StreamExt;
            futures::stream::iter(entries.into_iter().map(|(p, size)| {
                let store = store.clone();
                async move {
                    match store.delete(&p).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Some(size),
                        Err(_) => None,
                    }
                }
            }))
            .buffer_unordered(8)
            .filter_map(|r| async move { r })
            .collect()
            .await
        });
        (gone.len() as u64, gone.iter().sum())
    }

    /// Writes every pending entry.
    fn write_pending(&self) {
        let keys: Vec<ContentKey> = self.pending().keys().copied().collect();
        self.write_batch(keys);
    }

    /// The writer: every [`TICK`], writes what is pending; at once on a flush and when the cache
    /// closes.
    fn run(self: Arc<Self>, rx: Receiver<Msg>) {
        use std::sync::mpsc::RecvTimeoutError;
        loop {
            match rx.recv_timeout(TICK) {
                Ok(Msg::Flush(ack)) => {
                    self.write_pending();
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => {
                    if !self.pending().is_empty() {
                        self.write_pending();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.write_pending();
                    return;
                }
            }
        }
    }
}

/// The result cache of a host (see the module doc).
pub struct ObjectCache {
    shared: Arc<Shared>,
    tx: Mutex<Option<SyncSender<Msg>>>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectCache({})", self.shared.loc.url)
    }
}

impl ObjectCache {
    /// Opens the cache at `cfg.url` and starts its writer.
    pub fn open(cfg: &CacheConfig) -> Result<ObjectCache, String> {
        let loc = Location::parse(&cfg.url)?;
        let dir = loc.child(&version_tag());
        let local_dir = loc.local_dir.as_ref().map(|d| d.join(version_tag()));
        let shared = Arc::new(Shared {
            loc,
            dir,
            max_bytes: cfg.max_bytes,
            pending: Default::default(),
            // The first batch written sweeps (a process that only reads never lists the store).
            since_sweep: AtomicU64::new(cfg.max_bytes / 8),
            local_dir,
            swept_bytes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            written: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            prefetched: AtomicU64::new(0),
        });
        let (tx, rx) = std::sync::mpsc::sync_channel(1024);
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("flowtime-results".into())
            .spawn(move || s.run(rx))
            .map_err(|e| format!("cannot start the result cache's writer: {e}"))?;
        Ok(ObjectCache { shared, tx: Mutex::new(Some(tx)), worker: Mutex::new(Some(worker)) })
    }

    pub fn url(&self) -> &str {
        &self.shared.loc.url
    }

    /// Waits until every result offered so far is written.
    pub fn flush(&self) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(tx) = tx {
            let (ack, done) = std::sync::mpsc::sync_channel(1);
            if tx.send(Msg::Flush(ack)).is_ok() {
                let _ = done.recv();
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        let s = &self.shared;
        CacheStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            evicted: s.evicted.load(Ordering::Relaxed),
            prefetched: s.prefetched.load(Ordering::Relaxed),
            bytes: s.swept_bytes.load(Ordering::Relaxed),
        }
    }

    /// `flowtime db gc`: writes what is pending, removes every entry of another engine version,
    /// and evicts down to the bound. Returns (entries removed, bytes removed).
    pub fn collect(&self) -> Result<(u64, u64), String> {
        self.flush();
        let s = &self.shared;
        let store: Arc<dyn ObjectStore> = s.loc.store.clone();
        let prefix = s.loc.prefix.clone();
        let ours = version_tag();
        let url = s.loc.url.clone();
        let listed: Vec<(ObjPath, u64)> = s.loc.run(async move {
            use futures::TryStreamExt;
            let depth = prefix.parts().count();
            store
                .list(Some(&prefix))
                .try_filter(|m| {
                    let tag = m.location.parts().nth(depth).map(|p| p.as_ref().to_string()).unwrap_or_default();
                    std::future::ready(tag.starts_with("v-") && tag != ours)
                })
                .map_ok(|m| (m.location, m.size))
                .try_collect()
                .await
                .map_err(|e| format!("cannot list the result cache at {url}: {e}"))
        })?;
        let (n, bytes) = s.delete(listed);
        let (swept, swept_bytes) = s.sweep()?;
        let (n, bytes) = (n + swept, bytes + swept_bytes);
        Ok((n, bytes))
    }
}

impl ObjectCache {
    /// The pending outputs offered under `key` when their shape matches (counted as a hit), else
    /// what `read` finds.
    fn get_pending_or(
        &self,
        key: &ContentKey,
        n: usize,
        bins: usize,
        read: impl FnOnce() -> Option<Vec<Arc<[f64]>>>,
    ) -> Option<Vec<Arc<[f64]>>> {
        let s = &self.shared;
        let pending = s.pending().get(key).map(<[Arc<[f64]>]>::to_vec);
        if let Some(o) = pending
            && o.len() == n
            && o.iter().all(|v| v.len() == bins)
        {
            s.hits.fetch_add(1, Ordering::Relaxed);
            return Some(o);
        }
        read()
    }

    /// Reads `key`'s entry from a local store's directory `dir` directly, into a buffer reused
    /// per thread: one open (a miss is its `ENOENT`) and one read, instead of a `stat`, then the
    /// object store's open, metadata and fresh buffer.
    fn get_local(&self, dir: &std::path::Path, key: &ContentKey, n: usize, bins: usize) -> Option<Vec<Arc<[f64]>>> {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let hex = key_hex(key);
        let path = dir.join(&hex[..2]).join(&hex);
        BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            let written = crate::sys::read_with_mtime(&path, &mut buf).ok().flatten();
            let out = self.serve(key, written.map(|t| (&buf[..], t)), n, bins);
            if buf.capacity() > 16 << 20 {
                *buf = Vec::new();
            }
            out
        })
    }

    /// The entries of `wanted`, in order (see `ResultCache::get_many`).
    fn fetch_many(&self, wanted: &[(ContentKey, usize, usize)]) -> Vec<Option<Vec<Arc<[f64]>>>> {
        let s = &self.shared;
        match &s.local_dir {
            // Local files: read on every core (the copy out of the page cache is the cost).
            Some(d) => {
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
                let per = wanted.len().div_ceil(threads).max(1);
                std::thread::scope(|scope| {
                    let parts: Vec<_> = wanted
                        .chunks(per)
                        .map(|part| {
                            scope.spawn(move || {
                                part.iter()
                                    .map(|(k, n, bins)| {
                                        self.get_pending_or(k, *n, *bins, || self.get_local(d, k, *n, *bins))
                                    })
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    // A reader that panicked found nothing: its part stays in place, as misses.
                    parts
                        .into_iter()
                        .zip(wanted.chunks(per))
                        .flat_map(|(h, part)| h.join().unwrap_or_else(|_| vec![None; part.len()]))
                        .collect()
                })
            }
            // A network store: up to 32 requests in flight (a GET's latency is the cost).
            None => {
                let store = s.loc.store.clone();
                let paths: Vec<ObjPath> = wanted.iter().map(|(k, _, _)| s.path(k)).collect();
                let fetched: Vec<Option<(bytes::Bytes, i64)>> = s.loc.run(async move {
                    use futures::StreamExt;
                    futures::stream::iter(paths.into_iter().map(|path| {
                        let store = store.clone();
                        async move { crate::objstore::fetch_with_time(&*store, &path).await.ok().flatten() }
                    }))
                    .buffered(32)
                    .collect()
                    .await
                });
                wanted
                    .iter()
                    .zip(fetched)
                    .map(|((k, n, bins), f)| {
                        self.get_pending_or(k, *n, *bins, || {
                            self.serve(k, f.as_ref().map(|(b, t)| (&b[..], *t)), *n, *bins)
                        })
                    })
                    .collect()
            }
        }
    }

    /// Serves an entry read for `key` (bytes and the time it was written), or counts the miss
    /// (None) or the rejection (a damaged, foreign or misplaced entry).
    fn serve(&self, key: &ContentKey, found: Option<(&[u8], i64)>, n: usize, bins: usize) -> Option<Vec<Arc<[f64]>>> {
        let s = &self.shared;
        let Some((bytes, written)) = found else {
            s.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        match decode_entry(bytes, key, n, bins) {
            Ok(o) => {
                s.hits.fetch_add(1, Ordering::Relaxed);
                if crate::sys::unix_secs() - written > REFRESH_SECS {
                    // Used now: written again, so eviction sees it as recent.
                    s.pending().insert(NO_SLOT, *key, o.clone());
                }
                Some(o)
            }
            Err(_) => {
                s.rejected.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

impl ResultCache for ObjectCache {
    fn get(&self, key: &ContentKey, n_outputs: usize, bins: usize) -> Option<Vec<Arc<[f64]>>> {
        let s = &self.shared;
        self.get_pending_or(key, n_outputs, bins, || match &s.local_dir {
            Some(d) => self.get_local(d, key, n_outputs, bins),
            None => {
                let found = crate::objstore::get_with_time(&s.loc, &s.path(key)).ok().flatten();
                self.serve(key, found.as_ref().map(|(b, t)| (&b[..], *t)), n_outputs, bins)
            }
        })
    }

    fn get_many(&self, wanted: &[(ContentKey, usize, usize)]) -> Vec<Option<Vec<Arc<[f64]>>>> {
        let s = &self.shared;
        let found = self.fetch_many(wanted);
        s.prefetched.fetch_add(found.iter().filter(|f| f.is_some()).count() as u64, Ordering::Relaxed);
        found
    }

    fn put(&self, slot: u64, key: &ContentKey, outputs: &[Arc<[f64]>]) {
        self.shared.pending().insert(slot, *key, outputs.to_vec());
    }
}

impl Drop for ObjectCache {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and stop.
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
    }
}
