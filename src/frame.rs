//! Frames: one camera image or photo, decoded to 8-bit RGB.
//!
//! Photos arrive in whatever form cameras and phones write: progressive or
//! CMYK JPEG, EXIF-rotated, 16-bit or grayscale PNG with alpha, WebP, or a
//! file whose extension lies. Everything is recognised by its content, turned
//! upright, flattened to RGB and, when huge, shrunk before detection.

use std::io::Cursor;
use std::path::Path;
use std::time::SystemTime;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

/// Refuse to decode anything larger than this many pixels per side: a
/// corrupt header that claims 60000×60000 must not take the device down.
pub const MAX_DECODE_SIDE_PX: u32 = 16_384;

/// Refuse more pixels than this (a 64-megapixel phone photo still passes):
/// a small file can declare a huge, compressible picture, and decoding it on
/// a Pi with 1-4 GB would end in the out-of-memory killer.
pub const MAX_DECODE_PIXELS: u64 = 64_000_000;

/// Upper bound for the memory one decode may allocate.
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

/// One image in the pipeline.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Upright RGB pixels, possibly downscaled from the original.
    pub rgb: RgbImage,
    /// Original width and height divided by `rgb`'s (1.0 when not shrunk):
    /// multiply a box by it to get original pixel coordinates.
    pub scale_to_original: f32,
    /// When the frame was captured (file replay: a synthetic clock).
    pub captured_at: SystemTime,
}

/// Why one image could not be used. The caller names the image.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an image format doorman can read (JPEG, PNG, WebP, BMP, GIF or TIFF)")]
    UnknownFormat,
    #[error(
        "the image is {width}×{height} px; doorman accepts at most {} px per side and {} megapixels",
        MAX_DECODE_SIDE_PX,
        MAX_DECODE_PIXELS / 1_000_000
    )]
    TooLarge { width: u32, height: u32 },
    #[error("the image decoder failed on this file: {0}")]
    DecoderPanic(String),
    #[error("decoding the image would need more than {} MiB", MAX_DECODE_BYTES >> 20)]
    TooMuchMemory,
    #[error("corrupt or truncated image: {0}")]
    Corrupt(image::ImageError),
    #[error("truncated JPEG: the data ends before the end-of-image marker")]
    Truncated,
    #[error("the image has no pixels")]
    Empty,
}

impl Frame {
    /// Wraps upright RGB pixels captured now.
    pub fn from_rgb(rgb: RgbImage) -> Self {
        Self {
            rgb,
            scale_to_original: 1.0,
            captured_at: SystemTime::now(),
        }
    }

    /// Wraps upright RGB pixels captured at `captured_at`, shrunk so that
    /// the longer side is at most `max_side_px` (0: never shrunk).
    pub fn from_rgb_at(rgb: RgbImage, max_side_px: u32, captured_at: SystemTime) -> Self {
        let (rgb, scale) = shrink(rgb, max_side_px);
        Self {
            rgb,
            scale_to_original: scale,
            captured_at,
        }
    }

    /// Reads and decodes a file; see [`Frame::decode`].
    pub fn open(path: &Path, max_side_px: u32) -> Result<Self, DecodeError> {
        let bytes = std::fs::read(path)?;
        Self::decode(&bytes, max_side_px)
    }

    /// Decodes an encoded image, applies its EXIF orientation, flattens it to
    /// RGB (alpha over mid-grey) and shrinks it so that neither side exceeds
    /// `max_side_px`.
    ///
    /// Third-party decoders panic on some hostile files (and on allocation
    /// failure); such a panic becomes an error for this one image instead of
    /// ending the camera loop.
    pub fn decode(bytes: &[u8], max_side_px: u32) -> Result<Self, DecodeError> {
        std::panic::catch_unwind(|| Self::decode_unguarded(bytes, max_side_px)).unwrap_or_else(
            |panic| {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown failure");
                Err(DecodeError::DecoderPanic(why.chars().take(200).collect()))
            },
        )
    }

    fn decode_unguarded(bytes: &[u8], max_side_px: u32) -> Result<Self, DecodeError> {
        let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
        match reader.format() {
            None => return Err(DecodeError::UnknownFormat),
            Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
                return Err(DecodeError::Truncated);
            }
            Some(_) => {}
        }
        let mut limits = Limits::default();
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        reader.limits(limits);

        let mut decoder = reader.into_decoder().map_err(classify)?;
        let (width, height) = decoder.dimensions();
        if width == 0 || height == 0 {
            return Err(DecodeError::Empty);
        }
        if width.max(height) > MAX_DECODE_SIDE_PX
            || width as u64 * height as u64 > MAX_DECODE_PIXELS
        {
            return Err(DecodeError::TooLarge { width, height });
        }
        // A missing or unreadable EXIF block just means "already upright".
        let orientation = decoder
            .orientation()
            .unwrap_or(image::metadata::Orientation::NoTransforms);
        let mut image = DynamicImage::from_decoder(decoder).map_err(classify)?;
        image.apply_orientation(orientation);

