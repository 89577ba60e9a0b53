//! One function per subcommand, each taking the parsed config.
//!
//! Commands print results on stdout (text, or one JSON object per line with
//! `--json`) and problems on stderr. A bad photo is reported and skipped; a
//! bad config, a missing model or a broken store stops the command.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use serde_json::json;

use crate::camera;
use crate::cli::{Cli, Command};
use crate::config::{CameraSource, Config};
use crate::events::{Event, EventLog};
use crate::frame::Frame;
use crate::gallery::{unix_seconds, Gallery, VisitRecord};
use crate::live;
use crate::models::Manifest;
use crate::pipeline::{Face, Pipeline};
use crate::recognize::{Decision, Thresholds};
use crate::visit::ClosedVisit;

/// How a command ended when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Some inputs were rejected; each was named on stderr.
    SomeInputsFailed,
}

/// Everything a command needs from the command line and the config.
pub struct Job {
    pub config: Config,
    pub manifest: &'static Manifest,
    pub json: bool,
}

pub fn dispatch(cli: Cli) -> Result<Outcome> {
    let config = Config::load(cli.config.as_deref())?;
    let manifest = Manifest::builtin();
    let job = Job {
        config,
        manifest,
        json: cli.json,
    };
    match cli.command {
        Command::Enroll {
            name,
            largest,
            images,
        } => enroll(&job, &name, largest, &images),
        Command::Identify { images } => identify(&job, &images),
        Command::Run { replay } => run(&job, replay.as_deref()),
        Command::Visitors => visitors(&job),
    }
}

fn load_pipeline(job: &Job) -> Result<Pipeline> {
    let c = &job.config;
    Pipeline::load(
        &c.models.dir,
        job.manifest,
        c.detector_settings(),
        &c.models.embedder_variant,
    )
}

fn open_gallery(job: &Job) -> Result<Gallery> {
    let e = &job.manifest.embedder;
    let model = format!(
        "{}-{}",
        e.provenance.name, job.config.models.embedder_variant
    );
    // int8 and float vectors of the same network are comparable.
    let model = model
        .trim_end_matches("-int8")
        .trim_end_matches("-float")
        .to_string();
    Gallery::open(&job.config.gallery_path(), &model, e.output_dim)
}

fn thresholds(job: &Job) -> Thresholds {
    Thresholds {
        match_threshold: job.config.recognize.match_threshold,
        new_threshold: job.config.recognize.new_threshold,
    }
}

/// Decodes a photo and finds its faces, or says why it cannot be used.
fn faces_in(job: &Job, pipeline: &Pipeline, path: &Path) -> Result<(Frame, Vec<Face>)> {
    let frame =
        Frame::open(path, job.config.detect.max_image_px).map_err(|e| anyhow::anyhow!("{e}"))?;
    let faces = pipeline.faces(&frame)?;
    Ok((frame, faces))
}

fn enroll(job: &Job, name: &str, largest: bool, images: &[PathBuf]) -> Result<Outcome> {
    let name = name.trim();
    if name.is_empty() {
        bail!("--name must not be empty");
    }
    let pipeline = load_pipeline(job)?;
    let mut gallery = open_gallery(job)?;

    // Check every photo first: a person is enrolled from all of them or
    // from none, never half.
    let mut chosen = Vec::new();
    let mut problems = Vec::new();
    for path in images {
        match faces_in(job, &pipeline, path) {
            Err(e) => problems.push(format!("{}: {e:#}", path.display())),
            Ok((_, faces)) if faces.is_empty() => problems.push(format!("{}: no face found", path.display())),
            Ok((_, faces)) if faces.len() > 1 && !largest => problems.push(format!(
                "{}: {} faces found; enrol from a photo of {name} alone, or pass --largest to take the largest face",
                path.display(),
                faces.len()
            )),
            Ok((_, faces)) => {
                let face = faces
                    .into_iter()
                    .max_by(|a, b| a.detection.face_box.area().total_cmp(&b.detection.face_box.area()))
                    .expect("at least one face");
                chosen.push((path, face));
            }
        }
    }
    if !problems.is_empty() {
        bail!("nothing was enrolled:\n  {}", problems.join("\n  "));
    }

    let t = thresholds(job);
    let existing = gallery.find_by_name(name)?;
    for (path, face) in &chosen {
        if let Some(m) = gallery.search(&face.embedding, 1)?.first() {
            if m.score >= t.match_threshold && Some(&m.id) != existing.as_ref() {
                log::warn!(
                    "{}: this face matches {} ({}) with score {:.3}; enrolling it as {name} anyway",
                    path.display(),
                    m.name.as_deref().unwrap_or("an anonymous visitor"),
                    m.id,
                    m.score
                );
            }
        }
    }
    let now = SystemTime::now();
    let id = match existing {
        Some(id) => id,
        None => gallery.add_visitor(Some(name), now)?,
    };
    for (path, face) in &chosen {
        gallery.add_exemplar(&id, &face.embedding, &path.display().to_string(), now)?;
    }
    let total = gallery.exemplar_count(&id);
    if job.json {
        println!(
            "{}",
            json!({"id": id, "name": name, "photos": chosen.len(), "exemplars": total})
        );
    } else {
        println!(
            "enrolled {name} as {id} from {} photo(s); {total} exemplar(s) in all",
            chosen.len()
        );
    }
    Ok(Outcome::Done)
}

