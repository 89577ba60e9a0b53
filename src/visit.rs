//! Visits: faces grouped over consecutive frames into one presence each.
//!
//! A face continues an open visit when its embedding is close to the
//! visit's (box overlap helps when the face turns). Each visit keeps its few
//! best-quality faces; when its face has been gone for `visit_gap_s`, the
//! visit closes and the mean of those faces is what recognition decides on.

use std::time::{Duration, SystemTime};

use image::RgbImage;

use crate::detect::FaceBox;
use crate::embed::Embedding;
use crate::pipeline::Face;

/// How much a face crop is worth for recognition, from 0 up; higher is
/// better: size, detector score, sharpness, frontal pose and exposure.
pub fn quality(face: &Face) -> f32 {
    let b = &face.detection.face_box;
    // Bigger faces carry more detail, up to about the crop size.
    let size = (b.width().min(b.height()) / 150.0).clamp(0.0, 1.0);
    let sharp = (laplacian_variance(&face.crop) / 200.0).clamp(0.0, 1.0);
    size.sqrt()
        * face.detection.score
        * (0.25 + 0.75 * sharp)
        * frontalness(&face.detection.landmarks)
        * (0.25 + 0.75 * exposure(&face.crop))
}

/// Luma levels at or beyond which a pixel is clipped (no detail left).
const DARK_CLIP: f32 = 16.0;
const LIGHT_CLIP: f32 = 240.0;

/// 1 for a well exposed crop, towards 0 as more of it is crushed to black
/// or blown to white, or its mean drifts far from mid-grey (backlight,
/// night).
pub fn exposure(img: &RgbImage) -> f32 {
    let n = (img.width() * img.height()).max(1) as f32;
    let (mut clipped, mut sum) = (0.0f32, 0.0f32);
    for p in img.pixels() {
        let l = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        sum += l;
        if !(DARK_CLIP..LIGHT_CLIP).contains(&l) {
            clipped += 1.0;
        }
    }
    let mean = sum / n;
    let centred = 1.0 - ((mean - 128.0).abs() / 128.0).powi(2);
    ((1.0 - clipped / n) * centred).clamp(0.0, 1.0)
}

/// 1 for a face looking straight at the camera, towards 0 as it turns:
/// the nose sits midway between the eyes on a frontal face.
pub fn frontalness(l: &[[f32; 2]; 5]) -> f32 {
    let (left, right, nose) = (l[0][0], l[1][0], l[2][0]);
    let span = (right - left).abs();
    if span < 1e-3 {
        return 0.0;
    }
    let offset = ((nose - (left + right) / 2.0) / span).abs();
    (1.0 - 2.0 * offset).clamp(0.0, 1.0)
}

/// Variance of the 4-neighbour Laplacian of the crop's luma: low when blurred.
pub fn laplacian_variance(img: &RgbImage) -> f32 {
    let (w, h) = img.dimensions();
    if w < 3 || h < 3 {
        return 0.0;
    }
    let luma = |x: u32, y: u32| {
        let p = img.get_pixel(x, y);
        0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
    };
    let (mut sum, mut sum2, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let l = (luma(x - 1, y) + luma(x + 1, y) + luma(x, y - 1) + luma(x, y + 1)
                - 4.0 * luma(x, y)) as f64;
            sum += l;
            sum2 += l * l;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum2 / n - mean * mean) as f32
}

/// A face kept for a visit's decision.
#[derive(Debug, Clone)]
pub struct KeptFace {
    pub embedding: Embedding,
    pub quality: f32,
    pub crop: RgbImage,
}

/// An open visit.
#[derive(Debug, Clone)]
struct Track {
    started: SystemTime,
    last_seen: SystemTime,
    last_box: FaceBox,
    /// The latest embedding, for frame-to-frame association.
    last_embedding: Embedding,
    frames: u32,
    /// Best faces, best first, at most `best_faces`.
    best: Vec<KeptFace>,
}

