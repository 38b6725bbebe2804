//! The console: a web UI (server-rendered HTML with SVG charts, no JavaScript) and a JSON
//! API over the collector's inventory and alerts.
//!
//! - `/` overview: counts, fleet hash rate over time, power and J/TH, by model and by
//!   network, alerts by kind. `/miners` the miner table (server-side filter, sort, pages),
//!   `/miner/{ip}` one miner (boards, chip map, temperatures, fans, pools, history),
//!   `/alerts` open and recent alerts, security first.
//! - `/api/fleet`, `/api/miners`, `/api/miners/{ip}`, `/api/alerts`, `/metrics`.
//! - `/register` the asset register (matched and unordered miners), `/register/{name}` each
//!   report with its chart, table and CSV/JSON links.
//! - The asset register (with a database): `/api/assets/reports/{name}` (a report as
//!   JSON, `?format=csv` its table as CSV; `at`, `hashprice`, `energy`, `storage_rate`,
//!   `growth` as query parameters), `POST /api/assets/events` (one event; 201 with the new
//!   state, 404 for an unknown serial, 409 for a wrong transition or a date going backwards,
//!   422 for a malformed event), `/api/assets/{serial}/events` (a machine's timeline),
//!   `/api/assets/match` (polled miners matched to the register, and those nobody ordered),
//!   `POST /api/assets/repairs` (a ticket by hand, or from an open alert: `{"alert": N,
//!   "date": ...}`), `/api/assets/boards/{serial}/reports` (`hashforge board test` JSON
//!   reports by hash-board serial: POST one, GET them all).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use axum::Router;
use hashforge_core::HashRate;
use hashforge_metrics::{duration_for_people, Exposition, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod curtail;
mod register;

use crate::alerts::Alert;
use crate::poll::Collector;
use crate::state::{Inventory, Miner, Sample};
use crate::unix_now;

/// Rows per page of the miner table.
pub const PAGE: usize = 100;

/// Serves the console until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    collector: Arc<Collector>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Some(store) = collector.store.clone() {
        tokio::spawn(keep_register(store, shutdown.clone()));
    }
    let app = router(collector);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
}

/// How often the console looks whether the register changed (one small read when it did
/// not).
const REGISTER_LOOK: Duration = Duration::from_secs(2);

/// Keeps the register the pages read up to date in the background: read at start, and again
/// within [`REGISTER_LOOK`] of any change (an import from another process included), so a
/// person opening a report page waits for the report, not for the read.
async fn keep_register(store: crate::store::Store, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = store.register_cached().await {
            tracing::warn!("reading the register: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(REGISTER_LOOK) => {}
            _ = stop.changed() => return,
        }
    }
}

