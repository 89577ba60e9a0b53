//! The gallery: visitors, their exemplar embeddings and their visits.
//!
//! One SQLite file in WAL mode with full sync, so a power cut at any moment
//! leaves it readable with every committed visit. Visitors, visits and the
//! register of exemplars always live here; the exemplar *vectors* live in
//! the configured store: this file (`local`: exact cosine over all of them,
//! held in memory, since a front door sees hundreds of people, not
//! millions) or a Cloudflare Vectorize index (`vectorize`: writes go
//! through a durable outbox in this file, see `crate::vectorize`).
//!
//! Deleting people (`label`, `forget`, `expire_anonymous`, `wipe`) happens
//! only through the methods here, so that every store that mirrors the
//! gallery can hook the same calls. Deleted rows are overwritten in the
//! file (`secure_delete`) and the write-ahead log is emptied afterwards:
//! forgetting someone must not leave their name or vectors in free pages.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::embed::Embedding;
use crate::vectorize::{self, outbox, Retry, Store, SyncReport};

/// A best match for a query: one per visitor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// Stable visitor id, e.g. `visitor-0007`.
    pub id: String,
    pub name: Option<String>,
    /// Cosine similarity of the closest exemplar.
    pub score: f32,
}

/// One identity as listed by `doorman visitors`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Visitor {
    pub id: String,
    pub name: Option<String>,
    pub visits: u64,
    /// Unix seconds.
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub exemplars: u64,
}

/// What a closed visit leaves in the gallery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisitRecord {
    pub visitor: Option<String>,
    pub started_at: i64,
    pub ended_at: i64,
    pub decision: String,
    pub score: Option<f32>,
    pub frames: u32,
    pub faces: u32,
    pub camera: String,
}

/// Where exemplar vectors are kept.
pub enum StoreSpec {
    /// In the gallery file itself.
    Local,
    /// In a Vectorize index; `label` (account/index) is recorded in the
    /// file so it is never paired with another index by mistake.
    Vectorize { store: Box<Store>, label: String },
}

/// The seam between the gallery's records and its vectors.
enum Vectors {
    /// Every exemplar as (visitor id, embedding), mirrored from the file.
    Local(Vec<(String, Embedding)>),
    Vectorize(Box<Store>),
}

/// The gallery: SQLite records plus the configured vector store.
pub struct Gallery {
    db: Connection,
    vectors: Vectors,
    /// Dimension of the embedder the gallery was made with.
    dim: usize,
    /// SQLite's `data_version` when `exemplars` was last read: it changes
    /// when another process (`doorman forget` beside the service) writes.
    seen_version: i64,
    /// Model name the gallery was opened for (metadata, filter).
    embedder: String,
    /// How long `search` may retry the index: commands wait, the frame
    /// loop does not.
    query_retry: Retry,
}

/// What `forget` removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forgotten {
    pub id: String,
    pub name: Option<String>,
    pub exemplars: u64,
    pub visits: u64,
}

/// A gallery search and whether the configured store answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub matches: Vec<Match>,
    /// False when the index could not be asked and only the writes kept
    /// on the device were searched.
    pub complete: bool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS visitors (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    name       TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    first_seen INTEGER,
    last_seen  INTEGER,
    visits     INTEGER NOT NULL DEFAULT 0
);
-- vector: the embedding with the local store; empty when it lives in a
-- Vectorize index (a gallery file never mixes the two: `check_store_label`).
CREATE TABLE IF NOT EXISTS exemplars (
    id         TEXT PRIMARY KEY,
    visitor    TEXT NOT NULL REFERENCES visitors(id) ON DELETE CASCADE,
    vector     BLOB NOT NULL,
    source     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS visits (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    visitor    TEXT REFERENCES visitors(id) ON DELETE CASCADE,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER NOT NULL,
    decision   TEXT NOT NULL,
    score      REAL,
    frames     INTEGER NOT NULL,
    faces      INTEGER NOT NULL,
    camera     TEXT NOT NULL
);
";

/// Longest visitor name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A visitor name as the owner typed it, trimmed; refused when empty, too
/// long, or holding control characters (they would garble logs and tables).
pub fn check_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() {
        bail!("the name is empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        bail!(
            "the name has {} characters; at most {MAX_NAME_CHARS} are allowed",
            name.chars().count()
        );
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        bail!("the name {:?} holds the control character {:?}", name, c);
    }
    // `forget` and `label` take an id or a name: a name shaped like an id
    // would make one person's command reach another.
    if is_visitor_id(name) {
        bail!("the name {name:?} looks like a visitor id; choose another name");
    }
    Ok(name)
}

