//! Every Stratum V1 message, typed, both directions.
//!
//! Parsing accepts what real peers send (ids that are numbers, strings or null; a missing
//! optional parameter or an extra one; `mining.configure` in its non-standard forms;
//! `mining.submit` with or without version bits; upper-case hex) and turns everything else
//! into a [`BadMessage`], which keeps the request id when there was one so that the peer can
//! be answered. Writing produces only the canonical form:
//! `{"id":1,"method":"mining.subscribe","params":["agent"]}`,
//! `{"id":1,"result":true,"error":null}`,
//! `{"id":null,"method":"mining.notify","params":[...]}`.

use hashforge_core::{parse_hex_bytes, Difficulty, HexError, JobParts, NotifyFieldError};
use serde_json::{json, Map, Value};

/// A JSON-RPC id: peers use numbers, strings, and `null` for notifications.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Id {
    Num(i64),
    Str(String),
    Null,
}

impl Id {
    fn parse(v: Option<&Value>) -> Result<Id, MessageError> {
        match v {
            None | Some(Value::Null) => Ok(Id::Null),
            Some(Value::String(s)) => Ok(Id::Str(s.clone())),
            Some(Value::Number(n)) => n.as_i64().map(Id::Num).ok_or(MessageError::InvalidId),
            Some(_) => Err(MessageError::InvalidId),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Id::Num(n) => json!(n),
            Id::Str(s) => json!(s),
            Id::Null => Value::Null,
        }
    }
}

/// Why a line is not a message we understand.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MessageError {
    #[error("not JSON: {0}")]
    InvalidJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("the id must be a number, a string or null")]
    InvalidId,
    #[error("unknown method `{0}`")]
    UnknownMethod(String),
    #[error("{method}: {reason}")]
    InvalidParams { method: String, reason: String },
    #[error("neither a request nor a response")]
    NotAMessage,
    #[error("malformed result: {0}")]
    InvalidResult(String),
}

/// A line that could not be turned into a message, with its id when it had one.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct BadMessage {
    pub id: Option<Id>,
    pub error: MessageError,
}

/// The Stratum error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Other = 20,
    JobNotFound = 21,
    Duplicate = 22,
    LowDifficulty = 23,
    Unauthorized = 24,
    NotSubscribed = 25,
}

/// An error in a reply: `[code, message, null]` on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StratumError {
    pub code: i64,
    pub message: String,
}

impl StratumError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> StratumError {
        StratumError {
            code: code as i64,
            message: message.into(),
        }
    }

    fn parse(v: &Value) -> Option<StratumError> {
        match v {
            Value::Null => None,
            // [code, message, traceback]
            Value::Array(a) => Some(StratumError {
                code: a.first().and_then(Value::as_i64).unwrap_or(20),
                message: a.get(1).map(text_of).unwrap_or_default(),
            }),
            // {"code": .., "message": ..}, as some pools send
            Value::Object(o) => Some(StratumError {
                code: o.get("code").and_then(Value::as_i64).unwrap_or(20),
                message: o.get("message").map(text_of).unwrap_or_default(),
            }),
            other => Some(StratumError {
                code: 20,
                message: text_of(other),
            }),
        }
    }

    fn to_value(&self) -> Value {
        json!([self.code, self.message, Value::Null])
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `mining.configure` extensions.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Configure {
    /// Extension names in the order sent.
    pub extensions: Vec<String>,
    /// `version-rolling.mask` (the miner's mask).
    pub version_rolling_mask: Option<u32>,
    /// `version-rolling.min-bit-count`.
    pub version_rolling_min_bit_count: Option<u32>,
    /// `minimum-difficulty.value`.
    pub minimum_difficulty: Option<f64>,
}

impl Configure {
    pub fn wants(&self, extension: &str) -> bool {
        self.extensions.iter().any(|e| e == extension)
    }
}

/// `mining.submit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submit {
    pub worker: String,
    pub job_id: String,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    /// The sixth parameter, present once version rolling was negotiated.
    pub version_bits: Option<u32>,
}

/// What a client sends.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Configure(Configure),
    Subscribe {
        agent: Option<String>,
        session: Option<String>,
    },
    Authorize {
        user: String,
        password: String,
    },
    Submit(Submit),
    SuggestDifficulty(f64),
    ExtranonceSubscribe,
}

