//! The per-device ACL: mosquitto over TLS with the repository's `deploy/mosquitto-acl.conf`
//! (its paths and port replaced) and `deploy/emotiond.acl` as it is, certificates from
//! `scripts/make-test-ca --fleet`. A real `emotiond` (kiosk-1) delivers its summaries; a
//! device's certificate cannot publish under another device's id, nor any `models/set`, nor
//! a package chunk, cannot read another device's summaries or another group's desired state;
//! the operator's orders reach the device and group they are for; a client without a
//! certificate (or without TLS) is refused.
//!
//! Mosquitto drops an unauthorised publish silently under MQTT 3.1.1 (it still acknowledges
//! it), and grants every subscription (it checks read rights per delivered message). So each
//! negative is shown by an authorised subscriber and a positive control sent after it on
//! the same path: mosquitto delivers in order per publisher and handles one message at a
//! time, so once the control has arrived, the forged message would have arrived before it.

use crate::support::*;
use rumqttc::{Client, ConnectionError, Event, MqttOptions, Packet, QoS, Transport};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// `scripts/make-test-ca --fleet DIR 127.0.0.1 DEVICES...`, readable by the `mosquitto` user
/// (mosquitto started as root drops to it).
pub(crate) fn make_ca(dir: &Path, devices: &[&str]) {
    let out = Command::new("bash")
        .arg(repo("scripts/make-test-ca"))
        .arg("--fleet")
        .arg(dir)
        .arg("127.0.0.1")
        .args(devices)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "make-test-ca (needs openssl): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The repository's broker configuration with its certificate listener on `port`, the
/// certificates in `certs` and the repository's ACL file (the password alternative still
/// commented out, as in the file).
pub(crate) fn acl_conf(certs: &Path, port: u16) -> String {
    let conf = std::fs::read_to_string(repo("deploy/mosquitto-acl.conf")).unwrap();
    let acl = repo("deploy/emotiond.acl").canonicalize().unwrap();
    let out = conf
        .replace(
            "/etc/mosquitto/certs/emotiond",
            &certs.display().to_string(),
        )
        .replace("/etc/mosquitto/emotiond.acl", &acl.display().to_string())
        .replace(
            "\nlistener 8883\n",
            &format!("\nlistener {port} 127.0.0.1\n"),
        );
    assert!(out.contains(&format!("listener {port} ")), "{out}");
    out
}

/// mosquitto with [`acl_conf`] on its port.
fn acl_broker(certs: &Path) -> Broker {
    Broker::start_with(|port| format!("{}\npersistence false\n", acl_conf(certs, port)))
}

pub(crate) enum Ev {
    Up,
    Msg(String, Vec<u8>),
    Down(String),
}

/// How a test client authenticates, over TLS with the CA `certs/ca.pem`.
pub(crate) enum Login<'a> {
    /// The client certificate `certs/NAME.pem` (the broker's user name is its CN).
    Cert(&'a str),
    /// A user name and password, no client certificate.
    Password(&'a str, &'a str),
    /// Neither.
    Anonymous,
}

/// A client over TLS as `name` (its certificate from `certs`; None: none) with the given
/// subscriptions; what it receives ([`client_as`]).
fn client(port: u16, certs: &Path, name: Option<&str>, subs: &[&str]) -> (Client, Receiver<Ev>) {
    client_as(
        port,
        certs,
        name.map_or(Login::Anonymous, Login::Cert),
        subs,
    )
}

/// A client over TLS logged in as `login`, with the given subscriptions; what it receives.
/// Returns at once: [`up`] waits until it is connected and subscribed, [`refused`] until it
/// is turned away.
pub(crate) fn client_as(
    port: u16,
    certs: &Path,
    login: Login,
    subs: &[&str],
) -> (Client, Receiver<Ev>) {
    let read = |f: &str| std::fs::read(certs.join(f)).unwrap();
    let name = match &login {
        Login::Cert(n) | Login::Password(n, _) => *n,
        Login::Anonymous => "none",
    };
    let mut o = MqttOptions::new(format!("acl-{name}-{}", free_port()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let mut auth = None;
    match login {
        Login::Cert(n) => auth = Some((read(&format!("{n}.pem")), read(&format!("{n}.key")))),
        Login::Password(u, p) => {
            o.set_credentials(u, p);
        }
        Login::Anonymous => {}
    }
    o.set_transport(Transport::tls(read("ca.pem"), auth, None));
    let (c, mut conn) = Client::new(o, 64);
    for s in subs {
        c.subscribe(*s, QoS::AtLeastOnce).unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let want = subs.len();
    std::thread::spawn(move || {
        let mut acked = 0;
        for ev in conn.iter() {
            let e = match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    acked += 1;
                    if acked < want {
                        continue;
                    }
                    Ev::Up
                }
                Ok(Event::Incoming(Packet::ConnAck(_))) if want == 0 => Ev::Up,
                Ok(Event::Incoming(Packet::Publish(p))) => Ev::Msg(p.topic, p.payload.to_vec()),
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(Ev::Down(describe(&e)));
                    return;
                }
            };
            if tx.send(e).is_err() {
                return;
            }
        }
    });
    (c, rx)
}

fn describe(e: &ConnectionError) -> String {
    format!("{e:?}")
}

/// Wait until `rx` is up (connected, subscribed); panic with why it is not.
pub(crate) fn up(rx: &Receiver<Ev>, who: &str) {
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ev::Up) => {}
        Ok(Ev::Down(e)) => panic!("{who}: refused: {e}"),
        Ok(Ev::Msg(t, _)) => panic!("{who}: a message on {t} before it was subscribed"),
        Err(_) => panic!("{who}: not connected within 20 s"),
    }
}

