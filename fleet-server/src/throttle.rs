//! Login rate limiting: a pure state machine, the time passed in (milliseconds on any
//! monotonic clock).
//!
//! Failed logins are counted per user name and per client address. After [`USER_LIMIT`]
//! failures within [`WINDOW_MS`] for one name, or [`ADDRESS_LIMIT`] for one address, further
//! attempts for it are refused without checking the password, for [`WINDOW_MS`] from the
//! failure that reached the limit. The window of a count starts at its first failure.
//!
//! - A successful login clears its name's count, not its address's (one valid account must
//!   not reset a guesser's count).
//! - An attempt in progress counts against the limit until its outcome is known, so a burst
//!   of parallel requests gets no more guesses than a sequence of them.
//! - Each table keeps at most [`MAX_KEYS`] keys and evicts the least recently touched, so a
//!   flood of random names or addresses cannot grow it.
//! - IPv6 addresses are counted per /64 (what one host or site usually holds), IPv4-mapped
//!   IPv6 addresses as the IPv4 address.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};

/// How long failures are counted, and how long a name or address is refused once it has
/// reached its limit.
pub const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Failed logins for one user name within [`WINDOW_MS`] before the name is refused.
pub const USER_LIMIT: u32 = 5;
/// Failed logins from one client address within [`WINDOW_MS`] before it is refused (higher
/// than [`USER_LIMIT`]: people behind one NAT share an address).
pub const ADDRESS_LIMIT: u32 = 20;
/// Names, and addresses, tracked at most (up to about 150 bytes a name and 70 an address:
/// some 2 MB in all).
pub const MAX_KEYS: usize = 10_000;
/// What a refusal asks to wait when only attempts in progress fill the limit.
const BUSY_RETRY_MS: i64 = 1000;

/// What is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    Address,
}

/// Why an attempt is refused, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub scope: Scope,
    /// false: no lockout, only too many attempts for it in progress at once
    pub locked: bool,
    pub retry_after_ms: i64,
}

impl Refused {
    /// Whole seconds to wait (at least 1), for `Retry-After`.
    pub fn retry_after_s(&self) -> u64 {
        (self.retry_after_ms.max(1) as u64).div_ceil(1000)
    }
}

/// A lockout that has just started (for the audit log, once per lockout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub scope: Scope,
    pub failures: u32,
    pub for_ms: i64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// failures since `since_ms`
    failures: u32,
    /// attempts let through and not yet decided
    pending: u32,
    since_ms: i64,
    /// refused before this (0: never locked)
    locked_until_ms: i64,
    touched_ms: i64,
}

impl Entry {
    /// Failures that still count at `now`: all while locked; none once the lockout or
    /// the window has passed.
    fn failures_at(&self, now: i64, window: i64) -> u32 {
        if self.locked_until_ms > now {
            self.failures
        } else if self.locked_until_ms != 0 || now - self.since_ms >= window {
            0
        } else {
            self.failures
        }
    }
}

/// One table: counts for names or for addresses.
#[derive(Debug)]
struct Table<K> {
    limit: u32,
    window_ms: i64,
    cap: usize,
    map: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(limit: u32, window_ms: i64, cap: usize) -> Self {
        Table {
            limit,
            window_ms,
            cap: cap.max(1),
            map: HashMap::new(),
        }
    }

    fn check(&self, k: &K, now: i64, scope: Scope) -> Result<(), Refused> {
        let Some(e) = self.map.get(k) else {
            return Ok(());
        };
        if e.locked_until_ms > now {
            return Err(Refused {
                scope,
                locked: true,
                retry_after_ms: e.locked_until_ms - now,
            });
        }
        if e.failures_at(now, self.window_ms) + e.pending >= self.limit {
            return Err(Refused {
                scope,
                locked: false,
                retry_after_ms: BUSY_RETRY_MS,
            });
        }
        Ok(())
    }

