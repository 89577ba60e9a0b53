//! A blocking client for the Vectorize v2 REST API.
//!
//! Every call is decided from the response envelope (`success` and
//! `errors[].code`), not from the HTTP status alone, and every failure
//! becomes an [`Error`] variant a caller can branch on. Retries (429, the
//! write throttle 40041, 5xx, network errors) are the caller's choice:
//! one-shot commands wait up to `retry_max_s`, the frame loop sends once
//! and lets the outbox schedule the next try.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::token::Token;

/// Most ids `get_by_ids` accepts in one call (observed, undocumented).
pub const GET_BY_IDS_BATCH: usize = 20;
/// Most ids `delete_by_ids` accepts in one call (observed, undocumented).
pub const DELETE_BY_IDS_BATCH: usize = 100;
/// Most vectors one insert or upsert request may carry over HTTP.
pub const WRITE_BATCH: usize = 5000;
/// NDJSON bytes per write request: under the documented 100 MB upload
/// limit with room for headers and float formatting differences.
pub const WRITE_BATCH_BYTES: usize = 90 * 1024 * 1024;
/// `topK` ceiling with `returnMetadata` "none"/"indexed" and no values.
pub const TOP_K_MAX: usize = 100;
/// `topK` ceiling with `returnValues: true` or `returnMetadata: "all"`.
pub const TOP_K_MAX_WITH_VALUES: usize = 50;
/// Longest vector id the service accepts, in bytes.
pub const MAX_ID_BYTES: usize = 64;
/// First back-off step; doubled per attempt, then jittered.
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest single back-off step when the server gives no Retry-After.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Longest response body read; a query or get answer is far smaller.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// What went wrong, in the terms a caller decides on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// 403/10000: the token is wrong, expired or lacks a permission.
    #[error(
        "the Vectorize API refused the token (HTTP {status}, code {code}): it is wrong, \
         expired, or lacks the Vectorize Read/Edit permission for this account"
    )]
    Unauthorised { status: u16, code: u32 },
    /// 3000 (unknown) or 3005 (deleted).
    #[error(
        "the Vectorize index does not exist ({message}); create it with `doorman index create`"
    )]
    IndexMissing { code: u32, message: String },
    /// 3002 on create.
    #[error("a Vectorize index with this name already exists ({message})")]
    IndexExists { message: String },
    /// 40006 (query) or 40012 (write): the index has another dimension.
    #[error(
        "the Vectorize index has another dimension than this embedder ({message}); \
         use an index made by `doorman index create`"
    )]
    WrongDimension { code: u32, message: String },
    /// 40008: a vector id over 64 bytes.
    #[error("a vector id is too long ({message})")]
    IdTooLong { message: String },
    /// 429 or 40041; `retry_after` when the server said how long to wait.
    #[error("the Vectorize API is rate limiting (code {code}){}", retry_note(.retry_after))]
    RateLimited {
        code: u32,
        retry_after: Option<Duration>,
    },
    /// Any other rejected request; not worth retrying unchanged.
    #[error("the Vectorize API rejected the request (HTTP {status}): {}", codes_text(.codes))]
    Invalid {
        status: u16,
        codes: Vec<(u32, String)>,
    },
    /// 5xx, or a 2xx body that is not an envelope.
    #[error("the Vectorize API failed (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    /// No usable answer: connection refused or dropped, timeout, TLS.
    #[error("cannot reach the Vectorize API: {0}")]
    Transport(String),
}

fn retry_note(after: &Option<Duration>) -> String {
    after.map_or(String::new(), |d| {
        format!("; retry after {} s", d.as_secs_f32())
    })
}

fn codes_text(codes: &[(u32, String)]) -> String {
    if codes.is_empty() {
        return "no error code given".into();
    }
    codes
        .iter()
        .map(|(c, m)| format!("{c} {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// Worth trying again later unchanged: throttling, server or network.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Server { .. } | Self::Transport(_)
        )
    }

    /// A setup problem no retry fixes: doorman should stop and say so.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Unauthorised { .. } | Self::IndexMissing { .. } | Self::WrongDimension { .. }
        )
    }

    /// The server's own wait hint, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// How long an operation may keep retrying.
#[derive(Debug, Clone, Copy)]
pub enum Retry {
    /// One attempt; the caller schedules the next.
    Once,
    /// Retry with back-off until this much time has passed.
    For(Duration),
}

