//! The on-device HTTP API (issue 15) against the real binary, a real mosquitto and the
//! built-in sample clip: analyze equals `emotiond analyze`, hostile requests get 4xx and the
//! daemon carries on, live events while the clip plays, feedback on the broker, a flood of
//! analyze requests gets 503s while the pipeline goes on analysing the clip's frames
//! (`emotiond_frames_processed_total` rises during it), a token guards every route, and the
//! start refuses a non-loopback address without a token.

use crate::support::*;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "e2e-token-0123456789abcdef";

/// The daemon on the sample clip with the API on a free loopback port.
pub struct ApiDaemon {
    _broker: Broker,
    pub pins: std::path::PathBuf,
    pub broker_port: u16,
    pub daemon: Daemon,
    pub base: String,
    _dir: tempfile::TempDir,
}

pub fn start(extra_api: &str) -> ApiDaemon {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // a simulated feedback button (pins as files), to compare its events with the API's
    let camera = format!(
        "[camera]\nsource = \"demo\"\n[indicators]\nbackend = \"sim\"\nbutton = 27\nsim_dir = {:?}\n",
        dir.path().join("pins").display().to_string()
    );
    let cfg = write_config(dir.path(), "api-e2e", broker.port, &camera);
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&cfg).unwrap();
    write!(
        f,
        "[api]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\ntoken_file = {:?}\n{extra_api}",
        token.display().to_string()
    )
    .unwrap();
    let daemon = spawn_daemon(&cfg);
    let base = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while get(&format!("{base}/v1/health")).0 != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the API did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ApiDaemon {
        pins: dir.path().join("pins"),
        broker_port: broker.port,
        _broker: broker,
        daemon,
        base,
        _dir: dir,
    }
}

/// Status, headers of interest (Retry-After) and body; `auth` false: no token.
fn request(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    auth: Option<&str>,
) -> (u16, Option<String>, String) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let mut r = agent.request(method, url);
    if let Some(t) = auth {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    let res = match body {
        Some(b) => r.send_bytes(b),
        None => r.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return (0, None, e.to_string()),
    };
    let status = resp.status();
    let retry = resp.header("Retry-After").map(str::to_string);
    (status, retry, resp.into_string().unwrap_or_default())
}

pub fn get(url: &str) -> (u16, String) {
    let (s, _, b) = request("GET", url, None, Some(TOKEN));
    (s, b)
}

fn post(url: &str, body: &[u8]) -> (u16, Option<String>, String) {
    request("POST", url, Some(body), Some(TOKEN))
}

