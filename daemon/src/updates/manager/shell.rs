//! The update manager's I/O: what [`super::Manager`] asks of the world, as the trait [`Io`],
//! and [`Shell`], its real implementation: MQTT traffic through the session's queue, the
//! clock, HTTP(S) downloads with resume, model building on the configured engines and the
//! hand-over to the pipeline. The manager itself keeps the order of steps and their reports;
//! the unit tests drive it with a test double of this trait.

use super::{Reject, reject};
use crate::analyzer::{build_classifier, build_detector};
use crate::config::ModelsConfig;
use crate::updates::{Model, Out, Swap, plan};
use emotiond_models::signed::{Install, Slot};
use emotiond_models::{ModelPackage, RejectCode};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the manager needs from outside. Every call is one step's I/O; the manager decides
/// which, in which order, and what is reported.
pub trait Io {
    /// A model built and tested, ready for the pipeline.
    type Model;
    /// Queue a publish, subscribe or unsubscribe for the MQTT session.
    fn send(&mut self, out: Out);
    /// Wall-clock time, ms since the Unix epoch (state messages, order freshness).
    fn now_ms(&self) -> u64;
    /// Monotonic time (download timeouts).
    fn now(&self) -> Instant;
    /// Fetch the archive of `i` from `url` (partial downloads kept in `staging`).
    fn download(&mut self, staging: &Path, i: &Install, url: &str) -> Result<Vec<u8>, Reject>;
    /// Build `pkg` for `slot` on the engine chain of `cfg` (with its test vectors when
    /// `cfg.verify_test_vectors`); the error carries the model error's reason code.
    fn build(
        &mut self,
        slot: Slot,
        pkg: &ModelPackage,
        cfg: &ModelsConfig,
    ) -> Result<Self::Model, Reject>;
    /// Hand a model to the pipeline; false when the pipeline has stopped.
    fn swap(&mut self, swap: Swap<Self::Model>) -> bool;
}

/// The real I/O: the MQTT session's queue, the pipeline's swap channel, the system clocks,
/// ureq and the engines.
pub struct Shell {
    pub out: tokio::sync::mpsc::Sender<Out>,
    pub swaps: std::sync::mpsc::SyncSender<Swap>,
    /// Copies of each model to build: one per analysis thread of the pipeline.
    pub copies: usize,
}

impl Io for Shell {
    type Model = Model;

    fn send(&mut self, out: Out) {
        let _ = self.out.blocking_send(out);
    }

    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn download(&mut self, staging: &Path, i: &Install, url: &str) -> Result<Vec<u8>, Reject> {
        download(staging, i, url)
    }

    fn build(
        &mut self,
        slot: Slot,
        pkg: &ModelPackage,
        cfg: &ModelsConfig,
    ) -> Result<Model, Reject> {
        // the first copy runs the test vectors (when configured); the others are the same file
        let again = ModelsConfig {
            verify_test_vectors: false,
            ..cfg.clone()
        };
        let n = self.copies.max(1);
        match slot {
            Slot::Detector => (0..n)
                .map(|i| build_detector(pkg, if i == 0 { cfg } else { &again }))
                .collect::<Result<_, _>>()
                .map(Model::Detector),
            Slot::Expression => (0..n)
                .map(|i| build_classifier(pkg, if i == 0 { cfg } else { &again }))
                .collect::<Result<_, _>>()
                .map(Model::Classifier),
        }
        .map_err(|e| reject(e.reject_code(), e.to_string()))
    }

    fn swap(&mut self, swap: Swap) -> bool {
        self.swaps.send(swap).is_ok()
    }
}

/// HTTP(S) download into `staging/<sha256>.part`, resumed with a Range request when an
/// earlier attempt (or an earlier run) left part of it.
fn download(staging: &Path, i: &Install, url: &str) -> Result<Vec<u8>, Reject> {
    let part = staging.join(format!("{}.part", i.sha256));
    // Parts of other packages are abandoned downloads.
    if let Ok(rd) = std::fs::read_dir(staging) {
        for e in rd.flatten() {
            if e.path() != part && e.file_name().to_string_lossy().ends_with(".part") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let have = if have >= i.size { 0 } else { have };
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(30))
        .build();
    let mut req = agent.get(url);
    if have > 0 {
        req = req.set("Range", &format!("bytes={have}-"));
    }
    let resp = req
        .call()
        .map_err(|e| reject(RejectCode::Download, format!("{url}: {e}")))?;
    let resumed = have > 0 && resp.status() == 206;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(resumed)
        .write(true)
        .truncate(!resumed)
        .open(&part)
        .map_err(|e| reject(RejectCode::Io, format!("{}: {e}", part.display())))?;
    if resumed {
        log::info!("model download {url}: resuming at byte {have}");
    }
    let start = if resumed { have } else { 0 };
    let mut body = resp.into_reader().take(i.size - start + 1);
    let copied = std::io::copy(&mut body, &mut f);
    let _ = f.sync_all();
    let got = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if let Err(e) = copied {
        return Err(reject(
            RejectCode::Download,
            format!(
                "{url}: {e} after {got} of {} bytes (kept; the next attempt resumes)",
                i.size
            ),
        ));
    }
    if got != i.size {
        let _ = std::fs::remove_file(&part);
        return Err(reject(
            plan::size_mismatch(got, i.size).unwrap_or(RejectCode::HashMismatch),
            format!("{url} gave {got} bytes, {} announced", i.size),
        ));
    }
    let bytes = std::fs::read(&part).map_err(|e| reject(RejectCode::Io, e.to_string()))?;
    let _ = std::fs::remove_file(&part);
    Ok(bytes)
}
