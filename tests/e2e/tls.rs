//! MQTT over TLS: a mosquitto TLS listener that requires client certificates (CN = the user
//! name), certificates from `scripts/make-test-ca`; the daemon delivers summaries through it
//! (read back by a subscriber over TLS), `emotiond check` passes the broker, and says why it
//! fails with a CA that did not sign the broker's certificate, without a client certificate,
//! for a host name the certificate is not for, or with the broker's certificate expired (its
//! clock moved 400 days ahead by libfaketime); an unreadable CA stops the start.

use crate::support::*;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS, Transport};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `scripts/make-test-ca DIR HOSTS DEVICES...`, keys readable by all: mosquitto started as
/// root runs as the `mosquitto` user.
fn make_ca(dir: &Path, hosts: &str, devices: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-test-ca");
    let out = Command::new("bash")
        .arg(&script)
        .arg(dir)
        .arg(hosts)
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

/// mosquitto with one TLS listener requiring a client certificate signed by `certs/ca.pem`.
fn tls_broker(certs: &Path) -> Broker {
    Broker::start_with(|port| {
        format!(
            "listener {port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\n\
             keyfile {0}/server.key\nrequire_certificate true\n\
             use_identity_as_username true\nallow_anonymous false\npersistence false\n",
            certs.display()
        )
    })
}

/// Summaries on `topic`, through TLS with the client certificate `certs/NAME.pem`.
fn subscribe_tls(
    port: u16,
    certs: &Path,
    name: &str,
    topic: &str,
) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let read = |f: &str| std::fs::read(certs.join(f)).unwrap();
    let mut o = MqttOptions::new(format!("e2e-tls-{}", free_port()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    o.set_transport(Transport::tls(
        read("ca.pem"),
        Some((read(&format!("{name}.pem")), read(&format!("{name}.key")))),
        None,
    ));
    let (client, mut conn) = Client::new(o, 16);
    client.subscribe(topic, QoS::AtLeastOnce).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _keep = client;
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send(p.payload.to_vec()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    rx
}

/// `emotiond check --json` with `cfg`: its broker item.
pub(crate) fn broker_check(cfg: &Path) -> serde_json::Value {
    let out = run_cli(&["check", "--json", "--config", cfg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .map(|l| json(l.as_bytes()))
        .find(|i| i["check"] == "broker")
        .unwrap_or_else(|| panic!("no broker item: {text}"))
}

#[test]
fn the_daemon_publishes_over_tls_with_its_client_certificate_and_check_explains_refusals() {
    let certs = tempfile::tempdir().unwrap();
    let c = certs.path();
    make_ca(c, "127.0.0.1", &["tls-dev", "e2e-sub"]);
    let other = tempfile::tempdir().unwrap();
    make_ca(other.path(), "127.0.0.1", &[]);
    let broker = tls_broker(c);
    let p = |f: &str| c.join(f).display().to_string();

    // the device's certificate and the right CA: summaries arrive over TLS
    let dir = tempfile::tempdir().unwrap();
    let camera = looping_files(&data("astronaut.png"), 10.0);
    let cfg = write_config(dir.path(), "tls-dev", broker.port, &camera);
    let base = std::fs::read_to_string(&cfg).unwrap();
    let with = |extra: &str| {
        let f = dir.path().join(format!("c{}.toml", free_port()));
        std::fs::write(&f, format!("{base}tls = true\n{extra}")).unwrap();
        f
    };
    let full = format!(
        "ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
        p("ca.pem"),
        p("tls-dev.pem"),
        p("tls-dev.key")
    );
    std::fs::write(&cfg, format!("{base}tls = true\n{full}")).unwrap();
    let rx = subscribe_tls(broker.port, c, "e2e-sub", "emotiond/tls-dev/summary");
    let mut daemon = spawn_daemon(&cfg);
    for _ in 0..2 {
        let s = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a summary over TLS within 60 s");
        let s = json(&s);
        assert_eq!(s["device_id"], "tls-dev", "{s}");
    }
    sigterm(&daemon.0);
    let _ = daemon.0.wait();

    // check passes the broker over TLS
    let b = broker_check(&cfg);
    assert_eq!(b["ok"], true, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("over TLS"), "{b}");

    // a CA that did not sign the broker's certificate
    let wrong_ca = with(&format!(
        "ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
        other.path().join("ca.pem").display().to_string(),
        p("tls-dev.pem"),
        p("tls-dev.key")
    ));
    let b = broker_check(&wrong_ca);
    assert_eq!(b["ok"], false, "{b}");
    assert!(
        b["hint"]
            .as_str()
            .unwrap()
            .contains("the broker's certificate is not signed by mqtt.ca_file"),
        "{b}"
    );

    // no client certificate: the broker refuses, and the hint says what to set
    let no_cert = with(&format!("ca_file = {:?}\n", p("ca.pem")));
    let b = broker_check(&no_cert);
    assert_eq!(b["ok"], false, "{b}");
    let hint = b["hint"].as_str().unwrap();
    assert!(
        hint.contains("client certificate") && hint.contains("mqtt.cert_file"),
        "{b}"
    );

    // a host name the broker's certificate is not for
    let name = with(&full).display().to_string();
    let text = std::fs::read_to_string(&name)
        .unwrap()
        .replace("host = \"127.0.0.1\"", "host = \"localhost\"");
    std::fs::write(&name, text).unwrap();
    let b = broker_check(Path::new(&name));
    assert_eq!(b["ok"], false, "{b}");
    assert!(
        b["hint"]
            .as_str()
            .unwrap()
            .contains("the certificate is not for localhost"),
        "{b}"
    );

    // the broker's certificate expired (made for 365 days): `emotiond check` under libfaketime
    // with its wall clock 400 days ahead (the broker's own clock is not moved)
    let out = Command::new(BIN)
        .args(["check", "--json", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .env("LD_PRELOAD", crate::clockjump::libfaketime())
        .env("FAKETIME", "+400d")
        .env("DONT_FAKE_MONOTONIC", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let b = text
        .lines()
        .map(|l| json(l.as_bytes()))
        .find(|i| i["check"] == "broker")
        .unwrap_or_else(|| panic!("no broker item under faketime: {text}"));
    assert_eq!(b["ok"], false, "{b}");
    assert!(
        b["hint"]
            .as_str()
            .unwrap()
            .contains("the broker's certificate has expired (or this device's clock is wrong)"),
        "{b}"
    );

    // a CA file that cannot be read: a config error at start, naming the key and the file
    let missing = with("ca_file = \"/nonexistent/ca.pem\"\n");
    let out = run_cli(&["run", "--config", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("config `mqtt.ca_file`: cannot read /nonexistent/ca.pem"),
        "{err}"
    );
}
