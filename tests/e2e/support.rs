//! Shared by the end-to-end tests: the binary, a real mosquitto on a free port, a relay
//! that cuts the network to it, subscriptions, the daemon as a child process, and the
//! optional runtimes (TFLite library, a spoken clip) that some tests skip without.

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_emotiond");

pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto process on a free loopback port, killed on drop.
pub struct Broker {
    pub child: Child,
    pub port: u16,
    pub _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(|port| {
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        })
    }

    /// A broker with the configuration `conf(port)` (the port it is to listen on).
    pub fn start_with(conf_text: impl FnOnce(u16) -> String) -> Broker {
        let port = free_port();
        let Some(exe) = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
        else {
            // Stop the whole run at once with the line to type, rather than one failed test
            // per broker (the README's test command needs Debian's mosquitto).
            eprintln!(
                "\ne2e: mosquitto is not installed; the end-to-end tests need it:\n    sudo apt-get install mosquitto alsa-utils\n"
            );
            std::process::exit(2);
        };
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, conf_text(port)).unwrap();
        let child = Command::new(exe)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything published under a topic filter, as (topic, payload, retained).
pub fn subscribe(port: u16, filter: &str) -> mpsc::Receiver<(String, Vec<u8>, bool)> {
    let (tx, rx) = mpsc::channel();
    let mut o = MqttOptions::new(format!("e2e-sub-{}", free_port()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(o, 16);
    client.subscribe(filter, QoS::AtLeastOnce).unwrap();
    std::thread::spawn(move || {
        let _keep = client;
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx
                        .send((p.topic.clone(), p.payload.to_vec(), p.retain))
                        .is_err()
                    {
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

/// Wait for a message on `topic` satisfying `pred`.
pub fn wait_for(
    rx: &mpsc::Receiver<(String, Vec<u8>, bool)>,
    topic: &str,
    within: Duration,
    mut pred: impl FnMut(&[u8]) -> bool,
) -> Vec<u8> {
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((t, p, _)) if t == topic && pred(&p) => return p,
            Ok(_) => {}
            Err(_) => panic!("nothing matching on {topic} within {within:?}"),
        }
    }
}

/// The next summary on `topic`, within `secs` seconds.
pub fn next_summary(
    rx: &mpsc::Receiver<(String, Vec<u8>, bool)>,
    topic: &str,
    secs: u64,
) -> serde_json::Value {
    json(&wait_for(rx, topic, Duration::from_secs(secs), |_| true))
}

/// A `[camera]` table looping over one file (or folder) at `fps`.
pub fn looping_files(path: &Path, fps: f32) -> String {
    format!(
        "[camera]\nsource = \"files\"\npaths = [{:?}]\nloop = true\nstills_fps = {fps:?}\n",
        path.display().to_string()
    )
}

pub fn write_config(dir: &Path, device: &str, port: u16, camera: &str) -> PathBuf {
    let p = dir.join("emotiond.toml");
    let mut f = std::fs::File::create(&p).unwrap();
    write!(
        f,
        "device_id = \"{device}\"\nstate_dir = {:?}\n{camera}\n[pipeline]\nwindow_s = 1.0\n[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nkeep_alive_s = 5\n",
        dir.join("state").display().to_string()
    )
    .unwrap();
    p
}

/// The daemon process; killed if a test fails before it ends it.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn_daemon(config: &Path) -> Daemon {
    Daemon(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info,tract_linalg=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

pub fn json(p: &[u8]) -> serde_json::Value {
    serde_json::from_slice(p)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(p)))
}

pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

pub fn run_cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// A TCP relay in front of the broker that the test can cut (close every connection and
/// refuse new ones) and restore: the network to the broker goes away, the broker and the
/// test's subscriber stay.
pub struct Relay {
    pub port: u16,
    pub up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    pub fn start(broker_port: u16) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::<std::net::TcpStream>::new()));
        let (up2, conns2) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            loop {
                match listener.accept() {
                    Ok((client, _)) if up2.load(Ordering::SeqCst) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", broker_port))
                        else {
                            continue;
                        };
                        for (mut a, mut b) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server.try_clone().unwrap(), client.try_clone().unwrap()),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut a, &mut b);
                                let _ = b.shutdown(std::net::Shutdown::Both);
                            });
                        }
                        conns2.lock().unwrap().extend([client, server]);
                    }
                    Ok((refused, _)) => drop(refused), // down: accept and close at once
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Relay { port, up, conns }
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Wait until the file holds `want` (trimmed).
pub fn wait_file(path: &Path, want: &str, secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    while Instant::now() < end {
        last = std::fs::read_to_string(path).unwrap_or_default();
        if last.trim() == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{} holds {last:?}, not {want:?}, after {secs} s",
        path.display()
    );
}

/// The TFLite C library of `models/tools/fetch_runtimes.sh` (or EMOTIOND_TFLITE_LIB); when
/// absent the test says so and passes, unless EMOTIOND_REQUIRE_RUNTIMES=1 (CI).
pub fn tflite_library() -> Option<PathBuf> {
    let p = std::env::var_os("EMOTIOND_TFLITE_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| data("../../runtimes-cache/tflite/libtensorflowlite_c.so"));
    if p.is_file() {
        return Some(p);
    }
    let msg = format!(
        "{} not found: run models/tools/fetch_runtimes.sh",
        p.display()
    );
    if std::env::var("EMOTIOND_REQUIRE_RUNTIMES").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Debian's alsa-utils spoken clip (see tests/audio.rs); None (skipped) without it, unless
/// EMOTIOND_REQUIRE_RUNTIMES=1.
pub fn spoken_clip() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/share/sounds/alsa/Front_Center.wav");
    if p.is_file() {
        return Some(p);
    }
    let msg = format!("{} not found: apt-get install alsa-utils", p.display());
    if std::env::var("EMOTIOND_REQUIRE_RUNTIMES").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}
