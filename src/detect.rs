//! Face detection: MTCNN's three networks run by tract.
//!
//! P-Net scans an image pyramid for face-like 12×12 windows, R-Net re-scores
//! and refines each candidate on a 24×24 crop, O-Net does the same on 48×48
//! and adds the five landmarks that alignment needs. The output is a list of
//! detections in frame pixels.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use fast_image_resize::{ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use tract_onnx::prelude::{tract_ndarray, Tensor};

use crate::models::{verified_path, ChannelOrder, DetectorEntry};
use crate::net::{self, Plan};

/// A face box in frame pixels: left, top, right, bottom.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FaceBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl FaceBox {
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }

    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }

    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    /// Intersection over union.
    pub fn iou(&self, other: &FaceBox) -> f32 {
        let inter = FaceBox {
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
            x2: self.x2.min(other.x2),
            y2: self.y2.min(other.y2),
        };
        let i = if inter.width() > 0.0 && inter.height() > 0.0 {
            inter.area()
        } else {
            0.0
        };
        let union = self.area() + other.area() - i;
        if union > 0.0 {
            i / union
        } else {
            0.0
        }
    }

    /// The same box in another pixel grid (`factor` > 1 enlarges).
    pub fn scaled(&self, factor: f32) -> FaceBox {
        FaceBox {
            x1: self.x1 * factor,
            y1: self.y1 * factor,
            x2: self.x2 * factor,
            y2: self.y2 * factor,
        }
    }

    /// Clipped to a `width`×`height` frame.
    pub fn clipped(&self, width: u32, height: u32) -> FaceBox {
        let (w, h) = (width as f32, height as f32);
        FaceBox {
            x1: self.x1.clamp(0.0, w),
            y1: self.y1.clamp(0.0, h),
            x2: self.x2.clamp(0.0, w),
            y2: self.y2.clamp(0.0, h),
        }
    }
}

/// One face found in a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Clipped to the frame: a face cut by the edge keeps its visible part.
    pub face_box: FaceBox,
    /// O-Net's face probability.
    pub score: f32,
    /// Left eye, right eye, nose tip, left and right mouth corner (as seen in
    /// the image), in frame pixels; may lie outside the frame.
    pub landmarks: [[f32; 2]; 5],
}

impl Detection {
    /// The same detection in a grid `factor` times larger.
    pub fn scaled(&self, factor: f32) -> Detection {
        let mut d = self.clone();
        d.face_box = self.face_box.scaled(factor);
        for p in &mut d.landmarks {
            p[0] *= factor;
            p[1] *= factor;
        }
        d
    }
}

/// Detector settings that the owner may tune in the config.
#[derive(Debug, Clone, Copy)]
pub struct DetectorSettings {
    /// Faces smaller than this (box side, frame pixels) are not looked for.
    pub min_face_px: u32,
    pub pnet_threshold: f32,
    pub rnet_threshold: f32,
    /// The final score a detection needs.
    pub score_threshold: f32,
    /// Ratio between pyramid levels.
    pub scale_factor: f32,
}

impl DetectorSettings {
    pub fn from_manifest(entry: &DetectorEntry) -> Self {
        Self {
            min_face_px: entry.min_face_px,
            pnet_threshold: entry.pnet_threshold,
            rnet_threshold: entry.rnet_threshold,
            score_threshold: entry.onet_threshold,
            scale_factor: entry.scale_factor,
        }
    }
}

/// P-Net windows are 12 px at stride 2 on each pyramid level.
const PNET_CELL_PX: f32 = 12.0;
const PNET_STRIDE_PX: f32 = 2.0;
/// Overlap above which a weaker candidate is dropped, per stage (the
/// published MTCNN values).
const NMS_PER_LEVEL: f32 = 0.5;
const NMS_ACROSS_LEVELS: f32 = 0.7;
const NMS_RNET: f32 = 0.7;
const NMS_ONET_MIN: f32 = 0.7;
/// When nothing is found, the frame is padded by this share of its size on
/// each side and searched again for faces at least half as big as the frame:
/// a face that fills the whole picture has no room for MTCNN's box.
const FULL_FRAME_PAD: f32 = 0.35;

/// P-Net plans kept for different pyramid level sizes; a camera needs a
/// dozen, photos of many sizes more. Past this the cache starts over.
const PNET_PLAN_CACHE: usize = 96;

/// How many times each network ran since the detector was loaded; the
/// benchmark multiplies these by each network's own time to get the
/// inference share of a frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetRuns {
    /// P-Net runs, one per pyramid level.
    pub pnet: u64,
    pub rnet: u64,
    pub onet: u64,
}

