//! The update thread: desired state in (from MQTT), each step out on `models/state`:
//! download (MQTT chunks or HTTP with resume) → verify → test on the slot's engine chain →
//! store → hand the model to the pipeline; operator rollbacks; what the pipeline reports
//! back (switched, passed or failed probation).
//!
//! A state machine driven by its inputs ([`Manager::inbound`]: a message on a set or chunk
//! topic; [`Manager::pipeline_event`]; [`Manager::tick`]: time passing;
//! [`Manager::report_startup`]) whose every I/O goes through the trait [`Io`]: MQTT
//! publishes and subscriptions, the clock, HTTP downloads, model building, the hand-over to
//! the pipeline. [`Shell`] is the real one; [`Manager::run`] is the thread's loop. The store
//! on disk (`models/`) is used directly. Its decisions that need no I/O are in
//! [`super::plan`] and [`super::admit`]; the unit tests (`manager/tests.rs`) drive every
//! transition with a test double of [`Io`].
//!
//! Length: ~520 lines: one state machine's inputs and transitions, read top to bottom; its
//! tests are in manager/tests/.

mod orders;
mod shell;
#[cfg(test)]
mod tests;

pub use shell::{Io, Shell};

use super::plan::{self, Refusals};
use super::store::{SlotFile, Store, StoredRef};
use super::{Msg, Out, Swap, SwapEvent};
use crate::config::ModelsConfig;
use emotiond_models::signed::{self, Install, Order, Slot, Source};
use emotiond_models::{ModelPackage, RejectCode};
use emotiond_wire::state::{ModelState, UpdateState};
use emotiond_wire::topics;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// A rejection with a stable reason code.
#[derive(Debug)]
pub struct Reject {
    pub code: RejectCode,
    pub detail: String,
}

fn reject(code: RejectCode, detail: impl Into<String>) -> Reject {
    Reject {
        code,
        detail: detail.into(),
    }
}

struct Pending {
    install: Install,
    chunks: plan::Chunks,
}

pub struct Manager<I: Io = Shell> {
    pub models: ModelsConfig,
    pub trusted: Vec<signed::VerifyingKey>,
    pub store: Store,
    pub state_topic: String,
    pub set_topics: Vec<String>,
    pub download_timeout: Duration,
    /// Everything outside: MQTT, clocks, downloads, engines, the pipeline.
    pub io: I,
    pending: Option<Pending>,
    /// Orders refused in this run, by archive hash and signature (a retained order is
    /// delivered again on every reconnect; it is not retried).
    refused: Refusals,
    /// `updates.require_signed_orders`: an unsigned models/set message is refused.
    pub require_signed_orders: bool,
}

impl Manager {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        models: ModelsConfig,
        trusted: Vec<signed::VerifyingKey>,
        store: Store,
        state_topic: String,
        set_topics: Vec<String>,
        download_timeout: Duration,
        out: tokio::sync::mpsc::Sender<Out>,
        swaps: std::sync::mpsc::SyncSender<Swap>,
        copies: usize,
    ) -> Manager {
        Manager::with_io(
            models,
            trusted,
            store,
            state_topic,
            set_topics,
            download_timeout,
            Shell { out, swaps, copies },
        )
    }
}

impl<I: Io> Manager<I> {
    /// A manager whose I/O is `io`.
    pub fn with_io(
        models: ModelsConfig,
        trusted: Vec<signed::VerifyingKey>,
        store: Store,
        state_topic: String,
        set_topics: Vec<String>,
        download_timeout: Duration,
        io: I,
    ) -> Manager<I> {
        let mut trusted = trusted;
        // Keys trusted through rotation, kept in the state folder.
        for k in store.added_keys() {
            match signed::parse_public(&k) {
                Ok(k) if !trusted.contains(&k) => trusted.push(k),
                Ok(_) => {}
                Err(e) => log::error!("models/keys.json: {k:?}: {e}"),
            }
        }
        Manager {
            models,
            trusted,
            store,
            state_topic,
            set_topics,
            download_timeout,
            io,
            pending: None,
            refused: Refusals::default(),
            require_signed_orders: true,
        }
    }

