//! The update manager's transitions, part 2: HTTP downloads, refusals of the package
//! (task, key, release, test vectors), a stopped pipeline, operator rollbacks and the
//! start-up report. Fixtures in the parent module.

use super::*;

fn install_by_url(fx: &mut Fx, slot: Slot, a: &Archive, seq: u64) -> Vec<ModelState> {
    fx.m.io.downloads.push_back(Ok(a.bytes.clone()));
    let order = fx.install(slot, a, None, seq);
    fx.send(SET, &order);
    fx.states()
}

#[test]
fn an_http_download_failure_is_rejected_and_retried_when_sent_again() {
    let mut fx = Fx::new();
    let a = fx.fer("9.0.1");
    fx.m.io
        .downloads
        .push_back(Err(reject(RejectCode::Download, "refused")));
    let order = fx.install(Slot::Expression, &a, None, 10);
    fx.send(SET, &order);
    let s = fx.states();
    assert_eq!(
        kinds(&s),
        vec![(Downloading, None), (Rejected, Some(RejectCode::Download))]
    );
    assert_eq!(
        fx.m.io.fetched,
        vec!["http://fleet.invalid/model.tar".to_string()]
    );
    let s = install_by_url(&mut fx, Slot::Expression, &a, 11);
    assert_eq!(
        kinds(&s),
        vec![(Downloading, None), (Verifying, None), (Testing, None)]
    );
}

#[test]
fn a_package_for_another_task_is_wrong_task_and_not_tried_again() {
    let mut fx = Fx::new();
    let a = fx.fer("9.0.1");
    let s = install_by_url(&mut fx, Slot::Detector, &a, 10);
    assert_eq!(
        kinds(&s),
        vec![
            (Downloading, None),
            (Verifying, None),
            (Rejected, Some(RejectCode::WrongTask))
        ]
    );
    assert!(fx.m.io.built.is_empty());
    assert_eq!(fx.m.store.slot(Slot::Detector).active, None);
    // Refused before: the same archive is not fetched again.
    let order = fx.install(Slot::Detector, &a, None, 11);
    fx.send(SET, &order);
    assert!(fx.take().is_empty());
    assert_eq!(fx.m.io.fetched.len(), 1);
}

#[test]
fn an_archive_signed_by_an_unknown_key_is_untrusted_key() {
    let mut fx = Fx::new();
    let other = signed::generate_key().unwrap();
    let a = fx.archive("fer_mini_xception", "9.0.1", 2, &other);
    let s = install_by_url(&mut fx, Slot::Expression, &a, 10);
    assert_eq!(s.last().unwrap().reason, Some(RejectCode::UntrustedKey));
    assert!(fx.m.io.swaps.is_empty());
}

