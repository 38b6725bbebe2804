//! REST (JSON), Prometheus `/metrics` and a status page that needs no JavaScript.
//!
//! - `GET /` the status page (refreshes itself every 5 s with a meta tag)
//! - `GET /api/summary` the whole [`Snapshot`](crate::Snapshot) as JSON
//! - `GET /api/pools`, `GET /api/devices` parts of it
//! - `GET /metrics` Prometheus text format

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use hashforge_metrics::{duration_for_people, Exposition, CONTENT_TYPE};

use hashforge_minerapi::digest::{Account, Nonces, ANTMINER_REALM};
use hashforge_minerapi::{antminer_web, ChainState, ChipHealth};

use crate::cgminer::status_now;
use crate::miner::{Request, Shared};
use crate::snapshot::{short_difficulty, unix_now, Snapshot};

struct Http {
    shared: Arc<Shared>,
    /// The stock Antminer web CGI, when the operator set a web password.
    web: Option<Web>,
}

struct Web {
    password: String,
    nonces: Nonces,
}

/// 16 bytes no one can guess: the process's random SipHash keys, drawn from the OS.
fn random_secret() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 16];
    for half in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(unix_now());
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    web_password: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let web = web_password.map(|password| Web {
        password,
        nonces: Nonces::new(random_secret()),
    });
    let state = Arc::new(Http { shared, web });
    let app = Router::new()
        .route("/", get(page))
        .route("/cgi-bin/{page}", get(cgi).post(cgi))
        .route("/api/summary", get(summary))
        .route("/api/pools", get(pools))
        .route("/api/devices", get(devices))
        .route("/metrics", get(metrics_text))
        .with_state(state);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
}

async fn summary(State(h): State<Arc<Http>>) -> Json<Snapshot> {
    Json(Snapshot::of(&h.shared))
}

async fn pools(State(h): State<Arc<Http>>) -> impl IntoResponse {
    Json(Snapshot::of(&h.shared).pools)
}

async fn devices(State(h): State<Arc<Http>>) -> impl IntoResponse {
    Json(Snapshot::of(&h.shared).devices)
}

async fn metrics_text(State(h): State<Arc<Http>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render_metrics(&Snapshot::of(&h.shared)),
    )
}

