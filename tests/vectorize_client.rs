//! The Vectorize client against the stand-in over real HTTP on loopback:
//! every endpoint, every error code mapped to its typed error, batch
//! splitting at the limits, retries and timeouts.

mod standin;

use std::time::{Duration, Instant};

use doorman::vectorize::client::{
    Error, MetadataIndex, Query, ReturnMetadata, Vector, DELETE_BY_IDS_BATCH, GET_BY_IDS_BATCH,
    WRITE_BATCH,
};
use doorman::vectorize::{Client, Retry, Token};
use serde_json::json;
use standin::{Apply, Fault, FaultKind, Options, Standin, Target};

const INDEX: &str = "faces";

fn client_for(s: &Standin, index: &str, token: &str, timeout: Duration) -> Client {
    Client::new(
        &s.base_url(),
        &s.account(),
        index,
        Token::new(token).unwrap(),
        timeout,
    )
}

fn setup(apply: Apply) -> (Standin, Client) {
    let s = Standin::start(Options {
        apply,
        ..Options::default()
    });
    let c = client_for(&s, INDEX, &s.token(), Duration::from_secs(5));
    (s, c)
}

fn vector(id: &str, values: &[f32]) -> Vector {
    Vector {
        id: id.into(),
        values: values.to_vec(),
        namespace: None,
        metadata: Some(
            json!({"embedder": "test", "visitor": id})
                .as_object()
                .unwrap()
                .clone(),
        ),
    }
}

fn query(v: &[f32], top_k: usize) -> Query<'_> {
    Query {
        vector: v,
        top_k,
        return_values: false,
        return_metadata: ReturnMetadata::None,
        namespace: None,
        filter: None,
    }
}

#[test]
fn create_get_list_info_and_delete_an_index() {
    let (_s, c) = setup(Apply::Immediate);
    let created = c.create_index(3, "test", Retry::Once).unwrap();
    assert_eq!(created.name, INDEX);
    assert_eq!(created.config.dimensions, Some(3));
    assert_eq!(created.config.metric.as_deref(), Some("cosine"));

    assert_eq!(c.get_index(Retry::Once).unwrap().config.dimensions, Some(3));
    let names: Vec<_> = c
        .list_indexes(Retry::Once)
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, [INDEX]);
    let info = c.info(Retry::Once).unwrap();
    assert_eq!((info.dimensions, info.vector_count), (Some(3), Some(0)));
    assert_eq!(info.processed_up_to_mutation, None);

    assert!(matches!(
        c.create_index(3, "again", Retry::Once),
        Err(Error::IndexExists { .. })
    ));
    c.delete_index(Retry::Once).unwrap();
    match c.get_index(Retry::Once) {
        Err(Error::IndexMissing { code: 3005, .. }) => {}
        other => panic!("expected 3005 for a deleted index, got {other:?}"),
    }
}

#[test]
fn upserted_vectors_become_visible_only_when_applied() {
    let (s, c) = setup(Apply::Manual);
    c.create_index(3, "", Retry::Once).unwrap();
    let m = c
        .upsert(
            &[vector("a", &[1.0, 0.0, 0.0]), vector("b", &[0.0, 1.0, 0.0])],
            Retry::Once,
        )
        .unwrap();
    assert_eq!(m.len(), 1);
    assert!(!m[0].is_empty());
    assert!(c
        .query(&query(&[1.0, 0.0, 0.0], 5), Retry::Once)
        .unwrap()
        .is_empty());
    assert_eq!(c.info(Retry::Once).unwrap().vector_count, Some(0));

    s.flush();
    let info = c.info(Retry::Once).unwrap();
    assert_eq!(info.vector_count, Some(2));
    assert_eq!(
        info.processed_up_to_mutation.as_deref(),
        Some(m[0].as_str())
    );
    let hits = c.query(&query(&[1.0, 0.1, 0.0], 5), Retry::Once).unwrap();
    assert_eq!(hits[0].id, "a");
    assert!(hits[0].score > 0.99 && hits[1].score < 0.2, "{hits:?}");
}

