//! Bad input over MQTT and HTTP, and the API's roles, on one backend; login rate limiting on
//! another.
//!
//! Length: ~510 lines: one backend started once for many bad-input cases (starting one per
//! file would cost seconds each).

use crate::support::*;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// Publish raw messages at QoS 1 and wait for the broker's acknowledgements.
fn publish_raw(port: u16, msgs: &[(&str, Vec<u8>)]) {
    let mut o = MqttOptions::new("hostile", "127.0.0.1", port);
    o.set_max_packet_size(20 << 20, 20 << 20);
    let (c, mut conn) = Client::new(o, 64);
    // publish from another thread: the request queue is bounded and drains only while the
    // connection below is polled
    let owned: Vec<(String, Vec<u8>)> = msgs
        .iter()
        .map(|(t, p)| (t.to_string(), p.clone()))
        .collect();
    let publisher = c.clone();
    let feeder = std::thread::spawn(move || {
        for (t, p) in owned {
            publisher.publish(t, QoS::AtLeastOnce, false, p).unwrap();
        }
    });
    let mut acks = 0;
    for ev in conn.iter() {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = ev {
            acks += 1;
            if acks == msgs.len() {
                break;
            }
        }
        if let Err(e) = ev {
            panic!("publish: {e}");
        }
    }
    feeder.join().unwrap();
    let _ = c.disconnect();
}

#[test]
fn bad_messages_are_counted_and_named_and_other_devices_go_on() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(broker.port, data.path(), None, "a");
    let token = serve.admin_token();
    let rep = simulate(broker.port, &["--devices", "3", "--summaries", "5"]);
    assert_eq!(rep["unique"], 15);
    let get = |p: &str| {
        let a = http("GET", &format!("{}{p}", serve.http), Some(&token), None);
        assert_eq!(a.status, 200, "{p}: {}", a.body);
        a.json()
    };
    wait_until(30, "15 stored", || {
        (get("/api/v1/stats")["stored"] == 15).then_some(())
    });

    let good =
        emotion_fleet_server::sim::summary(&Default::default(), "sim-0", 0, 100, 1_700_000_000_000);
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(("emotiond/sim-1/summary", b"{\"schema\":".to_vec()));
    }
    publish_raw(
        broker.port,
        &[
            ("emotiond/sim-0/summary", b"{not json".to_vec()),
            ("emotiond/sim-0/summary", vec![0xff; 40]),
            ("emotiond/sim-2/summary", vec![b'{'; 10 << 20]),
            ("emotiond/sim-2/status", b"maybe".to_vec()),
            ("emotiond/sim-2/health", b"[1,2]".to_vec()),
            // a device nobody has seen, with garbage: counted, but it creates no device
            ("emotiond/ghost/summary", b"garbage".to_vec()),
            // a valid summary on another device's topic
            ("emotiond/sim-1/summary", serde_json::to_vec(&good).unwrap()),
        ],
    );
    publish_raw(broker.port, &flood);
    let stats = wait_until(60, "every bad message counted", || {
        let s = get("/api/v1/stats");
        (s["malformed"] == 207).then_some(s)
    });
    assert_eq!(stats["devices"], 3, "garbage created no device: {stats}");
    assert_eq!(stats["stored"], 15, "{stats}");
    let d0 = get("/api/v1/devices/sim-0");
    assert_eq!(d0["malformed"], 2, "{d0}");
    assert!(
        d0["last_malformed"].as_str().unwrap().contains("postcard"),
        "{d0}"
    );
    let d2 = get("/api/v1/devices/sim-2");
    assert_eq!(d2["malformed"], 3, "{d2}");
    let d1 = get("/api/v1/devices/sim-1");
    assert_eq!(d1["malformed"], 201, "{d1}");
    assert!(
        d1["last_malformed"].as_str().unwrap().contains("JSON")
            || d1["last_malformed"]
                .as_str()
                .unwrap()
                .contains("names device"),
        "{d1}"
    );
    // and the backend still takes good data from everyone, the flooder included
    let rep = simulate(
        broker.port,
        &["--devices", "3", "--summaries", "2", "--start-seq", "5"],
    );
    assert_eq!(rep["unique"], 6);
    wait_until(30, "21 stored", || {
        (get("/api/v1/stats")["stored"] == 21).then_some(())
    });
    // Prometheus sees the same
    let m = http(
        "GET",
        &format!("{}/metrics", serve.http),
        Some(&token),
        None,
    );
    assert!(
        m.body.contains("emotion_fleet_malformed_total 207"),
        "{}",
        m.body
    );
    assert!(
        m.body.contains("emotion_fleet_mqtt_connected 1"),
        "{}",
        m.body
    );
}

