//! Embedding: a face crop in, a unit-length vector out.
//!
//! The crop is laid out, channel-ordered and normalised exactly as the
//! manifest says the network was trained, run through tract, and
//! L2-normalised. A vector that is not finite or has no length is an error:
//! it would match everything or nothing, and must never reach the gallery.

use std::path::Path;

use anyhow::{bail, Context, Result};
use image::RgbImage;
use tract_onnx::prelude::Tensor;

use crate::models::{verified_path, ChannelOrder, EmbedderEntry};
use crate::net::{self, Plan};

/// A unit-length face embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Vec<f32>);

/// Norms below this are treated as "no vector at all".
const MIN_RAW_NORM: f32 = 1e-6;

impl Embedding {
    /// L2-normalises `raw`, refusing non-finite or zero-length vectors.
    pub fn normalised(raw: &[f32]) -> Result<Self> {
        if let Some(i) = raw.iter().position(|v| !v.is_finite()) {
            bail!(
                "the embedder returned a non-finite value ({}) at position {i}",
                raw[i]
            );
        }
        let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm.is_nan() || norm <= MIN_RAW_NORM {
            bail!("the embedder returned a zero-length vector");
        }
        Ok(Self(raw.iter().map(|v| v / norm).collect()))
    }

    /// Rebuilds an embedding that was stored normalised.
    pub fn from_stored(values: Vec<f32>) -> Result<Self> {
        Self::normalised(&values)
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    pub fn dim(&self) -> usize {
        self.0.len()
    }

    /// Cosine similarity (both are unit length, so the dot product).
    pub fn cosine(&self, other: &Embedding) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }

    /// The normalised mean of several embeddings.
    pub fn mean<'a>(items: impl IntoIterator<Item = &'a Embedding>) -> Result<Self> {
        let mut sum: Vec<f32> = Vec::new();
        for e in items {
            if sum.is_empty() {
                sum = vec![0.0; e.dim()];
            }
            for (s, v) in sum.iter_mut().zip(&e.0) {
                *s += v;
            }
        }
        Self::normalised(&sum)
    }
}

/// The embedding network with its input conventions.
pub struct Embedder {
    plan: Plan,
    /// Crop width and height.
    pub input_size: [u32; 2],
    mean: [f32; 3],
    scale: f32,
    channels: ChannelOrder,
    output_dim: usize,
}

impl Embedder {
    /// Loads the `variant` (`float`, `int8`) from `dir`, checking its checksum.
    pub fn load(dir: &Path, entry: &EmbedderEntry, variant: &str) -> Result<Self> {
        if entry.input_layout != "NCHW" {
            bail!(
                "embedder input layout {:?} is not supported (NCHW)",
                entry.input_layout
            );
        }
        let path = verified_path(dir, entry.variant(variant)?)?;
        let [w, h] = entry.input_size;
        let plan = net::load(&path, &[1, 3, h as usize, w as usize])?;
        Ok(Self {
            plan,
            input_size: entry.input_size,
            mean: entry.mean,
            scale: entry.scale,
            channels: ChannelOrder::parse(&entry.channel_order)?,
            output_dim: entry.output_dim,
        })
    }

    /// Same network, but fed with another channel order than the manifest's.
    /// Exists so tests can show that a wrong order is caught.
    pub fn with_channel_order(mut self, order: ChannelOrder) -> Self {
        self.channels = order;
        self
    }

    /// The network's input tensor for a face crop.
    pub fn input_tensor(&self, crop: &RgbImage) -> Result<Tensor> {
        let [w, h] = self.input_size;
        if crop.dimensions() != (w, h) {
            bail!(
                "face crop is {:?}, the embedder needs {w}×{h}",
                crop.dimensions()
            );
        }
        let plane = (w * h) as usize;
        let mut data = vec![0f32; 3 * plane];
        for (i, px) in crop.pixels().enumerate() {
            for c in 0..3 {
                data[c * plane + i] =
                    (px[self.channels.source_channel(c)] as f32 - self.mean[c]) * self.scale;
            }
        }
        Tensor::from_shape(&[1, 3, h as usize, w as usize], &data)
    }

    /// Embeds one aligned face crop.
    pub fn embed(&self, crop: &RgbImage) -> Result<Embedding> {
        let out = net::run(&self.plan, self.input_tensor(crop)?).context("running the embedder")?;
        let raw = net::floats(out.first().context("the embedder produced no output")?)?;
        if raw.len() != self.output_dim {
            bail!(
                "the embedder returned {} values, the manifest says {}",
                raw.len(),
                self.output_dim
            );
        }
        Embedding::normalised(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_unit_length() {
        let e = Embedding::normalised(&[3.0, 4.0]).unwrap();
        assert_eq!(e.as_slice(), &[0.6, 0.8]);
        assert!((e.cosine(&e) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn non_finite_and_zero_vectors_are_refused() {
        assert!(Embedding::normalised(&[0.0, 0.0]).is_err());
        let err = Embedding::normalised(&[1.0, f32::NAN])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("non-finite") && err.contains("position 1"),
            "{err}"
        );
        assert!(Embedding::normalised(&[f32::INFINITY, 1.0]).is_err());
    }

    #[test]
    fn the_mean_of_two_embeddings_is_between_them() {
        let a = Embedding::normalised(&[1.0, 0.0]).unwrap();
        let b = Embedding::normalised(&[0.0, 1.0]).unwrap();
        let m = Embedding::mean([&a, &b]).unwrap();
        assert!((m.cosine(&a) - m.cosine(&b)).abs() < 1e-6);
        assert!((m.as_slice()[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }
}