/// A line from a client.
#[derive(Clone, Debug, PartialEq)]
pub enum FromClient {
    Request {
        id: Id,
        request: Request,
    },
    /// An answer to something the server asked (`mining.ping`).
    Response(Response),
}

/// `mining.notify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    pub job_id: String,
    pub parts: JobParts,
    pub clean_jobs: bool,
}

/// What a server sends unasked (notifications, and the two calls that expect an answer).
#[derive(Clone, Debug, PartialEq)]
pub enum ServerCall {
    Notify(Notify),
    SetDifficulty(f64),
    SetExtranonce {
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
    },
    SetVersionMask(u32),
    Reconnect {
        host: Option<String>,
        port: Option<u16>,
        wait_seconds: Option<u64>,
    },
    ShowMessage(String),
    Ping,
    GetVersion,
}

/// A reply to a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub id: Id,
    pub result: Value,
    pub error: Option<StratumError>,
}

/// A line from a server.
#[derive(Clone, Debug, PartialEq)]
pub enum FromServer {
    Call { id: Id, call: ServerCall },
    Response(Response),
}

/// The result of `mining.subscribe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeResult {
    /// (method, subscription id) pairs.
    pub subscriptions: Vec<(String, String)>,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
}

/// The result of `mining.configure`, per extension.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ConfigureResult {
    /// `Some(mask)` when version rolling was granted, with the pool's mask AND the miner's.
    pub version_rolling: Option<u32>,
    /// Whether `minimum-difficulty` was accepted.
    pub minimum_difficulty: bool,
}

fn invalid(method: &str, reason: impl Into<String>) -> MessageError {
    MessageError::InvalidParams {
        method: method.to_string(),
        reason: reason.into(),
    }
}

fn hex_field(method: &str, field: &str) -> impl Fn(HexError) -> MessageError {
    let (method, field) = (method.to_string(), field.to_string());
    move |e| invalid(&method, format!("{field}: {e}"))
}

/// 1 to 8 hex digits, any case (leading zeros may be missing in version bits).
fn parse_u32_hex_loose(s: &str) -> Option<u32> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Exactly 8 hex digits, any case, as header fields are sent.
fn parse_u32_hex8(method: &str, field: &str, v: Option<&Value>) -> Result<u32, MessageError> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(method, format!("{field} must be a hex string")))?;
    hashforge_core::parse_u32_be_hex(s).map_err(hex_field(method, field))
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn difficulty(method: &str, v: Option<&Value>) -> Result<f64, MessageError> {
    let d = v
        .and_then(number)
        .ok_or_else(|| invalid(method, "difficulty must be a number"))?;
    Difficulty::new(d).map_err(|e| invalid(method, e.to_string()))?;
    Ok(d)
}

fn string(method: &str, field: &str, v: Option<&Value>) -> Result<String, MessageError> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(invalid(method, format!("{field} must be a string"))),
    }
}

