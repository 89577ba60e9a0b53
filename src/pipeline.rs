//! One frame in, its faces out: detect, align, embed.
//!
//! The three stages are loaded once (building tract plans is slow) and then
//! run per frame. Everything here is synchronous and allocation-light enough
//! for a Pi core.

use std::path::Path;

use anyhow::{Context, Result};
use image::RgbImage;

use crate::align::Aligner;
use crate::detect::{Detection, Detector, DetectorSettings};
use crate::embed::{Embedder, Embedding};
use crate::frame::Frame;
use crate::models::Manifest;

/// A face seen in a frame.
#[derive(Debug, Clone)]
pub struct Face {
    /// In the frame's (possibly shrunk) pixels.
    pub detection: Detection,
    pub embedding: Embedding,
    /// The aligned crop that was embedded.
    pub crop: RgbImage,
}

pub struct Pipeline {
    pub detector: Detector,
    pub aligner: Aligner,
    pub embedder: Embedder,
}

impl Pipeline {
    /// Loads the detector and the embedder `variant` from `models_dir`.
    pub fn load(
        models_dir: &Path,
        manifest: &Manifest,
        settings: DetectorSettings,
        variant: &str,
    ) -> Result<Self> {
        let detector = Detector::load(models_dir, &manifest.detector, settings)
            .context("loading the face detector")?;
        let embedder = Embedder::load(models_dir, &manifest.embedder, variant)
            .context("loading the face embedder")?;
        let aligner = Aligner::new(manifest.embedder.input_size, manifest.embedder.template);
        Ok(Self {
            detector,
            aligner,
            embedder,
        })
    }

    /// Detects, aligns and embeds every face in `frame`, best detection first.
    pub fn faces(&self, frame: &Frame) -> Result<Vec<Face>> {
        let detections = self.detector.detect(&frame.rgb)?;
        detections
            .into_iter()
            .map(|d| self.embed_detection(&frame.rgb, d))
            .collect()
    }

    /// Aligns and embeds one detection.
    pub fn embed_detection(&self, rgb: &RgbImage, detection: Detection) -> Result<Face> {
        let crop = self
            .aligner
            .crop(rgb, &detection.landmarks)
            .with_context(|| {
                format!(
                    "the landmarks of the face at {:?} are degenerate",
                    detection.face_box
                )
            })?;
        let embedding = self.embedder.embed(&crop)?;
        Ok(Face {
            detection,
            embedding,
            crop,
        })
    }
}