/// One vector as written and as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vector {
    pub id: String,
    #[serde(default)]
    pub values: Vec<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// The `dimensions`/`metric` pair of an index.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct IndexConfig {
    pub dimensions: Option<usize>,
    pub metric: Option<String>,
}

/// An index as `create` and `get` return it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct IndexDescription {
    pub name: String,
    pub description: Option<String>,
    pub config: IndexConfig,
    pub created_on: Option<String>,
    pub modified_on: Option<String>,
}

/// What `/info` says: applied vectors and the write watermark.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct IndexInfo {
    pub dimensions: Option<usize>,
    pub vector_count: Option<u64>,
    pub processed_up_to_datetime: Option<String>,
    pub processed_up_to_mutation: Option<String>,
}

/// `returnMetadata` levels; the REST API wants the string form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnMetadata {
    None,
    Indexed,
    All,
}

impl ReturnMetadata {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Indexed => "indexed",
            Self::All => "all",
        }
    }
}

/// A query by vector.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub vector: &'a [f32],
    /// Clamped to the service's caps before sending.
    pub top_k: usize,
    pub return_values: bool,
    pub return_metadata: ReturnMetadata,
    pub namespace: Option<&'a str>,
    pub filter: Option<Value>,
}

/// One query match.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QueryMatch {
    pub id: String,
    pub score: f32,
    #[serde(default)]
    pub values: Option<Vec<f32>>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// A metadata index on one property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataIndex {
    pub property_name: String,
    /// `string`, `number` or `boolean`.
    pub index_type: String,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ResponseInfo>,
    #[serde(default)]
    result: Value,
}

#[derive(Deserialize)]
struct ResponseInfo {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct MutationResult {
    #[serde(rename = "mutationId", default)]
    mutation_id: Option<String>,
}

/// The connection to one index of one account.
pub struct Client {
    agent: ureq::Agent,
    /// `{base}/accounts/{account}/vectorize/v2/indexes`.
    indexes_url: String,
    index: String,
    token: Token,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("indexes_url", &self.indexes_url)
            .field("index", &self.index)
            .field("token", &self.token)
            .finish()
    }
}

enum Body {
    Empty,
    Json(Value),
    Ndjson(String),
}

impl Client {
    /// `timeout` bounds each request from connect to the last byte.
    pub fn new(
        base_url: &str,
        account_id: &str,
        index: &str,
        token: Token,
        timeout: Duration,
    ) -> Self {
        let config = ureq::Agent::config_builder()
            // 4xx/5xx answers carry the envelope whose codes we decide on.
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            // The API does not redirect; following one could carry the
            // token somewhere else.
            .max_redirects(0)
            // Talk to the configured API directly, never through a proxy
            // named by the environment.
            .proxy(None)
            .user_agent(concat!("doorman/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: config.into(),
            indexes_url: format!(
                "{}/accounts/{account_id}/vectorize/v2/indexes",
                base_url.trim_end_matches('/')
            ),
            index: index.to_string(),
            token,
        }
    }

    pub fn index_name(&self) -> &str {
        &self.index
    }

    fn index_url(&self, op: &str) -> String {
        if op.is_empty() {
            format!("{}/{}", self.indexes_url, self.index)
        } else {
            format!("{}/{}/{op}", self.indexes_url, self.index)
        }
    }

    /// Creates the index with `dimensions` and the cosine metric.
    pub fn create_index(
        &self,
        dimensions: usize,
        description: &str,
        retry: Retry,
    ) -> Result<IndexDescription> {
        let body = json!({
            "name": self.index,
            "description": description,
            "config": {"dimensions": dimensions, "metric": "cosine"},
        });
        let url = self.indexes_url.clone();
        let v = self.call("POST", &url, &Body::Json(body), retry)?;
        Ok(decode(v).unwrap_or_default())
    }

    pub fn get_index(&self, retry: Retry) -> Result<IndexDescription> {
        decode_required(self.call("GET", &self.index_url(""), &Body::Empty, retry)?)
    }

    /// Every index of the account.
    pub fn list_indexes(&self, retry: Retry) -> Result<Vec<IndexDescription>> {
        let url = self.indexes_url.clone();
        Ok(decode(self.call("GET", &url, &Body::Empty, retry)?).unwrap_or_default())
    }

    pub fn delete_index(&self, retry: Retry) -> Result<()> {
        self.call("DELETE", &self.index_url(""), &Body::Empty, retry)?;
        Ok(())
    }

    pub fn info(&self, retry: Retry) -> Result<IndexInfo> {
        decode_required(self.call("GET", &self.index_url("info"), &Body::Empty, retry)?)
    }

    /// Upserts `vectors` in as few requests as the limits allow; returns
    /// one mutation id per request, in order.
    pub fn upsert(&self, vectors: &[Vector], retry: Retry) -> Result<Vec<String>> {
        self.write("upsert", vectors, retry)
    }

    /// Inserts `vectors` (an existing id keeps its old vector).
    pub fn insert(&self, vectors: &[Vector], retry: Retry) -> Result<Vec<String>> {
        self.write("insert", vectors, retry)
    }

    fn write(&self, op: &str, vectors: &[Vector], retry: Retry) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for batch in ndjson_batches(vectors, WRITE_BATCH, WRITE_BATCH_BYTES)? {
            let v = self.call("POST", &self.index_url(op), &Body::Ndjson(batch), retry)?;
            ids.push(mutation_id(v));
        }
        Ok(ids)
    }

