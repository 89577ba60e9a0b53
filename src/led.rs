//! The status LED: what doorman is doing, as a blink pattern an owner can
//! read from across the hall.
//!
//! `Led` is the one entry type. It owns a small timer thread that plays the
//! pattern of the current state on a backend: an LED under
//! `/sys/class/leds/NAME`, or a GPIO line through the character device. The
//! thread exists because the main loop blocks for a whole frame (camera
//! read, then detector and embedder: up to a second or more on a Pi), while a
//! 50 ms blip needs its edges on time; a tick from the loop could not keep
//! the patterns apart. The thread sleeps until the next edge or the next
//! state change, so it costs nothing between edges.
//!
//! `Blinker` is the pure state machine behind it: given a time it says what
//! the LED should show and when the next edge is due, so the patterns are
//! tested by their recorded edge sequence, never by sleeping.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config::{LedConfig, LedKind};

/// What doorman is doing, as far as the LED tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Loading the models and opening the camera and the store.
    Starting,
    /// Watching; nobody at the door.
    Idle,
    /// A face is being followed.
    VisitInProgress,
    /// A visit was just decided: somebody known (shown for a moment).
    KnownVisitor,
    /// A visit was just decided: somebody new (shown for a moment).
    NewVisitor,
    /// Idle, but writes wait in the outbox for the store to come back.
    Offline,
    /// The camera gives no frames; doorman keeps trying.
    CameraError,
    /// The configuration cannot work; doorman stopped and waits for a fix.
    ConfigurationError,
    /// doorman stopped; the LED is dark and given back to the kernel.
    Stopped,
}

/// One step of a blink cycle: lit or dark, for this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step {
    pub lit: bool,
    pub ms: u32,
}

const fn on(ms: u32) -> Step {
    Step { lit: true, ms }
}

const fn off(ms: u32) -> Step {
    Step { lit: false, ms }
}

/// How a state looks: a cycle of steps repeated while the state lasts. A
/// cycle of one step is steady.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    pub cycle: &'static [Step],
    /// What an owner sees, for the README table and the start-up log.
    pub looks: &'static str,
}

/// How long the known-visitor and new-visitor patterns play before the LED
/// goes back to what it showed.
pub const DECISION_SHOWN_MS: u32 = 3000;

/// The configuration-error cycle is the kernel `timer` trigger's default
/// (500 ms on, 500 ms off), so that the pattern doorman shows and the one
/// the kernel keeps blinking after doorman has exited are the same.
const KERNEL_TIMER_MS: u32 = 500;

/// The patterns. They differ in rhythm and in how long the LED is lit, and
/// none is a group of flashes followed by a longer pause: that is the shape
/// of every Raspberry Pi firmware and bootloader error code (so many long,
/// so many short flashes), which an owner could look up and misread.
pub fn pattern(state: State) -> Pattern {
    match state {
        State::Starting => Pattern {
            cycle: const { &[on(100), off(100)] },
            looks: "fast even flicker, 5 per second",
        },
        State::Idle => Pattern {
            cycle: const { &[on(50), off(2950)] },
            looks: "a short blip every 3 s",
        },
        State::VisitInProgress => Pattern {
            cycle: const { &[on(1000)] },
            looks: "steady on",
        },
        State::KnownVisitor => Pattern {
            cycle: const { &[on(1400), off(100)] },
            looks: "two long glows with a short dip (3 s)",
        },
        State::NewVisitor => Pattern {
            cycle: const { &[on(100), off(200)] },
            looks: "quick flashes, about 3 per second (3 s)",
        },
        State::Offline => Pattern {
            cycle: const { &[on(50), off(950)] },
            looks: "a short blip every second",
        },
        State::CameraError => Pattern {
            cycle: const { &[on(1000), off(1000)] },
            looks: "slow even blink: 1 s on, 1 s off",
        },
        State::ConfigurationError => Pattern {
            cycle: const { &[on(KERNEL_TIMER_MS), off(KERNEL_TIMER_MS)] },
            looks: "even blink: 0.5 s on, 0.5 s off; kept after doorman exits",
        },
        State::Stopped => Pattern {
            cycle: const { &[off(1000)] },
            looks: "dark; the LED's own trigger is restored",
        },
    }
}