/// Prometheus text exposition rendered from one snapshot, so a pool that was removed or
/// moved (switchpool, removepool) leaves no stale series behind.
fn render_metrics(s: &Snapshot) -> String {
    let mut m = Exposition::new();
    m.gauge(
        "hashforge_miner_uptime_seconds",
        "Seconds since the miner started.",
    )
    .value(s.elapsed_secs);
    let mut rate = m.gauge(
        "hashforge_miner_hashrate_hs",
        "Hash rate from found difficulty over a window, H/s.",
    );
    for (w, v) in [
        ("5s", s.hashrate.last_5s),
        ("1m", s.hashrate.last_1m),
        ("15m", s.hashrate.last_15m),
        ("avg", s.hashrate.average),
    ] {
        rate.sample(&[("window", w)], v.as_hs());
    }
    let totals: [(&str, &str, u64); 5] = [
        (
            "hashforge_miner_shares_accepted_total",
            "Shares the pools accepted.",
            s.shares.accepted,
        ),
        (
            "hashforge_miner_shares_rejected_total",
            "Shares the pools refused.",
            s.shares.rejected,
        ),
        (
            "hashforge_miner_shares_stale_total",
            "Shares never sent: their job was stale first.",
            s.shares.stale,
        ),
        (
            "hashforge_miner_shares_lost_total",
            "Shares sent that no verdict came for.",
            s.shares.lost,
        ),
        (
            "hashforge_miner_hardware_errors_total",
            "Nonces that do not meet their ticket or mask.",
            s.hardware_errors,
        ),
    ];
    for (name, help, v) in totals {
        m.counter(name, help).value(v as f64);
    }
    m.gauge(
        "hashforge_miner_shares_in_flight",
        "Shares sent, verdict pending.",
    )
    .value(s.shares.in_flight as f64);
    m.gauge(
        "hashforge_miner_best_share",
        "Best share difficulty since start.",
    )
    .value(s.best_share);
    m.counter(
        "hashforge_miner_found_blocks_total",
        "Accepted shares that met the network target.",
    )
    .value(s.found_blocks as f64);
    if let Some(w) = s.power_w {
        m.gauge(
            "hashforge_miner_power_watts",
            "What the machine draws, W (emulated machines: their power model).",
        )
        .value(w);
    }
    if let Some(w) = s.power_limit_w {
        m.gauge(
            "hashforge_miner_power_limit_watts",
            "The power target in force, W.",
        )
        .value(w);
    }
    m.gauge(
        "hashforge_miner_sleeping",
        "1 while the miner sleeps on an operator's word (no device hashes).",
    )
    .value(f64::from(u8::from(s.sleeping)));
    type PoolValue = fn(&crate::snapshot::PoolSnapshot) -> f64;
    let pool_gauges: [(&str, &str, PoolValue); 3] = [
        (
            "hashforge_miner_pool_up",
            "1 when the pool is alive.",
            |p| f64::from(u8::from(p.status == "Alive")),
        ),
        (
            "hashforge_miner_pool_active",
            "1 for the pool being mined on.",
            |p| f64::from(u8::from(p.active)),
        ),
        (
            "hashforge_miner_pool_difficulty",
            "The pool's share difficulty.",
            |p| p.difficulty,
        ),
    ];
    let pool_counters: [(&str, &str, PoolValue); 4] = [
        (
            "hashforge_miner_pool_accepted_total",
            "Shares the pool accepted.",
            |p| p.shares.accepted as f64,
        ),
        (
            "hashforge_miner_pool_rejected_total",
            "Shares the pool refused.",
            |p| p.shares.rejected as f64,
        ),
        (
            "hashforge_miner_pool_stale_total",
            "Shares for the pool never sent.",
            |p| p.shares.stale as f64,
        ),
        (
            "hashforge_miner_pool_lost_total",
            "Shares sent to the pool that no verdict came for.",
            |p| p.shares.lost as f64,
        ),
    ];
    let pool_family = |family: &mut hashforge_metrics::Family<'_>, value: PoolValue| {
        for p in &s.pools {
            family.sample(&[("pool", &p.index.to_string()), ("url", &p.url)], value(p));
        }
    };
    for (name, help, value) in pool_gauges {
        pool_family(&mut m.gauge(name, help), value);
    }
    for (name, help, value) in pool_counters {
        pool_family(&mut m.counter(name, help), value);
    }
    let mut device_rate = m.gauge(
        "hashforge_miner_device_hashrate_hs",
        "A device's hash rate, H/s.",
    );
    for d in &s.devices {
        device_rate.sample(
            &[("device", &d.index.to_string()), ("window", "5s")],
            d.hashrate.last_5s.as_hs(),
        );
    }
    let mut device_hw = m.counter(
        "hashforge_miner_device_hardware_errors_total",
        "A device's hardware errors.",
    );
    for d in &s.devices {
        device_hw.sample(
            &[("device", &d.index.to_string())],
            d.hardware_errors as f64,
        );
    }
    let chains = || {
        s.devices
            .iter()
            .flat_map(|d| d.chains.iter().map(move |c| (d.index.to_string(), c)))
    };
    let mut chain_rate = m.gauge(
        "hashforge_miner_chain_hashrate_hs",
        "A chain's hash rate over 5 s, H/s.",
    );
    for (dev, c) in chains() {
        chain_rate.sample(
            &[("device", &dev), ("chain", &c.index.to_string())],
            c.hashrate.last_5s.as_hs(),
        );
    }
    let mut chain_clock = m.gauge(
        "hashforge_miner_chain_frequency_mhz",
        "The clock a chain's chips were set to, MHz, where it has one.",
    );
    for (dev, c) in chains() {
        if let Some(f) = c.frequency_mhz {
            chain_clock.sample(&[("device", &dev), ("chain", &c.index.to_string())], f);
        }
    }
    let mut chip_temp = m.gauge(
        "hashforge_miner_chip_temperature_celsius",
        "A chain's hottest chip, where the chain reports one.",
    );
    for (dev, c) in chains() {
        if let Some(t) = c.chip_temp {
            chip_temp.sample(&[("device", &dev), ("chain", &c.index.to_string())], t.0);
        }
    }
    let mut fans = m.gauge(
        "hashforge_miner_fan_rpm",
        "Fan speed, where the device reports it.",
    );
    for d in &s.devices {
        for (i, f) in d.fans_rpm.iter().enumerate() {
            fans.sample(
                &[("device", &d.index.to_string()), ("fan", &i.to_string())],
                f64::from(*f),
            );
        }
    }
    m.finish()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// With a web password, the request must carry a good digest `Authorization`; without