#[test]
fn values_come_back_rounded_through_float32() {
    let (_s, c) = setup(Apply::Immediate);
    c.create_index(2, "", Retry::Once).unwrap();
    c.upsert(&[vector("x", &[58.8, 0.1])], Retry::Once).unwrap();
    let got = c
        .get_by_ids(&["x".into(), "nope".into()], Retry::Once)
        .unwrap();
    assert_eq!(got.len(), 1, "unknown ids are left out");
    assert_eq!(got[0].values, [58.8f32, 0.1f32]);
    assert_eq!(got[0].metadata.as_ref().unwrap()["visitor"], "x");
}

#[test]
fn insert_keeps_the_first_vector_and_upsert_replaces_it() {
    let (_s, c) = setup(Apply::Immediate);
    c.create_index(2, "", Retry::Once).unwrap();
    c.insert(&[vector("x", &[1.0, 0.0])], Retry::Once).unwrap();
    c.insert(&[vector("x", &[0.0, 1.0])], Retry::Once).unwrap();
    let got = c.get_by_ids(&["x".into()], Retry::Once).unwrap();
    assert_eq!(got[0].values, [1.0, 0.0]);
    c.upsert(&[vector("x", &[0.0, 1.0])], Retry::Once).unwrap();
    let got = c.get_by_ids(&["x".into()], Retry::Once).unwrap();
    assert_eq!(got[0].values, [0.0, 1.0]);
}

#[test]
fn query_options_reach_the_server_in_their_documented_form() {
    let (s, c) = setup(Apply::Immediate);
    c.create_index(2, "", Retry::Once).unwrap();
    c.create_metadata_index(
        &MetadataIndex {
            property_name: "embedder".into(),
            index_type: "string".into(),
        },
        Retry::Once,
    )
    .unwrap();
    let mut other = vector("other", &[1.0, 0.0]);
    other.metadata.as_mut().unwrap()["embedder"] = json!("another-model");
    let mut spaced = vector("spaced", &[1.0, 0.0]);
    spaced.namespace = Some("porch".into());
    c.upsert(&[vector("mine", &[0.9, 0.1]), other, spaced], Retry::Once)
        .unwrap();

    // Indexed metadata and an equality filter on it.
    let q = Query {
        filter: Some(json!({"embedder": "test"})),
        return_metadata: ReturnMetadata::Indexed,
        return_values: true,
        // Above the cap with values: clamped, not rejected.
        top_k: 500,
        ..query(&[1.0, 0.0], 0)
    };
    let hits = c.query(&q, Retry::Once).unwrap();
    let ids: Vec<_> = hits.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        ["spaced", "mine"],
        "the other embedder is filtered out"
    );
    assert_eq!(hits[0].metadata.as_ref().unwrap().len(), 1, "{hits:?}");
    assert_eq!(hits[0].values.as_ref().unwrap().len(), 2);

    let q = Query {
        namespace: Some("porch"),
        ..query(&[1.0, 0.0], 5)
    };
    let ids: Vec<_> = c
        .query(&q, Retry::Once)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["spaced"]);
    assert_eq!(s.count("query"), 2);
}

#[test]
fn metadata_indexes_are_created_listed_and_idempotent() {
    let (_s, c) = setup(Apply::Immediate);
    c.create_index(2, "", Retry::Once).unwrap();
    let m = MetadataIndex {
        property_name: "embedder".into(),
        index_type: "string".into(),
    };
    assert!(!c.create_metadata_index(&m, Retry::Once).unwrap().is_empty());
    c.create_metadata_index(&m, Retry::Once).unwrap();
    assert_eq!(c.list_metadata_indexes(Retry::Once).unwrap(), [m]);
}

