//! Doorstep scenes for the appliance tests: frames of an empty doorstep and
//! of a person standing at it, written as JPEG files for `run --replay`,
//! and a test config around them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use image::{imageops, Rgb, RgbImage};

const W: u32 = 640;
const H: u32 = 480;

/// A plain doorstep: a soft gradient with a little fixed texture.
pub fn background() -> RgbImage {
    RgbImage::from_fn(W, H, |x, y| {
        let t = ((x * 5 + y * 11) % 13) as u8;
        Rgb([80 + (y / 8) as u8 + t, 95 + (x / 10) as u8, 85 + t])
    })
}

/// The doorstep with `photo`, 320 px high, in the middle.
pub fn with_person(photo: &RgbImage) -> RgbImage {
    with_person_at(photo, 320)
}

/// The doorstep with `photo` scaled to `height` px, in the middle: a
/// person walking up grows from frame to frame.
pub fn with_person_at(photo: &RgbImage, height: u32) -> RgbImage {
    let mut frame = background();
    let width = photo.width() * height / photo.height();
    let person = imageops::resize(photo, width, height, imageops::FilterType::Triangle);
    let x = (W as i64 - width as i64) / 2;
    imageops::replace(&mut frame, &person, x, (H - height) as i64 / 2);
    frame
}

/// Writes `empty` doorstep frames, then `present` frames of the person, then
/// `after` empty ones, numbered in order after what `dir` already holds.
pub fn write_visit(
    dir: &Path,
    photo: Option<&RgbImage>,
    empty: usize,
    present: usize,
    after: usize,
) {
    std::fs::create_dir_all(dir).unwrap();
    let mut i = std::fs::read_dir(dir).unwrap().count();
    let mut save = |img: &RgbImage| {
        img.save(dir.join(format!("frame-{i:05}.jpg"))).unwrap();
        i += 1;
    };
    let bg = background();
    (0..empty).for_each(|_| save(&bg));
    if let Some(p) = photo {
        let frame = with_person(p);
        (0..present).for_each(|_| save(&frame));
    }
    (0..after).for_each(|_| save(&bg));
}

pub fn load(path: &Path) -> RgbImage {
    image::open(path).unwrap().to_rgb8()
}

/// A fake `/sys/class/leds` holding one LED, ACT, whose trigger is mmc0.
pub fn fake_leds(root: &Path) -> PathBuf {
    let act = root.join("ACT");
    std::fs::create_dir_all(&act).unwrap();
    std::fs::write(act.join("trigger"), "none timer heartbeat [mmc0]\n").unwrap();
    std::fs::write(act.join("brightness"), "0\n").unwrap();
    std::fs::write(act.join("max_brightness"), "1\n").unwrap();
    act
}
