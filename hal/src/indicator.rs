//! Status LED and feedback button behind the `embedded-hal` 1.0 digital traits.
//!
//! The logic (which blink pattern a state shows, debouncing a button) is pure and driven by a
//! time in milliseconds passed in; the pins are any `OutputPin` / `InputPin`: GPIO through
//! `rppal` on a Raspberry Pi (feature `rpi`), [`SimPin`]s elsewhere and in tests.

use embedded_hal::digital::{ErrorType, InputPin, OutputPin};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the status LED tells a technician at a glance, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// No frames: the camera is missing, vanished or ended.
    NoCamera,
    /// Frames flow but the MQTT broker is not connected (summaries queue on disk).
    NoBroker,
    /// Models loading, camera opening.
    Starting,
    /// Frames in, summaries out.
    Running,
    /// The daemon is stopping or stopped.
    Off,
}

/// What the LED needs to know of the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraStatus {
    /// Not opened yet.
    Starting,
    /// Frames flow.
    Ok,
    /// Missing, unplugged, failing or ended.
    Down,
}

impl DeviceState {
    /// The state from what the daemon knows: the camera, whether a broker is in use and
    /// connected, and whether it is stopping.
    pub fn from_health(
        camera: CameraStatus,
        broker_needed: bool,
        broker_up: bool,
        stopping: bool,
    ) -> Self {
        if stopping {
            DeviceState::Off
        } else if camera == CameraStatus::Starting {
            DeviceState::Starting
        } else if camera != CameraStatus::Ok {
            DeviceState::NoCamera
        } else if broker_needed && !broker_up {
            DeviceState::NoBroker
        } else {
            DeviceState::Running
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::NoCamera => "no_camera",
            DeviceState::NoBroker => "no_broker",
            DeviceState::Starting => "starting",
            DeviceState::Running => "running",
            DeviceState::Off => "off",
        }
    }
}

/// A repeating blink: lit for `on_ms` of every `period_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blink {
    pub period_ms: u32,
    pub on_ms: u32,
}

impl Blink {
    /// The documented patterns: running = steady on, no broker = slow blink (1 Hz, half on),
    /// no camera = fast blink (4 Hz), starting = short flash every second, off = dark.
    pub fn for_state(s: DeviceState) -> Blink {
        match s {
            DeviceState::Running => Blink {
                period_ms: 1000,
                on_ms: 1000,
            },
            DeviceState::NoBroker => Blink {
                period_ms: 1000,
                on_ms: 500,
            },
            DeviceState::NoCamera => Blink {
                period_ms: 250,
                on_ms: 125,
            },
            DeviceState::Starting => Blink {
                period_ms: 1000,
                on_ms: 100,
            },
            DeviceState::Off => Blink {
                period_ms: 1000,
                on_ms: 0,
            },
        }
    }

    /// Whether the LED is lit at `t_ms` (from any fixed origin).
    pub fn lit_at(&self, t_ms: u64) -> bool {
        let p = u64::from(self.period_ms.max(1));
        (t_ms % p) < u64::from(self.on_ms)
    }
}

/// A status LED on any output pin; `active_low` for LEDs wired to the supply.
pub struct StatusLed<P> {
    pin: P,
    active_low: bool,
    state: DeviceState,
    since_ms: u64,
    lit: Option<bool>,
}

impl<P: OutputPin> StatusLed<P> {
    pub fn new(pin: P, active_low: bool) -> Self {
        StatusLed {
            pin,
            active_low,
            state: DeviceState::Starting,
            since_ms: 0,
            lit: None,
        }
    }

    /// Show `state` at time `now_ms`; a pattern restarts (lit first) when the state changes.
    /// The pin is written only when its level changes. Returns whether the LED is lit.
    pub fn show(&mut self, state: DeviceState, now_ms: u64) -> Result<bool, P::Error> {
        if state != self.state {
            self.state = state;
            self.since_ms = now_ms;
        }
        let lit = Blink::for_state(state).lit_at(now_ms.saturating_sub(self.since_ms));
        if self.lit != Some(lit) {
            if lit != self.active_low {
                self.pin.set_high()?;
            } else {
                self.pin.set_low()?;
            }
            self.lit = Some(lit);
        }
        Ok(lit)
    }

