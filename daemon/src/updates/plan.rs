//! The decisions of the update manager that need no I/O, with the time passed in: whether an
//! order is followed, how MQTT chunks become an archive, what a size mismatch is called, and
//! which refusals are remembered. The manager ([`super::manager`]) does the downloads, the
//! disk and the model building around them.

use super::SwapEvent;
use super::store::SlotFile;
use emotiond_models::RejectCode;
use emotiond_models::signed::Install;
use emotiond_wire::state::UpdateState;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// What to do with an install order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Fetch, verify, test and switch.
    Start,
    /// The slot already runs this archive.
    AlreadyActive,
    /// Refused before in this run (same archive and signature): a retained order delivered
    /// again on a reconnect is not retried.
    RefusedBefore,
    /// Rolled back from this slot before: publish a new version.
    RolledBackBefore,
}

/// Orders refused in this run, by archive hash and signature.
#[derive(Debug, Default)]
pub struct Refusals(HashSet<String>);

impl Refusals {
    fn key(i: &Install) -> String {
        let sig = i
            .signature
            .as_ref()
            .map(|s| s.signature.as_str())
            .unwrap_or("");
        // An operator's downgrade of a package refused as a downgrade is a new order.
        format!("{}:{sig}:{}", i.sha256, i.allow_downgrade)
    }

    /// Remember a refusal, unless its reason may not repeat (a download that failed or
    /// came out wrong).
    pub fn record(&mut self, i: &Install, code: RejectCode) {
        if !code.retryable() {
            self.0.insert(Self::key(i));
        }
    }

    pub fn contains(&self, i: &Install) -> bool {
        self.0.contains(&Self::key(i))
    }
}

/// Whether to follow an install order, given the slot's record and this run's refusals.
pub fn decide(i: &Install, slot: &SlotFile, refused: &Refusals) -> Decision {
    if slot.active.as_ref().is_some_and(|a| a.sha256 == i.sha256) {
        Decision::AlreadyActive
    } else if refused.contains(i) {
        Decision::RefusedBefore
    } else if slot.rolled_back.contains(&i.sha256) {
        Decision::RolledBackBefore
    } else {
        Decision::Start
    }
}

/// An archive of `got` bytes where `want` were announced: too few is `truncated`, too many
/// `hash_mismatch`; None when they agree.
pub fn size_mismatch(got: u64, want: u64) -> Option<RejectCode> {
    match got.cmp(&want) {
        std::cmp::Ordering::Less => Some(RejectCode::Truncated),
        std::cmp::Ordering::Greater => Some(RejectCode::HashMismatch),
        std::cmp::Ordering::Equal => None,
    }
}

/// What one chunk did to the download.
#[derive(Debug, PartialEq)]
pub enum Chunk {
    /// Not one of ours, out of range, or a repeat.
    Ignored,
    /// Stored; more to come.
    Stored,
    /// The last one: the archive, in order.
    Complete(Vec<u8>),
    /// The chunks hold more than announced (reason `hash_mismatch`).
    TooLarge(String),
}

/// A package arriving in retained MQTT chunks: `count` parts, at most `size` bytes, by
/// `deadline`.
#[derive(Debug)]
pub struct Chunks {
    parts: Vec<Option<Vec<u8>>>,
    received: usize,
    bytes: u64,
    size: u64,
    deadline: Instant,
}

impl Chunks {
    pub fn new(count: u32, size: u64, now: Instant, timeout: Duration) -> Chunks {
        Chunks {
            parts: vec![None; count as usize],
            received: 0,
            bytes: 0,
            size,
            deadline: now + timeout,
        }
    }

    /// Chunk `idx` arrived.
    pub fn add(&mut self, idx: usize, payload: Vec<u8>) -> Chunk {
        if idx >= self.parts.len() || self.parts[idx].is_some() {
            return Chunk::Ignored;
        }
        self.bytes += payload.len() as u64;
        if self.bytes > self.size {
            return Chunk::TooLarge(format!(
                "chunks hold more than the announced {} bytes",
                self.size
            ));
        }
        self.parts[idx] = Some(payload);
        self.received += 1;
        if self.received == self.parts.len() {
            let archive = std::mem::take(&mut self.parts)
                .into_iter()
                .flatten()
                .flatten()
                .collect();
            return Chunk::Complete(archive);
        }
        Chunk::Stored
    }

