//! Helpers of the rollout tests: a signed package, answering simulated devices, the API.

use crate::support::*;
use base64::Engine;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub const FAST: &[&str] = &["--rollout-tick", "1", "--rollout-lease", "3"];

/// keygen, pack and sign the shipped expression package: (archive, signature file).
pub fn signed_package(dir: &Path) -> (Vec<u8>, serde_json::Value) {
    let run = |args: &[&str]| {
        let o = Command::new(BIN).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {o:?}");
    };
    let p = |f: &str| dir.join(f).display().to_string();
    let pkg = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/packages/fer_mini_xception"
    );
    run(&["keygen", "--out", &p("keys")]);
    run(&["model", "pack", pkg, "--out", &p("fer.empkg")]);
    run(&[
        "model",
        "sign",
        &p("fer.empkg"),
        "--key",
        &p("keys/fleet.key"),
    ]);
    let sig = std::fs::read(dir.join("fer.empkg.sig")).unwrap();
    (
        std::fs::read(dir.join("fer.empkg")).unwrap(),
        serde_json::from_slice(&sig).unwrap(),
    )
}

/// Pack the shipped short-range detector and sign it with `dir`'s key (`signed_package`
/// made it): the archive's path, its signature beside it (`.sig`).
pub fn signed_detector(dir: &Path) -> std::path::PathBuf {
    let pkg = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/packages/blazeface_short_range"
    );
    let out = dir.join("blazeface.empkg");
    let (o, key) = (
        out.display().to_string(),
        dir.join("keys/fleet.key").display().to_string(),
    );
    for args in [
        ["model", "pack", pkg, "--out", &o],
        ["model", "sign", &o, "--key", &key],
    ] {
        let o = Command::new(BIN).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {o:?}");
    }
    out
}

/// The common set-up: a broker, `serve` (tick 1 s, orders unsigned), the signed expression
/// package in `data` (`fer.empkg`), and `n` answering devices `spec` (following any order)
/// in group `g`.
pub struct Fleet {
    pub devices: Devices,
    pub serve: Serve,
    pub token: String,
    pub archive: Vec<u8>,
    pub sig: serde_json::Value,
    /// The package file, for the CLI.
    pub pkg: String,
    pub data: tempfile::TempDir,
    pub broker: Broker,
}

impl Fleet {
    pub fn start(n: usize, spec: &str) -> Fleet {
        let broker = Broker::start();
        let data = tempfile::tempdir().unwrap();
        let (archive, sig) = signed_package(data.path());
        let pkg = data.path().join("fer.empkg").display().to_string();
        let serve = Serve::start_with(broker.port, data.path(), None, "a", FAST);
        let token = serve.admin_token();
        let devices = Devices::start(broker.port, 0, n, spec);
        group(&serve.http, &token, &ids(0, n), "g");
        Fleet {
            devices,
            serve,
            token,
            archive,
            sig,
            pkg,
            data,
            broker,
        }
    }
}

