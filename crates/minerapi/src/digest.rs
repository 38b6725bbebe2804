//! HTTP digest authentication (RFC 7616 with MD5, as stock Antminer web servers and every
//! fleet tool speak it: `qop=auth`, and the older form without `qop`), both sides, without
//! I/O. The server's nonces carry their issue time and a keyed hash, so checking one needs
//! no table: [`Nonces::issue`] and [`Nonces::check`].

use md5::{Digest, Md5};

/// The realm stock Antminer firmware announces; asic-rs recognises an Antminer by it.
pub const ANTMINER_REALM: &str = "antMiner Configuration";

/// How long a nonce stays good.
pub const NONCE_LIFETIME_SECS: u64 = 300;

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Why an `Authorization` header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("not a Digest authorization")]
    NotDigest,
    #[error("the authorization has no `{0}`")]
    Missing(&'static str),
    #[error("unsupported algorithm `{0}` (MD5 only)")]
    Algorithm(String),
    #[error("unsupported qop `{0}`")]
    Qop(String),
    #[error("the nonce is stale or was not issued here")]
    Nonce,
    #[error("wrong realm")]
    Realm,
    #[error("wrong user or password")]
    Credentials,
    #[error("the authorization is for `{got}`, not `{want}`")]
    Uri { got: String, want: String },
}

/// The `key="value"` pairs of a `WWW-Authenticate` or `Authorization` header after
/// `Digest `; quoted values may hold commas and `\"`.
pub fn parse_params(header: &str) -> Result<Vec<(String, String)>, DigestError> {
    let rest = header.trim();
    let rest = match rest.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("digest ") => &rest[7..],
        _ => return Err(DigestError::NotDigest),
    };
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_string();
            }
        }
        if out.len() >= 32 {
            break;
        }
        out.push((key, value));
    }
    Ok(out)
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Whom a server lets in: one user and password in one realm.
#[derive(Clone, Copy, Debug)]
pub struct Account<'a> {
    pub realm: &'a str,
    pub user: &'a str,
    pub password: &'a str,
}

/// Server side: issues nonces bound to a secret and checks them statelessly.
#[derive(Clone)]
pub struct Nonces {
    secret: [u8; 16],
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonces(..)")
    }
}

impl Nonces {
    /// `secret` must be unpredictable (random per process).
    pub fn new(secret: [u8; 16]) -> Nonces {
        Nonces { secret }
    }

    fn tag(&self, issued: u64) -> String {
        md5_hex(&[&hex::encode(self.secret), &issued.to_string()])
    }

    /// A nonce issued at `now` (unix seconds).
    pub fn issue(&self, now: u64) -> String {
        format!("{issued:016x}{}", self.tag(now), issued = now)
    }

