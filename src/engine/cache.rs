//! Content keys of unit results and the trait through which a host's result cache serves them.
//!
//! A unit's [`ContentKey`] depends only on content, Merkle style: sha256 over the engine version,
//! the unit definition, its dependencies' content keys, the values of the parameters it reads and
//! the fingerprints (sha256 of the values) of the input series it reads. Equal keys mean equal
//! outputs, whichever session, variant or process computed them, so results can be shared by
//! value across sessions and restarts without hashing any output.
//!
//! sha256 rather than the FxHash digests that intern keys: interning compares whole definitions
//! on a digest match, so a collision there only costs time, but a content key is trusted on its
//! own (an entry found under it is served), and entries may come from another process through a
//! shared object store; a 64-bit non-cryptographic hash would make a wrong answer a matter of
//! luck. sha256 is already the store's content address (and runs at ~2 GB/s with the SHA
//! extensions); a key hashes a few hundred bytes, never a series (input fingerprints are hashed
//! once per input cell).
//!
//! The engine stays pure: it never reads or writes a cache itself. The host gives the database a
//! [`ResultCache`]; a unit's evaluation asks it before computing and offers it what it computed.
//! The cache must return exactly the outputs computing would (a checksum failure or a foreign
//! entry is a miss), so a cache changes costs, never answers.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::engine::unit::UnitDef;
use crate::model::params::ParamValue;

/// A unit result's content key (sha256). All zeros means "no key" (no cache was attached when a
/// dependency was evaluated): such a unit is neither looked up nor stored.
pub type ContentKey = [u8; 32];

/// The key a unit gets when one of its dependencies has none.
pub const NO_KEY: ContentKey = [0; 32];

/// What results depend on besides their content: the evaluator's arithmetic. Any change to how a
/// unit definition evaluates must change this (the crate version changes with every release).
pub const ENGINE_VERSION: &str = concat!("flowtime ", env!("CARGO_PKG_VERSION"), " results/1");

/// Where a unit evaluation looks for results before computing, and offers what it computed.
///
/// Implementations must be cheap to ask (a miss costs a lookup, never a computation) and must
/// not block on writing: `put` queues, and the host writes in batches.
pub trait ResultCache: Send + Sync {
    /// The outputs stored under `key`, if a verified entry of this engine version with
    /// `n_outputs` series of `bins` values exists.
    fn get(&self, key: &ContentKey, n_outputs: usize, bins: usize) -> Option<Vec<Arc<[f64]>>>;
    /// The entries for many keys at once (each `(key, n_outputs, bins)`), in order, None where
    /// `get` would miss. A store with latency reads them concurrently; this default asks `get`.
    fn get_many(&self, wanted: &[(ContentKey, usize, usize)]) -> Vec<Option<Vec<Arc<[f64]>>>> {
        wanted.iter().map(|(k, n, bins)| self.get(k, *n, *bins)).collect()
    }
    /// Offers the outputs of a unit computed under `key`. `slot` names the unit in this process
    /// (its interned unit key): a newer offer for the same slot supersedes an older one not yet
    /// written, so a burst of changes to one unit writes only its last result.
    fn put(&self, slot: u64, key: &ContentKey, outputs: &[Arc<[f64]>]);
}

/// A `Hasher` feeding sha256, so the derived `Hash` of definitions and values (which writes
/// lengths before sequences and discriminants before variants) is the key's encoding.
struct Sha(Sha256);

impl Hasher for Sha {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("content keys are finalised as sha256, not as a u64")
    }
}

/// The content key of a unit: `def` reading dependencies with keys `deps` (in the key's
/// dependency order), parameters with `params` values and inputs with fingerprints `inputs`.
/// [`NO_KEY`] when a dependency has no key.
pub fn content_key<'a>(
    def: &UnitDef,
    deps: impl IntoIterator<Item = &'a ContentKey>,
    params: impl IntoIterator<Item = &'a ParamValue>,
    inputs: impl IntoIterator<Item = &'a ContentKey>,
) -> ContentKey {
    let mut h = Sha(Sha256::new());
    h.write(ENGINE_VERSION.as_bytes());
    def.content_hash(&mut h);
    h.write(b"deps");
    for d in deps {
        if *d == NO_KEY {
            return NO_KEY;
        }
        h.write(d);
    }
    h.write(b"params");
    for p in params {
        p.hash(&mut h);
    }
    h.write(b"inputs");
    for i in inputs {
        h.write(i);
    }
    h.0.finalize().into()
}

/// The fingerprint of an input series: sha256 of its values (little-endian f64). Hashing the
/// values, not the source they were read from, keeps the key true however they were read.
pub fn input_fingerprint(values: &[f64]) -> ContentKey {
    let mut h = Sha256::new();
    h.update((values.len() as u64).to_le_bytes());
    for chunk in values.chunks(512) {
        let mut buf = [0u8; 512 * 8];
        for (i, v) in chunk.iter().enumerate() {
            buf[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        h.update(&buf[..chunk.len() * 8]);
    }
    h.finalize().into()
}

/// A key as lowercase hex (object names, messages).
pub fn key_hex(k: &ContentKey) -> String {
    crate::model::params::hex(k)
}
