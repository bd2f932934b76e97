//! What goes on the wire to order a device: the package's retained chunks and the
//! `models/set` message. [`order_message`] builds every `models/set` message of the
//! backend's rollouts; [`OrderSigner`] signs it for the one topic it is published on (what
//! devices require by default: `updates.require_signed_orders`), [`order_payload`] leaves it
//! unsigned (for fleets that turned that off).

use emotiond_wire::order::{self, Endorsement};
use emotiond_wire::signed::{self, Action, Chunks, SetMessage, SignatureFile, SigningKey, Slot};
use emotiond_wire::topics;
use std::time::SystemTime;

/// Largest chunk: the daemon's MQTT client takes packets up to 256 KiB, topic included.
pub const MAX_CHUNK: usize = 192 * 1024;
/// The chunk size the backend uses.
pub const CHUNK: usize = 128 * 1024;

/// Where devices fetch the package.
#[derive(Debug, Clone, PartialEq)]
pub enum Where {
    Url(String),
    Chunks(Chunks),
}

/// An install order's content: the package and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub slot: Slot,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub key_id: String,
    pub signature: String,
    pub at: Where,
}

/// An order to one device or a group.
#[derive(Debug, Clone, PartialEq)]
pub enum Order<'a> {
    Install(&'a Offer),
    Rollback(Slot),
}

/// The `models/set` message of an order: the one place it is made.
pub fn order_message(order: &Order) -> SetMessage {
    match order {
        Order::Install(o) => {
            let mut m = SetMessage::new(o.slot, Action::Install);
            m.name = Some(o.name.clone());
            m.version = Some(o.version.clone());
            m.sha256 = Some(o.sha256.clone());
            m.size = Some(o.size);
            m.key_id = Some(o.key_id.clone());
            m.signature = Some(o.signature.clone());
            match &o.at {
                Where::Url(u) => m.url = Some(u.clone()),
                Where::Chunks(c) => m.chunks = Some(c.clone()),
            }
            m
        }
        Order::Rollback(slot) => SetMessage::new(*slot, Action::Rollback),
    }
}

/// The unsigned `models/set` payload (JSON) of an order, for devices with
/// `updates.require_signed_orders = false`.
pub fn order_payload(order: &Order) -> Vec<u8> {
    let mut v = serde_json::to_value(order_message(order)).unwrap_or_default();
    // only the keys that say something (as `emotion-fleet rollback` always published)
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, x| !x.is_null());
    }
    v.to_string().into_bytes()
}

/// Signs the backend's orders (`serve --order-key`): with the operator's key, or better a
/// key of the backend's own that the operator endorsed (`emotion-fleet endorse`), carried in
/// every order so a device that trusts the operator's key learns to trust the backend's.
pub struct OrderSigner {
    key: SigningKey,
    endorsement: Option<Endorsement>,
}

impl std::fmt::Debug for OrderSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderSigner")
            .field("key_id", &self.key_id())
            .field("endorsed_by", &self.endorsement.as_ref().map(|e| &e.by))
            .finish()
    }
}

impl OrderSigner {
    /// `endorsement` must name `key` (checked here, so a wrong pair fails at start, not on
    /// every device; whether its endorser is trusted is each device's decision).
    pub fn new(key: SigningKey, endorsement: Option<Endorsement>) -> Result<Self, String> {
        if let Some(e) = &endorsement {
            let public = key.verifying_key();
            let named = signed::parse_public(&e.key)
                .map_err(|err| format!("the endorsement's key does not parse: {err}"))?;
            if named != public {
                return Err(format!(
                    "the endorsement is for key {}, not the order key {}",
                    signed::key_id(&named),
                    signed::key_id(&public)
                ));
            }
        }
        Ok(OrderSigner { key, endorsement })
    }

    /// The signing key's id (what devices report in their logs and reasons).
    pub fn key_id(&self) -> String {
        signed::key_id(&self.key.verifying_key())
    }

    /// The signed payload of `order` for `topic` (a device refuses it on any other), issued
    /// `now`; its `seq` is the issue time in ms, so a later order (a rollback after the
    /// install) supersedes an earlier one.
    pub fn payload(&self, order: &Order, topic: &str, now: SystemTime) -> Vec<u8> {
        let mut m = order_message(order);
        m.topic = Some(topic.to_string());
        m.endorsement = self.endorsement.clone();
        order::signed_order(&m, &self.key, now)
    }
}

/// The package in retained chunks under `<prefix>/packages/<sha256>`: where, and the
/// (topic, payload) messages, in order.
pub fn chunk_messages(
    prefix: &str,
    archive: &[u8],
    chunk_size: usize,
) -> (Chunks, Vec<(String, Vec<u8>)>) {
    let ct = topics::package_chunks(prefix, &signed::sha256_hex(archive));
    let parts: Vec<&[u8]> = archive.chunks(chunk_size.clamp(1024, MAX_CHUNK)).collect();
    let msgs = parts
        .iter()
        .enumerate()
        .map(|(i, c)| (topics::chunk(&ct, i), c.to_vec()))
        .collect();
    let count = parts.len() as u32;
    (Chunks { topic: ct, count }, msgs)
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("the package does not open: {0}")]
    Open(#[from] signed::SignedError),
    #[error("the package is a {found:?} model; slot {slot} needs {need:?}")]
    WrongTask {
        found: emotiond_wire::Task,
        slot: &'static str,
        need: emotiond_wire::Task,
    },
    #[error("the signature is for archive {sig}, not this one ({archive})")]
    SignatureMismatch { sig: String, archive: String },
}