    /// The entry for `k`, brought up to `now` (an old window or lockout forgotten); made,
    /// evicting the least recently touched when the table is full.
    fn entry(&mut self, k: &K, now: i64) -> &mut Entry {
        if !self.map.contains_key(k) && self.map.len() >= self.cap {
            let window = self.window_ms;
            self.map
                .retain(|_, e| e.pending > 0 || e.failures_at(now, window) > 0);
            if self.map.len() >= self.cap {
                let oldest = self
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.touched_ms)
                    .map(|(k, _)| k.clone());
                if let Some(o) = oldest {
                    self.map.remove(&o);
                }
            }
        }
        let window = self.window_ms;
        let e = self.map.entry(k.clone()).or_insert(Entry {
            failures: 0,
            pending: 0,
            since_ms: now,
            locked_until_ms: 0,
            touched_ms: now,
        });
        if e.failures_at(now, window) == 0 {
            e.failures = 0;
            e.locked_until_ms = 0;
            e.since_ms = now;
        }
        e.touched_ms = now;
        e
    }

    fn begin(&mut self, k: &K, now: i64) {
        self.entry(k, now).pending += 1;
    }

    /// The attempt failed; the lockout it starts, if it reaches the limit.
    fn fail(&mut self, k: &K, now: i64, scope: Scope) -> Option<Lockout> {
        let (limit, window) = (self.limit, self.window_ms);
        let e = self.entry(k, now);
        e.pending = e.pending.saturating_sub(1);
        e.failures += 1;
        if e.failures >= limit && e.locked_until_ms <= now {
            e.locked_until_ms = now + window;
            return Some(Lockout {
                scope,
                failures: e.failures,
                for_ms: window,
            });
        }
        None
    }

    /// The attempt ended without a failure.
    fn end(&mut self, k: &K) {
        if let Some(e) = self.map.get_mut(k) {
            e.pending = e.pending.saturating_sub(1);
        }
    }

    fn clear(&mut self, k: &K) {
        self.map.remove(k);
    }
}

/// Failed-login counts per user name and per client address.
#[derive(Debug)]
pub struct Throttle {
    users: Table<String>,
    addresses: Table<IpAddr>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(USER_LIMIT, ADDRESS_LIMIT, WINDOW_MS, MAX_KEYS)
    }
}