    fn state(
        &mut self,
        slot: Slot,
        state: UpdateState,
        id: &str,
        sha: &str,
        reason: Option<&Reject>,
    ) {
        // An update in flight is marked in staging, so a start after a crash can report it.
        if !sha.is_empty() {
            let marker = self.store.staging().join(format!("{sha}.order"));
            if state == UpdateState::Downloading {
                let _ = std::fs::write(&marker, format!("{} {id}", slot.as_str()));
            } else if state.is_final() {
                let _ = std::fs::remove_file(&marker);
            }
        }
        let mut m = ModelState::step(slot, state, id, sha).at(self.io.now_ms());
        if let Some(r) = reason {
            m = m.with_reason(r.code, &r.detail);
        }
        let payload = m.to_json();
        match state {
            UpdateState::Rejected | UpdateState::RolledBack => log::warn!(
                "model update {}: {state} {id}: {}",
                slot.as_str(),
                String::from_utf8_lossy(&payload)
            ),
            _ => log::info!("model update {}: {state} {id}", slot.as_str()),
        }
        self.io.send(Out::Publish {
            topic: self.state_topic.clone(),
            payload,
            retain: true,
        });
    }

    /// Report what a start found: an update cut short, or a stored model that did not load.
    pub fn report_startup(&mut self, notes: &[(Slot, String)]) {
        for (left, what) in self.store.clear_staging() {
            let r = reject(
                RejectCode::Interrupted,
                format!(
                    "an update was cut short before it finished ({}); the slot runs the model it recorded last, named in the summaries",
                    if what.is_empty() { left } else { what }
                ),
            );
            let at = self.io.now_ms();
            self.publish_state(ModelState::unattached(r.code, &r.detail).at(at));
        }
        for (slot, note) in notes {
            self.state(
                *slot,
                UpdateState::RolledBack,
                "",
                "",
                Some(&reject(RejectCode::CorruptStore, note.clone())),
            );
        }
    }

    /// Serve orders from MQTT (`rx`) and events from the pipeline (`events`) until MQTT
    /// ends.
    pub fn run(mut self, rx: Receiver<Msg>, events: Receiver<SwapEvent>) {
        self.subscribe();
        loop {
            while let Ok(ev) = events.try_recv() {
                self.pipeline_event(ev);
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Msg::Inbound(topic, payload)) => self.inbound(&topic, payload),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
            self.tick();
        }
    }

    /// Subscribe to the set topics (the first thing the thread does).
    pub fn subscribe(&mut self) {
        for t in self.set_topics.clone() {
            self.io.send(Out::Subscribe(t));
        }
    }

    /// Time passed: a chunk download that took too long is given up (`download`).
    pub fn tick(&mut self) {
        let now = self.io.now();
        let expired = self
            .pending
            .as_ref()
            .and_then(|p| p.chunks.expired(now, self.download_timeout));
        if let Some(why) = expired {
            self.abandon(reject(RejectCode::Download, why));
        }
    }

    /// Give up the download in progress with a reason.
    fn abandon(&mut self, r: Reject) {
        let Some(p) = self.pending.take() else { return };
        self.end_download(&p);
        let i = &p.install;
        let id = format!("{}@{}", i.name, i.version);
        self.state(i.slot, UpdateState::Rejected, &id, &i.sha256, Some(&r));
    }

    /// A state message that concerns no single slot (malformed orders, start-up findings).
    fn publish_state(&mut self, m: ModelState) {
        let payload = m.to_json();
        log::warn!("model update: {}", String::from_utf8_lossy(&payload));
        self.io.send(Out::Publish {
            topic: self.state_topic.clone(),
            payload,
            retain: true,
        });
    }

    fn end_download(&mut self, p: &Pending) {
        if let Source::Chunks(c) = &p.install.source {
            self.io
                .send(Out::Unsubscribe(topics::chunk_filter(&c.topic)));
        }
    }

    /// A message from the MQTT session: on a set topic (an order) or a chunk topic.
    pub fn inbound(&mut self, topic: &str, payload: Vec<u8>) {
        if self.set_topics.iter().any(|t| t == topic) {
            if payload.is_empty() {
                return; // a cleared retained message
            }
            self.receive(topic, &payload);
            return;
        }
        let Some(p) = &mut self.pending else { return };
        let Source::Chunks(c) = &p.install.source else {
            return;
        };
        let Some(idx) = topics::chunk_index(&c.topic, topic) else {
            return;
        };
        match p.chunks.add(idx, payload) {
            plan::Chunk::Ignored | plan::Chunk::Stored => {}
            plan::Chunk::TooLarge(why) => self.abandon(reject(RejectCode::HashMismatch, why)),
            plan::Chunk::Complete(archive) => {
                if let Some(p) = self.pending.take() {
                    self.end_download(&p);
                    self.install(p.install, archive);
                }
            }
        }
    }

