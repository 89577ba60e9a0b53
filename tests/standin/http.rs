//! Just enough HTTP/1.1 for the stand-in: one request per connection,
//! `Content-Length` or chunked bodies, `Connection: close` answers. Written
//! on `std::net` so faults (a dropped connection, a stalled answer, a port
//! that stops listening) are under the test's control.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The largest body the stand-in reads (the API's upload limit is 100 MB).
pub const MAX_BODY: usize = 110 * 1024 * 1024;

pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub enum ReadError {
    /// The peer closed or sent garbage; nothing to answer.
    Closed,
    TooLarge,
}

pub fn read_request(stream: &TcpStream) -> Result<Request, ReadError> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|_| ReadError::Closed)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).map_err(|_| ReadError::Closed)? == 0 {
        return Err(ReadError::Closed);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(ReadError::Closed);
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), parse_query(q)),
        None => (target.to_string(), Vec::new()),
    };
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).map_err(|_| ReadError::Closed)? == 0 {
            return Err(ReadError::Closed);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v): &(String, String)| v.clone())
    };
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).map_err(|_| ReadError::Closed)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| ReadError::Closed)?;
            if n == 0 {
                let mut end = String::new();
                let _ = reader.read_line(&mut end);
                break;
            }
            if body.len() + n > MAX_BODY {
                return Err(ReadError::TooLarge);
            }
            let start = body.len();
            body.resize(start + n, 0);
            reader
                .read_exact(&mut body[start..])
                .map_err(|_| ReadError::Closed)?;
            let mut crlf = [0u8; 2];
            reader
                .read_exact(&mut crlf)
                .map_err(|_| ReadError::Closed)?;
        }
    } else if let Some(len) = find("content-length") {
        let n: usize = len.parse().map_err(|_| ReadError::Closed)?;
        if n > MAX_BODY {
            return Err(ReadError::TooLarge);
        }
        body.resize(n, 0);
        reader
            .read_exact(&mut body)
            .map_err(|_| ReadError::Closed)?;
    }
    Ok(Request {
        method: method.to_string(),
        path,
        query,
        headers,
        body,
    })
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

pub fn write_response(
    mut stream: &TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// The `vectors` part of a multipart/form-data body.
pub fn multipart_part(content_type: &str, body: &[u8], name: &str) -> Option<Vec<u8>> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut pos = 0;
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    };
    while let Some(start) = find(text, delimiter.as_bytes(), pos) {
        let after = start + delimiter.len();
        let head_end = find(text, b"\r\n\r\n", after)?;
        let head = String::from_utf8_lossy(&text[after..head_end]).to_ascii_lowercase();
        let content_start = head_end + 4;
        let next = find(text, format!("\r\n{delimiter}").as_bytes(), content_start)?;
        if head.contains(&format!("name=\"{name}\"")) {
            return Some(text[content_start..next].to_vec());
        }
        pos = next + 2;
    }
    None
}
