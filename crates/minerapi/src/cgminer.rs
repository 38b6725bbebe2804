//! The cgminer API (TCP 4028) on the wire, both sides: requests (JSON
//! `{"command":"summary","parameter":""}` or plain `summary|param`, several commands joined
//! with `+`), replies (a `STATUS` section, then the command's section, then `"id":1`, JSON
//! or cgminer's text form), and what a client makes of the bytes real firmware sends
//! (a trailing NUL, bmminer's `}{` between joined replies, numbers as strings).
//!
//! Which fields a section holds is the firmware's shape: [`crate::bmminer`] is stock
//! Antminer's. This module knows the envelope only.

use serde_json::Value;

/// cgminer's message codes used here.
pub mod code {
    pub const POOLS: u32 = 7;
    pub const DEVS: u32 = 9;
    pub const SUMMARY: u32 = 11;
    pub const INVALID_COMMAND: u32 = 14;
    pub const VERSION: u32 = 22;
    pub const INVALID_JSON: u32 = 23;
    pub const MISSING_COMMAND: u32 = 24;
    pub const SWITCH_POOL: u32 = 27;
    pub const MISSING_PARAM: u32 = 31;
    pub const CONFIG: u32 = 33;
    pub const INVALID_PARAM: u32 = 36;
    pub const ACCESS_DENIED: u32 = 45;
    pub const PRIVILEGED_OK: u32 = 46;
    pub const ENABLE_POOL: u32 = 47;
    pub const DISABLE_POOL: u32 = 48;
    pub const ADD_POOL: u32 = 55;
    pub const REMOVE_POOL: u32 = 68;
    pub const DEVDETAILS: u32 = 69;
    pub const STATS: u32 = 70;
    pub const QUIT: u32 = 71;
    pub const RESTART: u32 = 72;
    pub const NOT_SUPPORTED: u32 = 77;
    /// hashforge's own: a fault was injected into an emulated machine.
    pub const FAULT: u32 = 300;
    /// hashforge's own: a power target was set or cleared.
    pub const POWER_TARGET: u32 = 301;
    /// hashforge's own: the machine went to sleep.
    pub const SLEEP: u32 = 302;
    /// hashforge's own: the machine woke.
    pub const WAKE: u32 = 303;
}

/// The longest request a server reads and the longest reply a client accepts.
pub const MAX_REQUEST: usize = 64 * 1024;
pub const MAX_REPLY: usize = 4 * 1024 * 1024;

/// An ordered JSON object (the API's key order is part of how it reads).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Obj(pub Vec<(String, Value)>);

