//! The username/password alternative of the per-device ACL: `deploy/mosquitto-acl.conf`
//! with its commented-out password listener uncommented (taken from the file itself, paths
//! and ports replaced, so the test breaks if the documented block rots), a password file
//! made with Debian's `mosquitto_passwd`, `deploy/emotiond.acl` as it is, certificates from
//! `scripts/make-test-ca --fleet`. A real `emotiond` (kiosk-1) with `tls = true`, `ca_file`,
//! `username` and `password` and no client certificate delivers its summaries, read by the
//! fleet backend on the certificate listener of the same broker; `emotiond check` names the
//! refusal of a wrong password, of a user name without one, and of plain MQTT to the TLS
//! port; with its password kiosk-1 cannot publish under kiosk-2's id (the ACL applies to
//! password users too); a client with neither password nor certificate, or without TLS, is
//! refused. How the negatives are observed: see `acl.rs`.

use crate::acl::{
    Login, acl_conf, client_as, kiosk_1_delivers, make_ca, publish, refused, refused_without_tls,
    until, up,
};
use crate::support::*;
use crate::tls::broker_check;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `conf` with the block that starts at the line `#listener 8884` uncommented: that line and
/// the commented-out directives right after it (`#name ...`, no space after the `#`).
fn uncomment_password_listener(conf: &str) -> String {
    let mut inside = false;
    let mut n = 0;
    let out: Vec<&str> = conf
        .lines()
        .map(|l| {
            inside |= l == "#listener 8884";
            let directive = l
                .strip_prefix('#')
                .filter(|d| d.starts_with(|c: char| c.is_ascii_alphabetic()));
            match directive {
                Some(d) if inside => {
                    n += 1;
                    d
                }
                _ => {
                    inside = false;
                    l
                }
            }
        })
        .collect();
    assert!(
        n > 1,
        "deploy/mosquitto-acl.conf has no commented-out password listener (`#listener 8884` \
         and its directives)"
    );
    out.join("\n") + "\n"
}

