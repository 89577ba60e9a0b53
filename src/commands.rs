//! One function per subcommand, each taking the parsed config.
//!
//! Commands print results on stdout (text, or one JSON object per line with
//! `--json`) and problems on stderr. A bad photo is reported and skipped; a
//! bad config, a missing model or a broken store stops the command.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::camera;
use crate::cli::{Cli, Command, IndexAction};
use crate::config::{CameraSource, Config, StoreKind};
use crate::events::{Event, EventLog};
use crate::frame::Frame;
use crate::gallery::{unix_seconds, Gallery, StoreSpec, VisitRecord};
use crate::live;
use crate::models::Manifest;
use crate::pipeline::{Face, Pipeline};
use crate::recognize::{Decision, Thresholds};
use crate::service::Service;
use crate::vectorize::{self, client::MetadataIndex, Client, Retry, Store, Token};
use crate::visit::ClosedVisit;

/// Time the frame loop gives the outbox per frame. A request already
/// started may take up to `vectorize.timeout_s`; after a failure nothing
/// is sent until the back-off has passed, so an outage costs the loop at
/// most one timeout per back-off step.
const SYNC_BUDGET_PER_FRAME: Duration = Duration::from_millis(50);
/// How long `index create` waits for the metadata indexes to be applied
/// (the service applies writes within minutes, p99 under 2 minutes).
const METADATA_INDEX_WAIT: Duration = Duration::from_secs(180);
const METADATA_INDEX_POLL: Duration = Duration::from_secs(2);

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
    // check reports a broken config as one of its lines instead of failing.
    if let Command::Check = cli.command {
        return crate::check::check(cli.config.as_deref(), cli.json);
    }
    let running = matches!(cli.command, Command::Run { .. });
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            if running {
                crate::service::configuration_failed(cli.config.as_deref());
            }
            return Err(e);
        }
    };
    crate::logging::apply(
        crate::logging::Verbosity {
            verbose: cli.verbose,
            running,
        },
        config.log.level,
    );
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
        Command::Eval { labels } => eval(&job, &labels),
        Command::Label { who, name } => crate::privacy::label(&job, &who, &name),
        Command::Forget { who, expired } => crate::privacy::forget(&job, who.as_deref(), expired),
        Command::Wipe { yes } => crate::privacy::wipe(&job, yes),
        Command::Check => unreachable!("handled before the config is loaded"),
        Command::Index { action } => match action {
            IndexAction::Create => index_create(&job),
            IndexAction::Info => index_info(&job),
        },
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

/// The embedder a gallery's vectors come from, as the gallery records it.
pub(crate) fn embedder_id(manifest: &Manifest, variant: &str) -> String {
    let model = format!("{}-{variant}", manifest.embedder.provenance.name);
    // int8 and float vectors of the same network are comparable.
    model
        .trim_end_matches("-int8")
        .trim_end_matches("-float")
        .to_string()
}

pub(crate) fn open_gallery(job: &Job) -> Result<Gallery> {
    job.config.prepare_state_dir()?;
    let model = embedder_id(job.manifest, &job.config.models.embedder_variant);
    let spec = match job.config.store {
        StoreKind::Local => StoreSpec::Local,
        StoreKind::Vectorize => {
            let v = &job.config.vectorize;
            let store = Store::new(
                vectorize_client(job)?,
                &model,
                Duration::from_secs_f32(v.retry_max_s),
            );
            StoreSpec::Vectorize {
                store: Box::new(store),
                label: format!("{}/{}", v.account_id, v.index),
            }
        }
    };
    let dim = job.manifest.embedder.output_dim;
    let mut gallery = Gallery::open_with(&job.config.gallery_path(), &model, dim, spec)?;
    gallery.set_query_retry(retry_max(job));
    Ok(gallery)
}

fn retry_max(job: &Job) -> Duration {
    Duration::from_secs_f32(job.config.vectorize.retry_max_s)
}

/// The client for `[vectorize]`, with the token read from its file.
fn vectorize_client(job: &Job) -> Result<Client> {
    client_for(&job.config)
}

