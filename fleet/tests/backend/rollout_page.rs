//! The rollout pages in a real headless Chromium: a rollout's stages and failures, an
//! operator's controls (create through the form, with its slot; pause; abort) checked through
//! the API, a viewer without them; screenshots saved by the test.

use crate::rollout_support::*;
use crate::support::*;

#[test]
fn the_rollout_page_shows_stages_and_failures_and_lets_an_operator_create_pause_and_abort() {
    use crate::dashboard::{Driver, login};
    let Fleet {
        devices: _devices,
        serve,
        token,
        archive,
        sig,
        pkg: _pkg,
        data,
        broker: _broker,
    } = Fleet::start(4, "silent:4");
    let plan = serde_json::json!({"stages": [25, 100], "timeout_ms": 2000, "min_failures": 1});
    let a = call(
        &serve.http,
        "POST",
        "/api/v1/rollouts",
        &token,
        Some(&create_body(&archive, &sig, plan)),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.json()["id"].as_str().unwrap().to_string();
    wait_until(60, "paused", || {
        (status(&serve.http, &token, &id)["phase"] == "paused").then_some(())
    });

    let pw = std::fs::read_to_string(data.path().join("admin.password")).unwrap();
    let d = Driver::start();
    d.go(&format!("{}/#/rollouts", serve.http));
    login(&d, "admin", pw.trim());
    d.ready("rollouts");
    let seen = d.js(
        "return {rows: document.querySelectorAll('#rollouts tbody tr a').length,
                             form: !!document.getElementById('rollout-create')};",
    );
    assert_eq!(seen["rows"], 1, "{seen}");
    assert_eq!(seen["form"], true, "an operator may start one: {seen}");
    let slots = d.js(
        "return Array.from(document.querySelectorAll('#rollout-create select[name=slot] option'))
                .map(function (o) { return o.value; });",
    );
    assert_eq!(slots, serde_json::json!(["expression", "detector"]));
    d.go(&format!("{}/#/rollout/{id}", serve.http));
    d.ready("rollout");
    let seen = d.js("return {phase: document.getElementById('rollout-phase').textContent,
                             failures: Array.from(document.querySelectorAll('#failures tbody tr td:last-child')).map(function (t) { return t.textContent; }),
                             failed: document.querySelector('.stages tbody tr td.failed').textContent,
                             resume: !!document.getElementById('rollout-resume')};");
    assert_eq!(seen["phase"], "paused", "{seen}");
    assert_eq!(
        seen["failures"],
        serde_json::json!(["timeout:ordered"]),
        "{seen}"
    );
    assert_eq!(seen["failed"], "1", "{seen}");
    assert_eq!(seen["resume"], true, "{seen}");
    let shot = d.screenshot("dashboard-rollout.png");
    eprintln!("screenshot: {}", shot.display());
    d.js("document.getElementById('rollout-abort').click(); return null;");
    wait_until(30, "aborted on the page", || {
        let p = d.js(
            "var e = document.getElementById('rollout-phase'); return e ? e.textContent : null;",
        );
        (p == "aborted").then_some(())
    });
    assert_eq!(status(&serve.http, &token, &id)["phase"], "aborted");

    // the form, filled and submitted on the page: a detector rollout (the package is a face
    // detector, which the backend refuses for the expression slot)
    let detector = signed_detector(data.path());
    d.go(&format!("{}/#/rollouts", serve.http));
    d.ready("rollouts");
    d.js("var f = document.getElementById('rollout-create');
          f.elements.group.value = 'g'; f.elements.slot.value = 'detector';
          f.elements.stages.value = '25,100'; f.elements.soak.value = '60';
          f.elements.on_failure.value = 'abort'; return null;");
    d.upload("#rollout-create input[name=package]", &detector);
    d.upload(
        "#rollout-create input[name=signature]",
        &detector.with_extension("empkg.sig"),
    );
    let shot = d.screenshot("dashboard-rollout-form.png");
    eprintln!("screenshot: {}", shot.display());
    d.js("document.querySelector('#rollout-create button[type=submit]').click(); return null;");
    let created = wait_until(30, "the new rollout's page", || {
        let p = d.js(
            "var m = document.querySelector('#rollout-create [role=status]');
             return {hash: location.hash, ready: document.body.dataset.ready || null,
                     msg: m ? m.textContent : null, error: !!(m && m.classList.contains('error'))};",
        );
        assert_ne!(p["error"], true, "the form says: {p}");
        let id = p["hash"].as_str()?.strip_prefix("#/rollout/")?.to_string();
        (p["ready"] == "rollout").then_some(id)
    });
    assert_ne!(created, id);
    let s = status(&serve.http, &token, &created);
    assert_eq!(
        (&s["slot"], &s["model"], &s["phase"], &s["created_by"]),
        (
            &serde_json::json!("detector"),
            &serde_json::json!("blazeface_short_range@0.10.21+f32.1"),
            &serde_json::json!("running"),
            &serde_json::json!("admin")
        ),
        "{s}"
    );
    assert_eq!(s["plan"]["stages"], serde_json::json!([25, 100]), "{s}");
    assert_eq!(s["plan"]["soak_ms"], 60000, "{s}");
    assert_eq!(s["plan"]["on_failure"], "abort", "{s}");
    // Pause, clicked on the page
    wait_until(30, "the Pause button", || {
        let p = d.js("return !!document.getElementById('rollout-pause');");
        (p == true).then_some(())
    });
    d.js("document.getElementById('rollout-pause').click(); return null;");
    wait_until(30, "paused on the page", || {
        let p = d.js(
            "var e = document.getElementById('rollout-phase'); return e ? e.textContent : null;",
        );
        (p == "paused").then_some(())
    });
    let s = status(&serve.http, &token, &created);
    assert_eq!(s["phase"], "paused", "{s}");
    assert_eq!(s["reason"], "pause by admin", "{s}");
    let resume = d.js("return !!document.getElementById('rollout-resume');");
    assert_eq!(resume, true, "a paused rollout offers Resume");
    let shot = d.screenshot("dashboard-rollout-paused.png");
    eprintln!("screenshot: {}", shot.display());
    // a viewer reads the page, without the operator's controls
    let a = call(
        &serve.http,
        "POST",
        "/api/v1/users",
        &token,
        Some(r#"{"user":"ana","password":"viewer password","role":"viewer"}"#),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    d.js("document.getElementById('logout').click(); return null;");
    login(&d, "ana", "viewer password");
    d.ready("rollout");
    d.go(&format!("{}/#/rollouts", serve.http));
    d.ready("rollouts");
    let seen = d.js(
        "return {rows: document.querySelectorAll('#rollouts tbody tr a').length,
                             form: !!document.getElementById('rollout-create')};",
    );
    assert_eq!(seen["rows"], 2, "{seen}");
    assert_eq!(seen["form"], false, "{seen}");
}
