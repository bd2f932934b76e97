//! Every transition of the update manager, driven through its inputs with a test double of
//! [`Io`] ([`RecordingIo`]: records what is sent, scripted downloads and builds, a clock the
//! test moves). Archives are real: shipped packages copied with another version or release,
//! packed and signed with a test key; the store is real, in a temporary folder.

use super::*;
use emotiond_models::signed::{Action, Chunks, SetMessage, SigningKey};
use emotiond_wire::order::signed_order;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const SET: &str = "emotion/dev1/models/set";
const STATE: &str = "emotion/dev1/models/state";
const TIMEOUT: Duration = Duration::from_secs(60);

/// Test double of [`Io`] (no MQTT, no engines, no network): records every call, returns
/// scripted results.
struct RecordingIo {
    sent: Vec<Out>,
    start: Instant,
    elapsed: Duration,
    wall_ms: u64,
    /// Results of the next HTTP downloads (a download with none scripted fails).
    downloads: VecDeque<Result<Vec<u8>, Reject>>,
    /// URLs asked for.
    fetched: Vec<String>,
    /// The next builds fail with this reason (else a build gives the package's id).
    build_fails: Option<(RejectCode, String)>,
    built: Vec<(Slot, String, bool)>,
    swaps: Vec<Swap<String>>,
    pipeline_stopped: bool,
}

impl Io for RecordingIo {
    type Model = String;

    fn send(&mut self, out: Out) {
        self.sent.push(out);
    }

    fn now_ms(&self) -> u64 {
        self.wall_ms + self.elapsed.as_millis() as u64
    }

    fn now(&self) -> Instant {
        self.start + self.elapsed
    }

    fn download(&mut self, _staging: &Path, _i: &Install, url: &str) -> Result<Vec<u8>, Reject> {
        self.fetched.push(url.to_string());
        self.downloads
            .pop_front()
            .unwrap_or_else(|| Err(reject(RejectCode::Download, "nothing scripted")))
    }

    fn build(
        &mut self,
        slot: Slot,
        pkg: &ModelPackage,
        cfg: &ModelsConfig,
    ) -> Result<String, Reject> {
        self.built.push((slot, pkg.id(), cfg.verify_test_vectors));
        match &self.build_fails {
            Some((code, detail)) => Err(reject(*code, detail.clone())),
            None => Ok(pkg.id()),
        }
    }

    fn swap(&mut self, swap: Swap<String>) -> bool {
        if self.pipeline_stopped {
            return false;
        }
        self.swaps.push(swap);
        true
    }
}

/// A signed archive of a shipped package with another version and release.
struct Archive {
    bytes: Vec<u8>,
    sig: signed::SignatureFile,
    name: String,
    version: String,
}

struct Fx {
    _dir: tempfile::TempDir,
    key: SigningKey,
    m: Manager<RecordingIo>,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn shipped(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/packages")
        .join(name)
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let key = signed::generate_key().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let io = RecordingIo {
            sent: Vec::new(),
            start: Instant::now(),
            elapsed: Duration::ZERO,
            wall_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
            downloads: VecDeque::new(),
            fetched: Vec::new(),
            build_fails: None,
            built: Vec::new(),
            swaps: Vec::new(),
            pipeline_stopped: false,
        };
        let m = Manager::with_io(
            ModelsConfig::default(),
            vec![key.verifying_key()],
            store,
            STATE.into(),
            vec![SET.into()],
            TIMEOUT,
            io,
        );
        Fx { _dir: dir, key, m }
    }