    /// Nearest vectors to `q.vector`, best first.
    pub fn query(&self, q: &Query<'_>, retry: Retry) -> Result<Vec<QueryMatch>> {
        let mut body = json!({
            "vector": q.vector,
            "topK": clamp_top_k(q.top_k, q.return_values, q.return_metadata),
            "returnValues": q.return_values,
            "returnMetadata": q.return_metadata.as_str(),
        });
        if let Some(ns) = q.namespace {
            body["namespace"] = json!(ns);
        }
        if let Some(filter) = &q.filter {
            body["filter"] = filter.clone();
        }
        #[derive(Deserialize, Default)]
        struct Matches {
            #[serde(default)]
            matches: Vec<QueryMatch>,
        }
        let v = self.call("POST", &self.index_url("query"), &Body::Json(body), retry)?;
        Ok(decode::<Matches>(v).unwrap_or_default().matches)
    }

    /// The stored vectors among `ids`; unknown ids are left out.
    pub fn get_by_ids(&self, ids: &[String], retry: Retry) -> Result<Vec<Vector>> {
        let mut found = Vec::new();
        for chunk in ids.chunks(GET_BY_IDS_BATCH) {
            let body = Body::Json(json!({ "ids": chunk }));
            let v = self.call("POST", &self.index_url("get_by_ids"), &body, retry)?;
            found.extend(decode::<Vec<Vector>>(v).unwrap_or_default());
        }
        Ok(found)
    }

    /// Deletes `ids`; returns one mutation id per request.
    pub fn delete_by_ids(&self, ids: &[String], retry: Retry) -> Result<Vec<String>> {
        let mut mutations = Vec::new();
        for chunk in ids.chunks(DELETE_BY_IDS_BATCH) {
            let body = Body::Json(json!({ "ids": chunk }));
            let v = self.call("POST", &self.index_url("delete_by_ids"), &body, retry)?;
            mutations.push(mutation_id(v));
        }
        Ok(mutations)
    }

    pub fn create_metadata_index(&self, index: &MetadataIndex, retry: Retry) -> Result<String> {
        let body = Body::Json(serde_json::to_value(index).expect("plain struct"));
        let url = self.index_url("metadata_index/create");
        Ok(mutation_id(self.call("POST", &url, &body, retry)?))
    }

    pub fn list_metadata_indexes(&self, retry: Retry) -> Result<Vec<MetadataIndex>> {
        #[derive(Deserialize, Default)]
        struct List {
            #[serde(default, rename = "metadataIndexes")]
            metadata_indexes: Vec<MetadataIndex>,
        }
        let url = self.index_url("metadata_index/list");
        let v = self.call("GET", &url, &Body::Empty, retry)?;
        Ok(decode::<List>(v).unwrap_or_default().metadata_indexes)
    }

