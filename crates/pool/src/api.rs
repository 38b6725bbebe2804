//! The HTTP API (JSON), Prometheus `/metrics`, and a small status page.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use hashforge_metrics::{duration_for_people, Exposition, CONTENT_TYPE};

use crate::stats::Protocol;
use crate::Shared;

pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/", get(page))
        .route("/api/pool", get(pool))
        .route("/api/workers", get(workers))
        .route("/api/blocks", get(blocks))
        .route("/api/payouts", get(payouts))
        .route("/metrics", get(metrics))
        .with_state(shared);
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!("HTTP API stopped: {e}");
    }
}

fn pool_json(s: &Shared) -> Value {
    let live = s.stats.pool();
    let template = s.jobs.template();
    json!({
        "source": s.source.describe(),
        "network": s.network.to_string(),
        "source_status": s.status(),
        "height": template.as_ref().map(|t| t.height),
        "network_difficulty": template.as_ref().and_then(|t| t.network_difficulty()),
        "solo": s.config.solo,
        "uptime_secs": live.uptime_secs as u64,
        "live": live,
    })
}

async fn pool(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(pool_json(&s))
}

async fn workers(State(s): State<Arc<Shared>>) -> Response {
    let since = crate::now_ms() - 10 * 60 * 1000;
    match s.ledger.workers(since).await {
        Ok(recorded) => {
            Json(json!({"live": s.stats.workers(), "last_10_minutes": recorded})).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("ledger: {e}")).into_response(),
    }
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<u32>,
}

async fn blocks(State(s): State<Arc<Shared>>, Query(q): Query<Limit>) -> Response {
    match s.ledger.blocks(q.limit.unwrap_or(100).min(10_000)).await {
        Ok(b) => Json(json!(b)).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("ledger: {e}")).into_response(),
    }
}

async fn payouts(State(s): State<Arc<Shared>>, Query(q): Query<Limit>) -> Response {
    match s.ledger.payouts(q.limit.unwrap_or(100).min(10_000)).await {
        Ok(p) => Json(json!(p)).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("ledger: {e}")).into_response(),
    }
}

/// Prometheus text exposition, rendered from the pool's own counters (no global recorder,
/// so a pool and a miner can share a process).
async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let live = s.stats.pool();
    let mut m = Exposition::new();
    m.gauge("hashforge_pool_connections", "Open Stratum connections.")
        .value(live.connections as f64);
    let mut by_protocol = m.gauge(
        "hashforge_pool_protocol_connections",
        "Open connections by the Stratum they speak.",
    );
    for p in Protocol::ALL {
        by_protocol.sample(&[("protocol", p.name())], live.open(p) as f64);
    }
    m.gauge("hashforge_pool_workers", "Workers seen since start.")
        .value(live.workers as f64);
    m.counter(
        "hashforge_pool_shares_accepted_total",
        "Shares accepted and recorded.",
    )
    .value(live.shares_accepted as f64);
    let mut rejected = m.counter(
        "hashforge_pool_shares_rejected_total",
        "Shares refused, by reason.",
    );
    for (reason, n) in &live.shares_rejected {
        rejected.sample(&[("reason", reason)], *n as f64);
    }
    m.counter(
        "hashforge_pool_blocks_found_total",
        "Blocks accepted by the node.",
    )
    .value(live.blocks_found as f64);
    m.counter(
        "hashforge_pool_blocks_rejected_total",
        "Blocks the node refused.",
    )
    .value(live.blocks_rejected as f64);
    m.gauge(
        "hashforge_pool_hashrate_hs",
        "Hash rate from accepted work over about 5 minutes, H/s.",
    )
    .value(live.hashrate.as_hs());
    if let Some(best) = live.best_share {
        m.gauge(
            "hashforge_pool_best_share",
            "Best share difficulty since start.",
        )
        .value(best.as_f64());
    }
    m.gauge(
        "hashforge_pool_source_ok",
        "1 when the template source answers.",
    )
    .value(f64::from(u8::from(s.status() == "ok")));
    if let Some(t) = s.jobs.template() {
        m.gauge("hashforge_pool_height", "Height of the block being mined.")
            .value(f64::from(t.height));
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], m.finish())
}

async fn page(State(s): State<Arc<Shared>>) -> Html<String> {
    let live = s.stats.pool();
    let template = s.jobs.template();
    let mut rows = String::new();
    for (name, w) in s.stats.workers() {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&name),
            w.protocol.map_or("-", |p| p.name()),
            w.hashrate,
            rate_basis(w.hashrate_shares),
            w.accepted,
            w.rejected.values().sum::<u64>(),
            w.best_share.map_or("-".into(), |d| d.short().to_string()),
            w.blocks,
            w.last_share_secs
                .map_or("-".into(), |t| duration_for_people(live.uptime_secs - t)),
        );
    }
    let rejected = if live.shares_rejected.is_empty() {
        "none".to_string()
    } else {
        live.shares_rejected
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let network_difficulty = template.as_ref().and_then(|t| t.network_difficulty());
    let chain = match network_difficulty {
        // No share difficulty vardiff may set is harder than the network's target.
        Some(d) if d.as_f64() <= s.config.vardiff.min => format!(
            "{} &middot; network difficulty {}: a test chain, where every share is also a block",
            s.network,
            d.short()
        ),
        Some(d) => format!("{} &middot; network difficulty {}", s.network, d.short()),
        None => s.network.to_string(),
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=5><title>hashforge pool</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.3em .7em;text-align:right}}th{{background:#f3f3f3}}td:first-child{{text-align:left}}</style></head><body>\
         <h1>hashforge pool</h1><p><b>{}</b> &middot; {}<br>status: {} &middot; height {} &middot; up {}</p>\
         <table><tr><th>hash rate (5 min)</th><th>connections</th><th>shares accepted</th><th>shares rejected</th><th>blocks found</th><th>blocks refused</th></tr>\
         <tr><td>{} {}</td><td>{} ({} V1, {} SV2, {} SV2 job declaration, {} SV2 template)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>\
         <h2>Workers</h2><table><tr><th>worker</th><th>protocol</th><th>hash rate (5 min)</th><th>from</th><th>accepted</th><th>rejected</th><th>best share</th><th>blocks</th><th>last share</th></tr>{rows}</table>\
         <p><a href=/api/pool>/api/pool</a> &middot; <a href=/api/workers>/api/workers</a> &middot; <a href=/api/blocks>/api/blocks</a> &middot; <a href=/api/payouts>/api/payouts</a> &middot; <a href=/metrics>/metrics</a></p></body></html>",
        escape(&s.source.describe()),
        chain,
        escape(&s.status()),
        template.as_ref().map_or("-".into(), |t| t.height.to_string()),
        duration_for_people(live.uptime_secs),
        live.hashrate,
        rate_basis(live.hashrate_shares),
        live.connections,
        live.connections_v1,
        live.connections_sv2,
        live.connections_sv2_jd,
        live.connections_sv2_tp,
        live.shares_accepted,
        rejected,
        live.blocks_found,
        live.blocks_rejected,
    ))
}

/// What a share-based rate rests on, for people: its typical error is 1/√n.
fn rate_basis(shares: f64) -> String {
    if shares < 0.5 {
        "(no shares yet)".into()
    } else {
        format!("(~{shares:.0} shares, ±{:.0}%)", 100.0 / shares.sqrt())
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
