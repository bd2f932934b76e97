//! Summaries waiting for the broker: a bounded queue, optionally mirrored on disk so that
//! what was not acknowledged survives a restart or power loss. Each summary is one file,
//! written atomically (write, fsync, rename, fsync the folder) and removed when the broker
//! acknowledges it. Beyond `max` entries the oldest is dropped (and its file removed).
//!
//! A full disk (ENOSPC, or EDQUOT over a quota) neither stops nor loses anything by itself:
//! the oldest outbox files are removed to make room (their summaries stay queued, in memory
//! only) and the write is tried once more; if it still fails the new summary waits in memory
//! only. Either way the queue stays bounded by `max` as always, and the state (see
//! [`OutboxState`]) says so in the health document. Once a write succeeds without making
//! room, a few memory-only summaries are written back to disk with each new one.
//!
//! Length: ~660 lines, ~390 before its unit tests, which take the rest (a small disk injected
//! as the write function: making room, a disk kept full, the bound, write-back, restarts).

use emotiond_wire::OutboxState;
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

/// One summary on its way: payload and, when persisted, its file name. Names sort in
/// creation order (`<unix ms>-<boot id>-<seq>.sum`, zero-padded).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub payload: Vec<u8>,
}

/// How an entry reaches the disk: [`crate::fsutil::write_atomic`] (durable), or what a test
/// puts in its place.
pub struct Writer(Box<WriteFn>);

type WriteFn = dyn FnMut(&Path, &[u8]) -> std::io::Result<()> + Send;

impl Writer {
    pub fn new(f: impl FnMut(&Path, &[u8]) -> std::io::Result<()> + Send + 'static) -> Writer {
        Writer(Box::new(f))
    }

    fn durable() -> Writer {
        Writer::new(|p, b| crate::fsutil::write_atomic(p, b, crate::fsutil::Sync::Durable))
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

#[derive(Debug)]
pub struct Outbox {
    dir: Option<PathBuf>,
    queue: VecDeque<Entry>,
    max: usize,
    /// Dropped because the outbox was full.
    pub dropped: u64,
    /// Files that could not be read or removed (logged each time).
    pub io_errors: u64,
    /// New summaries that could not be written (after making room, for a full disk): they
    /// wait in memory only.
    pub write_errors: u64,
    /// Writes refused for lack of space (ENOSPC/EDQUOT), before making room.
    pub disk_full: u64,
    /// Files removed to make room on a full disk (their summaries stay queued in memory).
    pub evicted: u64,
    /// Memory-only summaries written to disk again once there was room.
    pub rewritten: u64,
    /// Names of the entries (queued or in flight) that have no file.
    memory_only: HashSet<String>,
    /// The time part of the newest name given (see [`Outbox::name_for`]).
    last_name_ms: u64,
    state: OutboxState,
    write: Writer,
}

const EXT: &str = "sum";

/// Memory-only summaries written back to disk with each new summary once writes succeed
/// again (each is an fsync: a bound on the time one summary can take).
pub const REWRITE_PER_PUSH: usize = 8;

/// Bytes counted for a file when making room: at least one block.
const BLOCK: u64 = 4096;

pub fn entry_name(unix_ms: u64, boot_id: u32, seq: u64) -> String {
    format!("{unix_ms:013}-{boot_id:08x}-{seq:010}.{EXT}")
}

/// A write failed for lack of space: the file system is full (ENOSPC) or the user is over
/// its quota (EDQUOT).
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl Outbox {
    /// A memory-only outbox.
    pub fn in_memory(max: usize) -> Outbox {
        Outbox {
            dir: None,
            queue: VecDeque::new(),
            max: max.max(1),
            dropped: 0,
            io_errors: 0,
            write_errors: 0,
            disk_full: 0,
            evicted: 0,
            rewritten: 0,
            memory_only: HashSet::new(),
            last_name_ms: 0,
            state: OutboxState::MemoryOnly,
            write: Writer::durable(),
        }
    }

    /// An outbox kept in `dir` (created if missing); summaries left there by an earlier run
    /// are loaded first, oldest first. Leftover temporary files of an interrupted write are
    /// removed.
    pub fn open(dir: &Path, max: usize) -> std::io::Result<Outbox> {
        Outbox::open_with(dir, max, Writer::durable())
    }

    /// [`Outbox::open`] writing its entries with `write`.
    pub fn open_with(dir: &Path, max: usize, write: Writer) -> std::io::Result<Outbox> {
        crate::fsutil::create_dir_all(dir)?;
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            } else if name.ends_with(&format!(".{EXT}")) {
                names.push(name);
            }
        }
        names.sort();
        let last_name_ms = names
            .last()
            .and_then(|n| n.split('-').next()?.parse().ok())
            .unwrap_or(0);
        let mut ob = Outbox {
            last_name_ms,
            dir: Some(dir.to_path_buf()),
            state: OutboxState::Ok,
            write,
            ..Outbox::in_memory(max)
        };
        for name in names {
            match std::fs::read(dir.join(&name)) {
                Ok(payload) => ob.enqueue(Entry { name, payload }),
                Err(e) => {
                    ob.io_errors += 1;
                    log::warn!(
                        "outbox: cannot read {}: {e}; removing it",
                        dir.join(&name).display()
                    );
                    let _ = std::fs::remove_file(dir.join(&name));
                }
            }
        }
        Ok(ob)
    }

