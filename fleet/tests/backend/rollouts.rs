//! Staged rollouts end to end: `serve` (tick 1 s) drives a real signed package to simulated
//! devices over a real mosquitto (`simulate --answer-orders`, which prints every order it
//! receives): stages advance, a restart of the backend mid-rollout sends no second order, a
//! late joiner gets the model, failures pause, an abort rolls the failed stage back, a
//! viewer cannot start one, the canary's field feedback worse than its control group's
//! pauses the stage.

use crate::rollout_support::*;
use crate::support::*;
use std::process::Command;

#[test]
fn stages_advance_through_a_restart_without_duplicate_orders_and_late_joiners_follow() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let (archive, sig) = signed_package(data.path());
    // orders signed with the operator's key, which the devices trust (and require)
    let key = data.path().join("keys/fleet.key").display().to_string();
    let public = data.path().join("keys/fleet.pub");
    let signed: Vec<&str> = FAST.iter().copied().chain(["--order-key", &key]).collect();
    let serve = Serve::start_with(broker.port, data.path(), None, "a", &signed);
    let token = serve.admin_token();
    // six devices, the first offline all along
    let devices = Devices::start_trusting(broker.port, 0, 6, "offline:1", Some(&public));
    group(&serve.http, &token, &ids(0, 6), "g");

    let plan = serde_json::json!({
        "stages": [1, 50, 100], "soak_ms": 1500, "healthy_windows": 2, "timeout_ms": 30000,
        "success_pct": 100, "failure_pct": 50, "min_failures": 1, "orders_per_s": 50,
    });
    let body = create_body(&archive, &sig, plan.clone());
    // a viewer cannot start one
    let a = call(
        &serve.http,
        "POST",
        "/api/v1/tokens",
        &token,
        Some(r#"{"name":"wall","role":"viewer"}"#),
    );
    let viewer = a.json()["token"].as_str().unwrap().to_string();
    let a = call(
        &serve.http,
        "POST",
        "/api/v1/rollouts",
        &viewer,
        Some(&body),
    );
    assert_eq!(a.status, 403, "{}", a.body);
    // a bad plan is refused, naming what is wrong
    let bad = create_body(&archive, &sig, serde_json::json!({"stages": [50, 10]}));
    let a = call(&serve.http, "POST", "/api/v1/rollouts", &token, Some(&bad));
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("stages"), "{}", a.body);

    let a = call(&serve.http, "POST", "/api/v1/rollouts", &token, Some(&body));
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.json()["id"].as_str().unwrap().to_string();
    assert_eq!(a.json()["model"], "fer_mini_xception@25.10.3+f32.2");
    // a second rollout of the same slot and group waits for the first
    let a = call(&serve.http, "POST", "/api/v1/rollouts", &token, Some(&body));
    assert_eq!(a.status, 409, "{}", a.body);
    // viewers read
    let a = call(&serve.http, "GET", "/api/v1/rollouts", &viewer, None);
    assert_eq!(a.status, 200, "{}", a.body);

    // stage 2 running: the backend is killed, and started again on the same store
    wait_until(60, "stage 2", || {
        (status(&serve.http, &token, &id)["stage"] == 2).then_some(())
    });
    serve.kill();
    let serve = Serve::start_with(broker.port, data.path(), None, "a", &signed);
    let done = wait_until(90, "the rollout done", || {
        let s = status(&serve.http, &token, &id);
        (s["phase"] == "done").then_some(s)
    });
    let stages = done["stages"].as_array().unwrap();
    let sum = |k: &str| stages.iter().map(|s| s[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!(
        (sum("succeeded"), sum("offline"), sum("failed")),
        (5, 1, 0),
        "{done}"
    );
    assert_eq!(stages[0]["devices"], 1, "{done}");
    let installs = devices.count("install");
    assert_eq!(installs.len(), 5, "{installs:?}");
    assert!(
        installs.values().all(|n| *n == 1),
        "one order each: {installs:?}"
    );
    assert!(
        !installs.contains_key("ro-0"),
        "the offline device got none"
    );
    let kinds: Vec<&str> = done["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    for k in ["created", "stage_started", "advanced", "done"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }

    // a device that joins the group now gets the model
    let late = Devices::start_trusting(broker.port, 10, 1, "", Some(&public));
    group(&serve.http, &token, &ids(10, 1), "g");
    wait_until(60, "the late joiner healthy", || {
        let s = status(&serve.http, &token, &id);
        let ok: i64 = s["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["succeeded"].as_i64().unwrap())
            .sum();
        (ok == 6).then_some(())
    });
    assert_eq!(late.count("install").get("ro-10"), Some(&1));
    assert_eq!(devices.refused(), [], "every order verified");
    assert_eq!(late.refused(), [], "the late joiner's order verified");
    let audit = call(&serve.http, "GET", "/api/v1/audit", &token, None).json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "rollout_done"),
        "{audit}"
    );
    let m = call(&serve.http, "GET", "/metrics", &token, None).body;
    assert!(
        m.contains("emotion_fleet_rollouts{phase=\"done\"} 1"),
        "{m}"
    );
}

#[test]
fn failures_pause_and_an_abort_rolls_the_failed_stage_back() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let (archive, sig) = signed_package(data.path());
    let key = data.path().join("keys/fleet.key").display().to_string();
    let signed: Vec<&str> = FAST.iter().copied().chain(["--order-key", &key]).collect();
    let serve = Serve::start_with(broker.port, data.path(), None, "a", &signed);
    let token = serve.admin_token();
    // every device goes active, then delivers windows without frames
    let public = data.path().join("keys/fleet.pub");
    let devices = Devices::start_trusting(broker.port, 0, 4, "unhealthy:4", Some(&public));
    group(&serve.http, &token, &ids(0, 4), "g");
    let plan = serde_json::json!({
        "stages": [25, 100], "soak_ms": 1000, "healthy_windows": 2, "timeout_ms": 30000,
        "success_pct": 100, "failure_pct": 50, "min_failures": 1, "on_failure": "pause",
    });
    let a = call(
        &serve.http,
        "POST",
        "/api/v1/rollouts",
        &token,
        Some(&create_body(&archive, &sig, plan)),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.json()["id"].as_str().unwrap().to_string();
    let paused = wait_until(60, "paused", || {
        let s = status(&serve.http, &token, &id);
        (s["phase"] == "paused").then_some(s)
    });
    assert!(
        paused["reason"].as_str().unwrap().contains("1 of 1"),
        "{paused}"
    );
    let f = &paused["failures"][0];
    assert_eq!(f["reason"], "unhealthy:no frames", "{paused}");
    let canary = f["device_id"].as_str().unwrap().to_string();
    // pausing twice is a conflict; an operator aborts
    let a = call(
        &serve.http,
        "POST",
        &format!("/api/v1/rollouts/{id}/pause"),
        &token,
        None,
    );
    assert_eq!(a.status, 409, "{}", a.body);
    let a = call(
        &serve.http,
        "POST",
        &format!("/api/v1/rollouts/{id}/abort"),
        &token,
        Some(r#"{"reason":"no frames on the canary"}"#),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let s = wait_until(60, "the canary rolled back", || {
        let s = status(&serve.http, &token, &id);
        (s["stages"][0]["rolled_back"] == 1).then_some(s)
    });
    assert_eq!(s["phase"], "aborted");
    assert_eq!(
        s["stages"][1]["pending"], 3,
        "later stages never ordered: {s}"
    );
    assert_eq!(devices.count("rollback").get(&canary), Some(&1));
    assert_eq!(
        devices.refused(),
        [],
        "the install and the rollback verified"
    );
    let installs = devices.count("install");
    assert_eq!(
        installs.keys().collect::<Vec<_>>(),
        [&canary],
        "{installs:?}"
    );
}

#[test]
fn rejections_abort_by_themselves_with_nothing_to_roll_back() {
    let Fleet {
        devices,
        serve,
        token,
        archive: _archive,
        sig: _sig,
        pkg,
        data: _data,
        broker: _broker,
    } = Fleet::start(3, "reject:3");
    // through the CLI: bad input is named, exit 2
    let (code, _, err) = cli(&serve, &["create", &pkg, "--group", "g", "--soak", "5d"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unit"), "{err}");
    let (code, out, err) = cli(
        &serve,
        &[
            "create",
            &pkg,
            "--group",
            "g",
            "--stages",
            "33,100",
            "--min-failures",
            "1",
            "--failure-pct",
            "50",
            "--on-failure",
            "abort",
            "--timeout",
            "30s",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let id = out[0]["id"].as_str().unwrap().to_string();
    let s = wait_until(60, "aborted", || {
        let s = status(&serve.http, &token, &id);
        (s["phase"] == "aborted").then_some(s)
    });
    assert_eq!(s["failures"][0]["reason"], "rejected:test_vectors", "{s}");
    // a rejected package never ran: no rollback (it would be ordered in the tick of the abort)
    assert_eq!(s["failures"][0]["progress"], "failed", "{s}");
    assert_eq!(s["stages"][0]["rolled_back"], 0, "{s}");
    assert!(devices.count("rollback").is_empty());
    assert_eq!(devices.count("install").len(), 1);
    let (code, out, _) = cli(&serve, &["list"]);
    assert_eq!((code, out.len()), (0, 1));
    assert_eq!(out[0]["phase"], "aborted");
    let (code, out, _) = cli(&serve, &["status", &id]);
    assert_eq!((code, out[0]["reason"].is_string()), (0, true), "{out:?}");
    let (code, _, err) = cli(&serve, &["resume", &id]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("409") && err.contains("aborted"), "{err}");
}

#[test]
fn silent_devices_time_out_and_pause_the_rollout() {
    let Fleet {
        devices: _devices,
        serve,
        token,
        archive,
        sig,
        pkg: _pkg,
        data: _data,
        broker: _broker,
    } = Fleet::start(2, "silent:2");
    let plan = serde_json::json!({"stages": [50, 100], "timeout_ms": 2000, "min_failures": 1});
    let body = create_body(&archive, &sig, plan);
    let a = call(&serve.http, "POST", "/api/v1/rollouts", &token, Some(&body));
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.json()["id"].as_str().unwrap().to_string();
    let s = wait_until(60, "paused", || {
        let s = status(&serve.http, &token, &id);
        (s["phase"] == "paused").then_some(s)
    });
    assert_eq!(s["failures"][0]["reason"], "timeout:ordered", "{s}");
    assert_eq!(s["stages"][1]["pending"], 1, "{s}");
}

#[test]
fn canary_feedback_worse_than_the_control_groups_pauses_the_stage() {
    let Fleet {
        devices,
        serve,
        token,
        archive: _archive,
        sig: _sig,
        pkg,
        data: _data,
        broker,
    } = Fleet::start(6, "");
    // through the CLI, with the feedback criterion; a long soak keeps stage 1 open
    let (code, out, err) = cli(
        &serve,
        &[
            "create",
            &pkg,
            "--group",
            "g",
            "--stages",
            "50,100",
            "--soak",
            "10m",
            "--feedback-min-labelled",
            "12",
            "--feedback-max-drop",
            "0.2",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let id = out[0]["id"].as_str().unwrap().to_string();
    let s = status(&serve.http, &token, &id);
    let new = s["model"].as_str().unwrap().to_string();
    let canary_n = s["stages"][0]["devices"].as_u64().unwrap() as usize;
    assert_eq!(canary_n, 3, "{s}");
    // the canary: the devices ordered onto the new model; the control: the rest, still on
    // the old one
    let canary: Vec<String> = wait_until(30, "the canary ordered", || {
        let c = devices.count("install");
        (c.len() == canary_n).then(|| c.into_keys().collect())
    });
    let control: Vec<String> = ids(0, 6)
        .into_iter()
        .filter(|d| !canary.contains(d))
        .collect();
    // 12 labelled presses on each side (the minimum, so the criterion is judged only once
    // every press is in): 3 of 12 agree on the new model, 12 of 12 on the old one
    let mut presses = Vec::new();
    for d in &canary {
        for label in ["happy", "sad", "sad", "angry"] {
            presses.push((d.clone(), new.as_str(), label));
        }
    }
    for d in &control {
        for _ in 0..4 {
            presses.push((d.clone(), "old_model@1", "happy"));
        }
    }
    press_feedback(broker.port, &presses);
    let s = wait_until(30, "paused by feedback", || {
        let s = status(&serve.http, &token, &id);
        (s["phase"] == "paused").then_some(s)
    });
    let why = "stage 1: feedback agreement 0.25 on the new model (12 labelled) vs 1.00 on \
               the old model (12 labelled), more than 0.2 below";
    assert_eq!(s["reason"], why, "{s}");
    assert_eq!(s["stage"], 1, "{s}");
    assert_eq!(s["stages"][0]["failed"], 0, "no device failed: {s}");
    assert_eq!(s["stages"][1]["pending"], 3, "stage 2 never ordered: {s}");
    assert!(
        devices.count("rollback").is_empty(),
        "a pause rolls nothing back"
    );
    assert!(
        s["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["kind"] == "paused" && d["detail"] == why),
        "{s}"
    );
    let audit = call(&serve.http, "GET", "/api/v1/audit", &token, None).json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "rollout_paused" && a["detail"] == format!("{id}: {why}")),
        "{audit}"
    );
}

/// The replica whose /metrics shows the rollout (only the lease holder sets the gauges).
fn driving(replicas: &[&Serve], token: &str) -> Option<usize> {
    replicas.iter().position(|r| {
        let m = call(&r.http, "GET", "/metrics", token, None).body;
        m.contains("emotion_fleet_rollouts{phase=\"running\"} 1")
    })
}

#[test]
fn postgres_two_replicas_one_drives_and_a_killed_driver_hands_over_without_a_second_order() {
    let pg = Postgres::start();
    let broker = Broker::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (archive, sig) = signed_package(da.path());
    let a = Serve::start_with(broker.port, da.path(), Some(&pg.url), "a", FAST);
    let b = Serve::start_with(broker.port, db.path(), Some(&pg.url), "b", FAST);
    let token = a.admin_token();
    let devices = Devices::start(broker.port, 0, 8, "");
    group(&a.http, &token, &ids(0, 8), "g");
    let plan = serde_json::json!({
        "stages": [1, 50, 100], "soak_ms": 1500, "healthy_windows": 2, "timeout_ms": 30000,
        "success_pct": 100, "min_failures": 1,
        // the feedback criterion's query runs every tick (no presses: never a breach)
        "feedback_min_labelled": 1000,
    });
    let r = call(
        &b.http,
        "POST",
        "/api/v1/rollouts",
        &token,
        Some(&create_body(&archive, &sig, plan)),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let driver = wait_until(30, "a replica driving", || driving(&[&a, &b], &token));
    wait_until(60, "stage 2", || {
        (status(&a.http, &token, &id)["stage"] == 2).then_some(())
    });
    // exactly one replica drives; the other's gauges stay at zero
    assert_eq!(driving(&[&a, &b], &token), Some(driver));
    let (killed, other) = if driver == 0 { (a, b) } else { (b, a) };
    let killed_data = killed.data.clone();
    killed.kill();
    // the other replica takes the lease over and drives
    wait_until(30, "the other replica driving", || {
        driving(&[&other], &token)
    });
    // the broker keeps the killed replica's share of device messages in its session until
    // it comes back (as for ingest alone): it comes back, without the lease
    let name = if driver == 0 { "a" } else { "b" };
    let back = Serve::start_with(broker.port, &killed_data, Some(&pg.url), name, FAST);
    let done = wait_until(90, "done", || {
        let s = status(&other.http, &token, &id);
        (s["phase"] == "done").then_some(s)
    });
    // only the driver sets the gauges: the other replica kept the lease
    let done_gauge = |r: &Serve| {
        call(&r.http, "GET", "/metrics", &token, None)
            .body
            .contains("emotion_fleet_rollouts{phase=\"done\"} 1")
    };
    wait_until(10, "the driver's gauges", || {
        done_gauge(&other).then_some(())
    });
    assert!(!done_gauge(&back), "the restarted replica does not drive");
    let ok: i64 = done["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["succeeded"].as_i64().unwrap())
        .sum();
    assert_eq!(ok, 8, "{done}");
    let installs = devices.count("install");
    assert_eq!(installs.len(), 8, "{installs:?}");
    assert!(
        installs.values().all(|n| *n == 1),
        "one order each: {installs:?}"
    );
}

#[test]
fn devices_refuse_unsigned_orders_and_the_rollout_names_why() {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let (archive, sig) = signed_package(data.path());
    // an order key that is not a key: serve refuses to start, naming the flag
    std::fs::write(data.path().join("not.key"), "hello").unwrap();
    let o = Command::new(BIN)
        .args(["serve", "--order-key"])
        .arg(data.path().join("not.key"))
        .arg("--data")
        .arg(data.path().join("x"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--order-key"), "{err}");
    // no --order-key: unsigned orders, which devices requiring signatures refuse
    let serve = Serve::start_with(broker.port, data.path(), None, "a", FAST);
    let token = serve.admin_token();
    let public = data.path().join("keys/fleet.pub");
    let devices = Devices::start_trusting(broker.port, 0, 2, "", Some(&public));
    group(&serve.http, &token, &ids(0, 2), "g");
    let plan = serde_json::json!({"stages": [50, 100], "min_failures": 1, "on_failure": "pause"});
    let body = create_body(&archive, &sig, plan);
    let a = call(&serve.http, "POST", "/api/v1/rollouts", &token, Some(&body));
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.json()["id"].as_str().unwrap().to_string();
    let s = wait_until(60, "paused", || {
        let s = status(&serve.http, &token, &id);
        (s["phase"] == "paused").then_some(s)
    });
    assert_eq!(
        s["failures"][0]["reason"], "rejected:bad_order_signature",
        "{s}"
    );
    let refused = devices.refused();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].1, "bad_order_signature");
}
