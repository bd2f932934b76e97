//! Staged rollouts to real `emotiond` daemons (the workspace's binary, on a looping still with
//! a face, the real models on tract) that require signed orders, as shipped: a good detector
//! package reaches every stage; a package that passes its test vectors but finds no faces
//! (its post-processing broken: scores clipped below the threshold) fails its canary on
//! health (`min_faces`), the rollout aborts and the canary is rolled back, the rest never
//! ordered.

use crate::device::spawn_emotiond;
use crate::rollout_support::*;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A copy of the shipped short-range detector as `<version>`/`<release>`, its manifest
/// edited by `edit`, packed and signed with `key`: (archive, signature file).
fn detector_package(
    dir: &Path,
    version: &str,
    release: u32,
    key: &Path,
    edit: impl Fn(String) -> String,
) -> (Vec<u8>, serde_json::Value) {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/packages/blazeface_short_range");
    let dst = dir.join(format!("det-{release}"));
    std::fs::create_dir_all(dst.join("vectors")).unwrap();
    for sub in ["", "vectors"] {
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), dst.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    let m = std::fs::read_to_string(dst.join("manifest.toml")).unwrap();
    let edited = edit(
        m.replace(
            "version = \"0.10.21+f32.1\"",
            &format!("version = \"{version}\""),
        )
        .replace("release = 1\n", &format!("release = {release}\n"))
        // probation rolls back a model slower than its budget: this machine is shared by
        // the tests running beside this one
        .replace("budget_ms = 20.0", "budget_ms = 2000.0"),
    );
    assert!(edited.contains(version) && edited.contains(&format!("release = {release}")));
    assert!(edited.contains("budget_ms = 2000.0"));
    std::fs::write(dst.join("manifest.toml"), edited).unwrap();
    let archive = dir.join(format!("det-{release}.empkg"));
    for args in [
        vec![
            "model",
            "pack",
            dst.to_str().unwrap(),
            "--out",
            archive.to_str().unwrap(),
        ],
        vec![
            "model",
            "sign",
            archive.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    ] {
        let o = Command::new(BIN).args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {o:?}");
    }
    let sig = std::fs::read(format!("{}.sig", archive.display())).unwrap();
    (
        std::fs::read(&archive).unwrap(),
        serde_json::from_slice(&sig).unwrap(),
    )
}

/// A real daemon `id` trusting `public` (and requiring signed orders: the default). Its own
/// probation's detection-collapse rule is off (`min_detection_ratio = 0`): with the default
/// the device rolls the faceless detector back by itself (`rolled_back:probation`, which
/// fails it in the rollout too); off, the fleet's health gate alone has to stop it.
struct Daemon(Child, #[allow(dead_code)] tempfile::TempDir);

impl Daemon {
    fn start(id: &str, broker: u16, public: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let image = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/astronaut.png");
        let cfg = dir.path().join("emotiond.toml");
        std::fs::write(
            &cfg,
            format!(
                "device_id = \"{id}\"\nstate_dir = {:?}\n[camera]\nsource = \"files\"\npaths = [{:?}]\n\
                 loop = true\nstills_fps = 5.0\n[pipeline]\nwindow_s = 1.0\nthreads = 1\n[mqtt]\nhost = \"127.0.0.1\"\n\
                 port = {broker}\nkeep_alive_s = 5\nencoding = \"postcard\"\n[updates]\n\
                 trusted_keys = [\"{public}\"]\nprobation_s = 60.0\nmin_frames = 3\n\
                 min_detection_ratio = 0.0\n",
                dir.path().join("state").display().to_string(),
                image.display().to_string(),
            ),
        )
        .unwrap();
        Daemon(spawn_emotiond(&cfg), dir)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_rollout(
    serve: &Serve,
    token: &str,
    archive: &[u8],
    sig: &serde_json::Value,
    plan: serde_json::Value,
) -> String {
    use base64::Engine;
    let body = serde_json::json!({
        "group": "g", "slot": "detector",
        "package": base64::engine::general_purpose::STANDARD.encode(archive),
        "signature": sig, "plan": plan,
    });
    let a = http(
        "POST",
        &format!("{}/api/v1/rollouts", serve.http),
        Some(token),
        Some(&body.to_string()),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    a.json()["id"].as_str().unwrap().to_string()
}

/// The detector a device's newest summary names, and the faces it saw.
fn detector(serve: &Serve, token: &str, id: &str) -> (String, i64) {
    let a = http(
        "GET",
        &format!("{}/api/v1/devices/{id}", serve.http),
        Some(token),
        None,
    );
    let d = a.json();
    (
        d["models"]["detector"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        d["last_summary"]["faces_seen"].as_i64().unwrap_or(-1),
    )
}

#[test]
fn real_daemons_take_a_good_detector_through_every_stage_and_a_faceless_one_is_stopped_at_the_canary()
 {
    let broker = Broker::start();
    let data = tempfile::tempdir().unwrap();
    let keys = data.path().join("keys");
    let o = Command::new(BIN)
        .args(["keygen", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let key = keys.join("fleet.key");
    let public = std::fs::read_to_string(keys.join("fleet.pub"))
        .unwrap()
        .trim()
        .to_string();
    let good = detector_package(data.path(), "0.10.21+f32.1-good", 2, &key, |m| m);
    // passes its test vectors (raw outputs), finds nothing: every score is clipped to
    // sigmoid(1) = 0.73, below the threshold of 0.9
    let faceless = detector_package(data.path(), "0.10.21+f32.1-faceless", 3, &key, |m| {
        let t = m
            .replace(
                "score_clipping_thresh = 100.0",
                "score_clipping_thresh = 1.0",
            )
            .replace("min_score_thresh = 0.5", "min_score_thresh = 0.9");
        assert!(t.contains("clipping_thresh = 1.0") && t.contains("min_score_thresh = 0.9"));
        t
    });

    let key_arg = key.display().to_string();
    let args = [
        "--rollout-tick",
        "1",
        "--rollout-lease",
        "3",
        "--order-key",
        &key_arg,
    ];
    let serve = Serve::start_with(broker.port, data.path(), None, "a", &args);
    let token = serve.admin_token();
    let ids = ["rr-0".to_string(), "rr-1".to_string()];
    let _daemons: Vec<Daemon> = ids
        .iter()
        .map(|id| Daemon::start(id, broker.port, &public))
        .collect();
    group(&serve.http, &token, &ids, "g");

    // the good package: both stages, each device healthy on it (faces seen). Three healthy
    // windows and one analysis thread: the window in progress at the swap, and frames the
    // old detector analysed still on their way, count as the new model's (a known limit,
    // docs/status.md); with two windows and two threads, a loaded machine once let the
    // faceless canary pass its stage on them.
    let plan = serde_json::json!({
        "stages": [50, 100], "soak_ms": 1000, "healthy_windows": 3, "timeout_ms": 90000,
        "success_pct": 100, "min_faces": 1, "min_failures": 1, "on_failure": "abort",
    });
    let id = start_rollout(&serve, &token, &good.0, &good.1, plan.clone());
    let done = wait_until_showing(150, "the good rollout done", || {
        let s = status(&serve.http, &token, &id);
        assert_ne!(s["phase"], "aborted", "{s}");
        if s["phase"] == "done" { Ok(s) } else { Err(s) }
    });
    let stages = done["stages"].as_array().unwrap();
    assert_eq!(
        (
            stages[0]["succeeded"].as_i64(),
            stages[1]["succeeded"].as_i64()
        ),
        (Some(1), Some(1)),
        "{done}"
    );
    for d in &ids {
        let (model, _) = wait_until(30, "the new detector in the device's summaries", || {
            let (m, f) = detector(&serve, &token, d);
            m.ends_with("-good").then_some((m, f))
        });
        assert_eq!(model, "blazeface_short_range@0.10.21+f32.1-good");
    }

    // the faceless package: the canary goes active, its windows show no faces, the rollout
    // aborts and orders it back; the other device is never ordered
    let id = start_rollout(&serve, &token, &faceless.0, &faceless.1, plan);
    let s = wait_until_showing(150, "the canary rolled back", || {
        let s = status(&serve.http, &token, &id);
        if s["stages"][0]["rolled_back"] == 1 {
            Ok(s)
        } else {
            Err(s)
        }
    });
    assert_eq!(s["phase"], "aborted", "{s}");
    let f = &s["failures"][0];
    assert!(
        f["reason"].as_str().unwrap().starts_with("unhealthy:"),
        "the canary failed on health: {s}"
    );
    assert_eq!(
        s["stages"][1]["pending"], 1,
        "the second stage never ordered: {s}"
    );
    let canary = f["device_id"].as_str().unwrap().to_string();
    let other = ids.iter().find(|d| **d != canary).unwrap();
    // the canary is back on the good detector and sees faces; the other never left it
    wait_until(
        60,
        "the canary's summaries on the good detector with faces",
        || {
            let (m, faces) = detector(&serve, &token, &canary);
            (m.ends_with("-good") && faces > 0).then_some(())
        },
    );
    let (m, _) = detector(&serve, &token, other);
    assert!(m.ends_with("-good"), "{other}: {m}");
    let a = http(
        "GET",
        &format!("{}/api/v1/devices/{other}", serve.http),
        Some(&token),
        None,
    );
    let states = &a.json()["model_states"]["detector"];
    assert_ne!(
        states["model"], "blazeface_short_range@0.10.21+f32.1-faceless",
        "{states}"
    );
}