    /// Sends one request, retrying what is worth retrying within `retry`.
    fn call(&self, method: &str, url: &str, body: &Body, retry: Retry) -> Result<Value> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let err = match self.send_once(method, url, body) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Retry::For(limit) = retry else {
                return Err(err);
            };
            if !err.is_retryable() {
                return Err(err);
            }
            let wait = backoff(attempt, err.retry_after());
            if started.elapsed() + wait > limit {
                return Err(err);
            }
            log::warn!(
                "{method} {}: {err}; retrying in {:.1} s",
                self.redact(url),
                wait.as_secs_f32()
            );
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// The URL without the account id, for logs.
    fn redact(&self, url: &str) -> String {
        match url.find("/vectorize/") {
            Some(i) => url[i..].to_string(),
            None => url.to_string(),
        }
    }

    fn send_once(&self, method: &str, url: &str, body: &Body) -> Result<Value> {
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Authorization", self.token.bearer());
        let request = match body {
            Body::Empty => builder.body(Vec::new()),
            Body::Json(v) => builder
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(v).expect("JSON values serialise")),
            Body::Ndjson(text) => builder
                .header("Content-Type", "application/x-ndjson")
                .body(text.clone().into_bytes()),
        }
        .map_err(|e| Error::Transport(format!("building the request: {e}")))?;

        let mut response = self.agent.run(request).map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(transport)?;
        decide(status, &text, retry_after)
    }
}

fn transport(e: ureq::Error) -> Error {
    // ureq's messages name the host and the cause, never a header.
    Error::Transport(e.to_string())
}

/// Turns one HTTP answer into a result, from the envelope first.
pub fn decide(status: u16, text: &str, retry_after: Option<Duration>) -> Result<Value> {
    let envelope: Option<Envelope> = serde_json::from_str(text).ok();
    if let Some(env) = &envelope {
        if env.success && (200..300).contains(&status) {
            return Ok(env.result.clone());
        }
    } else if (200..300).contains(&status) && text.trim().is_empty() {
        // An early-beta delete answered 204 with no body.
        return Ok(Value::Null);
    }

    let codes: Vec<(u32, String)> = envelope
        .map(|e| e.errors.into_iter().map(|i| (i.code, i.message)).collect())
        .unwrap_or_default();
    let has = |c: u32| codes.iter().any(|(k, _)| *k == c);
    let message = |c: u32| {
        codes
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };

    if status == 429 || has(40041) {
        let code = if has(40041) { 40041 } else { 429 };
        return Err(Error::RateLimited { code, retry_after });
    }
    if has(10000) || status == 401 || status == 403 {
        return Err(Error::Unauthorised {
            status,
            code: if has(10000) { 10000 } else { 0 },
        });
    }
    for c in [3000, 3005] {
        if has(c) {
            return Err(Error::IndexMissing {
                code: c,
                message: message(c),
            });
        }
    }
    if has(3002) {
        return Err(Error::IndexExists {
            message: message(3002),
        });
    }
    for c in [40006, 40012] {
        if has(c) {
            return Err(Error::WrongDimension {
                code: c,
                message: message(c),
            });
        }
    }
    if has(40008) {
        return Err(Error::IdTooLong {
            message: message(40008),
        });
    }
    if status >= 500 {
        let detail = if codes.is_empty() {
            format!("{} bytes of non-envelope body", text.len())
        } else {
            codes_text(&codes)
        };
        return Err(Error::Server {
            status,
            message: detail,
        });
    }
    if (200..300).contains(&status) && codes.is_empty() {
        return Err(Error::Server {
            status,
            message: "the answer is not a Vectorize envelope".into(),
        });
    }
    Err(Error::Invalid { status, codes })
}

/// `Retry-After` in seconds; the HTTP-date form is not used by the API.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// The wait before retry `attempt` (0-based): the server's Retry-After when
/// given, else exponential back-off with full jitter between half and all
/// of the step, so many devices do not retry in step.
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(d) = retry_after {
        return d;
    }
    let step = BACKOFF_START
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX);
    step.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// `topK` within the service's caps (it rejects, never clamps).
pub fn clamp_top_k(top_k: usize, values: bool, metadata: ReturnMetadata) -> usize {
    let cap = if values || metadata == ReturnMetadata::All {
        TOP_K_MAX_WITH_VALUES
    } else {
        TOP_K_MAX
    };
    top_k.clamp(1, cap)
}