/// The P-Net pyramid for a `w`×`h` image: one `(scale, width, height)`
/// per level, from the level where a `min_face`-pixel face is 12 px down
/// to the last level whose shorter side still holds a 12 px window.
pub fn pyramid(w: u32, h: u32, min_face: f32, scale_factor: f32) -> Vec<(f32, u32, u32)> {
    let m = PNET_CELL_PX / min_face;
    let mut levels = Vec::new();
    for level in 0.. {
        let s = m * scale_factor.powi(level);
        if (w.min(h) as f32) * s < PNET_CELL_PX {
            break;
        }
        let sw = (w as f32 * s).ceil() as u32;
        let sh = (h as f32 * s).ceil() as u32;
        levels.push((s, sw, sh));
    }
    levels
}

/// MTCNN with its three optimised plans.
pub struct Detector {
    /// P-Net runs 3-4× faster in tract with a fixed input shape than with a
    /// symbolic one, and a fixed plan takes only milliseconds to build, so
    /// there is one plan per pyramid level size, built on first use.
    pnet_path: std::path::PathBuf,
    pnet: Mutex<HashMap<(u32, u32), Plan>>,
    rnet: Plan,
    onet: Plan,
    mean: [f32; 3],
    scale: f32,
    channels: ChannelOrder,
    pub settings: DetectorSettings,
    /// Counters behind [`Detector::runs`].
    runs: [AtomicU64; 3],
}

/// A candidate between stages: box corners, score and box regression.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    b: [f32; 4],
    score: f32,
    reg: [f32; 4],
}

impl Detector {
    /// Loads the three networks from `dir`, checking their checksums.
    pub fn load(dir: &Path, entry: &DetectorEntry, settings: DetectorSettings) -> Result<Self> {
        if entry.input_layout != "NWHC" {
            bail!(
                "detector input layout {:?} is not supported (NWHC)",
                entry.input_layout
            );
        }
        let path =
            |net: &str| -> Result<std::path::PathBuf> { verified_path(dir, entry.file(net)?) };
        let pnet_path = path("pnet")?;
        // Load one plan now, so that a broken file fails at start-up.
        let first = net::load(
            &pnet_path,
            &pnet_shape(PNET_CELL_PX as u32, PNET_CELL_PX as u32),
        )?;
        let pnet = Mutex::new(HashMap::from([(
            (PNET_CELL_PX as u32, PNET_CELL_PX as u32),
            first,
        )]));
        let rnet = net::load(&path("rnet")?, &[1, 24, 24, 3])?;
        let onet = net::load(&path("onet")?, &[1, 48, 48, 3])?;
        Ok(Self {
            pnet_path,
            pnet,
            rnet,
            onet,
            mean: entry.mean,
            scale: entry.scale,
            channels: ChannelOrder::parse(&entry.channel_order)?,
            settings,
            runs: Default::default(),
        })
    }

    /// Network runs so far (all threads, all frames).
    pub fn runs(&self) -> NetRuns {
        let [p, r, o] = &self.runs;
        NetRuns {
            pnet: p.load(Ordering::Relaxed),
            rnet: r.load(Ordering::Relaxed),
            onet: o.load(Ordering::Relaxed),
        }
    }

    fn count(&self, net: usize) {
        self.runs[net].fetch_add(1, Ordering::Relaxed);
    }

    /// Finds the faces in `rgb`, best first.
    pub fn detect(&self, rgb: &RgbImage) -> Result<Vec<Detection>> {
        let found = self.detect_with_min_face(rgb, self.settings.min_face_px as f32)?;
        if !found.is_empty() {
            return Ok(found);
        }
        self.detect_full_frame_face(rgb)
    }

    fn detect_with_min_face(&self, rgb: &RgbImage, min_face: f32) -> Result<Vec<Detection>> {
        let (w, h) = rgb.dimensions();
        if w < PNET_CELL_PX as u32 || h < PNET_CELL_PX as u32 {
            return Ok(Vec::new());
        }

        let candidates = self.propose(rgb, min_face)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }

        let refined = self.refine(rgb, candidates)?;
        if refined.is_empty() {
            return Ok(Vec::new());
        }

