//! The pool's authority key: the key pair whose public half miners pin (the `authority_pubkey`
//! in a `stratum2+tcp://host:port/<authority_pubkey>` URL) and whose secret half signs the
//! certificate of every connection's Noise static key.
//!
//! Both halves are written in SRI's base58-check forms (`key_utils`): the public key as
//! version 1 + x-only key, the secret key as its 32 bytes. Reading and writing the file is
//! the pool's job; this module only converts.

use std::fmt;
use std::str::FromStr;

use key_utils::{Secp256k1PublicKey, Secp256k1SecretKey};
use secp256k1::{Keypair, Secp256k1, SecretKey, XOnlyPublicKey};

/// Why a key could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "`{text}` is not an SV2 authority public key (base58-check, version 1, x-only): {reason}"
    )]
    Public { text: String, reason: String },
    #[error("not an SV2 authority secret key (base58-check of 32 bytes): {0}")]
    Secret(String),
    #[error("32 random bytes that are no secp256k1 secret key (retry with others)")]
    Entropy,
}

/// An authority public key (x-only, 32 bytes), as miners configure it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorityPublicKey(pub [u8; 32]);

impl FromStr for AuthorityPublicKey {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, KeyError> {
        let key = Secp256k1PublicKey::from_str(text).map_err(|e| KeyError::Public {
            text: text.to_string(),
            reason: e.to_string(),
        })?;
        Ok(AuthorityPublicKey(key.into_bytes()))
    }
}

impl fmt::Display for AuthorityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match XOnlyPublicKey::from_slice(&self.0) {
            Ok(key) => write!(f, "{}", Secp256k1PublicKey(key)),
            // Only reachable through the public field; say what it holds rather than panic.
            Err(_) => write!(f, "invalid-key:{}", hex_string(&self.0)),
        }
    }
}

impl fmt::Debug for AuthorityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityPublicKey({self})")
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The pool's authority key pair.
#[derive(Clone)]
pub struct AuthorityKeypair {
    secret: [u8; 32],
    public: AuthorityPublicKey,
}

impl fmt::Debug for AuthorityKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        write!(f, "AuthorityKeypair({})", self.public)
    }
}

impl AuthorityKeypair {
    /// A key pair from 32 random bytes (the caller's entropy: the pool's OS random source).
    pub fn from_entropy(bytes: [u8; 32]) -> Result<AuthorityKeypair, KeyError> {
        let secret = SecretKey::from_slice(&bytes).map_err(|_| KeyError::Entropy)?;
        Ok(Self::from_secret(secret))
    }

    /// A fresh key pair from the operating system's randomness.
    pub fn generate() -> AuthorityKeypair {
        loop {
            if let Ok(pair) = Self::from_entropy(crate::random_seed()) {
                return pair;
            }
        }
    }

    fn from_secret(secret: SecretKey) -> AuthorityKeypair {
        let secp = Secp256k1::signing_only();
        let (public, _) = Keypair::from_secret_key(&secp, &secret).x_only_public_key();
        AuthorityKeypair {
            secret: secret.secret_bytes(),
            public: AuthorityPublicKey(public.serialize()),
        }
    }

    /// Reads the secret key's text form (as [`AuthorityKeypair::secret_text`] writes it).
    pub fn from_secret_text(text: &str) -> Result<AuthorityKeypair, KeyError> {
        let key = Secp256k1SecretKey::from_str(text.trim())
            .map_err(|e| KeyError::Secret(e.to_string()))?;
        Ok(Self::from_secret(key.0))
    }

    /// The secret key in SRI's base58-check form (what a pool's key file holds).
    pub fn secret_text(&self) -> String {
        match SecretKey::from_slice(&self.secret) {
            Ok(s) => Secp256k1SecretKey(s).to_string(),
            Err(_) => String::new(),
        }
    }

    pub fn public(&self) -> AuthorityPublicKey {
        self.public
    }

    pub(crate) fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SRI's own example pair (codec_sv2's `encrypted` example and the pool configs).
    const SRI_PUBLIC: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";
    const SRI_SECRET: &str = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n";

    #[test]
    fn sri_example_pair_reads_and_matches() {
        let pair = AuthorityKeypair::from_secret_text(SRI_SECRET).unwrap();
        assert_eq!(pair.public().to_string(), SRI_PUBLIC);
        assert_eq!(pair.secret_text(), SRI_SECRET);
        let public: AuthorityPublicKey = SRI_PUBLIC.parse().unwrap();
        assert_eq!(public, pair.public());
    }

    #[test]
    fn bad_public_keys_are_typed_errors() {
        for bad in [
            "",
            "hello",
            "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH73",
        ] {
            assert!(matches!(
                bad.parse::<AuthorityPublicKey>(),
                Err(KeyError::Public { .. })
            ));
        }
        assert!(AuthorityKeypair::from_secret_text("x").is_err());
        assert_eq!(
            AuthorityKeypair::from_entropy([0; 32]).unwrap_err(),
            KeyError::Entropy
        );
    }
}
