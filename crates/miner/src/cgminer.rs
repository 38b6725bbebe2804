//! The cgminer API on TCP (default port 4028): the listener and the privileged commands.
//! What the replies hold is the `minerapi` crate's: stock Antminer's shapes
//! ([`hashforge_minerapi::bmminer`]) rendered from the miner's [`MinerStatus`], the same
//! function the simulated fleet answers with.
//!
//! Requests: JSON `{"command":"summary","parameter":""}` or plain `summary|param`; several
//! commands joined with `+`. One request per connection, as in cgminer.
//!
//! Privileged commands (`switchpool`, `enablepool`, `disablepool`, `addpool`,
//! `removepool`, `restart`, `quit`, `save`, and hashforge's `fault`, `powertarget`,
//! `sleep` and `wake`) are refused unless the request carries the configured write token
//! (JSON field `"token"`) or comes from an allowed address. Stock firmware leaves them open
//! to anyone; hashforge does not.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hashforge_asic::Fault;
use hashforge_minerapi::bmminer;
use hashforge_minerapi::cgminer::{
    request_complete, steps, Request as ApiRequest, Step, Write, MAX_REQUEST,
};
use hashforge_minerapi::MinerStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::config::PoolConfig;
use crate::miner::{Request, Shared};
use crate::snapshot::{unix_now, Snapshot};

/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;

fn may_write(shared: &Shared, peer: IpAddr, token: Option<&str>) -> bool {
    let by_token = matches!((&shared.api.write_token, token), (Some(want), Some(got)) if !want.is_empty() && want == got);
    by_token || shared.api.allow_write.contains(&peer)
}

/// The miner's status now, as fleet contracts render it.
pub(crate) fn status_now(shared: &Shared) -> MinerStatus {
    Snapshot::of(shared).status(&shared.identity, unix_now())
}

/// Answers a whole request (what is written back, without the NUL).
pub(crate) async fn answer(shared: &Shared, peer: IpAddr, bytes: &[u8]) -> String {
    let status = status_now(shared);
    let at = bmminer::stamp(&status);
    let req = match ApiRequest::parse(bytes, at) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let write = may_write(shared, peer, req.token.as_deref());
    let mut replies = Vec::with_capacity(req.commands.len());
    for step in steps(&req, write, at) {
        replies.push(match step {
            Step::Read(cmd) => bmminer::read_command(&cmd, &status),
            Step::Done(reply) => reply,
            Step::Write(w) => {
                let outcome = carry_out(shared, &w).await;
                w.reply(outcome, at)
            }
        });
    }
    req.join(&replies)
}

/// Carries out a privileged command through the manager.
async fn carry_out(shared: &Shared, w: &Write) -> Result<String, String> {
    match w {
        Write::SwitchPool(i) => shared.request(Request::SwitchPool(*i)).await,
        Write::EnablePool(i) => shared.request(Request::EnablePool(*i)).await,
        Write::DisablePool(i) => shared.request(Request::DisablePool(*i)).await,
        Write::RemovePool(i) => shared.request(Request::RemovePool(*i)).await,
        Write::AddPool {
            url,
            user,
            password,
        } => {
            let url = url
                .parse()
                .map_err(|e: crate::config::ConfigError| e.to_string())?;
            shared
                .request(Request::AddPool(PoolConfig {
                    url,
                    user: user.clone(),
                    password: password.clone(),
                }))
                .await
        }
        Write::Restart => shared.request(Request::Restart).await,
        Write::Fault {
            device,
            chain,
            fault,
        } => {
            let fault: Fault = fault
                .parse()
                .map_err(|e: hashforge_asic::FaultSpecError| format!("{e} ({})", Fault::SYNTAX))?;
            shared
                .request(Request::InjectFault(*device, *chain, fault))
                .await
        }
        Write::Quit => {
            shared.request_quit();
            Ok("BYE".into())
        }
        Write::Save => {
            Err("Saving is not supported: edit the miner's TOML configuration file".into())
        }
        Write::Privileged => Ok("Privileged access OK".into()),
        Write::PowerTarget(watts) => shared.request(Request::PowerTarget(*watts)).await,
        Write::Sleep => shared.request(Request::Sleep).await,
        Write::Wake => shared.request(Request::Wake).await,
    }
}

/// Serves the API until shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, as the pool's
                        // listener does, instead of spinning on the error.
                        tracing::warn!("cgminer API: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    // Too many at once: close rather than queue without bound.
                    continue;
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = tokio::time::timeout(Duration::from_secs(10), connection(stream, peer, &shared)).await;
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if request_complete(&buf) || buf.len() >= MAX_REQUEST {
            break;
        }
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let mut reply = answer(shared, peer.ip(), &buf).await.into_bytes();
    reply.push(0);
    stream.write_all(&reply).await?;
    stream.shutdown().await
}