/// one, there is nothing to check. The 401 to send, if it does not.
fn refusal(h: &Http, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    let web = h.web.as_ref()?;
    let now = unix_now();
    let signed = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let account = Account {
        realm: ANTMINER_REALM,
        user: antminer_web::USER,
        password: &web.password,
    };
    let checked = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|a| web.nonces.verify(a, method.as_str(), signed, account, now));
    match checked {
        Some(Ok(())) => None,
        outcome => {
            if let Some(Err(e)) = outcome {
                tracing::debug!("web login refused: {e}");
            }
            Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [(
                        header::WWW_AUTHENTICATE,
                        web.nonces.challenge(ANTMINER_REALM, now),
                    )],
                    "401 Unauthorized",
                )
                    .into_response(),
            )
        }
    }
}

/// `/`: the status page, read-only like `/api/*` and open even with a web password (the
/// CGI behind it can change the miner; this page cannot).
async fn page(State(h): State<Arc<Http>>) -> Response {
    Html(render_page(&Snapshot::of(&h.shared))).into_response()
}

/// `/cgi-bin/NAME.cgi`: stock Antminer's pages, from the same status as the cgminer API.
async fn cgi(
    State(h): State<Arc<Http>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if h.web.is_none() {
        return (
            StatusCode::NOT_FOUND,
            "no web CGI: the miner runs without --web-password",
        )
            .into_response();
    }
    if let Some(refused) = refusal(&h, &method, &uri, &headers) {
        return refused;
    }
    if name == "set_miner_conf.cgi" && method == Method::POST {
        // The curtailment fleet tools send (pyasic's stop_mining / resume_mining): sleep
        // or wake, as the cgminer API's privileged commands do; the rest of the
        // configuration is the miner's own config file's business.
        let answer = match antminer_web::miner_mode(&body) {
            Err(why) => antminer_web::set_conf_refused(&why),
            Ok(mode) => {
                let r = if mode == 1 {
                    Request::Sleep
                } else {
                    Request::Wake
                };
                match h.shared.request(r).await {
                    Ok(_) => antminer_web::SET_CONF_OK.to_owned(),
                    Err(why) => antminer_web::set_conf_refused(&why),
                }
            }
        };
        return (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            answer,
        )
            .into_response();
    }
    let status = status_now(&h.shared);
    match name
        .strip_suffix(".cgi")
        .and_then(|page| antminer_web::render(page, &status))
    {
        Some(body) => Json(body).into_response(),
        None => (StatusCode::NOT_FOUND, "no such page").into_response(),
    }
}