    pub fn state(&self) -> DeviceState {
        self.state
    }
}

/// Debounces a raw button level: a change counts once the level has held for `debounce_ms`.
#[derive(Debug, Clone)]
pub struct Debouncer {
    debounce_ms: u64,
    stable: bool,
    raw: bool,
    raw_since_ms: u64,
}

impl Debouncer {
    pub fn new(debounce_ms: u64) -> Self {
        Debouncer {
            debounce_ms,
            stable: false,
            raw: false,
            raw_since_ms: 0,
        }
    }

    /// Feed the raw pressed/released level at `now_ms`; returns `true` once per press (on
    /// the debounced release → press edge).
    pub fn update(&mut self, pressed: bool, now_ms: u64) -> bool {
        if pressed != self.raw {
            self.raw = pressed;
            self.raw_since_ms = now_ms;
        }
        if self.raw != self.stable && now_ms.saturating_sub(self.raw_since_ms) >= self.debounce_ms {
            self.stable = self.raw;
            return self.stable;
        }
        false
    }

    pub fn pressed(&self) -> bool {
        self.stable
    }
}

/// A feedback button on any input pin; `active_low` for a button to ground with a pull-up.
pub struct Button<P> {
    pin: P,
    active_low: bool,
    debouncer: Debouncer,
}

impl<P: InputPin> Button<P> {
    pub fn new(pin: P, active_low: bool, debounce_ms: u64) -> Self {
        Button {
            pin,
            active_low,
            debouncer: Debouncer::new(debounce_ms),
        }
    }

    /// Sample the pin at `now_ms`; `Ok(true)` once per debounced press.
    pub fn poll(&mut self, now_ms: u64) -> Result<bool, P::Error> {
        let high = self.pin.is_high()?;
        Ok(self.debouncer.update(high != self.active_low, now_ms))
    }
}

/// A simulated pin: a shared level that the daemon and a test (or a demo) both see. Its
/// clones share the level. Used where no GPIO exists; never on a board's real pins.
#[derive(Debug, Clone, Default)]
pub struct SimPin(Arc<AtomicBool>);

impl SimPin {
    pub fn new(high: bool) -> Self {
        SimPin(Arc::new(AtomicBool::new(high)))
    }
    pub fn set(&self, high: bool) {
        self.0.store(high, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl ErrorType for SimPin {
    type Error = Infallible;
}

impl OutputPin for SimPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.set(false);
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.set(true);
        Ok(())
    }
}

impl InputPin for SimPin {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.get())
    }
    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.get())
    }
}

/// Raspberry Pi GPIO through `rppal` (BCM pin numbers); needs `/dev/gpiomem` (group `gpio`).
#[cfg(all(feature = "rpi", target_os = "linux"))]
pub mod rpi {
    pub use rppal::gpio::{Error, InputPin, OutputPin};

    /// An output pin for an LED, initially off.
    pub fn output(bcm: u8) -> Result<OutputPin, Error> {
        Ok(rppal::gpio::Gpio::new()?.get(bcm)?.into_output_low())
    }

