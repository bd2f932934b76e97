//! Frames analysed on several threads (`pipeline.threads`), results handed back in capture
//! order.
//!
//! Each worker owns a copy of the models (an [`Analyzer`]: the engines keep per-run state, so
//! copies, not sharing). A free worker takes the next frame from the camera queue, one worker
//! at a time, and numbers it (a ticket, in capture order). It may take frame `t` only while
//! `t < consumed + 2n` (`consumed`: frames the pipeline has taken back), so at most `2n`
//! frames are between the queue and the pipeline (bounded memory: a stalled engine holds the
//! others back after `2n` frames instead of letting them pile up results), and a fast worker
//! does not wait for a slow one before that. The pipeline thread receives the results, puts
//! them back in order ([`Pool::next`]) and does the cheap, ordered part: tracking, windows,
//! summaries. (A strict turn, worker `i` taking frames `i, i + n, ...`, made the faster of two
//! workers wait for the slower one at every frame: 1.6x on two cores instead of 1.9x.)
//!
//! With one thread this is the old arrangement: one inference thread, the pipeline thread
//! waiting for it. Model swaps (updates) lock each worker's analyzer between two of its frames.
//!
//! Length: ~540 lines, ~400 before its unit tests (capture order, stop, counters, swaps): the
//! pool, its tickets and the reorder buffer belong together.

use crate::analyzer::{Analyzer, FrameResult};
use crate::queue::{DropOldest, Pop};
use crate::shutdown::Shutdown;
use crate::summary::ModelInfo;
use emotiond_hal::Frame;
use emotiond_models::{ExpressionClassifier, FaceDetector};
use std::cell::RefCell;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One frame analysed.
pub struct Done {
    pub frame: Frame,
    pub result: anyhow::Result<FrameResult>,
    /// When the analysis ended (latency = this − `frame.captured`).
    pub finished: Instant,
}

/// What [`Pool::next`] gives.
pub enum Next {
    Item(Done),
    Timeout,
    /// The camera queue closed and every frame taken from it was handed back.
    Closed,
}

struct Numbered {
    ticket: u64,
    done: Done,
}

/// Who may take the next frame.
struct Turns {
    state: Mutex<TurnState>,
    changed: Condvar,
}

struct TurnState {
    next_ticket: u64,
    /// A worker is waiting on the camera queue for the frame `next_ticket` (one at a time, so
    /// tickets follow the queue's order).
    taking: bool,
    /// Frames the pipeline has taken back ([`Pool::next`]).
    consumed: u64,
    /// The camera queue closed, or the pool is going away.
    over: bool,
}

impl Turns {
    fn lock(&self) -> MutexGuard<'_, TurnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn end(&self) {
        self.lock().over = true;
        self.changed.notify_all();
    }
}

pub struct Pool {
    analyzers: Vec<Arc<Mutex<Analyzer>>>,
    /// Each worker's model blocks (detector, expression) as last read: a worker busy with a
    /// frame holds its analyzer's lock, and the pipeline thread (which asks for the blocks for
    /// every live event) must not wait for that frame.
    infos: RefCell<Vec<(ModelInfo, ModelInfo)>>,
    results: Option<Receiver<Numbered>>,
    threads: Vec<JoinHandle<()>>,
    turns: Arc<Turns>,
    /// The ticket handed out next by [`Pool::next`].
    next: u64,
    /// Results that came early, at `ticket % 2n`: at most `2n` tickets are ever outstanding.
    parked: Vec<Option<Done>>,
}

fn lock(a: &Mutex<Analyzer>) -> MutexGuard<'_, Analyzer> {
    a.lock().unwrap_or_else(|p| p.into_inner())
}

/// Poll interval of a worker waiting for a frame or its turn (for the stop signal).
const POLL: Duration = Duration::from_millis(200);