impl Obj {
    pub fn with(mut self, k: impl Into<String>, v: impl Into<Value>) -> Obj {
        self.0.push((k.into(), v.into()));
        self
    }
    pub fn push(&mut self, k: impl Into<String>, v: impl Into<Value>) {
        self.0.push((k.into(), v.into()));
    }
    pub fn get(&self, k: &str) -> Option<&Value> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }
    pub fn json(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
    fn text(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One command's answer: a STATUS and, on success, a named section.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: Obj,
    pub section: Option<(&'static str, Vec<Obj>)>,
}

/// The STATUS object; `description` names the firmware (`bmminer 2.0.0`).
pub fn status(kind: &str, when: u64, code: u32, msg: impl Into<String>, description: &str) -> Obj {
    Obj::default()
        .with("STATUS", kind)
        .with("When", when)
        .with("Code", code)
        .with("Msg", msg.into())
        .with("Description", description)
}

/// Who is answering and when: what every STATUS carries.
#[derive(Clone, Copy, Debug)]
pub struct Stamp<'a> {
    pub when: u64,
    pub description: &'a str,
}

impl Reply {
    pub fn ok(
        at: Stamp,
        code: u32,
        msg: impl Into<String>,
        name: &'static str,
        items: Vec<Obj>,
    ) -> Reply {
        Reply {
            status: status("S", at.when, code, msg, at.description),
            section: Some((name, items)),
        }
    }
    pub fn info(at: Stamp, code: u32, msg: impl Into<String>) -> Reply {
        Reply {
            status: status("I", at.when, code, msg, at.description),
            section: None,
        }
    }
    pub fn error(at: Stamp, code: u32, msg: impl Into<String>) -> Reply {
        Reply {
            status: status("E", at.when, code, msg, at.description),
            section: None,
        }
    }
    pub fn json(&self) -> String {
        let mut out = format!("{{\"STATUS\":[{}]", self.status.json());
        if let Some((name, items)) = &self.section {
            let items: Vec<String> = items.iter().map(Obj::json).collect();
            out.push_str(&format!(",\"{name}\":[{}]", items.join(",")));
        }
        out.push_str(",\"id\":1}");
        out
    }
    pub fn text(&self) -> String {
        let mut out = format!("{}|", self.status.text());
        if let Some((name, items)) = &self.section {
            for item in items {
                let indexed = item.0.first().is_some_and(|(k, v)| {
                    v.is_number() && k.chars().all(|c| c.is_ascii_uppercase())
                });
                if indexed {
                    out.push_str(&format!("{}|", item.text()));
                } else {
                    out.push_str(&format!("{name},{}|", item.text()));
                }
            }
        }
        out
    }
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Lower case, in order; more than one when joined with `+`.
    pub commands: Vec<String>,
    pub parameter: String,
    /// hashforge's write token (JSON field `token`).
    pub token: Option<String>,
    /// Asked in JSON, so answered in JSON.
    pub json: bool,
}

impl Request {
    /// A JSON request for `command` (`summary`, `summary+pools`) as fleet tools send it.
    pub fn new(command: &str, parameter: &str) -> Request {
        Request {
            commands: split_commands(command),
            parameter: parameter.to_string(),
            token: None,
            json: true,
        }
    }

    /// The bytes a client writes.
    pub fn encode(&self) -> Vec<u8> {
        if self.json {
            let mut v = serde_json::json!({
                "command": self.commands.join("+"),
                "parameter": self.parameter,
            });
            if let Some(t) = &self.token {
                v["token"] = Value::from(t.as_str());
            }
            v.to_string().into_bytes()
        } else {
            format!("{}|{}", self.commands.join("+"), self.parameter).into_bytes()
        }
    }

    /// Reads a request; garbage becomes the error reply to send (in JSON when the bytes
    /// looked like JSON).
    pub fn parse(bytes: &[u8], at: Stamp) -> Result<Request, String> {
        let end = bytes
            .iter()
            .position(|&b| b == 0 || b == b'\n')
            .unwrap_or(bytes.len());
        let text = String::from_utf8_lossy(&bytes[..end]);
        let text = text.trim();
        if looks_json(text) {
            let fail = |code: u32, msg: &str| Reply::error(at, code, msg).json();
            let v: Value =
                serde_json::from_str(text).map_err(|_| fail(code::INVALID_JSON, "Invalid JSON"))?;
            let command = v
                .get("command")
                .and_then(Value::as_str)
                .ok_or_else(|| fail(code::MISSING_COMMAND, "Missing JSON 'command'"))?;
            let parameter = match v.get("parameter") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(_) => return Err(fail(code::INVALID_PARAM, "Invalid parameter")),
            };
            let token = v.get("token").and_then(Value::as_str).map(str::to_string);
            Ok(Request {
                commands: split_commands(command),
                parameter,
                token,
                json: true,
            })
        } else {
            let (command, parameter) = text.split_once('|').unwrap_or((text, ""));
            if command.is_empty() {
                return Err(Reply::error(at, code::INVALID_COMMAND, "Invalid command").text());
            }
            Ok(Request {
                commands: split_commands(command),
                parameter: parameter.to_string(),
                token: None,
                json: false,
            })
        }
    }

    /// Renders the replies to this request's commands, in order, as one answer: one reply
    /// as is, joined ones as one object keyed by command (text: concatenated).
    pub fn join(&self, replies: &[Reply]) -> String {
        match replies {
            [one] if self.commands.len() == 1 => {
                if self.json {
                    one.json()
                } else {
                    one.text()
                }
            }
            _ if self.json => {
                let parts: Vec<String> = self
                    .commands
                    .iter()
                    .zip(replies)
                    .map(|(c, r)| format!("{}:[{}]", Value::from(c.as_str()), r.json()))
                    .collect();
                format!("{{{},\"id\":1}}", parts.join(","))
            }
            _ => replies.iter().map(Reply::text).collect(),
        }
    }
}

