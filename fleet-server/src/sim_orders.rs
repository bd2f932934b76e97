//! Simulated devices that answer model orders (`emotion-fleet simulate --answer-orders`):
//! each publishes a summary every window on the model it runs and follows its `models/set`
//! with one of the behaviours a rollout must handle. Every order received is reported (one
//! JSON object per line), so tests can count them.

use crate::sim::{SimOptions, summary};
use emotiond_wire::order::{OrderAuth, verify_order};
use emotiond_wire::signed::{Order, Slot, VerifyingKey, parse_set};
use emotiond_wire::state::RejectCode;
use emotiond_wire::summary::Encoding;
use emotiond_wire::{ModelState, Topics, UpdateState};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};

/// How a simulated device answers an install order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// downloading, active, then healthy windows on the new model.
    Accept,
    /// rejected (`test_vectors`).
    Reject,
    /// Never answers, keeps publishing windows on the old model.
    Silent,
    /// active, then windows without frames.
    Unhealthy,
    /// Offline from the start: no windows, no answers.
    Offline,
}

/// `accept:8,reject:1,...` over `n` devices in order; devices past the list accept.
pub fn parse_behaviours(spec: &str, n: usize) -> Result<Vec<Behaviour>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, count) = part.split_once(':').unwrap_or((part, "1"));
        let b = match name {
            "accept" => Behaviour::Accept,
            "reject" => Behaviour::Reject,
            "silent" => Behaviour::Silent,
            "unhealthy" => Behaviour::Unhealthy,
            "offline" => Behaviour::Offline,
            other => {
                return Err(format!(
                    "behaviour {other:?}: accept, reject, silent, unhealthy or offline"
                ));
            }
        };
        let count: usize = count
            .parse()
            .map_err(|_| format!("{part:?}: a count after the colon"))?;
        out.extend(std::iter::repeat_n(b, count));
    }
    if out.len() > n {
        return Err(format!("{} behaviours for {n} devices", out.len()));
    }
    out.resize(n, Behaviour::Accept);
    Ok(out)
}

struct Device {
    id: String,
    behaviour: Behaviour,
    model: String,
    previous: Option<String>,
    broken: bool,
    /// The first window without frames was reported.
    reported_broken: bool,
    seq: u64,
}

/// Whether a simulated device follows an order that came on `topic`: with `trusted` keys, as
/// a device with `updates.require_signed_orders` (the default) decides: signed by one of
/// them, for this topic; without, any order (`require_signed_orders = false`). `Err`: the
/// refusal the device publishes (the order's own, not tied to a slot).
pub fn admit(payload: &[u8], topic: &str, trusted: &[VerifyingKey]) -> Result<(), ModelState> {
    if trusted.is_empty() {
        return Ok(());
    }
    let refuse = |code: RejectCode, why: &str| {
        let mut m = ModelState::unattached(code, why);
        m.topic = Some(topic.to_string());
        m
    };
    match verify_order(payload, trusted) {
        Err(e) => Err(refuse(e.code, &e.detail)),
        Ok(OrderAuth::Unsigned) => Err(refuse(
            RejectCode::BadOrderSignature,
            "the order is not signed (simulated device requiring signed orders)",
        )),
        Ok(OrderAuth::Signed { .. }) => {
            let named = serde_json::from_slice::<serde_json::Value>(payload)
                .ok()
                .and_then(|v| v.get("topic").and_then(|t| t.as_str()).map(str::to_string));
            match named {
                Some(t) if t != topic => Err(refuse(
                    RejectCode::BadOrderSignature,
                    &format!("the order is signed for {t}, it arrived on {topic}"),
                )),
                _ => Ok(()),
            }
        }
    }
}

