//! Entry points for the `fuzz/` targets (and the proptests that feed them random bytes):
//! the parsers of what miners send the console (an HTTP reply) and of what operators write
//! (address ranges).

/// A miner's HTTP reply, as the console reads it.
pub fn http_reply(bytes: &[u8]) {
    if let Ok(r) = crate::http::parse_reply(bytes) {
        let _ = r.header("www-authenticate");
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body) {
            let _ = hashforge_minerapi::axeos::read(&v);
        }
    }
}

/// An operator's address ranges.
pub fn ranges(bytes: &[u8]) {
    if let Ok(r) = crate::range::Ranges::parse(&String::from_utf8_lossy(bytes)) {
        let _ = r.addresses().take(1000).count();
    }
}