/// Everything `rx` receives until a message with `payload` on `topic` (the control),
/// within `secs`.
pub(crate) fn until(
    rx: &Receiver<Ev>,
    topic: &str,
    payload: &[u8],
    secs: u64,
) -> Vec<(String, Vec<u8>)> {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ev::Msg(t, p)) => {
                if t == topic && p == payload {
                    return seen;
                }
                seen.push((t, p));
            }
            Ok(Ev::Up) => {}
            Ok(Ev::Down(e)) => panic!("lost the connection waiting for {topic}: {e}"),
            Err(_) => panic!(
                "no {:?} on {topic} within {secs} s; saw {:?}",
                String::from_utf8_lossy(payload),
                seen.iter().map(|(t, _)| t).collect::<Vec<_>>()
            ),
        }
    }
}

pub(crate) fn publish(c: &Client, topic: &str, payload: &str) {
    c.publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
        .unwrap();
}

fn has(seen: &[(String, Vec<u8>)], payload: &str) -> bool {
    seen.iter().any(|(_, p)| p == payload.as_bytes())
}

#[test]
fn each_device_publishes_and_reads_only_its_own_topics_under_the_repository_acl() {
    let certs = tempfile::tempdir().unwrap();
    let c = certs.path();
    make_ca(c, &["kiosk-1", "kiosk-2"]);
    let broker = acl_broker(c);
    let port = broker.port;

    // The fleet backend reads every device's topics (and may read models/set, which it
    // publishes): the observer of every negative below. Summaries through a shared
    // subscription, as `emotion-fleet serve` takes them.
    let (_obs, obs) = client(
        port,
        c,
        Some("fleet-backend"),
        &[
            "$share/ingest/emotiond/+/summary",
            "emotiond/+/models/set",
            "emotiond/groups/+/models/set",
            "emotiond/packages/#",
        ],
    );
    up(&obs, "fleet-backend");
    // kiosk-2 asks for kiosk-1's summaries, and for every desired state it can name.
    let (_k2, k2) = client(
        port,
        c,
        Some("kiosk-2"),
        &[
            "emotiond/kiosk-1/summary",
            "emotiond/kiosk-1/models/set",
            "emotiond/kiosk-2/models/set",
            "emotiond/groups/lobby/models/set",
            "emotiond/groups/hall/models/set",
        ],
    );
    up(&k2, "kiosk-2");

    // A real emotiond as kiosk-1, with kiosk-1's certificate: its summaries arrive.
    let dir = tempfile::tempdir().unwrap();
    let camera = looping_files(&data("astronaut.png"), 10.0);
    let cfg = write_config(dir.path(), "kiosk-1", port, &camera);
    let base = std::fs::read_to_string(&cfg).unwrap();
    let p = |f: &str| c.join(f).display().to_string();
    std::fs::write(
        &cfg,
        format!(
            "{base}tls = true\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
            p("ca.pem"),
            p("kiosk-1.pem"),
            p("kiosk-1.key")
        ),
    )
    .unwrap();
    kiosk_1_delivers(&cfg, &obs, "the daemon through the ACL");

    // kiosk-1's certificate: forged messages, then a control on its own summary topic.
    let (k1c, k1) = client(
        port,
        c,
        Some("kiosk-1"),
        &[
            "emotiond/kiosk-1/models/set",
            "emotiond/kiosk-2/models/set",
            "emotiond/groups/+/models/set",
            "emotiond/packages/+/+",
        ],
    );
    up(&k1, "kiosk-1");
    for t in [
        "emotiond/kiosk-2/summary",
        "emotiond/kiosk-2/status",
        "emotiond/kiosk-2/models/state",
        "emotiond/kiosk-1/models/set",
        "emotiond/kiosk-2/models/set",
        "emotiond/groups/lobby/models/set",
        "emotiond/packages/00ff/0",
    ] {
        publish(&k1c, t, "forged");
    }
    publish(&k1c, "emotiond/kiosk-1/summary", "control-k1");
    let seen = until(&obs, "emotiond/kiosk-1/summary", b"control-k1", 20);
    let forged: Vec<_> = seen.iter().filter(|(_, p)| p == b"forged").collect();
    assert!(
        forged.is_empty(),
        "kiosk-1's certificate published {:?}",
        forged.iter().map(|(t, _)| t).collect::<Vec<_>>()
    );

    // The operator's orders: each reaches the device or group it is for, and no other.
    // The chunk goes last: once kiosk-1 has it, the orders before it were delivered.
    let (opc, op) = client(port, c, Some("fleet-operator"), &[]);
    up(&op, "fleet-operator");
    publish(&opc, "emotiond/kiosk-2/models/set", "order-k2");
    publish(&opc, "emotiond/kiosk-1/models/set", "order-k1");
    publish(&opc, "emotiond/groups/lobby/models/set", "order-lobby");
    publish(&opc, "emotiond/groups/hall/models/set", "order-hall");
    publish(&opc, "emotiond/packages/00ff/0", "chunk");
    let seen1 = until(&k1, "emotiond/packages/00ff/0", b"chunk", 20);
    assert!(has(&seen1, "order-k1"), "kiosk-1 missed its own order");
    assert!(
        has(&seen1, "order-lobby"),
        "kiosk-1 missed its group's order"
    );
    assert!(!has(&seen1, "order-k2"), "kiosk-1 read kiosk-2's order");
    assert!(!has(&seen1, "order-hall"), "kiosk-1 read another group's");
    assert!(!has(&seen1, "forged"), "kiosk-1 read what it forged");

    // kiosk-2: its own order and its group's (hall, after lobby's), nothing of kiosk-1's.
    let mut seen2 = until(&k2, "emotiond/groups/hall/models/set", b"order-hall", 20);
    assert!(has(&seen2, "order-k2"), "kiosk-2 missed its own order");
    // Once the operator's last order is delivered to the observer, every earlier message
    // (the daemon's summaries included) has been delivered to kiosk-2 too.
    until(&obs, "emotiond/packages/00ff/0", b"chunk", 20);
    while let Ok(Ev::Msg(t, p)) = k2.try_recv() {
        seen2.push((t, p));
    }
    let wrong: Vec<_> = seen2
        .iter()
        .filter(|(t, p)| t.starts_with("emotiond/kiosk-1/") || p == b"order-lobby")
        .map(|(t, _)| t)
        .collect();
    assert!(wrong.is_empty(), "kiosk-2 read {wrong:?}");

    // No client certificate (TLS with the right CA), and no TLS at all: refused.
    let (_n, none) = client(port, c, None, &["emotiond/#"]);
    refused(&none, "a client without a certificate");
    refused_without_tls(port);
}