pub fn router(collector: Arc<Collector>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/miners", get(miners_page))
        .route("/miner/{ip}", get(miner_page))
        .route("/alerts", get(alerts_page))
        .route("/api/fleet", get(api_fleet))
        .route("/api/miners", get(api_miners))
        .route("/api/miners/{ip}", get(api_miner))
        .route("/api/alerts", get(api_alerts))
        .route("/metrics", get(metrics))
        .route(
            "/curtail",
            get(curtail::curtail_page).post(curtail::curtail_post),
        )
        .route("/curtail/{id}", get(curtail::run_detail))
        .route(
            "/api/curtail",
            get(curtail::api_runs).post(curtail::api_curtail),
        )
        .route("/register", get(register::register_page))
        .route("/register/machines", get(register::machines_page))
        .route(
            "/register/machine/{serial}",
            get(register::machine_page).post(register::machine_event),
        )
        .route(
            "/register/machine/{serial}/triage",
            axum::routing::post(register::machine_triage),
        )
        .route(
            "/api/assets/{serial}/triage",
            axum::routing::post(api_triage),
        )
        .route("/register/{name}", get(register::report_page))
        .route("/api/assets/reports/{name}", get(api_report))
        .route("/api/assets/events", axum::routing::post(api_post_event))
        .route("/api/assets/{serial}/events", get(api_asset_events))
        .route("/api/assets/match", get(api_match))
        .route("/api/assets/repairs", axum::routing::post(api_open_repair))
        .route(
            "/api/assets/boards/{serial}/reports",
            get(api_board_reports).post(api_attach_board_report),
        )
        .with_state(collector)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ths(x: f64) -> String {
    HashRate::from_ths(x).to_string()
}

fn watts(w: f64) -> String {
    if w >= 1e6 {
        format!("{:.2} MW", w / 1e6)
    } else if w >= 1e3 {
        format!("{:.1} kW", w / 1e3)
    } else {
        format!("{w:.0} W")
    }
}

/// J/TH, or a dash when nothing hashes or no power is known.
fn jth(power_w: f64, hash_ths: f64) -> String {
    if power_w > 0.0 && hash_ths > 0.0 {
        format!("{:.1} J/TH", power_w / hash_ths)
    } else {
        "–".into()
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}\
header{background:#1d2330;color:#fff;padding:.8em 1.5em;display:flex;gap:2em;align-items:baseline}\
header a{color:#cfd6e4;text-decoration:none}header b{font-size:1.2em}main{padding:1em 1.5em}\
.cards{display:flex;gap:1em;flex-wrap:wrap;margin-bottom:1em}.card{background:#fff;border-radius:8px;padding:.8em 1.2em;min-width:9em;box-shadow:0 1px 2px #0002}\
.card .v{font-size:1.6em;font-weight:600}.card .l{color:#667;font-size:.85em}.ok{color:#1a7f37}.bad{color:#c62828}.warn{color:#b26a00}\
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0002;margin-bottom:1.2em}td,th{padding:.35em .5em;border-bottom:1px solid #e3e6ea;text-align:right;white-space:nowrap}\
th{background:#eef0f3;text-align:center;white-space:normal}td.t{text-align:left}td.w{white-space:normal;min-width:12em;max-width:24em}a{color:#1f5fbf}\
.chips{display:grid;grid-template-columns:repeat(20,14px);gap:2px;margin:.3em 0}.chip{width:14px;height:14px;border-radius:2px;background:#3aa55d}\
.chip.x{background:#d93636}.chip.m{background:#c8ccd2}svg{background:#fff;border-radius:8px;box-shadow:0 1px 2px #0002}\
form input,form select{padding:.3em;margin-right:.5em}.pager a,.pager b{margin-right:1em}h2{font-size:1.1em;margin:1.2em 0 .5em}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"30\">\
<title>{t} · hashforge fleet</title><style>{STYLE}</style></head><body><header><b>hashforge fleet</b>\
<a href=\"/\">Overview</a><a href=\"/miners\">Miners</a><a href=\"/alerts\">Alerts</a><a href=\"/curtail\">Curtailment</a><a href=\"/register\">Register</a></header><main>{body}</main></body></html>",
        t = esc(title)
    ))
}

/// A line chart of `points` (x: unix seconds, y) with its axis labels, from "… ago" to
/// "now".
fn chart(points: &[(u64, f64)], unit: &dyn Fn(f64) -> String, w: u32, h: u32) -> String {
    let span = match (points.first(), points.last()) {
        (Some(a), Some(b)) => duration_for_people(b.0.saturating_sub(a.0) as f64),
        _ => String::new(),
    };
    chart_between(points, unit, w, h, (&format!("{span} ago"), "now"))
}

/// [`chart`] with its own labels for the first and last x.
fn chart_between(
    points: &[(u64, f64)],
    unit: &dyn Fn(f64) -> String,
    w: u32,
    h: u32,
    (from, to): (&str, &str),
) -> String {
    if points.len() < 2 {
        return format!("<svg width=\"{w}\" height=\"{h}\"><text x=\"20\" y=\"{}\" fill=\"#667\">history appears after two polls</text></svg>", h / 2);
    }
    let (x0, x1) = (points[0].0 as f64, points[points.len() - 1].0 as f64);
    let ymax = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9) * 1.1;
    let (left, bottom) = (70.0, 22.0);
    let pw = f64::from(w) - left - 10.0;
    let ph = f64::from(h) - bottom - 10.0;
    let xy = |(t, y): (u64, f64)| {
        let x = left + (t as f64 - x0) / (x1 - x0).max(1.0) * pw;
        let yy = 10.0 + ph - y / ymax * ph;
        format!("{x:.1},{yy:.1}")
    };
    let line: Vec<String> = points.iter().map(|p| xy(*p)).collect();
    let mut s = format!("<svg width=\"{w}\" height=\"{h}\" role=\"img\">");
    for frac in [0.0, 0.5, 1.0] {
        let y = 10.0 + ph - frac * ph;
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e3e6ea\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#667\">{}</text>",
            left + pw,
            left - 4.0,
            y + 4.0,
            esc(&unit(ymax * frac))
        );
    }
    let _ = write!(
        s,
        "<polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"2\" points=\"{}\"/><text x=\"{left}\" y=\"{}\" font-size=\"11\" fill=\"#667\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#667\">{}</text></svg>",
        line.join(" "),
        h - 6,
        esc(from),
        left + pw,
        h - 6,
        esc(to)
    );
    s
}

/// The numbers on the overview, also `/api/fleet`.
#[derive(serde::Serialize)]
struct Overview {
    miners: usize,
    online: usize,
    hashing: usize,
    offline: usize,
    alerting: usize,
    open_alerts: usize,
    hashrate_ths: f64,
    ideal_ths: f64,
    power_w: f64,
    /// Joules per terahash over the miners that report power.
    j_per_th: Option<f64>,
    by_site: Vec<Group>,
    by_model: Vec<Group>,
    by_network: Vec<Group>,
    alerts_by_kind: Vec<(String, usize)>,
    last_poll: Option<crate::poll::CycleReport>,
}

#[derive(serde::Serialize, Default)]
struct Group {
    name: String,
    miners: usize,
    online: usize,
    hashrate_ths: f64,
    power_w: f64,
    /// Power over hash rate of the members that report both.
    #[serde(skip)]
    metered: (f64, f64),
    /// Online members that report their power (none: the power is unknown, not 0 W).
    #[serde(skip)]
    reporting_power: usize,
}

fn overview_of(c: &Collector) -> (Overview, Vec<(u64, f64)>) {
    let inv = c.inventory();
    let alerts = c.alerts();
    let mut by_site: BTreeMap<String, Group> = BTreeMap::new();
    let mut by_model: BTreeMap<String, Group> = BTreeMap::new();
    let mut by_net: BTreeMap<String, Group> = BTreeMap::new();
    let (mut online, mut hashing, mut rate, mut ideal, mut power, mut mp, mut mh) =
        (0, 0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for m in &inv.miners {
        let net = match m.ip {
            IpAddr::V4(a) => {
                let o = a.octets();
                format!("{}.{}.0.0/16", o[0], o[1])
            }
            IpAddr::V6(a) => a.to_string(),
        };
        for (map, key) in [
            (&mut by_site, m.site.clone()),
            (&mut by_model, m.name()),
            (&mut by_net, net),
        ] {
            let g = map.entry(key.clone()).or_default();
            g.name = key;
            g.miners += 1;
            if m.online {
                g.online += 1;
                g.hashrate_ths += f64::from(m.hashrate_ths);
                g.power_w += f64::from(m.power_w.unwrap_or(0.0));
                if m.power_w.is_some() {
                    g.reporting_power += 1;
                }
                if let Some((w, th)) = m.metered() {
                    g.metered.0 += w;
                    g.metered.1 += th;
                }
            }
        }
        if m.online {
            online += 1;
            rate += f64::from(m.hashrate_ths);
            ideal += f64::from(m.ideal_ths.unwrap_or(0.0));
            power += f64::from(m.power_w.unwrap_or(0.0));
            if let Some((w, th)) = m.metered() {
                mp += w;
                mh += th;
            }
        }
        if m.hashing() {
            hashing += 1;
        }
    }
    let series: Vec<(u64, f64)> = inv.series.iter().map(|p| (p.at, p.hashrate_ths)).collect();
    let o = Overview {
        miners: inv.miners.len(),
        online,
        hashing,
        offline: inv.miners.len() - online,
        alerting: alerts.alerting_miners(),
        open_alerts: alerts.open_count(),
        hashrate_ths: rate,
        ideal_ths: ideal,
        power_w: power,
        j_per_th: (mp > 0.0 && mh > 0.0).then(|| mp / mh),
        by_site: by_site.into_values().collect(),
        by_model: by_model.into_values().collect(),
        by_network: by_net.into_values().collect(),
        alerts_by_kind: alerts
            .counts()
            .into_iter()
            .map(|(k, n)| (k.label().to_string(), n))
            .collect(),
        last_poll: c
            .last_cycle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    };
    (o, series)
}

async fn overview(State(c): State<Arc<Collector>>) -> Html<String> {
    let (o, series) = overview_of(&c);
    let mut b = String::new();
    let card = |v: String, l: &str, class: &str| {
        format!("<div class=\"card\"><div class=\"v {class}\">{v}</div><div class=\"l\">{l}</div></div>")
    };
    b.push_str("<div class=\"cards\">");
    b.push_str(&card(o.miners.to_string(), "miners known", ""));
    b.push_str(&card(o.hashing.to_string(), "hashing", "ok"));
    b.push_str(&card(
        (o.online - o.hashing).to_string(),
        "online, not hashing",
        if o.online > o.hashing { "warn" } else { "" },
    ));
    b.push_str(&card(
        o.offline.to_string(),
        "offline",
        if o.offline > 0 { "bad" } else { "" },
    ));
    b.push_str(&card(
        format!("<a href=\"/alerts\">{}</a>", o.alerting),
        "miners alerting",
        if o.alerting > 0 { "warn" } else { "" },
    ));
    b.push_str(&card(
        ths(o.hashrate_ths),
        &format!("of {} nameplate", ths(o.ideal_ths)),
        "",
    ));
    b.push_str(&card(watts(o.power_w), "power reported", ""));
    b.push_str(&card(
        o.j_per_th.map_or("–".into(), |j| format!("{j:.1} J/TH")),
        "fleet efficiency",
        "",
    ));
    b.push_str("</div><h2>Fleet hash rate</h2>");
    b.push_str(&chart(&series, &|x| ths(x), 900, 220));
    if let Some(p) = &o.last_poll {
        let _ = write!(
            b,
            "<p>Last poll: {} of {} miners answered in {:.2} s ({} after a retry); a read takes {:.1} ms (p50), {:.1} ms (p99).</p>",
            p.answered, p.miners, p.elapsed_secs, p.retried, p.read_p50_ms, p.read_p99_ms
        );
    }
    let sites = c.sites.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if !sites.is_empty() {
        let now = unix_now();
        b.push_str("<h2>Collectors</h2><table><tr><th>site</th><th>last poll</th><th>answered</th><th>read in</th><th>last write</th></tr>");
        for (site, at, r) in &sites {
            let _ = write!(
                b,
                "<tr><td class=\"t\">{}</td><td>{} ago</td><td>{} of {}</td><td>{:.2} s</td><td>{:.2} s</td></tr>",
                esc(site),
                duration_for_people(now.saturating_sub(*at) as f64),
                r.answered,
                r.miners,
                r.elapsed_secs,
                r.store_secs
            );
        }
        b.push_str("</table>");
    }
    for (title, head, groups) in [
        ("By site", "site", &o.by_site),
        ("By model", "model", &o.by_model),
        ("By network", "network", &o.by_network),
    ] {
        let _ = write!(b, "<h2>{title}</h2><table><tr><th>{head}</th><th>miners</th><th>online</th><th>hash rate</th><th>power</th><th>efficiency</th></tr>");
        for g in groups.iter() {
            let link = if head == "network" {
                esc(&g.name)
            } else {
                format!(
                    "<a href=\"/miners?q={}\">{}</a>",
                    esc(&g.name),
                    esc(&g.name)
                )
            };
            let _ = write!(
                b,
                "<tr><td class=\"t\">{link}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                g.miners,
                g.online,
                ths(g.hashrate_ths),
                if g.reporting_power > 0 { watts(g.power_w) } else { "–".into() },
                jth(g.metered.0, g.metered.1)
            );
        }
        b.push_str("</table>");
    }
    b.push_str("<h2>Open alerts by kind</h2><table><tr><th>kind</th><th>open</th></tr>");
    for (k, n) in &o.alerts_by_kind {
        let _ = write!(b, "<tr><td class=\"t\">{}</td><td>{n}</td></tr>", esc(k));
    }
    if o.alerts_by_kind.is_empty() {
        b.push_str("<tr><td class=\"t\" colspan=\"2\">none</td></tr>");
    }
    b.push_str("</table>");
    page("Overview", &b)
}

async fn api_fleet(State(c): State<Arc<Collector>>) -> Response {
    let (o, series) = overview_of(&c);
    Json(json!({ "overview": o, "series": series })).into_response()
}

/// The miner table's query.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TableQuery {
    /// Text in the address, model, firmware, hostname, serial, MAC or pool.
    pub q: Option<String>,
    /// `online`, `offline`, `alerting`, `hashing`.
    pub state: Option<String>,
    /// `ip` (default), `hashrate`, `temp`, `model`, `uptime`, `power`, `efficiency`.
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub dir: Option<String>,
    /// From 1.
    pub page: Option<usize>,
}

/// One page of the filtered, sorted table, and how many rows matched.
pub fn table<'a>(
    miners: &'a [Miner],
    alerting: &dyn Fn(IpAddr) -> bool,
    q: &TableQuery,
) -> (Vec<&'a Miner>, usize) {
    let needle = q.q.as_deref().unwrap_or("").trim().to_ascii_lowercase();
    let mut ip_text = String::with_capacity(40);
    let state = q.state.as_deref().unwrap_or("");
    let mut rows: Vec<&Miner> = miners
        .iter()
        .filter(|m| match state {
            "online" => m.online,
            "offline" => !m.online,
            "hashing" => m.hashing(),
            "alerting" => alerting(m.ip),
            _ => true,
        })
        .filter(|m| needle.is_empty() || matches(m, &needle, &mut ip_text))
        .collect();
    let temp = |m: &Miner| {
        m.boards
            .iter()
            .filter_map(|b| b.chip_temp)
            .fold(f32::NAN, f32::max)
    };
    let eff = |m: &Miner| m.metered().map_or(f32::NAN, |(w, th)| (w / th) as f32);
    let desc = q.dir.as_deref() == Some("desc");
    let key_f = |f: &dyn Fn(&Miner) -> f32, a: &Miner, b: &Miner| {
        // Unknowns last whatever the direction.
        let (x, y) = (f(a), f(b));
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if desc => y.total_cmp(&x),
            _ => x.total_cmp(&y),
        }
    };
    match q.sort.as_deref().unwrap_or("ip") {
        "hashrate" => rows.sort_by(|a, b| key_f(&|m| m.hashrate_ths, a, b)),
        "temp" => rows.sort_by(|a, b| key_f(&temp, a, b)),
        "power" => rows.sort_by(|a, b| key_f(&|m| m.power_w.unwrap_or(f32::NAN), a, b)),
        "efficiency" => rows.sort_by(|a, b| key_f(&eff, a, b)),
        "uptime" => rows.sort_by(|a, b| key_f(&|m| m.uptime_secs as f32, a, b)),
        "model" => {
            rows.sort_by(|a, b| a.name().cmp(&b.name()).then(a.ip.cmp(&b.ip)));
            if desc {
                rows.reverse();
            }
        }
        _ => {
            rows.sort_by_key(|m| m.ip);
            if desc {
                rows.reverse();
            }
        }
    }
    let total = rows.len();
    let page = q.page.unwrap_or(1).max(1);
    let rows = rows
        .into_iter()
        .skip((page - 1) * PAGE)
        .take(PAGE)
        .collect();
    (rows, total)
}

/// `4 ok`, or `1 of 4 stopped` in red.
fn fans_text(rpm: &[u32]) -> String {
    let stopped = rpm.iter().filter(|r| **r == 0).count();
    match (rpm.len(), stopped) {
        (0, _) => "–".into(),
        (n, 0) => format!("{n} ok"),
        (n, s) => format!("<span class=\"bad\">{s} of {n} stopped</span>"),
    }
}

/// ASCII case-insensitive `contains`, without allocating (`needle` is lower case).
fn contains_ci(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.len() <= h.len()
        && h.windows(n.len())
            .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

/// Whether the miner's address, site, make and model, firmware, hostname, serial, MAC or
/// pool holds `needle`; `ip_text` is a buffer reused across miners.
fn matches(m: &Miner, needle: &str, ip_text: &mut String) -> bool {
    ip_text.clear();
    let _ = write!(ip_text, "{}", m.ip);
    let fields = [
        Some(ip_text.as_str()),
        Some(m.site.as_str()),
        Some(m.make.as_str()),
        Some(m.model.as_str()),
        Some(m.firmware.as_str()),
        m.hostname.as_deref(),
        m.serial.as_deref(),
        m.mac.as_deref(),
        m.pool_url.as_deref(),
    ];
    fields.into_iter().flatten().any(|f| contains_ci(f, needle))
        || (needle.contains(' ') && contains_ci(&m.name(), needle))
}

fn temp_text(t: Option<f32>) -> String {
    t.filter(|t| !t.is_nan())
        .map_or("–".into(), |t| format!("{t:.0} °C"))
}

async fn miners_page(State(c): State<Arc<Collector>>, Query(q): Query<TableQuery>) -> Html<String> {
    let inv = c.inventory();
    let alerts = c.alerts();
    let alerting = |ip: IpAddr| !alerts.open_for(ip).is_empty();
    let (rows, total) = table(&inv.miners, &alerting, &q);
    let page_no = q.page.unwrap_or(1).max(1);
    let pages = total.div_ceil(PAGE).max(1);
    let mut b = String::new();
    let sel = |v: &str, cur: Option<&str>| if cur == Some(v) { " selected" } else { "" };
    let _ = write!(
        b,
        "<form method=\"get\"><input name=\"q\" placeholder=\"address, model, serial, pool ...\" value=\"{}\" size=\"32\">\
<select name=\"state\"><option value=\"\">all</option><option{} value=\"online\">online</option><option{} value=\"hashing\">hashing</option><option{} value=\"offline\">offline</option><option{} value=\"alerting\">alerting</option></select>\
<select name=\"sort\"><option value=\"ip\">address</option><option{} value=\"hashrate\">hash rate</option><option{} value=\"temp\">temperature</option><option{} value=\"efficiency\">efficiency</option><option{} value=\"model\">model</option><option{} value=\"uptime\">uptime</option></select>\
<select name=\"dir\"><option value=\"asc\">ascending</option><option{} value=\"desc\">descending</option></select><input type=\"submit\" value=\"Show\"></form>",
        esc(q.q.as_deref().unwrap_or("")),
        sel("online", q.state.as_deref()),
        sel("hashing", q.state.as_deref()),
        sel("offline", q.state.as_deref()),
        sel("alerting", q.state.as_deref()),
        sel("hashrate", q.sort.as_deref()),
        sel("temp", q.sort.as_deref()),
        sel("efficiency", q.sort.as_deref()),
        sel("model", q.sort.as_deref()),
        sel("uptime", q.sort.as_deref()),
        sel("desc", q.dir.as_deref()),
    );
    let _ = write!(
        b,
        "<p>{total} miner(s) match; page {page_no} of {pages}.</p>"
    );
    // The site column only when there is more than one site to tell apart.
    let sites = inv
        .miners
        .first()
        .is_some_and(|f| inv.miners.iter().any(|m| m.site != f.site));
    b.push_str("<table><tr><th>address</th>");
    if sites {
        b.push_str("<th>site</th>");
    }
    b.push_str("<th>model</th><th>state</th><th>hash rate</th><th>of nameplate</th><th>hottest chip</th><th>power</th><th>efficiency</th><th>chips</th><th>fans</th><th>pool</th><th>uptime</th><th>alerts</th></tr>");
    for m in rows {
        let state = if !m.online {
            "<span class=\"bad\">offline</span>"
        } else if m.hashing() {
            "<span class=\"ok\">hashing</span>"
        } else {
            "<span class=\"warn\">not hashing</span>"
        };
        let found: u32 = m.boards.iter().map(|b| u32::from(b.chips_found)).sum();
        let expected: Option<u32> = m
            .boards
            .iter()
            .map(|b| b.chips_expected.map(u32::from))
            .sum();
        let bad: usize = m.boards.iter().map(|b| b.bad_chips.len()).sum();
        let chips = match expected {
            Some(e) => format!(
                "{found}/{e}{}",
                if bad > 0 {
                    format!(" ({bad} bad)")
                } else {
                    String::new()
                }
            ),
            None => found.to_string(),
        };
        let share = match m.ideal_ths {
            Some(i) if i > 0.0 && m.online => {
                format!("{:.0}%", f64::from(m.hashrate_ths / i) * 100.0)
            }
            _ => "–".into(),
        };
        let open = alerts.open_for(m.ip).len();
        let _ = write!(
            b,
            "<tr><td class=\"t\"><a href=\"/miner/{ip}\">{ip}</a></td>{}<td class=\"t\">{}</td><td>{state}</td><td>{}</td><td>{share}</td><td>{}</td><td>{}</td><td>{}</td><td>{chips}</td><td>{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td></tr>",
            if sites { format!("<td class=\"t\">{}</td>", esc(&m.site)) } else { String::new() },
            esc(&m.name()),
            if m.online { ths(f64::from(m.hashrate_ths)) } else { "–".into() },
            temp_text(Some(m.boards.iter().filter_map(|b| b.chip_temp).fold(f32::NAN, f32::max))),
            m.power_w.filter(|_| m.online).map_or("–".into(), |w| watts(f64::from(w))),
            m.metered().map_or("–".into(), |(w, th)| jth(w, th)),
            fans_text(&m.fans_rpm),
            esc(m.pool_url.as_deref().map_or("–", |u| u.split_once("://").map_or(u, |(_, h)| h))),
            if m.online { duration_for_people(m.uptime_secs as f64) } else { "–".into() },
            if open > 0 { format!("<span class=\"warn\">{open}</span>") } else { "0".into() },
            ip = m.ip,
        );
    }
    b.push_str("</table><div class=\"pager\">");
    let link = |p: usize| {
        format!(
            "/miners?q={}&state={}&sort={}&dir={}&page={p}",
            esc(q.q.as_deref().unwrap_or("")),
            esc(q.state.as_deref().unwrap_or("")),
            esc(q.sort.as_deref().unwrap_or("")),
            esc(q.dir.as_deref().unwrap_or(""))
        )
    };
    if page_no > 1 {
        let _ = write!(b, "<a href=\"{}\">previous</a>", link(page_no - 1));
    }
    if page_no < pages {
        let _ = write!(b, "<a href=\"{}\">next</a>", link(page_no + 1));
    }
    b.push_str("</div>");
    page("Miners", &b)
}

async fn api_miners(State(c): State<Arc<Collector>>, Query(q): Query<TableQuery>) -> Response {
    let inv = c.inventory();
    let alerts = c.alerts();
    let alerting = |ip: IpAddr| !alerts.open_for(ip).is_empty();
    let (rows, total) = table(&inv.miners, &alerting, &q);
    Json(json!({ "total": total, "page": q.page.unwrap_or(1).max(1), "per_page": PAGE, "miners": rows })).into_response()
}

/// The miner a path names, or the answer for a bad address (400) or an unknown one (404).
#[allow(clippy::result_large_err)]
fn lookup<'a>(inv: &'a Inventory, ip: &str) -> Result<(IpAddr, &'a Miner), Response> {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return Err((StatusCode::BAD_REQUEST, "not an IP address").into_response());
    };
    match inv.get(ip) {
        Some(m) => Ok((ip, m)),
        None => Err((StatusCode::NOT_FOUND, "no such miner in the inventory").into_response()),
    }
}

async fn miner_page(State(c): State<Arc<Collector>>, Path(ip): Path<String>) -> Response {
    let inv = c.inventory();
    let (ip, m) = match lookup(&inv, &ip) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let alerts = c.alerts();
    let mut b = String::new();
    // With a register, the serial leads to the machine's life there.
    let serial_text = match (&m.serial, &c.store) {
        (Some(sn), Some(_)) => format!(
            "{} · <a href=\"/register/machine/{}\">in the register</a>",
            esc(sn),
            esc(&register::path_segment(sn))
        ),
        (Some(sn), None) => esc(sn),
        (None, _) => "–".into(),
    };
    let power_text = format!(
        "{}{}",
        match (m.power_w, m.metered()) {
            (Some(_), Some((w, th))) => format!("{} ({})", watts(w), jth(w, th)),
            (Some(w), None) => watts(f64::from(w)),
            (None, _) => "–".into(),
        },
        match (m.sleeping, m.power_limit_w) {
            (Some(true), _) => " · <span class=\"warn\">asleep (curtailed)</span>".to_string(),
            (_, Some(l)) => format!(
                " · <span class=\"warn\">held under {}</span>",
                watts(f64::from(l))
            ),
            _ => String::new(),
        }
    );
    let _ = write!(
        b,
        "<h2>{} at {}</h2><table><tr><td class=\"t\">state</td><td class=\"t\">{}</td></tr><tr><td class=\"t\">site</td><td class=\"t\">{}</td></tr><tr><td class=\"t\">firmware</td><td class=\"t\">{}</td></tr>\
<tr><td class=\"t\">serial</td><td class=\"t\">{}</td></tr><tr><td class=\"t\">MAC</td><td class=\"t\">{}</td></tr><tr><td class=\"t\">hostname</td><td class=\"t\">{}</td></tr>\
<tr><td class=\"t\">hash rate</td><td class=\"t\">{} of {} nameplate</td></tr><tr><td class=\"t\">power</td><td class=\"t\">{}</td></tr><tr><td class=\"t\">uptime</td><td class=\"t\">{}</td></tr>\
<tr><td class=\"t\">pool</td><td class=\"t\">{} as {}</td></tr><tr><td class=\"t\">shares</td><td class=\"t\">{} accepted, {} rejected, {} hardware errors</td></tr>\
<tr><td class=\"t\">fans</td><td class=\"t\">{}</td></tr><tr><td class=\"t\">web password</td><td class=\"t\">{}</td></tr><tr><td class=\"t\">cgminer API</td><td class=\"t\">{}</td></tr><tr><td class=\"t\">last read</td><td class=\"t\">{}</td></tr></table>",
        esc(&m.name()),
        m.ip,
        if m.online { if m.hashing() { "hashing" } else { "online, not hashing" } } else { "offline" },
        esc(&m.site),
        esc(&m.firmware),
        serial_text,
        esc(m.mac.as_deref().unwrap_or("–")),
        esc(m.hostname.as_deref().unwrap_or("–")),
        ths(f64::from(m.hashrate_ths)),
        m.ideal_ths.map_or("–".into(), |i| ths(f64::from(i))),
        power_text,
        duration_for_people(m.uptime_secs as f64),
        esc(m.pool_url.as_deref().unwrap_or("–")),
        esc(m.pool_user.as_deref().unwrap_or("–")),
        m.accepted,
        m.rejected,
        m.hardware_errors,
        if m.fans_rpm.is_empty() { "–".into() } else { m.fans_rpm.iter().map(|r| format!("{r} RPM")).collect::<Vec<_>>().join(", ") },
        match m.default_password { Some(true) => "<span class=\"bad\">the maker's default (root)</span>", Some(false) => "not the default", None => "not checked" },
        match m.api_open { Some(true) => "<span class=\"bad\">privileged commands open to anyone</span>", Some(false) => "privileged commands refused", None => "not checked" },
        m.last_seen.map_or("never".into(), |t| format!("{} ago ({:.1} ms){}", duration_for_people(unix_now().saturating_sub(t) as f64), m.read_ms, m.last_error.as_ref().map_or(String::new(), |e| format!("; last error: {}", esc(e))))),
    );
    b.push_str("<h2>Boards</h2><table><tr><th>board</th><th>state</th><th>hash rate</th><th>chips</th><th>chip temp</th><th>board temp</th><th>HW errors</th><th>serial</th></tr>");
    for bd in &m.boards {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=\"t\">{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td></tr>",
            bd.index,
            bd.failed.as_ref().map_or("running".into(), |w| format!("<span class=\"bad\">{}</span>", esc(w))),
            ths(f64::from(bd.hashrate_ths)),
            bd.chips_found,
            bd.chips_expected.map_or(String::new(), |e| format!(" of {e}")),
            temp_text(bd.chip_temp),
            temp_text(bd.board_temp),
            bd.hardware_errors,
            esc(bd.serial.as_deref().unwrap_or("–")),
        );
    }
    b.push_str("</table><h2>Chip map</h2><p>Green answers and hashes; red is bad or silent; grey did not answer.</p>");
    for bd in &m.boards {
        let expected = usize::from(bd.chips_expected.unwrap_or(bd.chips_found));
        let _ = write!(b, "<div>board {}</div><div class=\"chips\">", bd.index);
        for pos in 0..expected.max(usize::from(bd.chips_found)) {
            let class = if pos >= usize::from(bd.chips_found) {
                "chip m"
            } else if bd.bad_chips.contains(&(pos as u16)) {
                "chip x"
            } else {
                "chip"
            };
            let _ = write!(
                b,
                "<div class=\"{class}\" title=\"board {} chip {pos}\"></div>",
                bd.index
            );
        }
        b.push_str("</div>");
    }
    let recent: Vec<(u64, f64)> = m
        .recent
        .iter()
        .map(|s: &Sample| (u64::from(s.at), f64::from(s.hashrate_ths)))
        .collect();
    b.push_str("<h2>Hash rate, last hour</h2>");
    b.push_str(&chart(&recent, &|x| ths(x), 700, 180));
    let temps: Vec<(u64, f64)> = m
        .recent
        .iter()
        .filter(|s| !s.temp.is_nan())
        .map(|s| (u64::from(s.at), f64::from(s.temp)))
        .collect();
    b.push_str("<h2>Hottest chip, last hour</h2>");
    b.push_str(&chart(&temps, &|x| format!("{x:.0} °C"), 700, 180));
    let day: Vec<(u64, f64)> = m
        .hourly
        .iter()
        .map(|s: &Sample| (u64::from(s.at), f64::from(s.hashrate_ths)))
        .collect();
    b.push_str("<h2>Hash rate, hourly means of the last day</h2>");
    if day.len() < 2 {
        b.push_str("<p>Hourly history appears once two hours have closed (kept in the fleet database).</p>");
    } else {
        b.push_str("<p>A missed poll counts as 0: what each hour delivered.</p>");
        b.push_str(&chart(&day, &|x| ths(x), 700, 180));
    }
    b.push_str("<h2>Open alerts</h2>");
    b.push_str(&alert_table(alerts.open_for(ip).iter()));
    page(&m.ip.to_string(), &b).into_response()
}

