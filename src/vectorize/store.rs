//! The gallery's Vectorize side: search the index merged with the writes it
//! does not show yet, and drain the outbox in bounded time.
//!
//! Draining never sleeps: a failed send schedules the next attempt (back-off
//! with jitter, or the server's Retry-After) and returns, so the frame loop
//! keeps its pace through an outage.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use rusqlite::Connection;
use serde_json::{json, Value};

use super::client::{self, Client, Error, Query, Retry, ReturnMetadata, Vector};
use super::outbox::{self, Op, Row};
use crate::embed::Embedding;

/// Rows sent in one write request by the drain: well under the API's 5000,
/// so one request stays short on a Pi's link, and large enough that the
/// index applies them in few jobs.
const DRAIN_BATCH: usize = 1000;
/// How often recent writes are checked against the index.
const CONFIRM_INTERVAL: Duration = Duration::from_secs(10);
/// Recent writes checked per confirmation round (5 get_by_ids calls).
const CONFIRM_BATCH: usize = 100;
/// Query `topK` per wanted visitor: a visitor has several exemplars, and
/// the best `top_k` visitors need their best exemplar among the matches.
const MATCHES_PER_VISITOR: usize = 10;

/// What a drain did and what is left.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Writes the API accepted during this call.
    pub sent: u64,
    /// Writes still queued.
    pub queued: u64,
    /// Accepted writes not yet seen applied by the index.
    pub unconfirmed: u64,
    /// Writes the API refused for good (kept in `vectorize_rejected`).
    pub rejected: u64,
    /// The last send failed and will be retried; the error, for the log.
    pub offline: Option<String>,
}

pub struct Store {
    client: Client,
    /// Embedder name: in each vector's metadata, and the query filter, so
    /// vectors of another embedder in the same index are never compared.
    embedder: String,
    /// How long one-shot commands keep retrying.
    retry_max: Duration,
    /// No send before this instant (back-off after a failure).
    next_attempt: Option<Instant>,
    /// Consecutive failed sends: the back-off exponent.
    failures: u32,
    last_confirm: Option<Instant>,
    /// Send one row at a time until a refused row has been isolated.
    isolate: bool,
}