fn optional_string(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

struct Parsed {
    id: Id,
    method: Option<String>,
    params: Vec<Value>,
    /// `params` given as an object (some `mining.configure` senders), kept for them.
    params_object: Option<Map<String, Value>>,
    result: Option<Value>,
    error: Option<Value>,
}

fn parse_json(line: &str) -> Result<Parsed, BadMessage> {
    let v: Value = serde_json::from_str(line).map_err(|e| BadMessage {
        id: None,
        error: MessageError::InvalidJson(e.to_string()),
    })?;
    let Value::Object(mut o) = v else {
        return Err(BadMessage {
            id: None,
            error: MessageError::NotAnObject,
        });
    };
    let id = Id::parse(o.get("id")).map_err(|error| BadMessage { id: None, error })?;
    let method = match o.remove("method") {
        Some(Value::String(m)) => Some(m),
        Some(Value::Null) | None => None,
        Some(_) => {
            return Err(BadMessage {
                id: Some(id),
                error: MessageError::UnknownMethod("<not a string>".into()),
            })
        }
    };
    let (params, params_object) = match o.remove("params") {
        Some(Value::Array(a)) => (a, None),
        Some(Value::Object(m)) => (Vec::new(), Some(m)),
        Some(Value::Null) | None => (Vec::new(), None),
        Some(other) => (vec![other], None),
    };
    let has_result = o.contains_key("result");
    Ok(Parsed {
        id,
        method,
        params,
        params_object,
        result: if has_result { o.remove("result") } else { None },
        error: o.remove("error"),
    })
}

fn response_of(p: Parsed) -> Result<Response, BadMessage> {
    if p.result.is_none() && p.error.is_none() {
        return Err(BadMessage {
            id: Some(p.id),
            error: MessageError::NotAMessage,
        });
    }
    Ok(Response {
        error: p.error.as_ref().and_then(StratumError::parse),
        result: p.result.unwrap_or(Value::Null),
        id: p.id,
    })
}

/// Parses a line a client sent.
pub fn parse_client_line(line: &str) -> Result<FromClient, BadMessage> {
    let mut p = parse_json(line)?;
    let Some(method) = p.method.take() else {
        return response_of(p).map(FromClient::Response);
    };
    let id = p.id.clone();
    parse_request(&method, &p)
        .map(|request| FromClient::Request { id: p.id, request })
        .map_err(|error| BadMessage {
            id: Some(id),
            error,
        })
}

fn parse_request(method: &str, p: &Parsed) -> Result<Request, MessageError> {
    let a = &p.params;
    match method {
        "mining.configure" => parse_configure(p).map(Request::Configure),
        "mining.subscribe" => Ok(Request::Subscribe {
            agent: optional_string(a.first()),
            session: optional_string(a.get(1)),
        }),
        "mining.authorize" => Ok(Request::Authorize {
            user: string(method, "user", a.first())?,
            password: optional_string(a.get(1)).unwrap_or_default(),
        }),
        "mining.submit" => {
            if a.len() < 5 {
                return Err(invalid(
                    method,
                    format!("expected 5 or 6 params, got {}", a.len()),
                ));
            }
            let en2 = a[2]
                .as_str()
                .ok_or_else(|| invalid(method, "extranonce2 must be a hex string"))?;
            let version_bits =
                match a.get(5) {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(parse_u32_hex_loose(s).ok_or_else(|| {
                        invalid(method, "version bits must be up to 8 hex digits")
                    })?),
                    Some(_) => return Err(invalid(method, "version bits must be a hex string")),
                };
            Ok(Request::Submit(Submit {
                worker: string(method, "worker", a.first())?,
                job_id: string(method, "job id", a.get(1))?,
                extranonce2: parse_hex_bytes(en2).map_err(hex_field(method, "extranonce2"))?,
                ntime: parse_u32_hex8(method, "ntime", a.get(3))?,
                nonce: parse_u32_hex8(method, "nonce", a.get(4))?,
                version_bits,
            }))
        }
        "mining.suggest_difficulty" => {
            difficulty(method, a.first()).map(Request::SuggestDifficulty)
        }
        "mining.extranonce.subscribe" => Ok(Request::ExtranonceSubscribe),
        other => Err(MessageError::UnknownMethod(other.to_string())),
    }
}

/// `mining.configure` as BIP 310 writes it (`[[names], {params}]`) and as some miners send
/// it: the object alone, the object as `params`, names missing (inferred from the keys), a
/// mask as a number or with `0x`.
fn parse_configure(p: &Parsed) -> Result<Configure, MessageError> {
    const M: &str = "mining.configure";
    let mut c = Configure::default();
    let mut object = p.params_object.clone();
    for v in &p.params {
        match v {
            Value::Array(names) => {
                for n in names {
                    c.extensions.push(
                        n.as_str()
                            .ok_or_else(|| invalid(M, "extension names must be strings"))?
                            .to_string(),
                    );
                }
            }
            Value::Object(m) => object = Some(m.clone()),
            Value::String(s) => c.extensions.push(s.clone()),
            _ => return Err(invalid(M, "expected [[extensions], {parameters}]")),
        }
    }
    if let Some(m) = object {
        for (key, v) in &m {
            let ext = key.split('.').next().unwrap_or_default().to_string();
            if !c.extensions.contains(&ext) {
                c.extensions.push(ext);
            }
            match key.as_str() {
                "version-rolling.mask" => {
                    let mask = match v {
                        Value::String(s) => parse_u32_hex_loose(s),
                        Value::Number(n) => n.as_u64().and_then(|x| u32::try_from(x).ok()),
                        _ => None,
                    };
                    c.version_rolling_mask =
                        Some(mask.ok_or_else(|| {
                            invalid(M, "version-rolling.mask must be 8 hex digits")
                        })?);
                }
                "version-rolling.min-bit-count" => {
                    c.version_rolling_min_bit_count = v
                        .as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        .map(|x| x.min(32) as u32);
                }
                "minimum-difficulty.value" => {
                    c.minimum_difficulty = Some(difficulty(M, Some(v))?);
                }
                _ => {}
            }
        }
    }
    Ok(c)
}

/// Parses a line a server sent.
pub fn parse_server_line(line: &str) -> Result<FromServer, BadMessage> {
    let mut p = parse_json(line)?;
    let Some(method) = p.method.take() else {
        return response_of(p).map(FromServer::Response);
    };
    let id = p.id.clone();
    parse_call(&method, &p.params)
        .map(|call| FromServer::Call { id: p.id, call })
        .map_err(|error| BadMessage {
            id: Some(id),
            error,
        })
}

fn parse_call(method: &str, a: &[Value]) -> Result<ServerCall, MessageError> {
    match method {
        "mining.notify" => {
            if a.len() < 9 {
                return Err(invalid(
                    method,
                    format!("expected 9 params, got {}", a.len()),
                ));
            }
            let s = |i: usize, name: &str| -> Result<&str, MessageError> {
                a[i].as_str()
                    .ok_or_else(|| invalid(method, format!("{name} must be a hex string")))
            };
            let branch: Vec<&str> = a[4]
                .as_array()
                .ok_or_else(|| invalid(method, "merkle branch must be an array"))?
                .iter()
                .map(|h| {
                    h.as_str()
                        .ok_or_else(|| invalid(method, "merkle branch entries must be hex strings"))
                })
                .collect::<Result<_, _>>()?;
            let parts = JobParts::from_notify_hex(
                s(1, "prevhash")?,
                s(2, "coinb1")?,
                s(3, "coinb2")?,
                &branch,
                s(5, "version")?,
                s(6, "nbits")?,
                s(7, "ntime")?,
            )
            .map_err(|e: NotifyFieldError| invalid(method, e.to_string()))?;
            let clean_jobs = match &a[8] {
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_u64() != Some(0),
                Value::String(s) => s == "true" || s == "1",
                _ => return Err(invalid(method, "clean_jobs must be a boolean")),
            };
            Ok(ServerCall::Notify(Notify {
                job_id: string(method, "job id", a.first())?,
                parts,
                clean_jobs,
            }))
        }
        "mining.set_difficulty" => difficulty(method, a.first()).map(ServerCall::SetDifficulty),
        "mining.set_extranonce" => {
            let en1 = a
                .first()
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(method, "extranonce1 must be a hex string"))?;
            let size = a
                .get(1)
                .and_then(Value::as_u64)
                .filter(|&n| n <= 32)
                .ok_or_else(|| invalid(method, "extranonce2 size must be 0..32"))?;
            Ok(ServerCall::SetExtranonce {
                extranonce1: parse_hex_bytes(en1).map_err(hex_field(method, "extranonce1"))?,
                extranonce2_size: size as usize,
            })
        }
        "mining.set_version_mask" => {
            let mask = a
                .first()
                .and_then(Value::as_str)
                .and_then(parse_u32_hex_loose)
                .ok_or_else(|| invalid(method, "mask must be 8 hex digits"))?;
            Ok(ServerCall::SetVersionMask(mask))
        }
        "client.reconnect" => Ok(ServerCall::Reconnect {
            host: optional_string(a.first()),
            port: a
                .get(1)
                .and_then(number)
                .filter(|p| (1.0..=65535.0).contains(p))
                .map(|p| p as u16),
            wait_seconds: a
                .get(2)
                .and_then(number)
                .filter(|w| (0.0..=86400.0).contains(w))
                .map(|w| w as u64),
        }),
        "client.show_message" => Ok(ServerCall::ShowMessage(
            a.first().map(text_of).unwrap_or_default(),
        )),
        "mining.ping" => Ok(ServerCall::Ping),
        "client.get_version" => Ok(ServerCall::GetVersion),
        other => Err(MessageError::UnknownMethod(other.to_string())),
    }
}

