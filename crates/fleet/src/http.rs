//! Just enough HTTP/1.1 for miners' web servers, both sides: one request per connection,
//! `Connection: close`, bounded sizes and times. The simulator answers with it (it needs the
//! connection's local address, which a general server hides); the poller reads with it.

use std::net::SocketAddr;
use std::time::Duration;

use hashforge_minerapi::digest::authorization;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{exchange, ReadError};

/// The longest request head a server reads.
const MAX_HEAD: usize = 8 * 1024;
/// The longest reply a client reads: a miner that sends more is broken or hostile.
pub const MAX_BODY: usize = 1024 * 1024;

/// A request's first line and the one header the servers here care about.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    pub method: String,
    /// The request target as sent, query included (what a digest signs).
    pub path: String,
    pub authorization: Option<String>,
    /// The body, by `Content-Length` (at most [`MAX_REQUEST_BODY`]); empty without one.
    pub body: Vec<u8>,
}

/// The largest request body a server here reads (a POSTed configuration).
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Reads a request head; `None` for a connection that closed, went quiet or sent garbage.
pub async fn read_head(stream: &mut TcpStream, timeout: Duration) -> std::io::Result<Option<Head>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + timeout;
    // One more chunk into `buf`; false when the peer closed or went quiet.
    let mut more = async |buf: &mut Vec<u8>, chunk: &mut [u8]| -> std::io::Result<bool> {
        match tokio::time::timeout_at(deadline, stream.read(chunk)).await {
            Ok(r) => {
                let n = r?;
                buf.extend_from_slice(&chunk[..n]);
                Ok(n > 0)
            }
            Err(_) => Ok(false),
        }
    };
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_HEAD || !more(&mut buf, &mut chunk).await? {
            return Ok(None);
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(path)) = (first.next(), first.next()) else {
        return Ok(None);
    };
    let header = |name: &str| {
        text.split("\r\n")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let authorization = header("authorization");
    let length = match header("content-length").map(|v| v.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) if n <= MAX_REQUEST_BODY => n,
        Some(_) => return Ok(None),
    };
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
    let mut body = buf[end.min(buf.len())..].to_vec();
    while body.len() < length {
        if !more(&mut body, &mut chunk).await? {
            return Ok(None);
        }
    }
    body.truncate(length);
    Ok(Some(Head {
        method: method.to_string(),
        path: path.to_string(),
        authorization,
        body,
    }))
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    }
}

/// Writes a whole response and closes.
pub async fn respond(
    stream: &mut TcpStream,
    code: u16,
    headers: &[(&str, String)],
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(code),
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await?;
    stream.shutdown().await
}

/// A response as a client saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub code: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request: a GET, or a POST of a JSON `body`.
async fn once(
    addr: SocketAddr,
    path: &str,
    body: Option<&[u8]>,
    auth: Option<&str>,
    timeout: Duration,
) -> Result<Reply, ReadError> {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let mut req = match body {
        None => format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
            addr.ip()
        ),
        Some(b) => format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            addr.ip(),
            b.len()
        ),
    }
    .into_bytes();
    req.extend_from_slice(body.unwrap_or_default());
    let buf = exchange(addr, &req, timeout, MAX_BODY + MAX_HEAD, |_| false).await?;
    parse_reply(&buf)
}

/// Reads a whole response: status line, headers, body (by `Content-Length` where given).
pub fn parse_reply(buf: &[u8]) -> Result<Reply, ReadError> {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ReadError::Http("no end of headers".into()))?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let code = status
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| {
            ReadError::Http(format!(
                "bad status line `{}`",
                status.chars().take(60).collect::<String>()
            ))
        })?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Ok(Reply {
        code,
        headers,
        body,
    })
}

/// GET `path`, answering one digest challenge with `root` and `password`: a second 401
/// (wrong password, or a challenge that never ends) is [`ReadError::Unauthorized`].
pub async fn get(
    addr: SocketAddr,
    path: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Result<Reply, ReadError> {
    request(addr, path, None, password, timeout).await
}

/// [`get`], or with a `body` a POST of that JSON (stock Antminer's `set_miner_conf.cgi`).
pub async fn request(
    addr: SocketAddr,
    path: &str,
    body: Option<&[u8]>,
    password: Option<&str>,
    timeout: Duration,
) -> Result<Reply, ReadError> {
    request_in(&mut Digest::default(), addr, path, body, password, timeout).await
}

/// A miner's last digest challenge and how many requests answered it, so the requests
/// after the first skip the 401 round trip (RFC 7616's nonce count).
#[derive(Clone, Debug, Default)]
pub struct Digest {
    challenge: Option<String>,
    count: u32,
}

/// [`request`] answering `digest`'s challenge at once where there is one; a 401 to that
/// (a stale nonce) is answered once more with the new challenge.
pub async fn request_in(
    digest: &mut Digest,
    addr: SocketAddr,
    path: &str,
    body: Option<&[u8]>,
    password: Option<&str>,
    timeout: Duration,
) -> Result<Reply, ReadError> {
    let method = if body.is_some() { "POST" } else { "GET" };
    let sign = |challenge: &str, count: u32| -> Result<String, ReadError> {
        let password = password.ok_or(ReadError::Unauthorized)?;
        authorization(challenge, method, path, "root", password, &cnonce(), count)
            .map_err(|e| ReadError::Http(e.to_string()))
    };
    let first = match (&digest.challenge, password) {
        (Some(c), Some(_)) => {
            digest.count += 1;
            let auth = sign(c, digest.count)?;
            once(addr, path, body, Some(&auth), timeout).await?
        }
        _ => once(addr, path, body, None, timeout).await?,
    };
    if first.code != 401 {
        return Ok(first);
    }
    let (Some(_), Some(challenge)) = (password, first.header("www-authenticate")) else {
        return Err(ReadError::Unauthorized);
    };
    digest.challenge = Some(challenge.to_owned());
    digest.count = 1;
    let second = once(addr, path, body, Some(&sign(challenge, 1)?), timeout).await?;
    if second.code == 401 {
        digest.challenge = None;
        return Err(ReadError::Unauthorized);
    }
    Ok(second)
}

fn cnonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    format!("{:016x}", h.finish())
}

/// POSTs `body` as JSON to `url` (`http://HOST:PORT/path`, HOST an address or
/// `localhost`); a reply outside 2xx is an error.
pub async fn post_json(url: &str, body: &[u8], timeout: Duration) -> Result<(), ReadError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ReadError::Http(format!("`{url}`: only http:// webhooks")))?;
    let (hostport, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let hostport = hostport.replace("localhost", "127.0.0.1");
    let addr: SocketAddr = hostport
        .parse()
        .or_else(|_| format!("{hostport}:80").parse())
        .map_err(|_| ReadError::Http(format!("`{url}`: the host must be an IP address")))?;
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let buf = exchange(addr, &req, timeout, MAX_BODY + MAX_HEAD, |_| false).await?;
    let reply = parse_reply(&buf)?;
    if (200..300).contains(&reply.code) {
        Ok(())
    } else {
        Err(ReadError::Http(format!("webhook answered {}", reply.code)))
    }
}
