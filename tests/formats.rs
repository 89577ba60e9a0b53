//! Odd image formats from real cameras and phones give the same face as the
//! plain original; broken files are named errors.

mod common;

use doorman::frame::{DecodeError, Frame};
use doorman::pipeline::Face;
use image::{DynamicImage, ImageFormat, RgbImage};
use jpeg_encoder::{ColorType, Encoder};

/// The upright original, small enough to encode quickly.
fn original() -> RgbImage {
    let path = common::faces_dir().join("face_recognition/tests/test_images/obama.jpg");
    let img = image::open(path).unwrap().to_rgb8();
    image::imageops::resize(&img, 455, 568, image::imageops::FilterType::Triangle)
}

fn only_face(bytes: &[u8], what: &str) -> Face {
    let frame =
        Frame::decode(bytes, common::max_image_px()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut faces = common::pipeline().faces(&frame).unwrap();
    assert_eq!(faces.len(), 1, "{what}: {} faces", faces.len());
    faces.remove(0)
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn jpeg(
    data: &[u8],
    w: u32,
    h: u32,
    color: ColorType,
    progressive: bool,
    app1: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, 92);
    enc.set_progressive(progressive);
    if let Some(seg) = app1 {
        enc.add_app_segment(1, seg).unwrap();
    }
    enc.encode(data, w as u16, h as u16, color).unwrap();
    out
}

fn baseline_jpeg(rgb: &RgbImage) -> Vec<u8> {
    jpeg(
        rgb.as_raw(),
        rgb.width(),
        rgb.height(),
        ColorType::Rgb,
        false,
        None,
    )
}

/// A minimal little-endian EXIF block holding only an orientation tag.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut b = b"Exif\0\0II*\0".to_vec();
    b.extend(8u32.to_le_bytes()); // first IFD right after the header
    b.extend(1u16.to_le_bytes()); // one entry
    b.extend(0x0112u16.to_le_bytes()); // Orientation
    b.extend(3u16.to_le_bytes()); // SHORT
    b.extend(1u32.to_le_bytes()); // count
    b.extend(value.to_le_bytes());
    b.extend([0, 0]); // value padding
    b.extend(0u32.to_le_bytes()); // no next IFD
    b
}

#[test]
fn every_odd_format_gives_the_same_face_as_the_original() {
    let rgb = original();
    let (w, h) = rgb.dimensions();
    let reference = only_face(
        &encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Png),
        "reference PNG",
    );

    let cmyk: Vec<u8> = rgb
        .pixels()
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
        .collect();
    let rotated = image::imageops::rotate270(&rgb); // stored sideways, EXIF says "turn 90° clockwise"
    let mut rgba = DynamicImage::ImageRgb8(rgb.clone()).to_rgba8();
    for (x, y, p) in rgba.enumerate_pixels_mut() {
        if x < 20 || y < 20 {
            p[3] = 0; // transparent margin
        }
    }
    let variants: Vec<(&str, Vec<u8>, f32)> = vec![
        (
            "baseline JPEG",
            jpeg(rgb.as_raw(), w, h, ColorType::Rgb, false, None),
            0.97,
        ),
        (
            "progressive JPEG",
            jpeg(rgb.as_raw(), w, h, ColorType::Rgb, true, None),
            0.97,
        ),
        (
            "CMYK JPEG",
            jpeg(&cmyk, w, h, ColorType::Cmyk, false, None),
            0.95,
        ),
        (
            "EXIF-rotated JPEG",
            jpeg(
                rotated.as_raw(),
                h,
                w,
                ColorType::Rgb,
                false,
                Some(&exif_orientation(6)),
            ),
            0.97,
        ),
        (
            "16-bit PNG",
            encode(
                DynamicImage::ImageRgb16(DynamicImage::ImageRgb8(rgb.clone()).to_rgb16()),
                ImageFormat::Png,
            ),
            0.99,
        ),
        (
            "grayscale PNG",
            encode(
                DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(rgb.clone()).to_luma8()),
                ImageFormat::Png,
            ),
            0.85,
        ),
        (
            "RGBA PNG",
            encode(DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
            0.97,
        ),
        (
            "WebP",
            encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::WebP),
            0.99,
        ),
    ];
    for (what, bytes, min_cosine) in variants {
        let face = only_face(&bytes, what);
        let cosine = face.embedding.cosine(&reference.embedding);
        let iou = face.detection.face_box.iou(&reference.detection.face_box);
        eprintln!("{what}: cosine {cosine:.4}, box IoU {iou:.3}");
        assert!(iou > 0.8, "{what}: box moved (IoU {iou:.3})");
        assert!(
            cosine >= min_cosine,
            "{what}: cosine {cosine:.4} < {min_cosine}"
        );
    }
}

#[test]
fn a_file_with_the_wrong_extension_is_read_by_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let rgb = original();
    let path = dir.path().join("really-a-jpeg.png");
    std::fs::write(&path, baseline_jpeg(&rgb)).unwrap();
    let frame = Frame::open(&path, 0).unwrap();
    assert_eq!(frame.rgb.dimensions(), rgb.dimensions());
    assert_eq!(common::pipeline().faces(&frame).unwrap().len(), 1);
}

#[test]
fn a_very_large_photo_is_shrunk_before_detection_and_its_face_found() {
    let big = image::imageops::resize(
        &original(),
        4550,
        5680,
        image::imageops::FilterType::Triangle,
    );
    let bytes = baseline_jpeg(&big);
    let frame = Frame::decode(&bytes, common::max_image_px()).unwrap();
    assert!(frame.rgb.width().max(frame.rgb.height()) <= common::max_image_px());
    assert!(frame.scale_to_original > 4.0);
    let faces = common::pipeline().faces(&frame).unwrap();
    assert_eq!(faces.len(), 1);
    // Reported in the original's pixels, the box is where the face is.
    let b = faces[0].detection.face_box.scaled(frame.scale_to_original);
    assert!(b.x1 > 1500.0 && b.x2 < 3500.0, "{b:?}");
}

#[test]
fn a_truncated_jpeg_is_a_clear_error() {
    let rgb = original();
    let bytes = baseline_jpeg(&rgb);
    for cut in [bytes.len() / 3, bytes.len() - 2] {
        match Frame::decode(&bytes[..cut], 0) {
            Err(DecodeError::Truncated)
            | Err(DecodeError::Corrupt(_))
            | Err(DecodeError::Io(_)) => {}
            Err(other) => panic!("cut at {cut}: unexpected error kind: {other}"),
            Ok(_) => panic!(
                "a JPEG cut at {cut} of {} bytes decoded without error",
                bytes.len()
            ),
        }
    }
}