/// Answering devices `<prefix><first..first+n>`; the orders they report, collected.
pub struct Devices {
    child: Child,
    orders: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Devices {
    /// Devices that follow any order (`updates.require_signed_orders = false`).
    pub fn start(broker: u16, first: usize, n: usize, spec: &str) -> Devices {
        Devices::start_trusting(broker, first, n, spec, None)
    }

    /// With `trust` (a public key file): devices that, as real ones by default, refuse an
    /// order not signed by that key for their own topic.
    pub fn start_trusting(
        broker: u16,
        first: usize,
        n: usize,
        spec: &str,
        trust: Option<&Path>,
    ) -> Devices {
        let mut cmd = Command::new(BIN);
        cmd.args(["simulate", "--mqtt-host", "127.0.0.1", "--mqtt-port"])
            .arg(broker.to_string());
        if let Some(t) = trust {
            cmd.arg("--trust").arg(t);
        }
        let mut child = cmd
            .args(["--id-prefix", "ro-", "--first", &first.to_string()])
            .args(["--devices", &n.to_string(), "--answer-orders", spec])
            .args(["--window-ms", "500", "--run-for", "300"])
            .args(["--expression-model", "old_model@1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let orders = Arc::new(Mutex::new(Vec::new()));
        let o = orders.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    o.lock().unwrap().push(v);
                }
            }
        });
        Devices { child, orders }
    }

    /// The orders devices refused (`refused`: the reason), as (device, reason).
    pub fn refused(&self) -> Vec<(String, String)> {
        self.orders
            .lock()
            .unwrap()
            .iter()
            .filter_map(|o| {
                let r = o["refused"].as_str()?;
                Some((o["device_id"].as_str()?.to_string(), r.to_string()))
            })
            .collect()
    }

    /// Orders of `action` each device received.
    pub fn count(&self, action: &str) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for o in self.orders.lock().unwrap().iter() {
            if o["action"] == action {
                *m.entry(o["device_id"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
        m
    }
}

impl Drop for Devices {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn call(base: &str, method: &str, path: &str, token: &str, body: Option<&str>) -> Answer {
    http(method, &format!("{base}{path}"), Some(token), body)
}

/// Put devices `ids` into group `g` once the registry knows them.
pub fn group(base: &str, token: &str, ids: &[String], g: &str) {
    for id in ids {
        wait_until(30, &format!("{id} in the registry"), || {
            let a = call(base, "GET", &format!("/api/v1/devices/{id}"), token, None);
            (a.status == 200).then_some(())
        });
        let body = serde_json::json!({"groups": [g], "tags": []}).to_string();
        let a = call(
            base,
            "PUT",
            &format!("/api/v1/devices/{id}/groups"),
            token,
            Some(&body),
        );
        assert_eq!(a.status, 200, "{}", a.body);
    }
}

pub fn create_body(archive: &[u8], sig: &serde_json::Value, plan: serde_json::Value) -> String {
    serde_json::json!({
        "group": "g", "slot": "expression",
        "package": base64::engine::general_purpose::STANDARD.encode(archive),
        "signature": sig, "plan": plan,
    })
    .to_string()
}

pub fn status(base: &str, token: &str, id: &str) -> serde_json::Value {
    let a = call(base, "GET", &format!("/api/v1/rollouts/{id}"), token, None);
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()
}

pub fn ids(first: usize, n: usize) -> Vec<String> {
    (first..first + n).map(|i| format!("ro-{i}")).collect()
}

/// `emotion-fleet rollouts ARGS --api URL --token FILE`: exit code, stdout lines (JSON), stderr.
pub fn cli(serve: &Serve, args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let token = serve.data.join("admin.token");
    let o = Command::new(BIN)
        .arg("rollouts")
        .args(args)
        .args(["--api", &serve.http, "--token"])
        .arg(&token)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    (
        o.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Feedback presses, published as devices publish them (the wire crate's `Feedback`, as the
/// daemon builds it, on `emotiond/<id>/feedback`, QoS 1): per press (device, the expression
/// model of its window, the stated label). Every window's dominant emotion is happy, so a
/// "happy" label agrees and any other disagrees. Returns once the broker acknowledged all.
pub fn press_feedback(broker: u16, presses: &[(String, &str, &str)]) {
    use emotiond_wire::summary::{Feedback, PerEmotion, sample};
    use rumqttc::{Event, MqttOptions, Packet, QoS};
    use std::time::{Duration, Instant};
    let mut opts = MqttOptions::new("test-feedback", "127.0.0.1", broker);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut conn) = rumqttc::Client::new(opts, presses.len() + 16);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (i, (device, model, label)) in presses.iter().enumerate() {
        let mut w = sample();
        w.device_id = device.clone();
        w.boot_id = 1;
        w.window_end_ms = now;
        w.window_start_ms = now - 500;
        w.expression.id = model.to_string();
        w.emotions = PerEmotion::from_array([0.05, 0.0, 0.05, 0.7, 0.1, 0.05, 0.05]);
        // distinct press times: the store keeps one press per (device, boot, time)
        let mut f = Feedback::button(now + i as u64, w);
        f.label = Some(label.to_string());
        client
            .publish(
                format!("emotiond/{device}/feedback"),
                QoS::AtLeastOnce,
                false,
                f.to_json(),
            )
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut acked = 0;
    while acked < presses.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{acked} of {} presses acknowledged",
            presses.len()
        );
        match conn.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("feedback to the broker: {e}"),
            Err(e) => panic!("feedback to the broker: {e:?} after {acked} acks"),
        }
    }
    let _ = client.disconnect();
}
