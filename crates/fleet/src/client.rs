//! Reading one miner: the cgminer API on 4028 and the web on 80, with a timeout on every
//! step and a limit on every reply, into a [`MinerStatus`] through the `minerapi` readers.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hashforge_minerapi::cgminer::section;
use hashforge_minerapi::cgminer::{decode_reply, DecodeError, Request, MAX_REPLY};
use hashforge_minerapi::{antminer_web, avalon, axeos, bmminer, btminer, MinerStatus};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why a miner could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("i/o: {0}")]
    Io(std::io::Error),
    #[error("no {0} in time")]
    Timeout(&'static str),
    #[error("reply of {0} bytes is too long")]
    TooLong(usize),
    #[error("the connection closed without a reply")]
    Closed,
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the web server refused the password")]
    Unauthorized,
    #[error("unexpected reply: {0}")]
    Shape(String),
}

impl ReadError {
    /// An I/O error after connecting: a reset or a broken pipe is a peer that hung up
    /// without answering, the same as [`ReadError::Closed`].
    pub fn io(e: std::io::Error) -> ReadError {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        match e.kind() {
            ConnectionReset | ConnectionAborted | BrokenPipe => ReadError::Closed,
            _ => ReadError::Io(e),
        }
    }

    /// Whether trying again may help (a busy moment), as against an answer that will not change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ReadError::Timeout(_) | ReadError::Io(_) | ReadError::Closed | ReadError::Connect(_)
        )
    }
}

/// How a known miner is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contract {
    /// cgminer API shaped as stock Antminer firmware (4028), web CGI (80).
    Bmminer,
    /// ESP-Miner's REST API (80).
    AxeOs,
    /// Whatsminer's cgminer API with btminer's own commands (4028).
    Btminer,
    /// Avalon's cgminer API (4028).
    Avalon,
}

impl Contract {
    /// The firmware family, for people.
    pub fn name(self) -> &'static str {
        match self {
            Contract::Bmminer => "Antminer",
            Contract::AxeOs => "AxeOS",
            Contract::Btminer => "Whatsminer (btminer)",
            Contract::Avalon => "Avalon",
        }
    }
}

/// One exchange on a fresh connection: connect, send `request`, read until the peer closes or
/// `complete` says the reply is whole, all within `timeout` and at most `limit` bytes. Every
/// client here (the cgminer API, HTTP GET, the webhook's POST) goes through it.
pub async fn exchange(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
    limit: usize,
    complete: fn(&[u8]) -> bool,
) -> Result<Vec<u8>, ReadError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| ReadError::Timeout("connect"))?
        .map_err(ReadError::Connect)?;
    tokio::time::timeout_at(deadline, stream.write_all(request))
        .await
        .map_err(|_| ReadError::Timeout("send"))?
        .map_err(ReadError::io)?;
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .map_err(|_| ReadError::Timeout("reply"))?
            .map_err(ReadError::io)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > limit {
            return Err(ReadError::TooLong(buf.len()));
        }
        if complete(&buf) {
            break;
        }
    }
    if buf.is_empty() {
        return Err(ReadError::Closed);
    }
    Ok(buf)
}

/// Sends one cgminer request and reads the JSON reply. A NUL ends a reply even if the miner
/// keeps the connection open.
pub async fn cgminer(
    addr: SocketAddr,
    command: &str,
    timeout: Duration,
) -> Result<Value, ReadError> {
    cgminer_request(addr, &Request::new(command, ""), timeout).await
}

/// [`cgminer`] with a whole request (a parameter, hashforge's write token).
pub async fn cgminer_request(
    addr: SocketAddr,
    request: &Request,
    timeout: Duration,
) -> Result<Value, ReadError> {
    let req = request.encode();
    let buf = exchange(addr, &req, timeout, MAX_REPLY, |b| b.last() == Some(&0)).await?;
    Ok(decode_reply(&buf)?)
}

/// What a probe learned about an address.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Identified {
    pub ip: IpAddr,
    /// The ports it answered on.
    #[serde(skip)]
    pub ports: MinerPorts,
    pub contract: Contract,
    pub make: String,
    pub model: String,
    pub firmware: String,
}