/// Runs `emotiond` with `cfg` (kiosk-1) until `obs` (fleet-backend, subscribed to every
/// summary) sees one of its summaries, then stops it.
pub(crate) fn kiosk_1_delivers(cfg: &Path, obs: &Receiver<Ev>, what: &str) {
    let mut daemon = spawn_daemon(cfg);
    let end = Instant::now() + Duration::from_secs(60);
    let summary = loop {
        match obs.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(Ev::Msg(t, s)) if t == "emotiond/kiosk-1/summary" => break json(&s),
            Ok(Ev::Down(e)) => panic!("fleet-backend lost its connection: {e}"),
            Ok(_) => {}
            Err(_) => panic!("no summary from {what} within 60 s"),
        }
    };
    assert_eq!(summary["device_id"], "kiosk-1", "{summary}");
    sigterm(&daemon.0);
    let _ = daemon.0.wait();
}

/// Wait until `rx`'s client is turned away; panic if it is let in. Returns why.
pub(crate) fn refused(rx: &Receiver<Ev>, who: &str) -> String {
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ev::Down(e)) => e,
        Ok(_) => panic!("{who} was let in"),
        Err(_) => panic!("{who} was neither let in nor refused within 20 s"),
    }
}

/// A client without TLS (plain MQTT to the TLS port) gets no CONNACK.
pub(crate) fn refused_without_tls(port: u16) {
    let mut o = MqttOptions::new(format!("acl-plain-{}", free_port()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let (_plain, mut conn) = Client::new(o, 4);
    let first = conn.iter().next().expect("an event");
    assert!(
        !matches!(first, Ok(Event::Incoming(Packet::ConnAck(_)))),
        "a client without TLS was let in"
    );
    assert!(first.is_err(), "{first:?}");
}
