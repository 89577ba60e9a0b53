//! The motion gate: which frames, and which parts of them, are worth
//! showing to the face detector.
//!
//! It works on the luma plane only, shrunk to `motion.frame_height_px`, and
//! runs these stages on every frame, in this order: shrink, normalise
//! contrast, apply the mask, blur, compare with a running-average
//! background, threshold, dilate, find connected regions, and recalibrate
//! on a global change. Its output is a list of motion regions (fractions of
//! the frame), or a global change, or nothing; nothing costs the detector
//! nothing.

use std::collections::VecDeque;

use crate::camera::Plane;
use crate::config::MotionConfig;

/// Frames over which the contrast stretch's low and high points are
/// averaged, so that one bright object does not change the whole picture.
const CONTRAST_HISTORY_FRAMES: usize = 50;
/// Percentiles that define the contrast stretch (dark and light ends).
const CONTRAST_LOW_PERCENTILE: f32 = 4.0;
const CONTRAST_HIGH_PERCENTILE: f32 = 96.0;
/// A picture whose percentiles lie closer than this (luma levels) is flat:
/// stretching it would only amplify noise.
const MIN_CONTRAST_SPAN: f32 = 16.0;
/// Changed pixels blend into the background this much slower than the
/// rest, so that a person standing still is absorbed only after a while.
const CHANGED_ALPHA_FACTOR: f32 = 0.25;
/// After a global change the background adapts at least this fast, until
/// less than `CALIBRATED_SHARE` of the picture differs from it.
const CALIBRATION_ALPHA: f32 = 0.3;
const CALIBRATED_SHARE: f32 = 0.05;

/// A box where motion was seen, in fractions of the frame's width and
/// height (0 to 1, from the top left corner).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl Region {
    pub const WHOLE: Region = Region {
        x1: 0.0,
        y1: 0.0,
        x2: 1.0,
        y2: 1.0,
    };

    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    fn overlaps(&self, o: &Region) -> bool {
        self.x1 < o.x2 && o.x1 < self.x2 && self.y1 < o.y2 && o.y1 < self.y2
    }

    fn union(&self, o: &Region) -> Region {
        Region {
            x1: self.x1.min(o.x1),
            y1: self.y1.min(o.y1),
            x2: self.x2.max(o.x2),
            y2: self.y2.max(o.y2),
        }
    }

    /// Widened by `margin` times its size on each side, within the frame.
    fn widened(&self, margin: f32) -> Region {
        let (dx, dy) = ((self.x2 - self.x1) * margin, (self.y2 - self.y1) * margin);
        Region {
            x1: (self.x1 - dx).max(0.0),
            y1: (self.y1 - dy).max(0.0),
            x2: (self.x2 + dx).min(1.0),
            y2: (self.y2 + dy).min(1.0),
        }
    }
}

/// What the gate saw in one frame.
#[derive(Debug, Clone, Default)]
pub struct Motion {
    /// Motion regions, largest first; empty when nothing moved.
    pub regions: Vec<Region>,
    /// Share of the unmasked picture that differs from the background
    /// (0 to 1).
    pub changed_share: f32,
    /// A global change (lights, IR switch, somebody right at the lens):
    /// the background was recalibrated on this frame, and the detector
    /// should look at the whole frame once.
    pub global_change: bool,
}

impl Motion {
    /// Whether this frame is worth the detector.
    pub fn any(&self) -> bool {
        self.global_change || !self.regions.is_empty()
    }
}

/// The areas the detector should look at: motion regions widened by
/// `margin_pct` percent of their size on each side and merged where they
/// overlap, or the whole frame when they would cover more than
/// `max_share_pct` percent of it.
pub fn detection_areas(motion: &Motion, margin_pct: f32, max_share_pct: f32) -> Vec<Region> {
    if motion.global_change {
        return vec![Region::WHOLE];
    }
    let areas = merge_overlapping(
        motion
            .regions
            .iter()
            .map(|r| r.widened(margin_pct / 100.0))
            .collect(),
    );
    let share: f32 = areas.iter().map(Region::area).sum();
    if share * 100.0 > max_share_pct {
        return vec![Region::WHOLE];
    }
    areas
}