async fn api_miner(State(c): State<Arc<Collector>>, Path(ip): Path<String>) -> Response {
    let inv = c.inventory();
    let (ip, m) = match lookup(&inv, &ip) {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let alerts = c.alerts();
    Json(json!({
        "miner": m,
        "recent": m.recent,
        "hourly": m.hourly,
        "alerts": alerts.open_for(ip),
    }))
    .into_response()
}

fn alert_table<'a>(alerts: impl Iterator<Item = &'a Alert>) -> String {
    let mut b = String::from(
        "<table><tr><th>kind</th><th>miner</th><th>since</th><th>ended</th><th>evidence</th></tr>",
    );
    let now = unix_now();
    let mut any = false;
    for a in alerts {
        any = true;
        let _ = write!(
            b,
            "<tr><td class=\"t{}\">{}</td><td class=\"t\"><a href=\"/miner/{ip}\">{ip}</a></td><td>{} ago</td><td>{}</td><td class=\"t\">{}</td></tr>",
            if a.kind.security() { " bad" } else { "" },
            a.kind.label(),
            duration_for_people(now.saturating_sub(a.start) as f64),
            a.end.map_or("open".into(), |e| format!("{} ago", duration_for_people(now.saturating_sub(e) as f64))),
            esc(&a.evidence),
            ip = a.ip,
        );
    }
    if !any {
        b.push_str("<tr><td class=\"t\" colspan=\"5\">none</td></tr>");
    }
    b.push_str("</table>");
    b
}

