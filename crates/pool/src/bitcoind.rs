//! The operator's own bitcoind over JSON-RPC: `getblocktemplate` (segwit rules),
//! `getbestblockhash` (polled for new tips), `submitblock`, `getblockchaininfo`.

use std::path::PathBuf;
use std::time::Duration;

use bitcoin::{consensus, Block, BlockHash, Network};
use serde_json::{json, Value};

use crate::template::{SourceError, SourceFuture, Template, TemplateSource};

/// How to authenticate to bitcoind.
#[derive(Clone, Debug)]
pub enum RpcAuth {
    UserPass {
        user: String,
        password: String,
    },
    /// bitcoind's `.cookie` file, re-read for every call (bitcoind rewrites it when it restarts).
    Cookie(PathBuf),
    None,
}

/// A bitcoind JSON-RPC client.
pub struct Bitcoind {
    url: String,
    auth: RpcAuth,
    client: reqwest::Client,
    network: Network,
}

impl Bitcoind {
    /// Connects and learns which chain the node is on.
    pub async fn connect(url: &str, auth: RpcAuth) -> Result<Bitcoind, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SourceError::Unreachable {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let mut b = Bitcoind {
            url: url.to_string(),
            auth,
            client,
            network: Network::Bitcoin,
        };
        let info = b.call("getblockchaininfo", json!([])).await?;
        b.network = match info["chain"].as_str() {
            Some("main") => Network::Bitcoin,
            Some("test") => Network::Testnet,
            Some("testnet4") => Network::Testnet4,
            Some("signet") => Network::Signet,
            Some("regtest") => Network::Regtest,
            other => {
                return Err(SourceError::Malformed {
                    method: "getblockchaininfo".into(),
                    reason: format!("unknown chain {other:?}"),
                })
            }
        };
        Ok(b)
    }

    fn credentials(&self) -> Result<Option<(String, String)>, SourceError> {
        match &self.auth {
            RpcAuth::UserPass { user, password } => Ok(Some((user.clone(), password.clone()))),
            RpcAuth::Cookie(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| SourceError::Unreachable {
                    url: self.url.clone(),
                    reason: format!("cannot read cookie file {}: {e}", path.display()),
                })?;
                let (user, password) = text
                    .trim()
                    .split_once(':')
                    .ok_or(SourceError::Unauthorized)?;
                Ok(Some((user.to_string(), password.to_string())))
            }
            RpcAuth::None => Ok(None),
        }
    }

    /// One JSON-RPC call; bitcoind's errors become typed ones.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, SourceError> {
        let body = json!({"jsonrpc": "1.0", "id": "hashforge", "method": method, "params": params});
        let mut req = self.client.post(&self.url).json(&body);
        if let Some((user, password)) = self.credentials()? {
            req = req.basic_auth(user, Some(password));
        }
        let unreachable = |e: reqwest::Error| SourceError::Unreachable {
            url: self.url.clone(),
            reason: e.to_string(),
        };
        let resp = req.send().await.map_err(unreachable)?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED
            || resp.status() == reqwest::StatusCode::FORBIDDEN
        {
            return Err(SourceError::Unauthorized);
        }
        let status = resp.status();
        let v: Value = resp.json().await.map_err(|e| SourceError::Malformed {
            method: method.to_string(),
            reason: format!("HTTP {status}: {e}"),
        })?;
        match &v["error"] {
            Value::Null => Ok(v["result"].clone()),
            err => {
                let code = err["code"].as_i64().unwrap_or(0);
                // -10: in initial block download; -9: not connected to peers.
                if code == -10 || code == -9 {
                    return Err(SourceError::Syncing);
                }
                Err(SourceError::Rpc {
                    method: method.to_string(),
                    code,
                    message: err["message"].as_str().unwrap_or_default().to_string(),
                })
            }
        }
    }
}

impl TemplateSource for Bitcoind {
    fn describe(&self) -> String {
        format!("bitcoind at {} ({})", self.url, self.network)
    }
    fn network(&self) -> Network {
        self.network
    }
    fn template(&self) -> SourceFuture<'_, Template> {
        Box::pin(async move {
            let v = self
                .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
                .await?;
            Template::from_gbt(&v)
        })
    }
    fn best_block(&self) -> SourceFuture<'_, BlockHash> {
        Box::pin(async move {
            let v = self.call("getbestblockhash", json!([])).await?;
            v.as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| SourceError::Malformed {
                    method: "getbestblockhash".into(),
                    reason: format!("not a block hash: {v}"),
                })
        })
    }
    fn submit_block<'a>(&'a self, block: &'a Block) -> SourceFuture<'a, ()> {
        Box::pin(async move {
            match self
                .call(
                    "submitblock",
                    json!([consensus::encode::serialize_hex(block)]),
                )
                .await?
            {
                Value::Null => Ok(()),
                Value::String(reason) => Err(SourceError::Rejected(reason)),
                other => Err(SourceError::Rejected(other.to_string())),
            }
        })
    }
}
