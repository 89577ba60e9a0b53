//! A stand-in for the Cloudflare Vectorize v2 REST API, for tests and a
//! manual demo (`cargo run --example vectorize-standin`). Test-only: it is
//! not part of the doorman binary.
//!
//! It serves real HTTP on 127.0.0.1 under
//! `/client/v4/accounts/{account}/vectorize/v2/...` with the documented
//! envelopes, error codes and limits (see `shared/docs/vectorize-api.md`),
//! checks a bearer token, accepts NDJSON and multipart bodies, stores values
//! as float32 and scores exactly. Writes are accepted into a log and applied
//! later (`Apply`), as on the real service. Tests inject faults (`Fault`),
//! stop and restart the listener (an outage), and read what was written.
//!
//! Where the spec leaves a code open, the stand-in's choice is marked
//! "stand-in choice".

#![allow(dead_code)]

mod http;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use http::{read_request, write_response, ReadError, Request};

/// Limits from the spec's "current" profile.
pub const MAX_TOP_K: usize = 100;
pub const MAX_TOP_K_WITH_VALUES: usize = 50;
pub const MAX_WRITE_VECTORS: usize = 5000;
pub const MAX_GET_IDS: usize = 20;
pub const MAX_DELETE_IDS: usize = 100;
pub const MAX_ID_BYTES: usize = 64;
pub const MAX_METADATA_BYTES: usize = 10 * 1024;
pub const MAX_METADATA_INDEXES: usize = 10;
pub const MAX_FILTER_BYTES: usize = 2048;
pub const INDEXED_STRING_BYTES: usize = 64;

/// When accepted writes become visible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Apply {
    Immediate,
    /// Each write becomes visible this long after it was accepted.
    Delayed(Duration),
    /// Only `flush` applies writes.
    Manual,
}

/// Which requests a fault hits.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    All,
    /// insert, upsert, delete_by_ids, metadata index create/delete.
    Writes,
    /// Requests whose path ends with this operation (`query`, `upsert`...).
    Op(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Answer with this status and error code (and `Retry-After`).
    Error {
        status: u16,
        code: u32,
        message: String,
        retry_after_s: Option<u64>,
    },
    /// A 502 with an HTML body, as a proxy in front would send.
    BadGateway,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Read the request, then close the connection without an answer.
    Drop,
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub target: Target,
    pub kind: FaultKind,
    /// How many matching requests it hits; `usize::MAX` until cleared.
    pub times: usize,
}

impl Fault {
    pub fn new(target: Target, kind: FaultKind, times: usize) -> Self {
        Self {
            target,
            kind,
            times,
        }
    }

    /// 429 with `retry-after`, the global API rate limit.
    pub fn rate_limited(times: usize, retry_after_s: u64) -> Self {
        Self::new(
            Target::All,
            FaultKind::Error {
                status: 429,
                code: 971,
                message: "Please wait and consider throttling your request speed".into(),
                retry_after_s: Some(retry_after_s),
            },
            times,
        )
    }

    /// 40041, Vectorize's own write throttle (stand-in choice: HTTP 429).
    pub fn write_throttle(times: usize) -> Self {
        Self::new(
            Target::Writes,
            FaultKind::Error {
                status: 429,
                code: 40041,
                message: "Too Many Requests".into(),
                retry_after_s: None,
            },
            times,
        )
    }

    pub fn server_error(target: Target, times: usize) -> Self {
        Self::new(
            target,
            FaultKind::Error {
                status: 503,
                code: 1000,
                message: "service temporarily unavailable".into(),
                retry_after_s: None,
            },
            times,
        )
    }
}

/// What the stand-in starts with.
#[derive(Debug, Clone)]
pub struct Options {
    pub account: String,
    pub token: String,
    /// Accepted on read routes only; writes answer 403/10000.
    pub read_only_token: Option<String>,
    pub apply: Apply,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            account: "0123456789abcdef0123456789abcdef".into(),
            token: "standin-token-7d1f0c".into(),
            read_only_token: None,
            apply: Apply::Immediate,
            port: 0,
        }
    }
}

/// One stored vector.
#[derive(Debug, Clone)]
pub struct Stored {
    pub values: Vec<f32>,
    pub namespace: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    /// Metadata indexes that existed when it was written: only these
    /// properties are filterable on it.
    indexed: Vec<String>,
}

#[derive(Debug, Clone)]
struct Index {
    name: String,
    description: Option<String>,
    dimensions: usize,
    metric: String,
    created_on: String,
    vectors: BTreeMap<String, Stored>,
    metadata_indexes: BTreeMap<String, String>,
    processed_mutation: Option<String>,
    processed_at: Option<String>,
}

#[derive(Debug, Clone)]
enum MutationOp {
    Insert(Vec<(String, Stored)>),
    Upsert(Vec<(String, Stored)>),
    Delete(Vec<String>),
    CreateMetadataIndex(String, String),
    DeleteMetadataIndex(String),
}