        let mut found = self.finish(rgb, refined)?;
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(found)
    }

    /// Retries on a grey-padded copy, looking only for faces that are large
    /// relative to the frame, and maps the result back.
    fn detect_full_frame_face(&self, rgb: &RgbImage) -> Result<Vec<Detection>> {
        let (w, h) = rgb.dimensions();
        let pad_x = (w as f32 * FULL_FRAME_PAD).round() as u32;
        let pad_y = (h as f32 * FULL_FRAME_PAD).round() as u32;
        let mut padded =
            RgbImage::from_pixel(w + 2 * pad_x, h + 2 * pad_y, image::Rgb([128, 128, 128]));
        image::imageops::replace(&mut padded, rgb, pad_x as i64, pad_y as i64);
        let min_face = (w.min(h) as f32 * 0.5).max(self.settings.min_face_px as f32);
        let found = self.detect_with_min_face(&padded, min_face)?;
        Ok(found
            .into_iter()
            .map(|mut d| {
                let (dx, dy) = (pad_x as f32, pad_y as f32);
                d.face_box = FaceBox {
                    x1: d.face_box.x1 - dx,
                    y1: d.face_box.y1 - dy,
                    x2: d.face_box.x2 - dx,
                    y2: d.face_box.y2 - dy,
                }
                .clipped(w, h);
                for p in &mut d.landmarks {
                    p[0] -= dx;
                    p[1] -= dy;
                }
                d
            })
            .filter(|d| d.face_box.area() > 0.0)
            .collect())
    }

    /// Stage 1: P-Net over the pyramid, merged, regressed and squared.
    fn propose(&self, rgb: &RgbImage, min_face: f32) -> Result<Vec<[f32; 4]>> {
        let (w, h) = rgb.dimensions();
        let mut all = Vec::new();
        let mut previous: Option<RgbImage> = None;
        for (s, sw, sh) in pyramid(w, h, min_face, self.settings.scale_factor) {
            // Each level is shrunk from the one before, not from the frame:
            // the triangle filter's support grows as the scale shrinks, so
            // from the frame every level cost as much as the first (the
            // whole pyramid took longer than P-Net itself). One step of
            // 0.709 still averages every source pixel, as an area filter
            // does.
            let source = previous.as_ref().unwrap_or(rgb);
            let scaled = resize(source, sw, sh)?;
            let input = self.tensor_nwhc(&scaled)?;
            let out = net::run(&self.pnet_plan(sw, sh)?, input).context("running P-Net")?;
            self.count(0);
            let (prob, reg) = pick_outputs2(&out, "P-Net")?;
            let out_h = out
                .iter()
                .find(|t| t.shape().last() == Some(&2))
                .map_or(0, |t| t.shape()[2]);
            let level_boxes = pnet_candidates(prob, reg, out_h, s, self.settings.pnet_threshold)?;
            all.extend(nms(level_boxes, NMS_PER_LEVEL, Overlap::Union));
            previous = Some(scaled);
        }
        let merged = nms(all, NMS_ACROSS_LEVELS, Overlap::Union);
        Ok(merged
            .into_iter()
            .map(|c| {
                let (bw, bh) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
                let b = [
                    c.b[0] + c.reg[0] * bw,
                    c.b[1] + c.reg[1] * bh,
                    c.b[2] + c.reg[2] * bw,
                    c.b[3] + c.reg[3] * bh,
                ];
                square(b).map(f32::trunc)
            })
            .collect())
    }

    /// Stage 2: R-Net on 24×24 crops.
    fn refine(&self, rgb: &RgbImage, boxes: Vec<[f32; 4]>) -> Result<Vec<[f32; 4]>> {
        let mut kept = Vec::new();
        for b in boxes {
            let crop = crop_padded(rgb, b, 24)?;
            let out = net::run(&self.rnet, self.tensor_nwhc(&crop)?).context("running R-Net")?;
            self.count(1);
            let (prob, reg) = pick_outputs2(&out, "R-Net")?;
            let score = prob[1];
            if score > self.settings.rnet_threshold {
                kept.push(Candidate {
                    b,
                    score,
                    reg: [reg[0], reg[1], reg[2], reg[3]],
                });
            }
        }
        Ok(nms(kept, NMS_RNET, Overlap::Union)
            .into_iter()
            .map(|c| square(regress(c.b, c.reg)))
            .collect())
    }

    /// Stage 3: O-Net on 48×48 crops gives the final score and landmarks.
    fn finish(&self, rgb: &RgbImage, boxes: Vec<[f32; 4]>) -> Result<Vec<Detection>> {
        let mut kept: Vec<(Candidate, [[f32; 2]; 5])> = Vec::new();
        for b in boxes {
            let b = b.map(f32::trunc);
            let crop = crop_padded(rgb, b, 48)?;
            let out = net::run(&self.onet, self.tensor_nwhc(&crop)?).context("running O-Net")?;
            self.count(2);
            let (prob, reg, marks) = pick_outputs3(&out)?;
            let score = prob[1];
            if score <= self.settings.score_threshold {
                continue;
            }
            let (bw, bh) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
            let mut landmarks = [[0.0; 2]; 5];
            for (k, p) in landmarks.iter_mut().enumerate() {
                *p = [b[0] - 1.0 + bw * marks[k], b[1] - 1.0 + bh * marks[k + 5]];
            }
            let c = Candidate {
                b: regress(b, [reg[0], reg[1], reg[2], reg[3]]),
                score,
                reg: [0.0; 4],
            };
            kept.push((c, landmarks));
        }
        let order = nms_indices(
            &kept.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            NMS_ONET_MIN,
            Overlap::Min,
        );
        let (w, h) = rgb.dimensions();
        Ok(order
            .into_iter()
            .map(|i| {
                let (c, landmarks) = kept[i];
                Detection {
                    face_box: FaceBox {
                        x1: c.b[0],
                        y1: c.b[1],
                        x2: c.b[2],
                        y2: c.b[3],
                    }
                    .clipped(w, h),
                    score: c.score,
                    landmarks,
                }
            })
            .filter(|d| d.face_box.area() > 0.0)
            .collect())
    }

    /// The P-Net plan for a `w`×`h` pyramid level.
    fn pnet_plan(&self, w: u32, h: u32) -> Result<Plan> {
        let mut plans = self
            .pnet
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(plan) = plans.get(&(w, h)) {
            return Ok(plan.clone());
        }
        let plan = net::load(&self.pnet_path, &pnet_shape(w, h))?;
        if plans.len() >= PNET_PLAN_CACHE {
            plans.clear();
        }
        plans.insert((w, h), plan.clone());
        Ok(plan)
    }

    /// MTCNN's input for `img`: see [`nwhc_tensor`].
    fn tensor_nwhc(&self, img: &RgbImage) -> Result<Tensor> {
        nwhc_tensor(img, self.channels, self.mean, self.scale)
    }
}