fn looks_json(text: &str) -> bool {
    text.starts_with('{') || text.starts_with('[')
}

fn split_commands(c: &str) -> Vec<String> {
    c.split('+')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

/// Whether a server has the whole request: a newline or NUL, a whole JSON object, or a
/// plain command (cgminer takes one read as the request).
pub fn request_complete(buf: &[u8]) -> bool {
    if buf.contains(&b'\n') || buf.contains(&0) {
        return true;
    }
    let start = buf.iter().position(|b| !b.is_ascii_whitespace());
    match start {
        Some(i) if buf[i] == b'{' => serde_json::from_slice::<Value>(&buf[i..]).is_ok(),
        Some(_) => true,
        None => false,
    }
}

/// The commands that change the miner. They are never answered from a status alone: the
/// miner's shell carries them out and [`Write::reply`] reports how it went.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    SwitchPool(usize),
    EnablePool(usize),
    DisablePool(usize),
    RemovePool(usize),
    AddPool {
        url: String,
        user: String,
        password: String,
    },
    Restart,
    Quit,
    Save,
    /// `privileged`: asks whether this request may write.
    Privileged,
    /// hashforge's own: `DEVICE[:CHAIN],KIND:ARGS` (`0,dead-chip:12`; `0:1,silent-chip:30`
    /// on the device's chain 1 only) into an emulated machine.
    Fault {
        device: usize,
        chain: Option<usize>,
        fault: String,
    },
    /// hashforge's own: `powertarget|WATTS` keeps the whole machine at or under WATTS
    /// (a positive number; a trailing `W` is allowed); `powertarget|none` clears it.
    PowerTarget(Option<f64>),
    /// hashforge's own: stop hashing and draw idle power until `wake`.
    Sleep,
    /// hashforge's own: hash again, at the power target in force.
    Wake,
}

/// What `powertarget` says when its parameter is not a power.
pub const POWER_TARGET_SYNTAX: &str =
    "powertarget takes watts (a positive number, e.g. powertarget|2500) or none (powertarget|none clears the target)";

/// Reads `powertarget`'s parameter: `none` (any case) or a positive, finite number of watts,
/// optionally followed by `W`.
pub fn parse_power_target(param: &str) -> Result<Option<f64>, String> {
    let p = param.trim();
    if p.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let number = p
        .strip_suffix(['W', 'w'])
        .map_or(p, str::trim_end)
        .parse::<f64>()
        .ok()
        .filter(|w| w.is_finite());
    match number {
        _ if p.is_empty() => Err(format!("Missing power target: {POWER_TARGET_SYNTAX}")),
        Some(w) if w > 0.0 => Ok(Some(w)),
        Some(w) => Err(format!(
            "Invalid power target {w} W: it must be above 0 ({POWER_TARGET_SYNTAX})"
        )),
        None => Err(format!(
            "Invalid power target `{}`: {POWER_TARGET_SYNTAX}",
            p.chars().take(40).collect::<String>()
        )),
    }
}

impl Write {
    pub const COMMANDS: [&'static str; 13] = [
        "fault",
        "powertarget",
        "sleep",
        "wake",
        "switchpool",
        "enablepool",
        "disablepool",
        "addpool",
        "removepool",
        "restart",
        "quit",
        "save",
        "privileged",
    ];