/// What an address is counted as.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Throttle {
    /// Other limits than the defaults (tests); `cap` keys per table.
    pub fn new(user_limit: u32, address_limit: u32, window_ms: i64, cap: usize) -> Self {
        Throttle {
            users: Table::new(user_limit.max(1), window_ms, cap),
            addresses: Table::new(address_limit.max(1), window_ms, cap),
        }
    }

    /// May `user` try a password from `ip` now? If so the attempt counts as in progress
    /// until [`Throttle::failed`], [`Throttle::succeeded`] or [`Throttle::abandoned`]. When
    /// both the name and the address are refused, the longer wait is given.
    pub fn begin(&mut self, user: &str, ip: IpAddr, now_ms: i64) -> Result<(), Refused> {
        let user = user.to_string();
        let ip = address_key(ip);
        let by_user = self.users.check(&user, now_ms, Scope::User);
        let by_address = self.addresses.check(&ip, now_ms, Scope::Address);
        match (by_user, by_address) {
            (Ok(()), Ok(())) => {
                self.users.begin(&user, now_ms);
                self.addresses.begin(&ip, now_ms);
                Ok(())
            }
            (Err(a), Err(b)) => Err(if b.retry_after_ms > a.retry_after_ms {
                b
            } else {
                a
            }),
            (Err(r), _) | (_, Err(r)) => Err(r),
        }
    }

    /// A wrong password (or an unknown user): the lockouts this failure starts (none, or
    /// the name's, or the address's, or both).
    pub fn failed(&mut self, user: &str, ip: IpAddr, now_ms: i64) -> Vec<Lockout> {
        let ip = address_key(ip);
        [
            self.users.fail(&user.to_string(), now_ms, Scope::User),
            self.addresses.fail(&ip, now_ms, Scope::Address),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The right password: the name's count is cleared; the address's stays.
    pub fn succeeded(&mut self, user: &str, ip: IpAddr) {
        self.users.clear(&user.to_string());
        self.addresses.end(&address_key(ip));
    }

    /// The attempt ended undecided (the client went away, the store failed): it no longer
    /// counts as in progress, nor as a failure.
    pub fn abandoned(&mut self, user: &str, ip: IpAddr) {
        self.users.end(&user.to_string());
        self.addresses.end(&address_key(ip));
    }

    /// Names and addresses tracked.
    pub fn tracked(&self) -> (usize, usize) {
        (self.users.map.len(), self.addresses.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// One whole failed attempt.
    fn fail(t: &mut Throttle, user: &str, addr: &str, now: i64) -> Result<Vec<Lockout>, Refused> {
        t.begin(user, ip(addr), now)?;
        Ok(t.failed(user, ip(addr), now))
    }

    #[test]
    fn a_name_is_locked_after_five_failures_and_unlocked_when_the_window_passes() {
        let mut t = Throttle::default();
        for i in 0..4 {
            assert_eq!(fail(&mut t, "admin", "10.0.0.1", i * MIN), Ok(vec![]));
        }
        // the fifth starts the lockout, reported once
        let l = fail(&mut t, "admin", "10.0.0.1", 4 * MIN).unwrap();
        assert_eq!(
            l,
            vec![Lockout {
                scope: Scope::User,
                failures: 5,
                for_ms: WINDOW_MS
            }]
        );
        // refused from any address, without a password check, with the time left
        let r = t.begin("admin", ip("10.9.9.9"), 5 * MIN).unwrap_err();
        assert_eq!(r.scope, Scope::User);
        assert!(r.locked);
        assert_eq!(r.retry_after_ms, 14 * MIN);
        assert_eq!(r.retry_after_s(), 14 * 60);
        let r = t
            .begin("admin", ip("10.0.0.1"), 19 * MIN - 500)
            .unwrap_err();
        assert_eq!(r.retry_after_s(), 1);
        // refusals are not failures: they neither extend the lockout nor report it again
        assert_eq!(t.tracked(), (1, 1));
        // the lockout over, the count starts again from nothing
        assert_eq!(t.begin("admin", ip("10.0.0.1"), 19 * MIN), Ok(()));
        assert_eq!(t.failed("admin", ip("10.0.0.1"), 19 * MIN), vec![]);
        for i in 1..4 {
            assert_eq!(fail(&mut t, "admin", "10.0.0.2", 19 * MIN + i), Ok(vec![]));
        }
        assert_eq!(
            fail(&mut t, "admin", "10.0.0.2", 20 * MIN).unwrap().len(),
            1
        );
    }

    #[test]
    fn a_lockout_outlives_the_window_it_was_counted_in() {
        let mut t = Throttle::new(5, 20, WINDOW_MS, 2);
        for i in 0..5 {
            fail(&mut t, "admin", "10.0.0.1", i * 3 * MIN).unwrap();
        }
        // locked at 12 min for 15: still locked at 20 min, though the window opened at 0
        let r = t.begin("admin", ip("10.0.0.1"), 20 * MIN).unwrap_err();
        assert_eq!(r.retry_after_ms, 7 * MIN);
        // a full table makes room by dropping what no longer counts (here a name whose
        // only attempt was abandoned, touched after the lockout), not the lockout
        t.begin("z", ip("10.0.0.3"), 13 * MIN).unwrap();
        t.abandoned("z", ip("10.0.0.3"));
        fail(&mut t, "x", "10.0.0.2", 20 * MIN).unwrap();
        // (and the addresses: 10.0.0.1's window has passed, 10.0.0.3 never failed)
        assert_eq!(t.tracked(), (2, 1));
        assert!(
            t.begin("admin", ip("10.0.0.2"), 21 * MIN)
                .unwrap_err()
                .locked
        );
        assert!(t.begin("admin", ip("10.0.0.2"), 27 * MIN).is_ok());
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let mut t = Throttle::default();
        for i in 0..4 {
            fail(&mut t, "ana", "10.0.0.1", i).unwrap();
        }
        // the window opened by the first failure has passed: four old ones are forgotten
        for i in 0..4 {
            assert_eq!(fail(&mut t, "ana", "10.0.0.1", 15 * MIN + i), Ok(vec![]));
        }
        assert_eq!(t.begin("ana", ip("10.0.0.1"), 15 * MIN + 10), Ok(()));
    }

    #[test]
    fn a_success_clears_the_name_but_not_the_address() {
        let mut t = Throttle::default();
        for i in 0..4 {
            fail(&mut t, "ana", "10.0.0.1", i).unwrap();
        }
        t.begin("ana", ip("10.0.0.1"), 10).unwrap();
        t.succeeded("ana", ip("10.0.0.1"));
        for i in 0..4 {
            assert_eq!(fail(&mut t, "ana", "10.0.0.1", 20 + i), Ok(vec![]));
        }
        assert_eq!(t.begin("ana", ip("10.0.0.1"), 30), Ok(()));
        t.abandoned("ana", ip("10.0.0.1"));
        // the address has 8 failures: 12 more (over several names) lock it
        for i in 0..11 {
            let name = format!("u{i}");
            assert_eq!(fail(&mut t, &name, "10.0.0.1", 40), Ok(vec![]));
        }
        let l = fail(&mut t, "u11", "10.0.0.1", 50).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].scope, l[0].failures), (Scope::Address, 20));
        // now every name from that address is refused, the same name from another is not
        let r = t.begin("bob", ip("10.0.0.1"), 60).unwrap_err();
        assert_eq!((r.scope, r.locked), (Scope::Address, true));
        assert_eq!(t.begin("bob", ip("10.0.0.2"), 60), Ok(()));
    }

    #[test]
    fn one_locked_name_does_not_lock_another() {
        let mut t = Throttle::default();
        for i in 0..5 {
            fail(&mut t, "admin", "10.0.0.1", i).unwrap();
        }
        assert!(t.begin("admin", ip("10.0.0.1"), 10).is_err());
        assert_eq!(t.begin("ana", ip("10.0.0.1"), 10), Ok(()));
        t.succeeded("ana", ip("10.0.0.1"));
        assert!(t.begin("admin", ip("10.0.0.1"), 11).is_err());
    }

    #[test]
    fn attempts_in_progress_count_so_a_burst_gets_no_more_guesses() {
        let mut t = Throttle::default();
        for _ in 0..5 {
            t.begin("admin", ip("10.0.0.1"), 0).unwrap();
        }
        let r = t.begin("admin", ip("10.0.0.1"), 0).unwrap_err();
        assert_eq!(
            (r.scope, r.locked, r.retry_after_s()),
            (Scope::User, false, 1)
        );
        // four fail, one is abandoned (the client went away): room for one more
        for _ in 0..4 {
            assert_eq!(t.failed("admin", ip("10.0.0.1"), 1), vec![]);
        }
        t.abandoned("admin", ip("10.0.0.1"));
        t.begin("admin", ip("10.0.0.1"), 2).unwrap();
        assert_eq!(t.failed("admin", ip("10.0.0.1"), 2).len(), 1);
        assert!(t.begin("admin", ip("10.0.0.1"), 3).unwrap_err().locked);
    }

    #[test]
    fn the_cap_holds_under_a_flood_of_names_and_evicts_the_oldest() {
        let mut t = Throttle::new(5, 1_000_000, WINDOW_MS, 100);
        for i in 0..5 {
            fail(&mut t, "admin", "10.0.0.1", i).unwrap();
        }
        for i in 0..10_000 {
            let _ = fail(
                &mut t,
                &format!("random-{i}"),
                &format!("10.1.{}.{}", i / 256, i % 256),
                10 + i,
            );
            let (users, addresses) = t.tracked();
            assert!(users <= 100 && addresses <= 100, "{users} {addresses}");
        }
        // the flood pushed the oldest entries out, the newest are still counted
        assert_eq!(t.begin("admin", ip("10.0.0.1"), 20_000), Ok(()));
        t.abandoned("admin", ip("10.0.0.1"));
        for _ in 0..4 {
            fail(&mut t, "random-9999", "10.2.0.1", 20_000).unwrap();
        }
        assert!(t.begin("random-9999", ip("10.2.0.2"), 20_001).is_err());
        // entries whose window has passed go first
        let mut t = Throttle::new(5, 20, WINDOW_MS, 3);
        fail(&mut t, "old", "10.0.0.1", 0).unwrap();
        fail(&mut t, "a", "10.0.0.1", WINDOW_MS - 2).unwrap();
        fail(&mut t, "b", "10.0.0.1", WINDOW_MS - 1).unwrap();
        fail(&mut t, "c", "10.0.0.1", WINDOW_MS).unwrap();
        assert_eq!(t.tracked(), (3, 1));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        let mut t = Throttle::new(100, 2, WINDOW_MS, 10);
        fail(&mut t, "x", "2001:db8:1:2::1", 0).unwrap();
        fail(&mut t, "y", "2001:db8:1:2::2", 0).unwrap();
        assert!(t.begin("z", ip("2001:db8:1:2::3"), 1).is_err());
        assert_eq!(t.begin("z", ip("2001:db8:1:3::3"), 1), Ok(()));
    }
}