#[derive(Debug, Clone)]
struct Mutation {
    id: String,
    index: String,
    accepted: Instant,
    op: MutationOp,
}

/// One request as the stand-in saw it (no headers: never the token).
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Ids carried by a write or get request.
    pub ids: Vec<String>,
}

#[derive(Default)]
struct State {
    indexes: BTreeMap<String, Index>,
    deleted: Vec<String>,
    pending: Vec<Mutation>,
    mutation_seq: u64,
    faults: Vec<Fault>,
    log: Vec<Logged>,
    /// Accepted upserts/inserts per vector id.
    writes: HashMap<String, usize>,
}

struct Shared {
    options: Mutex<Options>,
    state: Mutex<State>,
    listening: AtomicBool,
    alive: AtomicBool,
}

pub struct Standin {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
    applier: Option<JoinHandle<()>>,
}

impl Standin {
    pub fn start(options: Options) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", options.port)).expect("binding 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            options: Mutex::new(options),
            state: Mutex::new(State::default()),
            listening: AtomicBool::new(true),
            alive: AtomicBool::new(true),
        });
        let acceptor = Some(spawn_acceptor(listener, shared.clone()));
        let s = shared.clone();
        let applier = Some(std::thread::spawn(move || {
            while s.alive.load(Ordering::SeqCst) {
                let apply = s.options.lock().unwrap().apply;
                if let Apply::Delayed(d) = apply {
                    apply_due(&mut s.state.lock().unwrap(), Some(d));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
        Self {
            shared,
            addr,
            acceptor,
            applier,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The base URL doorman's `vectorize.base_url` takes.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/client/v4", self.port())
    }

    pub fn account(&self) -> String {
        self.shared.options.lock().unwrap().account.clone()
    }

    pub fn token(&self) -> String {
        self.shared.options.lock().unwrap().token.clone()
    }

    pub fn set_apply(&self, apply: Apply) {
        self.shared.options.lock().unwrap().apply = apply;
    }

    /// Applies every accepted write now.
    pub fn flush(&self) {
        apply_due(&mut self.shared.state.lock().unwrap(), None);
    }

    pub fn add_fault(&self, fault: Fault) {
        self.shared.state.lock().unwrap().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.state.lock().unwrap().faults.clear();
    }

    /// Stops listening: connections are refused until `restart`. The
    /// indexes and accepted writes are kept, as a real outage would.
    pub fn stop(&mut self) {
        self.shared.listening.store(false, Ordering::SeqCst);
        if let Some(h) = self.acceptor.take() {
            h.join().unwrap();
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        assert!(self.acceptor.is_none(), "already listening");
        let listener = TcpListener::bind(self.addr).expect("binding the same port again");
        self.shared.listening.store(true, Ordering::SeqCst);
        self.acceptor = Some(spawn_acceptor(listener, self.shared.clone()));
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.state.lock().unwrap().log.clone()
    }

    /// Requests whose path ends with `op`.
    pub fn count(&self, op: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.ends_with(op))
            .count()
    }

    /// How often each vector id was accepted in an insert or upsert.
    pub fn write_counts(&self) -> HashMap<String, usize> {
        self.shared.state.lock().unwrap().writes.clone()
    }

    /// The applied vectors of an index.
    pub fn vectors(&self, index: &str) -> BTreeMap<String, Stored> {
        self.shared
            .state
            .lock()
            .unwrap()
            .indexes
            .get(index)
            .map(|i| i.vectors.clone())
            .unwrap_or_default()
    }

    /// Accepted writes not applied yet.
    pub fn pending(&self) -> usize {
        self.shared.state.lock().unwrap().pending.len()
    }

    /// Makes an index directly, as if created earlier.
    pub fn create_index(&self, name: &str, dimensions: usize, metric: &str) {
        let mut st = self.shared.state.lock().unwrap();
        st.indexes.insert(
            name.to_string(),
            Index {
                name: name.to_string(),
                description: None,
                dimensions,
                metric: metric.to_string(),
                created_on: now_rfc3339(),
                vectors: BTreeMap::new(),
                metadata_indexes: BTreeMap::new(),
                processed_mutation: None,
                processed_at: None,
            },
        );
    }

    pub fn metadata_indexes(&self, index: &str) -> Vec<String> {
        self.shared
            .state
            .lock()
            .unwrap()
            .indexes
            .get(index)
            .map(|i| i.metadata_indexes.keys().cloned().collect())
            .unwrap_or_default()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.shared.alive.store(false, Ordering::SeqCst);
        self.stop();
        if let Some(h) = self.applier.take() {
            let _ = h.join();
        }
    }
}

fn spawn_acceptor(listener: TcpListener, shared: Arc<Shared>) -> JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while shared.listening.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let s = shared.clone();
                    std::thread::spawn(move || serve(stream, &s));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        // Dropping the listener closes the port.
    })
}

/// An answer: status, extra headers, JSON body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

fn ok(result: Value) -> Answer {
    Answer {
        status: 200,
        headers: Vec::new(),
        body: json!({"success": true, "errors": [], "messages": [], "result": result}),
    }
}

/// The API's answer for an index that does not exist (as seen in the wild).
fn index_not_found(name: &str) -> Answer {
    fail(
        404,
        3000,
        format!("vectorize.index.not_found - Index name \"{name}\""),
    )
}

fn fail(status: u16, code: u32, message: impl Into<String>) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: json!({
            "success": false,
            "errors": [{"code": code, "message": message.into()}],
            "messages": [],
            "result": null
        }),
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let request = match read_request(&stream) {
        Ok(r) => r,
        Err(ReadError::TooLarge) => {
            let body = b"<html><body>413 Request Entity Too Large</body></html>";
            write_response(&stream, 413, &[], body);
            return;
        }
        Err(ReadError::Closed) => return,
    };

    if request.path.starts_with("/__standin/") {
        let answer = admin(&request, shared);
        write_response(
            &stream,
            answer.status,
            &[],
            answer.body.to_string().as_bytes(),
        );
        return;
    }

    // Faults first: they stand for what sits in front of the API.
    let fault = take_fault(&mut shared.state.lock().unwrap(), &request);
    match fault {
        Some(FaultKind::Drop) => {
            log(shared, &request, 0, Vec::new());
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        Some(FaultKind::Slow(d)) => std::thread::sleep(d),
        Some(FaultKind::BadGateway) => {
            log(shared, &request, 502, Vec::new());
            write_response(
                &stream,
                502,
                &[],
                b"<html><body>502 Bad Gateway</body></html>",
            );
            return;
        }
        Some(FaultKind::Error {
            status,
            code,
            message,
            retry_after_s,
        }) => {
            let mut a = fail(status, code, message);
            if let Some(s) = retry_after_s {
                a.headers.push(("Retry-After".into(), s.to_string()));
            }
            log(shared, &request, status, Vec::new());
            let headers: Vec<(String, String)> = a
                .headers
                .iter()
                .cloned()
                .chain([("Content-Type".into(), "application/json".into())])
                .collect();
            write_response(&stream, status, &headers, a.body.to_string().as_bytes());
            return;
        }
        None => {}
    }

    let (answer, ids) = route(&request, shared);
    log(shared, &request, answer.status, ids);
    let mut headers = answer.headers;
    headers.push(("Content-Type".into(), "application/json".into()));
    write_response(
        &stream,
        answer.status,
        &headers,
        answer.body.to_string().as_bytes(),
    );
}

fn log(shared: &Shared, r: &Request, status: u16, ids: Vec<String>) {
    shared.state.lock().unwrap().log.push(Logged {
        method: r.method.clone(),
        path: r.path.clone(),
        status,
        ids,
    });
}

fn is_write_op(op: &str) -> bool {
    matches!(
        op,
        "insert" | "upsert" | "delete_by_ids" | "metadata_index/create" | "metadata_index/delete"
    )
}

fn take_fault(st: &mut State, r: &Request) -> Option<FaultKind> {
    let op = operation(&r.path);
    let hit = st.faults.iter_mut().find(|f| {
        f.times > 0
            && match &f.target {
                Target::All => true,
                Target::Writes => r.method == "POST" && is_write_op(&op),
                Target::Op(o) => op == *o,
            }
    })?;
    hit.times = hit.times.saturating_sub(1);
    Some(hit.kind.clone())
}

/// The operation after the index name (`query`, `metadata_index/list`).
fn operation(path: &str) -> String {
    match path.split_once("/indexes/") {
        Some((_, rest)) => rest
            .split_once('/')
            .map_or(String::new(), |(_, op)| op.to_string()),
        None => String::new(),
    }
}

fn admin(r: &Request, shared: &Shared) -> Answer {
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/__standin/flush") => {
            apply_due(&mut shared.state.lock().unwrap(), None);
            ok(json!({"flushed": true}))
        }
        ("POST", "/__standin/pause") => {
            shared.options.lock().unwrap().apply = Apply::Manual;
            ok(json!({"apply": "manual"}))
        }
        ("POST", "/__standin/resume") => {
            shared.options.lock().unwrap().apply = Apply::Immediate;
            apply_due(&mut shared.state.lock().unwrap(), None);
            ok(json!({"apply": "immediate"}))
        }
        ("POST", "/__standin/fault") => {
            // {"kind": "429"|"40041"|"5xx"|"drop"|"slow", "times": n, "ms": n}
            let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let times = v["times"].as_u64().unwrap_or(1) as usize;
            let fault = match v["kind"].as_str().unwrap_or("") {
                "429" => Fault::rate_limited(times, v["retry_after_s"].as_u64().unwrap_or(1)),
                "40041" => Fault::write_throttle(times),
                "5xx" => Fault::server_error(Target::All, times),
                "drop" => Fault::new(Target::All, FaultKind::Drop, times),
                "slow" => Fault::new(
                    Target::All,
                    FaultKind::Slow(Duration::from_millis(v["ms"].as_u64().unwrap_or(5000))),
                    times,
                ),
                "clear" => {
                    shared.state.lock().unwrap().faults.clear();
                    return ok(json!({"faults": 0}));
                }
                other => return fail(400, 40026, format!("unknown fault kind {other:?}")),
            };
            shared.state.lock().unwrap().faults.push(fault);
            ok(json!({"added": true}))
        }
        ("GET", "/__standin/stats") => {
            let st = shared.state.lock().unwrap();
            let indexes: Map<String, Value> = st
                .indexes
                .iter()
                .map(|(k, i)| (k.clone(), json!({"vectors": i.vectors.len()})))
                .collect();
            ok(json!({"requests": st.log.len(), "pending": st.pending.len(), "indexes": indexes}))
        }
        _ => fail(404, 7000, "no such stand-in route"),
    }
}