    /// The write command `cmd` with `param`, `None` for a read command, or the error reply
    /// for a parameter that does not parse.
    pub fn parse(cmd: &str, param: &str, at: Stamp) -> Option<Result<Write, Reply>> {
        let index = |p: &str| {
            p.trim()
                .parse::<usize>()
                .map_err(|_| Reply::error(at, code::MISSING_PARAM, "Missing or invalid pool id"))
        };
        Some(match cmd {
            "switchpool" => index(param).map(Write::SwitchPool),
            "enablepool" => index(param).map(Write::EnablePool),
            "disablepool" => index(param).map(Write::DisablePool),
            "removepool" => index(param).map(Write::RemovePool),
            "addpool" => {
                let mut it = param.splitn(3, ',');
                match (it.next(), it.next()) {
                    (Some(url), Some(user)) if !url.is_empty() => Ok(Write::AddPool {
                        url: url.to_string(),
                        user: user.to_string(),
                        password: it.next().unwrap_or("x").to_string(),
                    }),
                    _ => Err(Reply::error(
                        at,
                        code::MISSING_PARAM,
                        "Missing parameter: url,user,pass",
                    )),
                }
            }
            "restart" => Ok(Write::Restart),
            "quit" => Ok(Write::Quit),
            "save" => Ok(Write::Save),
            "privileged" => Ok(Write::Privileged),
            "fault" => match param.split_once(',') {
                None => Err(Reply::error(
                    at,
                    code::MISSING_PARAM,
                    "Missing parameter: device,fault",
                )),
                Some((target, fault)) => {
                    let (device, chain) = match target.split_once(':') {
                        Some((d, c)) => (d, Some(c)),
                        None => (target, None),
                    };
                    let chain = chain.map(|c| c.trim().parse::<usize>()).transpose();
                    match (device.trim().parse::<usize>(), chain) {
                        (Ok(device), Ok(chain)) => Ok(Write::Fault {
                            device,
                            chain,
                            fault: fault.trim().to_string(),
                        }),
                        (Err(_), _) => {
                            Err(Reply::error(at, code::INVALID_PARAM, "Invalid device id"))
                        }
                        (_, Err(_)) => Err(Reply::error(
                            at,
                            code::INVALID_PARAM,
                            "Invalid chain: device:chain,fault (0:1,silent-chip:30)",
                        )),
                    }
                }
            },
            "powertarget" => parse_power_target(param)
                .map(Write::PowerTarget)
                .map_err(|msg| Reply::error(at, code::INVALID_PARAM, msg)),
            "sleep" => Ok(Write::Sleep),
            "wake" => Ok(Write::Wake),
            _ => return None,
        })
    }

    /// The reply once the shell has tried the command.
    pub fn reply(&self, outcome: Result<String, String>, at: Stamp) -> Reply {
        let ok_code = match self {
            Write::SwitchPool(_) => code::SWITCH_POOL,
            Write::EnablePool(_) => code::ENABLE_POOL,
            Write::DisablePool(_) => code::DISABLE_POOL,
            Write::RemovePool(_) => code::REMOVE_POOL,
            Write::AddPool { .. } => code::ADD_POOL,
            Write::Restart => code::RESTART,
            Write::Quit => code::QUIT,
            Write::Save => code::NOT_SUPPORTED,
            Write::Privileged => code::PRIVILEGED_OK,
            Write::Fault { .. } => code::FAULT,
            Write::PowerTarget(_) => code::POWER_TARGET,
            Write::Sleep => code::SLEEP,
            Write::Wake => code::WAKE,
        };
        match outcome {
            Ok(msg) => Reply::info(at, ok_code, msg),
            Err(msg) if matches!(self, Write::Save) => Reply::error(at, ok_code, msg),
            Err(msg) => Reply::error(at, code::INVALID_PARAM, msg),
        }
    }
}

/// What a server does with one command of a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// A read: answer it from the status.
    Read(String),
    /// A write the request may make: the shell carries it out.
    Write(Write),
    /// Already answered (refused, or a bad parameter).
    Done(Reply),
}

/// The steps for each command of `req`. Writes need `may_write`; joined writes are refused
/// (a `+` request could otherwise smuggle one past a reader).
pub fn steps(req: &Request, may_write: bool, at: Stamp) -> Vec<Step> {
    let joined = req.commands.len() > 1;
    req.commands
        .iter()
        .map(|c| match Write::parse(c, &req.parameter, at) {
            None => Step::Read(c.clone()),
            Some(_) if joined => Step::Done(Reply::error(
                at,
                code::ACCESS_DENIED,
                format!("Access denied to '{c}' command (it cannot be joined)"),
            )),
            Some(_) if !may_write => Step::Done(Reply::error(
                at,
                code::ACCESS_DENIED,
                format!("Access denied to '{c}' command"),
            )),
            Some(Ok(w)) => Step::Write(w),
            Some(Err(reply)) => Step::Done(reply),
        })
        .collect()
}

