//! The status LED and the feedback button: a thread that shows the device's state on the LED
//! (running / no broker / no camera, see [`emotiond_hal::indicator::Blink`]) and turns a button
//! press into a feedback request the pipeline answers with the current window's state on
//! `<prefix>/<device_id>/feedback`.
//!
//! Pins: Raspberry Pi GPIO through `rppal` (`backend = "rpi"`, a build with `--features rpi`),
//! or simulated pins (`backend = "sim"`) mirrored to files in `sim_dir`: the daemon writes
//! `status_led` ("1"/"0") and `state` (e.g. "no_broker") and reads `button` ("1" = pressed),
//! so a test, a demo or a technician without hardware sees and drives the same logic.

use crate::config::{IndicatorsConfig, PinBackend};
use crate::health::{BrokerUp, SourceHealth};
use crate::shutdown::Shutdown;
use embedded_hal::digital::{InputPin, OutputPin};
use emotiond_hal::indicator::{Button, CameraStatus, DeviceState, SimPin, StatusLed};
use emotiond_wire::SourceState;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(10);
/// Presses closer together than this count once (a held or hammered button).
const MIN_PRESS_INTERVAL_MS: u64 = 1000;

/// What the indicator thread reads (the camera's state, whether the broker is up, the stop
/// signal) and where it sends button presses (the pipeline).
#[derive(Clone, Default)]
pub struct Inputs {
    pub camera: SourceHealth,
    pub broker: BrokerUp,
    pub shutdown: Shutdown,
    pub presses: Option<Sender<()>>,
}

/// Start the indicator thread, or nothing when `backend = "none"`.
pub fn spawn(
    cfg: &IndicatorsConfig,
    broker_needed: bool,
    shared: Inputs,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    match cfg.backend {
        PinBackend::None => Ok(None),
        PinBackend::Sim => {
            let mut sim = SimFiles::create(&cfg.sim_dir)?;
            let led = cfg
                .status_led
                .map(|_| StatusLed::new(sim.led.clone(), cfg.led_active_low));
            let button = cfg
                .button
                .map(|_| Button::new(sim.button.clone(), false, cfg.debounce_ms));
            start(led, button, broker_needed, shared, move |state| {
                sim.sync(state)
            })
        }
        PinBackend::Rpi => rpi(cfg, broker_needed, shared),
    }
}

#[cfg(all(feature = "rpi", target_os = "linux"))]
fn rpi(
    cfg: &IndicatorsConfig,
    broker_needed: bool,
    shared: Inputs,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    use anyhow::Context;
    use emotiond_hal::indicator::rpi;
    let led = match cfg.status_led {
        Some(p) => Some(StatusLed::new(
            rpi::output(p).with_context(|| format!("indicators.status_led: GPIO {p}"))?,
            cfg.led_active_low,
        )),
        None => None,
    };
    let button = match cfg.button {
        Some(p) => Some(Button::new(
            rpi::input(p, cfg.button_active_low)
                .with_context(|| format!("indicators.button: GPIO {p}"))?,
            cfg.button_active_low,
            cfg.debounce_ms,
        )),
        None => None,
    };
    start(led, button, broker_needed, shared, |_| {})
}

#[cfg(not(all(feature = "rpi", target_os = "linux")))]
fn rpi(_: &IndicatorsConfig, _: bool, _: Inputs) -> anyhow::Result<Option<JoinHandle<()>>> {
    anyhow::bail!(
        "indicators.backend = \"rpi\": this build has no Raspberry Pi GPIO support (build with --features rpi)"
    )
}

fn start<L, B>(
    mut led: Option<StatusLed<L>>,
    mut button: Option<Button<B>>,
    broker_needed: bool,
    shared: Inputs,
    mut after_tick: impl FnMut(DeviceState) + Send + 'static,
) -> anyhow::Result<Option<JoinHandle<()>>>
where
    L: OutputPin + Send + 'static,
    B: InputPin + Send + 'static,
{
    let h = std::thread::Builder::new()
        .name("indicators".into())
        .spawn(move || {
            let t0 = Instant::now();
            let mut last_press: Option<u64> = None;
            let mut warned = false;
            loop {
                let now = t0.elapsed().as_millis() as u64;
                let stopping = shared.shutdown.is_triggered();
                let camera = match shared.camera.state() {
                    SourceState::Starting => CameraStatus::Starting,
                    SourceState::Ok => CameraStatus::Ok,
                    SourceState::Unavailable | SourceState::Ended => CameraStatus::Down,
                };
                let state =
                    DeviceState::from_health(camera, broker_needed, shared.broker.get(), stopping);
                if let Some(l) = &mut led {
                    if l.show(state, now).is_err() && !warned {
                        log::warn!("indicators: cannot drive the status LED");
                        warned = true;
                    }
                }
                if let Some(b) = &mut button {
                    match b.poll(now) {
                        Ok(true) => {
                            if last_press.is_none_or(|p| now - p >= MIN_PRESS_INTERVAL_MS) {
                                log::info!("feedback button pressed");
                                if let Some(p) = &shared.presses {
                                    let _ = p.send(());
                                }
                                last_press = Some(now);
                            }
                        }
                        Ok(false) => {}
                        Err(_) if !warned => {
                            log::warn!("indicators: cannot read the feedback button");
                            warned = true;
                        }
                        Err(_) => {}
                    }
                }
                after_tick(state);
                if stopping {
                    return;
                }
                std::thread::sleep(TICK);
            }
        })?;
    Ok(Some(h))
}

/// Simulated pins mirrored to files.
struct SimFiles {
    dir: PathBuf,
    led: SimPin,
    button: SimPin,
    written: Option<(bool, DeviceState)>,
}

impl SimFiles {
    fn create(dir: &Path) -> anyhow::Result<SimFiles> {
        use anyhow::Context;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("indicators.sim_dir {}", dir.display()))?;
        let f = SimFiles {
            dir: dir.to_path_buf(),
            led: SimPin::new(false),
            button: SimPin::new(false),
            written: None,
        };
        if !f.dir.join("button").exists() {
            write_atomic(&f.dir.join("button"), "0")
                .with_context(|| format!("indicators.sim_dir {}", dir.display()))?;
        }
        Ok(f)
    }

    fn sync(&mut self, state: DeviceState) {
        let pressed = std::fs::read_to_string(self.dir.join("button"))
            .map(|s| s.trim() == "1")
            .unwrap_or(false);
        self.button.set(pressed);
        let now = (self.led.get(), state);
        if self.written != Some(now) {
            let ok = write_atomic(&self.dir.join("status_led"), if now.0 { "1" } else { "0" })
                .and_then(|_| write_atomic(&self.dir.join("state"), state.as_str()));
            if ok.is_ok() {
                self.written = Some(now);
            }
        }
    }
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    crate::fsutil::write_atomic(
        path,
        format!("{text}\n").as_bytes(),
        crate::fsutil::Sync::Atomic,
    )
}