#[test]
fn id_lists_are_split_at_20_for_get_and_100_for_delete() {
    let (s, c) = setup(Apply::Immediate);
    c.create_index(2, "", Retry::Once).unwrap();
    let vectors: Vec<_> = (0..250)
        .map(|i| vector(&format!("v{i}"), &[1.0, i as f32]))
        .collect();
    c.upsert(&vectors, Retry::Once).unwrap();
    let ids: Vec<String> = vectors.iter().map(|v| v.id.clone()).collect();

    let got = c.get_by_ids(&ids[..45], Retry::Once).unwrap();
    assert_eq!(got.len(), 45);
    let gets: Vec<_> = s
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("get_by_ids"))
        .map(|r| r.ids.len())
        .collect();
    assert_eq!(gets, [GET_BY_IDS_BATCH, GET_BY_IDS_BATCH, 5]);

    let mutations = c.delete_by_ids(&ids, Retry::Once).unwrap();
    assert_eq!(mutations.len(), 3);
    let deletes: Vec<_> = s
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("delete_by_ids"))
        .map(|r| (r.ids.len(), r.status))
        .collect();
    assert_eq!(
        deletes,
        [
            (DELETE_BY_IDS_BATCH, 200),
            (DELETE_BY_IDS_BATCH, 200),
            (50, 200)
        ]
    );
    assert_eq!(c.info(Retry::Once).unwrap().vector_count, Some(0));
}

#[test]
fn upserts_are_split_at_5000_vectors_a_request() {
    let (s, c) = setup(Apply::Immediate);
    c.create_index(2, "", Retry::Once).unwrap();
    let vectors: Vec<_> = (0..WRITE_BATCH + 1)
        .map(|i| Vector {
            id: format!("v{i}"),
            values: vec![1.0, i as f32],
            namespace: None,
            metadata: None,
        })
        .collect();
    let mutations = c.upsert(&vectors, Retry::Once).unwrap();
    assert_eq!(mutations.len(), 2);
    let sizes: Vec<_> = s
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("upsert"))
        .map(|r| (r.ids.len(), r.status))
        .collect();
    assert_eq!(sizes, [(WRITE_BATCH, 200), (1, 200)]);
    assert_eq!(
        c.info(Retry::Once).unwrap().vector_count,
        Some(WRITE_BATCH as u64 + 1)
    );
}