    /// An input pin for a button; `pull_up` for a button wired to ground.
    pub fn input(bcm: u8, pull_up: bool) -> Result<InputPin, Error> {
        let pin = rppal::gpio::Gpio::new()?.get(bcm)?;
        Ok(if pull_up {
            pin.into_input_pullup()
        } else {
            pin.into_input_pulldown()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_priority_camera_then_broker() {
        use CameraStatus as C;
        use DeviceState::*;
        assert_eq!(DeviceState::from_health(C::Ok, true, true, false), Running);
        assert_eq!(
            DeviceState::from_health(C::Ok, true, false, false),
            NoBroker
        );
        assert_eq!(
            DeviceState::from_health(C::Ok, false, false, false),
            Running
        );
        // unavailable and ended cameras are both down
        assert_eq!(
            DeviceState::from_health(C::Down, true, false, false),
            NoCamera
        );
        assert_eq!(
            DeviceState::from_health(C::Down, true, true, false),
            NoCamera
        );
        assert_eq!(
            DeviceState::from_health(C::Starting, true, false, false),
            Starting
        );
        assert_eq!(DeviceState::from_health(C::Ok, true, true, true), Off);
    }

    /// The LED's level sampled every 25 ms over one second, as a string of 0/1.
    fn trace(state: DeviceState, active_low: bool) -> (String, SimPin) {
        let pin = SimPin::new(false);
        let mut led = StatusLed::new(pin.clone(), active_low);
        let mut s = String::new();
        for t in (0..1000).step_by(25) {
            let lit = led.show(state, 5_000 + t).unwrap_or(false);
            assert_eq!(pin.get(), lit != active_low, "pin level at {t} ms");
            s.push(if lit { '1' } else { '0' });
        }
        (s, pin)
    }

    #[test]
    fn patterns_on_a_simulated_pin() {
        let (run, _) = trace(DeviceState::Running, false);
        assert!(run.chars().all(|c| c == '1'), "{run}");
        let (off, pin) = trace(DeviceState::Off, false);
        assert!(off.chars().all(|c| c == '0') && !pin.get(), "{off}");
        let (slow, _) = trace(DeviceState::NoBroker, false);
        assert_eq!(slow, format!("{}{}", "1".repeat(20), "0".repeat(20)));
        let (fast, _) = trace(DeviceState::NoCamera, false);
        assert_eq!(fast, "11111000001111100000".repeat(2));
        let (start, _) = trace(DeviceState::Starting, false);
        assert_eq!(start.matches('1').count(), 4);
        // active-low: the same pattern, inverted on the pin (checked inside trace)
        let (slow_low, _) = trace(DeviceState::NoBroker, true);
        assert_eq!(slow_low, slow);
    }

    #[test]
    fn a_state_change_restarts_the_pattern_lit() {
        let pin = SimPin::new(false);
        let mut led = StatusLed::new(pin.clone(), false);
        assert_eq!(led.show(DeviceState::NoBroker, 0), Ok(true));
        assert_eq!(led.show(DeviceState::NoBroker, 600), Ok(false));
        assert_eq!(led.show(DeviceState::NoCamera, 610), Ok(true));
        assert_eq!(led.state(), DeviceState::NoCamera);
        assert_eq!(led.show(DeviceState::NoCamera, 610 + 130), Ok(false));
        assert!(!pin.get());
    }

    #[test]
    fn debouncer_ignores_bounces_and_reports_each_press_once() {
        let mut d = Debouncer::new(30);
        // bouncing contact: toggles every 5 ms for 20 ms, then held
        let mut presses = 0;
        for (t, level) in [(0, true), (5, false), (10, true), (15, false), (20, true)] {
            presses += d.update(level, t) as u32;
        }
        for t in (25..200).step_by(5) {
            presses += d.update(true, t) as u32;
        }
        assert_eq!(presses, 1);
        assert!(d.pressed());
        // release (bouncing), then a second press
        for t in (200..300).step_by(5) {
            presses += d.update(t % 10 == 0 && t < 215, t) as u32;
        }
        assert!(!d.pressed());
        for t in (300..400).step_by(5) {
            presses += d.update(true, t) as u32;
        }
        assert_eq!(presses, 2);
        // a 10 ms glitch is not a press
        let mut g = Debouncer::new(30);
        let glitch: u32 = (0..100)
            .step_by(5)
            .map(|t| g.update((10..20).contains(&t), t) as u32)
            .sum();
        assert_eq!(glitch, 0);
    }

    #[test]
    fn button_on_a_simulated_pin_active_low() {
        let pin = SimPin::new(true); // pulled up: released
        let mut b = Button::new(pin.clone(), true, 20);
        assert_eq!(b.poll(0), Ok(false));
        assert_eq!(b.poll(50), Ok(false));
        pin.set(false); // pressed to ground
        assert_eq!(b.poll(60), Ok(false));
        assert_eq!(b.poll(85), Ok(true));
        assert_eq!(b.poll(120), Ok(false));
        pin.set(true);
        assert_eq!(b.poll(130), Ok(false));
        assert_eq!(b.poll(160), Ok(false));
        pin.set(false);
        assert_eq!(b.poll(170), Ok(false));
        assert_eq!(b.poll(200), Ok(true));
    }
}