#[test]
fn a_lower_release_is_a_downgrade_unless_the_order_allows_it() {
    let mut fx = Fx::new();
    let mut rec = fx.m.store.slot(Slot::Expression);
    rec.releases.insert("fer_mini_xception".into(), 5);
    fx.m.store.set_slot(Slot::Expression, &rec).unwrap();
    let a = fx.fer("9.0.1");
    let s = install_by_url(&mut fx, Slot::Expression, &a, 10);
    assert_eq!(s.last().unwrap().reason, Some(RejectCode::Downgrade));
    assert!(fx.m.io.built.is_empty());
    // The configured model's release counts too (the builtin fer_mini_xception is 1).
    let mut fx = Fx::new();
    let old = fx.archive("fer_mini_xception", "0.0.1", 0, &fx.key);
    let s = install_by_url(&mut fx, Slot::Expression, &old, 10);
    assert_eq!(s.last().unwrap().reason, Some(RejectCode::Downgrade));
    // An operator-signed downgrade of the same archive is a new order, and goes through;
    // the record of releases does not go down.
    let mut msg = SetMessage::new(Slot::Expression, Action::Install);
    msg.name = Some(old.name.clone());
    msg.version = Some(old.version.clone());
    msg.sha256 = Some(old.sig.sha256.clone());
    msg.size = Some(old.bytes.len() as u64);
    msg.key_id = Some(old.sig.key_id.clone());
    msg.signature = Some(old.sig.signature.clone());
    msg.url = Some("http://fleet.invalid/model.tar".into());
    msg.allow_downgrade = true;
    let order = fx.sign(msg.clone(), 11);
    fx.m.io.downloads.push_back(Ok(old.bytes.clone()));
    fx.send(SET, &order);
    let s = fx.states();
    assert_eq!(kinds(&s).last(), Some(&(Testing, None)));
    assert_eq!(fx.m.io.swaps[0].id, "fer_mini_xception@0.0.1");
    let mut rec = fx.m.store.slot(Slot::Expression);
    assert_eq!(rec.releases.get("fer_mini_xception"), Some(&0));
    // Unsigned, allow_downgrade is not honoured (another archive: the one above was
    // refused as a downgrade before, and such an order is not followed again).
    rec.active = None;
    rec.releases.insert("fer_mini_xception".into(), 3);
    fx.m.store.set_slot(Slot::Expression, &rec).unwrap();
    fx.m.require_signed_orders = false;
    let other = fx.archive("fer_mini_xception", "0.0.2", 0, &fx.key);
    msg.version = Some(other.version.clone());
    msg.sha256 = Some(other.sig.sha256.clone());
    msg.size = Some(other.bytes.len() as u64);
    msg.signature = Some(other.sig.signature.clone());
    fx.m.io.downloads.push_back(Ok(other.bytes.clone()));
    fx.send(SET, &serde_json::to_vec(&msg).unwrap());
    let s = fx.states();
    assert_eq!(s.last().unwrap().reason, Some(RejectCode::Downgrade));
}

#[test]
fn a_model_that_fails_its_test_vectors_is_rejected_with_that_code() {
    let mut fx = Fx::new();
    fx.m.io.build_fails = Some((RejectCode::TestVectors, "vector 0 differs".into()));
    let a = fx.fer("9.0.1");
    let s = install_by_url(&mut fx, Slot::Expression, &a, 10);
    assert_eq!(
        kinds(&s),
        vec![
            (Downloading, None),
            (Verifying, None),
            (Testing, None),
            (Rejected, Some(RejectCode::TestVectors))
        ]
    );
    assert_eq!(s[3].detail.as_deref(), Some("vector 0 differs"));
    assert!(fx.m.io.swaps.is_empty());
    assert_eq!(fx.m.store.slot(Slot::Expression).active, None);
    assert!(!fx.m.store.package_dir(&a.sig.sha256).exists());
    // An engine failure has its own code.
    fx.m.io.build_fails = Some((RejectCode::Engine, "no engine".into()));
    let b = fx.fer("9.0.2");
    let s = install_by_url(&mut fx, Slot::Expression, &b, 11);
    assert_eq!(s.last().unwrap().reason, Some(RejectCode::Engine));
}

#[test]
fn a_stopped_pipeline_is_an_io_rejection() {
    let mut fx = Fx::new();
    fx.m.io.pipeline_stopped = true;
    let a = fx.fer("9.0.1");
    let s = install_by_url(&mut fx, Slot::Expression, &a, 10);
    let last = s.last().unwrap();
    assert_eq!((last.state, last.reason), (Rejected, Some(RejectCode::Io)));
    assert_eq!(last.detail.as_deref(), Some("the pipeline has stopped"));
}

#[test]
fn an_operator_rollback_without_a_stored_model_is_no_previous() {
    let mut fx = Fx::new();
    let order = fx.rollback(Slot::Expression, 10);
    fx.send(SET, &order);
    let s = fx.states();
    assert_eq!(kinds(&s), vec![(Rejected, Some(RejectCode::NoPrevious))]);
    assert!(fx.m.io.swaps.is_empty());
}