#[test]
fn each_error_code_maps_to_its_typed_error() {
    let (s, c) = setup(Apply::Immediate);

    // 3000: no such index.
    assert!(matches!(
        c.info(Retry::Once),
        Err(Error::IndexMissing { code: 3000, .. })
    ));
    c.create_index(3, "", Retry::Once).unwrap();

    // 10000: wrong token.
    let bad = client_for(&s, INDEX, "not-the-token", Duration::from_secs(5));
    assert!(matches!(
        bad.info(Retry::Once),
        Err(Error::Unauthorised {
            status: 403,
            code: 10000
        })
    ));

    // 40006: query of the wrong dimension.
    assert!(matches!(
        c.query(&query(&[1.0, 0.0], 5), Retry::Once),
        Err(Error::WrongDimension { code: 40006, .. })
    ));
    // 40012: write of the wrong dimension.
    assert!(matches!(
        c.upsert(&[vector("x", &[1.0])], Retry::Once),
        Err(Error::WrongDimension { code: 40012, .. })
    ));
    // 40008: the client refuses an over-long id before sending it ...
    let long = "x".repeat(65);
    assert!(matches!(
        c.upsert(&[vector(&long, &[1.0, 0.0, 0.0])], Retry::Once),
        Err(Error::IdTooLong { .. })
    ));
    assert_eq!(s.count("upsert"), 1, "the long id was never sent");
    // ... and maps the server's 40008 when it comes anyway.
    s.add_fault(Fault::new(
        Target::Op("upsert"),
        FaultKind::Error {
            status: 400,
            code: 40008,
            message: "id too long; max is 64 bytes, got 74 bytes".into(),
            retry_after_s: None,
        },
        1,
    ));
    assert!(matches!(
        c.upsert(&[vector("x", &[1.0, 0.0, 0.0])], Retry::Once),
        Err(Error::IdTooLong { .. })
    ));
    // 40041: the write throttle.
    s.add_fault(Fault::write_throttle(1));
    assert!(matches!(
        c.upsert(&[vector("x", &[1.0, 0.0, 0.0])], Retry::Once),
        Err(Error::RateLimited { code: 40041, .. })
    ));
    // 429 with Retry-After.
    s.add_fault(Fault::rate_limited(1, 7));
    match c.info(Retry::Once) {
        Err(Error::RateLimited {
            code: 429,
            retry_after,
        }) => assert_eq!(retry_after, Some(Duration::from_secs(7))),
        other => panic!("{other:?}"),
    }
    // 5xx with an envelope, and a proxy's HTML 502.
    s.add_fault(Fault::server_error(Target::All, 1));
    assert!(matches!(
        c.info(Retry::Once),
        Err(Error::Server { status: 503, .. })
    ));
    s.add_fault(Fault::new(Target::All, FaultKind::BadGateway, 1));
    assert!(matches!(
        c.info(Retry::Once),
        Err(Error::Server { status: 502, .. })
    ));
    // 40007 and other validation codes: Invalid, with the code kept.
    let s2 = Fault::new(
        Target::Op("get_by_ids"),
        FaultKind::Error {
            status: 400,
            code: 40007,
            message: "too many ids in payload; max id count is 20, got 34".into(),
            retry_after_s: None,
        },
        1,
    );
    s.add_fault(s2);
    match c.get_by_ids(&["a".into()], Retry::Once) {
        Err(Error::Invalid { status: 400, codes }) => assert_eq!(codes[0].0, 40007),
        other => panic!("{other:?}"),
    }
    // 3002: a duplicate name.
    assert!(matches!(
        c.create_index(3, "", Retry::Once),
        Err(Error::IndexExists { .. })
    ));
    // A port nobody listens on: transport.
    let dead = Client::new(
        "http://127.0.0.1:9/client/v4",
        &s.account(),
        INDEX,
        Token::new("t").unwrap(),
        Duration::from_secs(2),
    );
    assert!(matches!(dead.info(Retry::Once), Err(Error::Transport(_))));
}

#[test]
fn the_server_enforces_the_caps_the_client_respects() {
    // Raw requests the client would never send, to show the stand-in
    // answers them with the documented codes.
    let (s, c) = setup(Apply::Immediate);
    c.create_index(2, "", Retry::Once).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = |op: &str| {
        format!(
            "{}/accounts/{}/vectorize/v2/indexes/{INDEX}/{op}",
            s.base_url(),
            s.account()
        )
    };
    let auth = format!("Bearer {}", s.token());
    let post = |op: &str, ct: &str, body: String| {
        let mut r = agent
            .post(&url(op))
            .header("Authorization", &auth)
            .content_type(ct)
            .send(body)
            .unwrap();
        let status = r.status().as_u16();
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        (status, v["errors"][0]["code"].as_u64().unwrap_or(0))
    };
    let ids: Vec<String> = (0..21).map(|i| format!("v{i}")).collect();
    assert_eq!(
        post(
            "get_by_ids",
            "application/json",
            json!({"ids": ids}).to_string()
        ),
        (400, 40007)
    );
    assert_eq!(
        post(
            "query",
            "application/json",
            json!({"vector": [1.0, 0.0], "topK": 60, "returnValues": true}).to_string()
        ),
        (400, 40025)
    );
    assert_eq!(
        post(
            "query",
            "application/json",
            json!({"vector": [1.0, 0.0], "returnMetadata": true}).to_string()
        ),
        (400, 40026)
    );
    assert_eq!(
        post(
            "query",
            "text/plain",
            json!({"vector": [1.0, 0.0]}).to_string()
        ),
        (400, 40026)
    );
    assert_eq!(
        post(
            "upsert",
            "application/x-ndjson",
            "{\"id\":5,\"values\":[1,0]}\n".into()
        ),
        (400, 40023)
    );
    // Multipart with a `vectors` part, as wrangler sends it.
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"vectors\"; filename=\"v.ndjson\"\r\n\
                Content-Type: application/x-ndjson\r\n\r\n{\"id\":\"m\",\"values\":[0.5,0.5]}\n\r\n--XyZ--\r\n";
    assert_eq!(
        post("insert", "multipart/form-data; boundary=XyZ", body.into()),
        (200, 0)
    );
    assert_eq!(c.get_by_ids(&["m".into()], Retry::Once).unwrap().len(), 1);
}