impl Store {
    pub fn new(client: Client, embedder: &str, retry_max: Duration) -> Self {
        Self {
            client,
            embedder: embedder.to_string(),
            retry_max,
            next_attempt: None,
            failures: 0,
            last_confirm: None,
            isolate: false,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn embedder(&self) -> &str {
        &self.embedder
    }

    /// Creates the outbox tables in the gallery file.
    pub fn prepare(db: &Connection) -> Result<()> {
        db.execute_batch(outbox::SCHEMA)
            .context("preparing the Vectorize outbox")
    }

    /// Exemplar hits (vector id, score) for `query`, from the index merged
    /// with the writes it may not show yet. `Err` when the index cannot be
    /// asked; [`Store::search_unconfirmed`] is then what is known locally.
    pub fn search(
        &self,
        db: &Connection,
        query: &Embedding,
        top_k: usize,
        retry: Retry,
    ) -> std::result::Result<Vec<(String, f32)>, Error> {
        let q = Query {
            vector: query.as_slice(),
            top_k: top_k.saturating_mul(MATCHES_PER_VISITOR),
            // Values switch on exact scoring: a decision at a threshold
            // must not depend on the approximate first pass.
            return_values: true,
            return_metadata: ReturnMetadata::None,
            namespace: None,
            filter: Some(json!({ "embedder": self.embedder })),
        };
        let matches = self.client.query(&q, retry)?;
        let mut hits: Vec<(String, f32)> = matches.into_iter().map(|m| (m.id, m.score)).collect();
        // A local failure to read the outbox is not an index failure; the
        // hits from the index still stand.
        match self.search_unconfirmed(db, query) {
            Ok(local) => hits.extend(local),
            Err(e) => log::warn!("reading the outbox: {e:#}"),
        }
        Ok(hits)
    }

    /// Hits among the writes the index may not show yet.
    pub fn search_unconfirmed(
        &self,
        db: &Connection,
        query: &Embedding,
    ) -> Result<Vec<(String, f32)>> {
        let mut hits = Vec::new();
        for (id, _visitor, values) in outbox::unconfirmed(db)? {
            if values.len() != query.dim() {
                continue;
            }
            let e = Embedding::from_stored(values)?;
            hits.push((id, query.cosine(&e)));
        }
        Ok(hits)
    }

    /// Sends queued writes and confirms recent ones for about `budget`.
    /// A request already started may run to the client's timeout. Fatal
    /// errors (token, index, dimension) are returned; passing ones are
    /// reported in [`SyncReport::offline`] and retried on a later call.
    pub fn sync(&mut self, db: &mut Connection, budget: Duration) -> Result<SyncReport> {
        let started = Instant::now();
        let mut report = SyncReport::default();
        let waiting = self.next_attempt.is_some_and(|t| Instant::now() < t);

        while !waiting && started.elapsed() < budget {
            let limit = if self.isolate { 1 } else { DRAIN_BATCH };
            let run = outbox::next_run(db, limit)?;
            if run.is_empty() {
                self.isolate = false;
                break;
            }
            match self.send(&run) {
                Ok(mutation) => {
                    outbox::acknowledge(db, &run, &mutation, now_ms())?;
                    report.sent += run.len() as u64;
                    if self.failures > 0 {
                        log::info!("the Vectorize index is reachable again");
                    }
                    self.failures = 0;
                    self.next_attempt = None;
                    if run.len() == 1 {
                        self.isolate = false;
                    }
                }
                Err(e) if e.is_retryable() => {
                    // The server's Retry-After is honoured in full (the
                    // API's rate-limit penalty lasts minutes); our own
                    // back-off is capped inside `backoff`.
                    let wait = client::backoff(self.failures, e.retry_after());
                    if self.failures == 0 {
                        log::warn!(
                            "cannot write to the Vectorize index ({e}); writes stay in the \
                             outbox and are retried"
                        );
                    } else {
                        log::debug!("still cannot write ({e}); next try in {wait:?}");
                    }
                    self.failures = self.failures.saturating_add(1);
                    self.next_attempt = Some(Instant::now() + wait);
                    report.offline = Some(e.to_string());
                    break;
                }
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) if run.len() > 1 => {
                    // Find the refused row by sending one at a time.
                    log::warn!("the Vectorize API refused a batch ({e}); isolating the bad write");
                    self.isolate = true;
                }
                Err(e) => {
                    log::error!(
                        "the Vectorize API refused the write of {} for good ({e}); \
                         it is kept in the vectorize_rejected table",
                        run[0].op.id()
                    );
                    outbox::reject(db, &run[0], &e.to_string(), now_s())?;
                    report.rejected += 1;
                    self.isolate = false;
                }
            }
        }

        if report.offline.is_none() && !waiting && started.elapsed() < budget {
            self.confirm(db, started, budget)?;
        }
        report.queued = outbox::len(db)?;
        report.unconfirmed = outbox::recent_len(db)?;
        if report.offline.is_none() && waiting {
            report.offline = Some("waiting before the next try".into());
        }
        Ok(report)
    }

    /// Drains until the outbox is empty or `retry_max_s` has passed,
    /// sleeping through back-off: for one-shot commands.
    pub fn flush(&mut self, db: &mut Connection) -> Result<SyncReport> {
        let started = Instant::now();
        let mut total = 0;
        loop {
            let mut report = self.sync(db, self.retry_max.max(Duration::from_secs(1)))?;
            total += report.sent;
            if report.queued == 0 || started.elapsed() >= self.retry_max {
                report.sent = total;
                return Ok(report);
            }
            let wait = self.next_attempt.map_or(Duration::ZERO, |t| {
                t.saturating_duration_since(Instant::now())
            });
            if started.elapsed() + wait > self.retry_max {
                report.sent = total;
                return Ok(report);
            }
            std::thread::sleep(wait);
        }
    }

    /// Sends one run of same-kind rows; returns the mutation id.
    fn send(&self, run: &[Row]) -> std::result::Result<String, Error> {
        if run[0].op.is_upsert() {
            let vectors: Vec<Vector> = run
                .iter()
                .map(|r| match &r.op {
                    Op::Upsert {
                        id,
                        vector,
                        metadata,
                        ..
                    } => Vector {
                        id: id.clone(),
                        values: vector.clone(),
                        namespace: None,
                        metadata: serde_json::from_str::<Value>(metadata)
                            .ok()
                            .and_then(|v| v.as_object().cloned()),
                    },
                    Op::Delete { .. } => unreachable!("a run holds one kind of row"),
                })
                .collect();
            let ids = self.client.upsert(&vectors, Retry::Once)?;
            Ok(ids.last().cloned().unwrap_or_default())
        } else {
            let ids: Vec<String> = run.iter().map(|r| r.op.id().to_string()).collect();
            let m = self.client.delete_by_ids(&ids, Retry::Once)?;
            Ok(m.last().cloned().unwrap_or_default())
        }
    }

    /// Drops recent writes the index now returns: from then on a query
    /// finds them without help.
    fn confirm(&mut self, db: &mut Connection, started: Instant, budget: Duration) -> Result<()> {
        if self
            .last_confirm
            .is_some_and(|t| t.elapsed() < CONFIRM_INTERVAL)
        {
            return Ok(());
        }
        let ids = outbox::oldest_recent(db, CONFIRM_BATCH)?;
        if ids.is_empty() {
            return Ok(());
        }
        self.last_confirm = Some(Instant::now());
        for chunk in ids.chunks(client::GET_BY_IDS_BATCH) {
            if started.elapsed() >= budget {
                break;
            }
            match self.client.get_by_ids(chunk, Retry::Once) {
                Ok(found) => {
                    let seen: Vec<String> = found.into_iter().map(|v| v.id).collect();
                    outbox::confirm(db, &seen)?;
                }
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => {
                    log::debug!("checking recent writes: {e}");
                    break;
                }
            }
        }
        Ok(())
    }

    /// Forces the next [`Store::sync`] to check recent writes.
    pub fn confirm_now(&mut self) {
        self.last_confirm = None;
    }

    /// Forgets any back-off: the next sync sends at once.
    pub fn retry_now(&mut self) {
        self.next_attempt = None;
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn now_s() -> i64 {
    now_ms() / 1000
}