    pub fn is_persistent(&self) -> bool {
        self.dir.is_some()
    }

    /// Whether new summaries reach the disk.
    pub fn state(&self) -> OutboxState {
        self.state
    }

    /// Summaries not acknowledged yet (queued or in flight) that have no file.
    pub fn memory_only(&self) -> usize {
        self.memory_only.len()
    }

    fn enqueue(&mut self, e: Entry) {
        if self.queue.len() >= self.max {
            if let Some(old) = self.queue.pop_front() {
                self.forget(&old);
                self.dropped += 1;
                log::warn!(
                    "outbox full ({}): dropped the oldest summary {}",
                    self.max,
                    old.name
                );
            }
        }
        self.queue.push_back(e);
    }

    /// The name of a new summary closed at wall time `window_end_ms`: [`entry_name`] with a
    /// time part that never goes back (not after a backward step of the wall clock either,
    /// nor below what an earlier run left), so that the names sort in the order the
    /// summaries were made and a restart delivers them in that order.
    pub fn name_for(&mut self, window_end_ms: u64, boot_id: u32, seq: u64) -> String {
        self.last_name_ms = self.last_name_ms.max(window_end_ms);
        entry_name(self.last_name_ms, boot_id, seq)
    }

    /// Add a new summary (persisted first when the outbox is on disk).
    pub fn push(&mut self, name: String, payload: Vec<u8>) {
        if self.dir.is_some() {
            match self.write_new(&name, &payload) {
                Written::Plainly => {
                    self.set_state(OutboxState::Ok, None);
                    self.enqueue(Entry { name, payload });
                    self.rewrite(REWRITE_PER_PUSH);
                    return;
                }
                Written::AfterMakingRoom => self.set_state(OutboxState::DiskFull, None),
                Written::No(e) => {
                    self.write_errors += 1;
                    self.memory_only.insert(name.clone());
                    let state = if is_no_space(&e) {
                        OutboxState::DiskFull
                    } else {
                        OutboxState::WriteError
                    };
                    self.set_state(state, Some((&name, &e)));
                }
            }
        }
        self.enqueue(Entry { name, payload });
    }

