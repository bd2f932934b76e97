//! The desired-state message on `<prefix>/<device>/models/set` (and a group's): what to
//! install or roll back, and since release numbers, who ordered it and when.
//!
//! A signed order carries `order_key_id` and `order_signature`: Ed25519 (an operator key,
//! the format of package keys) over `ORDER_CONTEXT || canonical(order)`, where `canonical`
//! is the message as JSON without `order_signature`, object keys sorted, no whitespace and
//! null members left out (so a field that is absent and one that is null sign alike). It
//! also carries `issued_at_ms`, an optional `expires_at_ms` and `seq`, a counter that grows
//! per device and slot (by default the issue time in ms), so a device refuses a replayed
//! older order. [`signed_order`] builds and signs one; [`verify_order`] checks one.
//!
//! Key rotation: an order may carry an [`Endorsement`], a new public key signed by a
//! trusted key; a device that verifies the order (signed by the endorser, or by the new key
//! itself) trusts the new key from then on.
//!
//! Length: ~510 lines: signing, verification, replay/expiry and key endorsement of orders
//! belong together (one signed byte layout); every rule has its test below.

use crate::signed::{MAX_ARCHIVE_BYTES, SignatureFile, SigningKey, VerifyingKey, key_id};
use crate::state::RejectCode;
use ed25519_dalek::{Signature, Signer, Verifier};
use serde::{Deserialize, Serialize};

/// Domain separation for order signatures.
pub const ORDER_CONTEXT: &[u8] = b"emotiond models/set order v1\n";
/// Domain separation for key endorsements.
pub const ENDORSE_CONTEXT: &[u8] = b"emotiond key endorsement v1\n";

/// Which model of the pipeline a desired state is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    Detector,
    Expression,
}

impl Slot {
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Detector => "detector",
            Slot::Expression => "expression",
        }
    }
    pub fn task(self) -> crate::Task {
        match self {
            Slot::Detector => crate::Task::FaceDetection,
            Slot::Expression => crate::Task::Expression,
        }
    }
}

impl std::str::FromStr for Slot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "detector" => Ok(Slot::Detector),
            "expression" => Ok(Slot::Expression),
            other => Err(format!("unknown slot {other:?}: detector or expression")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Fetch, verify, test and switch to the named package.
    #[default]
    Install,
    /// Go back to the previous model of the slot.
    Rollback,
}

/// The package in retained chunks over MQTT: chunk `i` (0-based) is the payload of
/// `<topic>/<i>`, raw bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunks {
    pub topic: String,
    pub count: u32,
}

/// A desired-state message on `<prefix>/<device>/models/set` or
/// `<prefix>/groups/<group>/models/set` (retained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetMessage {
    pub slot: Slot,
    #[serde(default)]
    pub action: Action,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    /// Hex SHA-256 of the archive.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Archive size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub signature: Option<String>,
    /// Where to fetch the archive over HTTP.
    #[serde(default)]
    pub url: Option<String>,
    /// Or: in retained chunks over MQTT.
    #[serde(default)]
    pub chunks: Option<Chunks>,
    /// Install even when the package's release is below the highest the device accepted
    /// for the model (an operator's downgrade). Honoured in signed orders only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_downgrade: bool,
    /// When the order was signed: ms since the Unix epoch (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<u64>,
    /// After this (ms since the Unix epoch) the order is refused (`expired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// Grows with every order for a device's slot; an order below the last one followed is
    /// refused (`replayed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The `models/set` topic the order is meant for: a device refuses a signed order that
    /// arrives on another topic (copied to another device's or group's topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// A new signing key, endorsed by a trusted one (key rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement: Option<Endorsement>,
    /// The key that signed the order (hex, first 8 bytes of SHA-256 of the public key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_key_id: Option<String>,
    /// Hex Ed25519 signature of `ORDER_CONTEXT || canonical(order)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_signature: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl SetMessage {
    /// An order for `slot` with nothing else set (fill in the rest).
    pub fn new(slot: Slot, action: Action) -> SetMessage {
        SetMessage {
            slot,
            action,
            name: None,
            version: None,
            sha256: None,
            size: None,
            key_id: None,
            signature: None,
            url: None,
            chunks: None,
            allow_downgrade: false,
            issued_at_ms: None,
            expires_at_ms: None,
            seq: None,
            topic: None,
            endorsement: None,
            order_key_id: None,
            order_signature: None,
        }
    }
}