/// The line `emotiond analyze` prints for `path`, and the API's answer for the same
/// bytes, both without the timings.
fn both_analyses(base: &str, path: &Path) -> (serde_json::Value, serde_json::Value) {
    let p = path.to_str().unwrap();
    let out = run_cli(&["analyze", p]);
    let mut cli = json(String::from_utf8(out.stdout).unwrap().trim().as_bytes());
    let (status, _, body) = post(
        &format!("{base}/v1/analyze?name={p}"),
        &std::fs::read(path).unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    let mut api = json(body.as_bytes());
    for v in [&mut cli, &mut api] {
        let o = v.as_object_mut().unwrap();
        assert!(o.remove("detect_ms").is_some() && o.remove("classify_ms").is_some());
    }
    (cli, api)
}

/// Every key path of a JSON value (`window.detector.id`, ...).
fn keys(at: &str, v: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    if let Some(o) = v.as_object() {
        for (k, v) in o {
            let path = format!("{at}.{k}");
            out.extend(keys(&path, v));
            out.insert(path);
        }
    }
    out
}

#[test]
fn the_api_serves_analyze_live_feedback_and_survives_bad_requests() {
    let d = start("max_body_bytes = 1500000\nanalyze_queue = 0\n");
    let base = d.base.as_str();
    // a live client that never reads (a small receive buffer, as a stuck phone would have):
    // dropped once the buffers in front of it are full; the pipeline never waits for it
    let stuck = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    stuck.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    stuck.connect(&addr.into()).unwrap();
    let mut stuck = std::net::TcpStream::from(stuck);
    write!(
        stuck,
        "GET /v1/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();

    // analyze: the same JSON as `emotiond analyze`, on real photos
    for photo in [
        data("faces/neutral_matplotlib_grace_hopper.jpg"),
        data("faces/noface_skimage_rocket.jpg"),
        data("astronaut.png"),
    ] {
        let (cli, api) = both_analyses(base, &photo);
        assert_eq!(cli, api, "{}", photo.display());
    }

    // hostile requests: 4xx with a JSON error, and the daemon carries on
    let url = format!("{base}/v1/analyze");
    // too large: refused on its declared length; the client sending the whole body still
    // reads the 413 (the body is read and thrown away first: no reset, no broken pipe)
    for _ in 0..3 {
        let mut tcp = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
        write!(
            tcp,
            "POST /v1/analyze HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1500001\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        tcp.write_all(&vec![0u8; 1_500_001])
            .expect("the daemon reads the refused upload: no broken pipe");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut tcp, &mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("max_body_bytes"), "{answer}");
    }
    // declared beyond what is worth reading (over 16 MiB): refused at once, unread
    let mut tcp = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    write!(
        tcp,
        "POST /v1/analyze HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100000000\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut tcp, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    for (body, want, says) in [
        (&b"GIF89a not what we take"[..], 415, "JPEG or PNG"),
        (&b""[..], 400, "empty"),
        (
            &b"\xff\xd8\xff\xe0 a JPEG header and nothing else"[..],
            400,
            "decode",
        ),
    ] {
        let (status, _, text) = post(&url, body);
        assert_eq!(status, want, "{text}");
        assert!(
            json(text.as_bytes())["error"]
                .as_str()
                .unwrap()
                .contains(says),
            "{text}"
        );
    }
    // one client, one image at a time, with no queue (analyze_queue = 0): never busy, also
    // when the next image arrives the moment the last answer did
    for _ in 0..20 {
        let (status, _, text) = post(&url, b"\xff\xd8\xff\xe0 not a whole JPEG");
        assert_eq!(status, 400, "{text}");
    }
    assert_eq!(request("GET", &url, None, Some(TOKEN)).0, 405);
    assert_eq!(
        request("DELETE", &format!("{base}/v1/live"), None, Some(TOKEN)).0,
        405
    );
    assert_eq!(get(&format!("{base}/v1/nothing")).0, 404);

    // the token: missing or wrong → 401 on every route; in the query → fine
    for route in [
        "/",
        "/v1/live",
        "/v1/health",
        "/metrics",
        "/v1/summary/latest",
    ] {
        let u = format!("{base}{route}");
        assert_eq!(request("GET", &u, None, None).0, 401, "{route}");
        assert_eq!(
            request("GET", &u, None, Some("wrong-token-wrong-token")).0,
            401,
            "{route}"
        );
    }
    assert_eq!(request("POST", &url, Some(b"x"), None).0, 401);
    assert_eq!(
        request(
            "GET",
            &format!("{base}/v1/health?token={TOKEN}"),
            None,
            None
        )
        .0,
        200
    );

    // live: frame events with tracked faces and the window in progress while the clip plays
    let resp = ureq::AgentBuilder::new()
        .timeout_read(Duration::from_secs(30))
        .build()
        .get(&format!("{base}/v1/live"))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(resp.content_type(), "text/event-stream");
    let mut lines = BufReader::new(resp.into_reader()).lines();
    let mut frames = Vec::new();
    while frames.len() < 5 {
        let l = lines.next().expect("the live stream ended").unwrap();
        if let Some(data) = l.strip_prefix("data: ") {
            frames.push(json(data.as_bytes()));
        }
    }
    let seqs: Vec<u64> = frames
        .iter()
        .map(|f| f["frame"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "frames in order: {seqs:?}"
    );
    let with_face = frames
        .iter()
        .find(|f| !f["faces"].as_array().unwrap().is_empty())
        .expect("the sample clip shows a face");
    let face = &with_face["faces"][0];
    for k in [
        "track_id", "box", "age_s", "emotions", "dominant", "valence", "arousal",
    ] {
        assert!(!face[k].is_null(), "{k} in {face}");
    }
    assert_eq!(with_face["window"]["device_id"], "api-e2e");
    assert!(with_face["window"]["frames_processed"].as_u64().is_some());
    drop(lines);

    // feedback: a label goes to the broker like a button press; an unknown one is refused
    let rx = subscribe(d.broker_port, "emotiond/api-e2e/feedback");
    std::thread::sleep(Duration::from_millis(300)); // the subscription is in place
    let fb = format!("{base}/v1/feedback");
    let (status, _, text) = post(&fb, br#"{"label": "happy"}"#);
    assert_eq!(status, 200, "{text}");
    assert_eq!(json(text.as_bytes())["topic"], "emotiond/api-e2e/feedback");
    let ev = json(&wait_for(
        &rx,
        "emotiond/api-e2e/feedback",
        Duration::from_secs(10),
        |_| true,
    ));
    assert_eq!(
        (&ev["event"], &ev["kind"], &ev["label"], &ev["device_id"]),
        (
            &"feedback".into(),
            &"button".into(),
            &"happy".into(),
            &"api-e2e".into()
        )
    );
    assert!(ev["window"]["frames_processed"].as_u64().is_some(), "{ev}");
    let (status, _, _) = post(&fb, br#"{"kind": "wrong"}"#);
    assert_eq!(status, 200);
    let ev = json(&wait_for(
        &rx,
        "emotiond/api-e2e/feedback",
        Duration::from_secs(10),
        |_| true,
    ));
    assert!(ev.get("label").is_none(), "{ev}");
    // the button's event has the same fields, at every level (the label aside)
    std::fs::write(d.pins.join("button"), "1").unwrap();
    let button = json(&wait_for(
        &rx,
        "emotiond/api-e2e/feedback",
        Duration::from_secs(10),
        |_| true,
    ));
    std::fs::write(d.pins.join("button"), "0").unwrap();
    assert_eq!(keys("", &button), keys("", &ev), "{button}\n{ev}");
    for bad in [
        &br#"{"label": "joy"}"#[..],
        br#"{"kind": "great"}"#,
        b"{}",
        b"not json",
        br#"{"label":"happy","x":1}"#,
    ] {
        let (status, _, text) = post(&fb, bad);
        assert_eq!(status, 400, "{}: {text}", String::from_utf8_lossy(bad));
    }

    // a flood of analyze requests: 200 or 503 with Retry-After, nothing else; memory bounded
    let rss = || -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", d.daemon.0.id())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap()
    };
    let before = rss();
    let photo = std::sync::Arc::new(
        std::fs::read(data("faces/neutral_matplotlib_grace_hopper.jpg")).unwrap(),
    );
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(24));
    let threads: Vec<_> = (0..24)
        .map(|_| {
            let (photo, barrier, url) = (photo.clone(), barrier.clone(), url.clone());
            std::thread::spawn(move || {
                barrier.wait();
                (0..6).map(|_| post(&url, &photo)).collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(
        ok + busy.len(),
        answers.len(),
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(
        ok > 0 && !busy.is_empty(),
        "{ok} answered, {} busy",
        busy.len()
    );
    assert!(
        busy.iter().all(|a| a.1.as_deref() == Some("1")),
        "Retry-After on every 503"
    );
    let after = rss();
    assert!(after < before + 200_000, "RSS {before} kB → {after} kB");

    // still running: health, the latest summary and the metrics
    let (status, h) = get(&format!("{base}/v1/health"));
    assert_eq!(status, 200);
    let h = json(h.as_bytes());
    assert_eq!(
        (&h["camera"]["state"], &h["broker"]),
        (&"ok".into(), &"connected".into()),
        "{h}"
    );
    let (status, s) = get(&format!("{base}/v1/summary/latest"));
    assert_eq!(status, 200, "{s}");
    assert_eq!(json(s.as_bytes())["device_id"], "api-e2e");
    let (status, m) = get(&format!("{base}/metrics"));
    assert_eq!(status, 200);
    for want in [
        "emotiond_frames_processed_total ",
        "emotiond_inference_seconds_bucket{stage=\"detector\"",
        "emotiond_outbox_depth ",
        "emotiond_broker_connects_total 1\n",
        "emotiond_update_state 1\n",
        "emotiond_api_feedback_total 2\n",
        "emotiond_model_stalls_total{stage=\"expression\"",
    ] {
        assert!(m.contains(want), "{want} in\n{m}");
    }
    let metric = |m: &str, name: &str| -> u64 {
        let line = m
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '));
        line.unwrap_or_else(|| panic!("{name} in\n{m}"))
            .parse()
            .unwrap()
    };
    let analysed = metric(&m, "emotiond_api_analyze_busy_total");
    assert_eq!(analysed, busy.len() as u64);

    // analyze does not stall the camera pipeline: a sustained flood (24 clients, each sending
    // its next image a second after a 503, as Retry-After asks) goes on until the pipeline has
    // analysed 10 more frames of the clip (a second of it) than when the flood's first 503 was
    // counted, with 503s still coming since. Only the pipeline is checked here: the answers
    // to a flood are checked above.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..24)
        .map(|_| {
            let (photo, url, stop) = (photo.clone(), url.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if post(&url, &photo).0 == 503 {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            })
        })
        .collect();
    let counts = || {
        let m = get(&format!("{base}/metrics")).1;
        (
            metric(&m, "emotiond_frames_processed_total"),
            metric(&m, "emotiond_api_analyze_busy_total"),
        )
    };
    let t0 = Instant::now();
    let mut first: Option<(u64, u64)> = None;
    loop {
        let now = counts();
        match first {
            None if now.1 > analysed => first = Some(now),
            Some(f) if now.0 >= f.0 + 10 && now.1 > f.1 => {
                eprintln!("analyze flood: (frames processed, 503s) {f:?} → {now:?}");
                break;
            }
            _ => {}
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the pipeline stalled under the analyze flood: (frames processed, 503s) \
             {first:?} → {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    // the client that never read has been dropped (and only it: the others closed)
    let t0 = Instant::now();
    loop {
        let m = get(&format!("{base}/metrics")).1;
        if m.contains("emotiond_api_live_dropped_total 1\n") {
            assert!(m.contains("emotiond_api_live_clients 0\n"), "{m}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the client that never reads was not dropped:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stuck);
    sigterm(&d.daemon.0);
}

#[test]
fn a_network_address_without_a_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "api-refused",
        free_port(),
        "[camera]\nsource = \"demo\"\n",
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(&cfg).unwrap();
    write!(
        f,
        "[api]\nenabled = true\nlisten = \"0.0.0.0:{}\"\n",
        free_port()
    )
    .unwrap();
    let out = run_cli(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`api.token_file`: is required"), "{err}");
    // a token file that is not there: also refused, naming it
    let mut f = std::fs::OpenOptions::new().append(true).open(&cfg).unwrap();
    writeln!(f, "token_file = \"/nonexistent/api-token\"").unwrap();
    let out = run_cli(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("api.token_file") && err.contains("/nonexistent/api-token"),
        "{err}"
    );
}
