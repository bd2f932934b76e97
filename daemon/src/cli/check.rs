//! `emotiond check`: config (and whether a config holding the broker password is readable by
//! every user), models, camera, indicators, broker, state directory, clock (and with audio
//! on, the VAD and the microphone); one line per item, exit code 1 on any failure.
//!
//! Length: ~300 lines: one block per item, in the order the technician reads them.

use super::{engine_label, load_config};

/// One item of `emotiond check --json` (keys written sorted).
#[derive(serde::Serialize)]
struct CheckLine<'a> {
    check: &'a str,
    ok: bool,
    detail: &'a str,
    hint: &'a str,
}
use crate::analyzer::Analyzer;
use crate::app::camera_for;
use crate::config::{self, Config, SourceKind};
use crate::publish::tls;
use crate::shutdown::Shutdown;
use crate::{audio, indicators, mqtt};
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// The broker item's hint when nothing more precise is known.
const BROKER_HINT: &str = "check mqtt.host/port, the network, and mqtt.username/password";

/// The `secrets` item for a config file with permission bits `mode` that holds the broker
/// password: (ok, detail). Readable by every user (the `o+r` bit) is a failure.
pub fn secret_exposure(path: &Path, mode: u32) -> (bool, String) {
    let mode = mode & 0o7777;
    if mode & 0o004 != 0 {
        (
            false,
            format!(
                "{} holds mqtt.password and every user can read it (mode {mode:o})",
                path.display()
            ),
        )
    } else {
        (
            true,
            format!(
                "{} holds mqtt.password, not readable by others (mode {mode:o})",
                path.display()
            ),
        )
    }
}