/// The `[1, W, H, 3]` tensor of `img`, each channel `(v - mean) * scale`.
/// The layout is the image transposed, so the copy walks strips of
/// columns: the rows it reads and the columns it writes both stay in cache
/// (column by column, every pixel read missed the cache on large pyramid
/// levels).
fn nwhc_tensor(
    img: &RgbImage,
    channels: ChannelOrder,
    mean: [f32; 3],
    scale: f32,
) -> Result<Tensor> {
    const STRIP: usize = 16;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    let order = [0, 1, 2].map(|c| channels.source_channel(c));
    let table: [[f32; 256]; 3] =
        std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 - mean[c]) * scale));
    let mut data = vec![0f32; w * h * 3];
    for x0 in (0..w).step_by(STRIP) {
        let x1 = (x0 + STRIP).min(w);
        for y in 0..h {
            let row = &src[(y * w + x0) * 3..(y * w + x1) * 3];
            for (i, px) in row.chunks_exact(3).enumerate() {
                let out = &mut data[((x0 + i) * h + y) * 3..][..3];
                for c in 0..3 {
                    out[c] = table[c][px[order[c]] as usize];
                }
            }
        }
    }
    Ok(tract_ndarray::Array4::from_shape_vec((1, w, h, 3), data)?.into())
}

fn pnet_shape(w: u32, h: u32) -> [usize; 4] {
    [1, w as usize, h as usize, 3]
}

/// Splits a two-output network's results into (probabilities, regression)
/// by their last dimension (2 and 4), whatever order the file lists them in.
fn pick_outputs2<'a>(out: &'a [Tensor], what: &str) -> Result<(&'a [f32], &'a [f32])> {
    let mut prob = None;
    let mut reg = None;
    for t in out {
        match t.shape().last() {
            Some(2) => prob = Some(slice(t)?),
            Some(4) => reg = Some(slice(t)?),
            _ => {}
        }
    }
    match (prob, reg) {
        (Some(p), Some(r)) => Ok((p, r)),
        _ => bail!(
            "{what} outputs have unexpected shapes: {:?}",
            out.iter().map(|t| t.shape()).collect::<Vec<_>>()
        ),
    }
}