impl SubscribeResult {
    /// Reads `[[[method, id], ...], extranonce1, extranonce2_size]` (the subscriptions may
    /// also be a single pair, as some pools send).
    pub fn parse(v: &Value) -> Result<SubscribeResult, MessageError> {
        let bad = |r: &str| MessageError::InvalidResult(format!("mining.subscribe: {r}"));
        let a = v
            .as_array()
            .filter(|a| a.len() >= 3)
            .ok_or_else(|| bad("expected [subscriptions, extranonce1, extranonce2_size]"))?;
        let mut subscriptions = Vec::new();
        if let Some(subs) = a[0].as_array() {
            let pairs: Vec<&Value> = if subs.first().is_some_and(Value::is_string) {
                vec![&a[0]]
            } else {
                subs.iter().collect()
            };
            for pair in pairs {
                if let Some([m, id]) = pair.as_array().map(Vec::as_slice) {
                    subscriptions.push((text_of(m), text_of(id)));
                }
            }
        }
        let en1 = a[1]
            .as_str()
            .ok_or_else(|| bad("extranonce1 must be a hex string"))?;
        let size = a[2]
            .as_u64()
            .filter(|&n| n <= 32)
            .ok_or_else(|| bad("extranonce2_size must be 0..32"))?;
        Ok(SubscribeResult {
            subscriptions,
            extranonce1: parse_hex_bytes(en1).map_err(|e| bad(&format!("extranonce1: {e}")))?,
            extranonce2_size: size as usize,
        })
    }

