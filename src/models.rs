//! The model manifest and the model files it pins.
//!
//! `models/manifest.toml` is compiled into the binary, so a doorman build knows
//! exactly which detector and embedder files it was made for: their checksums,
//! input layout, channel order, normalisation and the embedder's alignment
//! template. A model file whose checksum differs is refused, with the command
//! that rebuilds it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The manifest as shipped in `models/manifest.toml`.
pub const MANIFEST_TOML: &str = include_str!("../models/manifest.toml");

/// How to get the model files back, for both kinds of install: the
/// package ships them in /usr/share/doorman/models, a source checkout
/// builds them with `models/fetch`.
pub const REBUILD_HINT: &str = concat!(
    "if doorman was installed from its package, reinstall it (`sudo apt install \
     --reinstall ./doorman_",
    env!("CARGO_PKG_VERSION"),
    "_arm64.deb`), which puts the models in /usr/share/doorman/models; in a source \
     checkout, run `models/fetch` (it rebuilds every model file into \
     ${DOORMAN_CACHE:-~/.cache/doorman}/models), then point `models.dir` at that folder"
);

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    pub detector: DetectorEntry,
    pub embedder: EmbedderEntry,
}

/// Where a model comes from; shown by `doorman check` and the README.
#[derive(Debug, Clone, Deserialize)]
pub struct Provenance {
    pub name: String,
    pub package: String,
    pub version: String,
    pub licence: String,
}

/// One produced model file.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelFile {
    /// File name inside the models folder.
    pub file: String,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DetectorEntry {
    #[serde(flatten)]
    pub provenance: Provenance,
    /// `NWHC`: MTCNN's networks were trained on transposed images.
    pub input_layout: String,
    pub channel_order: String,
    pub mean: [f32; 3],
    pub scale: f32,
    pub pnet_threshold: f32,
    pub rnet_threshold: f32,
    pub onet_threshold: f32,
    pub scale_factor: f32,
    pub min_face_px: u32,
    pub files: BTreeMap<String, ModelFile>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmbedderEntry {
    #[serde(flatten)]
    pub provenance: Provenance,
    /// Width and height of the face crop.
    pub input_size: [u32; 2],
    pub input_layout: String,
    pub channel_order: String,
    pub mean: [f32; 3],
    pub scale: f32,
    pub output_dim: usize,
    /// Five landmarks (left eye, right eye, nose tip, left and right mouth
    /// corner) in face-crop pixels.
    pub template: [[f32; 2]; 5],
    pub match_threshold: f32,
    pub new_threshold: f32,
    pub metric: String,
    pub default_variant: String,
    pub files: BTreeMap<String, ModelFile>,
}

/// The channel order a network expects its input in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

impl ChannelOrder {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "RGB" => Ok(Self::Rgb),
            "BGR" => Ok(Self::Bgr),
            other => bail!("unknown channel order {other:?} in the model manifest (RGB or BGR)"),
        }
    }

    /// Index into an RGB pixel for input channel `c`.
    pub fn source_channel(self, c: usize) -> usize {
        match self {
            Self::Rgb => c,
            Self::Bgr => 2 - c,
        }
    }
}

impl Manifest {
    /// The manifest compiled into this binary. It is checked by a unit test,
    /// so a build whose manifest does not parse never ships.
    pub fn builtin() -> &'static Manifest {
        static BUILTIN: std::sync::OnceLock<Manifest> = std::sync::OnceLock::new();
        BUILTIN.get_or_init(|| {
            Self::parse(MANIFEST_TOML).expect("models/manifest.toml compiled into doorman")
        })
    }

    pub fn parse(text: &str) -> Result<Self> {
        let m: Manifest = toml::from_str(text).context("parsing models/manifest.toml")?;
        if m.schema != 1 {
            bail!(
                "model manifest schema {} is not supported (expected 1)",
                m.schema
            );
        }
        Ok(m)
    }
}

