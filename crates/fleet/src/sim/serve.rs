//! The simulated fleet on the network: one listening socket per port (the cgminer API's
//! 4028, the web's 80) for every miner, bound to the wildcard address but tied to the
//! loopback device (`SO_BINDTODEVICE lo`), so it answers on every 127.x.y.z address and on
//! nothing else. A connection's local address says which miner was asked. 100,000 miners
//! hold two listening descriptors and one per connection being answered.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashforge_minerapi::cgminer::{
    self, request_complete, steps, Request, Step, Write, MAX_REQUEST,
};
use hashforge_minerapi::digest::{Account, Nonces, ANTMINER_REALM};
use hashforge_minerapi::{antminer_web, avalon, axeos, bmminer, btminer, MinerStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use super::model::{Contract, SimFleet};
use crate::http::{read_head, respond, Head};
use crate::unix_now;

/// Connections answered at once (each holds a descriptor): under the 20,000 a process may
/// hold, with room for a console of 1,024 reads in the same process. Fleet tools that probe
/// an address several ways at once (asic-rs opens about six connections per address) need
/// this many at their default concurrency.
const MAX_CONNECTIONS: usize = 16_384;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The ports the fleet answers on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub cgminer: u16,
    pub http: u16,
}

impl Default for Ports {
    fn default() -> Ports {
        Ports {
            cgminer: 4028,
            http: 80,
        }
    }
}

/// Counters a bench reads.
#[derive(Debug, Default)]
pub struct SimCounters {
    pub cgminer_answered: AtomicU64,
    pub http_answered: AtomicU64,
    /// Connections to an address no miner has, or to a miner that is off.
    pub refused: AtomicU64,
}

/// A running simulated fleet.
pub struct Simulator {
    pub fleet: Arc<SimFleet>,
    pub ports: Ports,
    pub counters: Arc<SimCounters>,
    started: Instant,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// Binds `0.0.0.0:port` on the loopback device only.
fn loopback_listener(port: u16) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind_device(Some(b"lo"))?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

impl Simulator {
    /// Starts answering for `fleet` on `ports`.
    pub async fn start(fleet: SimFleet, ports: Ports) -> std::io::Result<Simulator> {
        let fleet = Arc::new(fleet);
        let cg = loopback_listener(ports.cgminer).map_err(|e| annotate(e, ports.cgminer))?;
        let web = loopback_listener(ports.http).map_err(|e| annotate(e, ports.http))?;
        let (stop, stop_rx) = watch::channel(false);
        let counters = Arc::new(SimCounters::default());
        // A head start puts every machine that far into its life (warmed up, for benches).
        let now = Instant::now();
        let started = now
            .checked_sub(Duration::from_secs_f64(fleet.spec.head_start_secs.max(0.0)))
            .unwrap_or(now);
        let nonces = Arc::new(Nonces::new(secret(fleet.spec.seed)));
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let shared = Arc::new(Shared {
            fleet: Arc::clone(&fleet),
            counters: Arc::clone(&counters),
            started,
            nonces,
        });
        let tasks = vec![
            tokio::spawn(accept_loop(
                cg,
                Arc::clone(&shared),
                Arc::clone(&permits),
                stop_rx.clone(),
                true,
            )),
            tokio::spawn(accept_loop(web, shared, permits, stop_rx, false)),
        ];
        Ok(Simulator {
            fleet,
            ports,
            counters,
            started,
            tasks,
            stop,
        })
    }

    /// Seconds since the simulation started (the time faults are injected at).
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn annotate(e: std::io::Error, port: u16) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("cannot listen on port {port} of the loopback device: {e} (another process on it? port 80 needs root or net.ipv4.ip_unprivileged_port_start <= 80)"),
    )
}

/// Nonce secret for the fleet's web servers: derived from the seed (a simulation needs no
/// secrecy, and a rerun should behave the same).
fn secret(seed: u64) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..].copy_from_slice(&(!seed).to_le_bytes());
    s
}

struct Shared {
    fleet: Arc<SimFleet>,
    counters: Arc<SimCounters>,
    started: Instant,
    nonces: Arc<Nonces>,
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    cgminer: bool,
) {
    loop {
        // Take a permit first: past the limit, connections wait in the kernel's backlog.
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stop.changed() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("simulator: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(READ_TIMEOUT * 2, serve(stream, &shared, cgminer)).await;
        });
    }
}