/// Checks credentials: `Authorization: Bearer`, or the legacy key pair.
fn authorise(r: &Request, options: &Options, write: bool) -> Result<(), Answer> {
    let presented = if let Some(auth) = r.header("authorization") {
        match auth.strip_prefix("Bearer ") {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let mut a = fail(400, 6003, "Invalid request headers");
                a.body["errors"][0]["error_chain"] =
                    json!([{"code": 6111, "message": "Invalid format for Authorization header"}]);
                return Err(a);
            }
        }
    } else if let (Some(_email), Some(key)) = (r.header("x-auth-email"), r.header("x-auth-key")) {
        key.to_string()
    } else {
        return Err(fail(403, 10000, "Authentication error"));
    };
    if presented == options.token {
        return Ok(());
    }
    if options.read_only_token.as_deref() == Some(presented.as_str()) && !write {
        return Ok(());
    }
    Err(fail(403, 10000, "Authentication error"))
}

fn route(r: &Request, shared: &Shared) -> (Answer, Vec<String>) {
    let options = shared.options.lock().unwrap().clone();
    let Some(rest) = r
        .path
        .strip_prefix("/client/v4/accounts/")
        .and_then(|p| p.split_once("/vectorize/"))
    else {
        return (
            fail(404, 7003, "Could not route to the requested path"),
            vec![],
        );
    };
    let (account, tail) = rest;
    let (v2, tail) = match tail.strip_prefix("v2/") {
        Some(t) => (true, t),
        None => (false, tail),
    };
    let segments: Vec<&str> = tail.split('/').collect();
    if segments.first() != Some(&"indexes") {
        return (
            fail(404, 7003, "Could not route to the requested path"),
            vec![],
        );
    }
    let op = segments.get(2..).map(|s| s.join("/")).unwrap_or_default();
    let write = match (r.method.as_str(), segments.len()) {
        ("POST", 1) | ("DELETE", 2) => true,
        ("POST", _) => is_write_op(&op),
        _ => false,
    };
    if let Err(a) = authorise(r, &options, write) {
        return (a, vec![]);
    }
    if account != options.account {
        return (fail(403, 10000, "Authentication error"), vec![]);
    }

    let mut st = shared.state.lock().unwrap();
    let apply = options.apply;
    if !v2 {
        // Every index here is a V2 index.
        let name = segments.get(1).copied().unwrap_or("");
        if st.indexes.contains_key(name) {
            return (
                fail(
                    400,
                    1010,
                    format!(
                        "vectorize.incorrect_api_version - Index: \"{name}\" with version \"v2\" \
                         called with api version \"v1\""
                    ),
                ),
                vec![],
            );
        }
        return (index_not_found(name), vec![]);
    }

    let answer = match (r.method.as_str(), segments.as_slice()) {
        ("POST", ["indexes"]) => create_index(&mut st, r),
        ("GET", ["indexes"]) => ok(Value::Array(st.indexes.values().map(index_json).collect())),
        (_, ["indexes", name, ..]) => {
            let name = name.to_string();
            if !st.indexes.contains_key(&name) {
                if st.deleted.contains(&name) {
                    return (
                        fail(
                            410,
                            3005,
                            format!("vectorize.index.deleted - Index name \"{name}\" was deleted"),
                        ),
                        vec![],
                    );
                }
                return (index_not_found(&name), vec![]);
            }
            let (a, ids) = index_route(&mut st, &name, r, &op, apply);
            return (a, ids);
        }
        _ => fail(404, 7003, "Could not route to the requested path"),
    };
    (answer, vec![])
}