/// Whether `s` has the shape of a visitor id (`visitor-` and digits, in
/// any letter case, since names are matched without case).
pub fn is_visitor_id(s: &str) -> bool {
    s.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("visitor-"))
        && s.len() > 8
        && s[8..].bytes().all(|b| b.is_ascii_digit())
}

/// Unix seconds of a time (0 before 1970).
pub fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Gallery {
    /// Opens or creates the gallery at `path` for an embedder called
    /// `embedder` with `dim` outputs. A gallery made by another embedder is
    /// refused: its vectors would be meaningless to this one.
    pub fn open(path: &Path, embedder: &str, dim: usize) -> Result<Self> {
        Self::open_with(path, embedder, dim, StoreSpec::Local)
    }

    /// Opens the gallery with its vectors in `spec`. A file whose vectors
    /// live in another store is refused: its exemplars would be missing.
    pub fn open_with(path: &Path, embedder: &str, dim: usize, spec: StoreSpec) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        check_sqlite_header(path)?;
        let db = Connection::open(path).map_err(|e| open_error(path, e))?;
        // The first statements are where SQLite reads the file: a damaged
        // one fails here, and the owner must learn which file it was.
        let setup = || -> rusqlite::Result<()> {
            db.pragma_update(None, "journal_mode", "WAL")?;
            // FULL: a visit that was reported is on the card, even after a
            // power cut.
            db.pragma_update(None, "synchronous", "FULL")?;
            db.pragma_update(None, "foreign_keys", "ON")?;
            // Deleted rows are zeroed in the file, not just unlinked.
            db.pragma_update(None, "secure_delete", "ON")?;
            db.busy_timeout(std::time::Duration::from_secs(5))?;
            db.execute_batch(SCHEMA)
        };
        setup().map_err(|e| open_error(path, e))?;

        let model = format!("{embedder}/{dim}");
        let stored: Option<String> = db
            .query_row(
                "SELECT value FROM settings WHERE key = 'embedder'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match stored {
            Some(s) if s != model => bail!(
                "the gallery {} was made with the embedder {s}, but this doorman uses {model}; \
                 its vectors cannot be compared (move the file away to start a new gallery)",
                path.display()
            ),
            Some(_) => {}
            None => {
                db.execute(
                    "INSERT INTO settings (key, value) VALUES ('embedder', ?1)",
                    [&model],
                )?;
            }
        }
        let label = match &spec {
            StoreSpec::Local => "local".to_string(),
            StoreSpec::Vectorize { label, .. } => format!("vectorize:{label}"),
        };
        check_store_label(&db, path, &label)?;
        let vectors = match spec {
            StoreSpec::Local => Vectors::Local(Vec::new()),
            StoreSpec::Vectorize { store, .. } => {
                Store::prepare(&db)?;
                Vectors::Vectorize(store)
            }
        };
        let mut gallery = Self {
            db,
            vectors,
            dim,
            seen_version: 0,
            embedder: embedder.to_string(),
            query_retry: Retry::Once,
        };
        gallery.reload()?;
        Ok(gallery)
    }

    fn data_version(&self) -> Result<i64> {
        Ok(self.db.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Rereads the exemplars when another process changed the gallery
    /// (a person forgotten or enrolled while the service runs).
    pub fn reload_if_changed(&mut self) -> Result<()> {
        if self.data_version()? != self.seen_version {
            self.reload()?;
        }
        Ok(())
    }

    /// Lets `search` retry the index for up to `limit` (one-shot commands);
    /// the default is one attempt, for the frame loop.
    pub fn set_query_retry(&mut self, limit: Duration) {
        self.query_retry = Retry::For(limit);
    }

    fn reload(&mut self) -> Result<()> {
        self.seen_version = self.data_version()?;
        if !matches!(self.vectors, Vectors::Local(_)) {
            return Ok(());
        }
        let mut stmt = self
            .db
            .prepare("SELECT visitor, vector, id FROM exemplars ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut exemplars = Vec::new();
        for row in rows {
            let (visitor, blob, id) = row?;
            let values = decode_vector(&blob);
            if values.len() != self.dim {
                bail!(
                    "exemplar {id} has {} values, expected {}",
                    values.len(),
                    self.dim
                );
            }
            exemplars.push((
                visitor,
                Embedding::from_stored(values).with_context(|| format!("exemplar {id}"))?,
            ));
        }
        drop(stmt);
        self.vectors = Vectors::Local(exemplars);
        Ok(())
    }

    /// The visitor called `name` (ignoring letter case), if any.
    pub fn find_by_name(&self, name: &str) -> Result<Option<String>> {
        let mut stmt = self
            .db
            .prepare("SELECT id, name FROM visitors WHERE name IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, stored) = row?;
            if stored.to_lowercase() == name.to_lowercase() {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The visitor with `id`, if any.
    pub fn visitor(&self, id: &str) -> Result<Option<Visitor>> {
        Ok(self.visitors()?.into_iter().find(|v| v.id == id))
    }

    /// Creates a visitor (named, or anonymous with `None`) and returns its id.
    pub fn add_visitor(&mut self, name: Option<&str>, now: SystemTime) -> Result<String> {
        let tx = self.db.transaction()?;
        let next: i64 = tx.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'visitors'), 0) + 1",
            [],
            |r| r.get(0),
        )?;
        let id = format!("visitor-{next:04}");
        tx.execute(
            "INSERT INTO visitors (seq, id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![next, id, name, unix_seconds(now)],
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Adds an exemplar embedding to a visitor; returns its deterministic id.
    pub fn add_exemplar(
        &mut self,
        visitor: &str,
        e: &Embedding,
        source: &str,
        now: SystemTime,
    ) -> Result<String> {
        if e.dim() != self.dim {
            bail!(
                "embedding has {} values, the gallery holds {}",
                e.dim(),
                self.dim
            );
        }
        let tx = self.db.transaction()?;
        let n: i64 = tx.query_row(
            "SELECT COUNT(*) FROM exemplars WHERE visitor = ?1",
            [visitor],
            |r| r.get(0),
        )?;
        let id = format!("{visitor}.e{}", n + 1);
        let local = matches!(self.vectors, Vectors::Local(_));
        let blob = if local {
            encode_vector(e.as_slice())
        } else {
            Vec::new()
        };
        tx.execute(
            "INSERT INTO exemplars (id, visitor, vector, source, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, visitor, blob, source, unix_seconds(now)],
        )
        .with_context(|| format!("adding an exemplar to {visitor}"))?;
        if !local {
            // Queued in the same transaction: the exemplar and its write to
            // the index exist together or not at all.
            let name: Option<String> =
                tx.query_row("SELECT name FROM visitors WHERE id = ?1", [visitor], |r| {
                    r.get(0)
                })?;
            let kind = if source == "visit" { "visit" } else { "enroll" };
            let meta = vectorize::metadata(&vectorize::ExemplarMeta {
                visitor,
                name: name.as_deref(),
                embedder: &self.embedder,
                source: kind,
                created_at: unix_seconds(now),
            });
            outbox::push_upsert(
                &tx,
                &vectorize::vector_id(&id),
                visitor,
                e.as_slice(),
                &serde_json::Value::Object(meta).to_string(),
                unix_seconds(now),
            )?;
        }
        tx.commit()?;
        if let Vectors::Local(list) = &mut self.vectors {
            list.push((visitor.to_string(), e.clone()));
        }
        Ok(id)
    }

    /// Number of exemplars a visitor has.
    pub fn exemplar_count(&self, visitor: &str) -> usize {
        match &self.vectors {
            Vectors::Local(list) => list.iter().filter(|(v, _)| v == visitor).count(),
            Vectors::Vectorize(_) => self
                .db
                .query_row(
                    "SELECT COUNT(*) FROM exemplars WHERE visitor = ?1",
                    [visitor],
                    |r| r.get::<_, i64>(0),
                )
                .map_or(0, |n| n as usize),
        }
    }

    /// The `top_k` visitors closest to `query`, best first, each scored by
    /// its closest exemplar. Fails when the configured index cannot be
    /// asked (see [`Gallery::search_tolerant`]).
    pub fn search(&self, query: &Embedding, top_k: usize) -> Result<Vec<Match>> {
        let hits = match &self.vectors {
            Vectors::Local(list) => list
                .iter()
                .map(|(visitor, e)| (visitor.clone(), query.cosine(e)))
                .collect(),
            Vectors::Vectorize(store) => {
                let hits = store.search(&self.db, query, top_k, self.query_retry)?;
                self.visitor_hits(hits)?
            }
        };
        self.best_visitors(hits, top_k)
    }

    /// Like [`Gallery::search`], but when the index cannot be asked for a
    /// passing reason (network, 429, 5xx) it searches what the device still
    /// holds (queued and unconfirmed writes) and says the answer is
    /// incomplete. Setup errors (token, index, dimension) still fail.
    pub fn search_tolerant(&self, query: &Embedding, top_k: usize) -> Result<Found> {
        let Vectors::Vectorize(store) = &self.vectors else {
            return Ok(Found {
                matches: self.search(query, top_k)?,
                complete: true,
            });
        };
        match store.search(&self.db, query, top_k, self.query_retry) {
            Ok(hits) => Ok(Found {
                matches: self.best_visitors(self.visitor_hits(hits)?, top_k)?,
                complete: true,
            }),
            Err(e) if e.is_retryable() => {
                log::warn!("{e}; deciding from the writes kept on this device");
                let hits = store.search_unconfirmed(&self.db, query)?;
                Ok(Found {
                    matches: self.best_visitors(self.visitor_hits(hits)?, top_k)?,
                    complete: false,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Searches only what the device holds: the whole gallery with the
    /// local store, the queued and unconfirmed writes with Vectorize. For
    /// second looks within a decision already taken during an outage,
    /// which must not wait on the network once per face.
    pub fn search_held(&self, query: &Embedding, top_k: usize) -> Result<Vec<Match>> {
        match &self.vectors {
            Vectors::Local(_) => self.search(query, top_k),
            Vectors::Vectorize(store) => {
                let hits = store.search_unconfirmed(&self.db, query)?;
                self.best_visitors(self.visitor_hits(hits)?, top_k)
            }
        }
    }

    /// Maps vector ids to visitors through the exemplar register. An id
    /// the register does not know (a forgotten visitor whose deletion the
    /// index has not applied yet, or a vector doorman did not write) is
    /// dropped.
    fn visitor_hits(&self, hits: Vec<(String, f32)>) -> Result<Vec<(String, f32)>> {
        let mut stmt = self.db.prepare("SELECT id, visitor FROM exemplars")?;
        let register: HashMap<String, String> = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .map(|row| row.map(|(id, visitor)| (vectorize::vector_id(&id), visitor)))
            .collect::<rusqlite::Result<_>>()?;
        Ok(hits
            .into_iter()
            .filter_map(|(id, score)| register.get(&id).map(|v| (v.clone(), score)))
            .collect())
    }

    /// Per visitor the best score, best visitors first, with their names.
    fn best_visitors(&self, hits: Vec<(String, f32)>, top_k: usize) -> Result<Vec<Match>> {
        let mut best: Vec<(String, f32)> = Vec::new();
        for (visitor, score) in hits {
            match best.iter_mut().find(|(v, _)| *v == visitor) {
                Some(entry) => entry.1 = entry.1.max(score),
                None => best.push((visitor, score)),
            }
        }
        best.sort_by(|a, b| b.1.total_cmp(&a.1));
        best.truncate(top_k);
        // A visitor another process deleted since the last reload has no
        // row any more: it is no match.
        best.into_iter()
            .filter_map(|(id, score)| {
                let name = self
                    .db
                    .query_row("SELECT name FROM visitors WHERE id = ?1", [&id], |r| {
                        r.get(0)
                    })
                    .optional();
                match name {
                    Ok(Some(name)) => Some(Ok(Match { id, name, score })),
                    Ok(None) => None,
                    Err(e) => Some(Err(e.into())),
                }
            })
            .collect()
    }

    /// Stores a closed visit and updates the visitor's counts.
    pub fn record_visit(&mut self, visit: &VisitRecord) -> Result<()> {
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT INTO visits (visitor, started_at, ended_at, decision, score, frames, faces, camera)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                visit.visitor,
                visit.started_at,
                visit.ended_at,
                visit.decision,
                visit.score,
                visit.frames,
                visit.faces,
                visit.camera
            ],
        )?;
        if let Some(id) = &visit.visitor {
            tx.execute(
                "UPDATE visitors SET visits = visits + 1,
                     first_seen = COALESCE(MIN(first_seen, ?2), ?2),
                     last_seen = COALESCE(MAX(last_seen, ?3), ?3)
                 WHERE id = ?1",
                params![id, visit.started_at, visit.ended_at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every visitor, named ones first, then by id.
    pub fn visitors(&self) -> Result<Vec<Visitor>> {
        let mut stmt = self.db.prepare(
            "SELECT v.id, v.name, v.visits, v.first_seen, v.last_seen,
                    (SELECT COUNT(*) FROM exemplars e WHERE e.visitor = v.id)
             FROM visitors v ORDER BY v.name IS NULL, v.seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Visitor {
                id: r.get(0)?,
                name: r.get(1)?,
                visits: r.get::<_, i64>(2)? as u64,
                first_seen: r.get(3)?,
                last_seen: r.get(4)?,
                exemplars: r.get::<_, i64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Sends queued writes to the index for about `budget` (no-op for the
    /// local store). Only setup errors fail; an outage is in the report.
    pub fn sync(&mut self, budget: Duration) -> Result<SyncReport> {
        match &mut self.vectors {
            Vectors::Local(_) => Ok(SyncReport::default()),
            Vectors::Vectorize(store) => store.sync(&mut self.db, budget),
        }
    }

    /// Sends every queued write, retrying up to the store's `retry_max_s`:
    /// for one-shot commands.
    pub fn flush(&mut self) -> Result<SyncReport> {
        match &mut self.vectors {
            Vectors::Local(_) => Ok(SyncReport::default()),
            Vectors::Vectorize(store) => {
                store.confirm_now();
                store.flush(&mut self.db)
            }
        }
    }

    /// The Vectorize store, when that is where the vectors are.
    pub fn vectorize(&self) -> Option<&Store> {
        match &self.vectors {
            Vectors::Vectorize(s) => Some(s),
            Vectors::Local(_) => None,
        }
    }

    /// Writes queued for the index and accepted ones not yet confirmed.
    pub fn outbox_status(&self) -> Result<(u64, u64, u64)> {
        match &self.vectors {
            Vectors::Local(_) => Ok((0, 0, 0)),
            Vectors::Vectorize(_) => Ok((
                outbox::len(&self.db)?,
                outbox::recent_len(&self.db)?,
                outbox::rejected_len(&self.db)?,
            )),
        }
    }

    /// Number of recorded visits.
    pub fn visit_count(&self) -> Result<u64> {
        Ok(self
            .db
            .query_row("SELECT COUNT(*) FROM visits", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// The visitor an owner means by `who`: an id (`visitor-0007`) or a name.
    pub fn resolve(&self, who: &str) -> Result<Option<String>> {
        let by_id: Option<String> = self
            .db
            .query_row("SELECT id FROM visitors WHERE id = ?1", [who], |r| r.get(0))
            .optional()?;
        match by_id {
            Some(id) => Ok(Some(id)),
            None => self.find_by_name(who),
        }
    }

    /// Names (or renames) the visitor `id`. A name belongs to one visitor.
    pub fn label(&mut self, id: &str, name: &str) -> Result<()> {
        let name = name.trim();
        if name.is_empty() {
            bail!("the name must not be empty");
        }
        if let Some(other) = self.find_by_name(name)? {
            if other != id {
                bail!("{other} is already called {name:?}; forget or rename {other} first");
            }
        }
        let n = self.db.execute(
            "UPDATE visitors SET name = ?2 WHERE id = ?1",
            params![id, name],
        )?;
        if n == 0 {
            bail!("there is no visitor {id} (`doorman visitors` lists them)");
        }
        Ok(())
    }

    /// Deletes the visitor `id` with their exemplars and visits.
    pub fn forget(&mut self, id: &str) -> Result<Forgotten> {
        let tx = self.db.transaction()?;
        let name: Option<String> = tx
            .query_row("SELECT name FROM visitors WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?
            .with_context(|| format!("there is no visitor {id} (`doorman visitors` lists them)"))?;
        let count = |table: &str| -> rusqlite::Result<u64> {
            tx.query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE visitor = ?1"),
                [id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        };
        let (exemplars, visits) = (count("exemplars")?, count("visits")?);
        if let Vectors::Vectorize(_) = self.vectors {
            queue_remote_deletes(&tx, "SELECT id FROM exemplars WHERE visitor = ?1", [id])?;
        }
        tx.execute("DELETE FROM exemplars WHERE visitor = ?1", [id])?;
        tx.execute("DELETE FROM visits WHERE visitor = ?1", [id])?;
        tx.execute("DELETE FROM visitors WHERE id = ?1", [id])?;
        tx.commit()?;
        self.scrub()?;
        Ok(Forgotten {
            id: id.to_string(),
            name,
            exemplars,
            visits,
        })
    }

    /// Deletes the anonymous visitors (never named) last seen, or created
    /// if never seen, before `cutoff`; returns what was deleted.
    pub fn expire_anonymous(&mut self, cutoff: SystemTime) -> Result<Vec<Forgotten>> {
        let ids: Vec<String> = {
            let mut stmt = self.db.prepare(
                "SELECT id FROM visitors
                 WHERE name IS NULL AND COALESCE(last_seen, created_at) < ?1
                 ORDER BY seq",
            )?;
            let rows = stmt.query_map([unix_seconds(cutoff)], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        ids.iter().map(|id| self.forget(id)).collect()
    }

    /// Deletes every visitor, exemplar and visit. The embedder the gallery
    /// was made for stays: it describes the file, not a person.
    pub fn wipe(&mut self) -> Result<()> {
        let tx = self.db.transaction()?;
        if let Vectors::Vectorize(_) = self.vectors {
            queue_remote_deletes(&tx, "SELECT id FROM exemplars", [])?;
        }
        tx.execute_batch(
            "DELETE FROM exemplars; DELETE FROM visits; DELETE FROM visitors;
             DELETE FROM sqlite_sequence;",
        )?;
        tx.commit()?;
        self.scrub()
    }

    /// After a deletion: reread the exemplars, move every page out of the
    /// write-ahead log and empty it, and drop free pages, so nothing of the
    /// deleted rows is left in either file.
    fn scrub(&mut self) -> Result<()> {
        self.reload()?;
        self.db
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        self.db.execute_batch("VACUUM")?;
        self.db
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        self.seen_version = self.data_version()?;
        Ok(())
    }
}

/// Queues, in the outbox, the deletion from the Vectorize index of every
/// exemplar `select` lists: the index forgets too, once it is reachable.
fn queue_remote_deletes<P: rusqlite::Params>(
    tx: &rusqlite::Transaction,
    select: &str,
    params: P,
) -> Result<()> {
    let ids: Vec<String> = {
        let mut stmt = tx.prepare(select)?;
        let rows = stmt.query_map(params, |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let now = unix_seconds(SystemTime::now());
    for id in &ids {
        outbox::push_delete(tx, &vectorize::vector_id(id), now)?;
    }
    Ok(())
}

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Refuses a gallery file that is not an SQLite database before SQLite
/// opens it, so that a file of another kind (a photo, a text, a damaged
/// copy) is left exactly as it was. A missing or empty file is fine:
/// SQLite makes a new database in it.
fn check_sqlite_header(path: &Path) -> Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("opening the gallery {}", path.display())),
    };
    let mut head = Vec::with_capacity(SQLITE_HEADER.len());
    file.take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("reading the gallery {}", path.display()))?;
    if !head.is_empty() && head != SQLITE_HEADER {
        bail!(
            "the gallery {} is not an SQLite database (it does not begin with SQLite's \
             header); doorman left it as it is: restore it from a backup, or move it away \
             to start a new gallery",
            path.display()
        );
    }
    Ok(())
}

/// An SQLite error met while opening the gallery, naming the file; a file
/// SQLite cannot read as a database is called damaged.
fn open_error(path: &Path, e: rusqlite::Error) -> anyhow::Error {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e.sqlite_error_code() {
        Some(NotADatabase | DatabaseCorrupt) => anyhow::anyhow!(
            "the gallery {} is not an SQLite database or is damaged ({e}); doorman left it \
             as it is: restore it from a backup, or move it away to start a new gallery",
            path.display()
        ),
        _ => anyhow::Error::new(e).context(format!("opening the gallery {}", path.display())),
    }
}

/// Records which store a gallery file's vectors are in, and refuses a file
/// whose vectors are elsewhere. A file from before the record is local.
fn check_store_label(db: &Connection, path: &Path, label: &str) -> Result<()> {
    let stored: Option<String> = db
        .query_row("SELECT value FROM settings WHERE key = 'store'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let stored = match stored {
        Some(s) => s,
        None => {
            let exemplars: i64 =
                db.query_row("SELECT COUNT(*) FROM exemplars", [], |r| r.get(0))?;
            let s = if exemplars > 0 { "local" } else { label };
            db.execute(
                "INSERT INTO settings (key, value) VALUES ('store', ?1)",
                [s],
            )?;
            s.to_string()
        }
    };
    if stored != label {
        bail!(
            "the gallery {} keeps its vectors in {stored}, but the config says {label}; \
             doorman does not move vectors between stores (set the old store again, or \
             use another state_dir to start a new gallery)",
            path.display()
        );
    }
    Ok(())
}

fn encode_vector(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode_vector(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens `bytes` as a gallery file: the error, and whether the file
    /// was left byte for byte as it was (and no SQLite files beside it).
    fn open_foreign_file(bytes: &[u8]) -> (String, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gallery.sqlite");
        std::fs::write(&path, bytes).unwrap();
        let err = match Gallery::open(&path, "test", 2) {
            Ok(_) => panic!("a file of {} foreign bytes was opened", bytes.len()),
            Err(e) => format!("{e:#}"),
        };
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        let untouched = std::fs::read(&path).unwrap() == bytes && left.len() == 1;
        (
            err.replace(&path.display().to_string(), "GALLERY"),
            untouched,
        )
    }

    #[test]
    fn a_gallery_file_that_is_not_sqlite_is_named_and_left_untouched() {
        let random: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let text = b"name,visits\nAnn,3\n".to_vec();
        for bytes in [random, text] {
            let (err, untouched) = open_foreign_file(&bytes);
            assert!(
                err.starts_with("the gallery GALLERY is not an SQLite database"),
                "{err}"
            );
            assert!(untouched, "the file was changed");
        }
    }

    #[test]
    fn a_damaged_gallery_behind_a_valid_header_is_named_and_left_untouched() {
        let mut bytes = SQLITE_HEADER.to_vec();
        bytes.extend((0..4080u32).map(|i| (i * 37 % 251) as u8));
        let (err, untouched) = open_foreign_file(&bytes);
        assert!(err.contains("the gallery GALLERY"), "{err}");
        assert!(err.contains("damaged"), "{err}");
        assert!(untouched, "the file was changed");
    }

    fn unit(v: &[f32]) -> Embedding {
        Embedding::normalised(v).unwrap()
    }

    #[test]
    fn search_scores_each_visitor_by_its_closest_exemplar() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::open(&dir.path().join("g.sqlite"), "test", 2).unwrap();
        let now = SystemTime::now();
        let ann = g.add_visitor(Some("Ann"), now).unwrap();
        let bob = g.add_visitor(Some("Bob"), now).unwrap();
        g.add_exemplar(&ann, &unit(&[1.0, 0.0]), "a.jpg", now)
            .unwrap();
        g.add_exemplar(&ann, &unit(&[0.0, 1.0]), "b.jpg", now)
            .unwrap();
        g.add_exemplar(&bob, &unit(&[1.0, 1.0]), "c.jpg", now)
            .unwrap();
        let m = g.search(&unit(&[0.1, 1.0]), 5).unwrap();
        assert_eq!(m[0].name.as_deref(), Some("Ann"));
        assert!(m[0].score > 0.99);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn the_gallery_survives_reopening_and_counts_visits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sqlite");
        let now = SystemTime::now();
        {
            let mut g = Gallery::open(&path, "test", 2).unwrap();
            let id = g.add_visitor(None, now).unwrap();
            assert_eq!(id, "visitor-0001");
            g.add_exemplar(&id, &unit(&[1.0, 0.0]), "visit", now)
                .unwrap();
            let visit = VisitRecord {
                visitor: Some(id),
                started_at: 100,
                ended_at: 105,
                decision: "new".into(),
                score: None,
                frames: 3,
                faces: 3,
                camera: "door".into(),
            };
            g.record_visit(&visit).unwrap();
            g.record_visit(&VisitRecord {
                started_at: 200,
                ended_at: 201,
                ..visit
            })
            .unwrap();
        }
        let g = Gallery::open(&path, "test", 2).unwrap();
        let v = &g.visitors().unwrap()[0];
        assert_eq!(
            (v.visits, v.first_seen, v.last_seen, v.exemplars),
            (2, Some(100), Some(201), 1)
        );
        assert_eq!(
            g.search(&unit(&[1.0, 0.0]), 1).unwrap()[0].id,
            "visitor-0001"
        );
    }

    #[test]
    fn names_are_checked_and_found_whatever_their_case() {
        assert!(check_name("  ").is_err());
        assert!(check_name("a\u{1b}[31m").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert_eq!(check_name(" 王小明 ").unwrap(), "王小明");
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::open(&dir.path().join("g.sqlite"), "test", 2).unwrap();
        let id = g
            .add_visitor(Some("Barack Obama"), SystemTime::now())
            .unwrap();
        assert_eq!(g.find_by_name("barack obama").unwrap(), Some(id));
    }

    #[test]
    fn only_anonymous_visitors_past_the_cutoff_expire() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::open(&dir.path().join("g.sqlite"), "test", 2).unwrap();
        let t = |s: u64| UNIX_EPOCH + std::time::Duration::from_secs(s);
        let old = g.add_visitor(None, t(100)).unwrap();
        let named = g.add_visitor(Some("Ann"), t(100)).unwrap();
        let recent = g.add_visitor(None, t(100)).unwrap();
        for id in [&old, &named, &recent] {
            g.add_exemplar(id, &unit(&[1.0, 0.0]), "visit", t(100))
                .unwrap();
        }
        let seen = |visitor: &str, at: i64| VisitRecord {
            visitor: Some(visitor.to_string()),
            started_at: at,
            ended_at: at,
            decision: "new".into(),
            score: None,
            frames: 1,
            faces: 1,
            camera: "door".into(),
        };
        g.record_visit(&seen(&old, 200)).unwrap();
        g.record_visit(&seen(&named, 200)).unwrap();
        g.record_visit(&seen(&recent, 900)).unwrap();

        let gone = g.expire_anonymous(t(500)).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].id.as_str(), gone[0].visits), (old.as_str(), 1));
        let left: Vec<_> = g.visitors().unwrap().into_iter().map(|v| v.id).collect();
        assert_eq!(left, [named.clone(), recent.clone()]);
        assert_eq!(g.visit_count().unwrap(), 2);
        assert_eq!(g.exemplar_count(&old), 0, "the search cache forgot too");
    }

    #[test]
    fn a_gallery_notices_when_another_process_forgets_someone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sqlite");
        let now = SystemTime::now();
        let mut service = Gallery::open(&path, "test", 2).unwrap();
        let id = service.add_visitor(Some("Ann"), now).unwrap();
        service
            .add_exemplar(&id, &unit(&[1.0, 0.0]), "a.jpg", now)
            .unwrap();

        let mut owner = Gallery::open(&path, "test", 2).unwrap();
        owner.forget(&id).unwrap();

        // Even before it rereads, a deleted visitor is no match.
        assert!(service.search(&unit(&[1.0, 0.0]), 1).unwrap().is_empty());
        assert_eq!(service.exemplar_count(&id), 1);
        service.reload_if_changed().unwrap();
        assert_eq!(service.exemplar_count(&id), 0);
        assert!(service.search(&unit(&[1.0, 0.0]), 1).unwrap().is_empty());
    }

    #[test]
    fn a_forgotten_visitors_id_is_never_given_to_somebody_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gallery::open(&dir.path().join("g.sqlite"), "test", 2).unwrap();
        let now = SystemTime::now();
        g.add_visitor(Some("Ann"), now).unwrap();
        let second = g.add_visitor(None, now).unwrap();
        g.forget(&second).unwrap();
        assert_eq!(g.add_visitor(None, now).unwrap(), "visitor-0003");
    }

    #[test]
    fn a_gallery_from_another_embedder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.sqlite");
        Gallery::open(&path, "a", 2).unwrap();
        let err = Gallery::open(&path, "b", 2).err().unwrap().to_string();
        assert!(err.contains("a/2") && err.contains("b/2"), "{err}");
    }

    #[test]
    fn names_shaped_like_visitor_ids_are_refused() {
        for bad in ["visitor-0001", "Visitor-12", " VISITOR-9 "] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains("looks like a visitor id"), "{bad}: {err}");
        }
        for good in ["visitor", "visitor-one", "Visitor 0001", "Ann"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
    }
}
