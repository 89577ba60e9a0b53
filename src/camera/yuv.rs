//! Raw YUV frames as cameras deliver them: plane layouts with padded rows,
//! a reader that cuts a byte stream into frames, and the conversion to RGB
//! that only frames shown to the face detector pay for.
//!
//! # Strides
//!
//! `rpicam-vid --codec yuv420` writes each frame buffer exactly as libcamera
//! hands it over, padding included. On the Pi's VC4 ISP (Pi Zero to Pi 4)
//! YUV420 is one buffer without gaps between the planes: the Y plane's rows
//! are padded to a multiple of 64 bytes, and the U and V rows are half as
//! long (so padded to 32), with no padding in height. A 780×360 request
//! therefore arrives as rows of 832 Y bytes and 416 U and V bytes. Widths
//! that are a multiple of 64 (640, 1280, 1920) have no padding at all, which
//! is why the README recommends them. `camera.stride_align_px` changes the
//! rule (1 reads a tightly packed file).

use std::io::{self, Read};

/// Where the three planes of a YUV 4:2:0 frame lie in its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Yuv420Layout {
    pub width: u32,
    pub height: u32,
    /// Bytes from one Y row to the next (at least `width`).
    pub y_stride: usize,
    /// Bytes from one U (or V) row to the next (at least `width / 2`).
    pub c_stride: usize,
}

impl Yuv420Layout {
    /// The layout of a `width`×`height` frame whose Y rows are padded to a
    /// multiple of `align` bytes and whose chroma rows to half of that.
    /// Width and height must be even.
    pub fn padded(width: u32, height: u32, align: u32) -> Self {
        let align = align.max(1) as usize;
        let y_stride = (width as usize).div_ceil(align) * align;
        Self {
            width,
            height,
            y_stride,
            c_stride: y_stride / 2,
        }
    }

    fn chroma_rows(&self) -> usize {
        (self.height as usize).div_ceil(2)
    }

    /// Bytes in one frame.
    pub fn frame_len(&self) -> usize {
        self.y_stride * self.height as usize + 2 * self.c_stride * self.chroma_rows()
    }

    fn u_offset(&self) -> usize {
        self.y_stride * self.height as usize
    }

    fn v_offset(&self) -> usize {
        self.u_offset() + self.c_stride * self.chroma_rows()
    }

    /// Converts one frame to RGB (BT.601, video range: what libcamera's
    /// video colour spaces use).
    // Limitation: a camera set to Rec.709 gets slightly wrong hues; luma,
    // which motion and most of face detection rely on, is unaffected.
    pub fn to_rgb(&self, data: &[u8]) -> image::RgbImage {
        let (w, h) = (self.width, self.height);
        let (uo, vo) = (self.u_offset(), self.v_offset());
        image::RgbImage::from_fn(w, h, |x, y| {
            let (x, y) = (x as usize, y as usize);
            let luma = data[y * self.y_stride + x];
            let c = (y / 2) * self.c_stride + x / 2;
            image::Rgb(ycbcr_to_rgb(luma, data[uo + c], data[vo + c]))
        })
    }
}