impl Pool {
    /// Start one worker per analyzer (at least one), taking frames from `queue`.
    pub fn start(
        analyzers: Vec<Analyzer>,
        queue: Arc<DropOldest<Frame>>,
        shutdown: Shutdown,
    ) -> std::io::Result<Pool> {
        assert!(!analyzers.is_empty(), "a pool needs at least one analyzer");
        let n = analyzers.len();
        let analyzers: Vec<_> = analyzers
            .into_iter()
            .map(|a| Arc::new(Mutex::new(a)))
            .collect();
        let turns = Arc::new(Turns {
            state: Mutex::new(TurnState {
                next_ticket: 0,
                taking: false,
                consumed: 0,
                over: false,
            }),
            changed: Condvar::new(),
        });
        let (tx, rx) = sync_channel(n);
        let mut threads = Vec::with_capacity(n);
        for (i, a) in analyzers.iter().enumerate() {
            let w = Worker {
                n: n as u64,
                analyzer: a.clone(),
                queue: queue.clone(),
                turns: turns.clone(),
                results: tx.clone(),
                shutdown: shutdown.clone(),
            };
            let name = if n == 1 {
                "inference".to_string()
            } else {
                format!("inference-{i}")
            };
            match std::thread::Builder::new()
                .name(name)
                .spawn(move || w.run())
            {
                Ok(t) => threads.push(t),
                Err(e) => {
                    turns.end();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(e);
                }
            }
        }
        let infos = analyzers
            .iter()
            .map(|a| {
                let a = lock(a);
                (a.detector_info(), a.expression_info())
            })
            .collect();
        Ok(Pool {
            infos: RefCell::new(infos),
            analyzers,
            results: Some(rx),
            threads,
            turns,
            next: 0,
            parked: (0..2 * n).map(|_| None).collect(),
        })
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.analyzers.len()
    }

    /// The next frame's result in capture order, waiting up to `wait` for it.
    pub fn next(&mut self, wait: Duration) -> Next {
        let n = self.parked.len();
        let until = Instant::now() + wait;
        loop {
            if let Some(d) = self.parked[(self.next % n as u64) as usize].take() {
                self.handed_back();
                return Next::Item(d);
            }
            let Some(rx) = &self.results else {
                return Next::Closed;
            };
            let left = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(r) if r.ticket == self.next => {
                    self.handed_back();
                    return Next::Item(r.done);
                }
                Ok(r) => {
                    let slot = &mut self.parked[(r.ticket % n as u64) as usize];
                    debug_assert!(slot.is_none(), "ticket {} parked twice", r.ticket);
                    *slot = Some(r.done);
                }
                Err(RecvTimeoutError::Timeout) => return Next::Timeout,
                Err(RecvTimeoutError::Disconnected) => {
                    // every worker has ended; anything parked was numbered after a frame that
                    // never came back, which a worker never does (it always answers)
                    return match self.parked.iter_mut().find_map(Option::take) {
                        Some(d) => Next::Item(d),
                        None => Next::Closed,
                    };
                }
            }
        }
    }

    /// One more frame handed back: a worker may take one more.
    fn handed_back(&mut self) {
        self.next += 1;
        self.turns.lock().consumed = self.next;
        self.turns.changed.notify_all();
    }

    /// Put a new detector in every worker (one copy each); returns the old ones with their id.
    pub fn swap_detector(
        &mut self,
        new: Vec<FaceDetector>,
        id: String,
    ) -> (Vec<FaceDetector>, String) {
        self.swap_each(new, id, Analyzer::swap_detector)
    }

    pub fn swap_classifier(
        &mut self,
        new: Vec<ExpressionClassifier>,
        id: String,
    ) -> (Vec<ExpressionClassifier>, String) {
        self.swap_each(new, id, Analyzer::swap_classifier)
    }

    /// One copy into each worker's analyzer, between two of its frames.
    fn swap_each<M>(
        &mut self,
        new: Vec<M>,
        id: String,
        swap: fn(&mut Analyzer, M, String) -> (M, String),
    ) -> (Vec<M>, String) {
        debug_assert_eq!(new.len(), self.analyzers.len());
        let mut old_id = String::new();
        let old = self
            .analyzers
            .iter()
            .zip(new)
            .map(|(a, m)| {
                let (o, i) = swap(&mut lock(a), m, id.clone());
                old_id = i;
                o
            })
            .collect();
        // the new package's id from the next summary on, whatever the workers are doing
        self.refresh(true);
        (old, old_id)
    }

    /// The detector's block: the first worker's package and engine (a copy whose engine fell
    /// back shows its fallback), the watchdog counters of all copies added up.
    pub fn detector_info(&self) -> ModelInfo {
        self.refresh(false);
        merged(self.infos.borrow().iter().map(|i| i.0.clone()))
    }

    pub fn expression_info(&self) -> ModelInfo {
        self.refresh(false);
        merged(self.infos.borrow().iter().map(|i| i.1.clone()))
    }

    /// Re-read the blocks of the workers not busy with a frame (`wait`: of every worker).
    fn refresh(&self, wait: bool) {
        let mut infos = self.infos.borrow_mut();
        for (a, info) in self.analyzers.iter().zip(infos.iter_mut()) {
            let guard = match a.try_lock() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => wait.then(|| lock(a)),
            };
            if let Some(g) = guard {
                *info = (g.detector_info(), g.expression_info());
            }
        }
    }
}

