//! File modes (issue 13, item 8): what a real `emotiond run` creates in its state directory
//! is for its user and group only, even started with umask 0022 (as this test is); `emotiond
//! check` fails a config that holds the broker password and every user can read.

use crate::support::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_state_directory_and_outbox_entries_are_not_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let camera = looping_files(&data("astronaut.png"), 10.0);
    // no broker on this port: summaries stay in the outbox
    let cfg = write_config(dir.path(), "modes-1", free_port(), &camera);
    let mut daemon = spawn_daemon(&cfg);
    let outbox = dir.path().join("state/outbox");
    let end = Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let found = std::fs::read_dir(&outbox).ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "sum"))
        });
        if let Some(p) = found {
            break p;
        }
        assert!(Instant::now() < end, "no outbox entry within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    for d in [dir.path().join("state"), outbox] {
        let m = mode(&d);
        assert_eq!(m & 0o027, 0, "{} is {m:o}", d.display());
    }
    let m = mode(&entry);
    assert_eq!(m & 0o137, 0, "{} is {m:o}", entry.display());
    assert_eq!(m & 0o600, 0o600, "{} is {m:o}", entry.display());
}

#[test]
fn check_fails_a_world_readable_config_with_the_broker_password() {
    let dir = tempfile::tempdir().unwrap();
    let camera = looping_files(&data("astronaut.png"), 10.0);
    let cfg = write_config(dir.path(), "modes-2", free_port(), &camera);
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}username = \"modes-2\"\npassword = \"s3cret\"\n"),
    )
    .unwrap();
    let secrets = |m: u32| {
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(m)).unwrap();
        let out = run_cli(&["check", "--json", "--config", cfg.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .map(|l| json(l.as_bytes()))
            .find(|i| i["check"] == "secrets")
            .unwrap_or_else(|| panic!("no secrets item: {text}"))
    };
    let open = secrets(0o644);
    assert_eq!(open["ok"], false, "{open}");
    assert!(
        open["detail"]
            .as_str()
            .unwrap()
            .contains("every user can read it (mode 644)"),
        "{open}"
    );
    assert!(
        open["hint"].as_str().unwrap().contains("chmod 0640"),
        "{open}"
    );
    let closed = secrets(0o640);
    assert_eq!(closed["ok"], true, "{closed}");
}
