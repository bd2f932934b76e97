//! What goes on the wire to order a device: the package's retained chunks and the
//! `models/set` message. [`order_payload`] builds every `models/set` payload, for the
//! backend's rollouts and for `emotion-fleet rollout`/`rollback` alike (signed orders hook
//! in there).

use emotiond_wire::signed::{self, Action, Chunks, SetMessage, SignatureFile, Slot};
use emotiond_wire::topics;

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

/// The `models/set` payload (JSON) of an order: the one place it is made.
pub fn order_payload(order: &Order) -> Vec<u8> {
    let msg = match order {
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
    };
    let mut v = serde_json::to_value(&msg).unwrap_or_default();
    // only the keys that say something (as `emotion-fleet rollback` always published)
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, x| !x.is_null());
    }
    v.to_string().into_bytes()
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