/// The state the gate keeps between frames; one per camera.
pub struct MotionDetector {
    config: MotionConfig,
    /// Width and height of the shrunk plane, and of the frames it is for.
    size: (usize, usize),
    frame_size: (u32, u32),
    /// True where motion is ignored.
    masked: Vec<bool>,
    unmasked: usize,
    /// Running average of past (normalised, blurred) frames; empty until
    /// the first frame.
    background: Vec<f32>,
    /// The scene as last seen without motion: a pixel back at this value
    /// is background revealed by somebody leaving, not motion (without it
    /// the "ghost" of a departed visitor would wake the detector for
    /// seconds).
    empty_scene: Vec<f32>,
    contrast: VecDeque<(f32, f32)>,
    last_mean: Option<f32>,
    /// Adapting fast after a global change (or at start).
    calibrating: bool,
    /// This frame's contrast stretch points; they join the history only
    /// if the frame shows no motion, so that a visitor's white shirt does
    /// not restretch the scene under the background.
    pending_contrast: Option<(f32, f32)>,
}

impl MotionDetector {
    pub fn new(config: &MotionConfig) -> Self {
        Self {
            config: config.clone(),
            size: (0, 0),
            frame_size: (0, 0),
            masked: Vec::new(),
            unmasked: 0,
            background: Vec::new(),
            empty_scene: Vec::new(),
            contrast: VecDeque::new(),
            last_mean: None,
            calibrating: true,
            pending_contrast: None,
        }
    }

    /// Runs the gate on one frame's luma plane.
    pub fn detect(&mut self, luma: &Plane) -> Motion {
        if (luma.width, luma.height) != self.frame_size {
            self.start_over(luma.width, luma.height);
        }
        let (w, h) = self.size;

        let small = shrink(luma, w, h);
        let mean = self.unmasked_mean(&small);

        let mut current = self.prepare(&small);

        if self.background.is_empty() {
            self.empty_scene = current.clone();
            self.background = current;
            self.last_mean = Some(mean);
            return Motion::default();
        }

        // The whole picture brighter or darker by the same amount (a cloud,
        // the camera's exposure control) is no motion: compare after
        // taking out the typical difference.
        let offset = self.median_difference(&current);
        for v in current.iter_mut() {
            *v -= offset;
        }
        let threshold = self.config.threshold_levels;
        let mut changed = vec![false; current.len()];
        for (i, &c) in current.iter().enumerate() {
            if self.masked[i] || (c - self.background[i]).abs() <= threshold {
                continue;
            }
            if (c - self.empty_scene[i]).abs() <= threshold {
                // Revealed background: forget the ghost at once.
                self.background[i] = c;
            } else {
                changed[i] = true;
            }
        }
        let changed_share =
            changed.iter().filter(|&&c| c).count() as f32 / self.unmasked.max(1) as f32;

        let mut grown = changed;
        for _ in 0..self.config.dilate_px {
            grown = dilate(&grown, w, h);
        }

        let min_area =
            ((self.config.min_region_pct / 100.0) * self.unmasked as f32).max(1.0) as usize;
        let regions = merge_overlapping(
            regions(&grown, &self.masked, w, h, min_area)
                .into_iter()
                .map(|(x1, y1, x2, y2)| Region {
                    x1: x1 as f32 / w as f32,
                    y1: y1 as f32 / h as f32,
                    x2: (x2 + 1) as f32 / w as f32,
                    y2: (y2 + 1) as f32 / h as f32,
                })
                .collect(),
        );

        let jump = self.last_mean.map_or(0.0, |m| (mean - m).abs());
        self.last_mean = Some(mean);
        if changed_share * 100.0 > self.config.global_change_pct
            || jump > self.config.brightness_jump_levels
        {
            // Lights, the IR filter, clouds, or somebody right at the lens:
            // start the background over from this frame, and let the
            // detector look once (but only once per calibration).
            let first = !self.calibrating;
            self.contrast.clear();
            self.background = self.prepare(&small);
            self.empty_scene = self.background.clone();
            self.calibrating = true;
            log::debug!(
                "motion: global change ({:.0} % changed, brightness jump {jump:.0}); recalibrating",
                changed_share * 100.0
            );
            return Motion {
                regions: Vec::new(),
                changed_share,
                global_change: first,
            };
        }
        if self.calibrating && changed_share < CALIBRATED_SHARE {
            self.calibrating = false;
        }

        let alpha = if self.calibrating {
            self.config
                .background_alpha_per_frame
                .max(CALIBRATION_ALPHA)
        } else {
            self.config.background_alpha_per_frame
        };
        for v in current.iter_mut() {
            *v -= offset;
        }
        for ((b, c), &g) in self.background.iter_mut().zip(&current).zip(&grown) {
            let a = if g {
                alpha * CHANGED_ALPHA_FACTOR
            } else {
                alpha
            };
            *b += a * (c - *b);
        }
        // The offset taken out above is let in slowly, as a drift.
        for b in self.background.iter_mut() {
            *b += alpha * offset;
        }

        if regions.is_empty() {
            if let Some(c) = self.pending_contrast.take() {
                if self.contrast.len() == CONTRAST_HISTORY_FRAMES {
                    self.contrast.pop_front();
                }
                self.contrast.push_back(c);
            }
        }
        Motion {
            regions,
            changed_share,
            global_change: false,
        }
    }

