//! Every redb table of the store, the schema version, and the chunk size of series values.
//! The on-disk layout is documented in `docs/store-format.md`; change both together.

use redb::TableDefinition;

/// The schema this build reads and writes. A file with another version is refused untouched.
pub const SCHEMA_VERSION: u64 = 1;

/// Values per chunk of a stored series: 4,000 bytes, so that a chunk with its 12-byte key fits
/// one 4 KiB leaf page (a whole 8,760-bin series as one value would round up to 128 KiB pages,
/// ~1.9× the raw bytes; chunked it is ~1.08×, measured in the store tests).
pub const CHUNK_VALUES: usize = 500;

/// `schema_version` → u64 LE; `next_blob` → u64 LE; notes (UTF-8 text), e.g.
/// `seeded:<template id>@<version>` once `serve` has finished seeding that bundled template.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `(template id, version)` → JSON `TemplateRecord`.
pub const TEMPLATES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("templates");
/// Stored series name → JSON `SeriesRecord` (grid window, blob, provenance).
pub const SERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("series");
/// Blob sha256 (hex) → `(blob id, number of values)`: content addressing.
pub const BLOB_INDEX: TableDefinition<&str, (u64, u64)> = TableDefinition::new("blob_index");
/// `(blob id, chunk index)` → up to `CHUNK_VALUES` little-endian f64.
pub const BLOB_CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("blob_chunks");
/// Session id → JSON `SessionRecord`.
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// `(session id, variant name)` → JSON `VariantRecord`.
pub const VARIANTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("variants");
/// Run id → JSON `RunRecord`.
pub const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