    /// `package` (a shipped one) as version `version`, release `release`, signed by `key`.
    fn archive(&self, package: &str, version: &str, release: u64, key: &SigningKey) -> Archive {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join(package);
        copy_dir(&shipped(package), &dir);
        let manifest = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
        let manifest: Vec<String> = manifest
            .lines()
            .map(|l| {
                if l.starts_with("version = ") {
                    format!("version = \"{version}\"")
                } else if l.starts_with("release = ") {
                    format!("release = {release}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(dir.join("manifest.toml"), manifest.join("\n")).unwrap();
        let (bytes, index) = signed::pack(&dir).unwrap();
        let sig = signed::sign(&bytes, key);
        Archive {
            bytes,
            sig,
            name: index.name,
            version: index.version,
        }
    }

    /// The fer_mini_xception package as `version` (release 2), signed with the trusted key.
    fn fer(&self, version: &str) -> Archive {
        self.archive("fer_mini_xception", version, 2, &self.key)
    }

    /// The install message for `a` in `slot` (package name, version, hash, size, signature),
    /// without a source.
    fn install_msg(&self, slot: Slot, a: &Archive) -> SetMessage {
        let mut msg = SetMessage::new(slot, Action::Install);
        msg.name = Some(a.name.clone());
        msg.version = Some(a.version.clone());
        msg.sha256 = Some(a.sig.sha256.clone());
        msg.size = Some(a.bytes.len() as u64);
        msg.key_id = Some(a.sig.key_id.clone());
        msg.signature = Some(a.sig.signature.clone());
        msg
    }

    /// A signed install order for `a` in `slot`, from MQTT chunks or a URL.
    fn install(&self, slot: Slot, a: &Archive, chunks: Option<(&str, u32)>, seq: u64) -> Vec<u8> {
        let mut msg = self.install_msg(slot, a);
        match chunks {
            Some((topic, count)) => {
                msg.chunks = Some(Chunks {
                    topic: topic.into(),
                    count,
                })
            }
            None => msg.url = Some("http://fleet.invalid/model.tar".into()),
        }
        self.sign(msg, seq)
    }

    fn sign(&self, mut msg: SetMessage, seq: u64) -> Vec<u8> {
        msg.seq = Some(seq);
        msg.topic = Some(SET.into());
        signed_order(&msg, &self.key, SystemTime::now())
    }

    fn rollback(&self, slot: Slot, seq: u64) -> Vec<u8> {
        self.sign(SetMessage::new(slot, Action::Rollback), seq)
    }

    fn send(&mut self, topic: &str, payload: &[u8]) {
        self.m.inbound(topic, payload.to_vec());
    }

    /// Everything sent since the last call.
    fn take(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.m.io.sent)
    }

    /// The state messages sent since the last call, as (state, reason) with the rest of
    /// the traffic checked to be on the state topic, retained.
    fn states(&mut self) -> Vec<ModelState> {
        self.take()
            .into_iter()
            .map(|o| match o {
                Out::Publish {
                    topic,
                    payload,
                    retain,
                } => {
                    assert_eq!((topic.as_str(), retain), (STATE, true));
                    serde_json::from_slice(&payload).unwrap()
                }
                other => panic!("expected only state messages, got {other:?}"),
            })
            .collect()
    }
}

fn kinds(states: &[ModelState]) -> Vec<(UpdateState, Option<RejectCode>)> {
    states.iter().map(|s| (s.state, s.reason)).collect()
}

fn state_of(out: &Out) -> ModelState {
    match out {
        Out::Publish { topic, payload, .. } if topic == STATE => {
            serde_json::from_slice(payload).unwrap()
        }
        other => panic!("expected a state message, got {other:?}"),
    }
}

use UpdateState::{Active, Downloading, Rejected, RolledBack, Testing, Verifying};

#[test]
fn subscribes_to_its_set_topics() {
    let mut fx = Fx::new();
    fx.m.subscribe();
    assert_eq!(fx.take(), vec![Out::Subscribe(SET.into())]);
}

#[test]
fn a_malformed_order_is_rejected_malformed_with_its_topic() {
    let mut fx = Fx::new();
    fx.send(SET, b"{not json");
    let s = fx.states();
    assert_eq!(kinds(&s), vec![(Rejected, Some(RejectCode::Malformed))]);
    assert_eq!(s[0].topic.as_deref(), Some(SET));
    assert_eq!(s[0].slot, None);
    // A cleared retained message is not an order.
    fx.send(SET, b"");
    assert!(fx.take().is_empty());
}

#[test]
fn an_unsigned_order_is_refused_when_signed_orders_are_required() {
    let mut fx = Fx::new();
    let a = fx.fer("9.0.1");
    let mut msg = SetMessage::new(Slot::Expression, Action::Install);
    msg.name = Some(a.name.clone());
    msg.version = Some(a.version.clone());
    msg.sha256 = Some(a.sig.sha256.clone());
    msg.size = Some(a.bytes.len() as u64);
    msg.url = Some("http://fleet.invalid/model.tar".into());
    let unsigned = serde_json::to_vec(&msg).unwrap();
    fx.send(SET, &unsigned);
    let s = fx.states();
    assert_eq!(
        kinds(&s),
        vec![(Rejected, Some(RejectCode::BadOrderSignature))]
    );
    assert!(fx.m.io.fetched.is_empty());
    // With the setting off, the same message is followed.
    fx.m.require_signed_orders = false;
    fx.send(SET, &unsigned);
    assert_eq!(fx.m.io.fetched.len(), 1);
}

#[test]
fn chunks_download_verify_test_store_and_swap() {
    let mut fx = Fx::new();
    let a = fx.fer("9.0.1");
    let order = fx.install(Slot::Expression, &a, Some(("emotion/chunks/x", 2)), 10);
    fx.send(SET, &order);
    let out = fx.take();
    assert_eq!(out.len(), 2, "{out:?}");
    let s = state_of(&out[0]);
    assert_eq!(
        (s.state, s.model.as_deref()),
        (Downloading, Some("fer_mini_xception@9.0.1"))
    );
    assert_eq!(s.sha256.as_deref(), Some(a.sig.sha256.as_str()));
    assert_eq!(out[1], Out::Subscribe("emotion/chunks/x/+".into()));
    // The update in flight is marked in staging.
    let marker = fx.m.store.staging().join(format!("{}.order", a.sig.sha256));
    assert!(marker.exists());
    let half = a.bytes.len() / 2;
    // Chunks arrive in any order; others' topics are ignored.
    fx.send("emotion/chunks/y/0", &a.bytes[..half]);
    fx.send("emotion/chunks/x/1", &a.bytes[half..]);
    assert!(fx.take().is_empty());
    fx.send("emotion/chunks/x/0", &a.bytes[..half]);
    let out = fx.take();
    assert_eq!(out[0], Out::Unsubscribe("emotion/chunks/x/+".into()));
    let s: Vec<_> = out[1..].iter().map(state_of).collect();
    assert_eq!(kinds(&s), vec![(Verifying, None), (Testing, None)]);
    // Built with its test vectors, handed over for probation, recorded in the store.
    assert_eq!(
        fx.m.io.built,
        vec![(Slot::Expression, "fer_mini_xception@9.0.1".into(), true)]
    );
    let sw = &fx.m.io.swaps[0];
    assert_eq!(
        (sw.slot, sw.id.as_str(), sw.probation),
        (Slot::Expression, "fer_mini_xception@9.0.1", true)
    );
    assert_eq!(sw.budget_ms, Some(10.0));
    let rec = fx.m.store.slot(Slot::Expression);
    assert_eq!(rec.active.unwrap().sha256, a.sig.sha256);
    assert_eq!(rec.releases.get("fer_mini_xception"), Some(&2));
    assert!(
        fx.m.store
            .package_dir(&a.sig.sha256)
            .join("manifest.toml")
            .exists()
    );
    // The pipeline switched: active (and the marker goes).
    fx.m.pipeline_event(SwapEvent::Swapped {
        slot: Slot::Expression,
        id: "fer_mini_xception@9.0.1".into(),
    });
    let s = fx.states();
    assert_eq!(kinds(&s), vec![(Active, None)]);
    assert_eq!(s[0].sha256.as_deref(), Some(a.sig.sha256.as_str()));
    assert!(!marker.exists());
    // The same order again (redelivered on reconnect): already active, nothing sent.
    fx.send(SET, &order);
    assert!(fx.take().is_empty());
    // A newer order for it too.
    let again = fx.install(Slot::Expression, &a, Some(("emotion/chunks/x", 2)), 11);
    fx.send(SET, &again);
    assert!(fx.take().is_empty());
}

#[test]
fn passing_probation_reports_nothing_failing_it_rolls_back_for_good() {
    let mut fx = Fx::new();
    let a = fx.fer("9.0.1");
    fx.m.io.downloads.push_back(Ok(a.bytes.clone()));
    let order = fx.install(Slot::Expression, &a, None, 10);
    fx.send(SET, &order);
    fx.take();
    let id = "fer_mini_xception@9.0.1".to_string();
    fx.m.pipeline_event(SwapEvent::Passed {
        slot: Slot::Expression,
        id: id.clone(),
    });
    assert!(fx.take().is_empty());
    fx.m.pipeline_event(SwapEvent::RolledBack {
        slot: Slot::Expression,
        id: id.clone(),
        reason: "3 errors".into(),
    });
    let s = fx.states();
    assert_eq!(kinds(&s), vec![(RolledBack, Some(RejectCode::Probation))]);
    assert_eq!(s[0].detail.as_deref(), Some("3 errors"));
    let rec = fx.m.store.slot(Slot::Expression);
    assert_eq!(rec.active, None);
    assert_eq!(rec.rolled_back, vec![a.sig.sha256.clone()]);
    // Rolled back before: the order is not followed again.
    let again = fx.install(Slot::Expression, &a, None, 11);
    fx.send(SET, &again);
    assert!(fx.take().is_empty());
    assert_eq!(fx.m.io.fetched.len(), 1);
    // A rollback report for a model the record has moved on from changes nothing.
    fx.m.pipeline_event(SwapEvent::RolledBack {
        slot: Slot::Expression,
        id,
        reason: "late".into(),
    });
    assert!(fx.take().is_empty());
}

#[test]
fn a_chunk_beyond_the_announced_size_is_a_hash_mismatch() {
    let mut fx = Fx::new();
    let a = fx.fer("9.0.1");
    let order = fx.install(Slot::Expression, &a, Some(("emotion/chunks/x", 2)), 10);
    fx.send(SET, &order);
    fx.take();
    let mut big = a.bytes.clone();
    big.push(0);
    fx.send("emotion/chunks/x/0", &big);
    let out = fx.take();
    assert_eq!(out[0], Out::Unsubscribe("emotion/chunks/x/+".into()));
    let s = state_of(&out[1]);
    assert_eq!(
        (s.state, s.reason),
        (Rejected, Some(RejectCode::HashMismatch))
    );
    assert!(fx.m.io.swaps.is_empty());
    // Chunks after that belong to no download.
    fx.send("emotion/chunks/x/1", &a.bytes);
    assert!(fx.take().is_empty());
}

#[test]
fn a_chunk_download_that_takes_too_long_is_given_up_on_a_tick() {
    let mut fx = Fx::new();
    let a = fx.fer("9.0.1");
    let order = fx.install(Slot::Expression, &a, Some(("emotion/chunks/x", 2)), 10);
    fx.send(SET, &order);
    fx.take();
    fx.m.io.elapsed = TIMEOUT / 2;
    fx.m.tick();
    assert!(fx.take().is_empty());
    fx.m.io.elapsed = TIMEOUT + Duration::from_secs(1);
    fx.m.tick();
    let out = fx.take();
    assert_eq!(out[0], Out::Unsubscribe("emotion/chunks/x/+".into()));
    let s = state_of(&out[1]);
    assert_eq!((s.state, s.reason), (Rejected, Some(RejectCode::Download)));
    // A download problem is not remembered: the order is followed when sent again.
    let again = fx.install(Slot::Expression, &a, Some(("emotion/chunks/x", 2)), 11);
    fx.send(SET, &again);
    assert_eq!(state_of(&fx.take()[0]).state, Downloading);
}

#[test]
fn a_new_order_replaces_the_download_in_progress() {
    let mut fx = Fx::new();
    let a = fx.fer("9.0.1");
    let b = fx.fer("9.0.2");
    let first = fx.install(Slot::Expression, &a, Some(("emotion/chunks/a", 2)), 10);
    fx.send(SET, &first);
    fx.take();
    let second = fx.install(Slot::Expression, &b, Some(("emotion/chunks/b", 1)), 11);
    fx.send(SET, &second);
    let out = fx.take();
    assert_eq!(out[0], Out::Unsubscribe("emotion/chunks/a/+".into()));
    assert_eq!(
        state_of(&out[1]).model.as_deref(),
        Some("fer_mini_xception@9.0.2")
    );
    assert_eq!(out[2], Out::Subscribe("emotion/chunks/b/+".into()));
    // The old download's chunks no longer count.
    fx.send("emotion/chunks/a/0", &a.bytes);
    assert!(fx.take().is_empty());
    fx.send("emotion/chunks/b/0", &b.bytes);
    assert_eq!(fx.m.io.swaps[0].id, "fer_mini_xception@9.0.2");
}

#[test]
fn an_order_older_than_the_last_one_followed_is_replayed() {
    let mut fx = Fx::new();
    let a = fx.fer("9.0.1");
    let newer = fx.install(Slot::Expression, &a, Some(("emotion/chunks/x", 2)), 20);
    let older = fx.install(Slot::Expression, &a, Some(("emotion/chunks/x", 2)), 10);
    fx.send(SET, &newer);
    fx.take();
    fx.send(SET, &older);
    let s = fx.states();
    assert_eq!(kinds(&s), vec![(Rejected, Some(RejectCode::Replayed))]);
}

/// Install `a` into `slot` from a scripted HTTP download; the states sent.
mod bad_archives;
mod refusals;