/// Connect to the broker as the daemon would (TLS and credentials included) and wait for
/// CONNACK: (ok, detail, hint). Over TLS a failed handshake says why in the hint.
pub fn check_broker(cfg: &Config) -> (bool, String, String) {
    let q = &cfg.mqtt;
    let addr = format!("{}:{}", q.host, q.port);
    let over = if q.tls { " over TLS" } else { "" };
    let opts = match mqtt::options(q, &format!("emotiond-check-{}", std::process::id()), None) {
        Ok(o) => o,
        Err(e) => {
            return (
                false,
                format!("{addr}: {e}"),
                "fix the named file or key (PEM files: mqtt.ca_file, mqtt.cert_file, mqtt.key_file)"
                    .into(),
            );
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return (false, format!("{addr}: {e}"), BROKER_HINT.into()),
    };
    rt.block_on(async {
        let (client, mut ev) = rumqttc::AsyncClient::new(opts, 4);
        let r = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match ev.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        let _ = client.try_disconnect();
        match r {
            Ok(Ok(())) if q.tls => (
                true,
                format!(
                    "{addr}: connected over TLS (certificate signed by {}, for {}{}), credentials accepted",
                    tls::ca_path(q).display(),
                    q.host,
                    if config::MqttConfig::file(&q.cert_file).is_some() {
                        "; client certificate accepted"
                    } else {
                        ""
                    }
                ),
                String::new(),
            ),
            Ok(Ok(())) => (
                true,
                format!("{addr}: connected, credentials accepted"),
                String::new(),
            ),
            Ok(Err(e)) => match tls::explain(&e, q) {
                Some(why) => (false, format!("{addr}{over}: {e}"), why),
                None => (false, format!("{addr}{over}: {e}"), BROKER_HINT.into()),
            },
            Err(_) => (
                false,
                format!("{addr}{over}: no answer within 5 s"),
                BROKER_HINT.into(),
            ),
        }
    })
}

pub fn check(path: &Path, explicit: bool, json: bool) -> Result<ExitCode> {
    let mut items: Vec<(&str, bool, String, &str)> = Vec::new();
    let cfg = match load_config(path, explicit) {
        Ok(c) => {
            items.push((
                "config",
                true,
                format!(
                    "{} ({})",
                    path.display(),
                    if path.exists() { "file" } else { "defaults" }
                ),
                "",
            ));
            if c.mqtt.password.is_some() {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(m) = std::fs::metadata(path) {
                    let (ok, detail) = secret_exposure(path, m.permissions().mode());
                    items.push((
                        "secrets",
                        ok,
                        detail,
                        "chgrp emotiond <config> && chmod 0640 <config> (the Debian package does this on install)",
                    ));
                }
            }
            Some(c)
        }
        Err(e) => {
            items.push((
                "config",
                false,
                format!("{e:#}"),
                "fix the named key; `emotiond config --print-default` shows every key",
            ));
            None
        }
    };
    if let Some(cfg) = &cfg {
        match Analyzer::load(&cfg.models) {
            Ok(a) => {
                let (d, x) = (a.detector_info(), a.expression_info());
                items.push((
                    "models",
                    true,
                    format!(
                        "{} on {} and {} on {}{}",
                        d.id,
                        engine_label(&d),
                        x.id,
                        engine_label(&x),
                        if cfg.models.verify_test_vectors {
                            ", test vectors pass"
                        } else {
                            ""
                        }
                    ),
                    "",
                ));
                for m in [d, x] {
                    if let Some(why) = &m.fallback {
                        items.push((
                            "engine",
                            false,
                            format!("{} falls back to {}: {why}", m.id, engine_label(&m)),
                            "install the runtime library or delegate named above, or set models.tflite_library / models.onnxruntime_library / the engine in config",
                        ));
                    }
                }
            }
            Err(e) => items.push((
                "models",
                false,
                format!("{e:#}"),
                "reinstall the model package or point models.* at a valid one",
            )),
        }
        match camera_for(cfg).map(|mut c| (c.next_frame(), c.describe())) {
            Ok((Ok(f), d)) => items.push((
                "camera",
                true,
                format!(
                    "{d}: frame {}x{} decoded",
                    f.image.width(),
                    f.image.height()
                ),
                "",
            )),
            Ok((Err(e), d)) => items.push((
                "camera",
                false,
                format!("{d}: {e}"),
                "check camera.device, the cable, and that the user is in the video group",
            )),
            Err(e) => items.push((
                "camera",
                false,
                format!("{e:#}"),
                "check the [camera] section",
            )),
        }
        #[cfg(target_os = "linux")]
        if cfg.camera.source == SourceKind::V4l2 {
            match emotiond_hal::v4l2::modes(&cfg.camera.device) {
                Ok(m) => items.push((
                    "camera_modes",
                    m.iter().any(|m| matches!(m.fourcc.as_str(), "MJPG" | "YUYV")),
                    {
                        // the formats emotiond reads; the others are only counted
                        let (usable, other): (Vec<_>, Vec<_>) = m
                            .into_iter()
                            .partition(|m| matches!(m.fourcc.as_str(), "MJPG" | "YUYV"));
                        format!(
                            "{} offers {}{}",
                            cfg.camera.device,
                            if usable.is_empty() {
                                "neither MJPG nor YUYV".to_string()
                            } else {
                                emotiond_hal::v4l2::describe_modes(&usable)
                            },
                            if other.is_empty() {
                                String::new()
                            } else {
                                format!(" (and {} other formats emotiond does not read)", other.len())
                            }
                        )
                    },
                    "the device offers neither MJPG nor YUYV capture: is it a capture node (try the other /dev/video*)?",
                )),
                Err(e) => items.push((
                    "camera_modes",
                    false,
                    format!("{}: {e}", cfg.camera.device),
                    "check camera.device, the cable, and that the user is in the video group",
                )),
            }
        }
        if cfg.indicators.backend != config::PinBackend::None {
            let stop = Shutdown::new();
            let r = indicators::spawn(
                &cfg.indicators,
                false,
                indicators::Inputs {
                    shutdown: stop.clone(),
                    ..Default::default()
                },
            );
            stop.trigger();
            let r = r.and_then(|h| {
                h.map(|h| h.join())
                    .transpose()
                    .map_err(|_| anyhow::anyhow!("indicator thread panicked"))
            });
            items.push((
                "indicators",
                r.is_ok(),
                match r {
                    Ok(_) => format!(
                        "{:?} pins: status LED {}, button {}",
                        cfg.indicators.backend,
                        cfg.indicators
                            .status_led
                            .map_or("none".into(), |p| p.to_string()),
                        cfg.indicators
                            .button
                            .map_or("none".into(), |p| p.to_string())
                    ),
                    Err(e) => format!("{e:#}"),
                },
                "check indicators.* (GPIO numbers are BCM) and that the user is in the gpio group",
            ));
        }
        if cfg.audio.enabled {
            match audio::load_voice(&cfg.audio, &cfg.models) {
                Ok(v) => {
                    let i = &v.analyzer.vad.info;
                    items.push((
                        "vad",
                        i.fallback.is_none(),
                        match &i.fallback {
                            None => format!("{} on {}", i.id, i.engine),
                            Some(f) => format!("{} on {}: {f}", i.id, i.engine),
                        },
                        "install the runtime named above, or point audio.vad at a valid voice_activity package",
                    ));
                }
                Err(e) => items.push((
                    "vad",
                    false,
                    format!("{e:#}"),
                    "check audio.speech_emotion and the [audio] section",
                )),
            }
            match audio::microphone_for(&cfg.audio).map(|mut m| (m.read(), m.describe())) {
                Ok((Ok(c), d)) => items.push((
                    "microphone",
                    true,
                    format!("{d}: {} samples read", c.samples.len()),
                    "",
                )),
                Ok((Err(e), d)) => items.push((
                    "microphone",
                    false,
                    format!("{d}: {e}"),
                    "check audio.device (arecord -l lists capture devices) and that the user is in the audio group",
                )),
                Err(e) => items.push((
                    "microphone",
                    false,
                    format!("{e:#}"),
                    "check the [audio] section",
                )),
            }
        }
        if cfg.mqtt.enabled {
            let (ok, detail, hint) = check_broker(cfg);
            let hint: &'static str = hint.leak(); // once per process: check then exits
            items.push(("broker", ok, detail, hint));
        }
        if !cfg.state_dir.as_os_str().is_empty() {
            // asked for the user the daemon runs as, creating nothing (see statedir.rs)
            let v = crate::statedir::check(&cfg.state_dir);
            let hint: &'static str = v.hint.leak(); // once per process: check then exits
            items.push(("state", v.ok, v.detail, hint));
        }
    }
    // Window timestamps are wall-clock: a board without RTC and NTP starts in 1970.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let sane = now >= 1_735_689_600; // 2025-01-01
    items.push((
        "clock",
        sane,
        format!("{} s since the Unix epoch{}", now, if sane { "" } else { " (before 2025: not set)" }),
        "enable time synchronisation (systemd-timesyncd, chrony) before relying on window timestamps",
    ));
    let all_ok = items.iter().all(|i| i.1);
    for (name, ok, detail, hint) in &items {
        if json {
            println!(
                "{}",
                super::json_line(&CheckLine {
                    check: name,
                    ok: *ok,
                    detail,
                    hint: if *ok { "" } else { hint },
                })
            );
        } else if *ok {
            println!("ok    {name:8} {detail}");
        } else {
            println!(
                "FAIL  {name:8} {detail}
      hint: {hint}"
            );
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::secret_exposure;
    use std::path::Path;

    #[test]
    fn a_password_in_a_config_every_user_reads_fails_the_check() {
        let p = Path::new("/etc/emotiond/emotiond.toml");
        let (ok, detail) = secret_exposure(p, 0o100644);
        assert!(!ok);
        assert_eq!(
            detail,
            "/etc/emotiond/emotiond.toml holds mqtt.password and every user can read it (mode 644)"
        );
        assert!(!secret_exposure(p, 0o604).0);
        for m in [0o640, 0o600, 0o400, 0o660] {
            assert!(secret_exposure(p, m).0, "{m:o}");
        }
    }
}
