//! The real `emotion-fleet` binary on the shipped model packages.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_emotion-fleet");

fn run(args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap(),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pkg(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/packages")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_pack_sign_verify_inspect_and_each_failure_named() {
    let d = tempfile::tempdir().unwrap();
    let (keys, other) = (d.path().join("keys"), d.path().join("other"));
    let (c, out, _) = run(&["keygen", "--out", s(&keys)]);
    assert_eq!(c, 0);
    assert_eq!(out[0]["key_id"].as_str().unwrap().len(), 16);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join("fleet.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second keygen does not overwrite the key.
    assert_eq!(run(&["keygen", "--out", s(&keys)]).0, 2);
    assert_eq!(run(&["keygen", "--out", s(&other)]).0, 0);

    let archive = d.path().join("fer.empkg");
    let (c, out, _) = run(&[
        "model",
        "pack",
        s(&pkg("fer_mini_xception")),
        "--out",
        s(&archive),
    ]);
    assert_eq!(c, 0);
    assert_eq!(out[0]["name"], "fer_mini_xception");
    assert_eq!(
        out[0]["release"], 1,
        "shipped packages carry a release number"
    );
    let pub_key = keys.join("fleet.pub");
    let verify = |key: &Path| run(&["model", "verify", s(&archive), "--key", s(key)]);

    let (c, out, _) = verify(&pub_key);
    assert_eq!((c, out[0]["reason"].as_str()), (1, Some("unsigned")));
    let (c, out, _) = run(&[
        "model",
        "sign",
        s(&archive),
        "--key",
        s(&keys.join("fleet.key")),
    ]);
    assert_eq!((c, &out[0]["release"]), (0, &serde_json::json!(1)));
    let (c, out, _) = verify(&pub_key);
    assert_eq!((c, &out[0]["ok"]), (0, &serde_json::json!(true)), "{out:?}");
    let (c, out, _) = verify(&other.join("fleet.pub"));
    assert_eq!((c, out[0]["reason"].as_str()), (1, Some("untrusted_key")));

    let (c, out, _) = run(&["model", "inspect", s(&archive)]);
    assert_eq!(c, 0);
    assert_eq!(out[0]["index"]["name"], "fer_mini_xception");
    assert_eq!(out[0]["manifest"]["task"], "expression");
    assert_eq!(out[0]["release"], 1);

    // Key rotation: an endorsement of the other key by this one; a file that is no key.
    let e = d.path().join("other.endorsement");
    let (c, out, _) = run(&[
        "endorse",
        "--key",
        s(&keys.join("fleet.key")),
        "--new",
        s(&other.join("fleet.pub")),
        "--out",
        s(&e),
    ]);
    assert_eq!(c, 0);
    let e: serde_json::Value = serde_json::from_slice(&std::fs::read(&e).unwrap()).unwrap();
    assert_eq!(e["by"], out[0]["endorsed_by"]);
    let not_a_key = d.path().join("not-a-key");
    std::fs::write(&not_a_key, "hello\n").unwrap();
    let (c, _, err) = run(&[
        "endorse",
        "--key",
        s(&keys.join("fleet.key")),
        "--new",
        s(&not_a_key),
        "--out",
        s(&d.path().join("x")),
    ]);
    assert_eq!(c, 2);
    assert!(
        err.contains("not-a-key") && err.contains("not hex"),
        "{err}"
    );
    // An order is signed or explicitly unsigned; a downgrade is never unsigned.
    let rollback = |extra: &[&str]| {
        let mut a = vec![
            "rollback",
            "--slot",
            "expression",
            "--device",
            "d",
            "--port",
            "1",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };
    let (c, _, err) = rollback(&[]);
    assert_eq!(c, 2);
    assert!(err.contains("--key"), "{err}");
    let (c, _, err) = run(&[
        "rollout",
        s(&archive),
        "--slot",
        "expression",
        "--device",
        "d",
        "--chunks",
        "--unsigned",
        "--allow-downgrade",
        "--port",
        "1",
    ]);
    assert_eq!(c, 2);
    assert!(
        err.contains("--allow-downgrade needs a signed order"),
        "{err}"
    );

    // Truncated in transit.
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() / 3]).unwrap();
    let (c, out, _) = verify(&pub_key);
    assert_eq!((c, out[0]["reason"].as_str()), (1, Some("hash_mismatch")));
    // Not a package folder at all.
    let (c, _, err) = run(&["model", "pack", s(d.path()), "--out", s(&archive)]);
    assert_eq!(c, 2);
    assert!(err.contains("manifest.toml"), "{err}");
}

#[test]
fn model_import_without_its_binary_says_how_to_build_it() {
    // emotion-fleet alone in a folder, nothing on PATH: `model import` cannot find
    // emotion-fleet-import and says so (exit 2), instead of failing to spawn
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("emotion-fleet");
    std::fs::copy(BIN, &lone).unwrap();
    let out = std::process::Command::new(&lone)
        .args(["model", "import", "--help"])
        .env("PATH", dir.path().join("empty"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("needs the emotion-fleet-import binary")
            && err.contains("cargo build --release -p emotion-fleet-import"),
        "{err}"
    );
}