/// The status page: plain HTML and CSS, refreshed by the browser.
pub(crate) fn render_page(s: &Snapshot) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
<title>hashforge miner</title><style>body{{font-family:sans-serif;margin:2em;color:#222}}\
table{{border-collapse:collapse;margin-bottom:1.5em}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}\
th{{background:#f3f3f3}}.chip{{display:inline-block;width:1.4em;text-align:center;margin:1px;border-radius:3px}}\
.ok{{background:#bfe5bf}}.bad{{background:#f2b8b8}}.idle{{background:#ddd}}</style></head><body>\
<h1>hashforge miner</h1><p>{} &middot; hashforge {} &middot; up {}</p>",
        esc(&s.model),
        s.version,
        duration_for_people(s.elapsed_secs)
    );
    let _ = write!(
        o,
        "<table><tr><th>5 s</th><th>1 min</th><th>15 min</th><th>average</th><th>accepted</th>\
<th>rejected</th><th>stale</th><th>HW errors</th><th>best share</th><th>blocks</th></tr>\
<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        s.hashrate.last_5s,
        s.hashrate.last_1m,
        s.hashrate.last_15m,
        s.hashrate.average,
        s.shares.accepted,
        s.shares.rejected,
        s.shares.stale,
        s.hardware_errors,
        short_difficulty(s.best_share),
        s.found_blocks
    );
    let mut power = Vec::new();
    if s.sleeping {
        power.push("<strong>asleep</strong>: no device hashes".to_string());
    }
    if let Some(w) = s.power_w {
        power.push(format!("drawing {w:.0} W (modeled)"));
    }
    if let Some(w) = s.power_limit_w {
        power.push(format!("power target {w} W"));
    }
    if !power.is_empty() {
        let _ = write!(o, "<p>Power: {}.</p>", power.join(" &middot; "));
    }
    let active = s.active_pool.and_then(|i| s.pools.get(i));
    if let Some((nd, share)) = active.and_then(|p| Some((p.network_difficulty?, p.difficulty))) {
        let _ = write!(
            o,
            "<p>Network difficulty {}. Blocks are the accepted shares that also met it.",
            nd.short()
        );
        if nd.as_f64() <= share {
            o.push_str(
                " It is below the pool's share difficulty (a test chain: regtest, or a \
                 testnet's minimum-difficulty blocks), so every accepted share is a block.",
            );
        }
        o.push_str("</p>");
    }
    o.push_str("<h2>Pools</h2><table><tr><th>#</th><th>URL</th><th>user</th><th>status</th><th>active</th><th>difficulty</th><th>accepted</th><th>rejected</th><th>stale</th><th>bad input</th><th>last error</th></tr>");
    for p in &s.pools {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.index,
            esc(&p.url),
            esc(&p.user),
            p.status,
            if p.active { "yes" } else { "" },
            short_difficulty(p.difficulty),
            p.shares.accepted,
            p.shares.rejected,
            p.shares.stale,
            p.bad_input,
            esc(p.last_error.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</table><h2>Devices</h2>");
    for d in &s.devices {
        let _ = write!(
            o,
            "<h3>{} &middot; {} (5 s) &middot; HW errors {}</h3>",
            esc(&d.info.name),
            d.hashrate.last_5s,
            d.hardware_errors
        );
        for c in &d.chains {
            let state = match &c.state {
                ChainState::Starting => "starting".to_string(),
                ChainState::Running => {
                    // Found is the count at enumeration; a chip that died since is still
                    // in it, so say how many of them are failing now.
                    let failing = c.chip_health.iter().filter(|h| !h.is_ok()).count();
                    let found = match c.chips_found {
                        Some(n) => format!(" with {n} of {} chips found", c.expected_chips),
                        None => String::new(),
                    };
                    match failing {
                        0 => format!("running{found}"),
                        n => format!("running{found}, {n} failing"),
                    }
                }
                ChainState::Failed(why) => format!("failed: {}", esc(why)),
            };
            let _ = write!(
                o,
                "<p>chain {} &middot; {state} &middot; {} &middot; clock {} &middot; chip temp {}</p><div>",
                c.index,
                c.hashrate.last_5s,
                c.frequency_mhz.map_or("-".to_string(), |f| format!("{f:.2} MHz")),
                c.chip_temp.map_or("-".to_string(), |t| t.to_string())
            );
            // The same judgement the cgminer API and the fleet console show.
            for (i, chip) in c.chips.iter().enumerate() {
                let (class, what) = match c.chip_health.get(i) {
                    Some(ChipHealth::Ok) => ("ok", "good"),
                    Some(ChipHealth::Bad) => ("bad", "bad nonces"),
                    Some(ChipHealth::Silent) => ("bad", "silent"),
                    None => ("idle", "did not answer"),
                };
                let _ = write!(
                    o,
                    "<span class=\"chip {class}\" title=\"chip {i}: {what}, {} nonces, {} HW errors\">{i}</span>",
                    chip.nonces, chip.hardware_errors
                );
            }
            o.push_str("</div>");
        }
    }
    o.push_str("<p><a href=\"/api/summary\">JSON</a> &middot; <a href=\"/metrics\">metrics</a></p></body></html>");
    o
}
