//! A bounded hand-off between the capture thread and the inference thread: when full, the
//! oldest item is dropped and counted, so the freshest frames are the ones analysed and
//! memory never grows with load.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

pub struct DropOldest<T> {
    inner: Mutex<State<T>>,
    ready: Condvar,
    cap: usize,
}

struct State<T> {
    items: VecDeque<T>,
    dropped: u64,
    skipped: u64,
    closed: bool,
}

pub enum Pop<T> {
    Item(T),
    Timeout,
    /// Closed by the producer and drained.
    Closed,
}

impl<T> DropOldest<T> {
    pub fn new(cap: usize) -> DropOldest<T> {
        DropOldest {
            inner: Mutex::new(State {
                items: VecDeque::with_capacity(cap.max(1)),
                dropped: 0,
                skipped: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count an item the producer could not deliver (a frame that did not decode).
    pub fn skip(&self) {
        self.lock().skipped += 1;
    }

    /// Items the producer skipped so far.
    pub fn skipped(&self) -> u64 {
        self.lock().skipped
    }

    /// Push; returns true when an older item was dropped to make room.
    pub fn push(&self, item: T) -> bool {
        let mut s = self.lock();
        let dropped = if s.items.len() >= self.cap {
            s.items.pop_front();
            s.dropped += 1;
            true
        } else {
            false
        };
        s.items.push_back(item);
        drop(s);
        self.ready.notify_one();
        dropped
    }

    pub fn pop_timeout(&self, timeout: Duration) -> Pop<T> {
        let mut s = self.lock();
        if s.items.is_empty() && !s.closed {
            s = self
                .ready
                .wait_timeout_while(s, timeout, |s| s.items.is_empty() && !s.closed)
                .map(|r| r.0)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        match s.items.pop_front() {
            Some(i) => Pop::Item(i),
            None if s.closed => Pop::Closed,
            None => Pop::Timeout,
        }
    }

    /// Total items dropped so far.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let q = DropOldest::new(2);
        assert!(!q.push(1));
        assert!(!q.push(2));
        assert!(q.push(3));
        assert_eq!(q.dropped(), 1);
        assert!(matches!(q.pop_timeout(Duration::ZERO), Pop::Item(2)));
        assert!(matches!(q.pop_timeout(Duration::ZERO), Pop::Item(3)));
        assert!(matches!(
            q.pop_timeout(Duration::from_millis(1)),
            Pop::Timeout
        ));
        q.push(4);
        q.close();
        assert!(matches!(q.pop_timeout(Duration::ZERO), Pop::Item(4)));
        assert!(matches!(q.pop_timeout(Duration::from_secs(5)), Pop::Closed));
    }

    #[test]
    fn consumer_wakes_when_producer_pushes() {
        let q = std::sync::Arc::new(DropOldest::new(1));
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            matches!(q2.pop_timeout(Duration::from_secs(30)), Pop::Item(7))
        });
        std::thread::sleep(Duration::from_millis(20));
        q.push(7);
        assert!(t.join().unwrap());
    }
}