fn index_route(
    st: &mut State,
    name: &str,
    r: &Request,
    op: &str,
    apply: Apply,
) -> (Answer, Vec<String>) {
    let json_body = || -> Result<Value, Answer> {
        let ct = r.header("content-type").unwrap_or("");
        if !ct.to_ascii_lowercase().starts_with("application/json") {
            return Err(fail(
                400,
                40026,
                "Expected request with `Content-Type: application/json`",
            ));
        }
        serde_json::from_slice(&r.body).map_err(|e| {
            fail(
                400,
                40026,
                format!("Failed to parse the request body as JSON: {e}"),
            )
        })
    };
    let idx = st.indexes.get(name).expect("checked").clone();
    match (r.method.as_str(), op) {
        ("GET", "") => (ok(index_json(&idx)), vec![]),
        ("DELETE", "") => {
            st.indexes.remove(name);
            st.pending.retain(|m| m.index != name);
            st.deleted.push(name.to_string());
            (ok(Value::Null), vec![])
        }
        ("GET", "info") => (
            ok(json!({
                "dimensions": idx.dimensions,
                "vectorCount": idx.vectors.len(),
                "processedUpToDatetime": idx.processed_at,
                "processedUpToMutation": idx.processed_mutation,
            })),
            vec![],
        ),
        ("POST", "insert") | ("POST", "upsert") => match parse_write(r, &idx) {
            Err(a) => (a, vec![]),
            Ok(items) => {
                let ids: Vec<String> = items.iter().map(|(id, _)| id.clone()).collect();
                for id in &ids {
                    *st.writes.entry(id.clone()).or_default() += 1;
                }
                let op = if op == "insert" {
                    MutationOp::Insert(items)
                } else {
                    MutationOp::Upsert(items)
                };
                (accept(st, name, op, apply), ids)
            }
        },
        ("POST", "query") => match json_body() {
            Err(a) => (a, vec![]),
            Ok(body) => (query(&idx, &body), vec![]),
        },
        ("POST", "get_by_ids") => match json_body().and_then(|b| ids_of(&b, MAX_GET_IDS)) {
            Err(a) => (a, vec![]),
            Ok(ids) => {
                let found: Vec<Value> = ids
                    .iter()
                    .filter_map(|id| {
                        idx.vectors
                            .get(id)
                            .map(|v| vector_json(id, v, true, "all", &idx))
                    })
                    .collect();
                (ok(Value::Array(found)), ids)
            }
        },
        ("POST", "delete_by_ids") => match json_body().and_then(|b| ids_of(&b, MAX_DELETE_IDS)) {
            Err(a) => (a, vec![]),
            Ok(ids) => (
                accept(st, name, MutationOp::Delete(ids.clone()), apply),
                ids,
            ),
        },
        ("GET", "list") => {
            let count: usize = r
                .query_param("count")
                .and_then(|c| c.parse().ok())
                .unwrap_or(100);
            if !(1..=1000).contains(&count) {
                return (fail(400, 40026, "count must be 1 to 1000"), vec![]);
            }
            let start: usize = r
                .query_param("cursor")
                .and_then(|c| c.strip_prefix("c_"))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let all: Vec<&String> = idx.vectors.keys().collect();
            let page: Vec<Value> = all
                .iter()
                .skip(start)
                .take(count)
                .map(|id| json!({"id": id}))
                .collect();
            let truncated = start + count < all.len();
            (
                ok(json!({
                    "count": page.len(),
                    "totalCount": all.len(),
                    "isTruncated": truncated,
                    "nextCursor": if truncated { Some(format!("c_{}", start + count)) } else { None },
                    "vectors": page,
                })),
                vec![],
            )
        }
        ("POST", "metadata_index/create") => match json_body() {
            Err(a) => (a, vec![]),
            Ok(b) => {
                let (Some(p), Some(t)) = (b["propertyName"].as_str(), b["indexType"].as_str())
                else {
                    return (
                        fail(400, 40026, "propertyName and indexType are required"),
                        vec![],
                    );
                };
                if !matches!(t, "string" | "number" | "boolean") {
                    return (fail(400, 40026, format!("invalid indexType {t:?}")), vec![]);
                }
                if !idx.metadata_indexes.contains_key(p)
                    && idx.metadata_indexes.len() >= MAX_METADATA_INDEXES
                {
                    // Stand-in choice of code.
                    return (
                        fail(400, 40014, "too many metadata indexes; max is 10"),
                        vec![],
                    );
                }
                let op = MutationOp::CreateMetadataIndex(p.to_string(), t.to_string());
                (accept(st, name, op, apply), vec![])
            }
        },
        ("GET", "metadata_index/list") => {
            let list: Vec<Value> = idx
                .metadata_indexes
                .iter()
                .map(|(p, t)| json!({"propertyName": p, "indexType": t}))
                .collect();
            (ok(json!({ "metadataIndexes": list })), vec![])
        }
        ("POST", "metadata_index/delete") => match json_body() {
            Err(a) => (a, vec![]),
            Ok(b) => {
                let p = b["propertyName"].as_str().unwrap_or("");
                if !idx.metadata_indexes.contains_key(p) {
                    return (
                        fail(400, 40005, format!("metadata index {p:?} does not exist")),
                        vec![],
                    );
                }
                (
                    accept(
                        st,
                        name,
                        MutationOp::DeleteMetadataIndex(p.to_string()),
                        apply,
                    ),
                    vec![],
                )
            }
        },
        _ => (
            fail(404, 7003, "Could not route to the requested path"),
            vec![],
        ),
    }
}