    pub fn to_value(&self) -> Value {
        let subs: Vec<Value> = self
            .subscriptions
            .iter()
            .map(|(m, id)| json!([m, id]))
            .collect();
        json!([subs, hex::encode(&self.extranonce1), self.extranonce2_size])
    }
}

impl ConfigureResult {
    pub fn parse(v: &Value) -> Result<ConfigureResult, MessageError> {
        let o = v.as_object().ok_or_else(|| {
            MessageError::InvalidResult("mining.configure: expected an object".into())
        })?;
        let granted = o
            .get("version-rolling")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mask = o
            .get("version-rolling.mask")
            .and_then(Value::as_str)
            .and_then(parse_u32_hex_loose);
        Ok(ConfigureResult {
            version_rolling: if granted {
                Some(mask.unwrap_or(0))
            } else {
                None
            },
            minimum_difficulty: o
                .get("minimum-difficulty")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// The reply for the extensions a client asked for.
    pub fn to_value(&self, asked: &Configure) -> Value {
        let mut o = Map::new();
        for ext in &asked.extensions {
            match ext.as_str() {
                "version-rolling" => {
                    o.insert(
                        "version-rolling".into(),
                        json!(self.version_rolling.is_some()),
                    );
                    if let Some(mask) = self.version_rolling {
                        o.insert("version-rolling.mask".into(), json!(format!("{mask:08x}")));
                    }
                }
                "minimum-difficulty" => {
                    o.insert("minimum-difficulty".into(), json!(self.minimum_difficulty));
                }
                other => {
                    o.insert(other.to_string(), json!(false));
                }
            }
        }
        Value::Object(o)
    }
}

fn line(v: Value) -> String {
    v.to_string()
}

impl Request {
    pub fn method(&self) -> &'static str {
        match self {
            Request::Configure(_) => "mining.configure",
            Request::Subscribe { .. } => "mining.subscribe",
            Request::Authorize { .. } => "mining.authorize",
            Request::Submit(_) => "mining.submit",
            Request::SuggestDifficulty(_) => "mining.suggest_difficulty",
            Request::ExtranonceSubscribe => "mining.extranonce.subscribe",
        }
    }

    fn params(&self) -> Value {
        match self {
            Request::Configure(c) => {
                let mut o = Map::new();
                if let Some(mask) = c.version_rolling_mask {
                    o.insert("version-rolling.mask".into(), json!(format!("{mask:08x}")));
                }
                if let Some(n) = c.version_rolling_min_bit_count {
                    o.insert("version-rolling.min-bit-count".into(), json!(n));
                }
                if let Some(d) = c.minimum_difficulty {
                    o.insert("minimum-difficulty.value".into(), json!(d));
                }
                json!([c.extensions, o])
            }
            Request::Subscribe { agent, session } => match (agent, session) {
                (None, None) => json!([]),
                (a, None) => json!([a]),
                (a, Some(s)) => json!([a, s]),
            },
            Request::Authorize { user, password } => json!([user, password]),
            Request::Submit(s) => {
                let mut p = vec![
                    json!(s.worker),
                    json!(s.job_id),
                    json!(hex::encode(&s.extranonce2)),
                    json!(format!("{:08x}", s.ntime)),
                    json!(format!("{:08x}", s.nonce)),
                ];
                if let Some(v) = s.version_bits {
                    p.push(json!(format!("{v:08x}")));
                }
                Value::Array(p)
            }
            Request::SuggestDifficulty(d) => json!([d]),
            Request::ExtranonceSubscribe => json!([]),
        }
    }

    /// The canonical line (without newline).
    pub fn to_line(&self, id: &Id) -> String {
        line(json!({"id": id.to_value(), "method": self.method(), "params": self.params()}))
    }
}

impl ServerCall {
    pub fn method(&self) -> &'static str {
        match self {
            ServerCall::Notify(_) => "mining.notify",
            ServerCall::SetDifficulty(_) => "mining.set_difficulty",
            ServerCall::SetExtranonce { .. } => "mining.set_extranonce",
            ServerCall::SetVersionMask(_) => "mining.set_version_mask",
            ServerCall::Reconnect { .. } => "client.reconnect",
            ServerCall::ShowMessage(_) => "client.show_message",
            ServerCall::Ping => "mining.ping",
            ServerCall::GetVersion => "client.get_version",
        }
    }

    fn params(&self) -> Value {
        match self {
            ServerCall::Notify(n) => {
                let p = &n.parts;
                let branch: Vec<String> = p.merkle_branch.iter().map(hex::encode).collect();
                json!([
                    n.job_id,
                    p.prevhash.to_hex(),
                    hex::encode(&p.coinb1),
                    hex::encode(&p.coinb2),
                    branch,
                    format!("{:08x}", p.version),
                    format!("{:08x}", p.nbits.to_u32()),
                    format!("{:08x}", p.ntime),
                    n.clean_jobs
                ])
            }
            ServerCall::SetDifficulty(d) => json!([d]),
            ServerCall::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => {
                json!([hex::encode(extranonce1), extranonce2_size])
            }
            ServerCall::SetVersionMask(m) => json!([format!("{m:08x}")]),
            ServerCall::Reconnect {
                host,
                port,
                wait_seconds,
            } => {
                let mut a = Vec::new();
                if let Some(h) = host {
                    a.push(json!(h));
                    if let Some(p) = port {
                        a.push(json!(p));
                        if let Some(w) = wait_seconds {
                            a.push(json!(w));
                        }
                    }
                }
                Value::Array(a)
            }
            ServerCall::ShowMessage(m) => json!([m]),
            ServerCall::Ping | ServerCall::GetVersion => json!([]),
        }
    }

    /// The canonical line (without newline); notifications carry `id: null`.
    pub fn to_line(&self, id: &Id) -> String {
        line(json!({"id": id.to_value(), "method": self.method(), "params": self.params()}))
    }
}

impl Response {
    pub fn ok(id: Id, result: Value) -> Response {
        Response {
            id,
            result,
            error: None,
        }
    }

    pub fn err(id: Id, error: StratumError) -> Response {
        Response {
            id,
            result: Value::Null,
            error: Some(error),
        }
    }

    /// The canonical line (without newline), fields in the order id, result, error.
    pub fn to_line(&self) -> String {
        let error = self
            .error
            .as_ref()
            .map(StratumError::to_value)
            .unwrap_or(Value::Null);
        format!(
            "{{\"id\":{},\"result\":{},\"error\":{}}}",
            self.id.to_value(),
            self.result,
            error
        )
    }
}
