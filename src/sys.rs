//! The only module that touches the file system and the clock: thin wrappers, so the rest of
//! the crate stays deterministic and testable.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    fs::read(path)
}

pub fn read_to_string(path: &Path) -> io::Result<String> {
    fs::read_to_string(path)
}

/// Reads a whole file into `buf` (replacing its contents) and returns its modification time in
/// seconds since the epoch, or None when the file does not exist: one open, no separate `stat`.
pub fn read_with_mtime(path: &Path, buf: &mut Vec<u8>) -> io::Result<Option<i64>> {
    use std::io::Read;
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    buf.clear();
    buf.reserve(meta.len() as usize);
    f.read_to_end(buf)?;
    let t = meta.modified()?.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    Ok(Some(t))
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

pub fn is_dir(path: &Path) -> bool {
    path.is_dir()
}

pub fn canonicalize(path: &Path) -> io::Result<PathBuf> {
    fs::canonicalize(path)
}

pub fn create_dir_all(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)
}

pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    fs::remove_dir_all(path)
}

pub fn remove_file(path: &Path) -> io::Result<()> {
    fs::remove_file(path)
}

pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)
}

/// Gives the file at `from` the name `to` only if nothing has that name yet (a hard link, then
/// the old name removed), and flushes the directory so the new name survives a crash. Fails with
/// `AlreadyExists` when `to` exists, leaving `from` in place.
pub fn publish_new(from: &Path, to: &Path) -> io::Result<()> {
    fs::hard_link(from, to)?;
    fs::remove_file(from)?;
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)?.sync_all()
}

/// Copies a file (the copy is not flushed: it is a scratch copy).
pub fn copy(from: &Path, to: &Path) -> io::Result<u64> {
    fs::copy(from, to)
}

/// Writes a file and flushes it to disk.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Files directly inside `dir`, sorted by name.
pub fn list_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    out.sort();
    Ok(out)
}

/// Every file under `dir` (recursively), sorted.
pub fn walk_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Modification time as seconds since the epoch.
pub fn modified_secs(path: &Path) -> io::Result<i64> {
    let t = fs::metadata(path)?.modified()?;
    Ok(t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0))
}

/// The current UTC time as RFC 3339 with seconds.
pub fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn process_id() -> u32 {
    std::process::id()
}

/// Measures elapsed time.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    pub fn elapsed_us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

/// An environment variable's value (None when unset or not UTF-8).
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn current_dir() -> io::Result<PathBuf> {
    std::env::current_dir()
}

/// Seconds since the Unix epoch.
pub fn unix_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The system's directory for scratch files.
pub fn temp_dir() -> PathBuf {
    std::env::temp_dir()
}

pub fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal()
}

pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    io::stderr().is_terminal()
}

/// Creates (or truncates) a file for writing.
pub fn create(path: &Path) -> io::Result<fs::File> {
    fs::File::create(path)
}

/// Opens a file for reading.
pub fn open(path: &Path) -> io::Result<fs::File> {
    fs::File::open(path)
}

/// Size of a file in bytes.
pub fn file_size(path: &Path) -> io::Result<u64> {
    Ok(fs::metadata(path)?.len())
}