    /// Contrast, mask and blur: the shrunk picture as it is compared.
    fn prepare(&mut self, small: &[u8]) -> Vec<f32> {
        let mut current = if self.config.improve_contrast {
            self.normalise_contrast(small)
        } else {
            small.iter().map(|&v| v as f32).collect()
        };
        // Masked pixels are constant, so they never differ.
        for (v, &m) in current.iter_mut().zip(&self.masked) {
            if m {
                *v = 0.0;
            }
        }
        for _ in 0..self.config.blur_radius_px {
            blur_121(&mut current, self.size.0, self.size.1);
        }
        current
    }

    /// The median of (current - background) over the unmasked pixels, to
    /// the nearest luma level: robust against a person covering a third
    /// of the picture.
    fn median_difference(&self, current: &[f32]) -> f32 {
        let mut histogram = [0u32; 511];
        for ((c, b), &m) in current.iter().zip(&self.background).zip(&self.masked) {
            if !m {
                histogram[((c - b).round().clamp(-255.0, 255.0) + 255.0) as usize] += 1;
            }
        }
        let half = (self.unmasked / 2) as u32;
        let mut seen = 0;
        for (i, &n) in histogram.iter().enumerate() {
            seen += n;
            if seen > half {
                return i as f32 - 255.0;
            }
        }
        0.0
    }

    /// A new frame size: new shrunk size, mask and background.
    fn start_over(&mut self, width: u32, height: u32) {
        let h = (self.config.frame_height_px.min(height)).max(1) as usize;
        let w = ((width as f32 * h as f32 / height.max(1) as f32).round() as usize).max(1);
        self.size = (w, h);
        self.frame_size = (width, height);
        self.masked = rasterise_mask(&self.config.mask, w, h);
        self.unmasked = self.masked.iter().filter(|&&m| !m).count();
        self.background.clear();
        self.empty_scene.clear();
        self.contrast.clear();
        self.last_mean = None;
        self.calibrating = true;
    }

    fn unmasked_mean(&self, small: &[u8]) -> f32 {
        let sum: u64 = small
            .iter()
            .zip(&self.masked)
            .filter(|(_, &m)| !m)
            .map(|(&v, _)| v as u64)
            .sum();
        sum as f32 / self.unmasked.max(1) as f32
    }