/// O-Net: (probabilities, box regression, landmarks) by last dimension.
fn pick_outputs3(out: &[Tensor]) -> Result<(&[f32], &[f32], &[f32])> {
    let mut parts = [None, None, None];
    for t in out {
        match t.shape().last() {
            Some(2) => parts[0] = Some(slice(t)?),
            Some(4) => parts[1] = Some(slice(t)?),
            Some(10) => parts[2] = Some(slice(t)?),
            _ => {}
        }
    }
    match parts {
        [Some(p), Some(r), Some(l)] => Ok((p, r, l)),
        _ => bail!(
            "O-Net outputs have unexpected shapes: {:?}",
            out.iter().map(|t| t.shape()).collect::<Vec<_>>()
        ),
    }
}

fn slice(t: &Tensor) -> Result<&[f32]> {
    net::floats(t)
}

/// Windows whose face probability passes `threshold` on one pyramid level
/// scaled by `scale`. Outputs are laid out `[1, W', H', C]`, like the input,
/// and cell (x, y) covers the 12×12 window at (2x, 2y) of the level.
fn pnet_candidates(
    prob: &[f32],
    reg: &[f32],
    out_h: usize,
    scale: f32,
    threshold: f32,
) -> Result<Vec<Candidate>> {
    let cells = prob.len() / 2;
    if reg.len() != cells * 4 || out_h == 0 || !cells.is_multiple_of(out_h) {
        bail!(
            "P-Net outputs disagree: {} probabilities, {} regressions, height {out_h}",
            prob.len(),
            reg.len()
        );
    }
    let mut found = Vec::new();
    for i in 0..cells {
        let score = prob[2 * i + 1];
        if score < threshold {
            continue;
        }
        let (xi, yi) = ((i / out_h) as f32, (i % out_h) as f32);
        let b = [
            ((PNET_STRIDE_PX * xi + 1.0) / scale).trunc(),
            ((PNET_STRIDE_PX * yi + 1.0) / scale).trunc(),
            ((PNET_STRIDE_PX * xi + PNET_CELL_PX) / scale).trunc(),
            ((PNET_STRIDE_PX * yi + PNET_CELL_PX) / scale).trunc(),
        ];
        found.push(Candidate {
            b,
            score,
            reg: [reg[4 * i], reg[4 * i + 1], reg[4 * i + 2], reg[4 * i + 3]],
        });
    }
    Ok(found)
}

/// Applies box regression relative to the box's inclusive size.
fn regress(b: [f32; 4], reg: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [
        b[0] + reg[0] * w,
        b[1] + reg[1] * h,
        b[2] + reg[2] * w,
        b[3] + reg[3] * h,
    ]
}

/// The square around a box's centre with its longer side.
fn square(b: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let side = w.max(h);
    let x1 = b[0] + w * 0.5 - side * 0.5;
    let y1 = b[1] + h * 0.5 - side * 0.5;
    [x1, y1, x1 + side, y1 + side]
}

/// Cuts the inclusive box `b` out of `img` (zero outside the frame) and
/// resizes it to `size`×`size`. MTCNN's boxes count from one, so the crop
/// starts one pixel up and left of the box's corner.
fn crop_padded(img: &RgbImage, b: [f32; 4], size: u32) -> Result<RgbImage> {
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    let x0 = b[0] as i64 - 1;
    let y0 = b[1] as i64 - 1;
    let w = ((b[2] - b[0]) as i64 + 1).max(1);
    let h = ((b[3] - b[1]) as i64 + 1).max(1);
    let mut crop = RgbImage::new(w as u32, h as u32);
    for y in y0.max(0)..(y0 + h).min(ih) {
        for x in x0.max(0)..(x0 + w).min(iw) {
            crop.put_pixel(
                (x - x0) as u32,
                (y - y0) as u32,
                *img.get_pixel(x as u32, y as u32),
            );
        }
    }
    resize(&crop, size, size)
}

/// `src` resized to `w`×`h` with the triangle (bilinear) filter, as
/// `image::imageops::resize` with `FilterType::Triangle` does, but with
/// SIMD integer arithmetic: the whole pyramid is resized for every frame
/// the detector sees.
fn resize(src: &RgbImage, w: u32, h: u32) -> Result<RgbImage> {
    let mut dst = RgbImage::new(w, h);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(
        fast_image_resize::FilterType::Bilinear,
    ));
    Resizer::new()
        .resize(src, &mut dst, &options)
        .with_context(|| format!("resizing {}x{} to {w}x{h}", src.width(), src.height()))?;
    Ok(dst)
}

#[derive(Clone, Copy)]
enum Overlap {
    Union,
    Min,
}

