//! Entry points for the `fuzz/` targets (and the proptests that feed them random bytes):
//! every parser of bytes a miner or a fleet tool sends.

use crate::cgminer::{decode_reply, steps, Request, Stamp};

const AT: Stamp = Stamp {
    when: 0,
    description: "fuzz",
};

/// A server reading a request: parsing, then planning its steps; and the bytes as the
/// parameter of every write that reads one (`powertarget`'s watts, `fault`, pool ids).
pub fn cgminer_request(bytes: &[u8]) {
    if let Ok(req) = Request::parse(bytes, AT) {
        let _ = steps(&req, true, AT);
    }
    let param = String::from_utf8_lossy(bytes);
    for cmd in crate::cgminer::Write::COMMANDS {
        let _ = crate::cgminer::Write::parse(cmd, &param, AT);
    }
}

/// The `MM ID0` string an Avalon packs its state into, as text from the miner.
pub fn avalon_mm(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let mm = crate::avalon::parse_mm(&text);
    let v = serde_json::json!({
        "version": [{"VERSION": [{"PROD": "AvalonMiner 1246-90"}]}],
        "summary": [{"SUMMARY": [{}]}],
        "devs": [{"DEVS": []}],
        "estats": [{"STATS": [{"MM ID0": text}]}],
        "pools": [{"POOLS": []}],
    });
    let _ = (mm.len(), crate::avalon::read(&v, Some(120)));
}

/// A client reading a reply, then reading it as stock Antminer firmware and as the web CGI,
/// as a Whatsminer's and as an Avalon's; and the bytes as a `set_miner_conf.cgi` body a
/// miner's web CGI reads.
pub fn cgminer_reply(bytes: &[u8]) {
    let _ = crate::antminer_web::miner_mode(bytes);
    if let Ok(v) = decode_reply(bytes) {
        let _ = crate::btminer::read(&v, Some(215));
        let _ = crate::avalon::read(&v, Some(120));
        if let Ok(mut status) = crate::bmminer::read(&v, Some(3)) {
            crate::antminer_web::read_system_info(&v, &mut status.identity);
            crate::antminer_web::read_board_serials(&v, &mut status);
        }
        let _ = crate::axeos::read(&v);
    }
}

/// A server reading an `Authorization` header, and a client reading a challenge.
pub fn digest_header(bytes: &[u8]) {
    let header = String::from_utf8_lossy(bytes);
    let nonces = crate::digest::Nonces::new([0; 16]);
    let account = crate::digest::Account {
        realm: crate::digest::ANTMINER_REALM,
        user: "root",
        password: "pw",
    };
    let _ = nonces.verify(&header, "GET", "/", account, 0);
    let _ = crate::digest::authorization(&header, "GET", "/", "root", "pw", "c", 1);
}