async fn serve(mut stream: TcpStream, shared: &Shared, cgminer: bool) -> std::io::Result<()> {
    let local = match stream.local_addr()? {
        SocketAddr::V4(a) => *a.ip(),
        SocketAddr::V6(_) => return Ok(()),
    };
    let Some(index) = shared.fleet.index_of(local) else {
        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    };
    let t = shared.started.elapsed().as_secs_f64();
    let now = unix_now();
    let Some(status) = shared.fleet.status(index, t, now) else {
        // Off (rebooting): the connection closes unanswered.
        shared.counters.refused.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    };
    let contract = shared.fleet.kind(index).contract();
    if cgminer {
        if contract == Contract::AxeOs {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match tokio::time::timeout(READ_TIMEOUT, stream.read(&mut chunk)).await {
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
        let answer = cgminer_answer(shared, index, contract, &buf, &status);
        let mut out = answer.into_bytes();
        out.push(0);
        stream.write_all(&out).await?;
        shared
            .counters
            .cgminer_answered
            .fetch_add(1, Ordering::Relaxed);
        return stream.shutdown().await;
    }
    let Some(head) = read_head(&mut stream, READ_TIMEOUT).await? else {
        return Ok(());
    };
    let (code, headers, content_type, body) = match contract {
        Contract::AxeOs => match axeos::render(&head.path, &status) {
            Some((ct, body)) => (200, Vec::new(), ct, body),
            None => (404, Vec::new(), "text/plain", "not found".into()),
        },
        Contract::Bmminer => antminer_page(shared, index, &head, &status),
        // Their web interfaces are not simulated: the connection closes unanswered.
        Contract::Btminer | Contract::Avalon => {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    };
    respond(&mut stream, code, &headers, content_type, body.as_bytes()).await?;
    shared
        .counters
        .http_answered
        .fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The cgminer API's answer to `request` as the miner's firmware gives it. Stock firmware
/// grants writes to anyone, but the simulator carries none out; btminer refuses them
/// without the admin password's token; a hashforge machine takes them with the farm's
/// token, and carries out the power ones (`powertarget`, `sleep`, `wake`).
fn cgminer_answer(
    shared: &Shared,
    index: u32,
    contract: Contract,
    request: &[u8],
    status: &MinerStatus,
) -> String {
    let hashforge = shared.fleet.kind(index) == super::Kind::Hashforge;
    // Stock firmware says nothing of sleep in its cgminer API.
    let stock_view;
    let status = if hashforge || status.sleeping.is_none() {
        status
    } else {
        stock_view = MinerStatus {
            sleeping: None,
            ..status.clone()
        };
        &stock_view
    };
    let at = match contract {
        Contract::Btminer => cgminer::Stamp {
            when: status.when,
            description: btminer::CGMINER_DESCRIPTION,
        },
        Contract::Avalon => cgminer::Stamp {
            when: status.when,
            description: avalon::DESCRIPTION,
        },
        _ => bmminer::stamp(status),
    };
    let req = match Request::parse(request, at) {
        Err(reply) => return reply,
        Ok(req) => req,
    };
    if contract == Contract::Btminer {
        return btminer::respond(&req, status);
    }
    let open = shared.fleet.api_open(index)
        || (hashforge && req.token.as_deref() == Some(shared.fleet.spec.api_token.as_str()));
    let replies: Vec<cgminer::Reply> = steps(&req, open, at)
        .into_iter()
        .map(|s| match s {
            Step::Read(cmd) if contract == Contract::Avalon => avalon::read_command(&cmd, status),
            Step::Read(cmd) => bmminer::read_command(&cmd, status),
            Step::Done(r) => r,
            Step::Write(w @ Write::Privileged) => w.reply(Ok("Privileged access OK".into()), at),
            Step::Write(w @ (Write::PowerTarget(_) | Write::Sleep | Write::Wake)) if hashforge => {
                let msg = match &w {
                    Write::PowerTarget(Some(watts)) => {
                        let watts = *watts;
                        shared.fleet.set_power(index, |p| p.target = Some(watts));
                        format!("power target {watts:.0} W")
                    }
                    Write::PowerTarget(None) => {
                        shared.fleet.set_power(index, |p| p.target = None);
                        "power target cleared".into()
                    }
                    Write::Sleep => {
                        shared.fleet.set_power(index, |p| p.sleep = true);
                        "sleeping".into()
                    }
                    _ => {
                        shared.fleet.set_power(index, |p| p.sleep = false);
                        "awake".into()
                    }
                };
                w.reply(Ok(msg), at)
            }
            Step::Write(w) => w.reply(Err("not done by the simulator".into()), at),
        })
        .collect();
    req.join(&replies)
}

type Page = (u16, Vec<(&'static str, String)>, &'static str, String);

fn antminer_page(
    shared: &Shared,
    index: u32,
    head: &Head,
    status: &hashforge_minerapi::MinerStatus,
) -> Page {
    let now = unix_now();
    let account = Account {
        realm: ANTMINER_REALM,
        user: antminer_web::USER,
        password: shared.fleet.web_password(index),
    };
    let authorized = head.authorization.as_deref().is_some_and(|a| {
        shared
            .nonces
            .verify(a, &head.method, &head.path, account, now)
            .is_ok()
    });
    if !authorized {
        let challenge = shared.nonces.challenge(ANTMINER_REALM, now);
        return (
            401,
            vec![("WWW-Authenticate", challenge)],
            "text/plain",
            "401 Unauthorized".into(),
        );
    }
    if head.path == "/" {
        return (
            200,
            Vec::new(),
            "text/html",
            "<!doctype html><title>Antminer</title>".into(),
        );
    }
    if antminer_web::page_of(&head.path) == Some("set_miner_conf") {
        // Stock firmware's configuration write: the simulator carries out `miner-mode`
        // (0 normal, 1 sleep), what fleet tools send to curtail.
        return match antminer_web::miner_mode(&head.body) {
            Ok(m) => {
                shared.fleet.set_power(index, |p| p.sleep = m == 1);
                (
                    200,
                    Vec::new(),
                    "application/json",
                    antminer_web::SET_CONF_OK.into(),
                )
            }
            Err(why) => (
                200,
                Vec::new(),
                "application/json",
                antminer_web::set_conf_refused(&why),
            ),
        };
    }
    match antminer_web::page_of(&head.path).and_then(|p| antminer_web::render(p, status)) {
        Some(v) => (200, Vec::new(), "application/json", v.to_string()),
        None => (404, Vec::new(), "text/plain", "not found".into()),
    }
}