#[test]
fn a_429_storm_is_waited_out_honouring_retry_after() {
    let (s, c) = setup(Apply::Immediate);
    c.create_index(2, "", Retry::Once).unwrap();
    s.add_fault(Fault::rate_limited(2, 1));
    let started = Instant::now();
    let info = c.info(Retry::For(Duration::from_secs(10))).unwrap();
    assert_eq!(info.dimensions, Some(2));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "waited {waited:?}");
    assert_eq!(s.count("info"), 3);
}

#[test]
fn throttles_server_errors_and_dropped_connections_are_retried() {
    let (s, c) = setup(Apply::Immediate);
    c.create_index(2, "", Retry::Once).unwrap();
    s.add_fault(Fault::write_throttle(2));
    c.upsert(
        &[vector("a", &[1.0, 0.0])],
        Retry::For(Duration::from_secs(10)),
    )
    .unwrap();
    assert_eq!(s.count("upsert"), 3);

    s.add_fault(Fault::server_error(Target::Op("query"), 1));
    s.add_fault(Fault::new(Target::Op("query"), FaultKind::Drop, 1));
    let hits = c
        .query(&query(&[1.0, 0.0], 3), Retry::For(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(s.count("query"), 3);
}

#[test]
fn validation_errors_are_not_retried() {
    let (s, c) = setup(Apply::Immediate);
    c.create_index(3, "", Retry::Once).unwrap();
    let err = c
        .upsert(&[vector("a", &[1.0])], Retry::For(Duration::from_secs(10)))
        .unwrap_err();
    assert!(matches!(err, Error::WrongDimension { .. }));
    assert_eq!(s.count("upsert"), 1);
}

#[test]
fn retries_stop_when_the_retry_budget_is_spent() {
    let (s, c) = setup(Apply::Immediate);
    c.create_index(2, "", Retry::Once).unwrap();
    s.add_fault(Fault::server_error(Target::All, usize::MAX));
    let started = Instant::now();
    let err = c.info(Retry::For(Duration::from_secs(2))).unwrap_err();
    assert!(matches!(err, Error::Server { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(s.count("info") >= 2);
}

#[test]
fn a_slow_answer_times_out_at_the_configured_limit() {
    let (s, _) = setup(Apply::Immediate);
    let c = client_for(&s, INDEX, &s.token(), Duration::from_millis(500));
    c.create_index(2, "", Retry::Once).unwrap();
    s.add_fault(Fault::new(
        Target::Op("info"),
        FaultKind::Slow(Duration::from_secs(3)),
        1,
    ));
    let started = Instant::now();
    let err = c.info(Retry::Once).unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, Error::Transport(ref m) if m.contains("timeout")),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn the_token_never_appears_in_errors_or_debug_output() {
    let (s, c) = setup(Apply::Immediate);
    let token = s.token();
    let mut texts = vec![format!("{c:?}")];
    let bad = client_for(&s, INDEX, &format!("{token}-wrong"), Duration::from_secs(2));
    texts.push(format!(
        "{:?} {}",
        bad.info(Retry::Once).unwrap_err(),
        bad.info(Retry::Once).unwrap_err()
    ));
    let e = c.info(Retry::Once).unwrap_err();
    texts.push(format!("{e:?} {e}"));
    for t in &texts {
        assert!(!t.contains(&token), "token leaked: {t}");
    }
}
