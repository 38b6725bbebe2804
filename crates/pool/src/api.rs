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
        "network_difficulty": template.as_ref().and_then(|t| t.bits.to_target().ok()).map(|t| t.difficulty().as_f64()),
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
/// so a pool and a miner can share one process).
async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let live = s.stats.pool();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "hashforge_pool_connections",
        "gauge",
        "Open Stratum connections.",
        live.connections as f64,
    );
    metric(
        "hashforge_pool_workers",
        "gauge",
        "Workers seen since start.",
        live.workers as f64,
    );
    metric(
        "hashforge_pool_shares_accepted_total",
        "counter",
        "Shares accepted and recorded.",
        live.shares_accepted as f64,
    );
    metric(
        "hashforge_pool_blocks_found_total",
        "counter",
        "Blocks accepted by the node.",
        live.blocks_found as f64,
    );
    metric(
        "hashforge_pool_blocks_rejected_total",
        "counter",
        "Blocks the node refused.",
        live.blocks_rejected as f64,
    );
    metric(
        "hashforge_pool_hashrate_hs",
        "gauge",
        "Hash rate from accepted difficulty, H/s.",
        live.hashrate,
    );
    metric(
        "hashforge_pool_best_share",
        "gauge",
        "Best share difficulty since start.",
        live.best_share,
    );
    metric(
        "hashforge_pool_source_ok",
        "gauge",
        "1 when the template source answers.",
        f64::from(u8::from(s.status() == "ok")),
    );
    if let Some(t) = s.jobs.template() {
        metric(
            "hashforge_pool_height",
            "gauge",
            "Height of the block being mined.",
            f64::from(t.height),
        );
    }
    let _ = writeln!(out, "# HELP hashforge_pool_shares_rejected_total Shares refused, by reason.\n# TYPE hashforge_pool_shares_rejected_total counter");
    for (reason, n) in &live.shares_rejected {
        let _ = writeln!(
            out,
            "hashforge_pool_shares_rejected_total{{reason=\"{reason}\"}} {n}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

async fn page(State(s): State<Arc<Shared>>) -> Html<String> {
    let p = pool_json(&s);
    let live = s.stats.pool();
    let mut rows = String::new();
    for (name, w) in s.stats.workers() {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td></tr>",
            escape(&name),
            hashforge_core::HashRate::from_hs(w.hashrate),
            w.accepted,
            w.best_share,
            w.blocks
        );
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=5><title>hashforge pool</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}</style></head><body>\
         <h1>hashforge pool</h1><p><b>{}</b><br>status: {} &middot; height {} &middot; {} connections &middot; {} &middot; {} blocks found</p>\
         <table><tr><th>worker</th><th>hash rate</th><th>shares</th><th>best share</th><th>blocks</th></tr>{rows}</table>\
         <p><a href=/api/pool>/api/pool</a> &middot; <a href=/api/workers>/api/workers</a> &middot; <a href=/api/blocks>/api/blocks</a> &middot; <a href=/api/payouts>/api/payouts</a> &middot; <a href=/metrics>/metrics</a></p></body></html>",
        escape(p["source"].as_str().unwrap_or_default()),
        escape(p["source_status"].as_str().unwrap_or_default()),
        p["height"],
        live.connections,
        hashforge_core::HashRate::from_hs(live.hashrate),
        live.blocks_found,
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
