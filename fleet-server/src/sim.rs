//! The load tool (`emotion-fleet simulate`): devices that publish the real payloads of
//! `emotiond-wire` (status, health, model state, summaries in JSON or postcard, feedback)
//! over one MQTT connection, with redeliveries and gaps on request, and wait for every
//! PUBACK. Deterministic: the same options publish the same bytes.

use emotiond_wire::signed::Slot;
use emotiond_wire::summary::{Encoding, Feedback, PerEmotion, Summary, sample};
use emotiond_wire::{CameraHealth, Health, ModelState, SourceState, Topics, UpdateState};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    /// Device ids are `<id_prefix><i>` for i in `first..first + devices`.
    pub id_prefix: String,
    pub first: usize,
    pub devices: usize,
    /// Summaries per device, seq `start_seq..start_seq + summaries`.
    pub summaries: usize,
    pub start_seq: u64,
    pub boot_id: u32,
    /// Every n-th summary (per device) is postcard (0: none).
    pub postcard_every: usize,
    /// Every n-th summary is published twice (0: none), as an outbox redelivery would.
    pub duplicate_every: usize,
    /// Every n-th seq is skipped (0: none): lost windows the backend must count.
    pub skip_every: usize,
    /// Feedback presses per device (every other one with a stated label).
    pub feedback: usize,
    /// Window end of seq 0, ms since the epoch (default: now − summaries × window).
    pub start_ms: Option<u64>,
    pub window_ms: u64,
    /// Summaries per second in all (0: as fast as the broker takes them).
    pub rate: f64,
    pub expression_model: String,
    /// Publish status, health and model state (retained) first.
    pub announce: bool,
    /// TLS to the broker (a broker with per-device certificates wants one process per
    /// device: the certificate names the device).
    pub tls: Option<crate::mqtt::Tls>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            host: "127.0.0.1".into(),
            port: 1883,
            prefix: "emotiond".into(),
            id_prefix: "sim-".into(),
            first: 0,
            devices: 10,
            summaries: 10,
            start_seq: 0,
            boot_id: 1,
            postcard_every: 0,
            duplicate_every: 0,
            skip_every: 0,
            feedback: 0,
            start_ms: None,
            window_ms: 10_000,
            rate: 0.0,
            expression_model: "fer_mini_xception@25.10.3+f32.2".into(),
            announce: true,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SimReport {
    pub event: &'static str,
    pub devices: usize,
    /// Distinct summaries published (what the backend should store).
    pub unique: usize,
    /// Extra copies published.
    pub duplicates: usize,
    /// Seqs left out on purpose.
    pub skipped: usize,
    pub postcard: usize,
    pub feedback: usize,
    pub labelled: usize,
    pub published: usize,
    pub elapsed_s: f64,
    pub per_s: f64,
}

/// A tiny deterministic generator (xorshift64*): the load must be the same run to run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The summary device `id` publishes for `seq`: plausible values, varying by device and time.
pub fn summary(o: &SimOptions, id: &str, dev: usize, seq: u64, start_ms: u64) -> Summary {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15 ^ ((dev as u64) << 20) ^ seq);
    let mut s = sample();
    s.device_id = id.to_string();
    s.seq = seq;
    s.boot_id = o.boot_id;
    s.window_end_ms = start_ms + (seq - o.start_seq) * o.window_ms;
    s.window_start_ms = s.window_end_ms - o.window_ms;
    let faces = (r.next() * 20.0) as u32;
    s.faces_seen = faces;
    s.distinct_tracks = faces.min(3);
    s.dwell_s = faces as f32 * 0.5;
    let mut e = [0f32; 7];
    for x in e.iter_mut() {
        *x = r.next() + 0.01;
    }
    e[3] += (dev % 3) as f32; // some devices are happier
    let sum: f32 = e.iter().sum();
    let e = e.map(|x| x / sum);
    s.emotions = PerEmotion::from_array(e);
    if faces == 0 {
        s.emotions = PerEmotion::default();
        s.valence = None;
        s.arousal = None;
    } else {
        s.valence = Some(e[3] * 0.81 - e[4] * 0.63 - e[0] * 0.51);
        s.arousal = Some(0.3 + e[5] * 0.5);
    }
    // what a default emotiond runs: the shipped packages on tract, audio off
    s.detector.id = "blazeface_short_range@0.10.21+f32.1".into();
    s.detector.engine = "tract".into();
    s.expression.id = o.expression_model.clone();
    s.expression.engine = "tract".into();
    s.expression.accelerator = None;
    s.voice = None;
    s.fused_valence = s.valence;
    s.fused_arousal = s.arousal;
    s.fused_from = (faces > 0).then(|| "faces".into());
    s
}