fn day_ago() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 86_400_000
}

#[test]
fn roles_tokens_logins_and_hostile_requests() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(broker.port, data.path(), None, "a");
    let admin = serve.admin_token();
    let u = |p: &str| format!("{}{p}", serve.http);
    // the first credentials are the owner's only
    use std::os::unix::fs::PermissionsExt;
    for f in ["admin.token", "admin.password"] {
        let m = std::fs::metadata(data.path().join(f)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{f}");
    }
    simulate(broker.port, &["--devices", "4", "--summaries", "3"]);
    wait_until(30, "devices", || {
        let a = http("GET", &u("/api/v1/stats"), Some(&admin), None);
        (a.json()["stored"] == 12).then_some(())
    });

    // no token, a wrong token: 401 on every API route and /metrics
    for p in [
        "/api/v1/devices",
        "/api/v1/stats",
        "/api/v1/audit",
        "/metrics",
        "/api/v1/events",
    ] {
        assert_eq!(http("GET", &u(p), None, None).status, 401, "{p}");
        assert_eq!(
            http("GET", &u(p), Some("eft_nope"), None).status,
            401,
            "{p}"
        );
    }
    // the dashboard and the health check need none
    assert_eq!(http("GET", &u("/healthz"), None, None).status, 200);
    let page = http("GET", &u("/"), None, None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("app.js"), "{}", page.body);

    // an operator makes a viewer token; the viewer reads but changes nothing
    let a = http(
        "POST",
        &u("/api/v1/tokens"),
        Some(&admin),
        Some(r#"{"name":"wall-screen","role":"viewer"}"#),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let viewer = a.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        http("GET", &u("/api/v1/devices"), Some(&viewer), None).status,
        200
    );
    let put = |tok: &str, body: &str| {
        http(
            "PUT",
            &u("/api/v1/devices/sim-1/groups"),
            Some(tok),
            Some(body),
        )
    };
    let denied = put(&viewer, r#"{"groups":["lobby"]}"#);
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.json()["error"].as_str().unwrap().contains("viewer"));
    assert_eq!(
        http(
            "POST",
            &u("/api/v1/tokens"),
            Some(&viewer),
            Some(r#"{"name":"x","role":"operator"}"#)
        )
        .status,
        403
    );
    let ok = put(&admin, r#"{"groups":["lobby"],"tags":["floor-2"]}"#);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["groups"], serde_json::json!(["lobby"]));

    // a group of one device shows no aggregates (k = 3), a device's own page does
    let g = http(
        "GET",
        &u(&format!(
            "/api/v1/series?group=lobby&from_ms={}&step=hour",
            day_ago()
        )),
        Some(&viewer),
        None,
    );
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.json()["suppressed"], true, "{}", g.body);
    assert_eq!(g.json()["points"], serde_json::json!([]));
    for id in ["sim-0", "sim-2"] {
        let a = http(
            "PUT",
            &u(&format!("/api/v1/devices/{id}/groups")),
            Some(&admin),
            Some(r#"{"groups":["lobby"]}"#),
        );
        assert_eq!(a.status, 200);
    }
    let g = http(
        "GET",
        &u(&format!(
            "/api/v1/series?group=lobby&from_ms={}&step=hour",
            day_ago()
        )),
        Some(&viewer),
        None,
    );
    assert_eq!(g.json()["suppressed"], false, "{}", g.body);
    let n: i64 = g.json()["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["summaries"].as_i64().unwrap())
        .sum();
    assert_eq!(n, 9, "three devices × three summaries: {}", g.body);

    // hostile requests: clear 4xx, the server unaffected
    // over the cap: a 413 the client reads, not a reset while it is still sending (the server
    // drains a declared body up to 4 MiB); the connection is reused afterwards
    for size in [100_000, 1_000_000, 3_000_000] {
        let huge = format!(r#"{{"groups":["{}"]}}"#, "a".repeat(size));
        for _ in 0..3 {
            let a = put(&admin, &huge);
            assert_eq!(a.status, 413, "{}", a.body);
            assert!(
                a.json()["error"]
                    .as_str()
                    .unwrap()
                    .contains("limit of 16384 bytes")
            );
        }
    }
    assert_eq!(put(&admin, "{not json").status, 400);
    assert_eq!(
        put(&admin, r#"{"groups":["no spaces allowed"]}"#).status,
        422
    );
    assert_eq!(
        http(
            "PUT",
            &u("/api/v1/devices/nobody/groups"),
            Some(&admin),
            Some("{}")
        )
        .status,
        404
    );
    let bad = http("GET", &u("/api/v1/series?step=week"), Some(&admin), None);
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("minute or hour")
    );
    assert_eq!(
        http("GET", &u("/api/v1/series?from_ms=abc"), Some(&admin), None).status,
        400
    );
    assert_eq!(
        http(
            "GET",
            &u("/api/v1/devices/sim-1/summaries?limit=0"),
            Some(&admin),
            None
        )
        .status,
        400
    );
    assert_eq!(
        http("GET", &u("/api/v1/nothing"), Some(&admin), None).status,
        404
    );
    assert_eq!(
        http("GET", &u("/static/../Cargo.toml"), None, None).status,
        404
    );

    // dashboard login: wrong password refused; right one gives a session cookie
    let pw = std::fs::read_to_string(data.path().join("admin.password")).unwrap();
    let pw = pw.trim();
    let no = http(
        "POST",
        &u("/api/v1/login"),
        None,
        Some(r#"{"user":"admin","password":"wrong-password"}"#),
    );
    assert_eq!(no.status, 401);
    let yes = http(
        "POST",
        &u("/api/v1/login"),
        None,
        Some(&format!(r#"{{"user":"admin","password":"{pw}"}}"#)),
    );
    assert_eq!(yes.status, 200, "{}", yes.body);
    let cookie = yes.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("ef_session=")
        .unwrap()
        .to_string();
    let me = http(
        "GET",
        &u("/api/v1/me"),
        Some(&format!("cookie:{session}")),
        None,
    );
    assert_eq!(
        me.json(),
        serde_json::json!({"user": "admin", "role": "operator"})
    );
    // an operator adds a viewer user, who logs in and can only read
    let a = http(
        "POST",
        &u("/api/v1/users"),
        Some(&format!("cookie:{session}")),
        Some(r#"{"user":"ana","password":"a long enough one","role":"viewer"}"#),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let ana = http(
        "POST",
        &u("/api/v1/login"),
        None,
        Some(r#"{"user":"ana","password":"a long enough one"}"#),
    );
    let ana = ana.header("set-cookie").unwrap().split(';').next().unwrap()[11..].to_string();
    let ana = format!("cookie:{ana}");
    assert_eq!(
        http("GET", &u("/api/v1/devices"), Some(&ana), None).status,
        200
    );
    assert_eq!(put(&ana, r#"{"groups":[]}"#).status, 403);
    // logout ends the session
    assert_eq!(
        http("POST", &u("/api/v1/logout"), Some(&ana), None).status,
        204
    );
    assert_eq!(
        http("GET", &u("/api/v1/devices"), Some(&ana), None).status,
        401
    );
    // a deleted token stops working
    assert_eq!(
        http(
            "DELETE",
            &u("/api/v1/tokens/wall-screen"),
            Some(&admin),
            None
        )
        .status,
        204
    );
    assert_eq!(
        http("GET", &u("/api/v1/devices"), Some(&viewer), None).status,
        401
    );

    // the audit log has every operator action and login, newest first
    let audit = http("GET", &u("/api/v1/audit"), Some(&admin), None).json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    for want in [
        "token_deleted",
        "logout",
        "login",
        "user_set",
        "login_failed",
        "set_groups",
        "token_created",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    assert_eq!(actions[0], "token_deleted");
}

/// Wrong passwords lock a name (429 with `Retry-After`, even for the right password), not
/// another user; enough failures from one address lock it; each lockout is audited once.
/// The lockout's end is the throttle's unit tests' (no waiting through 15 minutes here).
#[test]
fn failed_logins_lock_the_name_then_the_address() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(broker.port, data.path(), None, "a");
    let admin = serve.admin_token();
    let u = |p: &str| format!("{}{p}", serve.http);
    let login = |user: &str, pw: &str| {
        let body = serde_json::json!({"user": user, "password": pw}).to_string();
        http("POST", &u("/api/v1/login"), None, Some(&body))
    };
    let pw = std::fs::read_to_string(data.path().join("admin.password")).unwrap();
    let pw = pw.trim();
    let a = http(
        "POST",
        &u("/api/v1/users"),
        Some(&admin),
        Some(r#"{"user":"ana","password":"a long enough one","role":"viewer"}"#),
    );
    assert_eq!(a.status, 201, "{}", a.body);

    // five wrong passwords are checked and refused; the next attempt is not checked
    for i in 0..5 {
        let a = login("admin", &format!("guess-{i}"));
        assert_eq!(a.status, 401, "attempt {i}: {}", a.body);
    }
    let locked = |a: &Answer, why: &str| {
        assert_eq!(a.status, 429, "{}", a.body);
        let secs: u64 = a.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&secs), "Retry-After: {secs}");
        let e = a.json()["error"].as_str().unwrap().to_string();
        assert!(
            e.contains(why) && e.contains(&format!("try again in {secs} s")),
            "{e}"
        );
    };
    for _ in 0..3 {
        locked(
            &login("admin", "guess-5"),
            "too many failed logins for user \"admin\"",
        );
    }
    // even the right password, while locked
    locked(
        &login("admin", pw),
        "too many failed logins for user \"admin\"",
    );
    // another user logs in from the same address; the API token still works
    assert_eq!(login("ana", "a long enough one").status, 200);
    assert_eq!(
        http("GET", &u("/api/v1/me"), Some(&admin), None).json()["user"],
        "admin"
    );

    // 20 failures from one address lock it for every name (15 more, one per name)
    for i in 0..15 {
        let a = login(&format!("nobody-{i}"), "wrong");
        assert_eq!(a.status, 401, "attempt {i}: {}", a.body);
    }
    locked(
        &login("ana", "a long enough one"),
        "too many failed logins from 127.0.0.1",
    );

    // the audit log: each failure that was checked, each lockout once, no refused attempt
    let audit = http("GET", &u("/api/v1/audit?limit=1000"), Some(&admin), None).json();
    let rows = audit.as_array().unwrap();
    let of = |actor: &str, action: &str| {
        rows.iter()
            .filter(|r| r["actor"] == actor && r["action"] == action)
            .collect::<Vec<_>>()
    };
    assert_eq!(of("admin", "login_failed").len(), 5, "{audit}");
    assert_eq!(of("admin", "login_failed")[0]["detail"], "from 127.0.0.1");
    let by_name = of("admin", "login_locked");
    assert_eq!(by_name.len(), 1, "{audit}");
    let d = by_name[0]["detail"].as_str().unwrap();
    assert!(
        d.starts_with("user admin: 5 failed logins within 15 min, refused for 15 min"),
        "{d}"
    );
    let by_address = of("nobody-14", "login_locked");
    assert_eq!(by_address.len(), 1, "{audit}");
    let d = by_address[0]["detail"].as_str().unwrap();
    assert!(d.starts_with("address 127.0.0.1: 20 failed logins"), "{d}");
    let locks = rows
        .iter()
        .filter(|r| r["action"] == "login_locked")
        .count();
    assert_eq!(locks, 2, "{audit}");
    assert_eq!(of("ana", "login").len(), 1, "{audit}");
    assert_eq!(of("admin", "login").len(), 0, "{audit}");
}
