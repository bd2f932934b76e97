//! The `[api]` table: the on-device HTTP API and live page (off by default, local by
//! default; any other address needs a token), and its validation.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub enabled: bool,
    /// Address and port to listen on (`host:port`). Loopback by default: nothing leaves
    /// the device unless this is changed (and then `token_file` is required).
    pub listen: String,
    /// A file holding the bearer token every request must carry (`Authorization: Bearer
    /// <token>` or `?token=<token>`); empty: no token (allowed on loopback only).
    pub token_file: PathBuf,
    /// Largest image `POST /v1/analyze` accepts, in bytes.
    pub max_body_bytes: usize,
    /// Images waiting for `POST /v1/analyze` beyond the one being analysed; more get 503.
    pub analyze_queue: usize,
    /// The technician's camera preview (`GET /v1/preview.jpg`, boxes on the page): camera
    /// images over HTTP. Loopback only.
    pub preview: bool,
    /// Most live events per second on `GET /v1/live` (frames in between are not sent);
    /// 0: one per analysed frame.
    pub live_max_fps: f32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: false,
            listen: "127.0.0.1:8081".into(),
            token_file: PathBuf::new(),
            max_body_bytes: 8 * 1024 * 1024,
            analyze_queue: 2,
            preview: false,
            live_max_fps: 30.0,
        }
    }
}

impl ApiConfig {
    /// The listen address, when it parses.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    /// Problems with this table, each with its key path (checked whether or not enabled).
    pub fn problems(&self, bad: &mut impl FnMut(&str, &str)) {
        let addr = self.addr();
        if addr.is_none() {
            bad(
                "api.listen",
                "must be an address and port such as 127.0.0.1:8081 or [::1]:8081",
            );
        }
        let loopback = addr.is_some_and(|a| a.ip().is_loopback());
        if self.enabled && addr.is_some() && !loopback && self.token_file.as_os_str().is_empty() {
            bad(
                "api.token_file",
                "is required when api.listen is not a loopback address (anyone on the network could read the live stream)",
            );
        }
        if self.preview && addr.is_some() && !loopback {
            bad(
                "api.preview",
                "camera images are served on a loopback api.listen only",
            );
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > 64 * 1024 * 1024 {
            bad("api.max_body_bytes", "must be within 1024..=67108864");
        }
        if self.analyze_queue > 64 {
            bad("api.analyze_queue", "must be within 0..=64");
        }
        if !(0.0..=1000.0).contains(&self.live_max_fps) {
            bad(
                "api.live_max_fps",
                "must be within 0..=1000 (0: an event per analysed frame)",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("x")).unwrap_err().to_string()
    }

    #[test]
    fn the_api_is_off_and_local_by_default() {
        let c = Config::parse("", Path::new("x")).unwrap();
        assert!(!c.api.enabled && !c.api.preview);
        assert!(c.api.addr().unwrap().ip().is_loopback());
        assert!(c.api.token_file.as_os_str().is_empty());
    }

    #[test]
    fn another_address_needs_a_token_and_no_preview() {
        let e = err("[api]\nenabled = true\nlisten = \"0.0.0.0:8081\"\npreview = true\n");
        assert!(e.contains("`api.token_file`: is required"), "{e}");
        assert!(e.contains("`api.preview`: camera images"), "{e}");
        let ok = "[api]\nenabled = true\nlisten = \"0.0.0.0:8081\"\ntoken_file = \"/etc/emotiond/api-token\"\n";
        assert!(Config::parse(ok, Path::new("x")).is_ok());
        // loopback, v4 or v6: no token needed; off: not checked
        for ok in [
            "[api]\nenabled = true\nlisten = \"127.0.0.1:9\"\npreview = true\n",
            "[api]\nenabled = true\nlisten = \"[::1]:9\"\n",
            "[api]\nlisten = \"0.0.0.0:8081\"\n",
        ] {
            assert!(Config::parse(ok, Path::new("x")).is_ok(), "{ok}");
        }
    }

    #[test]
    fn bad_api_values_are_named() {
        let e = err(
            "[api]\nlisten = \"localhost\"\nmax_body_bytes = 10\nanalyze_queue = 100\nlive_max_fps = -1\n",
        );
        for k in [
            "`api.listen`",
            "`api.max_body_bytes`",
            "`api.analyze_queue`",
            "`api.live_max_fps`",
        ] {
            assert!(e.contains(k), "{k} in {e}");
        }
        assert!(err("[api]\nport = 1\n").contains("port"));
    }
}
