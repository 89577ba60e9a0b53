//! The owner's privacy commands: name a visitor, forget a person, wipe
//! everything, and the retention rule for anonymous visitors.
//!
//! Deletion goes through `Gallery` methods (so every store can mirror
//! them) and then through the events file, which is rewritten without the
//! person's lines. The journal keeps what was logged: that is the system's
//! log, rotated by journald, and the README says how to clear it.

use std::collections::HashSet;
use std::io::BufRead;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::commands::{open_gallery, Job, Outcome};
use crate::config::Config;
use crate::events;
use crate::gallery::{Forgotten, Gallery};

/// `doorman label ID NAME`.
pub fn label(job: &Job, who: &str, name: &str) -> Result<Outcome> {
    let mut gallery = open_gallery(job)?;
    let Some(id) = gallery.resolve(who)? else {
        bail!("there is no visitor {who:?} (`doorman visitors` lists them)");
    };
    let before = gallery.visitor(&id)?.and_then(|v| v.name);
    gallery.label(&id, name)?;
    let name = name.trim();
    if job.json {
        println!("{}", json!({"id": id, "name": name, "was": before}));
    } else {
        match before {
            Some(old) if old != name => println!("{id} renamed from {old} to {name}"),
            _ => println!("{id} is now called {name}"),
        }
    }
    Ok(Outcome::Done)
}

/// `doorman forget ID-or-NAME` and `doorman forget --expired`.
pub fn forget(job: &Job, who: Option<&str>, expired: bool) -> Result<Outcome> {
    let mut gallery = open_gallery(job)?;
    let gone = if expired {
        expire(&job.config, &mut gallery)?
    } else {
        let who = who.unwrap_or_default();
        let Some(id) = gallery.resolve(who)? else {
            bail!("there is no visitor {who:?} (`doorman visitors` lists them)");
        };
        // The events file first: should it fail, the visitor is still
        // there to forget again, rather than a name left behind for good.
        let lines = remove_events(&job.config, &HashSet::from([id.clone()]))?;
        let forgotten = gallery.forget(&id)?;
        log::info!(
            "forgot {}: {} exemplars, {} visits, {lines} events lines",
            forgotten.id,
            forgotten.exemplars,
            forgotten.visits
        );
        vec![forgotten]
    };
    for f in &gone {
        if job.json {
            println!("{}", serde_json::to_string(f)?);
        } else {
            let who = match &f.name {
                Some(n) => format!("{n} ({})", f.id),
                None => f.id.clone(),
            };
            println!(
                "forgot {who}: {} exemplar(s), {} visit(s) and their events",
                f.exemplars, f.visits
            );
        }
    }
    if gone.is_empty() && !job.json {
        println!(
            "no anonymous visitor is older than retention_days = {}",
            job.config.recognize.retention_days
        );
    }
    Ok(Outcome::Done)
}

/// Deletes the anonymous visitors past `retention_days` and their events
/// lines. Run by `doorman run` at start and hourly, and by
/// `doorman forget --expired`.
pub fn expire(config: &Config, gallery: &mut Gallery) -> Result<Vec<Forgotten>> {
    let keep = Duration::from_secs(u64::from(config.recognize.retention_days) * 86_400);
    let cutoff = SystemTime::now()
        .checked_sub(keep)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let gone = gallery.expire_anonymous(cutoff)?;
    if !gone.is_empty() {
        let ids: HashSet<String> = gone.iter().map(|f| f.id.clone()).collect();
        let lines = remove_events(config, &ids)?;
        log::info!(
            "retention: deleted {} anonymous visitor(s) not seen for {} days, with {lines} events lines",
            gone.len(),
            config.recognize.retention_days
        );
    }
    Ok(gone)
}

fn remove_events(config: &Config, ids: &HashSet<String>) -> Result<usize> {
    let lines = events::remove_visitors(&config.events_path(), ids)?;
    // Face crops saved with `events.save_crops` are named TIME-ID.jpg.
    remove_crops(config, |name| {
        ids.iter().any(|id| name.ends_with(&format!("-{id}.jpg")))
    })?;
    Ok(lines)
}

/// Deletes the saved face crops (`STATE_DIR/crops`) whose file name
/// `doomed` picks; returns how many went.
fn remove_crops(config: &Config, doomed: impl Fn(&str) -> bool) -> Result<usize> {
    let dir = config.state_dir.join("crops");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        let pick = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(&doomed);
        if pick {
            std::fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// `doorman wipe`: every visitor, embedding, visit and event, after the
/// owner typed `yes` (or passed `--yes`).
pub fn wipe(job: &Job, yes: bool) -> Result<Outcome> {
    if !yes {
        eprint!(
            "This deletes every visitor, face embedding, visit and event in {}.\n\
             Type yes to go on: ",
            job.config.state_dir.display()
        );
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("nothing was deleted (the answer was not yes)");
        }
    }
    let mut gallery = open_gallery(job)?;
    let visitors = gallery.visitors()?.len();
    let visits = gallery.visit_count()?;
    // Events first, as in `forget`: a failure leaves a wipe to repeat.
    let lines = events::clear(&job.config.events_path())?;
    gallery.wipe()?;
    remove_crops(&job.config, |name| name.ends_with(".jpg"))?;
    if job.json {
        println!(
            "{}",
            json!({"visitors": visitors, "visits": visits, "events": lines})
        );
    } else {
        println!("wiped {visitors} visitor(s), {visits} visit(s) and {lines} event(s)");
    }
    Ok(Outcome::Done)
}