    /// Whether `nonce` was issued here less than [`NONCE_LIFETIME_SECS`] before `now`.
    pub fn check(&self, nonce: &str, now: u64) -> bool {
        let (Some(ts), Some(tag)) = (nonce.get(..16), nonce.get(16..)) else {
            return false;
        };
        let Ok(issued) = u64::from_str_radix(ts, 16) else {
            return false;
        };
        issued <= now.saturating_add(5)
            && now.saturating_sub(issued) < NONCE_LIFETIME_SECS
            && same(tag.as_bytes(), self.tag(issued).as_bytes())
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn challenge(&self, realm: &str, now: u64) -> String {
        format!(
            "Digest realm=\"{realm}\", nonce=\"{}\", qop=\"auth\", algorithm=MD5",
            self.issue(now)
        )
    }

    /// Checks an `Authorization` header for `method` on `uri` against `user:password`.
    pub fn verify(
        &self,
        header: &str,
        method: &str,
        uri: &str,
        account: Account,
        now: u64,
    ) -> Result<(), DigestError> {
        let Account {
            realm,
            user,
            password,
        } = account;
        let p = parse_params(header)?;
        let get = |k: &'static str| param(&p, k).ok_or(DigestError::Missing(k));
        if let Some(a) = param(&p, "algorithm") {
            if !a.eq_ignore_ascii_case("md5") {
                return Err(DigestError::Algorithm(a.to_string()));
            }
        }
        let nonce = get("nonce")?;
        let their_uri = get("uri")?;
        // The request line's target, query included, is what the client signed.
        if their_uri != uri {
            return Err(DigestError::Uri {
                got: their_uri.to_string(),
                want: uri.to_string(),
            });
        }
        if get("realm")? != realm {
            return Err(DigestError::Realm);
        }
        if !self.check(nonce, now) {
            return Err(DigestError::Nonce);
        }
        let ha1 = md5_hex(&[user, realm, password]);
        let ha2 = md5_hex(&[method, uri]);
        let want = match param(&p, "qop") {
            None => md5_hex(&[&ha1, nonce, &ha2]),
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                md5_hex(&[&ha1, nonce, get("nc")?, get("cnonce")?, "auth", &ha2])
            }
            Some(q) => return Err(DigestError::Qop(q.to_string())),
        };
        let user_ok = same(get("username")?.as_bytes(), user.as_bytes());
        let response_ok = same(get("response")?.as_bytes(), want.as_bytes());
        if user_ok && response_ok {
            Ok(())
        } else {
            Err(DigestError::Credentials)
        }
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Client side: the `Authorization` value answering `challenge` (a `WWW-Authenticate`
/// value) for `method` on `uri`. `cnonce` should be fresh per request; `nc` counts the
/// requests made with this server nonce, from 1.
pub fn authorization(
    challenge: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, DigestError> {
    let p = parse_params(challenge)?;
    let realm = param(&p, "realm").ok_or(DigestError::Missing("realm"))?;
    let nonce = param(&p, "nonce").ok_or(DigestError::Missing("nonce"))?;
    if let Some(a) = param(&p, "algorithm") {
        if !a.eq_ignore_ascii_case("md5") {
            return Err(DigestError::Algorithm(a.to_string()));
        }
    }
    let qop_auth =
        param(&p, "qop").map(|q| q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth")));
    let ha1 = md5_hex(&[user, realm, password]);
    let ha2 = md5_hex(&[method, uri]);
    let nc = format!("{nc:08x}");
    let mut out =
        format!("Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\"");
    match qop_auth {
        Some(true) => {
            let response = md5_hex(&[&ha1, nonce, &nc, cnonce, "auth", &ha2]);
            out.push_str(&format!(
                ", qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{response}\""
            ));
        }
        Some(false) => return Err(DigestError::Qop(param(&p, "qop").unwrap_or("").to_string())),
        None => {
            let response = md5_hex(&[&ha1, nonce, &ha2]);
            out.push_str(&format!(", response=\"{response}\""));
        }
    }
    if let Some(opaque) = param(&p, "opaque") {
        out.push_str(&format!(", opaque=\"{opaque}\""));
    }
    out.push_str(", algorithm=MD5");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example_response() {
        // RFC 2617 section 3.5's worked example.
        let challenge = r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let a = authorization(
            challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        )
        .unwrap();
        assert!(
            a.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{a}"
        );
    }

    #[test]
    fn issued_nonces_verify_and_everything_else_is_refused() {
        let n = Nonces::new([7; 16]);
        let now = 1_700_000_000;
        let challenge = n.challenge(ANTMINER_REALM, now);
        let uri = "/cgi-bin/summary.cgi";
        let auth = authorization(&challenge, "GET", uri, "root", "pw", "abc", 1).unwrap();
        let verify = |h: &str, pw: &str, at: u64| {
            let account = Account {
                realm: ANTMINER_REALM,
                user: "root",
                password: pw,
            };
            n.verify(h, "GET", uri, account, at)
        };
        assert_eq!(verify(&auth, "pw", now + 10), Ok(()));
        assert_eq!(verify(&auth, "other", now), Err(DigestError::Credentials));
        assert_eq!(verify(&auth, "pw", now + 301), Err(DigestError::Nonce));
        let other = Nonces::new([8; 16]);
        assert!(!other.check(&n.issue(now), now));
        assert_eq!(
            verify("Basic cm9vdDpwdw==", "pw", now),
            Err(DigestError::NotDigest)
        );
        let wrong_uri = auth.replace(uri, "/cgi-bin/stats.cgi");
        assert!(matches!(
            verify(&wrong_uri, "pw", now),
            Err(DigestError::Uri { .. })
        ));
        assert_eq!(
            verify("Digest username=\"root\"", "pw", now),
            Err(DigestError::Missing("nonce"))
        );
    }

    #[test]
    fn params_parse_quotes_and_escapes() {
        let p = parse_params(r#"Digest realm="a, \"b\"", nonce=xyz ,qop="auth""#).unwrap();
        assert_eq!(param(&p, "realm"), Some("a, \"b\""));
        assert_eq!(param(&p, "nonce"), Some("xyz"));
        assert_eq!(param(&p, "qop"), Some("auth"));
    }
}
