//! Looking after the store: `db check` (redb's integrity check and the verification of every
//! record and blob), `db compact`, and blob garbage collection, on demand and automatically after
//! writes that may have dropped the last reference to a blob.

use crate::host::{Host, HostError};
use crate::store::{CheckJob, CheckReport, GcReport};

impl Host {
    /// Begins checking the store (see [`crate::store::check_file`]): copies the file now, while
    /// the caller holds the host; [`CheckJob::finish`] checks the copy without it.
    pub fn begin_check(&self) -> Result<CheckJob, HostError> {
        Ok(self.store.begin_check()?)
    }

    /// Checks the store ([`Host::begin_check`] and finish in one).
    pub fn check_store(&self) -> Result<CheckReport, HostError> {
        Ok(self.begin_check()?.finish())
    }

    /// Compacts the file; returns its size in bytes before and after.
    pub fn compact_store(&mut self) -> Result<(u64, u64), HostError> {
        Ok(self.store.compact()?)
    }

    /// Removes every blob no record references, and forgets the cells of removed blobs (a later
    /// `snapshot:` reference to one must find it gone, not in memory).
    /// The result cache is collected too (its other engine versions' entries and the sweep to
    /// its bound): only here, on request, never by [`Host::collect_if_due`].
    pub fn collect_garbage(&mut self) -> Result<GcReport, HostError> {
        let mut report = self.collect_blobs()?;
        if let Some(c) = &self.results {
            let (n, bytes) = c.collect().map_err(HostError::Storage)?;
            report.cache_entries_removed = n;
            report.cache_bytes_removed = bytes;
        }
        Ok(report)
    }

    /// The store's part of a collection: unreferenced blobs, and the cells of removed ones.
    fn collect_blobs(&mut self) -> Result<GcReport, HostError> {
        let report = self.store.collect_garbage()?;
        if report.blobs_removed > 0 {
            // No open scenario reads a removed blob (its records would have kept it): its cell
            // goes back to the pool.
            let r = self.store.read()?;
            let mut kept = std::collections::BTreeMap::new();
            let mut dead = Vec::new();
            for (key, cell) in std::mem::take(&mut self.blobs) {
                let sha = key.split(':').next().unwrap_or(&key);
                if r.has_blob(sha)? {
                    kept.insert(key, cell);
                } else {
                    dead.push(cell);
                }
            }
            drop(r);
            self.blobs = kept;
            for cell in dead {
                self.release_series_cell(cell);
            }
        }
        Ok(report)
    }

    /// Collects garbage when enough blob bytes were written since the last collection (see
    /// `store::gc`). Called after a write that may have dropped the last reference to a blob; the
    /// write has committed by then, so a failed collection is left for the next write (or
    /// `db check`) to report. The result cache is left to its own writer's sweep: listing and
    /// cleaning it does not belong on a write's path.
    pub(crate) fn collect_if_due(&mut self) {
        if let Ok(true) = self.store.garbage_due() {
            let _ = self.collect_blobs();
        }
    }
}