async fn alerts_page(State(c): State<Arc<Collector>>) -> Html<String> {
    let alerts = c.alerts();
    let open = alerts.open();
    let mut b = String::new();
    let security: Vec<&Alert> = open.iter().copied().filter(|a| a.kind.security()).collect();
    let _ = write!(b, "<h2>Security ({} open)</h2>", security.len());
    b.push_str(&alert_table(security.into_iter().take(500)));
    let ops: Vec<&Alert> = open
        .iter()
        .copied()
        .filter(|a| !a.kind.security())
        .collect();
    let _ = write!(b, "<h2>Operations ({} open)</h2>", ops.len());
    b.push_str(&alert_table(ops.into_iter().take(500)));
    let _ = write!(b, "<h2>Recently closed</h2>");
    b.push_str(&alert_table(alerts.closed.iter().rev().take(200)));
    if alerts.suppressed > 0 {
        let _ = write!(
            b,
            "<p>{} alert notification(s) held back by the rate limit.</p>",
            alerts.suppressed
        );
    }
    page("Alerts", &b)
}

async fn api_alerts(State(c): State<Arc<Collector>>) -> Response {
    let alerts = c.alerts();
    let closed: Vec<&Alert> = alerts.closed.iter().rev().take(1000).collect();
    Json(json!({ "open": alerts.open(), "closed": closed, "suppressed": alerts.suppressed }))
        .into_response()
}

