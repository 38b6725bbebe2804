//! REST (JSON), Prometheus `/metrics` and a status page that needs no JavaScript.
//!
//! - `GET /` the status page (refreshes itself every 5 s with a meta tag)
//! - `GET /api/summary` the whole [`Snapshot`](crate::Snapshot) as JSON
//! - `GET /api/pools`, `GET /api/devices` parts of it
//! - `GET /metrics` Prometheus text format

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::miner::{Shared, Snapshot};

struct Http {
    shared: Arc<Shared>,
}

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let state = Arc::new(Http { shared });
    let app = Router::new()
        .route("/", get(page))
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
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(&Snapshot::of(&h.shared)),
    )
}

/// Prometheus text exposition rendered from one snapshot, so a pool that was removed or
/// moved (switchpool, removepool) leaves no stale series behind.
fn render_metrics(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut family = |name: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let label = |pairs: &[(&str, &str)]| -> String {
        if pairs.is_empty() {
            return String::new();
        }
        let inner: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        format!("{{{}}}", inner.join(","))
    };
    let one = |v: f64| vec![(String::new(), v)];
    family("hashforge_miner_uptime_seconds", &one(s.elapsed_secs));
    let windows = [
        ("5s", s.hashrate.last_5s),
        ("1m", s.hashrate.last_1m),
        ("15m", s.hashrate.last_15m),
        ("avg", s.hashrate.average),
    ];
    family(
        "hashforge_miner_hashrate_hs",
        &windows.map(|(w, v)| (label(&[("window", w)]), v.as_hs())),
    );
    family(
        "hashforge_miner_shares_accepted",
        &one(s.shares.accepted as f64),
    );
    family(
        "hashforge_miner_shares_rejected",
        &one(s.shares.rejected as f64),
    );
    family("hashforge_miner_shares_stale", &one(s.shares.stale as f64));
    family("hashforge_miner_shares_lost", &one(s.shares.lost as f64));
    family(
        "hashforge_miner_shares_in_flight",
        &one(s.shares.in_flight as f64),
    );
    family(
        "hashforge_miner_hardware_errors",
        &one(s.hardware_errors as f64),
    );
    family("hashforge_miner_best_share", &one(s.best_share));
    family("hashforge_miner_found_blocks", &one(s.found_blocks as f64));
    type PoolValue = fn(&crate::miner::PoolSnapshot) -> f64;
    let pool_gauges: [(&str, PoolValue); 7] = [
        ("hashforge_miner_pool_up", |p| {
            f64::from(u8::from(p.status == "Alive"))
        }),
        ("hashforge_miner_pool_active", |p| {
            f64::from(u8::from(p.active))
        }),
        ("hashforge_miner_pool_accepted", |p| {
            p.shares.accepted as f64
        }),
        ("hashforge_miner_pool_rejected", |p| {
            p.shares.rejected as f64
        }),
        ("hashforge_miner_pool_stale", |p| p.shares.stale as f64),
        ("hashforge_miner_pool_lost", |p| p.shares.lost as f64),
        ("hashforge_miner_pool_difficulty", |p| p.difficulty),
    ];
    for (name, value) in pool_gauges {
        let samples: Vec<(String, f64)> = s
            .pools
            .iter()
            .map(|p| {
                (
                    label(&[("pool", &p.index.to_string()), ("url", &p.url)]),
                    value(p),
                )
            })
            .collect();
        family(name, &samples);
    }
    let mut device_rate = Vec::new();
    let mut device_hw = Vec::new();
    let mut chain_rate = Vec::new();
    let mut chip_temp = Vec::new();
    let mut fans = Vec::new();
    for d in &s.devices {
        let dev = d.index.to_string();
        device_rate.push((
            label(&[("device", &dev), ("window", "5s")]),
            d.hashrate.last_5s.as_hs(),
        ));
        device_hw.push((label(&[("device", &dev)]), d.hardware_errors as f64));
        for c in &d.chains {
            let chain = c.index.to_string();
            chain_rate.push((
                label(&[("device", &dev), ("chain", &chain)]),
                c.hashrate.last_5s.as_hs(),
            ));
            if let Some(t) = c.chip_temp {
                chip_temp.push((label(&[("device", &dev), ("chain", &chain)]), t));
            }
        }
        for (i, f) in d.fans_rpm.iter().enumerate() {
            fans.push((
                label(&[("device", &dev), ("fan", &i.to_string())]),
                f64::from(*f),
            ));
        }
    }
    family("hashforge_miner_device_hashrate_hs", &device_rate);
    family("hashforge_miner_device_hardware_errors", &device_hw);
    family("hashforge_miner_chain_hashrate_hs", &chain_rate);
    family("hashforge_miner_chip_temperature_celsius", &chip_temp);
    family("hashforge_miner_fan_rpm", &fans);
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn page(State(h): State<Arc<Http>>) -> Html<String> {
    Html(render_page(&Snapshot::of(&h.shared)))
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
<h1>hashforge miner</h1><p>{} &middot; hashforge {} &middot; up {:.0} s</p>",
        esc(&s.model),
        s.version,
        s.elapsed_secs
    );
    let _ = write!(
        o,
        "<table><tr><th>5 s</th><th>1 min</th><th>15 min</th><th>average</th><th>accepted</th>\
<th>rejected</th><th>stale</th><th>HW errors</th><th>best share</th><th>blocks</th></tr>\
<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td></tr></table>",
        s.hashrate.last_5s,
        s.hashrate.last_1m,
        s.hashrate.last_15m,
        s.hashrate.average,
        s.shares.accepted,
        s.shares.rejected,
        s.shares.stale,
        s.hardware_errors,
        s.best_share,
        s.found_blocks
    );
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
            p.difficulty,
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
            let _ = write!(
                o,
                "<p>chain {} &middot; {} &middot; chip temp {}</p><div>",
                c.index,
                c.hashrate.last_5s,
                c.chip_temp
                    .map_or("-".to_string(), |t| format!("{t:.1} &deg;C"))
            );
            for (i, chip) in c.chips.iter().enumerate() {
                let class = if chip.hardware_errors > 0 {
                    "bad"
                } else if chip.nonces > 0 {
                    "ok"
                } else {
                    "idle"
                };
                let _ = write!(
                    o,
                    "<span class=\"chip {class}\" title=\"chip {i}: {} nonces, {} HW errors\">{i}</span>",
                    chip.nonces, chip.hardware_errors
                );
            }
            o.push_str("</div>");
        }
    }
    o.push_str("<p><a href=\"/api/summary\">JSON</a> &middot; <a href=\"/metrics\">metrics</a></p></body></html>");
    o
}