    fn order(&mut self, order: Order) {
        match order {
            Order::Rollback(slot) => self.rollback(slot),
            Order::Install(i) => {
                let id = format!("{}@{}", i.name, i.version);
                match plan::decide(&i, &self.store.slot(i.slot), &self.refused) {
                    plan::Decision::Start => {}
                    plan::Decision::AlreadyActive => {
                        log::info!("model update {}: {id} already active", i.slot.as_str());
                        return;
                    }
                    plan::Decision::RefusedBefore => return,
                    plan::Decision::RolledBackBefore => {
                        log::info!(
                            "model update {}: {id} was rolled back before; not installed again (publish a new version)",
                            i.slot.as_str()
                        );
                        return;
                    }
                }
                if let Some(p) = self.pending.take() {
                    self.end_download(&p);
                }
                self.state(i.slot, UpdateState::Downloading, &id, &i.sha256, None);
                match &i.source {
                    Source::Chunks(c) => {
                        self.io.send(Out::Subscribe(topics::chunk_filter(&c.topic)));
                        self.pending = Some(Pending {
                            chunks: plan::Chunks::new(
                                c.count,
                                i.size,
                                self.io.now(),
                                self.download_timeout,
                            ),
                            install: i,
                        });
                    }
                    Source::Url(u) => {
                        let u = u.clone();
                        let staging = self.store.staging();
                        match self.io.download(&staging, &i, &u) {
                            Ok(archive) => self.install(i, archive),
                            Err(r) => {
                                self.state(i.slot, UpdateState::Rejected, &id, &i.sha256, Some(&r))
                            }
                        }
                    }
                }
            }
        }
    }

    fn install(&mut self, i: Install, archive: Vec<u8>) {
        let id = format!("{}@{}", i.name, i.version);
        match self.check(&i, &archive) {
            Ok(()) => {}
            Err(r) => {
                // A download that came out wrong may come out right when the order is sent
                // again; everything else about a signed archive is deterministic.
                self.refused.record(&i, r.code);
                self.state(i.slot, UpdateState::Rejected, &id, &i.sha256, Some(&r));
            }
        }
    }

    /// verifying → testing → store → switch. Any failure: the reason, nothing changed.
    fn check(&mut self, i: &Install, archive: &[u8]) -> Result<(), Reject> {
        let id = format!("{}@{}", i.name, i.version);
        self.state(i.slot, UpdateState::Verifying, &id, &i.sha256, None);
        if let Some(code) = plan::size_mismatch(archive.len() as u64, i.size) {
            return Err(reject(
                code,
                format!("{} bytes arrived, {} announced", archive.len(), i.size),
            ));
        }
        signed::verify(archive, i.signature.as_ref(), &self.trusted)
            .map_err(|e| reject(e.reject_code(), e.to_string()))?;
        let (index, files) =
            signed::open(archive).map_err(|e| reject(e.reject_code(), e.to_string()))?;
        if index.task != i.slot.task() {
            return Err(reject(
                RejectCode::WrongTask,
                format!(
                    "a {:?} model cannot go into the {} slot",
                    index.task,
                    i.slot.as_str()
                ),
            ));
        }
        let pkg = signed::package_from_files(&format!("update:{id}"), &files)
            .map_err(|e| reject(RejectCode::Manifest, e.to_string()))?;
        if pkg.id() != id {
            return Err(reject(
                RejectCode::Manifest,
                format!("the package is {}, the order names {id}", pkg.id()),
            ));
        }
        let release = pkg.manifest.release;
        let mut accepted = self.store.slot(i.slot).releases;
        // The configured model's release counts as accepted: never below what it shipped with.
        if let Ok(c) = crate::analyzer::load_package(self.configured(i.slot)) {
            super::admit::accept_release(&mut accepted, &c.manifest.name, c.manifest.release);
        }
        super::admit::release_check(&accepted, &pkg.manifest.name, release, i.allow_downgrade)
            .map_err(|(code, why)| reject(code, why))?;
        self.state(i.slot, UpdateState::Testing, &id, &i.sha256, None);
        let mut cfg = self.models.clone();
        cfg.verify_test_vectors = true;
        let model = self.io.build(i.slot, &pkg, &cfg)?;
        let dir = self
            .store
            .put(&i.sha256, &files)
            .map_err(|e| reject(RejectCode::Io, e))?;
        log::info!("model {id} stored in {}", dir.display());
        let mut f = self.store.slot(i.slot);
        let new_ref = StoredRef {
            sha256: i.sha256.clone(),
            id: id.clone(),
        };
        f.previous = f.active.take();
        f.active = Some(new_ref);
        f.rolled_back.retain(|s| *s != i.sha256);
        super::admit::accept_release(&mut f.releases, &pkg.manifest.name, release);
        self.store
            .set_slot(i.slot, &f)
            .map_err(|e| reject(RejectCode::Io, e.to_string()))?;
        let sent = self.io.swap(Swap {
            slot: i.slot,
            model,
            id: id.clone(),
            budget_ms: pkg.manifest.budget_ms,
            probation: true,
        });
        if !sent {
            return Err(reject(RejectCode::Io, "the pipeline has stopped"));
        }
        Ok(())
    }