    /// Log a change of state (each failed write after the first of a run at debug level).
    fn set_state(&mut self, state: OutboxState, failed: Option<(&str, &std::io::Error)>) {
        let dir = self.dir.as_deref().unwrap_or(Path::new(""));
        match failed {
            Some((name, e)) if state != self.state => log::error!(
                "outbox: cannot write {}: {e}; keeping it in memory only ({} so far) until \
                 the disk takes writes again",
                dir.join(name).display(),
                self.memory_only.len()
            ),
            Some((name, e)) => log::debug!("outbox: cannot write {name} either: {e}"),
            None if state == OutboxState::Ok && self.state != OutboxState::Ok => log::warn!(
                "outbox {}: writes succeed again; {} summaries in memory only to write back",
                dir.display(),
                self.memory_only.len()
            ),
            None if state == OutboxState::DiskFull && self.state != state => log::warn!(
                "outbox {}: the disk is full; making room by keeping the oldest summaries \
                 in memory only",
                dir.display()
            ),
            None => {}
        }
        self.state = state;
    }

    /// Write a new entry; on a full disk make room and try once more.
    fn write_new(&mut self, name: &str, payload: &[u8]) -> Written {
        let Some(path) = self.dir.as_ref().map(|d| d.join(name)) else {
            return Written::No(std::io::Error::other("no outbox folder"));
        };
        match (self.write.0)(&path, payload) {
            Ok(()) => Written::Plainly,
            Err(e) if is_no_space(&e) => {
                self.disk_full += 1;
                if self.make_room(payload.len() as u64) == 0 {
                    return Written::No(e);
                }
                match (self.write.0)(&path, payload) {
                    Ok(()) => Written::AfterMakingRoom,
                    Err(e) => Written::No(e),
                }
            }
            Err(e) => Written::No(e),
        }
    }

    /// Remove the files of the oldest queued entries that have one, until what they took
    /// covers `need` bytes (in whole blocks: one file for one summary, so that a disk kept
    /// full stays `disk_full` rather than taking every other write). Their summaries stay
    /// queued, in memory only. Returns the files removed.
    fn make_room(&mut self, need: u64) -> usize {
        let Some(dir) = self.dir.clone() else {
            return 0;
        };
        let target = need.div_ceil(BLOCK).max(1) * BLOCK;
        let (mut freed, mut removed) = (0u64, 0usize);
        for e in &self.queue {
            if freed >= target {
                break;
            }
            if self.memory_only.contains(&e.name) {
                continue;
            }
            let p = dir.join(&e.name);
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            match std::fs::remove_file(&p) {
                Ok(()) => {
                    freed += len.div_ceil(BLOCK).max(1) * BLOCK;
                    removed += 1;
                    self.memory_only.insert(e.name.clone());
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    self.memory_only.insert(e.name.clone());
                }
                Err(err) => {
                    self.io_errors += 1;
                    log::error!("outbox: cannot remove {}: {err}", p.display());
                }
            }
        }
        self.evicted += removed as u64;
        removed
    }

    /// Write up to `n` memory-only queued entries back to disk, oldest first; stop at the
    /// first failure (without making room: that is for new summaries only).
    fn rewrite(&mut self, n: usize) {
        let Some(dir) = self.dir.clone() else { return };
        if self.memory_only.is_empty() {
            return;
        }
        let mut done = 0;
        for e in &self.queue {
            if done == n {
                break;
            }
            if !self.memory_only.contains(&e.name) {
                continue;
            }
            if let Err(err) = (self.write.0)(&dir.join(&e.name), &e.payload) {
                log::debug!("outbox: cannot write {} back yet: {err}", e.name);
                break;
            }
            self.memory_only.remove(&e.name);
            self.rewritten += 1;
            done += 1;
        }
    }

    /// The oldest entry, taken out to be published.
    pub fn take(&mut self) -> Option<Entry> {
        self.queue.pop_front()
    }

    /// Entries taken but not acknowledged go back to the front, in order.
    pub fn requeue(&mut self, mut entries: Vec<Entry>) {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries.into_iter().rev() {
            self.queue.push_front(e);
        }
        while self.queue.len() > self.max {
            if let Some(old) = self.queue.pop_front() {
                self.forget(&old);
                self.dropped += 1;
            }
        }
    }

    /// The broker has it: forget it.
    pub fn acked(&mut self, e: &Entry) {
        self.forget(e);
    }

