//! Frame sources: where frames come from.
//!
//! One trait for every kind of camera. The `files` source replays a folder
//! of images in name order on a steady clock, so that tests, demos and
//! evaluations feed the pipeline exactly as a camera would. A frame that
//! cannot be decoded is reported and skipped; it never ends the stream.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::frame::Frame;

/// What a source yields next.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// A frame that could not be used; the source goes on.
    Skipped {
        what: String,
        why: String,
    },
    /// The source is exhausted (files only; cameras never end).
    End,
}

pub trait FrameSource {
    /// Blocks until the next frame is due.
    fn next(&mut self) -> Next;
}

/// Replays image files in name order.
pub struct FilesSource {
    files: Vec<PathBuf>,
    position: usize,
    /// Time between frames on the capture clock.
    interval: Duration,
    /// Sleep so frames arrive in real time (`replay_fps` > 0).
    paced: bool,
    started_at: SystemTime,
    started: Instant,
    max_image_px: u32,
}

/// File names the replay picks up (by extension; content decides the
/// format when decoding).
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"];

impl FilesSource {
    /// A folder's images (or one image), replayed at `replay_fps` (0: as fast
    /// as decoding goes), with capture times spaced at `clock_fps`.
    pub fn open(path: &Path, replay_fps: f32, clock_fps: f32, max_image_px: u32) -> Result<Self> {
        let files = if path.is_dir() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path)
                .with_context(|| format!("reading the folder {}", path.display()))?
            {
                let p = entry?.path();
                let hidden = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                let known = p
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
                if p.is_file() && !hidden && known {
                    files.push(p);
                }
            }
            files.sort();
            files
        } else if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            bail!(
                "camera.path {} is neither a folder nor a file",
                path.display()
            );
        };
        if files.is_empty() {
            bail!(
                "camera.path {} holds no images ({})",
                path.display(),
                IMAGE_EXTENSIONS.join(", ")
            );
        }
        let rate = if replay_fps > 0.0 {
            replay_fps
        } else {
            clock_fps
        };
        Ok(Self {
            files,
            position: 0,
            interval: Duration::from_secs_f32(1.0 / rate),
            paced: replay_fps > 0.0,
            started_at: SystemTime::now(),
            started: Instant::now(),
            max_image_px,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl FrameSource for FilesSource {
    fn next(&mut self) -> Next {
        let Some(path) = self.files.get(self.position).cloned() else {
            return Next::End;
        };
        let offset = self.interval * self.position as u32;
        self.position += 1;
        if self.paced {
            let due = self.started + offset;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        match Frame::open(&path, self.max_image_px) {
            Ok(mut frame) => {
                frame.captured_at = self.started_at + offset;
                Next::Frame(frame)
            }
            Err(e) => Next::Skipped {
                what: path.display().to_string(),
                why: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_replay_in_name_order_on_a_steady_clock_and_skip_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_pixel(16, 16, image::Rgb([10, 20, 30]));
        img.save(dir.path().join("b.png")).unwrap();
        img.save(dir.path().join("a.png")).unwrap();
        std::fs::write(dir.path().join("c.jpg"), b"garbage").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
        let mut src = FilesSource::open(dir.path(), 0.0, 2.0, 0).unwrap();
        assert_eq!(src.len(), 3);
        let Next::Frame(a) = src.next() else {
            panic!("first frame")
        };
        let Next::Frame(b) = src.next() else {
            panic!("second frame")
        };
        assert_eq!(
            b.captured_at.duration_since(a.captured_at).unwrap(),
            Duration::from_millis(500)
        );
        match src.next() {
            Next::Skipped { what, .. } => assert!(what.ends_with("c.jpg")),
            other => panic!("expected a skipped frame, got {other:?}"),
        }
        assert!(matches!(src.next(), Next::End));
    }

    #[test]
    fn an_empty_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = FilesSource::open(dir.path(), 0.0, 5.0, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }
}