fn identify(job: &Job, images: &[PathBuf]) -> Result<Outcome> {
    let pipeline = load_pipeline(job)?;
    let gallery = open_gallery(job)?;
    let t = thresholds(job);
    let mut outcome = Outcome::Done;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in images {
        let (frame, mut faces) = match faces_in(job, &pipeline, path) {
            Ok(found) => found,
            Err(e) => {
                eprintln!("doorman: {}: {e:#}", path.display());
                outcome = Outcome::SomeInputsFailed;
                continue;
            }
        };
        if faces.is_empty() && !job.json {
            writeln!(out, "{}: no face found", path.display())?;
        }
        // Left to right reads naturally.
        faces.sort_by(|a, b| a.detection.face_box.x1.total_cmp(&b.detection.face_box.x1));
        for face in &faces {
            let best = gallery
                .search(&face.embedding, job.config.recognize.top_k)?
                .into_iter()
                .next();
            let decision = t.identify(best.as_ref());
            let b = face.detection.face_box.scaled(frame.scale_to_original);
            let bx = [b.x1, b.y1, b.x2, b.y2].map(|v| v.round() as i64);
            // id and name say who this is: null unless known. The closest
            // match is reported separately, so nobody mistakes it for an answer.
            let known = best.as_ref().filter(|_| decision == Decision::Known);
            if job.json {
                let line = json!({
                    "image": path.display().to_string(),
                    "box": bx,
                    "detector_score": round3(face.detection.score),
                    "id": known.map(|m| &m.id),
                    "name": known.and_then(|m| m.name.as_deref()),
                    "score": best.as_ref().map(|m| round3(m.score)),
                    "decision": decision.as_str(),
                    "closest": best.as_ref().map(|m| json!({"id": m.id, "name": m.name})),
                });
                writeln!(out, "{line}")?;
            } else {
                let verdict = match (&best, known) {
                    (_, Some(m)) => format!("{}, score {:.3}", display_name(m), m.score),
                    (Some(m), None) => {
                        format!("unknown, closest {} at {:.3}", display_name(m), m.score)
                    }
                    (None, None) => "unknown, gallery empty".to_string(),
                };
                let [x1, y1, x2, y2] = bx;
                writeln!(
                    out,
                    "{}: face at [{x1}, {y1}, {x2}, {y2}]: {verdict}",
                    path.display()
                )?;
            }
        }
    }
    Ok(outcome)
}

fn run(job: &Job, replay: Option<&Path>) -> Result<Outcome> {
    let c = &job.config;
    let mut source = camera::open(c, replay)?;
    let pipeline = load_pipeline(job)?;
    let mut gallery = open_gallery(job)?;
    let mut events = EventLog::open(&c.events_path())?;
    let stop = live::stop_on_signals()?;

    let mut lp = live::Loop::new(c, &pipeline);
    let counters = live::run(
        source.as_mut(),
        &mut lp,
        &stop,
        &mut live::LogStatus,
        |visit| decide_visit(job, &mut gallery, &mut events, visit),
    )?;

    if job.json {
        println!("{}", json!({ "counters": counters }));
    }
    // A replay names its unreadable frames; a camera just carries on.
    let replaying = replay.is_some() || c.camera.source == CameraSource::Files;
    if replaying && counters.dropped_frames > 0 {
        return Ok(Outcome::SomeInputsFailed);
    }
    Ok(Outcome::Done)
}