/// Every state with its name as the README and the log spell it.
pub const STATES: [(State, &str); 9] = [
    (State::Starting, "starting"),
    (State::Idle, "idle"),
    (State::VisitInProgress, "visit in progress"),
    (State::KnownVisitor, "known visitor"),
    (State::NewVisitor, "new visitor"),
    (State::Offline, "offline (outbox not empty)"),
    (State::CameraError, "camera error"),
    (State::ConfigurationError, "configuration error"),
    (State::Stopped, "stopped"),
];

/// The table, one line per state, for the log at start.
pub fn table() -> Vec<String> {
    STATES
        .iter()
        .map(|(s, name)| format!("{name}: {}", pattern(*s).looks))
        .collect()
}

/// The state machine: which state shows, and which edge is next.
///
/// The base state is what doorman is doing; the offline flag and a recent
/// decision lie on top of it. Errors and start-up show over everything;
/// a fresh decision shows over a visit; a visit over offline; offline over
/// idle.
#[derive(Debug, Clone)]
pub struct Blinker {
    base: State,
    offline: bool,
    /// A decision being shown, and when it stops showing.
    decision: Option<(State, Duration)>,
    /// The state whose pattern is playing, and since when.
    shown: State,
    since: Duration,
    /// The level last asked of the LED.
    lit: Option<bool>,
}

impl Default for Blinker {
    fn default() -> Self {
        Self::new()
    }
}

impl Blinker {
    pub fn new() -> Self {
        Self {
            base: State::Starting,
            offline: false,
            decision: None,
            shown: State::Starting,
            since: Duration::ZERO,
            lit: None,
        }
    }

    /// Records a state change at `now`.
    pub fn set(&mut self, state: State, now: Duration) {
        match state {
            State::KnownVisitor | State::NewVisitor => {
                self.decision = Some((state, now + ms(DECISION_SHOWN_MS)));
            }
            State::Offline => self.offline = true,
            _ => self.base = state,
        }
    }

    /// Whether writes are waiting in the outbox.
    pub fn set_offline(&mut self, offline: bool) {
        self.offline = offline;
    }

    /// The state on show at `now`.
    pub fn shown_at(&self, now: Duration) -> State {
        match self.base {
            State::Idle | State::VisitInProgress | State::Offline => {
                if let Some((d, until)) = self.decision {
                    if now < until {
                        return d;
                    }
                }
                if self.base == State::VisitInProgress {
                    State::VisitInProgress
                } else if self.offline {
                    State::Offline
                } else {
                    State::Idle
                }
            }
            other => other,
        }
    }

    /// Brings the LED up to `now`: the level to write if it changed, and
    /// when to look again (`None`: nothing changes until the next event).
    pub fn tick(&mut self, now: Duration) -> (Option<bool>, Option<Duration>) {
        let shown = self.shown_at(now);
        if shown != self.shown {
            // A new pattern starts at the beginning of its cycle.
            self.shown = shown;
            self.since = now;
        }
        let cycle = pattern(shown).cycle;
        let (lit, edge) = level_at(cycle, now - self.since);
        let write = (self.lit != Some(lit)).then_some(lit);
        self.lit = Some(lit);

        let mut next = edge.map(|e| now + e);
        if let Some((_, until)) = self.decision {
            if until > now {
                next = Some(next.map_or(until, |n| n.min(until)));
            } else {
                self.decision = None;
            }
        }
        (write, next)
    }
}