    /// Stretches the picture from its (recent average) 4th to 96th
    /// percentile onto the full 0-255 range.
    fn normalise_contrast(&mut self, small: &[u8]) -> Vec<f32> {
        let mut histogram = [0u32; 256];
        for (&v, &m) in small.iter().zip(&self.masked) {
            if !m {
                histogram[v as usize] += 1;
            }
        }
        let low = percentile(&histogram, self.unmasked, CONTRAST_LOW_PERCENTILE);
        let high = percentile(&histogram, self.unmasked, CONTRAST_HIGH_PERCENTILE);
        if self.contrast.is_empty() {
            self.contrast.push_back((low, high));
        } else {
            self.pending_contrast = Some((low, high));
        }
        let n = self.contrast.len() as f32;
        let low = self.contrast.iter().map(|c| c.0).sum::<f32>() / n;
        let high = self.contrast.iter().map(|c| c.1).sum::<f32>() / n;
        if high - low < MIN_CONTRAST_SPAN {
            return small.iter().map(|&v| v as f32).collect();
        }
        // Not clipped to 0-255: clipping would turn a uniform brightness
        // drift into local differences at the picture's darkest and
        // lightest spots.
        let scale = 255.0 / (high - low);
        small.iter().map(|&v| (v as f32 - low) * scale).collect()
    }
}

/// Area-average shrink of a luma plane to `w`×`h`. Large frames are
/// sampled on a grid of at most about 4×4 points per output pixel: enough
/// to average out sensor noise, and the cost stays flat as frames grow.
fn shrink(luma: &Plane, w: usize, h: usize) -> Vec<u8> {
    let (sw, sh) = (luma.width as usize, luma.height as usize);
    let step_x = (sw / w / 4).max(1);
    let step_y = (sh / h / 4).max(1);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let (y0, y1) = (y * sh / h, ((y + 1) * sh / h).max(y * sh / h + 1));
        for x in 0..w {
            let (x0, x1) = (x * sw / w, ((x + 1) * sw / w).max(x * sw / w + 1));
            let (mut sum, mut n) = (0u32, 0u32);
            for sy in (y0..y1.min(sh)).step_by(step_y) {
                let row = sy * luma.stride;
                for sx in (x0..x1.min(sw)).step_by(step_x) {
                    sum += luma.data[row + sx * luma.step] as u32;
                    n += 1;
                }
            }
            out.push((sum / n.max(1)) as u8);
        }
    }
    out
}

/// The luma level below which `pct` percent of the `count` pixels lie.
fn percentile(histogram: &[u32; 256], count: usize, pct: f32) -> f32 {
    let target = (count as f32 * pct / 100.0) as u32;
    let mut seen = 0;
    for (level, &n) in histogram.iter().enumerate() {
        seen += n;
        if seen > target {
            return level as f32;
        }
    }
    255.0
}

/// Boxes whose areas overlap become one (the holes of one moving thing can
/// split it into several regions), largest first.
fn merge_overlapping(mut boxes: Vec<Region>) -> Vec<Region> {
    let mut merged = true;
    while merged {
        merged = false;
        'outer: for i in 0..boxes.len() {
            for j in i + 1..boxes.len() {
                if boxes[i].overlaps(&boxes[j]) {
                    boxes[i] = boxes[i].union(&boxes[j]);
                    boxes.swap_remove(j);
                    merged = true;
                    break 'outer;
                }
            }
        }
    }
    boxes.sort_by(|a, b| b.area().total_cmp(&a.area()));
    boxes
}

/// True for pixels whose centre lies inside any polygon (even-odd rule).
fn rasterise_mask(polygons: &[Vec<[f32; 2]>], w: usize, h: usize) -> Vec<bool> {
    let mut masked = vec![false; w * h];
    for y in 0..h {
        let py = (y as f32 + 0.5) / h as f32;
        for x in 0..w {
            let px = (x as f32 + 0.5) / w as f32;
            masked[y * w + x] = polygons.iter().any(|p| inside(p, px, py));
        }
    }
    masked
}