/// Recognises a closed visit, updates the gallery and writes its event.
fn decide_visit(
    job: &Job,
    gallery: &mut Gallery,
    events: &mut EventLog,
    visit: &ClosedVisit,
) -> Result<Decision> {
    let r = &job.config.recognize;
    let embedding = visit.embedding()?;
    let best = gallery.search(&embedding, r.top_k)?.into_iter().next();
    let decision = thresholds(job).visit(best.as_ref());

    let (visitor, name) = match (decision, &best) {
        (Decision::Known, Some(m)) => {
            // A good, confident face refreshes the person's look over time.
            if gallery.exemplar_count(&m.id) < r.max_exemplars {
                gallery.add_exemplar(&m.id, &embedding, "visit", visit.ended)?;
            }
            (Some(m.id.clone()), m.name.clone())
        }
        (Decision::New, _) if r.remember_strangers => {
            let id = gallery.add_visitor(None, visit.started)?;
            gallery.add_exemplar(&id, &embedding, "visit", visit.ended)?;
            (Some(id), None)
        }
        _ => (None, None),
    };
    let score = best.as_ref().map(|m| m.score);
    let record = VisitRecord {
        visitor: visitor.clone(),
        started_at: unix_seconds(visit.started),
        ended_at: unix_seconds(visit.ended),
        decision: decision.as_str().to_string(),
        score,
        frames: visit.frames,
        faces: visit.best.len() as u32,
        camera: job.config.camera.name.clone(),
    };
    gallery.record_visit(&record)?;
    let mut event = Event::from_visit(visit, &record, name.as_deref());
    if job.config.events.save_crops {
        let dir = job.config.state_dir.join("crops");
        match crate::events::save_crop(&dir, visit, visitor.as_deref()) {
            Ok(path) => event.crop = Some(path.display().to_string()),
            Err(e) => log::warn!("saving the visit's face crop: {e:#}"),
        }
    }
    events.append(&event)?;

    let who = match (&name, &visitor) {
        (Some(n), Some(id)) => format!("{n} ({id})"),
        (None, Some(id)) => id.clone(),
        _ => "somebody".to_string(),
    };
    let why = match (&best, decision) {
        (Some(m), Decision::Known) => format!(
            "score {:.3} >= match_threshold {:.3}",
            m.score, r.match_threshold
        ),
        (Some(m), Decision::Uncertain) => format!(
            "closest {} at {:.3}, between new_threshold {:.3} and match_threshold {:.3}",
            m.id, m.score, r.new_threshold, r.match_threshold
        ),
        (Some(m), _) => format!(
            "closest {} at {:.3} < new_threshold {:.3}",
            m.id, m.score, r.new_threshold
        ),
        (None, _) => "gallery empty".to_string(),
    };
    log::info!(
        "visit: {who}, {} ({why}; {} frames, best {} faces, {:.1} s)",
        decision.as_str(),
        visit.frames,
        visit.best.len(),
        visit.duration().as_secs_f32()
    );
    if job.json {
        println!("{}", serde_json::to_string(&event)?);
    }
    Ok(decision)
}

fn visitors(job: &Job) -> Result<Outcome> {
    let gallery = open_gallery(job)?;
    let list = gallery.visitors()?;
    if job.json {
        for v in &list {
            println!("{}", serde_json::to_string(v)?);
        }
        return Ok(Outcome::Done);
    }
    if list.is_empty() {
        println!("no visitors yet (enrol someone with `doorman enroll --name NAME PHOTO...`)");
        return Ok(Outcome::Done);
    }
    println!(
        "{:<14} {:<24} {:>6}  {:<20}  {:<20}",
        "ID", "NAME", "VISITS", "FIRST SEEN", "LAST SEEN"
    );
    for v in &list {
        println!(
            "{:<14} {:<24} {:>6}  {:<20}  {:<20}",
            v.id,
            v.name.as_deref().unwrap_or("(anonymous)"),
            v.visits,
            v.first_seen.map_or("-".into(), format_time),
            v.last_seen.map_or("-".into(), format_time)
        );
    }
    Ok(Outcome::Done)
}

fn format_time(unix: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// "Name (visitor-0001)", or the id alone for an anonymous visitor.
fn display_name(m: &crate::gallery::Match) -> String {
    match &m.name {
        Some(n) => format!("{n} ({})", m.id),
        None => m.id.clone(),
    }
}

fn round3(v: f32) -> f64 {
    (v as f64 * 1000.0).round() / 1000.0
}
