//! Object storage locations (`s3://`, `az://`/`abfss://`, `gs://`, `file://`, `memory://`) through
//! the `object_store` crate, and running its async calls from synchronous code.
//!
//! Credentials and endpoints come from the usual environment variables of each service
//! (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `AZURE_STORAGE_ACCOUNT_NAME`,
//! `GOOGLE_SERVICE_ACCOUNT`, …), read by the crate's `from_env` builders. A `file://` URL is a
//! local directory used as an object store (created when missing): the way to test object storage
//! without a service, and the way several servers on one machine share a cache.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use object_store::ObjectStore;
use object_store::path::Path as ObjPath;

/// An object store and the prefix every name is placed under.
#[derive(Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: ObjPath,
    /// The URL as given, for messages.
    pub url: String,
    /// Whether calls need a reactor (network services); local and memory stores run inline.
    remote: bool,
    /// The directory of a `file://` store (which callers may read directly).
    pub local_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({})", self.url)
    }
}

/// Whether `s` is an object-store URL (rather than a local path).
pub fn is_url(s: &str) -> bool {
    ["s3://", "s3a://", "gs://", "az://", "azure://", "abfs://", "abfss://", "adl://", "file://", "memory://"]
        .iter()
        .any(|p| s.starts_with(p))
}

impl Location {
    /// Parses an object-store URL. A `file://` URL must name an absolute directory; it is
    /// created when missing. Errors say what is wrong and how to write the URL.
    pub fn parse(url: &str) -> Result<Location, String> {
        let parsed = url::Url::parse(url).map_err(|e| {
            format!("`{url}` is not a URL ({e}); write e.g. s3://bucket/prefix/ or file:///absolute/dir/")
        })?;
        let prefix = |p: &str| {
            ObjPath::parse(p.trim_matches('/')).map_err(|e| format!("`{url}`: the path is not an object name ({e})"))
        };
        let mut local_dir = None;
        let built: Result<(Arc<dyn ObjectStore>, ObjPath, bool), object_store::Error> = match parsed.scheme() {
            "file" => {
                let dir = parsed.to_file_path().map_err(|()| {
                    format!("`{url}`: a file:// URL needs an absolute path, e.g. file:///srv/flowtime/cache/")
                })?;
                crate::sys::create_dir_all(&dir)
                    .map_err(|e| format!("`{url}`: cannot create {}: {e}", dir.display()))?;
                local_dir = Some(dir.clone());
                object_store::local::LocalFileSystem::new_with_prefix(&dir).map(|s| {
                    (Arc::new(s.with_automatic_cleanup(true)) as Arc<dyn ObjectStore>, ObjPath::default(), false)
                })
            }
            "memory" => Ok((Arc::new(object_store::memory::InMemory::new()) as _, prefix(parsed.path())?, false)),
            "s3" | "s3a" => object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .build()
                .map(|s| (Arc::new(s) as _, ObjPath::default(), true)),
            "gs" => object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .build()
                .map(|s| (Arc::new(s) as _, ObjPath::default(), true)),
            "az" | "azure" | "abfs" | "abfss" | "adl" => object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .build()
                .map(|s| (Arc::new(s) as _, ObjPath::default(), true)),
            other => {
                return Err(format!(
                    "`{url}`: unknown object-store scheme `{other}:`; use s3://, gs://, az://, abfss://, file:// or memory://"
                ));
            }
        };
        let (store, root, remote) = built.map_err(|e| format!("`{url}`: {e}"))?;
        // Cloud URLs name a bucket (or container) and a path inside it; the builders take the
        // bucket, the path is our prefix.
        let prefix = if remote { prefix(parsed.path())? } else { root };
        Ok(Location { store, prefix, url: url.to_string(), remote, local_dir })
    }

    /// The name `rel` (slash-separated) under the prefix.
    pub fn child(&self, rel: &str) -> ObjPath {
        rel.split('/').filter(|p| !p.is_empty()).fold(self.prefix.clone(), |p, part| p.child(part))
    }

    /// Runs an object-store call to completion on this thread (see [`block_on`]).
    pub fn run<F: Future + Send + 'static>(&self, f: F) -> F::Output
    where
        F::Output: Send + 'static,
    {
        if self.remote { block_on_reactor(f) } else { futures::executor::block_on(f) }
    }
}

/// The runtime network stores run on: their clients need a tokio reactor, and a caller may be
/// a plain thread or a thread of another runtime (where `Runtime::block_on` would panic).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("flowtime-objstore")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the object-store runtime: {e}"))
    })
}

/// Runs `f` on the object-store runtime and waits for it on this thread.
fn block_on_reactor<F: Future + Send + 'static>(f: F) -> F::Output
where
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().unwrap_or_else(|_| panic!("an object-store call was dropped before it finished"))
}

/// Uploads every file under local directory `dir` to `loc` under `rel/` (same relative names),
/// a few at a time, and the file named `last` (relative) after all the others. Used for run
/// directories: they are written locally (the same bytes, the same manifest), then copied.
pub fn upload_dir(loc: &Location, dir: &std::path::Path, rel: &str, last: Option<&str>) -> Result<u64, String> {
    let files = crate::sys::walk_files(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut jobs = Vec::new();
    let mut tail = Vec::new();
    for f in files {
        let name = f.strip_prefix(dir).map_err(|e| e.to_string())?;
        let name = name.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        let bytes = crate::sys::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let job = (loc.child(&format!("{rel}/{name}")), bytes);
        if Some(name.as_str()) == last { tail.push(job) } else { jobs.push(job) }
    }
    let n = (jobs.len() + tail.len()) as u64;
    put_all(loc, jobs)?;
    put_all(loc, tail)?;
    Ok(n)
}

/// Puts every `(name, bytes)`, eight at a time.
fn put_all(loc: &Location, jobs: Vec<(ObjPath, Vec<u8>)>) -> Result<(), String> {
    let store = loc.store.clone();
    loc.run(async move {
        use futures::StreamExt;
        let mut puts = futures::stream::iter(jobs.into_iter().map(|(path, bytes)| {
            let store = store.clone();
            async move { store.put(&path, bytes.into()).await.map_err(|e| format!("{path}: {e}")) }
        }))
        .buffer_unordered(8);
        while let Some(r) = puts.next().await {
            r?;
        }
        Ok::<(), String>(())
    })
}

/// Reads the object at `path` (None when missing).
pub fn get(loc: &Location, path: &ObjPath) -> Result<Option<bytes::Bytes>, String> {
    Ok(get_with_time(loc, path)?.map(|(b, _)| b))
}

/// Reads the object at `path` with its modification time (seconds since the epoch).
pub fn get_with_time(loc: &Location, path: &ObjPath) -> Result<Option<(bytes::Bytes, i64)>, String> {
    let store = loc.store.clone();
    let path = path.clone();
    loc.run(async move { fetch_with_time(&*store, &path).await })
}

/// An object's bytes and modification time (seconds since the epoch), None when missing: the
/// async step of [`get_with_time`], for callers that keep several in flight.
pub async fn fetch_with_time(store: &dyn ObjectStore, path: &ObjPath) -> Result<Option<(bytes::Bytes, i64)>, String> {
    match store.get(path).await {
        Ok(r) => {
            let t = r.meta.last_modified.timestamp();
            r.bytes().await.map(|b| Some((b, t))).map_err(|e| format!("{path}: {e}"))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(format!("{path}: {e}")),
    }
}
