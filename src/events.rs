//! The events file: one JSON line per closed visit.
//!
//! Appended and synced per event, so an owner (or a script) can follow it
//! with `tail -f` and a power cut loses at most the line being written.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::gallery::VisitRecord;
use crate::visit::ClosedVisit;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// RFC 3339 start of the visit.
    pub time: String,
    pub duration_s: f32,
    /// Visitor id, or null when the visitor was not stored.
    pub visitor: Option<String>,
    pub name: Option<String>,
    /// known, new or uncertain.
    pub decision: String,
    /// Cosine score of the best gallery match, if any.
    pub score: Option<f32>,
    pub frames: u32,
    pub faces: u32,
    pub camera: String,
    /// The saved best face crop (only with `events.save_crops`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop: Option<String>,
}

impl Event {
    pub fn from_visit(visit: &ClosedVisit, record: &VisitRecord, name: Option<&str>) -> Self {
        Self {
            time: humantime::format_rfc3339_seconds(visit.started).to_string(),
            duration_s: (visit.duration().as_secs_f32() * 10.0).round() / 10.0,
            visitor: record.visitor.clone(),
            name: name.map(str::to_string),
            decision: record.decision.clone(),
            score: record.score.map(|s| (s * 1000.0).round() / 1000.0),
            frames: record.frames,
            faces: record.faces,
            camera: record.camera.clone(),
            crop: None,
        }
    }
}

/// Saves a visit's best face crop as `DIR/TIME-WHO.jpg` (WHO: the visitor
/// id, or `unknown`) and returns its path.
pub fn save_crop(dir: &Path, visit: &ClosedVisit, visitor: Option<&str>) -> Result<PathBuf> {
    let best = visit.best.first().context("the visit kept no face crop")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let time = humantime::format_rfc3339_seconds(visit.started)
        .to_string()
        .replace(':', "-");
    let path = dir.join(format!("{time}-{}.jpg", visitor.unwrap_or("unknown")));
    best.crop
        .save_with_format(&path, image::ImageFormat::Jpeg)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

pub struct EventLog {
    file: File,
}

impl EventLog {
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the events file {}", path.display()))?;
        Ok(Self { file })
    }

    pub fn append(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_string(event)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .context("writing an event")?;
        self.file.sync_data().context("syncing the events file")?;
        Ok(())
    }
}