/// Why a reply could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty reply")]
    Empty,
    #[error("reply of {0} bytes is over the {MAX_REPLY}-byte limit")]
    TooLong(usize),
    #[error("reply is not JSON: {0}")]
    NotJson(String),
    #[error("reply has no `{0}` section")]
    MissingSection(String),
    #[error("the miner refused `{command}`: {message} (code {code})")]
    Refused {
        command: String,
        code: u64,
        message: String,
    },
}

/// Reads a reply's bytes into JSON the way fleet tools must: a trailing NUL or whitespace
/// cut, bmminer's `}{` between joined replies mended, invalid UTF-8 replaced.
pub fn decode_reply(bytes: &[u8]) -> Result<Value, DecodeError> {
    if bytes.len() > MAX_REPLY {
        return Err(DecodeError::TooLong(bytes.len()));
    }
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]);
    let text = text.trim();
    if text.is_empty() {
        return Err(DecodeError::Empty);
    }
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(first) if text.contains("}{") => serde_json::from_str(&text.replace("}{", "},{"))
            .map_err(|_| DecodeError::NotJson(first.to_string())),
        Err(e) => Err(DecodeError::NotJson(e.to_string())),
    }
}

/// The section `name` (`SUMMARY`, `STATS`) of `command`'s reply, inside a joined reply
/// or a single one; a STATUS of `E` or `F` is the miner's refusal.
pub fn section<'a>(
    reply: &'a Value,
    command: &str,
    name: &str,
) -> Result<&'a [Value], DecodeError> {
    let one = match reply.get(command) {
        Some(Value::Array(parts)) => parts.first().unwrap_or(&Value::Null),
        _ => reply,
    };
    if let Some(st) = one.get("STATUS").and_then(|s| s.get(0)) {
        let kind = st.get("STATUS").and_then(Value::as_str).unwrap_or("");
        if kind == "E" || kind == "F" {
            return Err(DecodeError::Refused {
                command: command.to_string(),
                code: st.get("Code").and_then(number).unwrap_or(0.0) as u64,
                message: st
                    .get("Msg")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            });
        }
    }
    one.get(name)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| DecodeError::MissingSection(name.to_string()))
}

/// A number as firmware sends it: a JSON number, or a string holding one (`"GHS 5s":
/// "110566.89"`, `"1,234.5"` never: commas are not numbers). Not finite is none.
pub fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        Value::Bool(b) => f64::from(u8::from(*b)),
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// Decimals that keep a rate in GH/s true to about four significant digits: stock firmware's
/// two for a real machine (78,000.00 GH/s), more for a small one (an emulated board's
/// 0.007812 GH/s would read 0.01, 28% off, with two).
fn ghs_decimals(ghs: f64) -> usize {
    match ghs.abs() {
        g if g >= 100.0 || g == 0.0 => 2,
        g if g >= 1.0 => 4,
        _ => 6,
    }
}

/// A rate as GH/s, as a number, rounded as [`ghs_text`].
pub fn ghs(r: hashforge_core::HashRate) -> f64 {
    let g = r.as_ghs();
    let scale = 10f64.powi(ghs_decimals(g) as i32);
    (g * scale).round() / scale
}

/// A rate as GH/s in a string (bmminer's `GHS 5s`, `chain_rateN`): two decimals, more for
/// a rate under 100 GH/s.
pub fn ghs_text(r: hashforge_core::HashRate) -> String {
    let g = r.as_ghs();
    format!("{g:.*}", ghs_decimals(g))
}

/// A non-negative whole number as firmware sends it.
pub fn count(v: &Value) -> Option<u64> {
    let n = number(v)?;
    (n >= 0.0 && n <= u64::MAX as f64).then_some(n as u64)
}