/// A visit that has ended.
#[derive(Debug, Clone)]
pub struct ClosedVisit {
    pub started: SystemTime,
    pub ended: SystemTime,
    /// Frames the face was seen in.
    pub frames: u32,
    /// The best faces, best first; their mean is the visit's embedding.
    pub best: Vec<KeptFace>,
}

impl ClosedVisit {
    pub fn embedding(&self) -> anyhow::Result<Embedding> {
        Embedding::mean(self.best.iter().map(|f| &f.embedding))
    }

    pub fn duration(&self) -> Duration {
        self.ended.duration_since(self.started).unwrap_or_default()
    }
}

/// Groups faces into visits.
pub struct VisitTracker {
    open: Vec<Track>,
    gap: Duration,
    best_faces: usize,
    same_person: f32,
}

/// A face whose box overlaps the visit's last box this much may continue
/// it with a weaker embedding match (a turning head).
const OVERLAP_FOR_WEAK_MATCH: f32 = 0.5;
/// How much weaker than `same_person` that match may be.
const WEAK_MATCH_MARGIN: f32 = 0.05;

impl VisitTracker {
    pub fn new(gap: Duration, best_faces: usize, same_person: f32) -> Self {
        Self {
            open: Vec::new(),
            gap,
            best_faces,
            same_person,
        }
    }

    /// Number of visits in progress.
    pub fn open_visits(&self) -> usize {
        self.open.len()
    }

