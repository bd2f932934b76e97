//! The backend's broker connection over TLS: a mosquitto TLS listener that requires client
//! certificates (a CA, server and client certificates made by `openssl` for the test), the
//! backend ingesting through it, and the ways it refuses to: an unreadable CA stops the start,
//! a broker signed by another CA is named in the log. The operator's `rollback` (and so
//! `rollout`, the same flags) through the same listener, with and without its certificate.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name`.pem/.key, and a certificate `leaf`.pem/.key it signs with these alt names.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

fn leaf(dir: &Path, ca: &str, leaf: &str, ext: &str) {
    std::fs::write(dir.join(format!("{leaf}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{leaf}.key"),
            "-out",
            &format!("{leaf}.csr"),
            "-subj",
            &format!("/CN={leaf}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{leaf}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{leaf}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{leaf}.ext"),
        ],
    );
}

/// A broker with its plain listener and a TLS one (its port returned) that requires a client
/// certificate signed by `d/ca.pem`, serving `d/server.pem`.
fn tls_broker(d: &std::path::Path) -> (Broker, u16) {
    // mosquitto started as root runs as the `mosquitto` user: let it read the throwaway keys
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(d).unwrap() {
        let e = e.unwrap().path();
        std::fs::set_permissions(&e, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tls_port = free_port();
    let broker = Broker::start_with(&format!(
        "listener {tls_port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\n\
         keyfile {0}/server.key\nrequire_certificate true\n",
        d.display()
    ));
    (broker, tls_port)
}

#[test]
fn the_backend_ingests_over_tls_with_a_client_certificate_and_names_a_wrong_ca() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    ca(d, "ca");
    ca(d, "other-ca");
    leaf(
        d,
        "ca",
        "server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
    leaf(d, "ca", "client", "extendedKeyUsage=clientAuth\n");
    let (broker, tls_port) = tls_broker(d);
    let p = |f: &str| d.join(f).display().to_string();

    // through TLS with a client certificate: every summary the devices sent (in plain MQTT
    // on the other listener) is stored
    let data = tempfile::tempdir().unwrap();
    let mut serve_args = Vec::new();
    for (flag, file) in [
        ("--mqtt-ca", "ca.pem"),
        ("--mqtt-cert", "client.pem"),
        ("--mqtt-key", "client.key"),
    ] {
        serve_args.extend([flag.to_string(), p(file)]);
    }
    let args: Vec<&str> = serve_args.iter().map(String::as_str).collect();
    let serve = Serve::start_with(tls_port, data.path(), None, "tls", &args);
    let token = serve.admin_token();
    simulate(broker.port, &["--devices", "2", "--summaries", "3"]);
    wait_until(30, "every summary stored over TLS", || {
        let a = http(
            "GET",
            &format!("{}/api/v1/stats", serve.http),
            Some(&token),
            None,
        );
        (a.json()["stored"] == 6).then_some(())
    });
    drop(serve);

    // a CA file that cannot be read: the start fails and says which file
    let out = Command::new(BIN)
        .args(["serve", "--data"])
        .arg(tempfile::tempdir().unwrap().path())
        .args(["--http", "127.0.0.1:0", "--mqtt-ca", "/nonexistent/ca.pem"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the broker CA /nonexistent/ca.pem"),
        "{err}"
    );

    // a broker whose certificate another CA signed: refused, and the log says why
    let mut bad = Command::new(BIN)
        .args(["serve", "--data"])
        .arg(tempfile::tempdir().unwrap().path())
        .args([
            "--http",
            "127.0.0.1:0",
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
        ])
        .arg(tls_port.to_string())
        .args(["--mqtt-ca", &p("other-ca.pem"), "--replica", "bad"])
        .env("RUST_LOG", "info,sqlx=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(bad.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut refused = None;
    for line in lines.map_while(Result::ok) {
        if line.contains("cannot connect") {
            refused = Some(line);
            break;
        }
        seen.push(line);
    }
    let _ = bad.kill();
    let _ = bad.wait();
    let refused = refused.unwrap_or_else(|| panic!("no connection error logged: {seen:#?}"));
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
}

/// The retained message on `topic`, read on the broker's plain listener (within 10 s).
fn retained(port: u16, topic: &str) -> Option<Vec<u8>> {
    let mut o = rumqttc::MqttOptions::new(format!("tls-read-{}", free_port()), "127.0.0.1", port);
    o.set_keep_alive(std::time::Duration::from_secs(5));
    let (client, mut conn) = rumqttc::Client::new(o, 16);
    client.subscribe(topic, rumqttc::QoS::AtLeastOnce).unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Ok(ev) = conn.recv_timeout(end.saturating_duration_since(std::time::Instant::now())) {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = ev {
            return Some(p.payload.to_vec());
        }
    }
    None
}

#[test]
fn rollback_publishes_over_tls_with_a_client_certificate_and_fails_without_one() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    ca(d, "ca");
    leaf(
        d,
        "ca",
        "server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
    leaf(d, "ca", "operator", "extendedKeyUsage=clientAuth\n");
    let (broker, tls_port) = tls_broker(d);
    let p = |f: &str| d.join(f).display().to_string();
    let keygen = Command::new(BIN)
        .args(["keygen", "--out", &p("keys")])
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let rollback = |device: &str, tls: &[String]| {
        Command::new(BIN)
            .args(["rollback", "--slot", "expression", "--device", device])
            .args(["--key", &p("keys/fleet.key")])
            .args(["--host", "127.0.0.1", "--port", &tls_port.to_string()])
            .args(tls)
            .output()
            .unwrap()
    };
    let full: Vec<String> = [
        ("--mqtt-ca", "ca.pem"),
        ("--mqtt-cert", "operator.pem"),
        ("--mqtt-key", "operator.key"),
    ]
    .iter()
    .flat_map(|(f, file)| [f.to_string(), p(file)])
    .collect();
    let out = rollback("tls-1", &full);
    assert!(out.status.success(), "{out:?}");
    let msg = retained(broker.port, "emotiond/tls-1/models/set").expect("the order, retained");
    // Signed with the operator's key, as a device checks it.
    let public = std::fs::read_to_string(d.join("keys/fleet.pub")).unwrap();
    let public = emotiond_wire::signed::parse_public(&public).unwrap();
    let auth = emotiond_wire::order::verify_order(&msg, &[public]).unwrap();
    assert!(
        matches!(auth, emotiond_wire::order::OrderAuth::Signed { .. }),
        "{auth:?}"
    );
    let msg: serde_json::Value = serde_json::from_slice(&msg).unwrap();
    assert_eq!(msg["action"], "rollback", "{msg}");

    // without a client certificate the broker refuses: exit 2, naming the broker. The reason
    // depends on a race: the client sees either mosquitto's TLS alert (certificate required)
    // or the connection reset that follows it (seen in CI).
    let out = rollback("tls-2", &full[..2]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains(&format!("broker 127.0.0.1:{tls_port}"))
            && (err.contains("certificate") || err.contains("reset")),
        "{err}"
    );
    // a CA file that cannot be read is named
    let out = rollback("tls-3", &["--mqtt-ca".into(), "/nonexistent/ca.pem".into()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}