/// An install order that passed the message checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Install {
    pub slot: Slot,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub signature: Option<SignatureFile>,
    pub source: Source,
    /// `allow_downgrade` of the message (honoured only when the order is signed).
    pub allow_downgrade: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Url(String),
    Chunks(Chunks),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    Install(Install),
    Rollback(Slot),
}

/// A desired-state message that cannot be followed (reason `malformed`); the text says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

impl From<String> for Malformed {
    fn from(s: String) -> Malformed {
        Malformed(s)
    }
}

impl From<&str> for Malformed {
    fn from(s: &str) -> Malformed {
        Malformed(s.to_string())
    }
}

impl Malformed {
    pub fn reject_code(&self) -> RejectCode {
        RejectCode::Malformed
    }
}

/// When an order was issued and how long it holds (all None in an unsigned order of the
/// old format).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Freshness {
    pub issued_at_ms: Option<u64>,
    pub expires_at_ms: Option<u64>,
    pub seq: Option<u64>,
    /// The topic the order is meant for.
    pub topic: Option<String>,
}

/// Parse and check a desired-state message; the error is the reason reported back.
pub fn parse_set(payload: &[u8]) -> Result<Order, Malformed> {
    parse_order(payload).map(|(o, _)| o)
}

/// [`parse_set`], with the order's freshness fields.
pub fn parse_order(payload: &[u8]) -> Result<(Order, Freshness), Malformed> {
    let m: SetMessage = serde_json::from_slice(payload)
        .map_err(|e| format!("not a valid models/set message: {e}"))?;
    let fresh = Freshness {
        issued_at_ms: m.issued_at_ms,
        expires_at_ms: m.expires_at_ms,
        seq: m.seq,
        topic: m.topic.clone(),
    };
    if let (Some(i), Some(e)) = (m.issued_at_ms, m.expires_at_ms) {
        if e < i {
            return Err("`expires_at_ms` is before `issued_at_ms`".into());
        }
    }
    if m.action == Action::Rollback {
        return Ok((Order::Rollback(m.slot), fresh));
    }
    let need = |v: &Option<String>, k: &str| -> Result<String, Malformed> {
        v.as_ref()
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .ok_or_else(|| format!("`{k}` is required to install a model").into())
    };
    let name = need(&m.name, "name")?;
    let version = need(&m.version, "version")?;
    let sha256 = need(&m.sha256, "sha256")?.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("`sha256` must be 64 hex digits".into());
    }
    let size = m.size.ok_or("`size` is required to install a model")?;
    if size == 0 || size > MAX_ARCHIVE_BYTES {
        return Err(format!("`size` must be within 1..={MAX_ARCHIVE_BYTES}").into());
    }
    let source = match (&m.url, &m.chunks) {
        (Some(u), None) if u.starts_with("http://") || u.starts_with("https://") => {
            Source::Url(u.clone())
        }
        (Some(u), None) => {
            return Err(format!("`url` {u:?} is not http:// or https://").into());
        }
        (None, Some(c)) => {
            if c.count == 0
                || c.count > 65_536
                || c.topic.is_empty()
                || c.topic.contains(['+', '#'])
            {
                return Err(
                    "`chunks` needs a topic without wildcards and a count within 1..=65536".into(),
                );
            }
            Source::Chunks(c.clone())
        }
        _ => return Err("exactly one of `url` and `chunks` must say where the package is".into()),
    };
    let signature = match (&m.key_id, &m.signature) {
        (Some(k), Some(s)) if !s.trim().is_empty() => Some(SignatureFile {
            sha256: sha256.clone(),
            key_id: k.clone(),
            signature: s.clone(),
        }),
        _ => None,
    };
    let order = Order::Install(Install {
        slot: m.slot,
        name,
        version,
        sha256,
        size,
        signature,
        source,
        allow_downgrade: m.allow_downgrade,
    });
    Ok((order, fresh))
}

/// A new public key signed by a trusted key: `signature` is Ed25519 by the key `by` (a key
/// id) of `ENDORSE_CONTEXT || key bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endorsement {
    /// The new public key, 64 hex digits.
    pub key: String,
    /// Key id of the endorsing key.
    pub by: String,
    pub signature: String,
}