impl EmbedderEntry {
    /// The file entry for a variant such as `float` or `int8`.
    pub fn variant(&self, variant: &str) -> Result<&ModelFile> {
        self.files.get(variant).with_context(|| {
            let known: Vec<_> = self.files.keys().map(String::as_str).collect();
            format!(
                "embedder variant {variant:?} is not in the model manifest (known: {})",
                known.join(", ")
            )
        })
    }
}

impl DetectorEntry {
    pub fn file(&self, net: &str) -> Result<&ModelFile> {
        self.files
            .get(net)
            .with_context(|| format!("detector network {net:?} is missing from the model manifest"))
    }
}

/// The folder models are read from when the config does not name one:
/// `$DOORMAN_CACHE/models`, then `~/.cache/doorman/models` when it exists
/// (where `models/fetch` puts them), then the packaged location.
pub fn default_models_dir() -> PathBuf {
    if let Some(cache) = std::env::var_os("DOORMAN_CACHE") {
        return PathBuf::from(cache).join("models");
    }
    if let Some(home) = std::env::var_os("HOME") {
        let dev = PathBuf::from(home).join(".cache/doorman/models");
        if dev.is_dir() {
            return dev;
        }
    }
    PathBuf::from("/usr/share/doorman/models")
}

/// Checks `file` in `dir` against its pinned checksum and returns its path.
pub fn verified_path(dir: &Path, entry: &ModelFile) -> Result<PathBuf> {
    let path = dir.join(&entry.file);
    let got = sha256_file(&path).with_context(|| {
        format!(
            "model file {} cannot be read; {REBUILD_HINT}",
            path.display()
        )
    })?;
    if !got.eq_ignore_ascii_case(&entry.sha256) {
        bail!(
            "model file {} has sha256 {got}, but the manifest pins {}; it is damaged or from \
             another build: {REBUILD_HINT}",
            path.display(),
            entry.sha256
        );
    }
    Ok(path)
}

/// Lower-case hex SHA-256 of a file, read in chunks.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_pins_every_file() {
        let m = Manifest::parse(MANIFEST_TOML).unwrap();
        for f in m.detector.files.values().chain(m.embedder.files.values()) {
            assert_eq!(f.sha256.len(), 64, "{} must carry a sha256", f.file);
        }
        assert!(m.embedder.files.contains_key(&m.embedder.default_variant));
        assert_eq!(m.embedder.output_dim, 128);
    }

    #[test]
    fn a_file_with_the_wrong_checksum_is_refused_with_the_rebuild_command() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x.onnx"), b"not a model").unwrap();
        let entry = ModelFile {
            file: "x.onnx".into(),
            sha256: "0".repeat(64),
        };
        let err = verified_path(dir.path(), &entry).unwrap_err().to_string();
        assert!(
            err.contains("x.onnx") && err.contains("models/fetch"),
            "{err}"
        );
    }

    /// The whole error for a model file that is not in its folder.
    fn missing_model_error() -> String {
        let dir = tempfile::tempdir().unwrap();
        let entry = ModelFile {
            file: "absent.onnx".into(),
            sha256: "0".repeat(64),
        };
        format!("{:#}", verified_path(dir.path(), &entry).unwrap_err())
    }

    #[test]
    fn a_model_error_advises_a_packaged_install_and_a_source_checkout() {
        let err = missing_model_error();
        let package = format!(
            "sudo apt install --reinstall ./doorman_{}_arm64.deb",
            env!("CARGO_PKG_VERSION")
        );
        assert!(err.contains(&package), "{err}");
        assert!(err.contains("/usr/share/doorman/models"), "{err}");
        assert!(
            err.contains("in a source checkout, run `models/fetch`"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_names_the_path_and_the_rebuild_command() {
        let err = missing_model_error();
        assert!(
            err.contains("absent.onnx") && err.contains("models/fetch"),
            "{err}"
        );
    }
}