/// BT.601 video range (Y 16-235, Cb/Cr 16-240) to 8-bit RGB, in integers.
pub fn ycbcr_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (y as i32 - 16);
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |v: i32| ((v + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

/// 8-bit RGB to BT.601 video-range Y, Cb, Cr: what a camera writes.
pub fn rgb_to_ycbcr(p: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = p.map(i32::from);
    [
        (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8,
        (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8,
        (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8,
    ]
}

/// Encodes an RGB image as one YUV420 frame with `layout`'s padding (the
/// padding bytes are zero), chroma averaged over each 2×2 block. Tests and
/// fake cameras use it to produce exactly what rpicam-vid would write.
pub fn encode_yuv420(rgb: &image::RgbImage, layout: &Yuv420Layout) -> Vec<u8> {
    let (w, h) = (layout.width as usize, layout.height as usize);
    assert_eq!(
        (rgb.width() as usize, rgb.height() as usize),
        (w, h),
        "frame size"
    );
    let mut out = vec![0u8; layout.frame_len()];
    let (uo, vo) = (layout.u_offset(), layout.v_offset());
    for y in 0..h {
        for x in 0..w {
            let [luma, _, _] = rgb_to_ycbcr(rgb.get_pixel(x as u32, y as u32).0);
            out[y * layout.y_stride + x] = luma;
        }
    }
    for cy in 0..layout.chroma_rows() {
        for cx in 0..w.div_ceil(2) {
            let (mut su, mut sv, mut n) = (0u32, 0u32, 0u32);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (x, y) = (2 * cx + dx, 2 * cy + dy);
                if x < w && y < h {
                    let [_, u, v] = rgb_to_ycbcr(rgb.get_pixel(x as u32, y as u32).0);
                    su += u as u32;
                    sv += v as u32;
                    n += 1;
                }
            }
            out[uo + cy * layout.c_stride + cx] = ((su + n / 2) / n) as u8;
            out[vo + cy * layout.c_stride + cx] = ((sv + n / 2) / n) as u8;
        }
    }
    out
}

/// Packed YUV 4:2:2 (`YUYV`: Y0 U Y1 V for each pair of pixels) to RGB.
pub fn yuyv_to_rgb(data: &[u8], width: u32, height: u32, stride: usize) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        let row = y as usize * stride;
        let pair = row + (x as usize / 2) * 4;
        let luma = data[row + x as usize * 2];
        image::Rgb(ycbcr_to_rgb(luma, data[pair + 1], data[pair + 3]))
    })
}

/// Cuts a byte stream (a pipe from rpicam-vid, or a file) into YUV420
/// frames of a fixed layout.
pub struct Yuv420Reader<R> {
    inner: R,
    layout: Yuv420Layout,
}

impl<R: Read> Yuv420Reader<R> {
    pub fn new(inner: R, layout: Yuv420Layout) -> Self {
        Self { inner, layout }
    }

    pub fn layout(&self) -> Yuv420Layout {
        self.layout
    }

    /// The next whole frame; `None` when the stream ends between frames.
    /// A stream that ends inside a frame is an `UnexpectedEof` error.
    pub fn read_frame(&mut self) -> io::Result<Option<Vec<u8>>> {
        let len = self.layout.frame_len();
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        match filled {
            0 => Ok(None),
            n if n < len => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the stream ended inside a frame ({n} of {len} bytes)"),
            )),
            _ => Ok(Some(buf)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_to_64_for_luma_and_32_for_chroma() {
        let l = Yuv420Layout::padded(780, 360, 64);
        assert_eq!((l.y_stride, l.c_stride), (832, 416));
        assert_eq!(l.frame_len(), 832 * 360 + 2 * 416 * 180);
        let tight = Yuv420Layout::padded(640, 480, 64);
        assert_eq!(tight.frame_len(), 640 * 480 * 3 / 2);
    }

    #[test]
    fn a_padded_frame_round_trips_to_nearly_the_same_rgb() {
        let rgb = image::RgbImage::from_fn(70, 10, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 20) as u8, 200 - x as u8])
        });
        let layout = Yuv420Layout::padded(70, 10, 64);
        let data = encode_yuv420(&rgb, &layout);
        assert_eq!(data.len(), 128 * 10 + 2 * 64 * 5);
        let back = layout.to_rgb(&data);
        for (a, b) in rgb.pixels().zip(back.pixels()) {
            for c in 0..3 {
                assert!((a[c] as i32 - b[c] as i32).abs() <= 12, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn the_reader_cuts_whole_frames_and_names_a_truncated_one() {
        let layout = Yuv420Layout::padded(4, 2, 1);
        let mut bytes: Vec<u8> = (0..layout.frame_len() as u8 * 2).collect();
        bytes.extend([1, 2, 3]);
        let mut r = Yuv420Reader::new(&bytes[..], layout);
        assert_eq!(r.read_frame().unwrap().unwrap()[0], 0);
        assert_eq!(r.read_frame().unwrap().unwrap()[0], 12);
        let err = r.read_frame().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("3 of 12"), "{err}");
        assert!(r.read_frame().unwrap().is_none());
    }

    #[test]
    fn yuyv_pairs_share_their_chroma() {
        // Two pixels: white and black, neutral chroma.
        let data = [235, 128, 16, 128];
        let rgb = yuyv_to_rgb(&data, 2, 1, 4);
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 0, 0]);
    }
}
