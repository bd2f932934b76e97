//! What the backend tests start for real: mosquitto, PostgreSQL (initdb/pg_ctl as the
//! unprivileged `postgres` user when run as root), `emotion-fleet serve` and `simulate`,
//! and a small HTTP client with a token.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_emotion-fleet");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find(exes: &[&str], what: &str, install: &str) -> PathBuf {
    match exes.iter().map(Path::new).find(|p| p.exists()) {
        Some(p) => p.to_path_buf(),
        None => {
            eprintln!("\nfleet tests: {what} is not installed; install it with:\n    {install}\n");
            std::process::exit(2);
        }
    }
}

/// Mosquitto on a free loopback port with the settings docs/fleet.md gives for the fleet:
/// a large in-flight window and session queue, so a backend that is away loses nothing.
pub struct Broker {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with("")
    }

    /// `start` with more mosquitto configuration (another listener, say).
    pub fn start_with(extra: &str) -> Broker {
        let exe = find(
            &["/usr/sbin/mosquitto", "/usr/bin/mosquitto"],
            "mosquitto",
            "sudo apt-get install mosquitto",
        );
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_inflight_messages 0\nmax_queued_messages 1000000\n{extra}"
            ),
        )
        .unwrap();
        let child = Command::new(exe)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port, "mosquitto");
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

fn wait_port(port: u16, what: &str) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A throwaway PostgreSQL server (Debian's), run by the `postgres` user when we are root.
pub struct Postgres {
    pub url: String,
    ctl: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.sort();
    let found = versions
        .iter()
        .rev()
        .map(|v| v.join("bin").join(name))
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        find(
            &[],
            "PostgreSQL",
            "sudo apt-get install --no-install-recommends postgresql",
        )
    })
}

fn run_pg(as_postgres: bool, exe: &Path, args: &[&str]) {
    let out = if as_postgres {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(exe)
            .args(args)
            .output()
    } else {
        Command::new(exe).args(args).output()
    }
    .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        exe.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    pub fn start() -> Postgres {
        let initdb = pg_bin("initdb");
        let ctl = pg_bin("pg_ctl");
        let as_postgres = rustix_is_root();
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
            let st = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(st.success(), "chown postgres {}", dir.path().display());
        }
        let data = dir.path().join("data");
        let port = free_port();
        run_pg(
            as_postgres,
            &initdb,
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "fleet",
                "--no-sync",
            ],
        );
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        let log = dir.path().join("log");
        run_pg(
            as_postgres,
            &ctl,
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        Postgres {
            url: format!("postgres://fleet@127.0.0.1:{port}/postgres"),
            ctl,
            data,
            as_postgres,
            _dir: dir,
        }
    }
}

impl Postgres {
    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        let ctl = self.ctl.clone();
        run_pg(
            self.as_postgres,
            &ctl,
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let args = ["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&self.ctl)
                .args(args)
                .output()
        } else {
            Command::new(&self.ctl).args(args).output()
        };
    }
}

fn rustix_is_root() -> bool {
    // the uid of /proc/self is ours
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `emotion-fleet serve`, killed on drop.
pub struct Serve {
    pub child: Child,
    pub http: String,
    pub data: PathBuf,
}

impl Serve {
    pub fn start(broker: u16, data: &Path, db: Option<&str>, replica: &str) -> Serve {
        Serve::start_with(broker, data, db, replica, &[])
    }

    /// `start` with more of `serve`'s options.
    pub fn start_with(
        broker: u16,
        data: &Path,
        db: Option<&str>,
        replica: &str,
        extra: &[&str],
    ) -> Serve {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--data"])
            .arg(data)
            .args(["--http", &format!("127.0.0.1:{port}")])
            .args([
                "--mqtt-host",
                "127.0.0.1",
                "--mqtt-port",
                &broker.to_string(),
            ])
            .args(["--replica", replica])
            .args(extra)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(db) = db {
            cmd.args(["--db", db]);
        }
        let mut child = cmd.spawn().unwrap();
        // its first stdout line says it is up
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("serve's ready line {line:?}: {e}"));
        assert_eq!(ready["event"], "ready", "{ready}");
        let serve = Serve {
            child,
            http: ready["http"].as_str().unwrap().to_string(),
            data: data.to_path_buf(),
        };
        // subscribed: from here the broker keeps what devices publish for this backend (a
        // second replica on a shared PostgreSQL has no token file of its own: not waited for)
        if !data.join("admin.token").exists() {
            return serve;
        }
        let token = serve.admin_token();
        wait_until(30, "serve subscribed to the broker", || {
            let m = http(
                "GET",
                &format!("{}/metrics", serve.http),
                Some(&token),
                None,
            )
            .body;
            m.lines()
                .any(|l| l == "emotion_fleet_mqtt_connected 1")
                .then_some(())
        });
        serve
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `emotion-fleet simulate ARGS` against the broker; its report.
pub fn simulate(broker: u16, args: &[&str]) -> serde_json::Value {
    let out = spawn_simulate(broker, args).wait_with_output().unwrap();
    assert!(out.status.success(), "simulate {args:?} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn spawn_simulate(broker: u16, args: &[&str]) -> Child {
    Command::new(BIN)
        .args([
            "simulate",
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            &broker.to_string(),
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// An HTTP answer: status and body.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request; `auth`: a bearer token, or `cookie:<value>` for a session cookie.
pub fn http(method: &str, url: &str, auth: Option<&str>, body: Option<&str>) -> Answer {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(30));
    match auth {
        Some(a) if a.starts_with("cookie:") => {
            req = req.set("Cookie", &format!("ef_session={}", &a[7..]))
        }
        Some(t) => req = req.set("Authorization", &format!("Bearer {t}")),
        None => {}
    }
    let r = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(b),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let body = resp.into_string().unwrap_or_default();
    Answer {
        status,
        body,
        headers,
    }
}

/// Poll `f` until it gives Some, for up to `secs`.
pub fn wait_until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    wait_until_showing(secs, what, || f().ok_or(""))
}

/// [`wait_until`] where `f` says what it saw when it is not there yet (`Err(seen)`): a
/// timeout shows the last of it.
pub fn wait_until_showing<T, S: std::fmt::Display>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> Result<T, S>,
) -> T {
    let t = Instant::now();
    loop {
        let seen = match f() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}; last seen: {seen}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
