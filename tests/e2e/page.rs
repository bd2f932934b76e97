//! The API's built-in page in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, over WebDriver; as root it needs --no-sandbox): it loads, the live
//! values move while the sample clip plays (the emotion bars, valence and arousal read at two
//! moments differ: the clip goes from a smiling face to a neutral one), the preview shows the
//! camera with the face boxes drawn over it, and a screenshot is saved
//! (target/tmp/api-live-page.png).

use crate::api::{TOKEN, get, start};
use base64::Engine;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn wait_until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Driver {
    child: Child,
    base: String,
    session: String,
}

fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    let r = ureq::request(method, url).timeout(Duration::from_secs(60));
    let res = match body {
        Some(b) => r.send_string(&b.to_string()),
        None => r.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(c, r)) => panic!(
            "{method} {url}: {c} {}",
            r.into_string().unwrap_or_default()
        ),
        Err(e) => panic!("{method} {url}: {e}"),
    };
    serde_json::from_str::<Value>(&resp.into_string().unwrap()).unwrap()["value"].clone()
}

impl Driver {
    fn start() -> Driver {
        for (exe, pkg) in [
            ("/usr/bin/chromium", "chromium"),
            ("/usr/bin/chromedriver", "chromium-driver"),
        ] {
            assert!(
                std::path::Path::new(exe).exists(),
                "{exe} is missing; install it with: sudo apt-get install --no-install-recommends {pkg}"
            );
        }
        let port = crate::support::free_port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        wait_until(20, "chromedriver", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900"]}}}});
        let v = call("POST", &format!("{base}/session"), Some(caps));
        let session = v["sessionId"].as_str().unwrap().to_string();
        Driver {
            child,
            base,
            session,
        }
    }

    fn session(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(
            method,
            &format!("{}/session/{}{path}", self.base, self.session),
            body,
        )
    }

    fn js(&self, script: &str) -> Value {
        self.session(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn text(&self, id: &str) -> String {
        self.js(&format!(
            "return document.getElementById('{id}').textContent;"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the page shows at one moment: the seven bars' values, valence and arousal as text.
#[derive(Debug)]
struct Shown {
    bars: Vec<f64>,
    valence: String,
    arousal: String,
}

fn values(driver: &Driver) -> Shown {
    // one script, so the three are read between the same two live events
    let v = driver.js(
        "return [['angry','disgust','fear','happy','sad','surprise','neutral'].map(e => Number(document.getElementById('bar-' + e).dataset.value || 0)), document.getElementById('valence').textContent, document.getElementById('arousal').textContent];",
    );
    Shown {
        bars: v[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect(),
        valence: v[1].as_str().unwrap_or_default().to_string(),
        arousal: v[2].as_str().unwrap_or_default().to_string(),
    }
}

#[test]
fn the_live_page_moves_while_the_clip_plays_and_shows_the_preview() {
    let d = start("preview = true\n");
    let page = format!("{}/?token={TOKEN}", d.base);
    // the page itself needs the token too
    assert_eq!(get(&format!("{}/", d.base)).0, 200);
    let driver = Driver::start();
    driver.session("POST", "/url", Some(json!({ "url": page })));
    wait_until(30, "the page's first live event", || {
        (driver.js("return document.body.dataset.ready;") == "live").then_some(())
    });
    let frames = |d: &Driver| d.text("frames").parse::<u64>().unwrap();
    let first = frames(&driver);
    wait_until(30, "more live events", || {
        (frames(&driver) > first + 5).then_some(())
    });
    // the bars and valence/arousal come from the clip's face; the health pills from /v1/health
    let bars = wait_until(30, "emotion bars with values", || {
        let v = driver.js(
            "return ['angry','disgust','fear','happy','sad','surprise','neutral'].map(e => Number(document.getElementById('bar-' + e).dataset.value || 0));",
        );
        let sum: f64 = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum();
        (sum > 0.5).then_some(v)
    });
    wait_until(30, "valence shown", || {
        (driver.text("valence") != "–").then_some(())
    });
    // the values move: the clip goes from a smiling face (2.5 s) to a neutral one (2.5 s), so
    // a later moment shows other bars (one emotion's share differs by more than 0.2) and
    // another valence and arousal than the first one read
    let first = values(&driver);
    let later = wait_until(30, "the bars, valence and arousal to change", || {
        let now = values(&driver);
        let moved = first
            .bars
            .iter()
            .zip(&now.bars)
            .any(|(a, b)| (a - b).abs() > 0.2);
        (moved
            && now.valence != "–"
            && now.valence != first.valence
            && now.arousal != first.arousal)
            .then_some(now)
    });
    eprintln!("live values: {first:?} then {later:?}");
    wait_until(10, "camera ok", || {
        (driver.text("camera") == "ok").then_some(())
    });
    wait_until(10, "broker connected", || {
        driver.text("broker").starts_with("connected").then_some(())
    });
    assert_eq!(driver.text("device"), "api-e2e");
    assert!(
        driver.text("engine").contains("tract"),
        "{}",
        driver.text("engine")
    );
    assert!(driver.text("detector").contains("blazeface"));
    // the preview: a camera image, decoded, with the box canvas over it
    wait_until(30, "the camera preview", || {
        let w = driver.js(
            "const i = document.getElementById('preview'); return document.getElementById('preview-section').hidden ? 0 : i.naturalWidth;",
        );
        (w.as_u64().unwrap_or(0) > 0).then_some(())
    });
    // the face boxes: drawn on the canvas over the preview, at the image's size
    let drawn = wait_until(30, "face boxes drawn over the preview", || {
        let v = driver.js(
            "const c = document.getElementById('boxes'), i = document.getElementById('preview');\n\
             if (!c.width || !c.height || c.width !== i.naturalWidth || c.height !== i.naturalHeight) return 0;\n\
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;\n\
             let n = 0; for (let k = 3; k < d.length; k += 4) if (d[k] > 0) n++;\n\
             return n;",
        );
        let n = v.as_u64().unwrap_or(0);
        (n > 0).then_some(n)
    });
    eprintln!("{drawn} pixels drawn on the box canvas");
    let png = base64::engine::general_purpose::STANDARD
        .decode(driver.session("GET", "/screenshot", None).as_str().unwrap())
        .unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("api-live-page.png");
    std::fs::write(&shot, png).unwrap();
    eprintln!("screenshot: {} (bars {bars})", shot.display());
}
