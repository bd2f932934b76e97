//! Anti-rollback and freshness of orders and packages (pure, time passed in):
//!
//! - whether a desired-state message is followed: signed or not (and whether unsigned ones
//!   are allowed), replayed (its `seq` below the last one this slot followed), expired;
//! - whether a package is a downgrade: its release below the highest the slot accepted for
//!   the model name.
//!
//! The clock. A kiosk may have no battery-backed clock and boot in 1970 until NTP answers.
//! Expiry is judged against `max(device clock, newest issued_at_ms this slot followed)`, so
//! a device whose clock is behind still refuses an order that expired before an order it
//! already followed was issued; orders are otherwise not refused for a clock that is behind
//! (the `seq` rule still refuses a replayed older order). A device clock that is ahead makes
//! orders with an expiry look expired once it is more than [`CLOCK_SKEW_MS`] past it: orders
//! without `expires_at_ms` are never refused for time.

use emotiond_models::RejectCode;
use emotiond_wire::order::Freshness;
use std::collections::BTreeMap;

/// Tolerated difference between the operator's clock and the device's.
pub const CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;

/// What a slot remembers of the orders it followed (in its `<slot>.json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Followed {
    pub seq: Option<u64>,
    pub issued_at_ms: Option<u64>,
}

/// A signed order that is neither replayed nor expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// A new order: record its `seq` and follow it.
    Follow,
    /// The order this slot followed last, delivered again (a retained message on a
    /// reconnect): an install goes on as before (it may be retried), a rollback is not
    /// done twice.
    Again,
}

pub type Refusal = (RejectCode, String);

