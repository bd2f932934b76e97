//! The configuration file (TOML). Every key has a default; unknown keys are errors; after
//! parsing, validation reports every problem at once, each with its key path.
//!
//! Here: the top-level [`Config`], loading and parsing. The tables (one struct per table,
//! each key with its default and doc) are in `sections.rs`, re-exported here; the
//! validation ([`Config::problems`]) is in `validate.rs`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

mod api;
mod sections;
mod validate;

pub use api::ApiConfig;

pub use sections::{
    AudioConfig, AudioSourceKind, CameraConfig, IndicatorsConfig, ModelsConfig, MqttConfig, Pace,
    PinBackend, PipelineConfig, SYSTEM_CA_FILE, SourceKind, UpdatesConfig,
};

pub const DEFAULT_PATH: &str = "/etc/emotiond/emotiond.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Identifies this device in topics and summaries. Empty: the host name.
    pub device_id: String,
    /// Writable state (the summary outbox). Empty: keep nothing on disk.
    pub state_dir: PathBuf,
    pub camera: CameraConfig,
    pub models: ModelsConfig,
    pub pipeline: PipelineConfig,
    pub mqtt: MqttConfig,
    pub updates: UpdatesConfig,
    pub indicators: IndicatorsConfig,
    pub audio: AudioConfig,
    pub api: ApiConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            device_id: String::new(),
            state_dir: PathBuf::from("/var/lib/emotiond"),
            camera: CameraConfig::default(),
            models: ModelsConfig::default(),
            pipeline: PipelineConfig::default(),
            mqtt: MqttConfig::default(),
            updates: UpdatesConfig::default(),
            indicators: IndicatorsConfig::default(),
            audio: AudioConfig::default(),
            api: ApiConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {}", problems.iter().map(|(k, p)| format!("`{k}`: {p}")).collect::<Vec<_>>().join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<(String, String)>,
    },
}

impl Config {
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let problems = c.problems();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        if c.device_id.is_empty() {
            c.device_id = hostname();
        }
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().replace(['/', '+', '#'], "_"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "emotiond".into())
}

