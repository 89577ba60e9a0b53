//! Motion JPEG: a stream of whole JPEG images one after another, as a
//! webcam's MJPEG mode or `rpicam-vid --codec mjpeg` writes them.
//!
//! A JPEG's end cannot be found by looking for the end marker alone (its
//! bytes may occur inside a segment), so the reader follows the marker
//! structure: segments carry their length, and entropy-coded data ends at
//! the first marker that is neither a stuffed zero nor a restart marker.
//! Garbage between images is skipped; a damaged image is reported and the
//! reader resynchronises on the next start-of-image marker.

use std::io::{self, BufRead};

/// No camera frame comes near this; a stream claiming more is damaged.
pub const MAX_JPEG_BYTES: usize = 32 << 20;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;

pub struct MjpegReader<R> {
    inner: R,
    /// A start-of-image marker was met inside a damaged image: the next
    /// image begins right here.
    at_next_image: bool,
}

impl<R: BufRead> MjpegReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            at_next_image: false,
        }
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        let buf = loop {
            match self.inner.fill_buf() {
                Ok(b) => break b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.inner.consume(1);
        Ok(Some(b))
    }

    fn need(&mut self) -> io::Result<u8> {
        self.byte()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ended inside a JPEG image",
            )
        })
    }

    /// The next whole JPEG image, from its start to its end marker; `None`
    /// when the stream ends (anything after the last image is ignored).
    pub fn next_jpeg(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut prev = 0u8;
        while !std::mem::take(&mut self.at_next_image) {
            match self.byte()? {
                None => return Ok(None),
                Some(SOI) if prev == 0xFF => break,
                Some(b) => prev = b,
            }
        }
        let mut out = vec![0xFF, SOI];
        let mut pending: Option<u8> = None;
        loop {
            let marker = match pending.take() {
                Some(m) => m,
                None => {
                    if self.need()? != 0xFF {
                        return Err(damaged("a segment does not start with a marker"));
                    }
                    let mut m = self.need()?;
                    // Any number of 0xFF fill bytes may precede a marker.
                    while m == 0xFF {
                        m = self.need()?;
                    }
                    m
                }
            };
            out.extend([0xFF, marker]);
            match marker {
                EOI => return Ok(Some(out)),
                0xD0..=0xD7 | 0x01 => {}
                SOI => {
                    self.at_next_image = true;
                    return Err(damaged("an image starts inside another"));
                }
                _ => {
                    let (hi, lo) = (self.need()?, self.need()?);
                    let len = u16::from_be_bytes([hi, lo]) as usize;
                    if len < 2 {
                        return Err(damaged("a segment length below 2"));
                    }
                    out.extend([hi, lo]);
                    for _ in 0..len - 2 {
                        out.push(self.need()?);
                    }
                    if marker == SOS {
                        pending = Some(self.entropy_data(&mut out)?);
                    }
                }
            }
            if out.len() > MAX_JPEG_BYTES {
                return Err(damaged("an image larger than 32 MiB"));
            }
        }
    }

    /// Copies scan data up to the next real marker and returns that
    /// marker's code (its 0xFF is consumed, not copied).
    fn entropy_data(&mut self, out: &mut Vec<u8>) -> io::Result<u8> {
        loop {
            let b = self.need()?;
            if b != 0xFF {
                out.push(b);
                continue;
            }
            let mut next = self.need()?;
            while next == 0xFF {
                next = self.need()?;
            }
            match next {
                // A stuffed zero or a restart marker belongs to the scan.
                0x00 | 0xD0..=0xD7 => out.extend([0xFF, next]),
                m => return Ok(m),
            }
            if out.len() > MAX_JPEG_BYTES {
                return Err(damaged("an image larger than 32 MiB"));
            }
        }
    }
}

fn damaged(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("damaged MJPEG stream: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A noisy picture, so that most of the file is scan data.
    fn jpeg(shade: u8) -> Vec<u8> {
        let img = image::RgbImage::from_fn(160, 120, |x, y| {
            let noise = ((x * 7919 + y * 104729) % 97) as u8;
            image::Rgb([shade, noise * 2, (y * 2) as u8])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn concatenated_jpegs_come_back_whole_and_in_order() {
        let (a, b) = (jpeg(10), jpeg(200));
        let mut stream = b"junk".to_vec();
        stream.extend(&a);
        stream.extend(&b);
        stream.extend(b"\xFF\x00trailing");
        let mut r = MjpegReader::new(&stream[..]);
        assert_eq!(r.next_jpeg().unwrap().unwrap(), a);
        assert_eq!(r.next_jpeg().unwrap().unwrap(), b);
        assert!(r.next_jpeg().unwrap().is_none());
        let decoded = image::load_from_memory(&b).unwrap().to_rgb8();
        assert!(decoded.get_pixel(0, 0)[0] > 150);
    }

    #[test]
    fn a_truncated_image_is_an_error_and_the_next_one_is_found() {
        let (a, b) = (jpeg(10), jpeg(200));
        let mut stream = a[..a.len() / 2].to_vec();
        stream.extend(&b);
        let mut r = MjpegReader::new(&stream[..]);
        let err = r.next_jpeg().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert_eq!(r.next_jpeg().unwrap().unwrap(), b);
        assert!(r.next_jpeg().unwrap().is_none());
    }
}
