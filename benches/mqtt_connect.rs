//! What TLS adds to connecting to the broker: the time from the start of a connection (TCP
//! connect) to the broker's CONNACK, with the daemon's own MQTT client options
//! (`emotiond::mqtt::options`: rumqttc, rustls with ring, the Last Will), against a real
//! mosquitto started here on free loopback ports with three listeners: plain, TLS with the
//! server's certificate only, and mutual TLS (a client certificate required, CN = user
//! name). The certificates (EC P-256) come from `scripts/make-test-ca` (needs openssl).
//!
//! Each connect is a fresh client: `options()` (the TLS files read and the rustls config
//! built, as when the daemon starts) happens before the clock starts; the clock runs from the
//! event loop's first poll (TCP connect, TLS handshake, MQTT CONNECT) to the CONNACK. The
//! client then disconnects. One JSON line per case: median, p95, min and max in ms.
//!
//!     cargo bench -p emotiond --bench mqtt_connect [-- CONNECTS] [--broker-nodelay]
//!
//! CONNECTS: per case (default 50). `--broker-nodelay`: mosquitto's `set_tcp_nodelay true`
//! (off by default in mosquitto 2.0): without it a TLS handshake on loopback waits ~40 ms
//! for a delayed ACK (Nagle); rumqttc 0.24 has no TCP_NODELAY option of its own.

use emotiond::config::MqttConfig;
use emotiond::mqtt::options;
use rumqttc::{AsyncClient, Event, Packet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "mosquitto did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The CA, the broker's certificate for 127.0.0.1 and a device's, readable by all (mosquitto
/// started as root runs as the mosquitto user).
fn make_certs(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-test-ca");
    let out = Command::new("bash")
        .arg(script)
        .arg(dir)
        .arg("127.0.0.1")
        .arg("bench-device")
        .output()
        .expect("bash");
    if !out.status.success() {
        eprintln!(
            "mqtt_connect: make-test-ca failed (needs openssl): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::process::exit(2);
    }
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn start_broker(dir: &Path, ports: [u16; 3], nodelay: bool) -> Broker {
    let c = dir.display();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "allow_anonymous true\npersistence false\nset_tcp_nodelay {nodelay}\n\
             listener {} 127.0.0.1\n\
             listener {} 127.0.0.1\ncafile {c}/ca.pem\ncertfile {c}/server.pem\nkeyfile {c}/server.key\n\
             listener {} 127.0.0.1\ncafile {c}/ca.pem\ncertfile {c}/server.pem\nkeyfile {c}/server.key\n\
             require_certificate true\nuse_identity_as_username true\n",
            ports[0], ports[1], ports[2]
        ),
    )
    .unwrap();
    let bin = ["/usr/sbin/mosquitto", "mosquitto"]
        .into_iter()
        .find(|b| !b.starts_with('/') || Path::new(b).exists())
        .unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("mqtt_connect: cannot start mosquitto ({e}): apt-get install mosquitto");
            std::process::exit(2);
        });
    let b = Broker(child);
    for p in ports {
        wait_port(p);
    }
    b
}

/// One connect: milliseconds from the first poll to the CONNACK.
async fn connect_once(cfg: &MqttConfig, id: &str) -> f64 {
    let o = options(cfg, id, Some("bench/status")).expect("TLS files");
    let (client, mut el) = AsyncClient::new(o, 10);
    let t = Instant::now();
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("{id}: {e}"),
        }
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    client.disconnect().await.unwrap();
    // until the DISCONNECT is written and the connection closes
    while let Ok(ev) = el.poll().await {
        if let Event::Outgoing(rumqttc::Outgoing::Disconnect) = ev {
            break;
        }
    }
    ms
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let nodelay = std::env::args().any(|a| a == "--broker-nodelay");
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("CONNECTS: a number"))
        .unwrap_or(50);
    assert!(n > 0, "CONNECTS must be at least 1");
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("certs");
    make_certs(&dir);
    let ports = [free_port(), free_port(), free_port()];
    let _broker = start_broker(&dir, ports, nodelay);
    let base = MqttConfig {
        host: "127.0.0.1".into(),
        ..MqttConfig::default()
    };
    let cases = [
        (
            "plain",
            MqttConfig {
                port: ports[0],
                ..base.clone()
            },
        ),
        (
            "tls",
            MqttConfig {
                port: ports[1],
                tls: true,
                ca_file: Some(dir.join("ca.pem")),
                ..base.clone()
            },
        ),
        (
            "mutual_tls",
            MqttConfig {
                port: ports[2],
                tls: true,
                ca_file: Some(dir.join("ca.pem")),
                cert_file: Some(dir.join("bench-device.pem")),
                key_file: Some(dir.join("bench-device.key")),
                ..base.clone()
            },
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, cfg) in cases {
        let mut ms = Vec::with_capacity(n);
        rt.block_on(async {
            // one connect first, not counted (page faults, the first handshake's setup)
            connect_once(&cfg, &format!("bench-{name}-warm")).await;
            for i in 0..n {
                ms.push(connect_once(&cfg, &format!("bench-{name}-{i}")).await);
            }
        });
        ms.sort_by(f64::total_cmp);
        println!(
            "{{\"bench\":\"mqtt_connect\",\"case\":\"{name}\",\"broker_nodelay\":{nodelay},\"connects\":{n},\"median_ms\":{:.3},\"p95_ms\":{:.3},\"min_ms\":{:.3},\"max_ms\":{:.3}}}",
            pct(&ms, 0.5),
            pct(&ms, 0.95),
            ms[0],
            ms[n - 1]
        );
    }
}
