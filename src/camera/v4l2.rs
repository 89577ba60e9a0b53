//! USB webcams and other V4L2 capture nodes, through rscam (built with its
//! `no_wrapper` feature: plain ioctls, no libv4l2 on the Pi or the build
//! machine).
//!
//! Two pixel formats: `YUYV` (raw, luma read directly, no decoding for the
//! motion gate) and `MJPG` (what most webcams need above 640×480, decoded
//! per frame). A device that disappears (unplugged, reset) makes capture
//! fail; [`super::reopen::Reopening`] opens it again with back-off.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{bail, Context};

use super::reopen::{Capture, CaptureError, Opener};
use super::{CameraFrame, Pixels};
use crate::config::{CameraConfig, PixelFormat};
use crate::frame::Frame;

/// Buffers queued in the driver: two keep latency at one frame or less.
const DRIVER_BUFFERS: u32 = 2;

/// The two formats doorman reads from V4L2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V4l2Format {
    Yuyv,
    Mjpeg,
}

impl V4l2Format {
    /// From the config; `auto` means MJPEG, which every UVC webcam offers
    /// at its larger sizes.
    pub fn from_config(f: PixelFormat) -> anyhow::Result<Self> {
        match f {
            PixelFormat::Auto | PixelFormat::Mjpeg => Ok(Self::Mjpeg),
            PixelFormat::Yuyv => Ok(Self::Yuyv),
            other => bail!("camera.format {other:?} is not a V4L2 capture format (yuyv, mjpeg)"),
        }
    }

    pub fn fourcc(self) -> &'static [u8; 4] {
        match self {
            Self::Yuyv => b"YUYV",
            Self::Mjpeg => b"MJPG",
        }
    }
}