/// Endorse `new` with `by` (`emotion-fleet key endorse`).
pub fn endorse(new: &VerifyingKey, by: &SigningKey) -> Endorsement {
    let mut m = ENDORSE_CONTEXT.to_vec();
    m.extend_from_slice(new.as_bytes());
    Endorsement {
        key: hex::encode(new.as_bytes()),
        by: key_id(&by.verifying_key()),
        signature: hex::encode(by.sign(&m).to_bytes()),
    }
}

/// The endorsed key, when `e` is signed by one of `trusted`.
pub fn check_endorsement(
    e: &Endorsement,
    trusted: &[VerifyingKey],
) -> Result<VerifyingKey, String> {
    let new = crate::signed::parse_public(&e.key).map_err(|x| format!("endorsed key: {x}"))?;
    let by = trusted
        .iter()
        .find(|k| key_id(k).eq_ignore_ascii_case(&e.by))
        .ok_or_else(|| {
            format!(
                "the endorsement is signed by key {}, which is not trusted",
                e.by
            )
        })?;
    let mut m = ENDORSE_CONTEXT.to_vec();
    m.extend_from_slice(new.as_bytes());
    let sig = parse_sig(&e.signature)
        .ok_or_else(|| format!("the endorsement by {} is not a signature", e.by))?;
    by.verify(&m, &sig)
        .map_err(|_| format!("the endorsement by {} does not verify", e.by))?;
    Ok(new)
}

fn parse_sig(hex_sig: &str) -> Option<Signature> {
    let b: [u8; 64] = hex::decode(hex_sig.trim()).ok()?.try_into().ok()?;
    Some(Signature::from_bytes(&b))
}