fn create_index(st: &mut State, r: &Request) -> Answer {
    let ct = r.header("content-type").unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return fail(
            400,
            40026,
            "Expected request with `Content-Type: application/json`",
        );
    }
    let Ok(b) = serde_json::from_slice::<Value>(&r.body) else {
        return fail(400, 40026, "Failed to parse the request body as JSON");
    };
    let name = b["name"].as_str().unwrap_or("").to_string();
    let valid_name = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if !valid_name {
        return fail(400, 40026, format!("invalid index name {name:?}"));
    }
    let dims = b["config"]["dimensions"].as_u64().unwrap_or(0) as usize;
    let metric = b["config"]["metric"].as_str().unwrap_or("").to_string();
    if !(1..=1536).contains(&dims)
        || !matches!(metric.as_str(), "cosine" | "euclidean" | "dot-product")
    {
        return fail(400, 40026, "config needs dimensions 1 to 1536 and a metric");
    }
    if st.indexes.contains_key(&name) {
        return fail(
            400,
            3002,
            format!("vectorize.index.duplicate_name - Index name \"{name}\""),
        );
    }
    st.deleted.retain(|d| *d != name);
    let idx = Index {
        name: name.clone(),
        description: b["description"].as_str().map(str::to_string),
        dimensions: dims,
        metric,
        created_on: now_rfc3339(),
        vectors: BTreeMap::new(),
        metadata_indexes: BTreeMap::new(),
        processed_mutation: None,
        processed_at: None,
    };
    let body = index_json(&idx);
    st.indexes.insert(name, idx);
    ok(body)
}