/// Splits vectors into NDJSON bodies of at most `max_count` lines and
/// `max_bytes` bytes each.
pub fn ndjson_batches(
    vectors: &[Vector],
    max_count: usize,
    max_bytes: usize,
) -> Result<Vec<String>> {
    let mut batches = Vec::new();
    let mut current = String::new();
    let mut lines = 0;
    for v in vectors {
        if v.id.len() > MAX_ID_BYTES {
            return Err(Error::IdTooLong {
                message: format!("{} bytes (checked before sending)", v.id.len()),
            });
        }
        let line = serde_json::to_string(v).expect("vectors serialise");
        if lines > 0 && (lines == max_count || current.len() + line.len() + 1 > max_bytes) {
            batches.push(std::mem::take(&mut current));
            lines = 0;
        }
        current.push_str(&line);
        current.push('\n');
        lines += 1;
    }
    if lines > 0 {
        batches.push(current);
    }
    Ok(batches)
}

fn mutation_id(v: Value) -> String {
    decode::<MutationResult>(v)
        .and_then(|m| m.mutation_id)
        .unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(v: Value) -> Option<T> {
    serde_json::from_value(v).ok()
}

fn decode_required<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Server {
        status: 200,
        message: format!("unexpected result shape: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_envelope_is_decided_by_its_code_not_its_status() {
        let body = |code: u32| {
            format!(
                r#"{{"success":false,"errors":[{{"code":{code},"message":"m"}}],"result":null}}"#
            )
        };
        assert!(matches!(
            decide(400, &body(3000), None),
            Err(Error::IndexMissing { code: 3000, .. })
        ));
        assert!(matches!(
            decide(404, &body(3000), None),
            Err(Error::IndexMissing { .. })
        ));
        assert!(matches!(
            decide(400, &body(40041), None),
            Err(Error::RateLimited { code: 40041, .. })
        ));
        assert!(matches!(
            decide(200, &body(40007), None),
            Err(Error::Invalid { .. })
        ));
        assert_eq!(
            decide(204, "", None).unwrap(),
            Value::Null,
            "an empty 2xx body is a success"
        );
        assert!(matches!(
            decide(502, "<html>bad gateway</html>", None),
            Err(Error::Server { status: 502, .. })
        ));
    }

    #[test]
    fn unknown_fields_in_the_envelope_are_ignored() {
        let v = decide(
            200,
            r#"{"success":true,"errors":[],"messages":[],"result_info":null,"result":{"mutationId":"m1","extra":1}}"#,
            None,
        )
        .unwrap();
        assert_eq!(mutation_id(v), "m1");
    }

    #[test]
    fn top_k_is_clamped_to_the_documented_caps() {
        assert_eq!(clamp_top_k(500, false, ReturnMetadata::None), 100);
        assert_eq!(clamp_top_k(500, false, ReturnMetadata::Indexed), 100);
        assert_eq!(clamp_top_k(60, true, ReturnMetadata::None), 50);
        assert_eq!(clamp_top_k(60, false, ReturnMetadata::All), 50);
        assert_eq!(clamp_top_k(0, false, ReturnMetadata::None), 1);
    }

    #[test]
    fn backoff_grows_is_jittered_and_honours_retry_after() {
        for attempt in 0..6 {
            let d = backoff(attempt, None);
            let step = BACKOFF_START * (1 << attempt);
            assert!(d >= step / 2 && d <= step, "{attempt}: {d:?}");
        }
        assert!(backoff(40, None) <= BACKOFF_MAX);
        assert_eq!(
            backoff(0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn ndjson_batches_split_by_count_and_by_bytes() {
        let v = |i: usize| Vector {
            id: format!("v{i}"),
            values: vec![0.5; 4],
            namespace: None,
            metadata: None,
        };
        let all: Vec<_> = (0..7).map(v).collect();
        let b = ndjson_batches(&all, 3, usize::MAX).unwrap();
        assert_eq!(
            b.iter().map(|s| s.lines().count()).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        let line = serde_json::to_string(&v(0)).unwrap().len() + 1;
        let b = ndjson_batches(&all, 100, line * 2).unwrap();
        assert_eq!(b.len(), 4);
        assert!(b.iter().all(|s| s.len() <= line * 2));
        assert!(b[0].ends_with('\n') && !b[0].contains("namespace"));
    }
}