        let (rgb, scale) = shrink(flatten(image), max_side_px);
        Ok(Self {
            rgb,
            scale_to_original: scale,
            captured_at: SystemTime::now(),
        })
    }
}

/// Whether a JPEG's last scan is followed by its end-of-image marker.
///
/// The JPEG decoder fills a cut-off scan with grey and reports success; a
/// frame half-written by a camera or a copy interrupted by a power cut would
/// then go through the pipeline as if it were whole. Inside entropy-coded
/// data 0xFF is always followed by 0x00 or a restart marker, so an FF D9
/// after the last start-of-scan (FF DA) can only be the real end.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(at) => bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

fn classify(err: image::ImageError) -> DecodeError {
    match err {
        image::ImageError::Limits(_) => DecodeError::TooMuchMemory,
        image::ImageError::Unsupported(_) => DecodeError::UnknownFormat,
        image::ImageError::IoError(e) => DecodeError::Io(e),
        other => DecodeError::Corrupt(other),
    }
}

/// 8-bit RGB; transparent pixels are composited over mid-grey so that an
/// alpha-cut portrait does not get a black or random background.
fn flatten(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut rgb = RgbImage::new(w, h);
    for (dst, src) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = src[3] as u32;
        for c in 0..3 {
            dst[c] = ((src[c] as u32 * a + 128 * (255 - a) + 127) / 255) as u8;
        }
    }
    rgb
}

/// Downscales (area-weighted) so that the longer side is at most `max_side`.
fn shrink(rgb: RgbImage, max_side: u32) -> (RgbImage, f32) {
    let (w, h) = rgb.dimensions();
    let longest = w.max(h);
    if max_side == 0 || longest <= max_side {
        return (rgb, 1.0);
    }
    let scale = longest as f32 / max_side as f32;
    let nw = ((w as f32 / scale).round() as u32).max(1);
    let nh = ((h as f32 / scale).round() as u32).max(1);
    let small = image::imageops::resize(&rgb, nw, nh, image::imageops::FilterType::Triangle);
    (small, w as f32 / nw as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(img: DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn huge_images_are_shrunk_and_report_their_scale() {
        let big = DynamicImage::ImageRgb8(RgbImage::from_pixel(4000, 1000, image::Rgb([9, 9, 9])));
        let frame = Frame::decode(&encode(big, image::ImageFormat::Png), 1000).unwrap();
        assert_eq!(frame.rgb.dimensions(), (1000, 250));
        assert!((frame.scale_to_original - 4.0).abs() < 1e-3);
    }

    #[test]
    fn alpha_is_composited_over_grey() {
        let mut rgba = image::RgbaImage::from_pixel(4, 4, image::Rgba([255, 0, 0, 0]));
        rgba.put_pixel(0, 0, image::Rgba([255, 0, 0, 255]));
        let png = encode(DynamicImage::ImageRgba8(rgba), image::ImageFormat::Png);
        let frame = Frame::decode(&png, 0).unwrap();
        assert_eq!(frame.rgb.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(frame.rgb.get_pixel(1, 1).0, [128, 128, 128]);
    }

    #[test]
    fn a_header_claiming_a_gigapixel_picture_is_refused_before_decoding() {
        // A 54-byte BMP header for 30000×30000 24-bit pixels, with no pixels.
        let mut bmp = b"BM".to_vec();
        bmp.extend(54u32.to_le_bytes()); // file size (a lie, as in an attack)
        bmp.extend([0; 4]);
        bmp.extend(54u32.to_le_bytes()); // pixel data offset
        bmp.extend(40u32.to_le_bytes()); // BITMAPINFOHEADER
        bmp.extend(30_000i32.to_le_bytes());
        bmp.extend(30_000i32.to_le_bytes());
        bmp.extend(1u16.to_le_bytes());
        bmp.extend(24u16.to_le_bytes());
        bmp.extend([0; 24]);
        let err = Frame::decode(&bmp, 0).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::TooLarge {
                    width: 30_000,
                    height: 30_000
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("30000×30000"), "{err}");
    }

    #[test]
    fn text_is_not_an_image() {
        let err = Frame::decode(b"hello, this is not an image", 0).unwrap_err();
        assert!(matches!(err, DecodeError::UnknownFormat), "{err}");
    }

    #[test]
    fn a_truncated_png_is_reported_as_corrupt() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3])));
        let png = encode(img, image::ImageFormat::Png);
        let err = Frame::decode(&png[..png.len() / 2], 0).unwrap_err();
        assert!(
            matches!(err, DecodeError::Corrupt(_) | DecodeError::Io(_)),
            "{err}"
        );
    }
}