/// The level of `cycle` at `elapsed` since it began, and the time to the
/// next edge (`None` for a steady cycle).
fn level_at(cycle: &[Step], elapsed: Duration) -> (bool, Option<Duration>) {
    if cycle.len() < 2 {
        return (cycle.first().is_some_and(|s| s.lit), None);
    }
    let period: u128 = cycle.iter().map(|s| u128::from(s.ms) * 1_000_000).sum();
    let mut t = elapsed.as_nanos() % period;
    for step in cycle {
        let len = u128::from(step.ms) * 1_000_000;
        if t < len {
            return (step.lit, Some(Duration::from_nanos((len - t) as u64)));
        }
        t -= len;
    }
    unreachable!("t is below the period, the sum of the steps")
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

/// Where the LED's level goes.
pub trait Backend: Send {
    fn set(&mut self, lit: bool) -> io::Result<()>;
    /// Leaves the LED blinking `on_ms`/`off_ms` after doorman has exited,
    /// when the hardware can do that by itself; otherwise leaves it lit.
    fn hand_over_blink(&mut self, on_ms: u32, off_ms: u32) -> io::Result<()>;
    /// Dark, and given back as it was found.
    fn restore(&mut self) -> io::Result<()>;
    fn describe(&self) -> String;
}

/// An LED under `/sys/class/leds/NAME`.
///
/// On open its trigger is set to `none` (otherwise the kernel keeps
/// blinking it for disk activity), and the trigger it had is written back by
/// `restore`.
pub struct SysfsLed {
    dir: PathBuf,
    /// The trigger in force when doorman took the LED.
    previous_trigger: Option<String>,
    /// Triggers the kernel offers for this LED.
    available: Vec<String>,
    /// What `brightness` takes for lit.
    max_brightness: String,
}

impl SysfsLed {
    pub fn open(root: &Path, name: &str) -> Result<Self> {
        let dir = root.join(name);
        if !dir.is_dir() {
            let known = list_leds(root);
            bail!(
                "no LED {} (led.name {name:?} under led.sysfs_root {}); this machine has: {}",
                dir.display(),
                root.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        let trigger = dir.join("trigger");
        let listing = fs::read_to_string(&trigger)
            .with_context(|| format!("reading {}", trigger.display()))?;
        let (available, previous_trigger) = parse_triggers(&listing);
        let max_brightness = fs::read_to_string(dir.join("max_brightness"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| s.parse::<u32>().is_ok_and(|v| v > 0))
            .unwrap_or_else(|| "1".into());
        let led = Self {
            dir,
            previous_trigger,
            available,
            max_brightness,
        };
        led.write("trigger", "none")?;
        Ok(led)
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.dir.join(file);
        fs::write(&path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
    }
}

/// The triggers a sysfs `trigger` file offers, and the one in brackets.
fn parse_triggers(listing: &str) -> (Vec<String>, Option<String>) {
    let mut current = None;
    let names = listing
        .split_whitespace()
        .map(
            |t| match t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                Some(name) => {
                    current = Some(name.to_string());
                    name.to_string()
                }
                None => t.to_string(),
            },
        )
        .collect();
    (names, current)
}

/// The LED names under `root`, sorted.
pub fn list_leds(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

impl Backend for SysfsLed {
    fn set(&mut self, lit: bool) -> io::Result<()> {
        let value = if lit {
            self.max_brightness.as_str()
        } else {
            "0"
        };
        fs::write(self.dir.join("brightness"), value)
    }

    fn hand_over_blink(&mut self, on_ms: u32, off_ms: u32) -> io::Result<()> {
        if !self.available.iter().any(|t| t == "timer") {
            return self.set(true);
        }
        fs::write(self.dir.join("trigger"), "timer")?;
        // The kernel makes delay_on and delay_off when the timer trigger is
        // set, owned by root; when they cannot be written the kernel's
        // default (500/500) is the same pattern anyway.
        let _ = fs::write(self.dir.join("delay_on"), on_ms.to_string());
        let _ = fs::write(self.dir.join("delay_off"), off_ms.to_string());
        Ok(())
    }

    fn restore(&mut self) -> io::Result<()> {
        self.set(false)?;
        let trigger = self.previous_trigger.as_deref().unwrap_or("none");
        fs::write(self.dir.join("trigger"), trigger)
    }

    fn describe(&self) -> String {
        format!("sysfs LED {}", self.dir.display())
    }
}

/// An LED on a GPIO line, requested through the character device.
///
/// Limitation: a released line keeps or loses its level as the chip's
/// driver decides, and no kernel timer blinks it after doorman exits, so
/// after a configuration error the LED is left lit, not blinking.
pub struct GpioLed {
    request: gpiocdev::Request,
    offset: u32,
    what: String,
}

impl GpioLed {
    pub fn open(line: &str, chip: Option<&Path>, active_low: bool) -> Result<Self> {
        let found = find_gpio_line(line, chip)?;
        let mut builder = gpiocdev::Request::builder();
        builder
            .with_consumer("doorman")
            .with_found_line(&found)
            .as_output(gpiocdev::line::Value::Inactive);
        if active_low {
            builder.as_active_low();
        }
        let request = builder.request().with_context(|| {
            format!(
                "requesting GPIO line {line:?} ({} offset {}); is another program using it?",
                found.chip.display(),
                found.info.offset
            )
        })?;
        Ok(Self {
            request,
            offset: found.info.offset,
            what: format!(
                "GPIO line {line} ({} offset {})",
                found.chip.display(),
                found.info.offset
            ),
        })
    }
}

/// Finds a GPIO line by name, on one chip or on all of them.
pub fn find_gpio_line(line: &str, chip: Option<&Path>) -> Result<gpiocdev::FoundLine> {
    match chip {
        Some(chip) => {
            let c = gpiocdev::Chip::from_path(chip)
                .with_context(|| format!("opening the GPIO chip {}", chip.display()))?;
            let info = c.find_line_info(line).with_context(|| {
                format!(
                    "the GPIO chip {} has no line named {line:?}",
                    chip.display()
                )
            })?;
            Ok(gpiocdev::FoundLine {
                chip: chip.to_path_buf(),
                info,
            })
        }
        None => gpiocdev::find_named_line(line).with_context(|| {
            format!(
                "no GPIO chip has a line named {line:?} (`gpioinfo` lists them; the service \
                 needs the gpio group to open /dev/gpiochip*)"
            )
        }),
    }
}

impl Backend for GpioLed {
    fn set(&mut self, lit: bool) -> io::Result<()> {
        let value = if lit {
            gpiocdev::line::Value::Active
        } else {
            gpiocdev::line::Value::Inactive
        };
        self.request
            .set_value(self.offset, value)
            .map_err(io::Error::other)
    }

    fn hand_over_blink(&mut self, _on_ms: u32, _off_ms: u32) -> io::Result<()> {
        self.set(true)
    }

    fn restore(&mut self) -> io::Result<()> {
        self.set(false)
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}

/// What the main loop asks of the LED thread.
enum Command {
    Set(State),
    Offline(bool),
    /// Dark, trigger restored, thread ends.
    Stop,
    /// Configuration error handed to the kernel, thread ends.
    HandOver,
}

/// The status LED, or nothing when none is configured (then every call is
/// a no-op and no file or device is touched).
pub struct Led {
    inner: Option<(Sender<Command>, JoinHandle<()>)>,
    what: String,
}

impl Led {
    /// No LED.
    pub fn none() -> Self {
        Self {
            inner: None,
            what: "none".into(),
        }
    }

    /// Opens the configured LED and starts showing `starting`.
    pub fn open(config: &LedConfig) -> Result<Self> {
        let backend: Box<dyn Backend> = match config.kind {
            LedKind::None => return Ok(Self::none()),
            LedKind::Sysfs => Box::new(SysfsLed::open(&config.sysfs_root, &config.name)?),
            LedKind::Gpio => Box::new(GpioLed::open(
                &config.line,
                config.chip.as_deref(),
                config.active_low,
            )?),
        };
        Self::with_backend(backend)
    }

    /// Plays the patterns on `backend` from a timer thread.
    pub fn with_backend(backend: Box<dyn Backend>) -> Result<Self> {
        let what = backend.describe();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("led".into())
            .spawn(move || play(backend, rx))
            .context("starting the LED thread")?;
        Ok(Self {
            inner: Some((tx, thread)),
            what,
        })
    }

    /// What drives the LED, for the log.
    pub fn describe(&self) -> &str {
        &self.what
    }

    pub fn is_none(&self) -> bool {
        self.inner.is_none()
    }

    /// Shows `state` (known/new visitor for a moment, then what was before).
    pub fn set(&self, state: State) {
        self.send(Command::Set(state));
    }

    /// Whether writes wait in the outbox; the store calls this whenever the
    /// outbox becomes empty or not.
    pub fn set_offline(&self, offline: bool) {
        self.send(Command::Offline(offline));
    }

    fn send(&self, c: Command) {
        if let Some((tx, _)) = &self.inner {
            // The thread only ends through stop or hand-over, which take self.
            let _ = tx.send(c);
        }
    }

    /// Dark, the LED's previous trigger restored; waits for the thread.
    pub fn stop(mut self) {
        self.finish(Command::Stop);
    }

    /// Shows the configuration error and leaves it showing after doorman
    /// exits (the kernel's timer trigger blinks a sysfs LED by itself).
    pub fn hand_over_configuration_error(mut self) {
        self.set(State::ConfigurationError);
        self.finish(Command::HandOver);
    }

    fn finish(&mut self, last: Command) {
        if let Some((tx, thread)) = self.inner.take() {
            let _ = tx.send(last);
            if thread.join().is_err() {
                log::error!("the LED thread panicked");
            }
        }
    }
}

impl Drop for Led {
    fn drop(&mut self) {
        self.finish(Command::Stop);
    }
}

/// The LED thread: plays the blinker on the backend until told to stop.
fn play(mut backend: Box<dyn Backend>, rx: Receiver<Command>) {
    let start = Instant::now();
    let mut blinker = Blinker::new();
    let mut warned = false;
    let last = loop {
        let now = start.elapsed();
        let (write, next) = blinker.tick(now);
        if let Some(lit) = write {
            if let Err(e) = backend.set(lit) {
                // One warning, not one per edge: a missing LED is no reason
                // to flood the journal or to stop watching the door.
                if !warned {
                    log::warn!("status LED ({}): {e}", backend.describe());
                    warned = true;
                }
            }
        }
        let wait = next.map_or(Duration::from_secs(3600), |n| n.saturating_sub(now));
        match rx.recv_timeout(wait) {
            Ok(Command::Set(state)) => blinker.set(state, start.elapsed()),
            Ok(Command::Offline(offline)) => blinker.set_offline(offline),
            Ok(last @ (Command::Stop | Command::HandOver)) => break last,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break Command::Stop,
        }
    };
    let result = match last {
        Command::HandOver => {
            let cycle = pattern(State::ConfigurationError).cycle;
            backend.hand_over_blink(cycle[0].ms, cycle[1].ms)
        }
        _ => backend.restore(),
    };
    if let Err(e) = result {
        log::warn!("status LED ({}): {e}", backend.describe());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `blinker` from `from` to `to` on a fake clock, jumping from edge
    /// to edge, and records (ms, lit) for every write.
    fn record(blinker: &mut Blinker, from: u64, to: u64) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        let mut t = Duration::from_millis(from);
        while t <= Duration::from_millis(to) {
            let (write, next) = blinker.tick(t);
            if let Some(lit) = write {
                out.push((t.as_millis() as u64, lit));
            }
            match next {
                Some(n) => t = n,
                None => break,
            }
        }
        out
    }

    #[test]
    fn idle_is_a_short_blip_every_three_seconds() {
        let mut b = Blinker::new();
        b.set(State::Idle, Duration::ZERO);
        assert_eq!(
            record(&mut b, 0, 6100),
            [
                (0, true),
                (50, false),
                (3000, true),
                (3050, false),
                (6000, true),
                (6050, false)
            ]
        );
    }

    #[test]
    fn a_known_visitor_shows_for_three_seconds_then_idle_resumes() {
        let mut b = Blinker::new();
        b.set(State::Idle, Duration::ZERO);
        b.set(State::KnownVisitor, Duration::ZERO);
        assert_eq!(
            record(&mut b, 0, 3100),
            [
                (0, true),
                (1400, false),
                (1500, true),
                (2900, false),
                // The decision is over: idle starts its cycle afresh.
                (3000, true),
                (3050, false)
            ]
        );
        assert_eq!(b.shown_at(Duration::from_secs(4)), State::Idle);
    }

    #[test]
    fn a_visit_shows_steady_and_offline_shows_only_when_nothing_else_does() {
        let mut b = Blinker::new();
        b.set(State::Idle, Duration::ZERO);
        b.set_offline(true);
        assert_eq!(b.shown_at(Duration::ZERO), State::Offline);
        assert_eq!(
            record(&mut b, 0, 2100),
            [
                (0, true),
                (50, false),
                (1000, true),
                (1050, false),
                (2000, true),
                (2050, false)
            ]
        );
        b.set(State::VisitInProgress, Duration::from_millis(2100));
        assert_eq!(record(&mut b, 2100, 9000), [(2100, true)]);
        b.set(State::Idle, Duration::from_millis(9000));
        b.set(State::NewVisitor, Duration::from_millis(9000));
        assert_eq!(b.shown_at(Duration::from_millis(9500)), State::NewVisitor);
        assert_eq!(b.shown_at(Duration::from_millis(12000)), State::Offline);
        b.set_offline(false);
        assert_eq!(b.shown_at(Duration::from_millis(12000)), State::Idle);
    }

    #[test]
    fn errors_show_over_visits_and_decisions() {
        let mut b = Blinker::new();
        b.set(State::Idle, Duration::ZERO);
        b.set(State::NewVisitor, Duration::ZERO);
        b.set(State::CameraError, Duration::from_millis(10));
        assert_eq!(b.shown_at(Duration::from_millis(20)), State::CameraError);
        assert_eq!(
            record(&mut b, 20, 4100),
            [
                (20, true),
                (1020, false),
                (2020, true),
                (3020, false),
                (4020, true)
            ]
        );
        b.set(State::ConfigurationError, Duration::from_millis(4100));
        assert_eq!(
            record(&mut b, 4100, 5200),
            // Lit already at 4100: the first write is the first edge.
            [(4600, false), (5100, true)]
        );
    }

    #[test]
    fn every_state_has_its_own_pattern_and_none_looks_like_a_firmware_code() {
        let mut seen = std::collections::HashSet::new();
        for (state, name) in STATES {
            let p = pattern(state);
            assert!(seen.insert(p.cycle), "{name} shares its pattern");
            // A firmware code is two or more flashes, then a longer pause.
            let flashes = p.cycle.iter().filter(|s| s.lit).count();
            assert!(flashes <= 1, "{name}: {flashes} flashes per cycle");
            assert!(p.cycle.iter().all(|s| s.ms > 0), "{name}");
        }
        assert_eq!(table().len(), 9);
    }

    /// A fake `/sys/class/leds` with one LED, as the kernel lays it out.
    fn fake_sysfs(trigger: &str) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ACT");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("trigger"), trigger).unwrap();
        fs::write(dir.join("brightness"), "0").unwrap();
        fs::write(dir.join("max_brightness"), "255\n").unwrap();
        (root, dir)
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    #[test]
    fn the_sysfs_led_takes_the_trigger_writes_each_edge_and_gives_the_trigger_back() {
        let (root, dir) = fake_sysfs("none timer [mmc0] heartbeat\n");
        let mut led = SysfsLed::open(root.path(), "ACT").unwrap();
        assert_eq!(read(&dir.join("trigger")), "none");

        let mut b = Blinker::new();
        b.set(State::Idle, Duration::ZERO);
        let mut t = Duration::ZERO;
        let mut seen = Vec::new();
        while t <= Duration::from_millis(3100) {
            let (write, next) = b.tick(t);
            if let Some(lit) = write {
                led.set(lit).unwrap();
                seen.push((t.as_millis() as u64, read(&dir.join("brightness"))));
            }
            t = next.unwrap();
        }
        assert_eq!(
            seen,
            [
                (0, "255".to_string()),
                (50, "0".to_string()),
                (3000, "255".to_string()),
                (3050, "0".to_string())
            ]
        );

        led.set(true).unwrap();
        led.restore().unwrap();
        assert_eq!(read(&dir.join("brightness")), "0");
        assert_eq!(read(&dir.join("trigger")), "mmc0");
    }

    #[test]
    fn a_configuration_error_is_left_to_the_kernel_timer() {
        let (root, dir) = fake_sysfs("none [timer] heartbeat");
        let led = Led::with_backend(Box::new(SysfsLed::open(root.path(), "ACT").unwrap())).unwrap();
        led.hand_over_configuration_error();
        assert_eq!(read(&dir.join("trigger")), "timer");
        assert_eq!(read(&dir.join("delay_on")), "500");
        assert_eq!(read(&dir.join("delay_off")), "500");
    }

    #[test]
    fn stopping_the_led_leaves_it_dark_with_its_trigger_restored() {
        let (root, dir) = fake_sysfs("none [heartbeat] mmc0");
        let led = Led::open(&LedConfig {
            kind: LedKind::Sysfs,
            sysfs_root: root.path().to_path_buf(),
            ..LedConfig::default()
        })
        .unwrap();
        led.set(State::VisitInProgress);
        led.stop();
        assert_eq!(read(&dir.join("brightness")), "0");
        assert_eq!(read(&dir.join("trigger")), "heartbeat");
    }

    #[test]
    fn a_missing_led_is_an_error_listing_the_ones_there_are() {
        let (root, _) = fake_sysfs("none");
        let err = SysfsLed::open(root.path(), "PWR")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("PWR") && err.contains("ACT"), "{err}");
    }

    #[test]
    fn no_led_configured_means_no_thread_and_no_calls() {
        let led = Led::open(&LedConfig::default()).unwrap();
        assert!(led.is_none());
        led.set(State::Idle);
        led.set_offline(true);
        led.stop();
    }
}
