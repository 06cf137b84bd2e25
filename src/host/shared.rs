//! A host shared between threads: one writer at a time, readers on snapshots.
//!
//! A reader takes a snapshot (a salsa database clone and the session map) under the lock,
//! releases the lock, and evaluates. A writer takes the lock and changes inputs; salsa cancels
//! every in-flight read on a snapshot (it unwinds with `salsa::Cancelled` at its next query) and
//! waits until the snapshots are dropped, so no reader ever sees a half-applied change. A
//! cancelled read is retried on a fresh snapshot.

use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, MutexGuard};

use crate::host::{Host, HostError, View};

/// Why a read failed.
#[derive(Debug)]
pub enum ReadError {
    Host(HostError),
    /// Cancelled by concurrent writes on every attempt; retryable.
    Cancelled,
}

impl From<HostError> for ReadError {
    fn from(e: HostError) -> ReadError {
        ReadError::Host(e)
    }
}

pub struct SharedHost {
    inner: Mutex<Host>,
}

impl SharedHost {
    pub fn new(host: Host) -> SharedHost {
        SharedHost { inner: Mutex::new(host) }
    }

    /// Exclusive access for a change. Never call while holding a snapshot on this thread.
    pub fn lock(&self) -> MutexGuard<'_, Host> {
        // A panic while holding the lock can leave memory partly updated after a commit (cells
        // set, some variants not yet); the store is always whole. We keep serving rather than
        // fail every later call: a restart rebuilds memory from the store.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write<T>(&self, f: impl FnOnce(&mut Host) -> T) -> T {
        f(&mut self.lock())
    }

    /// Runs `f` on a snapshot, retrying up to `retries` times when a write cancels it. `f` must
    /// return owned data (series are reference-counted and outlive the snapshot).
    pub fn read<T>(&self, retries: usize, f: impl Fn(View<'_>) -> Result<T, HostError>) -> Result<T, ReadError> {
        for _ in 0..=retries {
            let snapshot = self.lock().snapshot();
            let res = salsa::Cancelled::catch(AssertUnwindSafe(|| f(snapshot.view())));
            drop(snapshot);
            match res {
                Ok(r) => return r.map_err(ReadError::Host),
                Err(_) => continue,
            }
        }
        Err(ReadError::Cancelled)
    }
}
