//! The SeriesService: storing, listing and reading telemetry series, and LoadGold (uploaded or
//! under the data root) into `Host::put_series_batch`.

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::model::grid::{format_minutes, parse_utc_minutes};
use crate::server::convert;
use crate::server::edge::{Call, deadline_exceeded};
use crate::server::pb;
use crate::server::status::invalid_field;

use super::{Api, Reply};

#[tonic::async_trait]
impl pb::series_service_server::SeriesService for Api {
    async fn put_series(&self, req: Request<pb::PutSeriesRequest>) -> Reply<pb::PutSeriesResponse> {
        let r = req.into_inner();
        convert::check_name("name", &r.name)?;
        let start = if r.start.is_empty() {
            None
        } else {
            Some(parse_utc_minutes(&r.start).map_err(|e| invalid_field("start", e))?)
        };
        if r.bin_minutes == 0 {
            return Err(invalid_field("bin_minutes", "the bin width must be at least one minute"));
        }
        if let Some(s) = start
            && s.rem_euclid(r.bin_minutes as i64) != 0
        {
            return Err(invalid_field(
                "start",
                format!("`{}` is not aligned to {}-minute bins", r.start, r.bin_minutes),
            ));
        }
        if r.values.is_empty() {
            return Err(invalid_field("values", "a series needs at least one value"));
        }
        let provenance = convert::provenance_json(&r.provenance);
        let changed =
            self.write("name", move |h| h.put_series(&r.name, &r.values, start, r.bin_minutes, provenance)).await?;
        Ok(Response::new(pb::PutSeriesResponse { changed }))
    }

    async fn list_series(&self, _: Request<pb::ListSeriesRequest>) -> Reply<pb::ListSeriesResponse> {
        let list = self.with_host("", |h| h.stored_series()).await?;
        Ok(Response::new(pb::ListSeriesResponse { series: list.iter().map(stored_info).collect() }))
    }

    async fn get_stored_series(&self, req: Request<pb::GetStoredSeriesRequest>) -> Reply<pb::StoredSeries> {
        let name = req.into_inner().name;
        let (rec, values) = self.with_host("name", move |h| h.stored_series_values(&name)).await?;
        Ok(Response::new(pb::StoredSeries { info: Some(stored_info(&rec)), values }))
    }

    type LoadGoldStream = ReceiverStream<Result<pb::LoadGoldEvent, Status>>;

