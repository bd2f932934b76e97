//! Summaries waiting for the broker: a bounded queue, optionally mirrored on disk so that
//! what was not acknowledged survives a restart or power loss. Each summary is one file,
//! written atomically (write, fsync, rename, fsync the folder) and removed when the broker
//! acknowledges it. Beyond `max` entries the oldest is dropped (and its file removed).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// One summary on its way: payload and, when persisted, its file name. Names sort in
/// creation order (`<unix ms>-<boot id>-<seq>.sum`, zero-padded).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
pub struct Outbox {
    dir: Option<PathBuf>,
    queue: VecDeque<Entry>,
    max: usize,
    /// Dropped because the outbox was full.
    pub dropped: u64,
    /// Files on disk that could not be written or removed (logged each time).
    pub io_errors: u64,
}

const EXT: &str = "sum";

pub fn entry_name(unix_ms: u64, boot_id: u32, seq: u64) -> String {
    format!("{unix_ms:013}-{boot_id:08x}-{seq:010}.{EXT}")
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
        }
    }

    /// An outbox kept in `dir` (created if missing); summaries left there by an earlier run
    /// are loaded first, oldest first. Leftover temporary files of an interrupted write are
    /// removed.
    pub fn open(dir: &Path, max: usize) -> std::io::Result<Outbox> {
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
        let mut ob = Outbox {
            dir: Some(dir.to_path_buf()),
            queue: VecDeque::new(),
            max: max.max(1),
            dropped: 0,
            io_errors: 0,
        };
        for name in names {
            match std::fs::read(dir.join(&name)) {
                Ok(payload) => ob.enqueue(Entry { name, payload }),
                Err(e) => {
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

    fn enqueue(&mut self, e: Entry) {
        if self.queue.len() >= self.max {
            if let Some(old) = self.queue.pop_front() {
                self.remove_file(&old);
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

    /// Add a new summary (persisted first when the outbox is on disk).
    pub fn push(&mut self, name: String, payload: Vec<u8>) {
        if let Some(dir) = &self.dir {
            if let Err(e) = crate::fsutil::write_atomic(
                &dir.join(&name),
                &payload,
                crate::fsutil::Sync::Durable,
            ) {
                self.io_errors += 1;
                log::error!(
                    "outbox: cannot write {}: {e}; keeping it in memory only",
                    dir.join(&name).display()
                );
            }
        }
        self.enqueue(Entry { name, payload });
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
                self.remove_file(&old);
                self.dropped += 1;
            }
        }
    }

    /// The broker has it: forget it.
    pub fn acked(&mut self, e: &Entry) {
        self.remove_file(e);
    }

    fn remove_file(&mut self, e: &Entry) {
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
}
