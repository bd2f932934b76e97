//! Maintenance windows in the machine: orders wait for each device's local hours.

use super::*;
use crate::rollout::plan::Maintenance;

const S: i64 = 1000;
const H: i64 = 3600 * S;
/// 2026-01-15T00:00:00Z (winter: Berlin is UTC+1, Tokyo UTC+9).
const DAY: i64 = 1_768_435_200_000;

fn plan(hours: &str, tz: Option<&str>) -> Plan {
    Plan {
        stages: vec![100],
        soak_ms: 0,
        healthy_windows: 1,
        timeout_ms: 120 * S,
        orders_per_s: 1000,
        on_failure: OnFailure::Abort,
        maintenance: Some(Maintenance {
            hours: hours.into(),
            tz: tz.map(str::to_string),
            tz_tag: Some("tz".into()),
        }),
        ..Plan::default()
    }
}

/// A rollout over devices with these tags, their zones set as the driver sets them.
fn rollout(p: Plan, devices: &[(&str, &[&str])], now: i64) -> Rollout {
    let list: Vec<(String, String, bool)> = devices
        .iter()
        .map(|(d, _)| (d.to_string(), String::new(), true))
        .collect();
    let mut r = Rollout::new("r", p, &list, now);
    for (d, tags) in devices {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let tz = r.plan.device_zone(&tags);
        r.zone(d, tz, now);
    }
    r
}

fn ordered(a: &[Action]) -> Vec<String> {
    a.iter()
        .map(|a| match a {
            Action::Order(d) => d.clone(),
            Action::Rollback(d) => panic!("rollback of {d}"),
        })
        .collect()
}

fn kinds(r: &mut Rollout) -> Vec<String> {
    r.take_decisions().into_iter().map(|d| d.kind).collect()
}

/// The ordered devices take the model and deliver a healthy window.
fn succeed(r: &mut Rollout, devices: &[String], now: i64) {
    for d in devices {
        r.report(d, Report::Active, None, now, now);
        let w = Window {
            end_ms: now,
            boot_id: 1,
            frames: 100,
            faces: 1,
            camera_ok: true,
            stalls: 0,
        };
        r.window(d, &w, now);
        assert_eq!(r.members[d].progress, Progress::Healthy, "{d}");
    }
}

/// What the driver does between ticks: the rollout goes through the store.
fn reload(r: &Rollout) -> Rollout {
    serde_json::from_value(serde_json::to_value(r).unwrap()).unwrap()
}

#[test]
fn devices_are_ordered_in_their_own_local_hours() {
    let devices: &[(&str, &[&str])] = &[
        ("berlin", &["site=x", "tz:Europe/Berlin"]),
        ("mars", &["tz=Mars/Base"]),
        ("plain", &[]),
        ("tokyo", &["tz=Asia/Tokyo"]),
    ];
    // the plan's zone for untagged devices (and the one with an unknown zone): New York
    let p = plan("02:00-04:00", Some("America/New_York"));
    // 2026-01-14T16:00Z: 01:00 in Tokyo, 17:00 in Berlin, 11:00 in New York
    let t0 = DAY - 8 * H;
    let mut r = rollout(p, devices, t0);
    assert_eq!(r.members["tokyo"].tz.as_deref(), Some("Asia/Tokyo"));
    assert_eq!(r.members["berlin"].tz.as_deref(), Some("Europe/Berlin"));
    assert_eq!(r.members["plain"].tz, None);
    assert_eq!(
        kinds(&mut r),
        ["created", "stage_started", "device_zone_unknown"],
        "the unknown zone is noted once"
    );
    assert!(r.tick(t0).is_empty(), "every window is closed");
    assert_eq!(kinds(&mut r), ["waiting_for_window"]);
    // a waiting device neither times out nor fails, and the note is not repeated
    for k in 1..=30 {
        let mut back = reload(&r);
        assert!(back.tick(t0 + k * 60 * S).is_empty(), "minute {k}");
        assert!(kinds(&mut back).is_empty(), "no decision per tick");
        r = back;
    }
    assert_eq!(r.count(0).pending, 4);
    assert_eq!(r.count(0).failed, 0);
    // 17:30Z: 02:30 in Tokyo; 18:30 in Berlin
    let t = DAY - 6 * H - 30 * 60 * S;
    let tokyo = ordered(&r.tick(t));
    assert_eq!(tokyo, ["tokyo"]);
    succeed(&mut r, &tokyo, t + S);
    // 19:00Z: 04:00 in Tokyo, the window closed again: nothing new
    assert!(r.tick(DAY - 5 * H).is_empty());
    // 01:00Z: 02:00 in Berlin (the start is inside)
    let berlin = ordered(&r.tick(DAY + H));
    assert_eq!(berlin, ["berlin"]);
    succeed(&mut r, &berlin, DAY + H + S);
    assert_eq!(r.phase, Phase::Running, "the stage waits for the others");
    // 03:00Z: 04:00 in Berlin; 22:00 in New York
    assert!(r.tick(DAY + 3 * H).is_empty());
    // 07:59Z: 02:59 in New York, for the untagged device and the one with an unknown zone
    let t = DAY + 7 * H + 59 * 60 * S;
    let rest = ordered(&r.tick(t));
    assert_eq!(rest, ["mars", "plain"]);
    succeed(&mut r, &rest, t + S);
    r.tick(t + 2 * S);
    assert_eq!(r.phase, Phase::Done);
    let k = kinds(&mut r);
    assert_eq!(k.last().map(String::as_str), Some("done"), "{k:?}");
    assert!(!k.contains(&"waiting_for_window".to_string()), "{k:?}");
    // a device retagged into another zone moves with its tag
    r.zone("plain", Some("Asia/Tokyo".into()), DAY + 8 * H);
    assert_eq!(r.members["plain"].tz.as_deref(), Some("Asia/Tokyo"));
    assert!(kinds(&mut r).is_empty(), "a known zone is not noted");
}

