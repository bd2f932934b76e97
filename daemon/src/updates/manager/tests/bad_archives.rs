//! The update manager's transitions, part 3: every fault of a downloaded archive or of the
//! order that names it, one case each, with the reason code operators script against: too
//! short, too long, altered, unsigned, badly signed, not an archive, not the package the order
//! names, expired. In each, nothing is built, swapped or stored. Fixtures in the parent module.

use super::*;

/// An HTTP install order for `a`, changed by `edit`, and the bytes the download returns.
fn refused_with(
    edit: impl FnOnce(&Fx, &Archive, &mut SetMessage),
    download: impl FnOnce(&Archive) -> Vec<u8>,
    a: impl FnOnce(&Fx) -> Archive,
) -> Vec<ModelState> {
    let mut fx = Fx::new();
    let a = a(&fx);
    let mut msg = fx.install_msg(Slot::Expression, &a);
    msg.url = Some("http://fleet.invalid/model.tar".into());
    edit(&fx, &a, &mut msg);
    fx.m.io.downloads.push_back(Ok(download(&a)));
    let order = fx.sign(msg, 10);
    fx.send(SET, &order);
    let s = fx.states();
    assert!(fx.m.io.built.is_empty(), "built: {:?}", fx.m.io.built);
    assert!(fx.m.io.swaps.is_empty());
    assert_eq!(fx.m.store.slot(Slot::Expression).active, None);
    s
}

fn last_reason(s: &[ModelState]) -> (UpdateState, Option<RejectCode>) {
    let l = s.last().expect("a state message");
    (l.state, l.reason)
}

fn fer(fx: &Fx) -> Archive {
    fx.fer("9.0.1")
}

fn same(a: &Archive) -> Vec<u8> {
    a.bytes.clone()
}

fn unchanged(_: &Fx, _: &Archive, _: &mut SetMessage) {}

#[test]
fn an_archive_shorter_than_announced_is_truncated() {
    let s = refused_with(unchanged, |a| a.bytes[..a.bytes.len() - 100].to_vec(), fer);
    assert_eq!(last_reason(&s), (Rejected, Some(RejectCode::Truncated)));
}

#[test]
fn an_archive_longer_than_announced_or_altered_is_hash_mismatch() {
    let s = refused_with(unchanged, |a| [a.bytes.as_slice(), b"extra"].concat(), fer);
    assert_eq!(last_reason(&s), (Rejected, Some(RejectCode::HashMismatch)));
    let flip = |a: &Archive| {
        let mut b = a.bytes.clone();
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        b
    };
    let s = refused_with(unchanged, flip, fer);
    assert_eq!(last_reason(&s), (Rejected, Some(RejectCode::HashMismatch)));
}

#[test]
fn an_order_without_the_package_signature_is_unsigned() {
    let strip = |_: &Fx, _: &Archive, m: &mut SetMessage| {
        m.key_id = None;
        m.signature = None;
    };
    let s = refused_with(strip, same, fer);
    assert_eq!(last_reason(&s), (Rejected, Some(RejectCode::Unsigned)));
}

#[test]
fn a_signature_over_other_bytes_is_bad_signature() {
    let other = |fx: &Fx, _: &Archive, m: &mut SetMessage| {
        m.signature = Some(signed::sign(b"other bytes", &fx.key).signature);
    };
    let s = refused_with(other, same, fer);
    assert_eq!(last_reason(&s), (Rejected, Some(RejectCode::BadSignature)));
}

#[test]
fn signed_bytes_that_are_no_archive_are_corrupt_archive() {
    let garbage = |fx: &Fx| {
        let bytes = vec![0xab; 4096];
        let sig = signed::sign(&bytes, &fx.key);
        Archive {
            bytes,
            sig,
            name: "fer_mini_xception".into(),
            version: "9.0.1".into(),
        }
    };
    let s = refused_with(unchanged, same, garbage);
    assert_eq!(
        last_reason(&s),
        (Rejected, Some(RejectCode::CorruptArchive))
    );
}

#[test]
fn an_archive_that_is_not_the_package_the_order_names_is_manifest() {
    let rename = |_: &Fx, _: &Archive, m: &mut SetMessage| {
        m.version = Some("9.9.9".into());
    };
    let s = refused_with(rename, same, fer);
    assert_eq!(last_reason(&s), (Rejected, Some(RejectCode::Manifest)));
    assert!(
        s.last()
            .unwrap()
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("9.9.9"),
        "{:?}",
        s.last()
    );
}

#[test]
fn an_order_past_its_expiry_is_expired_and_nothing_is_fetched() {
    let mut fx = Fx::new();
    let a = fx.fer("9.0.1");
    let mut msg = fx.install_msg(Slot::Expression, &a);
    msg.url = Some("http://fleet.invalid/model.tar".into());
    msg.topic = Some(SET.into());
    msg.seq = Some(10);
    // issued two hours ago, valid for an hour (well past the allowed clock skew)
    let issued = SystemTime::now() - Duration::from_secs(2 * 3600);
    msg.expires_at_ms =
        Some(issued.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 3600 * 1000);
    let order = signed_order(&msg, &fx.key, issued);
    fx.send(SET, &order);
    let s = fx.states();
    assert_eq!(kinds(&s), vec![(Rejected, Some(RejectCode::Expired))]);
    assert!(fx.m.io.fetched.is_empty(), "{:?}", fx.m.io.fetched);
}
