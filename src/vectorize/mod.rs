//! The Cloudflare Vectorize gallery store: exemplar vectors live in an
//! index, visitors and visits stay in the device's SQLite file.
//!
//! `client` speaks the v2 REST API; `outbox` is the durable queue of writes
//! in the gallery file; `store` ties them together for the gallery (search
//! merged with the not-yet-visible writes, draining in bounded time);
//! `token` reads the API token safely.

pub mod client;
pub mod outbox;
pub mod store;
pub mod token;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub use client::{Client, Error, Retry};
pub use store::{Store, SyncReport};
pub use token::Token;

/// Longest visitor name sent as metadata, in bytes. Names live in metadata
/// only; this keeps the whole object far below the 10 KiB limit.
pub const MAX_NAME_BYTES: usize = 1024;
/// Metadata properties doorman filters on; `doorman index create` makes a
/// metadata index for each before any vector is written.
pub const FILTERED_PROPERTIES: &[(&str, &str)] = &[("embedder", "string")];

/// Index names: lowercase letters, digits and `-`, starting with a letter,
/// at most 64 bytes.
pub fn valid_index_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An `https://` base URL, or `http://` to a loopback host (the stand-in):
/// the token must never cross a network in clear text.
pub fn valid_base_url(url: &str) -> bool {
    if url.ends_with('/') || url.chars().any(|c| c.is_whitespace()) {
        return false;
    }
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty();
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host_port = rest.split('/').next().unwrap_or("");
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The vector id of an exemplar: its gallery id (`visitor-0007.e3`) when
/// that fits the 64-byte limit, else a digest of it. Deterministic, so a
/// replayed write replaces itself instead of adding a copy.
pub fn vector_id(exemplar_id: &str) -> String {
    if exemplar_id.len() <= client::MAX_ID_BYTES {
        return exemplar_id.to_string();
    }
    let digest = Sha256::digest(exemplar_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("h-{}", &hex[..40])
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What an exemplar's metadata says about it.
pub struct ExemplarMeta<'a> {
    pub visitor: &'a str,
    pub name: Option<&'a str>,
    pub embedder: &'a str,
    /// `enroll` or `visit`: never a file path, which could name people.
    pub source: &'a str,
    /// Unix seconds.
    pub created_at: i64,
}

/// The metadata object stored with an exemplar vector.
pub fn metadata(m: &ExemplarMeta<'_>) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("visitor".into(), json!(m.visitor));
    map.insert(
        "kind".into(),
        json!(if m.name.is_some() {
            "named"
        } else {
            "anonymous"
        }),
    );
    if let Some(name) = m.name {
        map.insert("name".into(), json!(truncate_utf8(name, MAX_NAME_BYTES)));
    }
    map.insert("embedder".into(), json!(m.embedder));
    map.insert("source".into(), json!(m.source));
    map.insert("created_at".into(), json!(m.created_at));
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_exceed_64_bytes_and_are_deterministic() {
        assert_eq!(vector_id("visitor-0007.e3"), "visitor-0007.e3");
        let long = format!("visitor-{}.e1", "9".repeat(80));
        let id = vector_id(&long);
        assert!(id.len() <= 64, "{id}");
        assert_eq!(id, vector_id(&long));
        assert_ne!(id, vector_id(&format!("visitor-{}.e2", "9".repeat(80))));
    }

    #[test]
    fn a_long_non_latin_name_is_cut_on_a_character_boundary() {
        let name = "Ярослав".repeat(200); // 2 bytes a letter, 2800 bytes
        let m = metadata(&ExemplarMeta {
            visitor: "visitor-0001",
            name: Some(&name),
            embedder: "dlib-resnet-v1",
            source: "enroll",
            created_at: 1,
        });
        let kept = m["name"].as_str().unwrap();
        assert!(kept.len() <= MAX_NAME_BYTES && name.starts_with(kept));
        assert!(serde_json::to_string(&m).unwrap().len() < 10 * 1024);
        assert_eq!(truncate_utf8("aé", 2), "a");
    }

    #[test]
    fn base_urls_must_be_https_unless_loopback() {
        assert!(valid_base_url("https://api.example/client/v4"));
        assert!(valid_base_url("http://127.0.0.1:8787/client/v4"));
        assert!(valid_base_url("http://[::1]:8787/client/v4"));
        assert!(valid_base_url("http://localhost/client/v4"));
        assert!(!valid_base_url("http://10.0.0.2/client/v4"));
        assert!(!valid_base_url("http://127.0.0.1.evil/client/v4"));
        assert!(!valid_base_url("https://x/client/v4/"));
        assert!(!valid_base_url("ftp://x"));
    }

    #[test]
    fn index_names_follow_the_service_rules() {
        assert!(valid_index_name("doorman-faces"));
        assert!(!valid_index_name("1faces"));
        assert!(!valid_index_name("Faces"));
        assert!(!valid_index_name(&"a".repeat(65)));
    }
}