fn merged(mut infos: impl Iterator<Item = ModelInfo>) -> ModelInfo {
    let mut m = infos.next().expect("at least one worker");
    for i in infos {
        m.slow += i.slow;
        m.stalls += i.stalls;
        m.rebuilds += i.rebuilds;
        if m.fallback.is_none() && i.fallback.is_some() {
            m.engine = i.engine;
            m.accelerator = i.accelerator;
            m.fallback = i.fallback;
        }
    }
    m
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.turns.end();
        // a worker blocked handing over a result sees the channel gone
        self.results = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Worker {
    n: u64,
    analyzer: Arc<Mutex<Analyzer>>,
    queue: Arc<DropOldest<Frame>>,
    turns: Arc<Turns>,
    results: SyncSender<Numbered>,
    shutdown: Shutdown,
}

impl Worker {
    fn run(self) {
        while let Some((ticket, frame)) = self.take() {
            let result = {
                let mut a = lock(&self.analyzer);
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.analyze(&frame.image)))
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the analysis panicked")))
            };
            let done = Done {
                frame,
                result,
                finished: Instant::now(),
            };
            if self.results.send(Numbered { ticket, done }).is_err() {
                break;
            }
        }
    }

    /// Wait until a frame may be taken and no other worker is taking one, then for a frame;
    /// None: stop.
    fn take(&self) -> Option<(u64, Frame)> {
        let mut s = self.turns.lock();
        loop {
            if s.over || self.shutdown.is_triggered() {
                return None;
            }
            if !s.taking && s.next_ticket < s.consumed + 2 * self.n {
                break;
            }
            s = self
                .turns
                .changed
                .wait_timeout(s, POLL)
                .map(|r| r.0)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        s.taking = true;
        // hold the right to take (not the lock) while waiting for the camera
        drop(s);
        let release = |took: bool| {
            let mut s = self.turns.lock();
            s.taking = false;
            let ticket = s.next_ticket;
            if took {
                s.next_ticket += 1;
            }
            drop(s);
            self.turns.changed.notify_all();
            ticket
        };
        let frame = loop {
            if self.shutdown.is_triggered() {
                release(false);
                return None;
            }
            match self.queue.pop_timeout(POLL) {
                Pop::Item(f) => break f,
                Pop::Timeout => {
                    if self.turns.lock().over {
                        release(false);
                        return None;
                    }
                }
                Pop::Closed => {
                    release(false);
                    self.turns.end();
                    return None;
                }
            }
        };
        Some((release(true), frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelsConfig;
    use image::RgbImage;
    use std::time::SystemTime;

    fn frame(seq: u64, img: &RgbImage) -> Frame {
        Frame {
            image: img.clone(),
            captured: Instant::now(),
            wall: SystemTime::now(),
            seq,
            origin: None,
        }
    }

    fn analyzers(n: usize) -> Vec<Analyzer> {
        Analyzer::load_copies(
            &ModelsConfig {
                verify_test_vectors: false,
                ..ModelsConfig::default()
            },
            n,
        )
        .unwrap()
    }

    fn photo() -> RgbImage {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/astronaut_640x480.jpg"
        );
        image::open(p).unwrap().to_rgb8()
    }

    #[test]
    fn results_come_back_in_capture_order_from_three_threads_and_all_of_them() {
        const N: u64 = 24;
        let img = photo();
        // room for every frame: none is dropped, so every one must come back, in order
        let queue = Arc::new(DropOldest::new(N as usize));
        let mut pool = Pool::start(analyzers(3), queue.clone(), Shutdown::new()).unwrap();
        assert_eq!(pool.threads(), 3);
        let feeder = {
            let q = queue.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    // frames of two kinds (a face, a black frame): their costs differ, so the
                    // threads finish out of order
                    let f = if i % 3 == 0 {
                        frame(i, &RgbImage::new(640, 480))
                    } else {
                        frame(i, &img)
                    };
                    q.push(f);
                }
                q.close();
            })
        };
        let mut seen = Vec::new();
        loop {
            match pool.next(Duration::from_secs(60)) {
                Next::Item(d) => {
                    let faces = d.result.unwrap().faces.len();
                    assert_eq!(
                        faces,
                        usize::from(d.frame.seq % 3 != 0),
                        "frame {}",
                        d.frame.seq
                    );
                    assert!(d.finished >= d.frame.captured);
                    seen.push(d.frame.seq);
                }
                Next::Timeout => panic!("no result within 60 s; had {seen:?}"),
                Next::Closed => break,
            }
        }
        feeder.join().unwrap();
        assert_eq!(seen, (0..N).collect::<Vec<_>>());
        assert_eq!(queue.dropped(), 0);
        let info = pool.detector_info();
        assert!(info.id.starts_with("blazeface_short_range@"), "{info:?}");
    }

    #[test]
    fn the_model_block_does_not_wait_for_a_worker_busy_with_a_frame() {
        let queue = Arc::new(DropOldest::new(2));
        let pool = Arc::new(Mutex::new(
            Pool::start(analyzers(2), queue, Shutdown::new()).unwrap(),
        ));
        // a worker in the middle of a frame holds its analyzer
        let busy = pool.lock().unwrap().analyzers[1].clone();
        let held = busy.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = pool.clone();
        std::thread::spawn(move || {
            let p = p.lock().unwrap();
            let _ = tx.send((p.detector_info(), p.expression_info()));
        });
        let (d, e) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the model blocks waited for the busy worker");
        drop(held);
        assert!(d.id.starts_with("blazeface_short_range@"), "{d:?}");
        assert!(e.id.starts_with("fer_mini_xception@"), "{e:?}");
    }

    #[test]
    fn the_model_block_adds_up_the_copies_counters_and_shows_a_fallback() {
        let info = |engine: &str, fallback: Option<&str>, stalls| ModelInfo {
            id: "m@1".into(),
            engine: engine.into(),
            accelerator: None,
            fallback: fallback.map(Into::into),
            slow: 1,
            stalls,
            rebuilds: stalls,
        };
        let m = merged(
            [
                info("tflite", None, 0),
                info("tract", Some("tflite stalled"), 3),
                info("tflite", None, 1),
            ]
            .into_iter(),
        );
        assert_eq!((m.slow, m.stalls, m.rebuilds), (3, 4, 4));
        assert_eq!(m.engine, "tract");
        assert_eq!(m.fallback.as_deref(), Some("tflite stalled"));
        assert_eq!(m.id, "m@1");
    }

    #[test]
    fn a_stop_ends_the_workers_even_while_the_camera_is_silent() {
        let queue = Arc::new(DropOldest::new(2));
        let stop = Shutdown::new();
        let pool = Pool::start(analyzers(2), queue, stop.clone()).unwrap();
        stop.trigger();
        // Drop joins the threads: this returns only because they saw the stop
        drop(pool);
    }
}