pub async fn run(o: &SimOptions) -> anyhow::Result<SimReport> {
    let mut opts = MqttOptions::new(
        format!("emotion-fleet-sim-{}-{}", std::process::id(), o.first),
        o.host.clone(),
        o.port,
    );
    if let Some(t) = &o.tls {
        opts.set_transport(t.transport()?);
    }
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_inflight(1000);
    opts.set_max_packet_size(256 * 1024, 256 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, 4096);
    // The event loop runs beside the publisher; it counts acknowledgements.
    let (acks_tx, mut acks_rx) = tokio::sync::watch::channel(0usize);
    let poller = tokio::spawn(async move {
        let mut acks = 0usize;
        let mut failures = 0;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks += 1;
                    let _ = acks_tx.send(acks);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(()),
                Ok(_) => {}
                Err(e) => {
                    failures += 1;
                    if failures > 20 {
                        return Err(anyhow::anyhow!("simulate: broker {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    let now = crate::now_ms() as u64;
    let start_ms = o
        .start_ms
        .unwrap_or(now.saturating_sub(o.summaries as u64 * o.window_ms));
    let t0 = Instant::now();
    let mut rep = SimReport {
        event: "simulated",
        devices: o.devices,
        unique: 0,
        duplicates: 0,
        skipped: 0,
        postcard: 0,
        feedback: 0,
        labelled: 0,
        published: 0,
        elapsed_s: 0.0,
        per_s: 0.0,
    };
    let ids: Vec<String> = (o.first..o.first + o.devices)
        .map(|i| format!("{}{i}", o.id_prefix))
        .collect();
    let mut qos1 = 0usize;
    if o.announce {
        for id in &ids {
            let t = Topics::new(&o.prefix, id);
            let health = Health {
                camera: CameraHealth {
                    state: SourceState::Ok,
                    source: "/dev/video0".into(),
                    error: None,
                    reconnects: 0,
                },
                microphone: None,
                summaries_sent: 0,
                outbox: 0,
                outbox_dropped: 0,
                outbox_on_disk: true,
                outbox_state: Some(emotiond_wire::OutboxState::Ok),
                outbox_memory_only: 0,
                outbox_write_errors: 0,
                version: "0.1.0-sim".into(),
            };
            let state = ModelState::step(
                Slot::Expression,
                UpdateState::Active,
                &o.expression_model,
                &"0".repeat(64),
            )
            .at(now);
            client
                .publish(&t.status, QoS::AtLeastOnce, true, "online")
                .await?;
            client
                .publish(&t.health, QoS::AtLeastOnce, true, health.to_json())
                .await?;
            client
                .publish(&t.models_state, QoS::AtLeastOnce, true, state.to_json())
                .await?;
            qos1 += 3;
        }
    }
    let mut sent = 0usize;
    // Round-robin over devices, as a fleet publishes: seq k of every device, then k + 1.
    for k in 0..o.summaries {
        let seq = o.start_seq + k as u64;
        for (d, id) in ids.iter().enumerate() {
            if o.skip_every > 0 && (k + 1) % o.skip_every == 0 {
                rep.skipped += 1;
                continue;
            }
            let s = summary(o, id, o.first + d, seq, start_ms);
            let enc = if o.postcard_every > 0 && k % o.postcard_every == 0 {
                rep.postcard += 1;
                Encoding::Postcard
            } else {
                Encoding::Json
            };
            let body = s.encode(enc)?;
            let topic = format!("{}/{id}/summary", o.prefix);
            let copies = if o.duplicate_every > 0 && k % o.duplicate_every == 0 {
                2
            } else {
                1
            };
            for _ in 0..copies {
                client
                    .publish(&topic, QoS::AtLeastOnce, false, body.clone())
                    .await?;
                qos1 += 1;
            }
            rep.unique += 1;
            rep.duplicates += copies - 1;
            sent += 1;
            if o.rate > 0.0 {
                let due = Duration::from_secs_f64(sent as f64 / o.rate);
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    for (d, id) in ids.iter().enumerate() {
        for j in 0..o.feedback {
            let seq = o.start_seq + (j % o.summaries.max(1)) as u64;
            let mut f = Feedback::button(
                start_ms + j as u64 * 1000 + 500,
                summary(o, id, o.first + d, seq, start_ms),
            );
            if j % 2 == 1 {
                f.label = Some(if (d + j) % 4 == 1 { "sad" } else { "happy" }.into());
                rep.labelled += 1;
            }
            client
                .publish(
                    format!("{}/{id}/feedback", o.prefix),
                    QoS::AtLeastOnce,
                    false,
                    f.to_json(),
                )
                .await?;
            qos1 += 1;
            rep.feedback += 1;
        }
    }
    // Every message acknowledged by the broker before we leave.
    loop {
        if *acks_rx.borrow() >= qos1 {
            break;
        }
        if poller.is_finished() {
            break;
        }
        if tokio::time::timeout(Duration::from_secs(60), acks_rx.changed())
            .await
            .is_err()
        {
            anyhow::bail!(
                "simulate: {} of {qos1} messages acknowledged after 60 s without progress",
                *acks_rx.borrow()
            );
        }
    }
    rep.published = qos1;
    rep.elapsed_s = t0.elapsed().as_secs_f64();
    rep.per_s = rep.unique as f64 / rep.elapsed_s.max(1e-9);
    client.disconnect().await?;
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(5), poller).await {
        return Err(e);
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_options_make_the_same_summaries_with_valid_values() {
        let o = SimOptions::default();
        let a = summary(&o, "sim-1", 1, 5, 1_700_000_000_000);
        assert_eq!(a, summary(&o, "sim-1", 1, 5, 1_700_000_000_000));
        assert_ne!(a, summary(&o, "sim-1", 1, 6, 1_700_000_000_000));
        assert_eq!(a.window_end_ms, 1_700_000_050_000);
        assert_eq!(a.seq, 5);
        if a.faces_seen > 0 {
            let s: f32 = a.emotions.to_array().iter().sum();
            assert!((s - 1.0).abs() < 1e-4, "{s}");
        }
        let back = Summary::decode(&a.encode(Encoding::Postcard).unwrap(), Encoding::Postcard);
        assert_eq!(back.unwrap(), a);
    }
}