    fn forget(&mut self, e: &Entry) {
        if self.memory_only.remove(&e.name) {
            return;
        }
        if let Some(dir) = &self.dir {
            let p = dir.join(&e.name);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    self.io_errors += 1;
                    log::error!("outbox: cannot remove {}: {err}", p.display());
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// How a new entry went to disk.
enum Written {
    Plainly,
    /// Once files of older entries were removed.
    AfterMakingRoom,
    No(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn memory_outbox_drops_oldest_beyond_its_bound() {
        let mut o = Outbox::in_memory(2);
        for i in 0..5u64 {
            o.push(entry_name(1000 + i, 1, i), vec![i as u8]);
        }
        assert_eq!(o.dropped, 3);
        assert_eq!(o.take().unwrap().payload, vec![3]);
        assert_eq!(o.take().unwrap().payload, vec![4]);
        assert!(o.take().is_none());
    }

    #[test]
    fn unacknowledged_summaries_survive_a_restart_in_order_and_acked_ones_do_not() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(d.path(), 10).unwrap();
        for i in 0..4u64 {
            o.push(entry_name(2000 + i, 7, i), format!("s{i}").into_bytes());
        }
        let first = o.take().unwrap();
        o.acked(&first);
        let second = o.take().unwrap(); // handed out, never acknowledged
        assert_eq!(files(d.path()).len(), 3);
        // an interrupted write leaves a temporary file: it is ignored and removed
        std::fs::write(d.path().join(".x.sum.tmp"), b"half").unwrap();
        drop(o);
        let mut again = Outbox::open(d.path(), 10).unwrap();
        assert!(again.is_persistent());
        let got: Vec<Vec<u8>> = std::iter::from_fn(|| again.take())
            .map(|e| e.payload)
            .collect();
        assert_eq!(got, vec![second.payload, b"s2".to_vec(), b"s3".to_vec()]);
        assert!(!files(d.path()).iter().any(|f| f.ends_with(".tmp")));
    }

    #[test]
    fn names_keep_their_order_when_the_wall_clock_steps_back_and_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::open(dir.path(), 10).unwrap();
        let a = ob.name_for(5_000_000, 7, 1);
        // the clock went back an hour: the name does not
        let b = ob.name_for(1_400_000, 7, 2);
        assert!(a < b, "{a} {b}");
        assert_eq!(b, entry_name(5_000_000, 7, 2));
        ob.push(a.clone(), b"1".to_vec());
        ob.push(b.clone(), b"2".to_vec());
        drop(ob);
        // a restart with the clock still behind: new names sort after what was left
        let mut ob = Outbox::open(dir.path(), 10).unwrap();
        let c = ob.name_for(1_500_000, 9, 0);
        assert!(b < c, "{b} {c}");
        assert_eq!(c, entry_name(5_000_000, 9, 0));
        // and the clock moving on is followed
        assert_eq!(ob.name_for(6_000_000, 9, 1), entry_name(6_000_000, 9, 1));
    }

    #[test]
    fn requeued_entries_go_back_in_front_in_order() {
        let mut o = Outbox::in_memory(10);
        for i in 0..4u64 {
            o.push(entry_name(3000 + i, 1, i), vec![i as u8]);
        }
        let a = o.take().unwrap();
        let b = o.take().unwrap();
        o.requeue(vec![b, a]);
        let got: Vec<u8> = std::iter::from_fn(|| o.take())
            .map(|e| e.payload[0])
            .collect();
        assert_eq!(got, vec![0, 1, 2, 3]);
    }

    #[test]
    fn full_disk_outbox_removes_the_dropped_files() {
        let d = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(d.path(), 2).unwrap();
        for i in 0..5u64 {
            o.push(entry_name(4000 + i, 1, i), vec![i as u8]);
        }
        assert_eq!(files(d.path()).len(), 2);
        assert_eq!(o.dropped, 3);
    }

    #[test]
    fn unwritable_folder_is_an_error_at_open() {
        assert!(Outbox::open(Path::new("/proc/emotiond-outbox"), 2).is_err());
    }

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    /// A disk of `cap` bytes (each file takes whole blocks) over a real folder: a write
    /// that would not fit fails with ENOSPC, as a full tmpfs does.
    fn small_disk(cap: Arc<AtomicU64>) -> Writer {
        Writer::new(move |p, b| {
            let dir = p.parent().unwrap();
            let used: u64 = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len().div_ceil(BLOCK).max(1) * BLOCK)
                .sum();
            if used + (b.len() as u64).div_ceil(BLOCK).max(1) * BLOCK > cap.load(Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            crate::fsutil::write_atomic(p, b, crate::fsutil::Sync::Atomic)
        })
    }

    fn sums(dir: &Path) -> Vec<String> {
        files(dir)
            .into_iter()
            .filter(|f| f.ends_with(".sum"))
            .collect()
    }

    #[test]
    fn enospc_and_edquot_are_no_space_and_other_errors_are_not() {
        assert!(is_no_space(&std::io::Error::from_raw_os_error(28)));
        assert!(is_no_space(&std::io::Error::from_raw_os_error(122))); // EDQUOT
        assert!(!is_no_space(&std::io::Error::from_raw_os_error(13))); // EACCES
        assert!(!is_no_space(&std::io::Error::other("x")));
    }

    #[test]
    fn a_full_disk_moves_the_oldest_files_to_memory_and_loses_nothing() {
        let d = tempfile::tempdir().unwrap();
        let cap = Arc::new(AtomicU64::new(4 * BLOCK));
        let mut o = Outbox::open_with(d.path(), 100, small_disk(cap.clone())).unwrap();
        assert_eq!(o.state(), OutboxState::Ok);
        for i in 0..4u64 {
            o.push(entry_name(5000 + i, 1, i), vec![i as u8; 100]);
        }
        assert_eq!((sums(d.path()).len(), o.memory_only()), (4, 0));
        // the fifth does not fit: the oldest files make room, the newest is on disk
        o.push(entry_name(5004, 1, 4), vec![4; 100]);
        assert_eq!(o.disk_full, 1);
        assert_eq!(o.evicted, 1, "one block for one block");
        assert_eq!(o.state(), OutboxState::DiskFull);
        assert_eq!(o.write_errors, 0);
        let on_disk = sums(d.path());
        assert_eq!(on_disk.len(), 4);
        assert!(on_disk.contains(&entry_name(5004, 1, 4)));
        assert!(!on_disk.contains(&entry_name(5000, 1, 0)));
        assert_eq!((o.len(), o.memory_only(), o.dropped), (5, 1, 0));
        // the disk stays full: each new one takes the place of the oldest file
        o.push(entry_name(5005, 1, 5), vec![5; 100]);
        assert_eq!(
            (o.state(), o.evicted, o.memory_only()),
            (OutboxState::DiskFull, 2, 2)
        );
        // a filler takes the rest: removing files no longer helps, until none is left
        cap.store(0, Ordering::SeqCst);
        for i in 6..11u64 {
            o.push(entry_name(5000 + i, 1, i), vec![i as u8; 100]);
        }
        assert_eq!(o.state(), OutboxState::DiskFull);
        assert_eq!(sums(d.path()).len(), 0, "every file removed to make room");
        assert_eq!((o.write_errors, o.evicted, o.disk_full), (5, 6, 7));
        assert_eq!((o.len(), o.memory_only(), o.dropped), (11, 11, 0));
        // all of them still come out, in order
        let got: Vec<u8> = std::iter::from_fn(|| o.take())
            .map(|e| e.payload[0])
            .collect();
        assert_eq!(got, (0..11).collect::<Vec<u8>>());
    }

    #[test]
    fn memory_only_entries_stay_bounded_by_max_with_a_count() {
        let d = tempfile::tempdir().unwrap();
        let cap = Arc::new(AtomicU64::new(0));
        let mut o = Outbox::open_with(d.path(), 3, small_disk(cap)).unwrap();
        for i in 0..5u64 {
            o.push(entry_name(6000 + i, 1, i), vec![i as u8]);
        }
        assert_eq!((o.len(), o.memory_only(), o.dropped), (3, 3, 2));
        assert_eq!((o.write_errors, o.disk_full), (5, 5));
        // acknowledged memory-only entries are forgotten, not counted as io errors
        let e = o.take().unwrap();
        assert_eq!(e.payload, vec![2]);
        o.acked(&e);
        assert_eq!((o.memory_only(), o.io_errors), (2, 0));
    }

    #[test]
    fn when_space_returns_writes_succeed_and_memory_only_entries_go_back_to_disk() {
        let d = tempfile::tempdir().unwrap();
        let cap = Arc::new(AtomicU64::new(0));
        let mut o = Outbox::open_with(d.path(), 100, small_disk(cap.clone())).unwrap();
        let n = REWRITE_PER_PUSH as u64 + 3;
        for i in 0..n {
            o.push(entry_name(7000 + i, 1, i), vec![i as u8]);
        }
        assert_eq!(o.memory_only(), n as usize);
        // one entry taken (in flight) is not written back; requeued, it is
        let inflight = o.take().unwrap();
        cap.store(1 << 30, Ordering::SeqCst);
        o.push(entry_name(7000 + n, 1, n), vec![n as u8]);
        assert_eq!(o.state(), OutboxState::Ok);
        assert_eq!(
            o.rewritten, REWRITE_PER_PUSH as u64,
            "a bounded batch per summary"
        );
        assert_eq!(o.memory_only(), n as usize - REWRITE_PER_PUSH);
        o.requeue(vec![inflight]);
        o.push(entry_name(8000, 1, n + 1), vec![0]);
        assert_eq!(o.memory_only(), 0);
        assert_eq!(sums(d.path()).len(), n as usize + 2);
        // and they survive a restart, in order
        drop(o);
        let mut again = Outbox::open(d.path(), 100).unwrap();
        let got: Vec<u8> = std::iter::from_fn(|| again.take())
            .map(|e| e.payload[0])
            .collect();
        let mut want: Vec<u8> = (0..=n as u8).collect();
        want.push(0);
        assert_eq!(got, want);
    }

    #[test]
    fn other_write_errors_keep_the_entry_in_memory_without_removing_files() {
        let d = tempfile::tempdir().unwrap();
        let fail = Arc::new(AtomicUsize::new(0));
        let f = fail.clone();
        let w = Writer::new(move |p, b| {
            if f.load(Ordering::SeqCst) > 0 {
                return Err(std::io::Error::from_raw_os_error(5)); // EIO
            }
            crate::fsutil::write_atomic(p, b, crate::fsutil::Sync::Atomic)
        });
        let mut o = Outbox::open_with(d.path(), 10, w).unwrap();
        o.push(entry_name(9000, 1, 0), vec![0]);
        fail.store(1, Ordering::SeqCst);
        o.push(entry_name(9001, 1, 1), vec![1]);
        assert_eq!(o.state(), OutboxState::WriteError);
        assert_eq!((o.write_errors, o.disk_full, o.evicted), (1, 0, 0));
        assert_eq!((sums(d.path()).len(), o.memory_only(), o.len()), (1, 1, 2));
        fail.store(0, Ordering::SeqCst);
        o.push(entry_name(9002, 1, 2), vec![2]);
        assert_eq!((o.state(), o.memory_only()), (OutboxState::Ok, 0));
        assert_eq!(sums(d.path()).len(), 3);
    }

    #[test]
    fn a_memory_outbox_says_so() {
        let mut o = Outbox::in_memory(2);
        o.push(entry_name(1, 1, 0), vec![0]);
        assert_eq!(
            (o.state(), o.memory_only(), o.write_errors),
            (OutboxState::MemoryOnly, 0, 0)
        );
    }
}