async fn metrics(State(c): State<Arc<Collector>>) -> Response {
    let (o, _) = overview_of(&c);
    let mut m = Exposition::new();
    m.gauge(
        "hashforge_fleet_miners",
        "Miners in the inventory, by state.",
    )
    .sample(&[("state", "online")], o.online as f64)
    .sample(&[("state", "hashing")], o.hashing as f64)
    .sample(&[("state", "offline")], o.offline as f64);
    m.gauge(
        "hashforge_fleet_hashrate_hs",
        "Hash rate the online miners report, H/s.",
    )
    .value(o.hashrate_ths * 1e12);
    m.gauge(
        "hashforge_fleet_power_watts",
        "Power the online miners report, W.",
    )
    .value(o.power_w);
    let mut g = m.gauge("hashforge_fleet_alerts_open", "Open alerts by kind.");
    for (k, n) in &o.alerts_by_kind {
        g.sample(&[("kind", k.as_str())], *n as f64);
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], m.finish()).into_response()
}

/// The query of `/api/assets/reports/{name}`: the report's day and prices.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReportQuery {
    pub at: Option<String>,
    /// Dollars per PH/s per day.
    pub hashprice: Option<String>,
    /// Dollars per kWh.
    pub energy: Option<String>,
    /// Storage per unit per day where a hold's event named none.
    pub storage_rate: Option<String>,
    /// Difficulty growth, percent a month.
    pub growth: Option<f64>,
    /// `csv` for the report's table as CSV.
    pub format: Option<String>,
    /// Tariffs' what-if: a planned order's model, units and unit price (USD), its HTS code
    /// (default 8543.70.99) and the origins to compare (default US,MY,ID,TH,CN).
    pub what_if_model: Option<String>,
    pub what_if_units: Option<String>,
    pub what_if_price: Option<String>,
    pub what_if_hts: Option<String>,
    pub what_if_origins: Option<String>,
}