/// A Vectorize client for the config's account, index and token.
pub(crate) fn client_for(config: &Config) -> Result<Client> {
    let v = &config.vectorize;
    if v.account_id.is_empty() {
        bail!("vectorize.account_id is not set in the config");
    }
    let token = Token::from_config(&v.token_file)?;
    Ok(Client::new(
        &v.base_url,
        &v.account_id,
        &v.index,
        token,
        Duration::from_secs_f32(v.timeout_s),
    ))
}

/// Sends what enroll queued; an outage leaves it queued, not lost.
fn flush_writes(gallery: &mut Gallery) -> Result<()> {
    if gallery.vectorize().is_none() {
        return Ok(());
    }
    let report = gallery
        .flush()
        .context("the enrolment is saved on this device, but the index refused its vectors")?;
    if report.queued > 0 {
        log::warn!(
            "the Vectorize index is unreachable ({}); {} write(s) wait in the outbox and are \
             sent by the next doorman command or `doorman run`",
            report.offline.as_deref().unwrap_or("no answer"),
            report.queued
        );
    }
    Ok(())
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
    let name = crate::gallery::check_name(name)?;
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
        let found = gallery.search_tolerant(&face.embedding, 1)?;
        if let Some(m) = found.matches.first() {
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
    flush_writes(&mut gallery)?;
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
        if faces.is_empty() {
            if job.json {
                let line = json!({
                    "image": path.display().to_string(),
                    "box": null,
                    "detector_score": null,
                    "id": null,
                    "name": null,
                    "score": null,
                    "decision": "no_face",
                    "closest": null,
                });
                writeln!(out, "{line}")?;
            } else {
                writeln!(out, "{}: no face found", path.display())?;
            }
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

/// `doorman run` inside the appliance's life cycle: signals, systemd
/// notifications and the LED around the loop.
fn run(job: &Job, replay: Option<&Path>) -> Result<Outcome> {
    let mut service = Service::start(&job.config);
    let result = run_loop(job, replay, &mut service);
    service.finish(&result);
    result
}

fn run_loop(job: &Job, replay: Option<&Path>, service: &mut Service) -> Result<Outcome> {
    let c = &job.config;
    let replaying = replay.is_some() || c.camera.source == CameraSource::Files;
    let input = if replaying {
        Some(camera::ReplayInput::new(c, replay)?)
    } else {
        None
    };
    let mut source = camera::open(c, replay)?;
    let pipeline = load_pipeline(job)?;
    let mut gallery = open_gallery(job)?;
    // The frame loop asks the index once per visit and never waits out
    // an outage; it decides from the writes it holds instead.
    gallery.set_query_retry(Duration::ZERO);
    let mut events = EventLog::open(&c.events_path())?;
    let mut lp = live::Loop::new(c, &pipeline);
    log::info!(
        "watching camera {:?} ({:?} source)",
        c.camera.name,
        c.camera.source
    );
    service.ready();

    let mut door = RunDoor {
        job,
        gallery: &mut gallery,
        events: &mut events,
    };
    let counters = live::run(source.as_mut(), &mut lp, service, &mut door)?;

    if job.json {
        println!("{}", json!({ "counters": counters }));
    }
    if gallery.vectorize().is_some() {
        let report = gallery.flush()?;
        if report.queued > 0 {
            log::warn!(
                "{} write(s) are still in the outbox; the next run sends them",
                report.queued
            );
        }
    }
    // A replay names its unreadable frames; a camera just carries on. A
    // replay that ended without a single frame checked nothing, and its
    // exit status must not read as a pass.
    if let Some(input) = &input {
        if counters.frames_read == 0 && !service.should_stop() {
            return Err(input.nothing_replayed(c, counters.dropped_frames));
        }
        if counters.dropped_frames > 0 {
            return Ok(Outcome::SomeInputsFailed);
        }
    }
    Ok(Outcome::Done)
}

/// What `doorman run` does with the loop's results.
struct RunDoor<'a> {
    job: &'a Job,
    gallery: &'a mut Gallery,
    events: &'a mut EventLog,
}

impl live::Door for RunDoor<'_> {
    fn decide(&mut self, visit: &ClosedVisit) -> Result<Decision> {
        decide_visit(self.job, self.gallery, self.events, visit)
    }

    fn sweep(&mut self) {
        // A failed sweep is retried in an hour; it never stops the door.
        if let Err(e) = crate::privacy::expire(&self.job.config, self.gallery) {
            log::warn!("retention sweep: {e:#}");
        }
    }

    fn tick(&mut self) -> Result<()> {
        // Only setup errors stop the loop; an outage waits in the outbox.
        self.gallery.sync(SYNC_BUDGET_PER_FRAME)?;
        Ok(())
    }
}

/// Recognises a closed visit, updates the gallery and writes its event.
fn decide_visit(
    job: &Job,
    gallery: &mut Gallery,
    events: &mut EventLog,
    visit: &ClosedVisit,
) -> Result<Decision> {
    let r = &job.config.recognize;
    // `doorman forget` or `enroll` may have changed the gallery meanwhile.
    gallery.reload_if_changed()?;
    let embedding = visit.embedding()?;
    let found = gallery.search_tolerant(&embedding, r.top_k)?;
    let best = found.matches.into_iter().next();
    let mut decision = thresholds(job).visit(best.as_ref());
    if !found.complete && decision != Decision::Known {
        // Only the device's recent writes were searched: a person the
        // index knows may be missing from them. Calling this visit "new"
        // would store a second identity for them.
        decision = Decision::Uncertain;
    }

    let (visitor, name) = match (decision, &best) {
        (Decision::Known, Some(m)) => {
            // A confident visit refreshes the person's look over time, but
            // only if every face in it is that person on its own: a visit
            // that mixed in somebody else must never teach the gallery
            // that they look alike.
            if gallery.exemplar_count(&m.id) < r.max_exemplars
                && all_faces_match(gallery, visit, &m.id, r, found.complete)?
            {
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
        (_, Decision::Uncertain) if !found.complete => {
            "the index is unreachable and no recent write matches".to_string()
        }
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

/// Whether each kept face of `visit`, on its own, matches visitor `id` at
/// the match threshold. `index_answered` is false when the visit was decided
/// from the device's own writes during an outage; the faces are then
/// checked against those too.
fn all_faces_match(
    gallery: &Gallery,
    visit: &ClosedVisit,
    id: &str,
    r: &crate::config::RecognizeConfig,
    index_answered: bool,
) -> Result<bool> {
    for face in &visit.best {
        let best = if index_answered {
            gallery.search(&face.embedding, 1)?
        } else {
            gallery.search_held(&face.embedding, 1)?
        };
        match best.first() {
            Some(m) if m.id == id && m.score >= r.match_threshold => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// The index commands work on the gallery's Vectorize index; with the
/// local store there is none, and the owner must hear that, not that an
/// account id is missing.
fn require_vectorize_store(job: &Job, command: &str) -> Result<()> {
    if job.config.store != StoreKind::Vectorize {
        bail!(
            "`doorman index {command}` works on a Vectorize index, but the gallery's store \
             is local (store = \"local\"); the index commands need store = \"vectorize\" \
             and a [vectorize] section with account_id, index and token_file"
        );
    }
    Ok(())
}

fn index_create(job: &Job) -> Result<Outcome> {
    require_vectorize_store(job, "create")?;
    let client = vectorize_client(job)?;
    let retry = Retry::For(retry_max(job));
    let dims = job.manifest.embedder.output_dim;
    let model = embedder_id(job.manifest, &job.config.models.embedder_variant);
    let description = format!("doorman face exemplars ({model}, {dims} dimensions)");

    let created = match client.create_index(dims, &description, retry) {
        Ok(_) => true,
        Err(vectorize::Error::IndexExists { .. }) => {
            let existing = client.get_index(retry)?;
            let (d, m) = (existing.config.dimensions, existing.config.metric.clone());
            if d != Some(dims) || m.as_deref() != Some("cosine") {
                bail!(
                    "the index {} exists with dimensions {} and metric {}, but doorman needs \
                     {dims} and cosine; choose another vectorize.index or delete that index",
                    client.index_name(),
                    d.map_or("?".into(), |d| d.to_string()),
                    m.as_deref().unwrap_or("?")
                );
            }
            false
        }
        Err(e) => return Err(e.into()),
    };

    // Vectors written before a metadata index exists are not filterable on
    // it, so wait until the service lists them before anything is written.
    for (property, kind) in vectorize::FILTERED_PROPERTIES {
        let wanted = MetadataIndex {
            property_name: property.to_string(),
            index_type: kind.to_string(),
        };
        client.create_metadata_index(&wanted, retry)?;
    }
    let started = std::time::Instant::now();
    loop {
        let listed = client.list_metadata_indexes(retry)?;
        let missing: Vec<&str> = vectorize::FILTERED_PROPERTIES
            .iter()
            .filter(|(p, _)| !listed.iter().any(|m| m.property_name == *p))
            .map(|(p, _)| *p)
            .collect();
        if missing.is_empty() {
            break;
        }
        if started.elapsed() > METADATA_INDEX_WAIT {
            bail!(
                "the metadata index(es) {} are still not applied after {} s; run \
                 `doorman index create` again before enrolling anybody",
                missing.join(", "),
                METADATA_INDEX_WAIT.as_secs()
            );
        }
        std::thread::sleep(METADATA_INDEX_POLL);
    }

    let properties: Vec<&str> = vectorize::FILTERED_PROPERTIES
        .iter()
        .map(|(p, _)| *p)
        .collect();
    if job.json {
        println!(
            "{}",
            json!({"index": client.index_name(), "created": created, "dimensions": dims,
                   "metric": "cosine", "metadata_indexes": properties})
        );
    } else {
        println!(
            "{} index {} ({dims} dimensions, cosine); metadata indexes: {}",
            if created {
                "created"
            } else {
                "found the existing"
            },
            client.index_name(),
            properties.join(", ")
        );
    }
    Ok(Outcome::Done)
}

fn index_info(job: &Job) -> Result<Outcome> {
    require_vectorize_store(job, "info")?;
    let client = vectorize_client(job)?;
    let retry = Retry::For(retry_max(job));
    let index = client.get_index(retry)?;
    let info = client.info(retry)?;
    let metadata = client.list_metadata_indexes(retry)?;
    let missing: Vec<&str> = vectorize::FILTERED_PROPERTIES
        .iter()
        .filter(|(p, _)| !metadata.iter().any(|m| m.property_name == *p))
        .map(|(p, _)| *p)
        .collect();
    let (queued, unconfirmed, rejected) = open_gallery(job)?.outbox_status()?;
    if !missing.is_empty() {
        log::warn!(
            "the index lacks the metadata index(es) {}: doorman's queries filter on them and \
             find nothing; run `doorman index create`",
            missing.join(", ")
        );
    }
    let properties: Vec<String> = metadata
        .iter()
        .map(|m| format!("{} ({})", m.property_name, m.index_type))
        .collect();
    if job.json {
        println!(
            "{}",
            json!({
                "index": index.name,
                "dimensions": info.dimensions.or(index.config.dimensions),
                "metric": index.config.metric,
                "vector_count": info.vector_count,
                "processed_up_to_mutation": info.processed_up_to_mutation,
                "processed_up_to_datetime": info.processed_up_to_datetime,
                "metadata_indexes": metadata.iter().map(|m| &m.property_name).collect::<Vec<_>>(),
                "outbox": queued,
                "pending_writes": unconfirmed,
                "rejected_writes": rejected,
            })
        );
    } else {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!("index:            {}", index.name);
        println!(
            "dimensions:       {}",
            or_dash(
                info.dimensions
                    .or(index.config.dimensions)
                    .map(|d| d.to_string())
            )
        );
        println!("metric:           {}", or_dash(index.config.metric));
        println!(
            "vectors:          {}",
            or_dash(info.vector_count.map(|n| n.to_string()))
        );
        println!(
            "applied up to:    {} ({})",
            or_dash(info.processed_up_to_mutation),
            or_dash(info.processed_up_to_datetime)
        );
        println!(
            "metadata indexes: {}",
            if properties.is_empty() {
                "none".to_string()
            } else {
                properties.join(", ")
            }
        );
        println!("outbox:           {queued} write(s) waiting to be sent");
        println!("pending:          {unconfirmed} accepted write(s) not yet seen applied");
        if rejected > 0 {
            println!("rejected:         {rejected} write(s) refused by the API (see the log)");
        }
    }
    Ok(Outcome::Done)
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

fn eval(job: &Job, labels: &Path) -> Result<Outcome> {
    let text =
        std::fs::read_to_string(labels).with_context(|| format!("reading {}", labels.display()))?;
    let rows = crate::eval::read_labels(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", labels.display()))?;
    if rows.is_empty() {
        bail!(
            "{} lists no photos (expected `image,identity` rows)",
            labels.display()
        );
    }
    let base = labels.parent().unwrap_or(Path::new("."));
    let pipeline = load_pipeline(job)?;

    let mut samples = Vec::new();
    let mut no_face = Vec::new();
    let mut failed = Vec::new();
    let mut timings = Vec::new();
    for (line, image, identity) in &rows {
        let path = base.join(image);
        let started = std::time::Instant::now();
        match faces_in(job, &pipeline, &path) {
            Err(e) => failed.push(format!("line {line}: {}: {e:#}", path.display())),
            Ok((_, faces)) => {
                timings.push((image.clone(), started.elapsed()));
                match faces.into_iter().max_by(|a, b| {
                    a.detection
                        .face_box
                        .area()
                        .total_cmp(&b.detection.face_box.area())
                }) {
                    Some(face) => samples.push(crate::eval::Sample {
                        identity: identity.clone(),
                        embedding: face.embedding,
                    }),
                    None => no_face.push(image.clone()),
                }
            }
        }
    }
    for f in &failed {
        eprintln!("doorman: {f}");
    }

    let threshold = job.config.recognize.match_threshold;
    let (same, different) = crate::eval::pair_scores(&samples);
    let verification = crate::eval::verify(&same, &different, threshold);
    let identification = crate::eval::identify(&samples, threshold);
    // ROC AUC and the equal error rate are "n/a" with this reason, never NaN.
    let unmeasurable = crate::eval::unmeasurable(&samples);
    timings.sort_by_key(|t| std::cmp::Reverse(t.1));
    timings.truncate(5);

    if job.json {
        let slowest: Vec<_> = timings
            .iter()
            .map(|(i, d)| json!({"image": i, "ms": d.as_millis() as u64}))
            .collect();
        println!(
            "{}",
            json!({
                "labels": labels.display().to_string(),
                "photos": rows.len(),
                "faces_found": samples.len(),
                "no_face": no_face,
                "failed": failed,
                "verification": verification,
                "verification_note": unmeasurable,
                "identification": identification,
                "slowest": slowest,
            })
        );
    } else {
        let v = &verification;
        let pct = |x: f64| format!("{:.2} %", 100.0 * x);
        println!(
            "eval of {} photos listed in {}",
            rows.len(),
            labels.display()
        );
        println!(
            "faces found        {} of {} photos",
            samples.len(),
            rows.len()
        );
        for image in &no_face {
            println!("  no face in       {image}");
        }
        println!(
            "pairs              {} same person, {} different people",
            v.same_pairs, v.different_pairs
        );
        match (v.roc_auc, v.eer.zip(v.eer_threshold)) {
            (Some(auc), Some((eer, at))) => {
                println!("ROC AUC            {auc:.4}");
                println!("equal error rate   {} at threshold {at:.3}", pct(eer));
            }
            _ => {
                let why = unmeasurable.as_deref().unwrap_or("too few pairs");
                println!("ROC AUC            n/a: {why}");
                println!("equal error rate   n/a, as ROC AUC");
            }
        }
        println!(
            "at threshold {:.3}  accuracy {}, false accepts {} ({}), false rejects {}",
            v.threshold,
            pct(v.accuracy),
            v.false_accepts,
            pct(v.false_accept_rate),
            pct(v.false_reject_rate)
        );
        if let (Some(m), Some(frr)) = (
            v.max_different_score,
            v.false_reject_rate_at_zero_false_accepts,
        ) {
            println!(
                "no false accept    above {m:.4} (false rejects there: {})",
                pct(frr)
            );
        }
        let id = &identification;
        match (id.rank1, id.rank1_accepted) {
            (Some(rank1), Some(accepted)) => println!(
                "rank-1             {} of {} probes against one photo each of {} people ({} also above the threshold)",
                pct(rank1),
                id.probes,
                id.gallery,
                pct(accepted)
            ),
            _ => println!(
                "rank-1             n/a: no identity has a second photo with a face to identify"
            ),
        }
        let slow: Vec<_> = timings
            .iter()
            .map(|(i, d)| format!("{i} {} ms", d.as_millis()))
            .collect();
        println!("slowest photos     {}", slow.join(", "));
    }
    Ok(if failed.is_empty() {
        Outcome::Done
    } else {
        Outcome::SomeInputsFailed
    })
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