    async fn load_gold(&self, req: Request<tonic::Streaming<pb::LoadGoldChunk>>) -> Reply<Self::LoadGoldStream> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let api = self.clone();
        let stream = req.into_inner();
        let call = Call::current();
        tokio::spawn(async move {
            // The load outlives the handler: it keeps the request's deadline (nothing is stored
            // when it passes: the write is the load's last step).
            let work = api.load_gold_events(stream, tx.clone());
            let left = call.as_ref().and_then(|c| c.remaining());
            let res = match (call, left) {
                (Some(call), Some(left)) => {
                    let stop = call.stop.clone();
                    match tokio::time::timeout(left, Call::scope(call, work)).await {
                        Ok(r) => r,
                        Err(_) => {
                            stop.store(true, std::sync::atomic::Ordering::Relaxed);
                            Err(deadline_exceeded())
                        }
                    }
                }
                (Some(call), None) => Call::scope(call, work).await,
                (None, _) => work.await,
            };
            let event = match res {
                Ok(result) => Ok(pb::LoadGoldEvent { event: Some(pb::load_gold_event::Event::Result(result)) }),
                Err(e) => Err(e),
            };
            // The client may have gone: nothing is left to tell it.
            let _ = tx.send(event).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

impl Api {
    /// LoadGold's work: read the upload or the file (sending progress), load, store.
    async fn load_gold_events(
        &self,
        mut stream: tonic::Streaming<pb::LoadGoldChunk>,
        events: tokio::sync::mpsc::Sender<Result<pb::LoadGoldEvent, Status>>,
    ) -> Result<pb::LoadGoldResponse, Status> {
        let mut options: Option<pb::LoadGoldOptions> = None;
        let mut data = Vec::new();
        let limit = self.opts.max_upload_bytes;
        while let Some(chunk) = stream.message().await.map_err(crate::server::status::from_client_stream)? {
            if options.is_none() {
                options = Some(chunk.options.unwrap_or_default());
            }
            if data.len() + chunk.data.len() > limit {
                return Err(Status::resource_exhausted(format!(
                    "the upload exceeds {limit} bytes; load a file under the server's data root with `options.path`"
                )));
            }
            data.extend_from_slice(&chunk.data);
        }
        let o = options.unwrap_or_default();
        let format = match o.format.as_str() {
            "" => None,
            "csv" => Some(crate::telemetry::Format::Csv),
            "ndjson" => Some(crate::telemetry::Format::Ndjson),
            other => return Err(invalid_field("options.format", format!("`{other}`: use csv or ndjson"))),
        };
        let bad = |f: &'static str| move |e: String| invalid_field(f, e);
        let lo = crate::telemetry::LoadOptions {
            start_minutes: (!o.start.is_empty())
                .then(|| parse_utc_minutes(&o.start))
                .transpose()
                .map_err(bad("options.start"))?,
            bins: (o.bins > 0).then_some(o.bins),
            bin_minutes: (!o.bin_size.is_empty())
                .then(|| crate::telemetry::parse_bin_size(&o.bin_size))
                .transpose()
                .map_err(bad("options.bin_size"))?,
            align_floor: o.align_floor,
            format,
        };
        if !o.extraction_ts.is_empty() {
            parse_utc_minutes(&o.extraction_ts).map_err(bad("options.extraction_ts"))?;
        }
        let root = self.data_root.to_path_buf();
        let (mut loaded, provenance) = super::on_blocking_thread(move || -> Result<_, Status> {
            let (loaded, sha, source, extraction) = if o.path.is_empty() {
                let source = if o.source.is_empty() { "upload".to_string() } else { o.source.clone() };
                let mut progress = progress_sender(events, data.len() as u64);
                let loaded = crate::telemetry::load(&mut crate::telemetry::Bytes(&data), &lo, &mut progress)
                    .map_err(|d| crate::server::status::invalid("data", &in_file(d, &source)))?;
                progress(data.len() as u64);
                let sha = crate::model::params::hex(&<sha2::Sha256 as sha2::Digest>::digest(&data));
                (loaded, sha, source, o.extraction_ts.clone())
            } else {
                let rel =
                    crate::model::series::normalise_path(&o.path).map_err(|e| invalid_field("options.path", e))?;
                if !crate::sys::exists(&root.join(&rel)) {
                    return Err(Status::not_found(format!("{rel} is not under the server's data root")));
                }
                let path = crate::host::resolve_under_root(&rel, &root)
                    .map_err(|d| crate::server::status::invalid("options.path", &d.into()))?;
                let mut src = crate::telemetry::FileSource::new(&path);
                let source = if o.source.is_empty() {
                    rel.rsplit('/').next().unwrap_or(&rel).to_string()
                } else {
                    o.source.clone()
                };
                let total = crate::sys::file_size(&path).unwrap_or(0);
                let mut progress = progress_sender(events, total);
                let loaded = crate::telemetry::load(&mut src, &lo, &mut progress)
                    .map_err(|d| crate::server::status::invalid("options.path", &in_file(d, &source)))?;
                progress(total);
                let extraction = if o.extraction_ts.is_empty() {
                    crate::sys::modified_secs(&path).map(|s| format_minutes(s.div_euclid(60))).unwrap_or_default()
                } else {
                    o.extraction_ts.clone()
                };
                (loaded, src.sha.clone().unwrap_or_default(), source, extraction)
            };
            Ok((loaded, serde_json::json!({"source": source, "sha256": sha, "extraction_ts": extraction})))
        })
        .await??;
        // The values move into the write (one copy of the output in memory, §12).
        let names: Vec<String> = loaded.series.iter().map(|s| s.name()).collect();
        let items: Vec<crate::host::StoredSeriesInput> = std::mem::take(&mut loaded.series)
            .into_iter()
            .map(|s| crate::host::StoredSeriesInput { name: s.name(), values: s.values, gaps: s.gaps })
            .collect();
        let w = loaded.window;
        let prov = provenance.clone();
        // A deadline that passed while the write waited for the host lock stores nothing (one that
        // passes during the parse drops this request before it gets here).
        let stop = Call::current().map(|c| c.stop.clone());
        let changed = self
            .write("data", move |h| {
                if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
                    return Err(super::HostError::BadInput(crate::engine::db::Interrupted.diagnostic().into()));
                }
                h.put_series_batch(&items, Some(w.start_minutes), w.bin_minutes, prov)
            })
            .await?;
        let g = &w.grid_json();
        Ok(pb::LoadGoldResponse {
            series: names,
            changed,
            grid: Some(pb::Grid {
                bins: w.bins,
                bin_size: g["binSize"].as_u64().unwrap_or(1) as u32,
                bin_unit: g["binUnit"].as_str().unwrap_or("minutes").to_string(),
                bin_minutes: w.bin_minutes,
                start: format_minutes(w.start_minutes),
            }),
            bin_size_inferred: loaded.bin_inferred,
            warnings: loaded.warnings.iter().map(convert::warning).collect(),
            rows: loaded.rows,
            rows_outside_window: loaded.rows_outside,
            provenance: convert::provenance(&provenance),
        })
    }
}

/// The loader's diagnostics name the file they are about.
fn in_file(mut d: crate::diag::Diagnostics, file: &str) -> crate::diag::Diagnostics {
    for x in &mut d.0 {
        x.file.get_or_insert_with(|| file.to_string());
    }
    d
}

/// The loader's progress callback: sends a `LoadProgress` event about once per percent (the
/// loader reports every MiB; the caller reports the end), without waiting for a slow client (events that do not fit are
/// skipped).
fn progress_sender(
    events: tokio::sync::mpsc::Sender<Result<pb::LoadGoldEvent, Status>>,
    total: u64,
) -> impl FnMut(u64) {
    let step = (total / 100).max(1);
    let (mut pass, mut last, mut sent) = (1u32, 0u64, None::<u64>);
    move |read: u64| {
        if read < last {
            pass += 1;
            sent = None;
        }
        last = read;
        if sent.is_some_and(|s| read < s + step) {
            return;
        }
        sent = Some(read);
        let p = pb::LoadProgress { bytes_read: read, bytes_total: total, pass };
        let _ = events.try_send(Ok(pb::LoadGoldEvent { event: Some(pb::load_gold_event::Event::Progress(p)) }));
    }
}

fn stored_info(r: &crate::host::StoredSeriesInfo) -> pb::StoredSeriesInfo {
    pb::StoredSeriesInfo {
        name: r.name.clone(),
        start: r.start_minutes.map(format_minutes).unwrap_or_default(),
        bin_minutes: r.bin_minutes,
        bins: r.bins,
        sha256: r.sha256.clone(),
        provenance: convert::provenance(&r.provenance),
    }
}
