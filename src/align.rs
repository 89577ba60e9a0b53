//! Alignment: from a detection's five landmarks to the embedder's face crop.
//!
//! A similarity transform (rotation, uniform scale, shift: four degrees of
//! freedom) is fitted by least squares from the landmarks to the embedder's
//! template, then the crop is sampled bilinearly. When the face is much
//! larger than the crop, the region is first shrunk by area averaging so the
//! bilinear sampler does not alias.

use image::imageops::FilterType;
use image::{Rgb, RgbImage};

/// Below this crop-pixels-per-frame-pixel scale, shrink the face first.
const AREA_SHRINK_BELOW_SCALE: f32 = 0.8;

/// `dst = [a -b; b a] · src + t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    /// Least-squares fit mapping each `src[i]` onto `dst[i]`.
    pub fn fit(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Similarity> {
        let n = src.len().min(dst.len());
        if n < 2 {
            return None;
        }
        let mean = |pts: &[[f32; 2]]| {
            let (sx, sy) = pts[..n]
                .iter()
                .fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
            [sx / n as f32, sy / n as f32]
        };
        let (ms, md) = (mean(src), mean(dst));
        let (mut dot, mut cross, mut norm) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let (xs, ys) = (src[i][0] - ms[0], src[i][1] - ms[1]);
            let (xd, yd) = (dst[i][0] - md[0], dst[i][1] - md[1]);
            dot += xs * xd + ys * yd;
            cross += xs * yd - ys * xd;
            norm += xs * xs + ys * ys;
        }
        if norm.is_nan() || norm <= 1e-6 {
            return None;
        }
        let (a, b) = (dot / norm, cross / norm);
        Some(Similarity {
            a,
            b,
            tx: md[0] - (a * ms[0] - b * ms[1]),
            ty: md[1] - (b * ms[0] + a * ms[1]),
        })
    }

    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }

    pub fn inverse(&self) -> Similarity {
        let d = self.a * self.a + self.b * self.b;
        let (a, b) = (self.a / d, -self.b / d);
        Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        }
    }

    /// Destination pixels per source pixel.
    pub fn scale(&self) -> f32 {
        (self.a * self.a + self.b * self.b).sqrt()
    }
}

/// Cuts the face crop for an embedder.
#[derive(Debug, Clone)]
pub struct Aligner {
    /// Crop width and height.
    pub size: [u32; 2],
    /// Where the five landmarks must land in the crop.
    pub template: [[f32; 2]; 5],
}

impl Aligner {
    pub fn new(size: [u32; 2], template: [[f32; 2]; 5]) -> Self {
        Self { size, template }
    }

    /// The aligned face crop for `landmarks` in `frame`, or `None` when the
    /// landmarks are degenerate (all in one point).
    pub fn crop(&self, frame: &RgbImage, landmarks: &[[f32; 2]; 5]) -> Option<RgbImage> {
        let to_crop = Similarity::fit(landmarks, &self.template)?;
        if to_crop.scale() >= AREA_SHRINK_BELOW_SCALE {
            return Some(self.warp(frame, &to_crop));
        }

        // Shrink the part of the frame the crop covers, then warp from that.
        let from_crop = to_crop.inverse();
        let [cw, ch] = self.size.map(|v| v as f32);
        let corners = [[0.0, 0.0], [cw, 0.0], [0.0, ch], [cw, ch]].map(|p| from_crop.apply(p));
        let min = |i: usize| corners.iter().map(|p| p[i]).fold(f32::MAX, f32::min);
        let max = |i: usize| corners.iter().map(|p| p[i]).fold(f32::MIN, f32::max);
        let x0 = (min(0).floor() - 2.0).max(0.0) as u32;
        let y0 = (min(1).floor() - 2.0).max(0.0) as u32;
        let x1 = ((max(0).ceil() + 2.0) as u32).min(frame.width());
        let y1 = ((max(1).ceil() + 2.0) as u32).min(frame.height());
        if x1 <= x0 + 1 || y1 <= y0 + 1 {
            return Some(self.warp(frame, &to_crop));
        }
        let region = image::imageops::crop_imm(frame, x0, y0, x1 - x0, y1 - y0).to_image();
        let k = to_crop.scale();
        let nw = ((region.width() as f32 * k).round() as u32).max(2);
        let nh = ((region.height() as f32 * k).round() as u32).max(2);
        let small = image::imageops::resize(&region, nw, nh, FilterType::Triangle);
        let (kx, ky) = (
            nw as f32 / region.width() as f32,
            nh as f32 / region.height() as f32,
        );
        let moved = landmarks.map(|p| {
            [
                (p[0] - x0 as f32 + 0.5) * kx - 0.5,
                (p[1] - y0 as f32 + 0.5) * ky - 0.5,
            ]
        });
        let to_crop = Similarity::fit(&moved, &self.template)?;
        Some(self.warp(&small, &to_crop))
    }