/// The documented default configuration file (`emotiond config --print-default`).
pub const DEFAULT_FILE: &str = include_str!("../../emotiond.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_default_file_equals_the_built_in_defaults() {
        let mut c = Config::parse(DEFAULT_FILE, Path::new("emotiond.toml")).unwrap();
        let mut d = Config::default();
        c.device_id.clear();
        d.device_id.clear();
        assert_eq!(c, d);
    }

    /// Every key the configuration has is written out in the documented file (with its
    /// default), and the file has no key the configuration lacks: a new key with a default
    /// would otherwise pass the test above while missing from the file and the reference.
    #[test]
    fn documented_default_file_lists_every_key() {
        fn keys(v: &toml::Value, at: &str, out: &mut std::collections::BTreeSet<String>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        let path = if at.is_empty() {
                            k.clone()
                        } else {
                            format!("{at}.{k}")
                        };
                        keys(v, &path, out);
                    }
                }
                _ => {
                    out.insert(at.to_string());
                }
            }
        }
        let mut built_in = std::collections::BTreeSet::new();
        keys(
            &toml::Value::try_from(Config::default()).unwrap(),
            "",
            &mut built_in,
        );
        let mut file = std::collections::BTreeSet::new();
        keys(&DEFAULT_FILE.parse::<toml::Value>().unwrap(), "", &mut file);
        let missing: Vec<_> = built_in.difference(&file).collect();
        let extra: Vec<_> = file.difference(&built_in).collect();
        assert!(
            missing.is_empty(),
            "keys missing from emotiond.toml: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "emotiond.toml keys the configuration lacks: {extra:?}"
        );
        assert!(built_in.len() > 50, "{} keys", built_in.len());
    }

    #[test]
    fn empty_file_gives_defaults_and_a_device_id() {
        let c = Config::parse("", Path::new("x")).unwrap();
        assert!(!c.device_id.is_empty());
        assert_eq!(c.pipeline.window_s, 10.0);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("[camera]\nwidht = 3\n", Path::new("/etc/x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("widht") && e.contains("/etc/x.toml"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = Config::parse("[pipeline]\nwindow_s = \"ten\"\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("window_s"), "{e}");
    }

    #[test]
    fn every_invalid_value_is_reported_with_its_key() {
        let text = "device_id = \"a/b\"\n[camera]\nsource = \"files\"\nfps = 0\n[pipeline]\nwindow_s = 0.0\n[mqtt]\nport = 0\nencoding = \"json\"\n[models]\ndetector = \"builtin:nope\"\n";
        let e = Config::parse(text, Path::new("x")).unwrap_err().to_string();
        for k in [
            "`device_id`",
            "`camera.paths`",
            "`camera.fps`",
            "`pipeline.window_s`",
            "`mqtt.port`",
            "`models.detector`",
        ] {
            assert!(e.contains(k), "{k} missing from {e}");
        }
    }

    #[test]
    fn indicator_problems_are_named() {
        let text = "[indicators]\nbackend = \"sim\"\nstatus_led = 60\nbutton = 60\n";
        let e = Config::parse(text, Path::new("x")).unwrap_err().to_string();
        for k in [
            "`indicators.status_led`: must be a GPIO number",
            "`indicators.button`: must not be the status LED's pin",
            "`indicators.sim_dir`",
        ] {
            assert!(e.contains(k), "{k} in {e}");
        }
        let e = Config::parse(
            "[indicators]\nbackend = \"sim\"\nsim_dir = \"/tmp/p\"\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("set status_led and/or button"), "{e}");
        let rpi = Config::parse(
            "[indicators]\nbackend = \"rpi\"\nstatus_led = 17\n",
            Path::new("x"),
        );
        assert_eq!(rpi.is_ok(), cfg!(feature = "rpi"), "{rpi:?}");
        let ok =
            "[indicators]\nbackend = \"sim\"\nstatus_led = 17\nbutton = 27\nsim_dir = \"/tmp/p\"\n";
        assert!(Config::parse(ok, Path::new("x")).is_ok());
    }

    #[test]
    fn update_limits_are_checked() {
        let e = Config::parse(
            "[updates]\nmin_frames = 0\nmax_errors = 0\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        for k in ["`updates.min_frames`", "`updates.max_errors`"] {
            assert!(e.contains(k), "{k} in {e}");
        }
        let text = "[updates]\nmin_frames = 5\nmax_errors = 2\nrequire_signed_orders = false\n";
        let u = Config::parse(text, Path::new("x")).unwrap().updates;
        assert_eq!(
            (u.min_frames, u.max_errors, u.require_signed_orders),
            (5, 2, false)
        );
        assert!(
            UpdatesConfig::default().require_signed_orders,
            "secure by default"
        );
    }

    #[test]
    fn bad_enum_value_is_named() {
        let e = Config::parse("[mqtt]\nencoding = \"xml\"\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("xml") || e.contains("encoding"), "{e}");
    }

    #[test]
    fn tls_file_problems_are_named() {
        let e = Config::parse(
            "[mqtt]\nca_file = \"/etc/emotiond/ca.pem\"\ncert_file = \"/etc/emotiond/dev.pem\"\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        for k in [
            "`mqtt.ca_file`: is used only over TLS: set mqtt.tls = true",
            "`mqtt.cert_file`: is used only over TLS",
            "`mqtt.cert_file`: needs mqtt.key_file",
        ] {
            assert!(e.contains(k), "{k} in {e}");
        }
        let e = Config::parse(
            "[mqtt]\ntls = true\nkey_file = \"/etc/emotiond/dev.key\"\n",
            Path::new("x"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`mqtt.key_file`: needs mqtt.cert_file"), "{e}");
        // empty file keys are unset: the system CA bundle, no client certificate
        let c = Config::parse(
            "[mqtt]\ntls = true\nca_file = \"\"\ncert_file = \"\"\nkey_file = \"\"\nusername = \"u\"\npassword = \"p\"\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(MqttConfig::file(&c.mqtt.ca_file), None);
        let ok = "[mqtt]\ntls = true\nport = 8883\nca_file = \"/c/ca.pem\"\ncert_file = \"/c/d.pem\"\nkey_file = \"/c/d.key\"\n";
        assert!(Config::parse(ok, Path::new("x")).is_ok());
    }
}