/// The ports miners answer on (fleet tools know no others; tests may move them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MinerPorts {
    pub cgminer: u16,
    pub http: u16,
}

impl Default for MinerPorts {
    fn default() -> MinerPorts {
        MinerPorts {
            cgminer: 4028,
            http: 80,
        }
    }
}

/// Is there a miner at `ip`, and what is it? `version` on the cgminer API first (stock
/// Antminer names its `Type`, Avalon its `PROD`), then `devdetails` (Whatsminer's driver is
/// `bitmicro`), then the web page (AxeOS). `Ok(None)` is an address where nothing
/// miner-like answered.
pub async fn identify(
    ip: IpAddr,
    ports: MinerPorts,
    timeout: Duration,
) -> Result<Option<Identified>, ReadError> {
    let api = SocketAddr::new(ip, ports.cgminer);
    let found = |contract, make: String, model, firmware| {
        Ok(Some(Identified {
            ip,
            ports,
            contract,
            make,
            model,
            firmware,
        }))
    };
    match cgminer(api, "version", timeout).await {
        Ok(v) => {
            let first = section(&v, "version", "VERSION")
                .ok()
                .and_then(|s| s.first())
                .cloned();
            if let Some((model, firmware)) = first.as_ref().and_then(avalon::model_of) {
                return found(Contract::Avalon, "Avalon".into(), model, firmware);
            }
            let ty = first
                .as_ref()
                .and_then(|o| o.get("Type"))
                .and_then(Value::as_str);
            if ty.is_none() {
                if let Some(model) = whatsminer_model(api, timeout).await? {
                    let firmware = cgminer(api, "get_version", timeout)
                        .await
                        .ok()
                        .and_then(|v| {
                            btminer::own_msg(&v, "get_version")
                                .ok()?
                                .get("fw_ver")?
                                .as_str()
                                .map(str::to_string)
                        })
                        .unwrap_or_default();
                    return found(Contract::Btminer, "Whatsminer".into(), model, firmware);
                }
            }
            // A version the miner refused, or one without a make: still a cgminer API, read
            // as stock Antminer's (what most of the fleet is).
            if first.is_none() {
                section(&v, "version", "VERSION")?;
            }
            let (make, model) = bmminer::make_and_model(ty.unwrap_or(""));
            let firmware = first
                .as_ref()
                .and_then(|o| o.get("CompileTime").or_else(|| o.get("Miner")))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            return found(Contract::Bmminer, make.to_string(), model, firmware);
        }
        Err(ReadError::Connect(_) | ReadError::Closed) => {}
        Err(e) if e.is_transient() => return Err(e),
        Err(_) => {}
    }
    let web = SocketAddr::new(ip, ports.http);
    let page = match crate::http::get(web, "/", None, timeout).await {
        Ok(p) => p,
        Err(ReadError::Connect(_) | ReadError::Closed | ReadError::Unauthorized) => {
            return Ok(None)
        }
        Err(ReadError::Http(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    if String::from_utf8_lossy(&page.body).contains("AxeOS") {
        let info = crate::http::get(web, "/api/system/info", None, timeout).await?;
        let v: Value =
            serde_json::from_slice(&info.body).map_err(|e| ReadError::Shape(e.to_string()))?;
        if let Some(s) = axeos::read(&v) {
            return found(
                Contract::AxeOs,
                s.identity.make.to_string(),
                s.identity.model,
                s.identity.firmware,
            );
        }
    }
    Ok(None)
}

/// The model a Whatsminer's `devdetails` names, or `None` for another firmware's.
async fn whatsminer_model(api: SocketAddr, timeout: Duration) -> Result<Option<String>, ReadError> {
    match cgminer(api, "devdetails", timeout).await {
        Ok(v) => Ok(section(&v, "devdetails", "DEVDETAILS")
            .ok()
            .and_then(btminer::model_of)),
        Err(e) if e.is_transient() => Err(e),
        Err(_) => Ok(None),
    }
}

/// Reads everything a miner reports. `expected_chips` is its model's chips per board.
pub async fn read(
    ip: IpAddr,
    contract: Contract,
    ports: MinerPorts,
    expected_chips: Option<usize>,
    timeout: Duration,
) -> Result<MinerStatus, ReadError> {
    let api = SocketAddr::new(ip, ports.cgminer);
    match contract {
        Contract::Bmminer => {
            let v = cgminer(api, bmminer::READ_ALL, timeout).await?;
            Ok(bmminer::read(&v, expected_chips)?)
        }
        Contract::Btminer => {
            // One exchange: btminer's own commands (which cannot be joined) add only the
            // identity, read once at enrolment (`read_btminer_identity`).
            let joined = cgminer(api, btminer::READ_JOINED, timeout).await?;
            Ok(btminer::read(&joined, expected_chips)?)
        }
        Contract::Avalon => {
            let v = cgminer(api, avalon::READ_ALL, timeout).await?;
            Ok(avalon::read(&v, expected_chips)?)
        }
        Contract::AxeOs => {
            let info = crate::http::get(
                SocketAddr::new(ip, ports.http),
                "/api/system/info",
                None,
                timeout,
            )
            .await?;
            let v: Value =
                serde_json::from_slice(&info.body).map_err(|e| ReadError::Shape(e.to_string()))?;
            axeos::read(&v)
                .ok_or_else(|| ReadError::Shape("no ASICModel in /api/system/info".into()))
        }
    }
}

/// What the web CGI adds to a cgminer reading.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebIdentity {
    pub mac: Option<String>,
    pub serial: Option<String>,
    pub hostname: Option<String>,
    /// (board index, serial).
    pub board_serials: Vec<(usize, String)>,
}

/// A Whatsminer's serial, MAC and hostname (`get_miner_info`, btminer's own command), read
/// once at enrolment rather than in every poll.
pub async fn read_btminer_identity(
    ip: IpAddr,
    port: u16,
    timeout: Duration,
) -> Result<WebIdentity, ReadError> {
    let v = cgminer(SocketAddr::new(ip, port), "get_miner_info", timeout).await?;
    let msg = btminer::own_msg(&v, "get_miner_info")?;
    let field = |k: &str| {
        msg.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(WebIdentity {
        mac: field("mac").map(|m| m.to_ascii_lowercase()),
        serial: field("minersn"),
        hostname: field("hostname"),
        board_serials: Vec::new(),
    })
}

/// The web CGI's identity pages, with the first of `passwords` the miner takes; which one
/// worked is returned too.
pub async fn read_web_identity(
    ip: IpAddr,
    port: u16,
    passwords: &[String],
    timeout: Duration,
) -> Result<(usize, WebIdentity), ReadError> {
    let addr = SocketAddr::new(ip, port);
    for (i, pw) in passwords.iter().enumerate() {
        match crate::http::get(addr, "/cgi-bin/get_system_info.cgi", Some(pw), timeout).await {
            Ok(r) if r.code == 200 => {
                let v: Value =
                    serde_json::from_slice(&r.body).map_err(|e| ReadError::Shape(e.to_string()))?;
                let mut id = hashforge_minerapi::Identity {
                    make: hashforge_minerapi::Make::Antminer,
                    model: String::new(),
                    firmware: String::new(),
                    serial: None,
                    mac: None,
                    hostname: None,
                };
                antminer_web::read_system_info(&v, &mut id);
                let board_serials =
                    match crate::http::get(addr, "/cgi-bin/stats.cgi", Some(pw), timeout).await {
                        Ok(r) => serde_json::from_slice::<Value>(&r.body)
                            .map(|v| antminer_web::board_serials(&v))
                            .unwrap_or_default(),
                        Err(_) => Vec::new(),
                    };
                let web = WebIdentity {
                    mac: id.mac,
                    serial: id.serial,
                    hostname: id.hostname,
                    board_serials,
                };
                return Ok((i, web));
            }
            Ok(r) => return Err(ReadError::Http(format!("status {}", r.code))),
            Err(ReadError::Unauthorized) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ReadError::Unauthorized)
}

/// Whether the cgminer API lets anyone write (stock firmware's `privileged` answers 46).
pub async fn api_open(ip: IpAddr, port: u16, timeout: Duration) -> Result<bool, ReadError> {
    let v = cgminer(SocketAddr::new(ip, port), "privileged", timeout).await?;
    let code = v["STATUS"][0]["Code"].as_u64();
    Ok(code == Some(46))
}