/// Check a package before it is offered: it opens, its task fits the slot, its signature
/// file names it. (Whether the key is trusted is each device's decision.)
pub fn offer(
    archive: &[u8],
    sig: &SignatureFile,
    slot: Slot,
    at: Where,
) -> Result<Offer, PackageError> {
    let (index, _) = signed::open(archive)?;
    if index.task != slot.task() {
        return Err(PackageError::WrongTask {
            found: index.task,
            slot: slot.as_str(),
            need: slot.task(),
        });
    }
    let sha = signed::sha256_hex(archive);
    if !sig.sha256.eq_ignore_ascii_case(&sha) {
        return Err(PackageError::SignatureMismatch {
            sig: sig.sha256.clone(),
            archive: sha,
        });
    }
    Ok(Offer {
        slot,
        name: index.name,
        version: index.version,
        sha256: sha,
        size: archive.len() as u64,
        key_id: sig.key_id.clone(),
        signature: sig.signature.clone(),
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use emotiond_wire::signed::{Order as Parsed, parse_set};

    fn offer() -> Offer {
        Offer {
            slot: Slot::Expression,
            name: "emo".into(),
            version: "2".into(),
            sha256: "ab".repeat(32),
            size: 300_000,
            key_id: "k1".into(),
            signature: "c2ln".into(),
            at: Where::Chunks(Chunks {
                topic: "emotiond/packages/x".into(),
                count: 3,
            }),
        }
    }

    #[test]
    fn payloads_are_what_devices_parse() {
        let o = offer();
        let Parsed::Install(i) = parse_set(&order_payload(&Order::Install(&o))).unwrap() else {
            panic!("not an install");
        };
        assert_eq!(
            (i.name.as_str(), i.version.as_str(), i.size),
            ("emo", "2", 300_000)
        );
        assert_eq!(i.signature.unwrap().key_id, "k1");
        let p = order_payload(&Order::Rollback(Slot::Detector));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&p).unwrap(),
            serde_json::json!({"slot": "detector", "action": "rollback"})
        );
        assert_eq!(parse_set(&p).unwrap(), Parsed::Rollback(Slot::Detector));
    }

    #[test]
    fn signed_payloads_verify_for_their_topic_and_carry_the_endorsement() {
        use emotiond_wire::order::{OrderAuth, endorse, parse_order, verify_order};
        let operator = signed::generate_key().unwrap();
        let backend = signed::generate_key().unwrap();
        let e = endorse(&backend.verifying_key(), &operator);
        // an endorsement of another key is refused up front
        let other = signed::generate_key().unwrap();
        let err = OrderSigner::new(other, Some(e.clone())).unwrap_err();
        assert!(err.contains("not the order key"), "{err}");

        let s = OrderSigner::new(backend.clone(), Some(e)).unwrap();
        let t = "emotiond/kiosk-1/models/set";
        let now = std::time::SystemTime::now();
        let p = s.payload(&Order::Install(&offer()), t, now);
        // a device that trusts only the operator verifies it and learns the backend's key
        match verify_order(&p, &[operator.verifying_key()]).unwrap() {
            OrderAuth::Signed { key_id, new_key } => {
                assert_eq!(key_id, s.key_id());
                assert_eq!(*new_key.unwrap(), backend.verifying_key());
            }
            OrderAuth::Unsigned => panic!("unsigned"),
        }
        let (order, fresh) = parse_order(&p).unwrap();
        assert!(matches!(order, Parsed::Install(_)));
        assert_eq!(fresh.topic.as_deref(), Some(t));
        assert!(fresh.seq.is_some() && fresh.issued_at_ms == fresh.seq);
        // a later rollback supersedes it (a higher seq)
        let later = now + std::time::Duration::from_secs(1);
        let r = s.payload(&Order::Rollback(Slot::Expression), t, later);
        assert!(parse_order(&r).unwrap().1.seq > fresh.seq);
        // one changed byte and it does not verify
        let forged = String::from_utf8(p).unwrap().replace("\"emo\"", "\"emx\"");
        assert!(verify_order(forged.as_bytes(), &[operator.verifying_key()]).is_err());
        // without an endorsement, a device must trust the backend's key itself
        let plain = OrderSigner::new(backend.clone(), None).unwrap();
        let p = plain.payload(&Order::Install(&offer()), t, now);
        assert!(verify_order(&p, &[operator.verifying_key()]).is_err());
        assert!(verify_order(&p, &[backend.verifying_key()]).is_ok());
    }

    #[test]
    fn chunks_cover_the_archive() {
        let archive: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let (c, msgs) = chunk_messages("emotiond", &archive, CHUNK);
        assert_eq!(c.count, 3);
        assert_eq!(msgs.len(), 3);
        assert!(msgs[2].0.ends_with("/2"));
        let joined: Vec<u8> = msgs.into_iter().flat_map(|m| m.1).collect();
        assert_eq!(joined, archive);
        // out-of-range sizes are clamped
        assert_eq!(chunk_messages("p", &archive, 10).0.count, 293);
    }
}