/// Run `o.devices` answering devices for `run_for`; `report` gets one JSON object per order.
/// `trusted`: see [`admit`].
pub async fn run(
    o: &SimOptions,
    behaviours: &[Behaviour],
    trusted: &[VerifyingKey],
    run_for: Duration,
    mut report: impl FnMut(serde_json::Value),
) -> anyhow::Result<()> {
    let mut opts = MqttOptions::new(
        format!(
            "emotion-fleet-sim-orders-{}-{}",
            std::process::id(),
            o.first
        ),
        o.host.clone(),
        o.port,
    );
    if let Some(t) = &o.tls {
        opts.set_transport(t.transport()?);
    }
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 4096);
    // The event loop runs on its own, so publishing never waits for this task to poll it;
    // orders reach the loop below through a channel. Unbounded, as each device is sent a
    // handful of orders at most (a bounded one could block the event loop while the loop
    // below waits for it to take a publish: a deadlock).
    let (orders_tx, mut orders) = tokio::sync::mpsc::unbounded_channel::<rumqttc::Publish>();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if orders_tx.send(p).is_err() {
                        return;
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    log::warn!("simulate: broker: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    let mut devices: Vec<Device> = (0..o.devices)
        .map(|i| Device {
            id: format!("{}{}", o.id_prefix, o.first + i),
            behaviour: behaviours.get(i).copied().unwrap_or(Behaviour::Accept),
            model: o.expression_model.clone(),
            previous: None,
            broken: false,
            reported_broken: false,
            seq: 0,
        })
        .collect();
    client
        .subscribe(format!("{}/+/models/set", o.prefix), QoS::AtLeastOnce)
        .await?;
    for d in &devices {
        let t = Topics::new(&o.prefix, &d.id);
        let online = if d.behaviour == Behaviour::Offline {
            "offline"
        } else {
            "online"
        };
        client
            .publish(&t.status, QoS::AtLeastOnce, true, online)
            .await?;
    }
    let end = Instant::now() + run_for;
    let mut tick = tokio::time::interval(Duration::from_millis(o.window_ms.max(100)));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end.into()) => break,
            _ = tick.tick() => {
                for d in devices.iter_mut().filter(|d| d.behaviour != Behaviour::Offline) {
                    let mut so = o.clone();
                    so.expression_model = d.model.clone();
                    so.start_seq = 0;
                    let now = crate::now_ms() as u64;
                    let mut s = summary(&so, &d.id, 0, d.seq, now);
                    s.window_end_ms = now;
                    s.window_start_ms = now - o.window_ms;
                    if d.broken {
                        s.frames_processed = 0;
                        if !d.reported_broken {
                            d.reported_broken = true;
                            let at = now as i64;
                            report(serde_json::json!({"event": "unhealthy_window", "device_id": d.id, "at_ms": at}));
                        }
                    }
                    d.seq += 1;
                    let topic = format!("{}/{}/summary", o.prefix, d.id);
                    client.publish(topic, QoS::AtLeastOnce, false, s.encode(Encoding::Json)?).await?;
                }
            }
            p = orders.recv() => {
                let Some(p) = p else { break };
                // a retained copy (at subscribe) is an old order, not a new one
                if p.retain {
                    continue;
                }
                let Some(id) = p.topic.strip_prefix(&format!("{}/", o.prefix))
                    .and_then(|r| r.strip_suffix("/models/set")) else { continue };
                let Some(d) = devices.iter_mut().find(|d| d.id == id) else { continue };
                let order = parse_set(&p.payload);
                let action = match &order {
                    Ok(Order::Install(_)) => "install",
                    Ok(Order::Rollback(_)) => "rollback",
                    Err(_) => "malformed",
                };
                let at = crate::now_ms();
                let t = Topics::new(&o.prefix, &d.id);
                let now = crate::now_ms() as u64;
                if let Err(refusal) = admit(&p.payload, &p.topic, trusted) {
                    let reason = refusal.reason.map(|r| r.as_str());
                    report(serde_json::json!({"event": "order", "device_id": d.id, "action": action, "at_ms": at, "refused": reason}));
                    client.publish(&t.models_state, QoS::AtLeastOnce, true, refusal.at(now).to_json()).await?;
                    continue;
                }
                report(serde_json::json!({"event": "order", "device_id": d.id, "action": action, "at_ms": at}));
                let mut states = Vec::new();
                match (order, d.behaviour) {
                    (Ok(Order::Install(i)), Behaviour::Accept | Behaviour::Unhealthy) => {
                        let m = format!("{}@{}", i.name, i.version);
                        states.push(ModelState::step(Slot::Expression, UpdateState::Downloading, &m, &i.sha256).at(now));
                        states.push(ModelState::step(Slot::Expression, UpdateState::Active, &m, &i.sha256).at(now + 1));
                        d.previous = Some(std::mem::replace(&mut d.model, m));
                        d.broken = d.behaviour == Behaviour::Unhealthy;
                    }
                    (Ok(Order::Install(i)), Behaviour::Reject) => {
                        let m = format!("{}@{}", i.name, i.version);
                        states.push(ModelState::step(Slot::Expression, UpdateState::Rejected, &m, &i.sha256)
                            .with_reason(RejectCode::TestVectors, "simulated").at(now));
                    }
                    (Ok(Order::Rollback(_)), Behaviour::Accept | Behaviour::Unhealthy) => {
                        match d.previous.take() {
                            Some(prev) => {
                                let from = std::mem::replace(&mut d.model, prev);
                                d.broken = false;
                                d.reported_broken = false;
                                states.push(ModelState::step(Slot::Expression, UpdateState::RolledBack, &from, &"0".repeat(64))
                                    .with_reason(RejectCode::Operator, "simulated").at(now));
                            }
                            None => states.push(ModelState::unattached(RejectCode::NoPrevious, "simulated").at(now)),
                        }
                    }
                    _ => {}
                }
                for s in states {
                    client.publish(&t.models_state, QoS::AtLeastOnce, true, s.to_json()).await?;
                }
            }
        }
    }
    client.disconnect().await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), poller).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_parse_and_fill_up_with_accept() {
        let b = parse_behaviours("reject:2, offline", 4).unwrap();
        assert_eq!(
            b,
            [
                Behaviour::Reject,
                Behaviour::Reject,
                Behaviour::Offline,
                Behaviour::Accept
            ]
        );
        assert!(
            parse_behaviours("sleepy:1", 3)
                .unwrap_err()
                .contains("sleepy")
        );
        assert!(parse_behaviours("accept:5", 3).is_err());
        assert!(parse_behaviours("accept:x", 3).is_err());
    }
}