fn index_json(i: &Index) -> Value {
    json!({
        "name": i.name,
        "description": i.description,
        "config": {"dimensions": i.dimensions, "metric": i.metric},
        "created_on": i.created_on,
        "modified_on": i.created_on,
    })
}

fn ids_of(body: &Value, max: usize) -> Result<Vec<String>, Answer> {
    let Some(list) = body["ids"].as_array() else {
        return Err(fail(
            400,
            40026,
            "Failed to parse the request body as JSON: ids: missing",
        ));
    };
    if list.len() > max {
        return Err(fail(
            400,
            40007,
            format!(
                "too many ids in payload; max id count is {max}, got {}",
                list.len()
            ),
        ));
    }
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| fail(400, 40026, "ids must be strings"))
        })
        .collect()
}

/// Parses and checks an insert/upsert body (NDJSON or multipart).
fn parse_write(r: &Request, idx: &Index) -> Result<Vec<(String, Stored)>, Answer> {
    let ct = r.header("content-type").unwrap_or("").to_ascii_lowercase();
    let text = if ct.starts_with("application/x-ndjson") {
        r.body.clone()
    } else if ct.starts_with("multipart/form-data") {
        let original = r.header("content-type").unwrap_or("");
        http::multipart_part(original, &r.body, "vectors")
            .ok_or_else(|| fail(400, 40026, "multipart body without a `vectors` part"))?
    } else {
        // Stand-in choice of code; the message is the observed one.
        return Err(fail(400, 40026, "vectorize.unknown_content_type"));
    };
    let discard = r.query_param("unparsable-behavior") == Some("discard");
    let text = String::from_utf8_lossy(&text);
    let mut items: Vec<(String, Stored)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Value>(line).ok().and_then(|v| {
            let id = v["id"].as_str()?.to_string();
            let values: Option<Vec<f32>> = v["values"]
                .as_array()?
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect();
            let namespace = match &v["namespace"] {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                _ => return None,
            };
            let metadata = match &v["metadata"] {
                Value::Null => None,
                Value::Object(m) => Some(m.clone()),
                _ => return None,
            };
            Some((id, values?, namespace, metadata))
        });
        let Some((id, values, namespace, metadata)) = parsed else {
            if discard {
                continue;
            }
            return Err(fail(
                400,
                40023,
                format!(
                    "vectorize.upstream_error - failed to parse upsert vectors request in ndjson \
                     format: line Some({n}) was not expected format"
                ),
            ));
        };
        items.push((
            id,
            Stored {
                values,
                namespace,
                metadata,
                indexed: Vec::new(),
            },
        ));
    }
    if items.len() > MAX_WRITE_VECTORS {
        // Stand-in choice of code for too many vectors.
        return Err(fail(
            400,
            40007,
            format!(
                "too many vectors in payload; max is {MAX_WRITE_VECTORS}, got {}",
                items.len()
            ),
        ));
    }
    for (id, v) in &items {
        if id.len() > MAX_ID_BYTES {
            return Err(fail(
                400,
                40008,
                format!("id too long; max is 64 bytes, got {} bytes", id.len()),
            ));
        }
        if v.values.len() != idx.dimensions {
            return Err(fail(
                400,
                40012,
                format!(
                    "invalid vector for id=\"{id}\", expected {} dimensions, and got {} dimensions",
                    idx.dimensions,
                    v.values.len()
                ),
            ));
        }
        if let Some(m) = &v.metadata {
            let size = serde_json::to_string(m).unwrap().len();
            if size > MAX_METADATA_BYTES {
                // Stand-in choice of code.
                return Err(fail(
                    400,
                    40013,
                    format!("metadata too large; max is 10240 bytes, got {size}"),
                ));
            }
            if m.keys()
                .any(|k| k.is_empty() || k.contains('.') || k.contains('"') || k.starts_with('$'))
            {
                return Err(fail(400, 40013, "invalid metadata key"));
            }
        }
        if v.namespace.as_ref().is_some_and(|n| n.len() > 64) {
            return Err(fail(400, 40013, "namespace too long; max is 64 bytes"));
        }
    }
    Ok(items)
}