/// Greedy non-maximum suppression; returns kept candidates, best first.
fn nms(cands: Vec<Candidate>, threshold: f32, kind: Overlap) -> Vec<Candidate> {
    nms_indices(&cands, threshold, kind)
        .into_iter()
        .map(|i| cands[i])
        .collect()
}

fn nms_indices(cands: &[Candidate], threshold: f32, kind: Overlap) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_by(|&a, &b| cands[b].score.total_cmp(&cands[a].score));
    let area = |b: &[f32; 4]| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let mut keep = Vec::new();
    while let Some(&best) = order.first() {
        keep.push(best);
        let bb = cands[best].b;
        order = order[1..]
            .iter()
            .copied()
            .filter(|&j| {
                let o = cands[j].b;
                let iw = (bb[2].min(o[2]) - bb[0].max(o[0]) + 1.0).max(0.0);
                let ih = (bb[3].min(o[3]) - bb[1].max(o[1]) + 1.0).max(0.0);
                let inter = iw * ih;
                let ratio = match kind {
                    Overlap::Union => inter / (area(&bb) + area(&o) - inter),
                    Overlap::Min => inter / area(&bb).min(area(&o)),
                };
                ratio <= threshold
            })
            .collect();
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nwhc_tensor_is_the_image_transposed_and_normalised() {
        // Wider than one strip of columns and not a multiple of it.
        let (w, h) = (37, 23);
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (y * 11) as u8, (x * 3 + y * 5) as u8])
        });
        for channels in [ChannelOrder::Rgb, ChannelOrder::Bgr] {
            let mean = [127.5, 120.0, 110.0];
            let t = nwhc_tensor(&img, channels, mean, 0.0078125).unwrap();
            assert_eq!(t.shape(), &[1, w as usize, h as usize, 3]);
            let v = t.to_plain_array_view::<f32>().unwrap();
            for x in 0..w {
                for y in 0..h {
                    let px = img.get_pixel(x, y).0;
                    for c in 0..3 {
                        let want = (px[channels.source_channel(c)] as f32 - mean[c]) * 0.0078125;
                        assert_eq!(
                            v[[0, x as usize, y as usize, c]],
                            want,
                            "{channels:?} {x},{y},{c}"
                        );
                    }
                }
            }
        }
    }

    fn cand(b: [f32; 4], score: f32) -> Candidate {
        Candidate {
            b,
            score,
            reg: [0.0; 4],
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_separate_ones() {
        let kept = nms(
            vec![
                cand([0., 0., 10., 10.], 0.8),
                cand([1., 1., 11., 11.], 0.9),
                cand([50., 50., 60., 60.], 0.7),
            ],
            0.5,
            Overlap::Union,
        );
        let scores: Vec<f32> = kept.iter().map(|c| c.score).collect();
        assert_eq!(scores, vec![0.9, 0.7]);
    }

    #[test]
    fn square_keeps_the_centre_and_takes_the_longer_side() {
        assert_eq!(square([0., 0., 10., 20.]), [-5., 0., 15., 20.]);
    }

    #[test]
    fn crop_beyond_the_edge_is_zero_filled() {
        let img = RgbImage::from_pixel(10, 10, image::Rgb([200, 200, 200]));
        let crop = crop_padded(&img, [-9., 1., 10., 20.], 20).unwrap();
        assert_eq!(crop.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(crop.get_pixel(15, 2).0, [200, 200, 200]);
    }

    #[test]
    fn the_simd_resize_agrees_with_images_triangle_filter() {
        // A pattern with detail at every scale, shrunk as the pyramid does
        // and enlarged as a small face's crop is.
        let img = RgbImage::from_fn(131, 97, |x, y| {
            let v = |k: u32| ((x * k + y * (k + 3)) % 251) as u8;
            image::Rgb([v(3), v(7), (x * y % 256) as u8])
        });
        for (w, h) in [(93, 69), (24, 24), (48, 48), (200, 150)] {
            let ours = resize(&img, w, h).unwrap();
            let theirs = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
            let worst = ours
                .as_raw()
                .iter()
                .zip(theirs.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(
                worst <= 2,
                "{w}x{h}: differs from image's resize by {worst}"
            );
        }
    }

    #[test]
    fn clipping_keeps_the_visible_part_of_an_edge_face() {
        let b = FaceBox {
            x1: -20.,
            y1: 10.,
            x2: 40.,
            y2: 70.,
        }
        .clipped(100, 50);
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (0., 10., 40., 50.));
    }
}
