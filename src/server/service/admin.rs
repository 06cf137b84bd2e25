//! The AdminService: `db check` (the file copied under the host lock, checked without it),
//! `db compact` and blob garbage collection (under the lock).

use tonic::{Request, Response};

use crate::server::pb;
use crate::store::CheckReport;

use super::{Api, Reply};

impl From<CheckReport> for pb::CheckReply {
    fn from(r: CheckReport) -> pb::CheckReply {
        pb::CheckReply {
            ok: r.ok(),
            file: r.file,
            file_bytes: r.file_bytes,
            counts: r.counts.into_iter().collect(),
            problems: r
                .problems
                .into_iter()
                .map(|p| pb::Problem { what: p.what, problem: p.problem, referenced_by: p.referenced_by })
                .collect(),
            notes: r.notes,
        }
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for Api {
    async fn check(&self, _: Request<pb::CheckRequest>) -> Reply<pb::CheckReply> {
        // The copy is taken under the lock; checking it needs no lock.
        let job = self.with_host("", |h| h.begin_check()).await?;
        let report = super::on_blocking_thread(move || job.finish()).await?;
        Ok(Response::new(report.into()))
    }

    async fn compact(&self, _: Request<pb::CompactRequest>) -> Reply<pb::CompactReply> {
        let (bytes_before, bytes_after) = self.write("", |h| h.compact_store()).await?;
        Ok(Response::new(pb::CompactReply { bytes_before, bytes_after }))
    }

    async fn collect_garbage(&self, _: Request<pb::CollectGarbageRequest>) -> Reply<pb::CollectGarbageReply> {
        let r = self.write("", |h| h.collect_garbage()).await?;
        Ok(Response::new(pb::CollectGarbageReply {
            blobs_removed: r.blobs_removed,
            bytes_removed: r.bytes_removed,
            blobs_live: r.blobs_live,
            bytes_live: r.bytes_live,
            cache_entries_removed: r.cache_entries_removed,
            cache_bytes_removed: r.cache_bytes_removed,
        }))
    }
}
