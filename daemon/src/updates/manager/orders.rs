//! A desired-state message in: its order signature (and a key it endorses), then whether it
//! is replayed or expired ([`crate::updates::admit`]), before the order is followed.

use super::{Io, Manager, reject};
use crate::updates::admit::{self, Admit, Followed};
use emotiond_models::RejectCode;
use emotiond_models::signed::Order;
use emotiond_wire::order::{self, OrderAuth};
use emotiond_wire::state::{ModelState, UpdateState};

impl<I: Io> Manager<I> {
    /// A refusal of a message that cannot be tied to a slot (not trusted, not parsed).
    fn refuse_message(&mut self, topic: &str, code: RejectCode, detail: &str) {
        let mut m = ModelState::unattached(code, detail);
        m.topic = Some(topic.to_string());
        let at = self.io.now_ms();
        self.publish_state(m.at(at));
    }

    /// A message on a models/set topic.
    pub(super) fn receive(&mut self, topic: &str, payload: &[u8]) {
        let auth = match order::verify_order(payload, &self.trusted) {
            Ok(a) => a,
            Err(e) => {
                self.refuse_message(topic, e.code, &e.detail);
                return;
            }
        };
        let (order, fresh) = match order::parse_order(payload) {
            Ok(x) => x,
            Err(why) => {
                self.refuse_message(topic, why.reject_code(), &why.to_string());
                return;
            }
        };
        let (signed, new_key) = match auth {
            OrderAuth::Unsigned => (false, None),
            OrderAuth::Signed { new_key, .. } => (true, new_key),
        };
        let (slot, id, sha) = match &order {
            Order::Install(i) => (
                i.slot,
                format!("{}@{}", i.name, i.version),
                i.sha256.clone(),
            ),
            Order::Rollback(s) => (*s, String::new(), String::new()),
        };
        let mut rec = self.store.slot(slot);
        let last = Followed {
            seq: rec.order_seq,
            issued_at_ms: rec.order_issued_ms,
        };
        let admitted = admit::admit_order(
            signed,
            self.require_signed_orders,
            topic,
            &fresh,
            &last,
            self.io.now_ms(),
        );
        let admitted = match admitted {
            Ok(a) => a,
            Err((code, why)) => {
                if signed {
                    let r = reject(code, why);
                    self.state(slot, UpdateState::Rejected, &id, &sha, Some(&r));
                } else {
                    self.refuse_message(topic, code, &why);
                }
                return;
            }
        };
        if let Some(k) = new_key {
            let hex: String = k.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            match self.store.add_key(&hex) {
                Ok(()) => {
                    log::warn!(
                        "model updates: key {} is trusted from now on (endorsed in a signed order)",
                        emotiond_models::signed::key_id(&k)
                    );
                    self.trusted.push(*k);
                }
                Err(e) => {
                    let r = reject(RejectCode::Io, format!("cannot record a new key: {e}"));
                    self.state(slot, UpdateState::Rejected, &id, &sha, Some(&r));
                    return;
                }
            }
        }
        if signed && admitted == Admit::Follow {
            let f = admit::followed(&last, &fresh);
            rec.order_seq = f.seq;
            rec.order_issued_ms = f.issued_at_ms;
            if let Err(e) = self.store.set_slot(slot, &rec) {
                let r = reject(RejectCode::Io, format!("cannot record the order: {e}"));
                self.state(slot, UpdateState::Rejected, &id, &sha, Some(&r));
                return;
            }
        }
        match order {
            Order::Rollback(s) if signed && admitted == Admit::Again => {
                log::info!(
                    "model update {}: the rollback order was followed already",
                    s.as_str()
                );
            }
            Order::Install(mut i) => {
                // A downgrade needs an operator's signature.
                i.allow_downgrade &= signed;
                self.order(Order::Install(i));
            }
            o => self.order(o),
        }
    }
}
