//! The appliance around `doorman run`: it tells systemd when doorman is
//! ready, feeds the watchdog while frames keep arriving, turns SIGTERM and
//! SIGINT into a flag the loop polls, drives the status LED, and says when
//! the retention sweep is due.
//!
//! Shutdown flows like this: a signal sets the stop flag; the loop sees it
//! after the frame in hand, closes and records the open visits, and
//! returns; `finish` tells systemd STOPPING=1 and gives the LED back. A
//! second signal while that runs ends the process at once (exit 1), so a
//! stuck shutdown can always be cut short from the keyboard.
//!
//! Everything here is a no-op outside systemd (no `$NOTIFY_SOCKET`, no
//! `$WATCHDOG_USEC`) and without an LED.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::config::{Config, LedConfig, LedKind};
use crate::led::{self, Led, State};
use crate::recognize::Decision;

/// How often the running loop deletes anonymous visitors past
/// `retention_days`: hourly keeps the promise to the day without touching
/// the card more than needed.
pub const RETENTION_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// The running appliance's side of `doorman run`.
pub struct Service {
    stop: Arc<AtomicBool>,
    led: Led,
    /// How often to ping the watchdog: half its timeout, as systemd advises.
    watchdog_every: Option<Duration>,
    last_ping: Option<Instant>,
    /// READY=1 was sent: the pipeline is loaded and frames are awaited.
    ready: bool,
    /// The camera failed and no frame has arrived since.
    camera_failed: bool,
    visit_open: bool,
    last_sweep: Option<Instant>,
}

impl Service {
    /// Installs the signal handlers and opens the LED (showing `starting`).
    /// An LED that cannot be opened is logged and left out: it is no reason
    /// to stop watching the door.
    pub fn start(config: &Config) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            // The order matters: the conditional exit must see the flag as it
            // was before this signal set it.
            let installed =
                signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
                    .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)));
            if let Err(e) = installed {
                log::warn!("cannot handle signal {signal}: {e}; stopping will not be graceful");
            }
        }

        let led = match Led::open(&config.led) {
            Ok(led) => led,
            Err(e) => {
                log::error!("status LED: {e:#}; carrying on without it");
                Led::none()
            }
        };
        if !led.is_none() {
            log::info!("status LED: {}; patterns:", led.describe());
            for line in led::table() {
                log::info!("  {line}");
            }
        }
        led.set(State::Starting);

        let watchdog_every = sd_notify::watchdog_enabled().map(|t| t / 2);
        if let Some(every) = watchdog_every {
            log::debug!("feeding the systemd watchdog every {every:?} while frames arrive");
        }
        Self {
            stop,
            led,
            watchdog_every,
            last_ping: None,
            ready: false,
            camera_failed: false,
            visit_open: false,
            last_sweep: None,
        }
    }

    /// The LED, for parts that report on it (the store's outbox).
    pub fn led(&self) -> &Led {
        &self.led
    }

    /// The pipeline is loaded and the camera open: tell systemd.
    pub fn ready(&mut self) {
        self.ready = true;
        notify(&[NotifyState::Ready, NotifyState::Status("watching the door")]);
        self.led.set(State::Idle);
    }

    /// Whether SIGTERM or SIGINT asked doorman to stop.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// A frame arrived: the watchdog is fed only from here, so a camera
    /// that hangs gets doorman restarted.
    pub fn frame_arrived(&mut self) {
        if self.camera_failed {
            self.camera_failed = false;
            self.led.set(self.resting_state());
            notify(&[NotifyState::Status("watching the door")]);
        }
        if let Some(every) = self.watchdog_every {
            if self.last_ping.is_none_or(|t| t.elapsed() >= every) {
                notify(&[NotifyState::Watchdog]);
                self.last_ping = Some(Instant::now());
            }
        }
    }

    /// The camera gives no frames (it is being reopened).
    pub fn camera_failed(&mut self, why: &str) {
        if !self.camera_failed {
            self.camera_failed = true;
            self.led.set(State::CameraError);
            notify(&[NotifyState::Status(&format!("camera error: {why}"))]);
        }
    }

    /// How many visits are open after a frame.
    pub fn visits_open(&mut self, open: usize) {
        let now_open = open > 0;
        if now_open != self.visit_open {
            self.visit_open = now_open;
            if !self.camera_failed {
                self.led.set(self.resting_state());
            }
        }
    }

    fn resting_state(&self) -> State {
        if self.visit_open {
            State::VisitInProgress
        } else {
            State::Idle
        }
    }

    /// A visit was decided.
    pub fn visit_decided(&mut self, decision: Decision) {
        match decision {
            Decision::Known => self.led.set(State::KnownVisitor),
            Decision::New => self.led.set(State::NewVisitor),
            // Uncertain is neither: the LED stays as it is.
            Decision::Uncertain | Decision::Unknown => {}
        }
    }

    /// Whether the retention sweep is due (at start, then hourly).
    pub fn sweep_due(&mut self) -> bool {
        if self
            .last_sweep
            .is_none_or(|t| t.elapsed() >= RETENTION_SWEEP_INTERVAL)
        {
            self.last_sweep = Some(Instant::now());
            return true;
        }
        false
    }

    /// The loop has ended. A failure before READY is a configuration that
    /// cannot work: its LED pattern stays on after exit (restarting will not
    /// help until somebody fixes it). Otherwise the LED goes dark and back to
    /// its own trigger.
    pub fn finish<T>(self, result: &anyhow::Result<T>) {
        notify(&[NotifyState::Stopping]);
        match result {
            Err(e) if !self.ready => {
                notify(&[NotifyState::Status(&format!("configuration error: {e:#}"))]);
                self.led.hand_over_configuration_error();
            }
            _ => self.led.stop(),
        }
    }
}

/// A config file that does not parse stops `run` before there is a
/// `Service`: still show the configuration error, on the LED that the file's
/// `[led]` table names, if that table alone makes sense.
pub fn configuration_failed(config_path: Option<&Path>) {
    let path = config_path.unwrap_or(Path::new(crate::config::DEFAULT_CONFIG_PATH));
    let Some(led) = salvage_led_config(path) else {
        return;
    };
    match Led::open(&led) {
        Ok(led) => led.hand_over_configuration_error(),
        Err(e) => log::debug!("status LED: {e:#}"),
    }
    notify(&[NotifyState::Status("configuration error")]);
}

/// The `[led]` table of a config file that as a whole did not parse.
fn salvage_led_config(path: &Path) -> Option<LedConfig> {
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let led: LedConfig = table.get("led")?.clone().try_into().ok()?;
    (led.kind != LedKind::None).then_some(led)
}

/// Sends a notification to systemd; outside systemd this does nothing, and
/// a failure is only worth a debug line (systemd will notice by itself).
fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        log::debug!("telling systemd {state:?}: {e}");
    }
}