/// `mosquitto_passwd -b [-c] FILE USER PASSWORD` for each entry, the file readable by the
/// `mosquitto` user (mosquitto started as root drops to it).
fn password_file(file: &Path, users: &[(&str, &str)]) {
    for (i, (user, pass)) in users.iter().enumerate() {
        let mut cmd = Command::new("mosquitto_passwd");
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        let out = cmd
            .arg(file)
            .args([user, pass])
            .output()
            .expect("mosquitto_passwd (Debian's mosquitto package): apt-get install mosquitto");
        assert!(
            out.status.success(),
            "mosquitto_passwd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// The repository's broker configuration with both listeners: the certificate listener on a
/// free port (the second value) and the documented password listener on the broker's port.
fn password_broker(certs: &Path, passwd: &Path) -> (Broker, u16) {
    let mut cert_port = 0;
    let broker = Broker::start_with(|port| {
        cert_port = free_port();
        let out = uncomment_password_listener(&acl_conf(certs, cert_port))
            .replace(
                "/etc/mosquitto/emotiond.passwd",
                &passwd.display().to_string(),
            )
            .replace(
                "\nlistener 8884\n",
                &format!("\nlistener {port} 127.0.0.1\n"),
            );
        for want in [
            format!("\nlistener {port} 127.0.0.1\n"),
            format!("\npassword_file {}\n", passwd.display()),
        ] {
            assert!(out.contains(&want), "no {want:?} in {out}");
        }
        format!("{out}persistence false\n")
    });
    // The certificate listener comes first in the file: open once the password one is.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", cert_port)).is_ok(),
        "the certificate listener on {cert_port} is not open"
    );
    (broker, cert_port)
}

#[test]
fn a_device_with_a_password_over_tls_publishes_only_as_itself_under_the_repository_acl() {
    let certs = tempfile::tempdir().unwrap();
    let c = certs.path();
    make_ca(c, &["kiosk-1", "kiosk-2"]);
    let passwd = c.join("emotiond.passwd");
    password_file(
        &passwd,
        &[("kiosk-1", "k1-secret"), ("kiosk-2", "k2-secret")],
    );
    let (broker, cert_port) = password_broker(c, &passwd);
    let port = broker.port;

    // The fleet backend, with its certificate on the other listener: the observer.
    let (_obs, obs) = client_as(
        cert_port,
        c,
        Login::Cert("fleet-backend"),
        &["emotiond/+/summary", "emotiond/+/status"],
    );
    up(&obs, "fleet-backend");

    // A real emotiond as kiosk-1: TLS with the CA, user name and password, no certificate.
    let dir = tempfile::tempdir().unwrap();
    let camera = looping_files(&data("astronaut.png"), 10.0);
    let cfg = write_config(dir.path(), "kiosk-1", port, &camera);
    let base = std::fs::read_to_string(&cfg).unwrap();
    let ca = format!("ca_file = {:?}\n", c.join("ca.pem").display().to_string());
    let with = |name: &str, extra: &str| -> PathBuf {
        let f = dir.path().join(name);
        std::fs::write(&f, format!("{base}{extra}")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        f
    };
    let good = with(
        "good.toml",
        &format!("tls = true\n{ca}username = \"kiosk-1\"\npassword = \"k1-secret\"\n"),
    );
    kiosk_1_delivers(&good, &obs, "the password-authenticated daemon");

    // check: the right password passes the broker; refusals are named.
    let b = broker_check(&good);
    assert_eq!(b["ok"], true, "{b}");
    let detail = b["detail"].as_str().unwrap();
    assert!(
        detail.contains("over TLS") && detail.contains("credentials accepted"),
        "{b}"
    );
    for (name, extra, why) in [
        (
            "wrong-password.toml",
            format!("tls = true\n{ca}username = \"kiosk-1\"\npassword = \"k2-secret\"\n"),
            "a wrong password",
        ),
        (
            "no-password.toml",
            format!("tls = true\n{ca}username = \"kiosk-1\"\n"),
            "a user name without a password",
        ),
    ] {
        let b = broker_check(&with(name, &extra));
        assert_eq!(b["ok"], false, "{why}: {b}");
        assert!(
            b["detail"].as_str().unwrap().contains("NotAuthorized"),
            "{why}: {b}"
        );
        assert!(
            b["hint"]
                .as_str()
                .unwrap()
                .contains("mqtt.username/password"),
            "{why}: {b}"
        );
    }
    let plain = with(
        "plain.toml",
        "username = \"kiosk-1\"\npassword = \"k1-secret\"\n",
    );
    let b = broker_check(&plain);
    assert_eq!(b["ok"], false, "without TLS: {b}");
    assert!(
        b["hint"].as_str().unwrap().contains("set mqtt.tls = true"),
        "without TLS: {b}"
    );

    // kiosk-1's password: forged messages under kiosk-2's id, then a control on its own
    // summary topic, all through the password listener.
    let (k1c, k1) = client_as(port, c, Login::Password("kiosk-1", "k1-secret"), &[]);
    up(&k1, "kiosk-1 (password)");
    for t in ["emotiond/kiosk-2/summary", "emotiond/kiosk-2/status"] {
        publish(&k1c, t, "forged");
    }
    publish(&k1c, "emotiond/kiosk-1/summary", "control-k1");
    let seen = until(&obs, "emotiond/kiosk-1/summary", b"control-k1", 20);
    let forged: Vec<_> = seen
        .iter()
        .filter(|(_, p)| p == b"forged")
        .map(|(t, _)| t)
        .collect();
    assert!(forged.is_empty(), "kiosk-1's password published {forged:?}");

    // Neither password nor certificate (TLS with the right CA), a wrong password, and no
    // TLS at all: refused.
    let (_a, anon) = client_as(port, c, Login::Anonymous, &[]);
    refused(&anon, "a client without a password");
    let (_w, wrong) = client_as(port, c, Login::Password("kiosk-1", "k2-secret"), &[]);
    refused(&wrong, "kiosk-1 with kiosk-2's password");
    refused_without_tls(port);
}