/// Text as firmware sends it (a number becomes its text).
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Stamp = Stamp {
        when: 1_700_000_000,
        description: "test",
    };

    #[test]
    fn requests_json_plain_joined_and_garbage() {
        let r = Request::parse(br#"{"command":"summary+pools","parameter":""}"#, AT).unwrap();
        assert_eq!(r.commands, vec!["summary", "pools"]);
        assert!(r.json);
        let r = Request::parse(b"switchpool|1\0", AT).unwrap();
        assert_eq!(
            (r.commands[0].as_str(), r.parameter.as_str()),
            ("switchpool", "1")
        );
        assert!(!r.json);
        let r =
            Request::parse(br#"{"command":"switchpool","parameter":2,"token":"t"}"#, AT).unwrap();
        assert_eq!((r.parameter.as_str(), r.token.as_deref()), ("2", Some("t")));
        let e = Request::parse(b"{not json", AT).unwrap_err();
        assert!(e.contains("\"Code\":23"), "{e}");
        let e = Request::parse(br#"{"parameter":1}"#, AT).unwrap_err();
        assert!(e.contains("\"Code\":24"));
        assert!(Request::parse(b"|x", AT).is_err());
        // What a client encodes, a server reads back.
        let r = Request::new("summary+pools", "");
        assert_eq!(Request::parse(&r.encode(), AT).unwrap(), r);
    }

    #[test]
    fn replies_render_as_cgminer_json_and_text() {
        let r = Reply::ok(
            AT,
            7,
            "1 Pool(s)",
            "POOLS",
            vec![Obj::default()
                .with("POOL", 0)
                .with("URL", "stratum+tcp://h:1")],
        );
        let j = r.json();
        assert!(
            j.starts_with("{\"STATUS\":[{\"STATUS\":\"S\",\"When\":1700000000,"),
            "{j}"
        );
        assert!(
            j.ends_with(",\"POOLS\":[{\"POOL\":0,\"URL\":\"stratum+tcp://h:1\"}],\"id\":1}"),
            "{j}"
        );
        let t = r.text();
        assert!(t.starts_with("STATUS=S,When="), "{t}");
        assert!(t.ends_with("|POOL=0,URL=stratum+tcp://h:1|"), "{t}");
        assert!(request_complete(b"summary"));
        assert!(!request_complete(b"{\"command\":\"sum"));
        assert!(request_complete(b"{\"command\":\"summary\"}"));
    }

    #[test]
    fn writes_need_access_and_cannot_be_joined() {
        let req = Request::parse(b"summary+switchpool|1", AT).unwrap();
        let s = steps(&req, true, AT);
        assert_eq!(s[0], Step::Read("summary".into()));
        assert!(matches!(&s[1], Step::Done(r) if r.status.get("Code") == Some(&Value::from(45))));
        let req = Request::parse(b"switchpool|1", AT).unwrap();
        assert!(matches!(&steps(&req, false, AT)[0], Step::Done(_)));
        assert_eq!(steps(&req, true, AT)[0], Step::Write(Write::SwitchPool(1)));
        let req = Request::parse(b"switchpool|x", AT).unwrap();
        assert!(matches!(&steps(&req, true, AT)[0], Step::Done(_)));
    }

    #[test]
    fn power_commands_take_watts_or_none_and_refuse_the_rest_clearly() {
        let write = |cmd: &str| {
            let req = Request::parse(cmd.as_bytes(), AT).unwrap();
            steps(&req, true, AT).remove(0)
        };
        assert_eq!(
            write("powertarget|2500"),
            Step::Write(Write::PowerTarget(Some(2500.0)))
        );
        assert_eq!(
            write(r#"{"command":"powertarget","parameter":"1800.5 W","token":"t"}"#),
            Step::Write(Write::PowerTarget(Some(1800.5)))
        );
        assert_eq!(
            write(r#"{"command":"powertarget","parameter":2500}"#),
            Step::Write(Write::PowerTarget(Some(2500.0)))
        );
        assert_eq!(
            write("powertarget|None"),
            Step::Write(Write::PowerTarget(None))
        );
        assert_eq!(write("sleep|"), Step::Write(Write::Sleep));
        assert_eq!(write("wake"), Step::Write(Write::Wake));
        for (bad, says) in [
            ("powertarget|-5", "must be above 0"),
            ("powertarget|0", "must be above 0"),
            ("powertarget|NaN", "Invalid power target `NaN`"),
            ("powertarget|inf", "Invalid power target `inf`"),
            ("powertarget|lots", "Invalid power target `lots`"),
            ("powertarget|2500kW", "Invalid power target"),
            ("powertarget|", "Missing power target"),
            ("powertarget|W", "Invalid power target `W`"),
        ] {
            let Step::Done(reply) = write(bad) else {
                panic!("{bad} was taken");
            };
            assert_eq!(reply.status.get("STATUS"), Some(&Value::from("E")), "{bad}");
            assert_eq!(reply.status.get("Code"), Some(&Value::from(36)), "{bad}");
            let msg = reply.status.get("Msg").and_then(Value::as_str).unwrap();
            assert!(msg.contains(says), "{bad}: {msg}");
            assert!(msg.contains("powertarget|none"), "{bad}: {msg}");
        }
        // Refused without access, as every write is.
        let req = Request::parse(b"sleep|", AT).unwrap();
        let Step::Done(r) = &steps(&req, false, AT)[0] else {
            panic!("sleep without access was taken");
        };
        assert_eq!(r.status.get("Code"), Some(&Value::from(45)));
        let ok = Write::Sleep.reply(Ok("Sleeping".into()), AT);
        assert_eq!(ok.status.get("Code"), Some(&Value::from(302)));
        let no = Write::PowerTarget(None).reply(Err("no power model".into()), AT);
        assert_eq!(no.status.get("STATUS"), Some(&Value::from("E")));
    }

    #[test]
    fn client_decoding_tolerates_real_firmware() {
        let v = decode_reply(
            b"{\"STATUS\":[{\"STATUS\":\"S\"}],\"SUMMARY\":[{\"GHS 5s\":\"12.5\"}],\"id\":1}\0",
        )
        .unwrap();
        let s = section(&v, "summary", "SUMMARY").unwrap();
        assert_eq!(number(&s[0]["GHS 5s"]), Some(12.5));
        // bmminer's joined replies, without the comma.
        let v = decode_reply(br#"{"summary":[{"SUMMARY":[{"Elapsed":5}]}]}{"x":1}"#);
        assert!(v.is_ok() || matches!(v, Err(DecodeError::NotJson(_))));
        let v =
            decode_reply(br#"{"summary":[{"SUMMARY":[{"Elapsed":5}]}],"pools":[{"POOLS":[]}]}"#)
                .unwrap();
        assert_eq!(section(&v, "summary", "SUMMARY").unwrap().len(), 1);
        assert_eq!(section(&v, "pools", "POOLS").unwrap().len(), 0);
        let refused = decode_reply(
            br#"{"STATUS":[{"STATUS":"E","Code":14,"Msg":"Invalid command"}],"id":1}"#,
        )
        .unwrap();
        assert!(matches!(
            section(&refused, "estats", "STATS"),
            Err(DecodeError::Refused { code: 14, .. })
        ));
        assert_eq!(decode_reply(b"\0"), Err(DecodeError::Empty));
        assert!(matches!(
            decode_reply(b"{\"a\":"),
            Err(DecodeError::NotJson(_))
        ));
        assert_eq!(number(&Value::from("nan")), None);
        // Rates keep about four significant digits whatever their size.
        use hashforge_core::HashRate;
        assert_eq!(ghs_text(HashRate::from_ghs(78_125.004)), "78125.00");
        assert_eq!(ghs_text(HashRate::from_mhs(7.8126)), "0.007813");
        assert_eq!(ghs_text(HashRate::from_ghs(12.34567)), "12.3457");
        assert_eq!(ghs_text(HashRate::ZERO), "0.00");
        assert_eq!(ghs(HashRate::from_mhs(7.8126)), 0.007813);
        assert_eq!(count(&Value::from(-1)), None);
    }
}