#[test]
fn a_window_may_wrap_midnight() {
    let at = |now: i64| {
        let mut r = rollout(plan("22:00-04:00", None), &[("d", &[])], now);
        ordered(&r.tick(now)).len()
    };
    // UTC: no zone, no tag
    assert_eq!(at(DAY - 2 * H - 60 * S), 0, "21:59");
    assert_eq!(at(DAY - 2 * H), 1, "22:00");
    assert_eq!(at(DAY + 30 * 60 * S), 1, "00:30");
    assert_eq!(at(DAY + 4 * H - 60 * S), 1, "03:59");
    assert_eq!(at(DAY + 4 * H), 0, "04:00");
    assert_eq!(at(DAY + 12 * H), 0, "12:00");
    // the same wall-clock hours in Berlin are an hour earlier in UTC
    let mut r = rollout(
        plan("22:00-04:00", Some("Europe/Berlin")),
        &[("d", &[])],
        DAY,
    );
    assert!(r.tick(DAY + 3 * H).is_empty(), "04:00 in Berlin");
    assert_eq!(ordered(&r.tick(DAY + 21 * H)), ["d"], "22:00 in Berlin");
}

#[test]
fn rollbacks_after_an_abort_are_not_held_back() {
    let devices: &[(&str, &[&str])] = &[("a", &[]), ("b", &[]), ("c", &[])];
    let t = DAY + 2 * H + 30 * 60 * S; // 02:30 UTC
    let mut r = rollout(plan("02:00-04:00", Some("UTC")), devices, t);
    let first = ordered(&r.tick(t));
    assert_eq!(first, ["a", "b", "c"]);
    for d in &first {
        r.report(d, Report::Active, None, t + S, t + S);
    }
    // 12:00: outside the window
    let noon = DAY + 12 * H;
    r.abort(noon, "operator").unwrap();
    let back: Vec<String> = r
        .tick(noon)
        .into_iter()
        .map(|a| match a {
            Action::Rollback(d) => d,
            Action::Order(d) => panic!("order to {d} after the abort"),
        })
        .collect();
    assert_eq!(back, ["a", "b", "c"], "rollbacks go out at once");
}

#[test]
fn bad_windows_are_refused_naming_the_key() {
    let bad = |m: Maintenance| {
        Plan {
            maintenance: Some(m),
            ..Plan::default()
        }
        .check()
        .unwrap_err()
        .0
    };
    let m = |hours: &str, tz: Option<&str>, tag: Option<&str>| Maintenance {
        hours: hours.into(),
        tz: tz.map(str::to_string),
        tz_tag: tag.map(str::to_string),
    };
    for hours in ["25:00-01:00", "1-5", "02:00-02:00", ""] {
        let e = bad(m(hours, None, None));
        assert!(e.contains("`maintenance.hours`"), "{hours:?}: {e}");
    }
    let e = bad(m("01:00-05:00", Some("Europe/Berlim"), None));
    assert!(
        e.contains("`maintenance.tz`") && e.contains("Europe/Berlim"),
        "{e}"
    );
    let e = bad(m("01:00-05:00", None, Some(" ")));
    assert!(e.contains("`maintenance.tz_tag`"), "{e}");
    let ok = m("01:00-05:00", Some("Asia/Tokyo"), Some("tz"));
    let p = Plan {
        maintenance: Some(ok.clone()),
        ..Plan::default()
    };
    assert_eq!(p.check(), Ok(()));
    // JSON: the key as documented, unknown keys inside refused, plans without it unchanged
    let p: Plan = serde_json::from_str(
        r#"{"maintenance":{"hours":"01:00-05:00","tz":"Asia/Tokyo","tz_tag":"tz"}}"#,
    )
    .unwrap();
    assert_eq!(p.maintenance, Some(ok));
    let e = serde_json::from_str::<Plan>(r#"{"maintenance":{"hours":"01:00-05:00","zone":"UTC"}}"#)
        .unwrap_err();
    assert!(e.to_string().contains("zone"), "{e}");
    let v = serde_json::to_value(Plan::default()).unwrap();
    assert!(v.get("maintenance").is_none());
}
