//! The durable outbox: every write to the index is first a row here, in the
//! gallery's SQLite file, inside the same transaction as the gallery change
//! it belongs to. A row leaves only after the API accepted it, so a power
//! cut, a kill or an outage loses nothing; rows are sent in `seq` order.
//!
//! Accepted upserts move to `vectorize_recent` until a read shows the index
//! has applied them: searches merge both tables, so a person enrolled a
//! moment ago is recognised although the index will not show them for
//! seconds to minutes.

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vectorize_outbox (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    op        TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    id        TEXT NOT NULL,
    visitor   TEXT,
    vector    BLOB,
    metadata  TEXT,
    queued_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vectorize_recent (
    id          TEXT PRIMARY KEY,
    visitor     TEXT NOT NULL,
    vector      BLOB NOT NULL,
    mutation_id TEXT NOT NULL,
    acked_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vectorize_rejected (
    seq         INTEGER PRIMARY KEY,
    op          TEXT NOT NULL,
    id          TEXT NOT NULL,
    error       TEXT NOT NULL,
    rejected_at INTEGER NOT NULL
);
";

/// One queued write.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub seq: i64,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Upsert {
        id: String,
        visitor: String,
        vector: Vec<f32>,
        /// The metadata object as JSON text.
        metadata: String,
    },
    Delete {
        id: String,
    },
}

impl Op {
    pub fn id(&self) -> &str {
        match self {
            Op::Upsert { id, .. } | Op::Delete { id } => id,
        }
    }

    pub fn is_upsert(&self) -> bool {
        matches!(self, Op::Upsert { .. })
    }
}

pub fn encode(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn decode(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Queues an upsert inside the caller's transaction.
pub fn push_upsert(
    tx: &Transaction<'_>,
    id: &str,
    visitor: &str,
    vector: &[f32],
    metadata: &str,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO vectorize_outbox (op, id, visitor, vector, metadata, queued_at)
         VALUES ('upsert', ?1, ?2, ?3, ?4, ?5)",
        params![id, visitor, encode(vector), metadata, now],
    )?;
    Ok(())
}

/// Queues a delete inside the caller's transaction; the id also stops
/// counting as a recent write.
pub fn push_delete(tx: &Transaction<'_>, id: &str, now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO vectorize_outbox (op, id, queued_at) VALUES ('delete', ?1, ?2)",
        params![id, now],
    )?;
    tx.execute("DELETE FROM vectorize_recent WHERE id = ?1", [id])?;
    Ok(())
}

pub fn len(db: &Connection) -> Result<u64> {
    Ok(
        db.query_row("SELECT COUNT(*) FROM vectorize_outbox", [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
    )
}

pub fn recent_len(db: &Connection) -> Result<u64> {
    Ok(
        db.query_row("SELECT COUNT(*) FROM vectorize_recent", [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
    )
}

/// The next run of rows with the same operation, oldest first, at most
/// `limit`: sending runs keeps an upsert and a later delete of the same id
/// in their order.
pub fn next_run(db: &Connection, limit: usize) -> Result<Vec<Row>> {
    let mut stmt = db.prepare(
        "SELECT seq, op, id, visitor, vector, metadata FROM vectorize_outbox
         ORDER BY seq LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        let seq: i64 = r.get(0)?;
        let op: String = r.get(1)?;
        let id: String = r.get(2)?;
        Ok(if op == "upsert" {
            Row {
                seq,
                op: Op::Upsert {
                    id,
                    visitor: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    vector: decode(&r.get::<_, Option<Vec<u8>>>(4)?.unwrap_or_default()),
                    metadata: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                },
            }
        } else {
            Row {
                seq,
                op: Op::Delete { id },
            }
        })
    })?;
    let mut run: Vec<Row> = Vec::new();
    for row in rows {
        let row = row?;
        if run
            .first()
            .is_some_and(|first| first.op.is_upsert() != row.op.is_upsert())
        {
            break;
        }
        run.push(row);
    }
    Ok(run)
}

/// Removes accepted rows; accepted upserts become recent writes until the
/// index shows them.
pub fn acknowledge(
    db: &mut Connection,
    rows: &[Row],
    mutation_id: &str,
    now_ms: i64,
) -> Result<()> {
    let tx = db.transaction()?;
    for row in rows {
        tx.execute("DELETE FROM vectorize_outbox WHERE seq = ?1", [row.seq])?;
        match &row.op {
            Op::Upsert {
                id,
                visitor,
                vector,
                ..
            } => {
                tx.execute(
                    "INSERT OR REPLACE INTO vectorize_recent (id, visitor, vector, mutation_id, acked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, visitor, encode(vector), mutation_id, now_ms],
                )?;
            }
            Op::Delete { id } => {
                tx.execute("DELETE FROM vectorize_recent WHERE id = ?1", [id])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Moves a row the API refuses outright out of the way, with the reason,
/// so one bad write cannot block every later one.
pub fn reject(db: &mut Connection, row: &Row, error: &str, now: i64) -> Result<()> {
    let tx = db.transaction()?;
    tx.execute("DELETE FROM vectorize_outbox WHERE seq = ?1", [row.seq])?;
    tx.execute(
        "INSERT OR REPLACE INTO vectorize_rejected (seq, op, id, error, rejected_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            row.seq,
            if row.op.is_upsert() {
                "upsert"
            } else {
                "delete"
            },
            row.op.id(),
            error,
            now
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// Vectors the index may not show yet: queued upserts and accepted ones
/// not yet confirmed, as (vector id, visitor, values). A queued delete
/// hides its id.
pub fn unconfirmed(db: &Connection) -> Result<Vec<(String, String, Vec<f32>)>> {
    let mut stmt = db.prepare(
        "SELECT id, visitor, vector FROM vectorize_recent
         WHERE id NOT IN (SELECT id FROM vectorize_outbox WHERE op = 'delete')
         UNION ALL
         SELECT o.id, o.visitor, o.vector FROM vectorize_outbox o
         WHERE o.op = 'upsert' AND NOT EXISTS (
             SELECT 1 FROM vectorize_outbox d
             WHERE d.op = 'delete' AND d.id = o.id AND d.seq > o.seq)",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            decode(&r.get::<_, Vec<u8>>(2)?),
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The oldest recent writes, to check whether the index shows them yet.
pub fn oldest_recent(db: &Connection, limit: usize) -> Result<Vec<String>> {
    let mut stmt = db.prepare("SELECT id FROM vectorize_recent ORDER BY acked_at, id LIMIT ?1")?;
    let rows = stmt.query_map([limit as i64], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The index shows these now: they need no local copy any more.
pub fn confirm(db: &mut Connection, ids: &[String]) -> Result<()> {
    let tx = db.transaction()?;
    for id in ids {
        tx.execute("DELETE FROM vectorize_recent WHERE id = ?1", [id])?;
    }
    tx.commit()?;
    Ok(())
}

/// The mutation id of the newest accepted write still unconfirmed.
pub fn newest_mutation(db: &Connection) -> Result<Option<String>> {
    Ok(db
        .query_row(
            "SELECT mutation_id FROM vectorize_recent ORDER BY acked_at DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

pub fn rejected_len(db: &Connection) -> Result<u64> {
    Ok(
        db.query_row("SELECT COUNT(*) FROM vectorize_rejected", [], |r| {
            r.get::<_, i64>(0)
        })? as u64,
    )
}