/// The prices the register's pages and API assume where a request names none
/// (`hashforge fleet --hashprice ... --energy ... --storage-rate ...`), as the query gives
/// them (dollars).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceDefaults {
    pub hashprice: Option<String>,
    pub energy: Option<String>,
    pub storage_rate: Option<String>,
}

impl PriceDefaults {
    /// Checks the prices as a report would read them.
    pub fn check(&self) -> Result<(), String> {
        ReportQuery::default().with(self).params().map(|_| ())
    }
}

impl ReportQuery {
    /// This query, with `defaults` where it names no price.
    pub fn with(mut self, defaults: &PriceDefaults) -> ReportQuery {
        for (mine, theirs) in [
            (&mut self.hashprice, &defaults.hashprice),
            (&mut self.energy, &defaults.energy),
            (&mut self.storage_rate, &defaults.storage_rate),
        ] {
            if mine.as_deref().is_none_or(str::is_empty) {
                mine.clone_from(theirs);
            }
        }
        self
    }

    /// The report's parameters, or which one is wrong.
    pub fn params(&self) -> Result<crate::reports::Params, String> {
        use crate::economics::{Market, Series};
        use crate::money::Usd;
        let usd = |name: &str, v: &Option<String>| -> Result<Option<Usd>, String> {
            v.as_deref()
                .map(|s| Usd::parse_non_negative(s).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        let at = match &self.at {
            Some(s) => s.parse().map_err(|e| format!("at: {e}"))?,
            None => crate::date::Date::today(),
        };
        let growth = self.growth.unwrap_or(2.0);
        if !growth.is_finite() || growth <= -99.0 {
            return Err("growth: a percentage above -99".into());
        }
        fn filled(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|x| !x.is_empty())
        }
        let what_if = match (
            filled(&self.what_if_model),
            filled(&self.what_if_units),
            filled(&self.what_if_price),
        ) {
            (None, None, None) => None,
            (Some(model), Some(units), Some(price)) => {
                let units: u64 = units
                    .parse()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or("what_if_units: a whole number of machines (1 to 1,000,000)")?;
                let unit_price =
                    Usd::parse_non_negative(price).map_err(|e| format!("what_if_price: {e}"))?;
                let origins = match filled(&self.what_if_origins) {
                    None => crate::tariffs::default_origins(),
                    Some(list) => list
                        .split(|c: char| c == ',' || c.is_whitespace())
                        .filter(|c| !c.is_empty())
                        .map(|c| {
                            crate::assets::Country::parse(c).ok_or_else(|| {
                                format!("what_if_origins: `{c}` is not an ISO 3166 code")
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                };
                let hts_code = filled(&self.what_if_hts).unwrap_or("8543.70.99").to_owned();
                let tariffs = crate::tariffs::Schedule::builtin();
                if !tariffs.codes().contains(&hts_code) {
                    return Err(format!(
                        "what_if_hts: `{hts_code}` is not in the tariff schedule"
                    ));
                }
                Some(crate::reports::WhatIfOrder {
                    model: model.to_owned(),
                    units,
                    unit_price,
                    hts_code,
                    origins,
                })
            }
            _ => {
                return Err("the what-if needs a model, a number of units and a unit price".into())
            }
        };
        Ok(crate::reports::Params {
            at,
            market: Market {
                hashprice: usd("hashprice", &self.hashprice)?
                    .map(Series::flat)
                    .unwrap_or_default(),
                energy: usd("energy", &self.energy)?
                    .map(Series::flat)
                    .unwrap_or_default(),
                growth_per_month: growth / 100.0,
                storage_rate: usd("storage_rate", &self.storage_rate)?,
            },
            tariffs: crate::tariffs::Schedule::builtin(),
            what_if,
            per_machine: false,
        })
    }
}

fn no_database() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "this console has no database (start it with --database URL)"})),
    )
        .into_response()
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

async fn api_report(
    State(c): State<Arc<Collector>>,
    Path(name): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Response {
    let Some(store) = &c.store else {
        return no_database();
    };
    if !crate::reports::NAMES.contains(&name.as_str()) {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no report `{name}`: one of {}",
                crate::reports::NAMES.join(", ")
            ),
        );
    }
    let q = q.with(&c.config.prices);
    let params = match q.params() {
        Ok(p) => p,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    let register = match store.register_cached().await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let Some((value, table)) = crate::reports::by_name(&name, &register, &params) else {
        return error(StatusCode::NOT_FOUND, format!("no report `{name}`"));
    };
    if q.format.as_deref() == Some("csv") {
        return (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}-{}.csv\"", params.at),
                ),
            ],
            table.csv(),
        )
            .into_response();
    }
    Json(value).into_response()
}