fn accept(st: &mut State, index: &str, op: MutationOp, apply: Apply) -> Answer {
    st.mutation_seq += 1;
    let n = st.mutation_seq;
    let id = format!("{:08x}-5a4d-4e00-8000-{:012x}", n as u32, n);
    st.pending.push(Mutation {
        id: id.clone(),
        index: index.to_string(),
        accepted: Instant::now(),
        op,
    });
    if apply == Apply::Immediate {
        apply_due(st, None);
    }
    ok(json!({ "mutationId": id }))
}

/// Applies accepted writes in order: all of them (`None`), or those at
/// least `delay` old.
fn apply_due(st: &mut State, delay: Option<Duration>) {
    let now = Instant::now();
    let due = st
        .pending
        .iter()
        .take_while(|m| delay.is_none_or(|d| now.duration_since(m.accepted) >= d))
        .count();
    let batch: Vec<Mutation> = st.pending.drain(..due).collect();
    for m in batch {
        let Some(idx) = st.indexes.get_mut(&m.index) else {
            continue;
        };
        let indexed: Vec<String> = idx.metadata_indexes.keys().cloned().collect();
        match m.op {
            MutationOp::Insert(items) => {
                for (id, mut v) in items {
                    if let std::collections::btree_map::Entry::Vacant(slot) = idx.vectors.entry(id)
                    {
                        v.indexed = indexed.clone();
                        slot.insert(v);
                    }
                }
            }
            MutationOp::Upsert(items) => {
                for (id, mut v) in items {
                    v.indexed = indexed.clone();
                    idx.vectors.insert(id, v);
                }
            }
            MutationOp::Delete(ids) => {
                for id in ids {
                    idx.vectors.remove(&id);
                }
            }
            MutationOp::CreateMetadataIndex(p, t) => {
                idx.metadata_indexes.insert(p, t);
            }
            MutationOp::DeleteMetadataIndex(p) => {
                idx.metadata_indexes.remove(&p);
            }
        }
        idx.processed_mutation = Some(m.id);
        idx.processed_at = Some(now_rfc3339());
    }
}

fn query(idx: &Index, body: &Value) -> Answer {
    let return_values = match &body["returnValues"] {
        Value::Null => false,
        Value::Bool(b) => *b,
        _ => {
            return fail(
                400,
                40026,
                "Failed to parse the request body as JSON: returnValues",
            )
        }
    };
    let return_metadata = match &body["returnMetadata"] {
        Value::Null => "none".to_string(),
        Value::String(s) if matches!(s.as_str(), "none" | "indexed" | "all") => s.clone(),
        _ => {
            return fail(
                400,
                40026,
                "Failed to parse the request body as JSON: returnMetadata: expected value at line 1 column 1",
            )
        }
    };
    let top_k = body["topK"].as_u64().unwrap_or(5) as usize;
    let cap = if return_values || return_metadata == "all" {
        MAX_TOP_K_WITH_VALUES
    } else {
        MAX_TOP_K
    };
    if top_k > cap || top_k == 0 {
        return fail(
            400,
            40025,
            format!("with returnValues=true or returnMetadata=all, max top K is {MAX_TOP_K_WITH_VALUES}, but got {top_k}"),
        );
    }
    let vector: Vec<f32> = if let Some(id) = body["vectorId"].as_str() {
        match idx.vectors.get(id) {
            Some(v) => v.values.clone(),
            None => return ok(json!({"count": 0, "matches": []})),
        }
    } else {
        let Some(list) = body["vector"].as_array() else {
            return fail(
                400,
                40006,
                format!(
                    "invalid query vector, expected {} dimensions, and got 0 dimensions",
                    idx.dimensions
                ),
            );
        };
        list.iter()
            .filter_map(|v| v.as_f64())
            .map(|f| f as f32)
            .collect()
    };
    if vector.len() != idx.dimensions {
        return fail(
            400,
            40006,
            format!(
                "invalid query vector, expected {} dimensions, and got {} dimensions",
                idx.dimensions,
                vector.len()
            ),
        );
    }
    let filter = match &body["filter"] {
        Value::Null => None,
        f => match check_filter(f) {
            Ok(()) => Some(f.clone()),
            Err(a) => return a,
        },
    };
    let namespace = body["namespace"].as_str();

    let mut scored: Vec<(&String, &Stored, f32)> = idx
        .vectors
        .iter()
        .filter(|(_, v)| namespace.is_none_or(|ns| v.namespace.as_deref() == Some(ns)))
        .filter(|(_, v)| filter.as_ref().is_none_or(|f| matches_filter(f, v)))
        .map(|(id, v)| (id, v, score(&idx.metric, &vector, &v.values)))
        .collect();
    if idx.metric == "cosine" {
        scored.sort_by(|a, b| b.2.total_cmp(&a.2));
    } else {
        scored.sort_by(|a, b| a.2.total_cmp(&b.2));
    }
    scored.truncate(top_k);
    let matches: Vec<Value> = scored
        .into_iter()
        .map(|(id, v, s)| {
            let mut m = vector_json(id, v, return_values, &return_metadata, idx);
            m["score"] = json!(s);
            m
        })
        .collect();
    ok(json!({"count": matches.len(), "matches": matches}))
}