/// A frame rate as V4L2's frame interval (seconds per frame as a fraction
/// in lowest terms): 10 fps is 1/10, 7.5 fps is 2/15.
pub fn frame_interval(fps: f32) -> (u32, u32) {
    let (mut num, mut den) = (1000u32, (fps * 1000.0).round().max(1.0) as u32);
    let g = gcd(num, den);
    num /= g;
    den /= g;
    (num, den)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A YUYV buffer as a camera frame; rows may be padded (the stride is taken
/// from the buffer's length).
pub fn yuyv_frame(
    bytes: &[u8],
    width: u32,
    height: u32,
    at: SystemTime,
) -> Result<CameraFrame, CaptureError> {
    let row = width as usize * 2;
    let stride = bytes.len() / height.max(1) as usize;
    if stride < row {
        return Err(CaptureError::Bad(format!(
            "a YUYV frame of {} bytes is too short for {width}×{height}",
            bytes.len()
        )));
    }
    Ok(CameraFrame {
        captured_at: at,
        width,
        height,
        pixels: Pixels::Yuyv {
            data: bytes[..stride * height as usize].to_vec(),
            stride,
        },
    })
}

/// Opens the capture node and starts streaming.
pub struct V4l2Opener {
    device: PathBuf,
    width: u32,
    height: u32,
    fps: f32,
    format: V4l2Format,
    max_image_px: u32,
}

impl V4l2Opener {
    pub fn new(c: &CameraConfig, max_image_px: u32) -> anyhow::Result<Self> {
        Ok(Self {
            device: c.device.clone(),
            width: c.width_px,
            height: c.height_px,
            fps: c.fps,
            format: V4l2Format::from_config(c.format)?,
            max_image_px,
        })
    }
}

impl Opener for V4l2Opener {
    type Device = V4l2Camera;

    fn what(&self) -> String {
        self.device.display().to_string()
    }

    fn open(&mut self) -> anyhow::Result<V4l2Camera> {
        let path = self
            .device
            .to_str()
            .with_context(|| format!("{} is not a UTF-8 path", self.device.display()))?;
        let mut camera = rscam::new(path).with_context(|| format!("opening {path}"))?;
        let config = rscam::Config {
            interval: frame_interval(self.fps),
            resolution: (self.width, self.height),
            format: self.format.fourcc(),
            nbuffers: DRIVER_BUFFERS,
            ..Default::default()
        };
        camera.start(&config).map_err(|e| {
            anyhow::anyhow!(
                "starting {path} at {}×{}, {} fps, {}: {e} (list what it offers with `v4l2-ctl -d {path} --list-formats-ext`)",
                self.width,
                self.height,
                self.fps,
                String::from_utf8_lossy(self.format.fourcc())
            )
        })?;
        Ok(V4l2Camera {
            camera,
            format: self.format,
            width: self.width,
            height: self.height,
            max_image_px: self.max_image_px,
        })
    }
}

/// A streaming V4L2 device.
pub struct V4l2Camera {
    camera: rscam::Camera,
    format: V4l2Format,
    width: u32,
    height: u32,
    max_image_px: u32,
}

impl Capture for V4l2Camera {
    fn capture(&mut self) -> Result<CameraFrame, CaptureError> {
        let buffer = self
            .camera
            .capture()
            .map_err(|e| CaptureError::Gone(format!("capturing: {e}")))?;
        let at = SystemTime::now();
        match self.format {
            V4l2Format::Yuyv => yuyv_frame(&buffer, self.width, self.height, at),
            V4l2Format::Mjpeg => {
                // Limitation: every MJPEG frame is fully decoded, even when
                // only its luma is needed for motion; a DCT-scaled or
                // luma-only decode would make the idle doorstep cheaper.
                let mut frame = Frame::decode(&buffer, self.max_image_px)
                    .map_err(|e| CaptureError::Bad(e.to_string()))?;
                frame.captured_at = at;
                let (width, height) = frame.rgb.dimensions();
                Ok(CameraFrame {
                    captured_at: at,
                    width,
                    height,
                    pixels: Pixels::Decoded(frame),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_become_v4l2_intervals_in_lowest_terms() {
        assert_eq!(frame_interval(10.0), (1, 10));
        assert_eq!(frame_interval(7.5), (2, 15));
        assert_eq!(frame_interval(30.0), (1, 30));
    }

    #[test]
    fn auto_means_mjpeg_and_yuv420_is_refused() {
        assert_eq!(
            V4l2Format::from_config(PixelFormat::Auto).unwrap().fourcc(),
            b"MJPG"
        );
        assert_eq!(
            V4l2Format::from_config(PixelFormat::Yuyv).unwrap().fourcc(),
            b"YUYV"
        );
        assert!(V4l2Format::from_config(PixelFormat::Yuv420).is_err());
    }

    #[test]
    fn a_padded_yuyv_buffer_keeps_its_stride_and_a_short_one_is_refused() {
        // 2×2 frame, rows padded from 4 to 8 bytes.
        let bytes = [
            100, 128, 50, 128, 0, 0, 0, 0, //
            200, 128, 150, 128, 0, 0, 0, 0,
        ];
        let f = yuyv_frame(&bytes, 2, 2, SystemTime::now()).unwrap();
        let luma = f.luma();
        assert_eq!(
            (luma.at(0, 0), luma.at(1, 0), luma.at(0, 1), luma.at(1, 1)),
            (100, 50, 200, 150)
        );
        assert!(matches!(
            yuyv_frame(&bytes[..6], 2, 2, SystemTime::now()),
            Err(CaptureError::Bad(_))
        ));
    }

    #[test]
    fn a_missing_device_is_an_error_naming_it() {
        let mut c = crate::config::Config::default().camera;
        c.device = PathBuf::from("/nonexistent/video9");
        let mut opener = V4l2Opener::new(&c, 0).unwrap();
        let err = format!("{:#}", opener.open().err().unwrap());
        assert!(err.contains("/nonexistent/video9"), "{err}");
    }
}
