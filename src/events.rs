//! The events file: one JSON line per closed visit.
//!
//! Appended and synced per event, so an owner (or a script) can follow it
//! with `tail -f` and a power cut loses at most the line being written.
//!
//! `forget`, `wipe` and the retention sweep rewrite the file without some
//! lines, atomically (a new file renamed over the old one), while the
//! service may be appending to it: both sides hold an advisory lock on the
//! state folder, and the appender reopens the file when it was replaced, so
//! no event goes into a file that is no longer there.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
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
    path: PathBuf,
}

impl EventLog {
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(Self {
            file: open_append(path)?,
            path: path.to_path_buf(),
        })
    }

    pub fn append(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_string(event)?;
        line.push('\n');
        let _lock = StateLock::take(&self.path)?;
        if self.was_replaced() {
            // forget or wipe rewrote the file since it was opened.
            self.file = open_append(&self.path)?;
        }
        self.file
            .write_all(line.as_bytes())
            .context("writing an event")?;
        self.file.sync_data().context("syncing the events file")?;
        Ok(())
    }

    /// Whether the path no longer names the file this log has open.
    fn was_replaced(&self) -> bool {
        match (fs::metadata(&self.path), self.file.metadata()) {
            (Ok(on_disk), Ok(open)) => (on_disk.dev(), on_disk.ino()) != (open.dev(), open.ino()),
            _ => true,
        }
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the events file {}", path.display()))
}

/// An exclusive advisory lock on the folder that holds the events file,
/// released when dropped. The folder, not the file: the file is replaced
/// by a rewrite, and a lock on the old one would protect nothing.
struct StateLock {
    _dir: File,
}

impl StateLock {
    fn take(events: &Path) -> Result<Self> {
        let dir = events.parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let handle = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        // SAFETY: flock on a file descriptor we own; it blocks until the
        // other side (an append or a rewrite: milliseconds) is done.
        let rc = unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("locking {}", dir.display()));
        }
        Ok(Self { _dir: handle })
    }
}

/// Rewrites the events file without the lines of the visitors in `ids`;
/// returns how many lines went. A line that does not parse (cut short by a
/// power cut, or edited by hand) goes too when it holds one of the ids as
/// a JSON string: it may carry the person's name.
pub fn remove_visitors(path: &Path, ids: &HashSet<String>) -> Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let quoted: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    rewrite(path, |line| {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => !v
                .get("visitor")
                .and_then(|v| v.as_str())
                .is_some_and(|v| ids.contains(v)),
            Err(_) => !quoted.iter().any(|q| line.contains(q.as_str())),
        }
    })
}

/// Empties the events file; returns how many lines went.
pub fn clear(path: &Path) -> Result<usize> {
    rewrite(path, |_| false)
}

/// Keeps the lines `keep` accepts: writes them to a new file beside the old
/// one, syncs it, renames it over the old one and syncs the folder, so a
/// power cut leaves either the old file or the new one, never half.
fn rewrite(path: &Path, keep: impl Fn(&str) -> bool) -> Result<usize> {
    if !path.exists() {
        return Ok(0);
    }
    let _lock = StateLock::take(path)?;
    // Bytes, not text: a line that is not UTF-8 (a damaged card) must not
    // stop the rest from being rewritten. It is judged by its readable
    // part and, if kept, kept as it was.
    let bytes =
        fs::read(path).with_context(|| format!("reading the events file {}", path.display()))?;
    let meta = fs::metadata(path)
        .with_context(|| format!("reading the events file {}", path.display()))?;
    let mut kept = Vec::with_capacity(bytes.len());
    let mut removed = 0;
    for line in bytes.split(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        if text.trim().is_empty() {
            continue;
        }
        if keep(text.trim_end_matches('\r')) {
            kept.extend_from_slice(line);
            kept.push(b'\n');
        } else {
            removed += 1;
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "events.jsonl".into());
    let tmp = path.with_file_name(format!(".{name}.rewrite"));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        // The owner runs `forget` with sudo while the service, as its own
        // user, keeps appending: the new file keeps the old one's owner
        // and mode.
        if let Err(e) = std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid())) {
            log::warn!("keeping the owner of {}: {e}", path.display());
        }
        f.set_permissions(meta.permissions())?;
        f.write_all(&kept)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().with_context(|| format!("rewriting the events file {}", path.display()))?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(visitor: Option<&str>, name: Option<&str>) -> Event {
        Event {
            time: "2026-01-01T00:00:00Z".into(),
            duration_s: 1.0,
            visitor: visitor.map(str::to_string),
            name: name.map(str::to_string),
            decision: "known".into(),
            score: Some(0.95),
            frames: 3,
            faces: 3,
            camera: "door".into(),
            crop: None,
        }
    }

    #[test]
    fn removing_a_visitor_rewrites_the_file_and_the_open_log_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut log = EventLog::open(&path).unwrap();
        log.append(&event(Some("visitor-0001"), Some("Ann")))
            .unwrap();
        log.append(&event(Some("visitor-0002"), None)).unwrap();
        log.append(&event(None, None)).unwrap();

        let ids = HashSet::from(["visitor-0001".to_string()]);
        assert_eq!(remove_visitors(&path, &ids).unwrap(), 1);
        // The log still open from before the rewrite writes into the new file.
        log.append(&event(Some("visitor-0003"), None)).unwrap();

        let text = fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("visitor-0001") && !text.contains("Ann"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("visitor-0003"));
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn damaged_lines_do_not_stop_a_rewrite_and_go_when_they_name_the_visitor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut bytes = b"{\"visitor\":\"visitor-0001\",\"name\":\"Ann\"}\n".to_vec();
        bytes.extend_from_slice(b"\xff\xfe not text\n");
        bytes.extend_from_slice(b"{\"visitor\":\"visitor-0002\",\"name\":null}\n");
        bytes.extend_from_slice(b"{\"visitor\":\"visitor-0001\",\"name\":\"An");
        fs::write(&path, &bytes).unwrap();
        let ids = HashSet::from(["visitor-0001".to_string()]);
        assert_eq!(remove_visitors(&path, &ids).unwrap(), 2);
        let left = fs::read(&path).unwrap();
        assert_eq!(
            left,
            b"\xff\xfe not text\n{\"visitor\":\"visitor-0002\",\"name\":null}\n".to_vec()
        );
    }

    #[test]
    fn clearing_leaves_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut log = EventLog::open(&path).unwrap();
        log.append(&event(Some("visitor-0001"), Some("Ann")))
            .unwrap();
        assert_eq!(clear(&path).unwrap(), 1);
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
    }
}