    /// Past the deadline: why the download is given up (reason `download`).
    pub fn expired(&self, now: Instant, timeout: Duration) -> Option<String> {
        (now > self.deadline).then(|| {
            format!(
                "{} of {} chunks arrived within {timeout:?}",
                self.received,
                self.parts.len()
            )
        })
    }
}

/// What the manager does after an event of the pipeline: the slot record to write (a
/// rollback made durable) and the state to report (`slot`, state, model, archive hash and
/// the reason when there is one).
#[derive(Debug, Default, PartialEq)]
pub struct EventOutcome {
    pub record: Option<SlotFile>,
    pub report: Option<Report>,
}

/// One `models/state` message of a slot.
#[derive(Debug, PartialEq)]
pub struct Report {
    pub state: UpdateState,
    pub model: String,
    pub sha256: String,
    pub reason: Option<(RejectCode, String)>,
}

/// The pipeline switched, kept or rolled back a model; `slot` is that slot's record.
pub fn after_event(ev: &SwapEvent, slot: &SlotFile) -> EventOutcome {
    match ev {
        // Active: the stored archive when the record names this model, else a configured
        // one (no hash).
        SwapEvent::Swapped { id, .. } => EventOutcome {
            record: None,
            report: Some(Report {
                state: UpdateState::Active,
                model: id.clone(),
                sha256: slot
                    .active
                    .as_ref()
                    .filter(|a| a.id == *id)
                    .map(|a| a.sha256.clone())
                    .unwrap_or_default(),
                reason: None,
            }),
        },
        SwapEvent::Passed { .. } => EventOutcome::default(),
        // The pipeline already runs the old model again: make that durable, unless the
        // record has moved on (another update or a rollback came first).
        SwapEvent::RolledBack { id, reason, .. } => match slot.active.as_ref() {
            Some(a) if a.id == *id => EventOutcome {
                record: Some(slot.after_rollback()),
                report: Some(Report {
                    state: UpdateState::RolledBack,
                    model: id.clone(),
                    sha256: a.sha256.clone(),
                    reason: Some((RejectCode::Probation, reason.clone())),
                }),
            },
            _ => EventOutcome::default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::updates::store::StoredRef;
    use emotiond_models::signed::{Chunks as ChunkSource, SignatureFile, Slot, Source};

    fn order(sha: &str, sig: &str) -> Install {
        Install {
            slot: Slot::Expression,
            name: "fer".into(),
            version: "2".into(),
            sha256: sha.into(),
            size: 10,
            signature: Some(SignatureFile {
                sha256: sha.into(),
                key_id: "k".into(),
                signature: sig.into(),
            }),
            source: Source::Chunks(ChunkSource {
                topic: "p/x".into(),
                count: 2,
            }),
            allow_downgrade: false,
        }
    }

    #[test]
    fn an_order_is_followed_unless_active_refused_or_rolled_back() {
        let i = order("aa", "s1");
        let mut slot = SlotFile::default();
        let mut refused = Refusals::default();
        assert_eq!(decide(&i, &slot, &refused), Decision::Start);
        slot.active = Some(StoredRef {
            sha256: "aa".into(),
            id: "fer@2".into(),
        });
        assert_eq!(decide(&i, &slot, &refused), Decision::AlreadyActive);
        slot.active = None;
        slot.rolled_back = vec!["aa".into()];
        assert_eq!(decide(&i, &slot, &refused), Decision::RolledBackBefore);
        slot.rolled_back.clear();
        refused.record(&i, RejectCode::TestVectors);
        assert_eq!(decide(&i, &slot, &refused), Decision::RefusedBefore);
        // the same archive signed again is a new order
        assert_eq!(decide(&order("aa", "s2"), &slot, &refused), Decision::Start);
        // and so is an operator's downgrade of an archive refused as a downgrade
        let mut down = order("aa", "s1");
        refused.record(&down, RejectCode::Downgrade);
        down.allow_downgrade = true;
        assert_eq!(decide(&down, &slot, &refused), Decision::Start);
    }

    #[test]
    fn download_problems_are_retried_everything_else_is_not() {
        let i = order("bb", "s");
        for code in RejectCode::ALL {
            let mut r = Refusals::default();
            r.record(&i, code);
            assert_eq!(r.contains(&i), !code.retryable(), "{code}");
        }
        let mut r = Refusals::default();
        for code in [
            RejectCode::Download,
            RejectCode::Truncated,
            RejectCode::HashMismatch,
            RejectCode::Io,
        ] {
            r.record(&i, code);
        }
        assert_eq!(decide(&i, &SlotFile::default(), &r), Decision::Start);
        for code in [
            RejectCode::Unsigned,
            RejectCode::UntrustedKey,
            RejectCode::BadSignature,
            RejectCode::CorruptArchive,
            RejectCode::WrongTask,
            RejectCode::Manifest,
            RejectCode::WrongShape,
            RejectCode::TestVectors,
            RejectCode::Engine,
        ] {
            let mut r = Refusals::default();
            r.record(&i, code);
            assert!(r.contains(&i), "{code}");
        }
    }

    #[test]
    fn pipeline_events_report_and_record() {
        let slot = SlotFile {
            active: Some(StoredRef {
                sha256: "new".into(),
                id: "fer@3".into(),
            }),
            previous: Some(StoredRef {
                sha256: "old".into(),
                id: "fer@2".into(),
            }),
            rolled_back: vec![],
            ..Default::default()
        };
        let swapped = |id: &str| SwapEvent::Swapped {
            slot: Slot::Expression,
            id: id.into(),
        };
        let o = after_event(&swapped("fer@3"), &slot);
        let r = o.report.unwrap();
        assert_eq!((r.state, r.sha256.as_str()), (UpdateState::Active, "new"));
        assert_eq!(o.record, None);
        // back to a configured model: active, no archive
        let r = after_event(&swapped("fer@builtin"), &slot).report.unwrap();
        assert_eq!((r.state, r.sha256.as_str()), (UpdateState::Active, ""));
        let passed = SwapEvent::Passed {
            slot: Slot::Expression,
            id: "fer@3".into(),
        };
        assert_eq!(after_event(&passed, &slot), EventOutcome::default());
        let failed = |id: &str| SwapEvent::RolledBack {
            slot: Slot::Expression,
            id: id.into(),
            reason: "detection rate 0.01 < 0.2 of 0.9".into(),
        };
        let o = after_event(&failed("fer@3"), &slot);
        assert_eq!(o.record, Some(slot.after_rollback()));
        let r = o.report.unwrap();
        assert_eq!(r.state, UpdateState::RolledBack);
        assert_eq!(r.sha256, "new");
        assert_eq!(r.reason.unwrap().0, RejectCode::Probation);
        // a model the record no longer names: nothing to do
        assert_eq!(
            after_event(&failed("fer@1"), &slot),
            EventOutcome::default()
        );
    }

    #[test]
    fn sizes_name_truncation_and_excess() {
        assert_eq!(size_mismatch(5, 10), Some(RejectCode::Truncated));
        assert_eq!(size_mismatch(11, 10), Some(RejectCode::HashMismatch));
        assert_eq!(size_mismatch(10, 10), None);
    }

    #[test]
    fn chunks_assemble_in_order_whatever_order_they_arrive_in() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(300);
        let mut c = Chunks::new(3, 6, t0, timeout);
        assert_eq!(c.add(2, b"ef".to_vec()), Chunk::Stored);
        assert_eq!(c.add(2, b"zz".to_vec()), Chunk::Ignored, "a repeat");
        assert_eq!(c.add(7, b"zz".to_vec()), Chunk::Ignored, "out of range");
        assert_eq!(c.add(0, b"ab".to_vec()), Chunk::Stored);
        assert_eq!(c.expired(t0 + Duration::from_secs(10), timeout), None);
        assert_eq!(
            c.add(1, b"cd".to_vec()),
            Chunk::Complete(b"abcdef".to_vec())
        );
    }

    #[test]
    fn too_many_bytes_or_too_late_give_the_download_up() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(1);
        let mut c = Chunks::new(2, 3, t0, timeout);
        assert_eq!(c.add(0, b"ab".to_vec()), Chunk::Stored);
        assert!(matches!(c.add(1, b"cd".to_vec()), Chunk::TooLarge(_)));
        let c = Chunks::new(2, 3, t0, timeout);
        let why = c.expired(t0 + Duration::from_secs(2), timeout).unwrap();
        assert!(why.starts_with("0 of 2 chunks arrived"), "{why}");
    }
}