    /// Adds one frame's faces, each to the open visit it continues, or to a
    /// new one. The closest face-visit pairs are joined first, so that two
    /// people in one frame never trade visits by the order they were found.
    pub fn observe(&mut self, at: SystemTime, faces: Vec<Face>) {
        let mut pairs = Vec::new();
        for (f, face) in faces.iter().enumerate() {
            for (t, track) in self.open.iter().enumerate() {
                let sim = face.embedding.cosine(&track.last_embedding);
                let overlap = face.detection.face_box.iou(&track.last_box);
                let continues = sim >= self.same_person
                    || (overlap >= OVERLAP_FOR_WEAK_MATCH
                        && sim >= self.same_person - WEAK_MATCH_MARGIN);
                if continues {
                    pairs.push((sim, f, t));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut face_track = vec![None; faces.len()];
        let mut taken = vec![false; self.open.len()];
        for (_, f, t) in pairs {
            if face_track[f].is_none() && !taken[t] {
                face_track[f] = Some(t);
                taken[t] = true;
            }
        }

        for (face, track) in faces.into_iter().zip(face_track) {
            log::debug!(
                "face at {:?}: {}",
                face.detection.face_box,
                match track {
                    Some(i) => format!("continues visit {i}"),
                    None => "starts a visit".to_string(),
                }
            );
            let kept = KeptFace {
                embedding: face.embedding.clone(),
                quality: quality(&face),
                crop: face.crop,
            };
            match track {
                Some(i) => {
                    let t = &mut self.open[i];
                    t.last_seen = at;
                    t.last_box = face.detection.face_box;
                    t.last_embedding = face.embedding;
                    t.frames += 1;
                    t.best.push(kept);
                    t.best.sort_by(|a, b| b.quality.total_cmp(&a.quality));
                    t.best.truncate(self.best_faces);
                }
                None => self.open.push(Track {
                    started: at,
                    last_seen: at,
                    last_box: face.detection.face_box,
                    last_embedding: face.embedding,
                    frames: 1,
                    best: vec![kept],
                }),
            }
        }
    }

    /// Closes the visits whose face has been gone for longer than the gap.
    pub fn close_expired(&mut self, now: SystemTime) -> Vec<ClosedVisit> {
        let gap = self.gap;
        let (done, open): (Vec<_>, Vec<_>) = self
            .open
            .drain(..)
            .partition(|t| now.duration_since(t.last_seen).unwrap_or_default() > gap);
        self.open = open;
        done.into_iter().map(close).collect()
    }

    /// Closes every open visit (end of stream, shutdown).
    pub fn close_all(&mut self) -> Vec<ClosedVisit> {
        self.open.drain(..).map(close).collect()
    }
}

fn close(t: Track) -> ClosedVisit {
    ClosedVisit {
        started: t.started,
        ended: t.last_seen,
        frames: t.frames,
        best: t.best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frontal_face_scores_higher_than_a_turned_one() {
        let frontal = [
            [40.0, 50.0],
            [80.0, 50.0],
            [60.0, 70.0],
            [45.0, 90.0],
            [75.0, 90.0],
        ];
        let turned = [
            [40.0, 50.0],
            [80.0, 50.0],
            [76.0, 70.0],
            [45.0, 90.0],
            [75.0, 90.0],
        ];
        assert!(frontalness(&frontal) > 0.99);
        assert!(frontalness(&turned) < 0.3);
    }

    #[test]
    fn a_blown_out_or_dark_crop_scores_lower_exposure() {
        let good = RgbImage::from_fn(20, 20, |x, _| image::Rgb([60 + 6 * x as u8; 3]));
        let blown = RgbImage::from_pixel(20, 20, image::Rgb([250; 3]));
        let dark = RgbImage::from_pixel(20, 20, image::Rgb([8; 3]));
        assert!(exposure(&good) > 0.9, "{}", exposure(&good));
        assert!(exposure(&blown) < 0.05);
        assert!(exposure(&dark) < 0.05);
    }

    fn face(vector: &[f32], x: f32) -> Face {
        use crate::detect::Detection;
        Face {
            detection: Detection {
                face_box: FaceBox {
                    x1: x,
                    y1: 0.0,
                    x2: x + 100.0,
                    y2: 100.0,
                },
                score: 0.99,
                landmarks: [
                    [30.0, 40.0],
                    [70.0, 40.0],
                    [50.0, 60.0],
                    [35.0, 80.0],
                    [65.0, 80.0],
                ]
                .map(|[px, py]| [px + x, py]),
            },
            embedding: Embedding::normalised(vector).unwrap(),
            crop: RgbImage::from_fn(20, 20, |x, y| image::Rgb([(x * 10 + y * 3) as u8; 3])),
        }
    }

    #[test]
    fn two_people_at_once_keep_their_own_visits_whatever_order_they_are_found() {
        let mut tracker = VisitTracker::new(Duration::from_secs(2), 5, 0.75);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let a = [1.0, 0.0, 0.0];
        let b = [0.0, 1.0, 0.0];
        tracker.observe(t0, vec![face(&a, 0.0), face(&b, 300.0)]);
        assert_eq!(tracker.open_visits(), 2);
        for k in 1..5 {
            let at = t0 + Duration::from_millis(200 * k);
            // Found in the other order, and a bit closer to each other.
            tracker.observe(
                at,
                vec![face(&[0.1, 1.0, 0.0], 280.0), face(&[1.0, 0.1, 0.0], 20.0)],
            );
        }
        assert_eq!(tracker.open_visits(), 2);
        let closed = tracker.close_expired(t0 + Duration::from_secs(10));
        assert_eq!(closed.len(), 2);
        for v in &closed {
            assert_eq!(v.frames, 5);
            let e = v.embedding().unwrap();
            let own = if e.cosine(&Embedding::normalised(&a).unwrap()) > 0.9 {
                a
            } else {
                b
            };
            assert!(e.cosine(&Embedding::normalised(&own).unwrap()) > 0.95);
        }
    }

    #[test]
    fn a_blurred_crop_has_lower_laplacian_variance() {
        let sharp = RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([if (x + y) % 2 == 0 { 255 } else { 0 }; 3])
        });
        let flat = RgbImage::from_pixel(32, 32, image::Rgb([128; 3]));
        assert!(laplacian_variance(&sharp) > 1000.0);
        assert_eq!(laplacian_variance(&flat), 0.0);
    }
}