fn inside(polygon: &[[f32; 2]], x: f32, y: f32) -> bool {
    let mut odd = false;
    let mut j = polygon.len() - 1;
    for i in 0..polygon.len() {
        let ([xi, yi], [xj, yj]) = (polygon[i], polygon[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            odd = !odd;
        }
        j = i;
    }
    odd
}

/// One pass of the separable [1 2 1] / 4 blur (a small Gaussian); edges
/// repeat their outermost pixel.
fn blur_121(img: &mut [f32], w: usize, h: usize) {
    let mut tmp = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let l = img[y * w + x.saturating_sub(1)];
            let r = img[y * w + (x + 1).min(w - 1)];
            tmp[y * w + x] = (l + 2.0 * img[y * w + x] + r) * 0.25;
        }
    }
    for y in 0..h {
        for x in 0..w {
            let u = tmp[y.saturating_sub(1) * w + x];
            let d = tmp[(y + 1).min(h - 1) * w + x];
            img[y * w + x] = (u + 2.0 * tmp[y * w + x] + d) * 0.25;
        }
    }
}

/// 3×3 dilation: a pixel is set when it or any neighbour is.
fn dilate(img: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut rows = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            rows[i] = img[i] || (x > 0 && img[i - 1]) || (x + 1 < w && img[i + 1]);
        }
    }
    let mut out = vec![false; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            out[i] = rows[i] || (y > 0 && rows[i - w]) || (y + 1 < h && rows[i + w]);
        }
    }
    out
}