    fn rollback(&mut self, slot: Slot) {
        let f = self.store.slot(slot);
        let Some(cur) = f.active.clone() else {
            self.state(
                slot,
                UpdateState::Rejected,
                "",
                "",
                Some(&reject(
                    RejectCode::NoPrevious,
                    "the slot runs its configured model; nothing to roll back to",
                )),
            );
            return;
        };
        match self.rebuild_previous(slot, &f, "operator") {
            Ok(()) => {}
            Err(r) => self.state(slot, UpdateState::Rejected, &cur.id, &cur.sha256, Some(&r)),
        }
    }

    /// The configured package of `slot` (`models.detector` / `models.expression`).
    fn configured(&self, slot: Slot) -> &str {
        match slot {
            Slot::Detector => &self.models.detector,
            Slot::Expression => &self.models.expression,
        }
    }

    /// Switch `slot` back to the previous model (stored, or the configured one).
    fn rebuild_previous(&mut self, slot: Slot, f: &SlotFile, why: &str) -> Result<(), Reject> {
        let pkg = match &f.previous {
            Some(p) => ModelPackage::load_dir(&self.store.package_dir(&p.sha256))
                .map_err(|e| reject(RejectCode::Io, e.to_string()))?,
            None => crate::analyzer::load_package(self.configured(slot))
                .map_err(|e| reject(RejectCode::Io, format!("{e:#}")))?,
        };
        let model = self
            .io
            .build(slot, &pkg, &self.models)
            .map_err(|r| reject(RejectCode::Engine, r.detail))?;
        let nf = f.after_rollback();
        self.store
            .set_slot(slot, &nf)
            .map_err(|e| reject(RejectCode::Io, e.to_string()))?;
        let sent = self.io.swap(Swap {
            slot,
            model,
            id: pkg.id(),
            budget_ms: None,
            probation: false,
        });
        if !sent {
            return Err(reject(RejectCode::Io, "the pipeline has stopped"));
        }
        if let Some(a) = &f.active {
            self.state(
                slot,
                UpdateState::RolledBack,
                &a.id,
                &a.sha256,
                Some(&reject(
                    if why == "operator" {
                        RejectCode::Operator
                    } else {
                        RejectCode::Probation
                    },
                    format!("back to {}: {why}", pkg.id()),
                )),
            );
        }
        Ok(())
    }

    /// What the pipeline reports: swapped in, passed probation, rolled back.
    pub fn pipeline_event(&mut self, ev: SwapEvent) {
        let slot = match &ev {
            SwapEvent::Swapped { slot, .. }
            | SwapEvent::Passed { slot, .. }
            | SwapEvent::RolledBack { slot, .. } => *slot,
        };
        if let SwapEvent::Passed { id, .. } = &ev {
            log::info!("model {id} ({}) passed probation", slot.as_str());
        }
        let out = plan::after_event(&ev, &self.store.slot(slot));
        if let Some(f) = out.record {
            if let Err(e) = self.store.set_slot(slot, &f) {
                let id = out.report.as_ref().map_or("", |r| r.model.as_str());
                log::error!("cannot record the rollback of {id}: {e}");
            }
        }
        if let Some(r) = out.report {
            let reason = r.reason.map(|(code, detail)| reject(code, detail));
            self.state(slot, r.state, &r.model, &r.sha256, reason.as_ref());
        }
    }
}