async fn api_post_event(
    State(c): State<Arc<Collector>>,
    body: Result<Json<crate::assets::EventSpec>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(store) = &c.store else {
        return no_database();
    };
    let spec = match body {
        Ok(Json(spec)) => spec,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()),
    };
    let event = match spec.check() {
        Ok(e) => e,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    let serial = event.serial.clone();
    let r = store.record_event(event).await;
    event_result(&serial, r)
}

/// A triage step as a person types it: trimmed, 1 to 200 characters.
fn triage_step(step: &str) -> Result<&str, String> {
    let s = step.trim();
    if s.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) {
        return Err("a triage step is 1 to 200 characters of text (`reseat: fault stayed`)".into());
    }
    Ok(s)
}

/// `POST /api/assets/{serial}/triage` (`{"step": "..."}`): a step for the open ticket.
async fn api_triage(
    State(c): State<Arc<Collector>>,
    Path(serial): Path<String>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(store) = &c.store else {
        return no_database();
    };
    let step = match &body {
        Ok(Json(v)) => v.get("step").and_then(|s| s.as_str()).unwrap_or(""),
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()),
    };
    let step = match triage_step(step) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    match store.add_triage(&serial, step).await {
        Ok(true) => (
            StatusCode::CREATED,
            Json(json!({"serial": serial, "step": step})),
        )
            .into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("{serial} has no open repair ticket (or is not in the register)"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn api_asset_events(State(c): State<Arc<Collector>>, Path(serial): Path<String>) -> Response {
    let Some(store) = &c.store else {
        return no_database();
    };
    match store.events_of(&serial).await {
        Ok(events) => Json(json!({"serial": serial, "events": events})).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn api_match(State(c): State<Arc<Collector>>) -> Response {
    let Some(store) = &c.store else {
        return no_database();
    };
    match store.match_miners().await {
        Ok(m) => Json(m).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `POST /api/assets/repairs`: a ticket by hand (`serial`, `date`, `fault`, `board`,
/// `chips`, `evidence`), or from one of this console's open alerts (`alert`, its number,
/// and `date`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RepairBody {
    Alert { alert: u64, date: crate::date::Date },
    Hand(crate::assets::db::RepairOpen),
}

fn event_result(
    serial: &str,
    r: Result<crate::lifecycle::State, crate::assets::db::EventError>,
) -> Response {
    use crate::assets::db::EventError;
    match r {
        Ok(state) => (
            StatusCode::CREATED,
            Json(json!({"serial": serial, "state": state})),
        )
            .into_response(),
        Err(EventError::UnknownSerial(s)) => {
            error(StatusCode::NOT_FOUND, format!("{s} is not in the register"))
        }
        Err(EventError::Refused(why)) => error(StatusCode::CONFLICT, why),
        Err(EventError::Store(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn api_open_repair(
    State(c): State<Arc<Collector>>,
    body: Result<Json<RepairBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(store) = &c.store else {
        return no_database();
    };
    match body {
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()),
        Ok(Json(RepairBody::Hand(t))) => {
            let r = store.open_repair(&t).await;
            event_result(&t.serial, r)
        }
        Ok(Json(RepairBody::Alert { alert, date })) => {
            let found = c
                .alerts()
                .open()
                .into_iter()
                .find(|a| a.id == alert)
                .cloned();
            let Some(a) = found else {
                return error(StatusCode::NOT_FOUND, format!("no open alert {alert}"));
            };
            match store.repair_from_alert(&a, date).await {
                Ok((serial, state)) => event_result(&serial, Ok(state)),
                Err(e) => event_result(&a.ip.to_string(), Err(e)),
            }
        }
    }
}

async fn api_attach_board_report(
    State(c): State<Arc<Collector>>,
    Path(serial): Path<String>,
    body: String,
) -> Response {
    let Some(store) = &c.store else {
        return no_database();
    };
    if serde_json::from_str::<serde_json::Value>(&body).is_err() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a `hashforge board test --json` report",
        );
    }
    match store.attach_board_report(&serial, "api", &body).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({"board_serial": serial}))).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn api_board_reports(
    State(c): State<Arc<Collector>>,
    Path(serial): Path<String>,
) -> Response {
    let Some(store) = &c.store else {
        return no_database();
    };
    match store.board_reports(&serial).await {
        Ok(list) => {
            let reports: Vec<serde_json::Value> = list
                .into_iter()
                .map(|(at, place, report)| {
                    json!({
                        "at_unix": at,
                        "place": place,
                        "report": serde_json::from_str::<serde_json::Value>(&report).unwrap_or_default(),
                    })
                })
                .collect();
            Json(json!({"board_serial": serial, "reports": reports})).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
