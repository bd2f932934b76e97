use super::*;

const S: i64 = 1000;

fn plan() -> Plan {
    Plan {
        stages: vec![10, 50, 100],
        soak_ms: 60 * S,
        healthy_windows: 2,
        timeout_ms: 120 * S,
        success_pct: 90,
        failure_pct: 20,
        min_failures: 2,
        on_failure: OnFailure::Pause,
        orders_per_s: 1000,
        min_faces: 0,
        stratify: None,
        feedback_min_labelled: 0,
        feedback_max_drop: 0.1,
        maintenance: None,
    }
}

fn fleet(n: usize, online: bool) -> Vec<(String, String, bool)> {
    (0..n)
        .map(|i| (format!("d{i:03}"), String::new(), online))
        .collect()
}

fn good(end_ms: i64) -> Window {
    Window {
        end_ms,
        boot_id: 1,
        frames: 100,
        faces: 5,
        camera_ok: true,
        stalls: 0,
    }
}

fn ordered(a: &[Action]) -> Vec<String> {
    a.iter()
        .filter_map(|a| match a {
            Action::Order(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

/// Every ordered device goes active and delivers `plan.healthy_windows` good windows.
fn succeed(r: &mut Rollout, devices: &[String], now: i64) {
    for d in devices {
        r.report(d, Report::Active, None, now, now);
        for k in 0..r.plan.healthy_windows as i64 {
            r.window(d, &good(now + k + 1), now);
        }
    }
}

fn kinds(r: &mut Rollout) -> Vec<String> {
    r.take_decisions().into_iter().map(|d| d.kind).collect()
}

#[test]
fn healthy_stages_advance_after_their_soak_and_finish() {
    let mut r = Rollout::new("r", plan(), &fleet(20, true), 0);
    assert_eq!(kinds(&mut r), ["created", "stage_started"]);
    let first = ordered(&r.tick(0));
    assert_eq!(first.len(), 2, "10 % of 20");
    assert!(first.iter().all(|d| r.members[d].stage == 0));
    assert!(r.tick(S).is_empty(), "nothing more before the stage passes");
    // active is not success: it takes the healthy windows
    for d in &first {
        r.report(d, Report::Active, None, S, S);
    }
    r.tick(2 * S);
    assert_eq!(r.count(0).in_progress, 2);
    assert_eq!(r.soak_from, None);
    succeed(&mut r, &first, 3 * S);
    assert_eq!(r.count(0).succeeded, 2);
    assert!(r.tick(4 * S).is_empty());
    assert_eq!(
        r.soak_from,
        Some(4 * S),
        "the soak starts when the threshold holds"
    );
    assert!(r.tick(63 * S).is_empty() && r.stage == 0);
    let second = ordered(&r.tick(64 * S));
    assert_eq!(r.stage, 1);
    assert_eq!(second.len(), 8, "50 % of 20, less the first stage");
    assert!(kinds(&mut r).contains(&"advanced".to_string()));
    succeed(&mut r, &second, 65 * S);
    r.tick(66 * S);
    let third = ordered(&r.tick(126 * S));
    assert_eq!((r.stage, third.len()), (2, 10));
    succeed(&mut r, &third, 127 * S);
    r.tick(128 * S);
    r.tick(188 * S);
    assert_eq!(r.phase, Phase::Done);
    assert!(
        r.members
            .values()
            .all(|m| m.orders == 1 && m.progress == Progress::Healthy)
    );
}

#[test]
fn failures_past_the_threshold_pause_and_resume_accepts_them() {
    let mut r = Rollout::new("r", plan(), &fleet(100, true), 0);
    let first = ordered(&r.tick(0));
    assert_eq!(first.len(), 10);
    r.report(&first[0], Report::Rejected, Some("test_vectors"), S, S);
    r.tick(2 * S);
    assert_eq!(
        r.phase,
        Phase::Running,
        "one failure is under the minimum count"
    );
    r.report(&first[1], Report::RolledBack, Some("probation"), S, S);
    assert!(r.tick(3 * S).is_empty());
    assert_eq!(r.phase, Phase::Paused);
    assert_eq!(
        r.members[&first[0]].reason.as_deref(),
        Some("rejected:test_vectors")
    );
    assert_eq!(
        r.members[&first[1]].reason.as_deref(),
        Some("rolled_back:probation")
    );
    assert!(r.reason.as_deref().unwrap().contains("2 of 10"));
    // paused: a late joiner waits, nothing is ordered
    r.join("late", true, 4 * S);
    assert!(r.tick(5 * S).is_empty());
    assert!(r.pause(5 * S, "again").is_err());
    r.resume(6 * S, "operator").unwrap();
    assert_eq!(ordered(&r.tick(6 * S)), ["late"]);
    assert_eq!(
        r.phase,
        Phase::Running,
        "accepted failures do not breach again"
    );
    r.report(&first[2], Report::Rejected, Some("engine"), 7 * S, 7 * S);
    r.tick(8 * S);
    assert_eq!(r.phase, Phase::Running, "1 new of 11 is under 20 %");
    r.report(&first[3], Report::Rejected, Some("engine"), 7 * S, 7 * S);
    r.tick(9 * S);
    assert_eq!(r.phase, Phase::Running, "2 new of 11 is under 20 %");
    r.report(&first[4], Report::Rejected, Some("engine"), 7 * S, 7 * S);
    r.tick(10 * S);
    assert_eq!(r.phase, Phase::Paused, "3 new of 11");
}

#[test]
fn abort_rolls_back_the_failed_stage_only() {
    let p = Plan {
        on_failure: OnFailure::Abort,
        soak_ms: 0,
        ..plan()
    };
    let mut r = Rollout::new("r", p, &fleet(20, true), 0);
    let first = ordered(&r.tick(0));
    succeed(&mut r, &first, S);
    let second = ordered(&r.tick(2 * S));
    assert_eq!(
        (r.stage, second.len()),
        (1, 8),
        "no soak: advanced and ordered at once"
    );
    // stage 2: two active then unhealthy (no faces / a stall), one rejected, the rest active
    let p = Plan {
        min_faces: 1,
        ..r.plan.clone()
    };
    r.plan = p;
    for d in &second {
        r.report(d, Report::Active, None, 3 * S, 3 * S);
        r.window(d, &good(3 * S), 3 * S);
    }
    r.window(
        &second[0],
        &Window {
            faces: 0,
            ..good(4 * S)
        },
        4 * S,
    );
    r.window(
        &second[1],
        &Window {
            stalls: 3,
            ..good(4 * S)
        },
        4 * S,
    );
    assert_eq!(
        r.members[&second[0]].reason.as_deref(),
        Some("unhealthy:0 faces < 1")
    );
    assert_eq!(
        r.members[&second[1]].reason.as_deref(),
        Some("unhealthy:stall")
    );
    let acts = r.tick(5 * S);
    assert_eq!(r.phase, Phase::Aborted);
    let back: Vec<&String> = acts
        .iter()
        .map(|a| match a {
            Action::Rollback(d) => d,
            Action::Order(d) => panic!("order to {d} after the abort"),
        })
        .collect();
    assert_eq!(back.len(), 8, "every stage-2 device ran the new model");
    assert!(back.iter().all(|d| r.members[*d].stage == 1));
    assert!(
        first
            .iter()
            .all(|d| r.members[d].progress == Progress::Healthy)
    );
    r.report(
        &second[0],
        Report::RolledBack,
        Some("operator"),
        6 * S,
        6 * S,
    );
    assert_eq!(r.members[&second[0]].progress, Progress::RolledBack);
    assert!(r.tick(7 * S).is_empty(), "each rollback ordered once");
    assert_eq!(r.count(1).rolled_back, 8);
    assert!(r.abort(8 * S, "again").is_err());
    r.join("late", true, 8 * S);
    assert!(
        !r.members.contains_key("late"),
        "an aborted rollout takes no one"
    );
}

#[test]
fn silent_devices_time_out_and_offline_ones_do_not_stall() {
    let p = Plan {
        soak_ms: 0,
        success_pct: 100,
        min_failures: 5,
        ..plan()
    };
    let mut devs = fleet(30, true);
    // which devices are in the first stage is random: find them, then take one offline
    let probe = Rollout::new("r", p.clone(), &devs, 0);
    let canaries: Vec<String> = probe
        .members
        .iter()
        .filter(|(_, m)| m.stage == 0)
        .map(|(d, _)| d.clone())
        .collect();
    assert_eq!(canaries.len(), 3);
    for d in devs.iter_mut() {
        if d.0 == canaries[0] {
            d.2 = false;
        }
    }
    let mut r = Rollout::new("r", p, &devs, 0);
    assert_eq!(r.count(0).offline, 1);
    let first = ordered(&r.tick(0));
    assert_eq!(first.len(), 2);
    // one answers and goes healthy; one says it is downloading, then nothing
    succeed(&mut r, &first[..1], S);
    r.report(&first[1], Report::Working, None, 50 * S, 50 * S);
    r.tick(121 * S);
    assert_eq!(
        r.members[&first[1]].progress,
        Progress::Ordered,
        "downloading resets the clock"
    );
    r.tick(171 * S);
    assert_eq!(
        r.members[&first[1]].reason.as_deref(),
        Some("timeout:ordered")
    );
    // 1 of 2 online devices healthy: under 100 %, the stage holds
    assert_eq!(r.stage, 0);
    let p = Plan {
        success_pct: 50,
        ..r.plan.clone()
    };
    r.plan = p;
    r.tick(172 * S);
    assert_eq!(r.stage, 1, "the offline device did not stall the stage");
    // the offline canary comes back and is ordered with the next stage's devices
    r.online(&canaries[0], true, 173 * S);
    let next = ordered(&r.tick(173 * S));
    assert!(next.contains(&canaries[0]));
    assert_eq!(r.members[&canaries[0]].orders, 1);
    // an active device that delivers no windows times out too
    r.report(&canaries[0], Report::Active, None, 174 * S, 174 * S);
    r.tick(295 * S);
    assert_eq!(
        r.members[&canaries[0]].reason.as_deref(),
        Some("timeout:active")
    );
}

#[test]
fn orders_are_rate_limited() {
    let p = Plan {
        stages: vec![100],
        orders_per_s: 10,
        ..plan()
    };
    let mut r = Rollout::new("r", p, &fleet(300, true), 0);
    assert_eq!(r.tick(0).len(), 10, "a second's worth at once");
    assert_eq!(r.tick(S).len(), 10);
    assert_eq!(r.tick(S + 500).len(), 5);
    // a 5 s tick sends 5 s worth
    assert_eq!(r.tick(6 * S + 500).len(), 50);
    // a long gap saves up 10 s worth at most
    assert_eq!(r.tick(60 * S).len(), 100);
    assert_eq!(r.tick(62 * S).len(), 20);
    let total: usize = (63..70).map(|s| r.tick(s * S).len()).sum();
    assert_eq!(total, 70);
    assert_eq!(r.tick(80 * S).len(), 35, "the rest");
    assert!(r.tick(90 * S).is_empty());
    assert!(r.members.values().all(|m| m.orders == 1));
}

#[test]
fn late_joiners_get_the_current_model() {
    let p = Plan {
        soak_ms: 0,
        ..plan()
    };
    let mut r = Rollout::new("r", p, &fleet(10, true), 0);
    let first = ordered(&r.tick(0));
    succeed(&mut r, &first, S);
    r.tick(2 * S);
    assert_eq!(r.stage, 1);
    r.join("late-1", true, 3 * S);
    r.join("late-2", false, 3 * S);
    let acts = ordered(&r.tick(3 * S));
    assert!(acts.contains(&"late-1".to_string()));
    assert!(!acts.contains(&"late-2".to_string()));
    assert_eq!(r.members["late-1"].stage, 1);
    assert_eq!(r.members["late-2"].progress, Progress::Offline);
    r.online("late-2", true, 4 * S);
    assert_eq!(ordered(&r.tick(4 * S)), ["late-2"]);
    r.join("late-1", true, 5 * S);
    assert!(r.tick(5 * S).is_empty(), "a member joins once");
}

#[test]
fn stale_reports_and_windows_are_ignored() {
    let mut r = Rollout::new(
        "r",
        Plan {
            stages: vec![100],
            ..plan()
        },
        &fleet(1, true),
        0,
    );
    assert_eq!(ordered(&r.tick(S)), ["d000"]);
    r.report("d000", Report::Active, None, 10 * S, 10 * S);
    r.report("d000", Report::Rejected, Some("engine"), 5 * S, 10 * S);
    assert_eq!(
        r.members["d000"].progress,
        Progress::Active,
        "older state ignored"
    );
    r.window("d000", &good(20 * S), 20 * S);
    r.window("d000", &good(20 * S), 21 * S);
    assert_eq!(
        r.members["d000"].healthy, 1,
        "a redelivered window counts once"
    );
    // a window stored late (older than the newest counted, within the lag) still counts
    r.window("d000", &good(15 * S), 30 * S);
    assert_eq!(r.members["d000"].progress, Progress::Healthy);
    assert_eq!(
        r.members["d000"].window_ms,
        20 * S,
        "the newest stays the newest"
    );
    // far older ones do not
    let mut late = Rollout::new("r", plan(), &fleet(1, true), 0);
    late.tick(0);
    late.report("d000", Report::Active, None, 1, 0);
    late.window(
        "d000",
        &Window {
            stalls: 2,
            ..good(100 * S)
        },
        100 * S,
    );
    late.window("d000", &good(100 * S - WINDOW_LAG_MS), 100 * S);
    assert_eq!(late.members["d000"].healthy, 1);
    // an older window with a lower stall count is no stall, nor makes the next one a stall
    late.window(
        "d000",
        &Window {
            stalls: 2,
            ..good(110 * S)
        },
        110 * S,
    );
    late.window(
        "d000",
        &Window {
            stalls: 1,
            ..good(105 * S)
        },
        110 * S,
    );
    late.window(
        "d000",
        &Window {
            stalls: 2,
            ..good(120 * S)
        },
        120 * S,
    );
    assert_eq!(
        late.members["d000"].progress,
        Progress::Healthy,
        "{:?}",
        late.members["d000"]
    );
    // unknown devices change nothing
    r.report("nobody", Report::Active, None, 40 * S, 40 * S);
    r.window("nobody", &good(40 * S), 40 * S);
    assert!(!r.members.contains_key("nobody"));
}

#[test]
fn the_state_survives_serialisation() {
    let mut r = Rollout::new("r", plan(), &fleet(20, true), 0);
    let first = ordered(&r.tick(0));
    r.take_dirty();
    let json = serde_json::to_string(&r).unwrap();
    let mut back: Rollout = serde_json::from_str(&json).unwrap();
    assert_eq!(back.members, r.members);
    assert!(back.tick(S).is_empty(), "no second order after a reload");
    succeed(&mut back, &first, 2 * S);
    assert_eq!(back.take_dirty(), first);
}

#[test]
fn feedback_worse_than_the_control_halts_the_stage() {
    let p = Plan {
        soak_ms: 0,
        feedback_min_labelled: 20,
        feedback_max_drop: 0.1,
        ..plan()
    };
    let mut r = Rollout::new("r", p, &fleet(20, true), 0);
    let first = ordered(&r.tick(0));
    let fc = |labelled, agree| FeedbackCount { labelled, agree };
    // too few labelled presses on either side: not judged
    r.set_feedback(fc(10, 0), fc(100, 80));
    r.tick(S);
    assert_eq!(r.phase, Phase::Running);
    // within the allowed drop: fine
    r.set_feedback(fc(20, 15), fc(100, 80));
    r.tick(2 * S);
    assert_eq!(r.phase, Phase::Running);
    // 0.50 vs 0.80: paused, with both figures in the reason
    r.set_feedback(fc(20, 10), fc(100, 80));
    r.tick(3 * S);
    assert_eq!(r.phase, Phase::Paused);
    let why = r.reason.clone().unwrap();
    assert!(why.contains("0.50") && why.contains("0.80"), "{why}");
    // the exact text, as the API, audit log and dashboard show it (no run of spaces)
    assert_eq!(
        why,
        "stage 1: feedback agreement 0.50 on the new model (20 labelled) vs 0.80 on the old \
         model (100 labelled), more than 0.1 below"
    );
    assert!(!why.contains("  "), "{why}");
    // an operator resumes: accepted for this stage, which then passes
    r.resume(4 * S, "looked at it").unwrap();
    succeed(&mut r, &first, 5 * S);
    r.tick(6 * S);
    assert_eq!((r.phase, r.stage), (Phase::Running, 1));
    assert_eq!(r.feedback, None, "a new stage counts afresh");
    let p = Plan {
        feedback_max_drop: 1.5,
        ..plan()
    };
    assert!(p.check().unwrap_err().0.contains("feedback_max_drop"));
}