    fn warp(&self, src: &RgbImage, to_crop: &Similarity) -> RgbImage {
        let from_crop = to_crop.inverse();
        let [w, h] = self.size;
        RgbImage::from_fn(w, h, |u, v| {
            let [x, y] = from_crop.apply([u as f32, v as f32]);
            bilinear(src, x, y)
        })
    }
}

/// Bilinear sample at pixel-centre coordinates; black outside the image.
fn bilinear(img: &RgbImage, x: f32, y: f32) -> Rgb<u8> {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x0, y0) = (x.floor() as i64, y.floor() as i64);
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xi: i64, yi: i64| -> [f32; 3] {
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            [0.0; 3]
        } else {
            img.get_pixel(xi as u32, yi as u32).0.map(f32::from)
        }
    };
    let (p00, p10, p01, p11) = (
        at(x0, y0),
        at(x0 + 1, y0),
        at(x0, y0 + 1),
        at(x0 + 1, y0 + 1),
    );
    let mut out = [0u8; 3];
    for c in 0..3 {
        let top = p00[c] + (p10[c] - p00[c]) * fx;
        let bottom = p01[c] + (p11[c] - p01[c]) * fx;
        out[c] = (top + (bottom - top) * fy).round().clamp(0.0, 255.0) as u8;
    }
    Rgb(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: [[f32; 2]; 5] = [
        [47.49, 46.81],
        [100.73, 46.60],
        [73.59, 75.92],
        [49.73, 101.23],
        [99.37, 100.64],
    ];

    #[test]
    fn fit_recovers_a_known_rotation_scale_and_shift() {
        let truth = Similarity {
            a: 0.8,
            b: 0.3,
            tx: 12.0,
            ty: -7.0,
        };
        let src = [
            [1.0, 2.0],
            [30.0, 4.0],
            [15.0, 20.0],
            [5.0, 33.0],
            [28.0, 31.0],
        ];
        let dst = src.map(|p| truth.apply(p));
        let fit = Similarity::fit(&src, &dst).unwrap();
        for (got, want) in [
            (fit.a, truth.a),
            (fit.b, truth.b),
            (fit.tx, truth.tx),
            (fit.ty, truth.ty),
        ] {
            assert!((got - want).abs() < 1e-4, "{fit:?}");
        }
        let back = fit.inverse().apply(fit.apply([3.0, 4.0]));
        assert!((back[0] - 3.0).abs() < 1e-4 && (back[1] - 4.0).abs() < 1e-4);
    }

    #[test]
    fn degenerate_landmarks_give_no_crop() {
        let frame = RgbImage::new(50, 50);
        let aligner = Aligner::new([150, 150], TEMPLATE);
        assert!(aligner.crop(&frame, &[[10.0, 10.0]; 5]).is_none());
    }

    #[test]
    fn a_bright_dot_under_a_landmark_lands_on_the_template_point() {
        // A large face (scale < 0.8) takes the shrink-first path.
        for zoom in [1.0f32, 4.0] {
            let mut frame = RgbImage::new((400.0 * zoom) as u32, (400.0 * zoom) as u32);
            let marks = TEMPLATE.map(|p| [(p[0] + 100.0) * zoom, (p[1] + 120.0) * zoom]);
            let nose = marks[2];
            let r = (3.0 * zoom) as i64;
            for dy in -r..=r {
                for dx in -r..=r {
                    frame.put_pixel(
                        (nose[0] as i64 + dx) as u32,
                        (nose[1] as i64 + dy) as u32,
                        Rgb([255; 3]),
                    );
                }
            }
            let crop = Aligner::new([150, 150], TEMPLATE)
                .crop(&frame, &marks)
                .unwrap();
            assert_eq!(crop.dimensions(), (150, 150));
            let [nx, ny] = TEMPLATE[2];
            assert!(
                crop.get_pixel(nx.round() as u32, ny.round() as u32)[0] > 200,
                "zoom {zoom}"
            );
            assert_eq!(crop.get_pixel(10, 10)[0], 0, "zoom {zoom}");
        }
    }
}
