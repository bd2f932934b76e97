//! The dashboard in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
//! driven over WebDriver): login, the overview and a device page with charts drawn from
//! seeded data (a screenshot of each is saved), and a viewer who sees no operator form.

use crate::support::*;
use base64::Engine;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};

pub(crate) struct Driver {
    child: Child,
    base: String,
    session: String,
}

impl Driver {
    pub(crate) fn start() -> Driver {
        for (exe, pkg) in [
            ("/usr/bin/chromium", "chromium"),
            ("/usr/bin/chromedriver", "chromium-driver"),
        ] {
            if !std::path::Path::new(exe).exists() {
                eprintln!(
                    "\nfleet tests: {exe} is missing; install it with:\n    sudo apt-get install --no-install-recommends {pkg}\n"
                );
                std::process::exit(2);
            }
        }
        let port = free_port();
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
        // as root Chromium needs --no-sandbox
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000"]}}}});
        let a = http(
            "POST",
            &format!("{base}/session"),
            None,
            Some(&caps.to_string()),
        );
        assert_eq!(a.status, 200, "new session: {}", a.body);
        let session = a.json()["value"]["sessionId"].as_str().unwrap().to_string();
        Driver {
            child,
            base,
            session,
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let body = (!body.is_null()).then(|| body.to_string());
        let a = http(method, &url, None, body.as_deref());
        assert_eq!(a.status, 200, "{method} {path}: {}", a.body);
        a.json()["value"].clone()
    }

    pub(crate) fn go(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// Run `script` (a function body) in the page; its return value.
    pub(crate) fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Wait until the page says it rendered `page`.
    pub(crate) fn ready(&self, page: &str) {
        wait_until(30, &format!("page {page}"), || {
            let r = self.js("return document.body.dataset.ready || null;");
            (r == page).then_some(())
        });
    }

    /// Choose `file` in the file input `css` as a user would (WebDriver's Element Send Keys
    /// with the file's path).
    pub(crate) fn upload(&self, css: &str, file: &std::path::Path) {
        let e = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        let id = e["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {e}"))
            .to_string();
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": file.display().to_string()}),
        );
    }

    pub(crate) fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let b64 = self.call("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let p = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&p, png).unwrap();
        p
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn login(d: &Driver, user: &str, password: &str) {
    d.ready("login");
    d.js(&format!(
        "document.getElementById('login-user').value = {user:?};
         document.getElementById('login-password').value = {password:?};
         document.getElementById('login-form').requestSubmit(); return null;"
    ));
}

#[test]
fn the_dashboard_shows_the_fleet_and_a_device_with_charts_and_roles() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(broker.port, data.path(), None, "a");
    let token = serve.admin_token();
    // seeded data: 5 devices, 30 windows each, in the last hour
    simulate(
        broker.port,
        &["--devices", "5", "--summaries", "30", "--feedback", "2"],
    );
    wait_until(30, "150 stored", || {
        let a = http(
            "GET",
            &format!("{}/api/v1/stats", serve.http),
            Some(&token),
            None,
        );
        (a.json()["stored"] == 150).then_some(())
    });
    let a = http(
        "POST",
        &format!("{}/api/v1/users", serve.http),
        Some(&token),
        Some(r#"{"user":"ana","password":"viewer password","role":"viewer"}"#),
    );
    assert_eq!(a.status, 201);
    let pw = std::fs::read_to_string(data.path().join("admin.password")).unwrap();

    let d = Driver::start();
    d.go(&format!("{}/", serve.http));
    login(&d, "admin", pw.trim());
    d.ready("overview");
    let seen = d.js("return {
            who: document.getElementById('who').textContent,
            devices: document.querySelector('#stats [data-stat=\"devices\"]').textContent,
            online: document.querySelector('#stats [data-stat=\"online\"]').textContent,
            rows: document.querySelectorAll('#devices tr[data-device]').length,
            faces: document.getElementById('chart-faces').getAttribute('data-points'),
            canvas: document.querySelectorAll('#chart-faces canvas').length,
            suppressed: !!document.getElementById('suppressed'),
        };");
    assert_eq!(seen["devices"], "5", "{seen}");
    assert_eq!(seen["online"], "5", "{seen}");
    assert_eq!(seen["rows"], 5, "{seen}");
    assert!(seen["who"].as_str().unwrap().contains("admin"), "{seen}");
    assert!(
        seen["faces"].as_str().unwrap().parse::<u32>().unwrap() > 0,
        "{seen}"
    );
    assert!(seen["canvas"].as_u64().unwrap() > 0, "uPlot drew: {seen}");
    assert_eq!(seen["suppressed"], false, "{seen}");
    let shot = d.screenshot("dashboard-overview.png");
    eprintln!("screenshot: {}", shot.display());

    d.go(&format!("{}/#/device/sim-1", serve.http));
    d.ready("device");
    let seen = d.js("return {
            emotions: document.getElementById('chart-emotions').getAttribute('data-points'),
            va: document.getElementById('chart-va').getAttribute('data-points'),
            faces: document.getElementById('chart-faces').getAttribute('data-points'),
            canvases: document.querySelectorAll('canvas').length,
            form: !!document.getElementById('group-form'),
        };");
    for k in ["emotions", "va", "faces"] {
        assert!(
            seen[k].as_str().unwrap().parse::<u32>().unwrap() > 0,
            "{k}: {seen}"
        );
    }
    assert!(seen["canvases"].as_u64().unwrap() >= 3, "{seen}");
    assert_eq!(seen["form"], true, "an operator may set groups: {seen}");
    let shot = d.screenshot("dashboard-device.png");
    eprintln!("screenshot: {}", shot.display());

    // a viewer sees the same page without the operator's form
    d.js("document.getElementById('logout').click(); return null;");
    login(&d, "ana", "viewer password");
    d.ready("device"); // the page that was open
    d.go(&format!("{}/#/device/sim-2", serve.http));
    d.ready("device");
    let seen = d.js(
        "return {form: !!document.getElementById('group-form'), who: document.getElementById('who').textContent};",
    );
    assert_eq!(seen["form"], false, "{seen}");
    assert!(seen["who"].as_str().unwrap().contains("viewer"), "{seen}");
}
