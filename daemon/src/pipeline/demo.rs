//! The demo: the sample clip built into the binary, an in-process MQTT broker (rumqttd)
//! when none is given, and a subscriber that prints what the broker delivers.

use anyhow::{Context, Result};
use std::net::TcpListener;

/// Real photos (see `daemon/assets/SOURCES.md`) panned and zoomed into a Y4M clip.
pub static DEMO_CLIP: &[u8] = include_bytes!("../../assets/demo.y4m");

/// Start rumqttd on a free loopback port in a background thread; returns the port.
pub fn start_broker() -> Result<u16> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free loopback port for the demo broker")?
        .port();
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 64
max_outgoing_packet_count = 200
max_segment_size = 1048576
max_segment_count = 10
[v4.1]
name = "demo"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 262144
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let cfg: rumqttd::Config = toml::from_str(&text).context("demo broker config")?;
    let mut broker = rumqttd::Broker::new(cfg);
    std::thread::Builder::new()
        .name("demo-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                log::error!("demo broker stopped: {e}");
            }
        })
        .context("starting the demo broker")?;
    // Wait until it accepts connections.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    anyhow::bail!("demo broker did not start on 127.0.0.1:{port}")
}