/// Whether an order is followed. `signed`: its order signature verified with a trusted key
/// (an order with a bad signature never gets here); `require_signed`: the device's
/// `updates.require_signed_orders`; `arrived_on`: the topic it came on.
pub fn admit_order(
    signed: bool,
    require_signed: bool,
    arrived_on: &str,
    fresh: &Freshness,
    last: &Followed,
    now_ms: u64,
) -> Result<Admit, Refusal> {
    if !signed {
        if require_signed {
            return Err((
                RejectCode::BadOrderSignature,
                "the order is not signed (updates.require_signed_orders is on): publish it with emotion-fleet rollout --key".into(),
            ));
        }
        // Unsigned fields prove nothing: no freshness rules (the format before signed orders).
        return Ok(Admit::Follow);
    }
    if let Some(t) = fresh.topic.as_deref().filter(|t| *t != arrived_on) {
        return Err((
            RejectCode::BadOrderSignature,
            format!("the order is signed for {t}, it arrived on {arrived_on}"),
        ));
    }
    let (Some(seq), Some(issued)) = (fresh.seq, fresh.issued_at_ms) else {
        return Err((
            RejectCode::Malformed,
            "a signed order needs `seq` and `issued_at_ms`".into(),
        ));
    };
    match last.seq {
        Some(l) if seq < l => {
            return Err((
                RejectCode::Replayed,
                format!("order seq {seq} is older than seq {l}, which this slot already followed"),
            ));
        }
        Some(l) if seq == l => return Ok(Admit::Again),
        _ => {}
    }
    if let Some(exp) = fresh.expires_at_ms {
        let known = now_ms.max(last.issued_at_ms.unwrap_or(0));
        if known > exp.saturating_add(CLOCK_SKEW_MS) {
            return Err((
                RejectCode::Expired,
                format!(
                    "the order expired at {exp} ms (issued at {issued}); it is now {known} ms{}",
                    if known > now_ms {
                        " by the newest order this slot followed (the device clock is behind)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(Admit::Follow)
}

/// The slot's record after following an order with `fresh`.
pub fn followed(last: &Followed, fresh: &Freshness) -> Followed {
    Followed {
        seq: fresh.seq.or(last.seq),
        issued_at_ms: match (last.issued_at_ms, fresh.issued_at_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
    }
}

/// Whether a package of `name` with `release` (None: a package from before release numbers,
/// counted as release 0) may be installed, given the highest release the slot accepted per
/// model name. `downgrade_ok`: an operator-signed order with `allow_downgrade`.
pub fn release_check(
    accepted: &BTreeMap<String, u64>,
    name: &str,
    release: Option<u64>,
    downgrade_ok: bool,
) -> Result<(), Refusal> {
    let r = release.unwrap_or(0);
    match accepted.get(name) {
        Some(&high) if r < high && !downgrade_ok => Err((
            RejectCode::Downgrade,
            format!(
                "{name} release {r}{} is older than release {high}, which this device already accepted; an operator-signed order with allow_downgrade (emotion-fleet rollout --allow-downgrade) installs it",
                if release.is_none() {
                    " (no release number)"
                } else {
                    ""
                }
            ),
        )),
        _ => Ok(()),
    }
}

/// The record of accepted releases after installing `name` at `release`: it only grows (a
/// downgrade does not lower it).
pub fn accept_release(accepted: &mut BTreeMap<String, u64>, name: &str, release: Option<u64>) {
    let r = release.unwrap_or(0);
    let e = accepted.entry(name.to_string()).or_insert(r);
    *e = (*e).max(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn fresh(seq: u64, issued: u64, exp: Option<u64>) -> Freshness {
        Freshness {
            issued_at_ms: Some(issued),
            expires_at_ms: exp,
            seq: Some(seq),
            topic: Some(T.into()),
        }
    }

    const T: &str = "emotiond/k1/models/set";

    fn code(r: Result<Admit, Refusal>) -> RejectCode {
        r.unwrap_err().0
    }

    #[test]
    fn unsigned_orders_follow_the_setting() {
        let none = Freshness::default();
        let last = Followed::default();
        assert_eq!(
            code(admit_order(false, true, T, &none, &last, NOW)),
            RejectCode::BadOrderSignature
        );
        assert_eq!(
            admit_order(false, false, T, &none, &last, NOW),
            Ok(Admit::Follow)
        );
        // A signed order without its freshness fields is not one signed_order made.
        assert_eq!(
            code(admit_order(true, true, T, &none, &last, NOW)),
            RejectCode::Malformed
        );
    }

    #[test]
    fn an_older_order_is_replayed_the_same_one_is_delivered_again() {
        let last = Followed {
            seq: Some(10),
            issued_at_ms: Some(NOW - 1000),
        };
        assert_eq!(
            code(admit_order(true, true, T, &fresh(9, NOW, None), &last, NOW)),
            RejectCode::Replayed
        );
        assert_eq!(
            admit_order(true, true, T, &fresh(10, NOW - 1000, None), &last, NOW),
            Ok(Admit::Again)
        );
        assert_eq!(
            admit_order(true, true, T, &fresh(11, NOW, None), &last, NOW),
            Ok(Admit::Follow)
        );
        let next = followed(&last, &fresh(11, NOW, None));
        assert_eq!((next.seq, next.issued_at_ms), (Some(11), Some(NOW)));
        // An order issued earlier (a slow operator clock) does not move the time back.
        let next = followed(&last, &fresh(12, NOW - 5000, None));
        assert_eq!(next.issued_at_ms, Some(NOW - 1000));
    }

    #[test]
    fn a_signed_order_is_followed_only_on_its_topic() {
        let last = Followed::default();
        let f = fresh(1, NOW, None);
        let r = admit_order(true, true, "emotiond/k2/models/set", &f, &last, NOW).unwrap_err();
        assert_eq!(r.0, RejectCode::BadOrderSignature);
        assert!(r.1.contains("signed for emotiond/k1/models/set"), "{}", r.1);
        assert_eq!(
            admit_order(true, true, T, &f, &last, NOW),
            Ok(Admit::Follow)
        );
        // An order signed without a topic goes wherever it is published.
        let any = Freshness { topic: None, ..f };
        assert_eq!(
            admit_order(true, true, "emotiond/k2/models/set", &any, &last, NOW),
            Ok(Admit::Follow)
        );
    }

    #[test]
    fn expiry_with_skew_and_a_clock_that_is_behind() {
        let last = Followed::default();
        let hour = 3_600_000;
        // Expired an hour ago: refused; within the skew: followed.
        let old = fresh(1, NOW - 2 * hour, Some(NOW - hour));
        assert_eq!(
            code(admit_order(true, true, T, &old, &last, NOW)),
            RejectCode::Expired
        );
        let just = fresh(1, NOW - hour, Some(NOW - CLOCK_SKEW_MS + 1));
        assert_eq!(
            admit_order(true, true, T, &just, &last, NOW),
            Ok(Admit::Follow)
        );
        // A device booted in 1970 cannot tell: followed...
        assert_eq!(
            admit_order(true, true, T, &old, &last, 0),
            Ok(Admit::Follow)
        );
        // ...unless it followed an order issued after the expiry.
        let seen = Followed {
            seq: Some(0),
            issued_at_ms: Some(NOW),
        };
        let r = admit_order(true, true, T, &old, &seen, 0).unwrap_err();
        assert_eq!(r.0, RejectCode::Expired);
        assert!(r.1.contains("clock is behind"), "{}", r.1);
        // No expiry: never refused for time, whatever the clock says.
        let open = fresh(1, NOW - 100 * hour, None);
        assert_eq!(
            admit_order(true, true, T, &open, &last, u64::MAX),
            Ok(Admit::Follow)
        );
    }

    #[test]
    fn releases_only_go_up_unless_an_operator_signs_a_downgrade() {
        let mut acc = BTreeMap::new();
        // Nothing accepted yet: any release, numbered or not.
        assert!(release_check(&acc, "fer", Some(1), false).is_ok());
        assert!(release_check(&acc, "fer", None, false).is_ok());
        accept_release(&mut acc, "fer", Some(3));
        assert!(
            release_check(&acc, "fer", Some(3), false).is_ok(),
            "same release"
        );
        assert!(release_check(&acc, "fer", Some(4), false).is_ok());
        let (c, why) = release_check(&acc, "fer", Some(2), false).unwrap_err();
        assert_eq!(c, RejectCode::Downgrade);
        assert!(
            why.contains("release 2") && why.contains("release 3"),
            "{why}"
        );
        let (c, why) = release_check(&acc, "fer", None, false).unwrap_err();
        assert_eq!(c, RejectCode::Downgrade);
        assert!(why.contains("no release number"), "{why}");
        assert!(release_check(&acc, "fer", Some(2), true).is_ok());
        // Other model names have their own numbers.
        assert!(release_check(&acc, "blazeface", Some(1), false).is_ok());
        // A downgrade does not lower the record.
        accept_release(&mut acc, "fer", Some(2));
        assert_eq!(acc["fer"], 3);
        accept_release(&mut acc, "fer", Some(5));
        assert_eq!(acc["fer"], 5);
    }
}