/// Bounding boxes (inclusive pixel corners) of the 8-connected regions of
/// set, unmasked pixels with at least `min_area` pixels.
fn regions(
    set: &[bool],
    masked: &[bool],
    w: usize,
    h: usize,
    min_area: usize,
) -> Vec<(usize, usize, usize, usize)> {
    let mut seen = vec![false; w * h];
    let mut found = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !set[start] || masked[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut x1, mut y1, mut x2, mut y2) = (w, h, 0, 0);
        let mut area = 0;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            area += 1;
            (x1, y1, x2, y2) = (x1.min(x), y1.min(y), x2.max(x), y2.max(y));
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if set[j] && !masked[j] && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if area >= min_area {
            found.push((x1, y1, x2, y2));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    const W: u32 = 320;
    const H: u32 = 240;

    /// A textured doorstep with a little sensor noise that changes per
    /// frame (`seed`).
    fn scene(seed: u32) -> Vec<u8> {
        (0..W * H)
            .map(|i| {
                let (x, y) = (i % W, i / W);
                let texture = 60 + (x / 4 + y / 3) % 40 + ((x * 7 + y * 13) % 11);
                let noise = (i.wrapping_mul(2654435761).wrapping_add(seed * 97) >> 28) % 5;
                (texture + noise) as u8
            })
            .collect()
    }

    fn with_box(mut img: Vec<u8>, x0: u32, y0: u32, size: u32, value: u8) -> Vec<u8> {
        for y in y0..(y0 + size).min(H) {
            for x in x0..(x0 + size).min(W) {
                img[(y * W + x) as usize] = value;
            }
        }
        img
    }

    fn plane(data: &[u8]) -> Plane<'_> {
        Plane {
            data: Cow::Borrowed(data),
            width: W,
            height: H,
            stride: W as usize,
            step: 1,
        }
    }

    fn settled(config: &MotionConfig) -> MotionDetector {
        let mut m = MotionDetector::new(config);
        for seed in 0..10 {
            m.detect(&plane(&scene(seed)));
        }
        m
    }

    #[test]
    fn a_still_noisy_scene_shows_no_motion() {
        let mut m = settled(&MotionConfig::default());
        for seed in 10..40 {
            let motion = m.detect(&plane(&scene(seed)));
            assert!(!motion.any(), "frame {seed}: {motion:?}");
        }
    }

    #[test]
    fn a_moving_object_gives_one_region_where_it_is() {
        let mut m = settled(&MotionConfig::default());
        let motion = m.detect(&plane(&with_box(scene(11), 200, 60, 40, 230)));
        assert_eq!(motion.regions.len(), 1, "{motion:?}");
        let r = motion.regions[0];
        // The box spans x 200-240 of 320 and y 60-100 of 240, give or take
        // the blur and the dilation.
        assert!(
            (r.x1 - 0.625).abs() < 0.03 && (r.x2 - 0.75).abs() < 0.03,
            "{r:?}"
        );
        assert!(
            (r.y1 - 0.25).abs() < 0.03 && (r.y2 - 0.417).abs() < 0.03,
            "{r:?}"
        );
        assert!(!motion.global_change);
    }

    #[test]
    fn motion_ignores_global_brightness_change_after_one_look() {
        let mut m = settled(&MotionConfig::default());
        let brighter = |seed| scene(seed).iter().map(|v| v + 60).collect::<Vec<u8>>();
        let first = m.detect(&plane(&brighter(20)));
        assert!(first.global_change && first.regions.is_empty(), "{first:?}");
        for seed in 21..30 {
            let motion = m.detect(&plane(&brighter(seed)));
            assert!(!motion.any(), "frame {seed} after the change: {motion:?}");
        }
    }

    #[test]
    fn somebody_leaving_after_a_long_stay_leaves_no_ghost() {
        let mut m = settled(&MotionConfig::default());
        // Standing (nearly) still for 40 frames: partly absorbed.
        for seed in 10..50 {
            let x = 150 + seed % 3;
            m.detect(&plane(&with_box(scene(seed), x, 60, 60, 220)));
        }
        let left = m.detect(&plane(&scene(50)));
        assert!(!left.any(), "the frame after leaving: {left:?}");
        for seed in 51..55 {
            let motion = m.detect(&plane(&scene(seed)));
            assert!(!motion.any(), "frame {seed}: {motion:?}");
        }
    }

    #[test]
    fn a_slow_lighting_drift_is_absorbed_without_motion() {
        let mut m = settled(&MotionConfig::default());
        for step in 0..60u32 {
            let img: Vec<u8> = scene(step).iter().map(|&v| v + (step / 2) as u8).collect();
            let motion = m.detect(&plane(&img));
            assert!(!motion.any(), "step {step}: {motion:?}");
        }
    }

    #[test]
    fn a_flickering_tree_is_motion_unless_masked() {
        let tree = |seed: u32| {
            let shade = if seed.is_multiple_of(2) { 20 } else { 220 };
            with_box(scene(seed), 10, 10, 50, shade)
        };
        let mut open = settled(&MotionConfig::default());
        let config = MotionConfig {
            mask: vec![vec![[0.0, 0.0], [0.25, 0.0], [0.25, 0.33], [0.0, 0.33]]],
            ..Default::default()
        };
        let mut masked = settled(&config);
        let mut seen_open = 0;
        for seed in 10..20 {
            seen_open += open.detect(&plane(&tree(seed))).regions.len();
            let motion = masked.detect(&plane(&tree(seed)));
            assert!(!motion.any(), "masked tree, frame {seed}: {motion:?}");
        }
        assert!(
            seen_open >= 5,
            "the unmasked tree moved in {seen_open} frames"
        );
    }

    #[test]
    fn small_regions_are_widened_and_merged_and_large_ones_become_the_frame() {
        let small = Motion {
            regions: vec![
                Region {
                    x1: 0.40,
                    y1: 0.40,
                    x2: 0.50,
                    y2: 0.50,
                },
                Region {
                    x1: 0.52,
                    y1: 0.40,
                    x2: 0.60,
                    y2: 0.50,
                },
                Region {
                    x1: 0.00,
                    y1: 0.90,
                    x2: 0.05,
                    y2: 0.95,
                },
            ],
            ..Default::default()
        };
        let areas = detection_areas(&small, 50.0, 50.0);
        assert_eq!(areas.len(), 2, "{areas:?}");
        assert!(areas.iter().any(|a| a.x1 < 0.40 && a.x2 > 0.60));
        let big = Motion {
            regions: vec![Region {
                x1: 0.1,
                y1: 0.1,
                x2: 0.7,
                y2: 0.8,
            }],
            ..Default::default()
        };
        assert_eq!(detection_areas(&big, 50.0, 50.0), [Region::WHOLE]);
        let global = Motion {
            global_change: true,
            ..Default::default()
        };
        assert_eq!(detection_areas(&global, 50.0, 50.0), [Region::WHOLE]);
    }
}