fn score(metric: &str, a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    match metric {
        "euclidean" => a
            .iter()
            .zip(b)
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum::<f64>()
            .sqrt() as f32,
        "dot-product" => -dot as f32,
        _ => {
            let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            if na == 0.0 || nb == 0.0 {
                0.0
            } else {
                (dot / (na * nb)) as f32
            }
        }
    }
}

fn vector_json(id: &str, v: &Stored, values: bool, metadata: &str, idx: &Index) -> Value {
    let mut out = json!({"id": id, "namespace": v.namespace});
    if values {
        // Stored as float32, returned as the f64 of that float32.
        out["values"] = json!(v.values.iter().map(|x| *x as f64).collect::<Vec<f64>>());
    }
    match metadata {
        "all" => out["metadata"] = json!(v.metadata),
        "indexed" => {
            let mut m = Map::new();
            if let Some(meta) = &v.metadata {
                for (k, val) in meta {
                    if idx.metadata_indexes.contains_key(k) && v.indexed.contains(k) {
                        let val = match val {
                            Value::String(s) => json!(cut(s, INDEXED_STRING_BYTES)),
                            other => other.clone(),
                        };
                        m.insert(k.clone(), val);
                    }
                }
            }
            out["metadata"] = Value::Object(m);
        }
        _ => {}
    }
    out
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn check_filter(f: &Value) -> Result<(), Answer> {
    let bad = |m: &str| Err(fail(400, 40026, format!("invalid filter: {m}")));
    let Some(obj) = f.as_object() else {
        return bad("not an object");
    };
    if obj.is_empty() {
        return bad("empty");
    }
    if f.to_string().len() >= MAX_FILTER_BYTES {
        return bad("over 2048 bytes");
    }
    for (k, v) in obj {
        if k.is_empty() || k.starts_with('$') || k.contains('"') || k.chars().count() > 512 {
            return bad("invalid key");
        }
        if let Some(ops) = v.as_object() {
            let upper = ops.keys().filter(|o| *o == "$lt" || *o == "$lte").count();
            let lower = ops.keys().filter(|o| *o == "$gt" || *o == "$gte").count();
            if upper > 1 || lower > 1 {
                return bad("at most one upper and one lower bound");
            }
            for (op, operand) in ops {
                let okay = match op.as_str() {
                    "$eq" | "$ne" => !operand.is_array() && !operand.is_object(),
                    "$in" | "$nin" => operand.is_array(),
                    "$lt" | "$lte" | "$gt" | "$gte" => operand.is_string() || operand.is_number(),
                    _ => false,
                };
                if !okay {
                    return bad("unknown operator or operand");
                }
            }
        }
    }
    Ok(())
}

/// Filters see only properties that had a metadata index when the vector
/// was written; other properties never match (one of the spec's open
/// points, chosen like the reverse index would behave).
fn matches_filter(f: &Value, v: &Stored) -> bool {
    let Some(obj) = f.as_object() else {
        return false;
    };
    obj.iter().all(|(key, cond)| {
        let top = key.split('.').next().unwrap_or(key);
        if !v.indexed.iter().any(|p| p == key || p == top) {
            return false;
        }
        let mut value = v.metadata.as_ref().map(|m| Value::Object(m.clone()));
        for part in key.split('.') {
            value = value.and_then(|x| x.get(part).cloned());
        }
        let Some(value) = value else {
            return false;
        };
        match cond.as_object() {
            None => value == *cond,
            Some(ops) => ops.iter().all(|(op, operand)| compare(op, &value, operand)),
        }
    })
}

fn compare(op: &str, value: &Value, operand: &Value) -> bool {
    let order = || match (value, operand) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        _ => None,
    };
    use std::cmp::Ordering::*;
    match op {
        "$eq" => value == operand,
        "$ne" => value != operand,
        "$in" => operand.as_array().is_some_and(|l| l.contains(value)),
        "$nin" => operand.as_array().is_some_and(|l| !l.contains(value)),
        "$lt" => order() == Some(Less),
        "$lte" => matches!(order(), Some(Less | Equal)),
        "$gt" => order() == Some(Greater),
        "$gte" => matches!(order(), Some(Greater | Equal)),
        _ => false,
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