/// Write `v` canonically: object keys sorted, no whitespace, null members left out.
fn canonical_into(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().filter(|k| !m[k.as_str()].is_null()).collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_into(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_into(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The bytes an order signature covers: `ORDER_CONTEXT || canonical(order)`, the order
/// without its `order_signature`.
pub fn order_signing_bytes(order: &serde_json::Value) -> Vec<u8> {
    let mut v = order.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("order_signature");
    }
    let mut s = String::new();
    canonical_into(&v, &mut s);
    let mut out = ORDER_CONTEXT.to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Build and sign an order: the payload to publish (retained) on a `models/set` topic.
/// Sets `issued_at_ms` to `now`, `seq` to `msg.seq` or else the issue time in ms (so
/// orders from one operator clock grow), and the order signature; keeps `expires_at_ms`,
/// `allow_downgrade` and `endorsement` as given.
pub fn signed_order(msg: &SetMessage, key: &SigningKey, now: std::time::SystemTime) -> Vec<u8> {
    let mut m = msg.clone();
    let now_ms = unix_ms(now);
    m.issued_at_ms = Some(now_ms);
    m.seq = Some(m.seq.unwrap_or(now_ms));
    m.order_key_id = Some(key_id(&key.verifying_key()));
    m.order_signature = None;
    // Serialising these plain types cannot fail.
    let v = serde_json::to_value(&m).unwrap_or_default();
    let sig = key.sign(&order_signing_bytes(&v));
    m.order_signature = Some(hex::encode(sig.to_bytes()));
    serde_json::to_vec(&m).unwrap_or_default()
}

/// Who signed an order that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderAuth {
    /// No order signature (the format before signed orders).
    Unsigned,
    Signed {
        key_id: String,
        /// A key endorsed in the order that is not among `trusted` yet: trust it from now.
        new_key: Option<Box<VerifyingKey>>,
    },
}

/// Why an order's signature is refused (reason `bad_order_signature`, or `malformed` when
/// the payload is not a JSON object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct OrderError {
    pub code: RejectCode,
    pub detail: String,
}

fn bad(detail: impl Into<String>) -> OrderError {
    OrderError {
        code: RejectCode::BadOrderSignature,
        detail: detail.into(),
    }
}

/// Check an order's signature with `trusted` (and a key the order's endorsement vouches
/// for). An order without `order_signature` is [`OrderAuth::Unsigned`]: whether that is
/// accepted is the device's setting.
pub fn verify_order(payload: &[u8], trusted: &[VerifyingKey]) -> Result<OrderAuth, OrderError> {
    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| OrderError {
        code: RejectCode::Malformed,
        detail: format!("not a valid models/set message: {e}"),
    })?;
    let Some(obj) = v.as_object() else {
        return Err(OrderError {
            code: RejectCode::Malformed,
            detail: "not a valid models/set message: not a JSON object".into(),
        });
    };
    let text = |k: &str| obj.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let (kid, sig) = match (text("order_key_id"), text("order_signature")) {
        (None, None) if obj.get("order_signature").is_none_or(|s| s.is_null()) => {
            return Ok(OrderAuth::Unsigned);
        }
        (Some(k), Some(s)) if !s.trim().is_empty() => (k, s),
        _ => return Err(bad("the order needs both order_key_id and order_signature")),
    };
    let endorsement: Option<Endorsement> = match obj.get("endorsement") {
        None | Some(serde_json::Value::Null) => None,
        Some(e) => {
            Some(serde_json::from_value(e.clone()).map_err(|e| bad(format!("endorsement: {e}")))?)
        }
    };
    let endorsed = endorsement
        .as_ref()
        .map(|e| check_endorsement(e, trusted))
        .transpose()
        .map_err(bad)?;
    let new_key = endorsed.filter(|k| !trusted.contains(k));
    let key = trusted
        .iter()
        .chain(new_key.iter())
        .find(|k| key_id(k).eq_ignore_ascii_case(&kid))
        .ok_or_else(|| {
            bad(format!(
                "the order is signed by key {kid}, which is not trusted"
            ))
        })?;
    let sig = parse_sig(&sig).ok_or_else(|| {
        bad(format!(
            "the order signature by {kid} is not hex of 64 bytes"
        ))
    })?;
    key.verify(&order_signing_bytes(&v), &sig)
        .map_err(|_| bad(format!("the order signature by {kid} does not verify")))?;
    Ok(OrderAuth::Signed {
        key_id: key_id(key),
        new_key: new_key.map(Box::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::generate_key;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn set_messages_are_checked_with_a_reason() {
        let ok = br#"{"slot":"expression","name":"fer","version":"2","sha256":"ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB","size":10,"key_id":"k","signature":"00","url":"http://h/p"}"#;
        let Order::Install(i) = parse_set(ok).unwrap() else {
            panic!()
        };
        assert_eq!(i.slot, Slot::Expression);
        assert_eq!(i.sha256, "ab".repeat(32));
        assert_eq!(i.source, Source::Url("http://h/p".into()));
        assert!(i.signature.is_some());
        assert_eq!(
            parse_set(br#"{"slot":"detector","action":"rollback"}"#).unwrap(),
            Order::Rollback(Slot::Detector)
        );
        for (bad, why) in [
            (&b"not json"[..], "not a valid"),
            (br#"{"slot":"mouth"}"#, "not a valid"),
            (br#"{"slot":"detector","name":"x"}"#, "`version`"),
            (br#"{"slot":"detector","name":"x","version":"1","sha256":"12","size":1,"url":"http://a"}"#, "64 hex"),
            (br#"{"slot":"detector","name":"x","version":"1","sha256":"1212121212121212121212121212121212121212121212121212121212121212","size":1}"#, "exactly one"),
            (br#"{"slot":"detector","name":"x","version":"1","sha256":"1212121212121212121212121212121212121212121212121212121212121212","size":1,"url":"ftp://a"}"#, "not http"),
            (br#"{"slot":"detector","name":"x","version":"1","sha256":"1212121212121212121212121212121212121212121212121212121212121212","size":0,"url":"http://a"}"#, "`size`"),
            (br#"{"slot":"detector","unknown":1}"#, "unknown field"),
        ] {
            let e = parse_set(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
    }

    fn install() -> SetMessage {
        let mut m = SetMessage::new(Slot::Expression, Action::Install);
        m.name = Some("fer".into());
        m.version = Some("2".into());
        m.sha256 = Some("ab".repeat(32));
        m.size = Some(10);
        m.url = Some("http://h/p".into());
        m
    }

    #[test]
    fn a_signed_order_verifies_and_any_change_breaks_it() {
        let key = generate_key().unwrap();
        let other = generate_key().unwrap();
        let trusted = [key.verifying_key()];
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let mut m = install();
        m.expires_at_ms = Some(1_700_000_600_000);
        let payload = signed_order(&m, &key, now);
        assert_eq!(
            verify_order(&payload, &trusted).unwrap(),
            OrderAuth::Signed {
                key_id: key_id(&key.verifying_key()),
                new_key: None
            }
        );
        let (order, fresh) = parse_order(&payload).unwrap();
        assert!(matches!(order, Order::Install(_)));
        assert_eq!(
            fresh,
            Freshness {
                issued_at_ms: Some(1_700_000_000_123),
                expires_at_ms: Some(1_700_000_600_000),
                seq: Some(1_700_000_000_123),
                topic: None,
            }
        );
        // Whitespace and key order do not matter; values do.
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        assert!(verify_order(&pretty, &trusted).is_ok());
        for (field, value) in [
            ("version", serde_json::json!("1")),
            ("seq", 1.into()),
            ("expires_at_ms", serde_json::Value::from(u64::MAX)),
            ("allow_downgrade", true.into()),
            ("slot", "detector".into()),
            ("topic", "emotiond/other/models/set".into()),
        ] {
            let mut t = v.clone();
            t[field] = value;
            let e = verify_order(&serde_json::to_vec(&t).unwrap(), &trusted).unwrap_err();
            assert_eq!(e.code, RejectCode::BadOrderSignature, "{field}");
            assert!(e.detail.contains("does not verify"), "{e}");
        }
        // An unsigned order; a key we do not trust; a signature without its key id.
        assert_eq!(
            verify_order(&serde_json::to_vec(&m).unwrap(), &trusted).unwrap(),
            OrderAuth::Unsigned
        );
        let e = verify_order(&signed_order(&m, &other, now), &trusted).unwrap_err();
        assert!(e.detail.contains("not trusted"), "{e}");
        let mut t = v.clone();
        t.as_object_mut().unwrap().remove("order_key_id");
        let e = verify_order(&serde_json::to_vec(&t).unwrap(), &trusted).unwrap_err();
        assert_eq!(e.code, RejectCode::BadOrderSignature);
        assert_eq!(
            verify_order(b"[1]", &trusted).unwrap_err().code,
            RejectCode::Malformed
        );
        // A given seq is kept; an expiry before the issue is malformed.
        m.seq = Some(7);
        let (_, f) = parse_order(&signed_order(&m, &key, now)).unwrap();
        assert_eq!(f.seq, Some(7));
        m.expires_at_ms = Some(5);
        let e = parse_order(&signed_order(&m, &key, now)).unwrap_err();
        assert!(e.0.contains("before"), "{e}");
    }

    #[test]
    fn an_endorsed_key_is_trusted_only_through_a_trusted_endorser() {
        let old = generate_key().unwrap();
        let new = generate_key().unwrap();
        let stranger = generate_key().unwrap();
        let trusted = [old.verifying_key()];
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // Signed by the new key, endorsed by the old one.
        let mut m = install();
        m.endorsement = Some(endorse(&new.verifying_key(), &old));
        let got = verify_order(&signed_order(&m, &new, now), &trusted).unwrap();
        assert_eq!(
            got,
            OrderAuth::Signed {
                key_id: key_id(&new.verifying_key()),
                new_key: Some(Box::new(new.verifying_key()))
            }
        );
        // Announced in an order the old key signs.
        let got = verify_order(&signed_order(&m, &old, now), &trusted).unwrap();
        assert!(
            matches!(got, OrderAuth::Signed { new_key: Some(k), .. } if *k == new.verifying_key())
        );
        // Endorsed by a stranger: refused, whoever signed the order.
        m.endorsement = Some(endorse(&new.verifying_key(), &stranger));
        for signer in [&new, &old, &stranger] {
            let e = verify_order(&signed_order(&m, signer, now), &trusted).unwrap_err();
            assert_eq!(e.code, RejectCode::BadOrderSignature);
            assert!(e.detail.contains("endorsement"), "{e}");
        }
        // A forged endorsement (the stranger's signature under the old key's id).
        let mut forged = endorse(&new.verifying_key(), &stranger);
        forged.by = key_id(&old.verifying_key());
        m.endorsement = Some(forged);
        let e = verify_order(&signed_order(&m, &new, now), &trusted).unwrap_err();
        assert!(e.detail.contains("does not verify"), "{e}");
    }
}