#[test]
fn an_operator_rollback_goes_back_to_the_previous_or_the_configured_model() {
    let mut fx = Fx::new();
    let a = fx.fer("9.0.1");
    let b = fx.fer("9.0.2");
    install_by_url(&mut fx, Slot::Expression, &a, 10);
    install_by_url(&mut fx, Slot::Expression, &b, 11);
    fx.m.io.built.clear();
    // Back to the previous stored model, without probation.
    let order = fx.rollback(Slot::Expression, 12);
    fx.send(SET, &order);
    let s = fx.states();
    assert_eq!(kinds(&s), vec![(RolledBack, Some(RejectCode::Operator))]);
    assert_eq!(s[0].model.as_deref(), Some("fer_mini_xception@9.0.2"));
    assert_eq!(
        s[0].detail.as_deref(),
        Some("back to fer_mini_xception@9.0.1: operator")
    );
    let sw = fx.m.io.swaps.last().unwrap();
    assert_eq!(
        (sw.id.as_str(), sw.probation, sw.budget_ms),
        ("fer_mini_xception@9.0.1", false, None)
    );
    assert_eq!(fx.m.io.built[0].1, "fer_mini_xception@9.0.1");
    let rec = fx.m.store.slot(Slot::Expression);
    assert_eq!(rec.active.as_ref().unwrap().sha256, a.sig.sha256);
    assert_eq!(rec.previous, None);
    assert_eq!(rec.rolled_back, vec![b.sig.sha256.clone()]);
    // The same signed rollback delivered again is not followed twice.
    fx.send(SET, &order);
    assert!(fx.take().is_empty());
    // Then back to the configured model.
    let order = fx.rollback(Slot::Expression, 13);
    fx.send(SET, &order);
    let s = fx.states();
    assert_eq!(kinds(&s), vec![(RolledBack, Some(RejectCode::Operator))]);
    let configured = crate::analyzer::load_package(&ModelsConfig::default().expression).unwrap();
    assert_eq!(fx.m.io.swaps.last().unwrap().id, configured.id());
    assert_eq!(fx.m.store.slot(Slot::Expression).active, None);
    // A rollback whose model does not build changes nothing (engine).
    let c = fx.fer("9.0.3");
    install_by_url(&mut fx, Slot::Expression, &c, 14);
    fx.m.io.build_fails = Some((RejectCode::TestVectors, "broken".into()));
    let order = fx.rollback(Slot::Expression, 15);
    fx.send(SET, &order);
    let s = fx.states();
    assert_eq!(kinds(&s), vec![(Rejected, Some(RejectCode::Engine))]);
    assert_eq!(s[0].model.as_deref(), Some("fer_mini_xception@9.0.3"));
    assert_eq!(
        fx.m.store.slot(Slot::Expression).active.unwrap().sha256,
        c.sig.sha256
    );
}

#[test]
fn start_up_reports_an_interrupted_update_and_a_corrupt_store() {
    let mut fx = Fx::new();
    let staging = fx.m.store.staging();
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("abc.order"), "expression fer@1").unwrap();
    fx.m.report_startup(&[(Slot::Detector, "manifest.toml: missing".into())]);
    let s = fx.states();
    assert_eq!(
        kinds(&s),
        vec![
            (Rejected, Some(RejectCode::Interrupted)),
            (RolledBack, Some(RejectCode::CorruptStore))
        ]
    );
    assert_eq!(s[0].slot, None);
    assert!(
        s[0].detail.as_deref().unwrap().contains("expression fer@1"),
        "{:?}",
        s[0].detail
    );
    assert_eq!(s[1].slot, Some(Slot::Detector));
    assert_eq!(s[1].detail.as_deref(), Some("manifest.toml: missing"));
    assert!(!staging.join("abc.order").exists());
    // Nothing found: nothing reported.
    fx.m.report_startup(&[]);
    assert!(fx.take().is_empty());
}
