//! Cameras that fail are reopened, with a growing wait between attempts.
//!
//! A live camera can vanish at any moment: a USB webcam is unplugged, the
//! rpicam-vid child crashes, the driver resets. [`Reopening`] wraps any
//! device behind an [`Opener`] and turns each failure into one
//! [`Next::Failed`] (so the loop can log it and show the camera-error LED),
//! then waits and opens the device again. The wait starts at
//! `camera.retry_min_s`, doubles after every failure in a row, stops
//! growing at `camera.retry_max_s`, and starts over once the device has
//! delivered [`HEALTHY_AFTER_FRAMES`] frames.

use std::time::Duration;

use super::{CameraFrame, FrameSource, Next};

/// Frames a reopened device must deliver before its failures are forgiven:
/// a child that dies after every frame must not be restarted at full speed.
pub const HEALTHY_AFTER_FRAMES: u64 = 25;

/// The doubling wait between attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The wait before the next attempt, without using it up.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// The wait before this attempt; the one after will be twice as long.
    pub fn take(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Why one capture did not give a frame.
#[derive(Debug)]
pub enum CaptureError {
    /// This frame is unusable (corrupt JPEG, short buffer); the device is
    /// fine and the next frame may be good.
    Bad(String),
    /// The device is gone or broken: close it and open it again.
    Gone(String),
}

/// An open camera.
pub trait Capture {
    /// Blocks until the next frame.
    fn capture(&mut self) -> Result<CameraFrame, CaptureError>;
}

/// Opens a camera; called again after every failure.
pub trait Opener {
    type Device: Capture;
    /// What is being opened, for the log ("rpicam-vid", "/dev/video0").
    fn what(&self) -> String;
    fn open(&mut self) -> anyhow::Result<Self::Device>;
}

/// A frame source over a device that is reopened when it fails.
pub struct Reopening<O: Opener> {
    opener: O,
    device: Option<O::Device>,
    backoff: Backoff,
    /// The last attempt failed: wait before the next one.
    must_wait: bool,
    good_frames: u64,
    /// `std::thread::sleep`, replaced in tests.
    sleep: fn(Duration),
}

impl<O: Opener> Reopening<O> {
    pub fn new(opener: O, backoff: Backoff) -> Self {
        Self {
            opener,
            device: None,
            backoff,
            must_wait: false,
            good_frames: 0,
            sleep: std::thread::sleep,
        }
    }

    /// Replaces the sleep between attempts (tests count instead of wait).
    pub fn with_sleep(mut self, sleep: fn(Duration)) -> Self {
        self.sleep = sleep;
        self
    }

    fn failed(&mut self, why: String) -> Next {
        self.device = None;
        self.must_wait = true;
        self.good_frames = 0;
        Next::Failed {
            what: self.opener.what(),
            why,
            retry_in: self.backoff.peek(),
        }
    }
}

impl<O: Opener> FrameSource for Reopening<O> {
    fn next(&mut self) -> Next {
        if self.device.is_none() {
            if self.must_wait {
                (self.sleep)(self.backoff.take());
            }
            match self.opener.open() {
                Ok(device) => {
                    log::info!("camera {} opened", self.opener.what());
                    self.device = Some(device);
                }
                Err(e) => return self.failed(format!("{e:#}")),
            }
        }
        let Some(device) = self.device.as_mut() else {
            return self.failed("the camera is not open".into());
        };
        match device.capture() {
            Ok(frame) => {
                self.good_frames += 1;
                if self.good_frames == HEALTHY_AFTER_FRAMES {
                    self.backoff.reset();
                    self.must_wait = false;
                }
                Next::Frame(frame)
            }
            Err(CaptureError::Bad(why)) => Next::Skipped {
                what: format!("a frame from {}", self.opener.what()),
                why,
            },
            Err(CaptureError::Gone(why)) => self.failed(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::SystemTime;

    use super::*;
    use crate::camera::Pixels;
    use crate::frame::Frame;

    thread_local! {
        static SLEPT: RefCell<Vec<Duration>> = const { RefCell::new(Vec::new()) };
    }

    fn record_sleep(d: Duration) {
        SLEPT.with(|s| s.borrow_mut().push(d));
    }

    /// Each open gives a device with the next number of frames from
    /// `frames_per_open` (None: the open fails).
    struct FakeOpener {
        frames_per_open: Vec<Option<u32>>,
        opens: usize,
    }

    struct FakeDevice {
        left: u32,
    }

    impl Capture for FakeDevice {
        fn capture(&mut self) -> Result<CameraFrame, CaptureError> {
            if self.left == 0 {
                return Err(CaptureError::Gone("unplugged".into()));
            }
            self.left -= 1;
            let rgb = image::RgbImage::new(4, 4);
            Ok(CameraFrame {
                captured_at: SystemTime::now(),
                width: 4,
                height: 4,
                pixels: Pixels::Decoded(Frame::from_rgb(rgb)),
            })
        }
    }

    impl Opener for FakeOpener {
        type Device = FakeDevice;
        fn what(&self) -> String {
            "fake".into()
        }
        fn open(&mut self) -> anyhow::Result<FakeDevice> {
            let plan = self.frames_per_open.get(self.opens).copied().flatten();
            self.opens += 1;
            match plan {
                Some(left) => Ok(FakeDevice { left }),
                None => anyhow::bail!("no such device"),
            }
        }
    }

    fn kinds(src: &mut impl FrameSource, n: usize) -> String {
        (0..n)
            .map(|_| match src.next() {
                Next::Frame(_) => 'F',
                Next::Failed { .. } => 'x',
                Next::Skipped { .. } => 's',
                Next::End => 'E',
            })
            .collect()
    }

    #[test]
    fn a_vanished_device_is_reopened_after_a_doubling_wait() {
        SLEPT.with(|s| s.borrow_mut().clear());
        let opener = FakeOpener {
            frames_per_open: vec![Some(2), None, None, Some(3)],
            opens: 0,
        };
        let ms = Duration::from_millis;
        let mut src =
            Reopening::new(opener, Backoff::new(ms(100), ms(250))).with_sleep(record_sleep);
        assert_eq!(kinds(&mut src, 8), "FFxxxFFF");
        let slept = SLEPT.with(|s| s.borrow().clone());
        assert_eq!(slept, [ms(100), ms(200), ms(250)]);
    }

    #[test]
    fn a_device_that_works_for_a_while_is_forgiven_its_old_failures() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(b.take(), Duration::from_secs(1));
        assert_eq!(b.take(), Duration::from_secs(2));
        b.reset();
        assert_eq!(b.peek(), Duration::from_secs(1));

        SLEPT.with(|s| s.borrow_mut().clear());
        let n = HEALTHY_AFTER_FRAMES as u32;
        let opener = FakeOpener {
            frames_per_open: vec![Some(0), Some(n), Some(1)],
            opens: 0,
        };
        let mut src = Reopening::new(
            opener,
            Backoff::new(Duration::from_secs(1), Duration::from_secs(9)),
        )
        .with_sleep(record_sleep);
        let seen = kinds(&mut src, n as usize + 4);
        assert_eq!(seen.matches('F').count(), n as usize + 1, "{seen}");
        // After the healthy run the wait starts over at the minimum
        // instead of doubling to 2 s.
        let slept = SLEPT.with(|s| s.borrow().clone());
        assert_eq!(slept, [Duration::from_secs(1), Duration::from_secs(1)]);
    }
}
