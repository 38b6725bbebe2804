//! The asset register's pages: `/register` (the register at a glance, the polled miners
//! it knows or does not), `/register/machines` (every machine, by state), `/register/machine/
//! {serial}` (one machine's life and tickets) and `/register/{report}` (a report's chart and
//! table, with its open repair tickets for `repairs`).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{esc, page, ReportQuery};
use crate::poll::Collector;

/// Which column each report's chart draws: (label column, value column, what the bars mean).
const REPORT_CHARTS: [(&str, &str, &str, &str); 5] = [
    (
        "customs",
        "shipment",
        "total",
        "cost of each shipment's holds (storage and delay)",
    ),
    (
        "tariffs",
        "origin",
        "landed/unit",
        "landed cost per machine by origin",
    ),
    ("repairs", "key", "median d", "median days out of service"),
    (
        "vendors",
        "maker",
        "units %",
        "share of the fleet's units by maker",
    ),
    (
        "economics",
        "model",
        "margin/day",
        "margin per day by model",
    ),
];

/// A number as a report cell prints it (`$1,234.50`, `12.5%`, `42`), if it is one.
fn cell_number(cell: &str) -> Option<f64> {
    let s: String = cell
        .chars()
        .filter(|c| !matches!(c, '$' | ',' | '%' | ' '))
        .collect();
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Horizontal bars of `(label, value)`, each with its value written beside it.
fn bars(rows: &[(String, f64, String)], w: u32) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let max = rows.iter().map(|r| r.1.abs()).fold(0.0, f64::max).max(1e-9);
    let (left, right, step) = (250.0, 110.0, 22.0);
    let pw = f64::from(w) - left - right;
    let h = (rows.len() as f64 * step + 10.0) as u32;
    let mut s = format!("<svg width=\"{w}\" height=\"{h}\" role=\"img\">");
    for (i, (label, v, text)) in rows.iter().enumerate() {
        let y = 5.0 + i as f64 * step;
        let len = v.abs() / max * pw;
        let colour = if *v < 0.0 { "#d93636" } else { "#1f5fbf" };
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\" fill=\"#1d2330\">{}</text>\
<rect x=\"{left}\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{:.1}\" fill=\"{colour}\" rx=\"2\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#667\">{}</text>",
            left - 6.0,
            y + 13.0,
            esc(&short(label, 36)),
            step - 6.0,
            left + len + 6.0,
            y + 13.0,
            esc(text)
        );
    }
    s.push_str("</svg>");
    s
}

/// `text` cut to `n` characters, an ellipsis marking the cut.
fn short(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(n - 1).collect();
        s.push('…');
        s
    }
}

fn table_html(t: &crate::reports::Table) -> String {
    let mut b = String::new();
    if !t.title.is_empty() {
        let _ = write!(b, "<h2>{}</h2>", esc(&t.title));
    }
    b.push_str("<table><tr>");
    for h in &t.headers {
        let _ = write!(b, "<th>{}</th>", esc(h));
    }
    b.push_str("</tr>");
    for r in &t.rows {
        b.push_str("<tr>");
        for c in r {
            // Long text (reasons, notes) wraps; numbers and dates do not.
            let class = if cell_number(c).is_some() {
                ""
            } else if c.chars().count() > 16 {
                " class=\"t w\""
            } else {
                " class=\"t\""
            };
            let _ = write!(b, "<td{class}>{}</td>", esc(c));
        }
        b.push_str("</tr>");
    }
    b.push_str("</table>");
    // (The what-if's text table is for terminals; the page draws its own.)
    for n in t.notes.iter().take_while(|n| !n.starts_with("\nWhat-if")) {
        let _ = write!(b, "<p>{}</p>", esc(n));
    }
    b
}

fn register_nav(current: &str) -> String {
    let mut b = String::from("<p class=\"pager\">");
    for name in std::iter::once("machines").chain(crate::reports::NAMES) {
        if name == current {
            let _ = write!(b, "<b>{name}</b> ");
        } else {
            let _ = write!(b, "<a href=\"/register/{name}\">{name}</a> ");
        }
    }
    b.push_str("</p>");
    b
}

/// `/register`: the asset register at a glance: its reports, and the polled miners it
/// knows or does not.
pub(super) async fn register_page(State(c): State<Arc<Collector>>) -> Response {
    let Some(store) = &c.store else {
        return page("Register", "<p>This console has no database: start it with <code>--database URL</code> to keep an asset register.</p>").into_response();
    };
    let mut b = String::from("<h1>Asset register</h1>");
    b.push_str(&register_nav(""));
    match store.register_cached().await {
        Ok(reg) => {
            let mut counts = [0usize; crate::lifecycle::State::ALL.len()];
            for a in &reg.assets {
                if let Some(i) = crate::lifecycle::State::ALL
                    .iter()
                    .position(|s| *s == a.state)
                {
                    counts[i] += 1;
                }
            }
            let _ = write!(
                b,
                "<div class=\"cards\"><div class=\"card\"><div class=\"v\"><a href=\"/register/machines\">{}</a></div><div class=\"l\">machines in the register</div></div>",
                counts.iter().sum::<usize>()
            );
            for (state, n) in crate::lifecycle::State::ALL.iter().zip(counts) {
                if n == 0 {
                    continue;
                }
                let class = match state {
                    crate::lifecycle::State::CustomsHold | crate::lifecycle::State::Failed => {
                        " warn"
                    }
                    _ => "",
                };
                let _ = write!(
                    b,
                    "<div class=\"card\"><div class=\"v{class}\"><a href=\"/register/machines?state={s}\">{n}</a></div><div class=\"l\">{label}</div></div>",
                    s = state.name(),
                    label = state.name().replace('_', " ")
                );
            }
            b.push_str("</div>");
        }
        Err(e) => {
            let _ = write!(b, "<p class=\"bad\">{}</p>", esc(&e.to_string()));
        }
    }
    match store.match_miners().await {
        Ok(m) => {
            let _ = write!(
                b,
                "<div class=\"cards\"><div class=\"card\"><div class=\"v\">{}</div><div class=\"l\">polled miners in the register</div></div>\
<div class=\"card\"><div class=\"v {}\">{}</div><div class=\"l\">polled miners nobody ordered</div></div></div>",
                m.matched.len(),
                if m.unordered.is_empty() { "ok" } else { "warn" },
                m.unordered.len()
            );
            if !m.unordered.is_empty() {
                b.push_str("<h2>Miners nobody ordered</h2><table><tr><th>site</th><th>address</th><th>make</th><th>model</th><th>serial</th><th>MAC</th></tr>");
                for p in m.unordered.iter().take(200) {
                    let v = serde_json::to_value(p).unwrap_or_default();
                    let f = |k: &str| esc(v.get(k).and_then(|x| x.as_str()).unwrap_or("–"));
                    let _ = write!(
                        b,
                        "<tr><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td></tr>",
                        f("site"), f("ip"), f("make"), f("model"), f("serial"), f("mac")
                    );
                }
                b.push_str("</table>");
            }
        }
        Err(e) => {
            let _ = write!(b, "<p class=\"bad\">{}</p>", esc(&e.to_string()));
        }
    }
    b.push_str("<p>Import machines and their events with <code>hashforge fleet import --assets FILE --events FILE --database URL</code>.</p>");
    page("Register", &b).into_response()
}

/// `/register/{name}`: one report, its chart and its table, with the day and prices as a
/// form, and the same numbers as CSV or JSON.
pub(super) async fn report_page(
    State(c): State<Arc<Collector>>,
    Path(name): Path<String>,
    Query(q): Query<ReportQuery>,
    raw: axum::extract::RawQuery,
) -> Response {
    let Some(store) = &c.store else {
        return register_page(State(c.clone())).await;
    };
    if !crate::reports::NAMES.contains(&name.as_str()) {
        return (
            StatusCode::NOT_FOUND,
            page("No such report", &register_nav("")),
        )
            .into_response();
    }
    let q = q.with(&c.config.prices);
    let mut b = format!("<h1>{}</h1>", esc(&name));
    b.push_str(&register_nav(&name));
    let v = |x: &Option<String>| esc(x.as_deref().unwrap_or(""));
    let _ = write!(
        b,
        "<form method=\"get\">as of <input name=\"at\" placeholder=\"YYYY-MM-DD\" value=\"{}\" size=\"10\"> \
hashprice $/PH/day <input name=\"hashprice\" value=\"{}\" size=\"6\"> energy $/kWh <input name=\"energy\" value=\"{}\" size=\"6\"> \
storage $/unit/day <input name=\"storage_rate\" value=\"{}\" size=\"6\"> <button>show</button></form>",
        v(&q.at), v(&q.hashprice), v(&q.energy), v(&q.storage_rate)
    );
    if name == "tariffs" {
        // The what-if: the same planned order from each origin, side by side.
        let _ = write!(
            b,
            "<form method=\"get\"><input type=\"hidden\" name=\"at\" value=\"{}\">what if we order \
<input name=\"what_if_units\" size=\"5\" placeholder=\"200\" value=\"{}\"> x \
<input name=\"what_if_model\" size=\"12\" placeholder=\"S21 XP\" value=\"{}\"> at $\
<input name=\"what_if_price\" size=\"7\" placeholder=\"5000\" value=\"{}\"> each, HTS \
<input name=\"what_if_hts\" size=\"10\" placeholder=\"8543.70.99\" value=\"{}\"> from \
<input name=\"what_if_origins\" size=\"14\" placeholder=\"US,MY,ID,TH,CN\" value=\"{}\"> <button>compare</button></form>",
            v(&q.at),
            v(&q.what_if_units),
            v(&q.what_if_model),
            v(&q.what_if_price),
            v(&q.what_if_hts),
            v(&q.what_if_origins)
        );
    }
    let params = match q.params() {
        Ok(p) => p,
        Err(e) => {
            let _ = write!(b, "<p class=\"bad\">{}</p>", esc(&e));
            return (StatusCode::UNPROCESSABLE_ENTITY, page(&name, &b)).into_response();
        }
    };
    let register = match store.register_cached().await {
        Ok(r) => r,
        Err(e) => {
            let _ = write!(b, "<p class=\"bad\">{}</p>", esc(&e.to_string()));
            return (StatusCode::INTERNAL_SERVER_ERROR, page(&name, &b)).into_response();
        }
    };
    let Some((value, table)) = crate::reports::by_name(&name, &register, &params) else {
        return (StatusCode::NOT_FOUND, page(&name, &b)).into_response();
    };
    let query = raw.0.unwrap_or_default();
    let sep = if query.is_empty() { "" } else { "&" };
    let _ = write!(
        b,
        "<p><a href=\"/api/assets/reports/{name}?{query}{sep}format=csv\">CSV</a> · <a href=\"/api/assets/reports/{name}?{query}\">JSON</a></p>",
        query = esc(&query)
    );
    if name == "customs" {
        // The holds' cost as it accrued: storage, and the cost of delay where a hashprice is
        // known.
        let days: Vec<(u64, f64)> = value
            .get("by_day")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
            .filter_map(|d| {
                let date: crate::date::Date = d.get("date")?.as_str()?.parse().ok()?;
                let storage = d.get("storage")?.as_f64()?;
                let delay = d
                    .get("cost_of_delay")
                    .and_then(|x| x.as_f64())
                    .unwrap_or(0.0);
                let secs = u64::try_from(date.days()).ok()? * 86_400;
                Some((secs, storage + delay))
            })
            .collect();
        if let (Some(first), Some(last)) = (days.first(), days.last()) {
            let label =
                |secs: u64| crate::date::Date::from_days((secs / 86_400) as i32).to_string();
            let what = if params.market.hashprice.is_empty() {
                "storage"
            } else {
                "storage and cost of delay"
            };
            let _ = write!(
                b,
                "<h2>what the holds had cost, day by day ({what})</h2>{}",
                super::chart_between(
                    &days,
                    &|x| crate::money::Usd::from_micros((x * 1e6).round() as i64).to_string(),
                    900,
                    220,
                    (&label(first.0), &label(last.0)),
                )
            );
        }
    }
    if name == "leadtimes" {
        // Where the days went: each stage's mean days and share of the whole.
        let rows: Vec<(String, f64, String)> = value
            .get("where_the_days_went")
            .and_then(|w| w.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let days = s.get("mean_days")?.as_f64()?;
                let share = s.get("share_pct")?.as_f64()?;
                Some((
                    s.get("stage")?.as_str()?.to_owned(),
                    days,
                    format!("{days:.1} d ({share:.1}%)"),
                ))
            })
            .collect();
        if !rows.is_empty() {
            let _ = write!(
                b,
                "<h2>where the days went (mean days per stage)</h2>{}",
                bars(&rows, 900)
            );
        }
    }
    // The first of the report's chart columns that has numbers (customs: the total needs a
    // hashprice; without one, storage alone), one bar per row but the totals.
    for (_, label, column, meaning) in REPORT_CHARTS.iter().filter(|r| r.0 == name) {
        let col = |h: &str| table.headers.iter().position(|x| x == h);
        let (Some(l), Some(vi)) = (col(label), col(column)) else {
            continue;
        };
        let unit = if column.ends_with('%') { "%" } else { "" };
        let rows: Vec<(String, f64, String)> = table
            .rows
            .iter()
            .filter(|r| {
                r.get(l)
                    .is_some_and(|x| !x.eq_ignore_ascii_case("total") && x != "fleet")
            })
            .filter_map(|r| {
                let text = r.get(vi)?;
                Some((
                    r.get(l)?.clone(),
                    cell_number(text)?,
                    format!("{text}{unit}"),
                ))
            })
            .take(24)
            .collect();
        if !rows.is_empty() {
            let _ = write!(b, "<h2>{}</h2>{}", esc(meaning), bars(&rows, 900));
            break;
        }
    }
    if let Some(w) = value.get("what_if").filter(|w| !w.is_null()) {
        b.push_str(&what_if_html(w));
    }
    b.push_str(&table_html(&table));
    if name == "repairs" {
        // The open tickets with their machines, boards, chips and evidence.
        b.push_str(&open_tickets(&register, params.at));
    }
    page(&name, &b).into_response()
}

/// The tariffs' what-if (its JSON): the order, landed cost per machine by origin as bars,
/// and each origin's duty layers.
fn what_if_html(w: &serde_json::Value) -> String {
    let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    let text = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let dollars = |x: Option<f64>| {
        x.map_or("–".into(), |x| {
            crate::money::Usd::from_micros((x * 1e6).round() as i64).to_string()
        })
    };
    let origins: Vec<&serde_json::Value> = w
        .get("origins")
        .and_then(serde_json::Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut b = format!(
        "<h2>What if: {} x {} at {} each ({}), entered {}</h2>",
        num(w, "units").unwrap_or(0.0),
        esc(&text(w, "model")),
        dollars(num(w, "unit_price")),
        esc(&text(w, "hts_code")),
        esc(&text(w, "date"))
    );
    let rows: Vec<(String, f64, String)> = origins
        .iter()
        .filter_map(|o| {
            let per = num(o, "landed_per_unit")?;
            Some((text(o, "origin"), per, dollars(Some(per))))
        })
        .collect();
    b.push_str(&bars(&rows, 900));
    b.push_str("<table><tr><th>origin</th><th>duty rate</th><th>layers</th><th>duty</th><th>fees</th><th>landed/unit</th><th>landed total</th></tr>");
    for o in origins {
        let layers: Vec<String> = o
            .get("layers")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .map(|l| {
                format!(
                    "{} {}%",
                    text(l, "layer"),
                    num(l, "rate_pct").unwrap_or(0.0)
                )
            })
            .collect();
        let _ = write!(
            b,
            "<tr><td class=\"t\">{}</td><td>{}%</td><td class=\"t w\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&text(o, "origin")),
            num(o, "duty_rate_pct").unwrap_or(0.0),
            esc(&layers.join(" + ")),
            dollars(num(o, "duty")),
            dollars(num(o, "fees")),
            dollars(num(o, "landed_per_unit")),
            dollars(num(o, "landed_total")),
        );
    }
    b.push_str("</table>");
    b
}

fn machine_link(serial: &str) -> String {
    format!(
        "<a href=\"/register/machine/{}\">{}</a>",
        esc(&path_segment(serial)),
        esc(serial)
    )
}

/// A serial as one path segment (serials are letters and digits; anything else escaped).
pub(super) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The repair tickets still open on `at`: machine, since when, fault, board, chips,
/// where it is, the evidence.
fn open_tickets(reg: &crate::assets::db::Register, at: crate::date::Date) -> String {
    let open: Vec<&crate::assets::Repair> = reg
        .repairs
        .iter()
        .filter(|r| r.opened <= at && r.back.is_none_or(|b| b > at) && r.outcome != Some("retired"))
        .collect();
    let mut b = format!("<h2>Open tickets ({})</h2>", open.len());
    if open.is_empty() {
        return b;
    }
    b.push_str("<table><tr><th>machine</th><th>model</th><th>opened</th><th>days out</th><th>fault</th><th>board</th><th>chips</th><th>where</th><th>evidence</th></tr>");
    for r in open.iter().rev().take(500) {
        let Some(a) = reg.asset(r.asset_id) else {
            continue;
        };
        let place = match (&r.centre, r.sent) {
            (Some(c), Some(d)) => format!("sent to {c} on {d}"),
            _ => "on site".into(),
        };
        let _ = write!(
            b,
            "<tr><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t w\">{}</td></tr>",
            machine_link(&a.serial),
            esc(&a.model),
            r.opened,
            at.since(r.opened).max(0),
            esc(&r.fault.replace('_', " ")),
            r.board.map_or("–".into(), |x| x.to_string()),
            esc(r.chips.as_deref().unwrap_or("–")),
            esc(&place),
            esc(r.evidence.as_deref().unwrap_or("")),
        );
    }
    b.push_str("</table>");
    b
}

/// The query of `/register/machines`.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct MachinesQuery {
    state: Option<String>,
    q: Option<String>,
    page: Option<usize>,
}

const MACHINES_PER_PAGE: usize = 100;

/// `/register/machines`: every machine of the register, filtered by state and by text
/// (serial, model, order, site), a page at a time.
pub(super) async fn machines_page(
    State(c): State<Arc<Collector>>,
    Query(q): Query<MachinesQuery>,
) -> Response {
    let Some(store) = &c.store else {
        return register_page(State(c.clone())).await;
    };
    let mut b = String::from("<h1>Machines</h1>");
    b.push_str(&register_nav("machines"));
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<crate::lifecycle::State>() {
            Ok(st) => Some(st),
            Err(e) => {
                let _ = write!(b, "<p class=\"bad\">{}</p>", esc(&e));
                return (StatusCode::UNPROCESSABLE_ENTITY, page("Machines", &b)).into_response();
            }
        },
    };
    let needle = q.q.as_deref().unwrap_or("").trim().to_ascii_lowercase();
    let _ = write!(
        b,
        "<form method=\"get\">state <select name=\"state\"><option value=\"\">any</option>{}</select> \
search <input name=\"q\" value=\"{}\" placeholder=\"serial, model, order, site\"> <button>show</button></form>",
        crate::lifecycle::State::ALL
            .iter()
            .map(|s| format!(
                "<option value=\"{n}\"{sel}>{label}</option>",
                n = s.name(),
                sel = if Some(*s) == state { " selected" } else { "" },
                label = s.name().replace('_', " ")
            ))
            .collect::<String>(),
        esc(&needle)
    );
    let reg = match store.register_cached().await {
        Ok(r) => r,
        Err(e) => {
            let _ = write!(b, "<p class=\"bad\">{}</p>", esc(&e.to_string()));
            return (StatusCode::INTERNAL_SERVER_ERROR, page("Machines", &b)).into_response();
        }
    };
    let hit = |a: &&crate::assets::db::AssetRecord| {
        state.is_none_or(|s| a.state == s)
            && (needle.is_empty()
                || [&a.serial, &a.model, &a.order_id]
                    .into_iter()
                    .chain(a.site.as_ref())
                    .any(|f| f.to_ascii_lowercase().contains(&needle)))
    };
    let total = reg.assets.iter().filter(hit).count();
    let pages = total.div_ceil(MACHINES_PER_PAGE).max(1);
    let at = q.page.unwrap_or(1).clamp(1, pages);
    let _ = write!(b, "<p>{total} machine(s), page {at} of {pages}</p>");
    b.push_str("<table><tr><th>serial</th><th>maker</th><th>model</th><th>TH/s</th><th>origin</th><th>order</th><th>ordered</th><th>state</th><th>since</th><th>site</th></tr>");
    for a in reg
        .assets
        .iter()
        .filter(hit)
        .skip((at - 1) * MACHINES_PER_PAGE)
        .take(MACHINES_PER_PAGE)
    {
        let _ = write!(
            b,
            "<tr><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{:.0}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td class=\"t\">{}</td><td>{}</td><td class=\"t\">{}</td></tr>",
            machine_link(&a.serial),
            esc(&a.maker),
            esc(&a.model),
            a.nameplate_ghs as f64 / 1000.0,
            esc(&a.origin),
            esc(&a.order_id),
            a.ordered_on,
            a.state.name().replace('_', " "),
            a.last_on,
            esc(a.site.as_deref().unwrap_or("–")),
        );
    }
    b.push_str("</table>");
    let link = |p: usize| {
        format!(
            "/register/machines?state={}&amp;q={}&amp;page={p}",
            state.map_or("", |s| s.name()),
            esc(&path_segment(&needle))
        )
    };
    b.push_str("<p class=\"pager\">");
    if at > 1 {
        let _ = write!(b, "<a href=\"{}\">previous</a>", link(at - 1));
    }
    if at < pages {
        let _ = write!(b, "<a href=\"{}\">next</a>", link(at + 1));
    }
    b.push_str("</p>");
    page("Machines", &b).into_response()
}

/// `/register/machine/{serial}`: what the machine is, where it is in its life, every event,
/// its repair tickets, and the polled miner that is it.
pub(super) async fn machine_page(
    State(c): State<Arc<Collector>>,
    Path(serial): Path<String>,
) -> Response {
    machine_view(c, serial, None).await
}

/// The form of `/register/machine/{serial}` that records an event (its fields as in
/// `events.csv`); an empty date is today.
#[derive(Debug, serde::Deserialize)]
pub(super) struct EventForm {
    event: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    place: String,
    #[serde(default)]
    shipment: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    fee_usd_per_unit_day: String,
    #[serde(default)]
    note: String,
}

/// `POST /register/machine/{serial}`: records the form's event, then shows the machine
/// (a refused event: why, with the machine as it is).
pub(super) async fn machine_event(
    State(c): State<Arc<Collector>>,
    Path(serial): Path<String>,
    axum::Form(f): axum::Form<EventForm>,
) -> Response {
    let Some(store) = &c.store else {
        return register_page(State(c.clone())).await;
    };
    let given = |s: String| {
        let t = s.trim();
        (!t.is_empty()).then(|| t.to_owned())
    };
    let spec = crate::assets::EventSpec {
        serial: serial.clone(),
        event: f.event.trim().to_owned(),
        date: given(f.date).unwrap_or_else(|| crate::date::Date::today().to_string()),
        place: given(f.place),
        shipment: given(f.shipment),
        reason: given(f.reason),
        fee_usd_per_unit_day: given(f.fee_usd_per_unit_day),
        note: given(f.note),
    };
    let refused = match spec.check() {
        Err(e) => e,
        Ok(event) => match store.record_event(event).await {
            Ok(_) => {
                let to = format!("/register/machine/{}", path_segment(&serial));
                return axum::response::Redirect::to(&to).into_response();
            }
            Err(e) => e.to_string(),
        },
    };
    let mut r = machine_view(c, serial, Some(refused)).await;
    if r.status() == StatusCode::OK {
        *r.status_mut() = StatusCode::CONFLICT;
    }
    r
}

/// The triage form: one step for the machine's open ticket.
#[derive(Debug, serde::Deserialize)]
pub(super) struct TriageForm {
    step: String,
}

/// `POST /register/machine/{serial}/triage`: adds the step to the open ticket.
pub(super) async fn machine_triage(
    State(c): State<Arc<Collector>>,
    Path(serial): Path<String>,
    axum::Form(f): axum::Form<TriageForm>,
) -> Response {
    let Some(store) = &c.store else {
        return register_page(State(c.clone())).await;
    };
    let refused = match super::triage_step(&f.step) {
        Err(e) => e,
        Ok(step) => match store.add_triage(&serial, step).await {
            Ok(true) => {
                let to = format!("/register/machine/{}", path_segment(&serial));
                return axum::response::Redirect::to(&to).into_response();
            }
            Ok(false) => "the machine has no open repair ticket".into(),
            Err(e) => e.to_string(),
        },
    };
    let mut r = machine_view(c, serial, Some(refused)).await;
    if r.status() == StatusCode::OK {
        *r.status_mut() = StatusCode::CONFLICT;
    }
    r
}

async fn machine_view(c: Arc<Collector>, serial: String, refused: Option<String>) -> Response {
    let Some(store) = &c.store else {
        return register_page(State(c.clone())).await;
    };
    let title = format!("Machine {serial}");
    let mut b = format!("<h1>{}</h1>", esc(&title));
    b.push_str(&register_nav(""));
    if let Some(why) = &refused {
        let _ = write!(b, "<p class=\"bad\">Not recorded: {}</p>", esc(why));
    }
    let reg = match store.machine(&serial).await {
        Ok(Some(r)) => r,
        Ok(None) => crate::assets::db::Register::default(),
        Err(e) => {
            let _ = write!(b, "<p class=\"bad\">{}</p>", esc(&e.to_string()));
            return (StatusCode::INTERNAL_SERVER_ERROR, page(&title, &b)).into_response();
        }
    };
    let Some(a) = reg.assets.iter().find(|a| a.serial == serial) else {
        b.push_str("<p class=\"bad\">No machine of that serial is in the register.</p>");
        return (StatusCode::NOT_FOUND, page(&title, &b)).into_response();
    };
    let polled = {
        let inv = c.inventory();
        inv.miners
            .iter()
            .find(|m| {
                m.serial.as_deref() == Some(a.serial.as_str())
                    || (a.mac.is_some() && m.mac.as_deref().map(str::to_ascii_lowercase) == a.mac)
            })
            .map(|m| m.ip)
    };
    let card = |v: String, l: &str| {
        format!("<div class=\"card\"><div class=\"v\">{v}</div><div class=\"l\">{l}</div></div>")
    };
    b.push_str("<div class=\"cards\">");
    b.push_str(&card(
        esc(&format!("{} {}", a.maker, a.model)),
        "make and model",
    ));
    b.push_str(&card(
        format!(
            "{:.0} TH/s · {} W",
            a.nameplate_ghs as f64 / 1000.0,
            a.nameplate_w
        ),
        "nameplate",
    ));
    b.push_str(&card(
        format!("{} since {}", a.state.name().replace('_', " "), a.last_on),
        "state",
    ));
    b.push_str(&card(
        format!("{} · {} · {}", esc(&a.order_id), a.ordered_on, a.price),
        "order, date, price",
    ));
    b.push_str(&card(
        format!("{} · HTS {}", esc(&a.origin), esc(&a.hts_code)),
        "origin",
    ));
    b.push_str(&card(
        match polled {
            Some(ip) => format!("<a href=\"/miner/{ip}\">{ip}</a>"),
            None => "–".into(),
        },
        "polled as",
    ));
    b.push_str("</div>");
    match store.events_of(&a.serial).await {
        Ok(events) => {
            b.push_str("<h2>Life</h2><table><tr><th>#</th><th>date</th><th>event</th><th>place</th><th>shipment</th><th>reason</th><th>fee $/unit/day</th><th>note</th></tr>");
            for e in &events {
                let f = |k: &str| {
                    esc(match e.get(k) {
                        Some(serde_json::Value::String(s)) => s.as_str(),
                        _ => "",
                    })
                };
                let fee = e
                    .get("fee_usd_per_unit_day")
                    .and_then(serde_json::Value::as_f64)
                    .map_or(String::new(), |x| format!("{x:.2}"));
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{fee}</td><td class=\"t w\">{}</td></tr>",
                    e.get("seq").and_then(serde_json::Value::as_i64).unwrap_or(0),
                    f("date"),
                    f("event").replace('_', " "),
                    f("place"),
                    f("shipment"),
                    f("reason"),
                    f("note"),
                );
            }
            b.push_str("</table>");
        }
        Err(e) => {
            let _ = write!(b, "<p class=\"bad\">{}</p>", esc(&e.to_string()));
        }
    }
    // Record what happened next: the events its state allows.
    let allowed = a.state.allowed();
    if !allowed.is_empty() {
        let _ = write!(
            b,
            "<form method=\"post\"><select name=\"event\">{}</select> on <input name=\"date\" size=\"10\" placeholder=\"today\"> \
place <input name=\"place\" size=\"14\" placeholder=\"site/row/rack/pos, centre\"> shipment <input name=\"shipment\" size=\"10\"> \
reason <input name=\"reason\" size=\"12\"> fee $/unit/day <input name=\"fee_usd_per_unit_day\" size=\"5\"> \
note <input name=\"note\" size=\"16\"> <button>record</button></form>",
            allowed
                .iter()
                .map(|e| format!("<option>{}</option>", e.name()))
                .collect::<String>()
        );
    }
    let tickets: Vec<&crate::assets::Repair> =
        reg.repairs.iter().filter(|r| r.asset_id == a.id).collect();
    if !tickets.is_empty() {
        b.push_str("<h2>Repair tickets</h2><table><tr><th>opened</th><th>fault</th><th>board</th><th>chips</th><th>centre</th><th>sent</th><th>back</th><th>outcome</th><th>evidence</th><th>triage</th></tr>");
        for r in tickets {
            let d = |x: Option<crate::date::Date>| x.map_or("–".into(), |d| d.to_string());
            let _ = write!(
                b,
                "<tr><td>{}</td><td class=\"t\">{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"t w\">{}</td><td class=\"t w\">{}</td></tr>",
                r.opened,
                esc(&r.fault.replace('_', " ")),
                r.board.map_or("–".into(), |x| x.to_string()),
                esc(r.chips.as_deref().unwrap_or("–")),
                esc(r.centre.as_deref().unwrap_or("–")),
                d(r.sent),
                d(r.back),
                r.outcome.unwrap_or("open").replace('_', " "),
                esc(r.evidence.as_deref().unwrap_or("")),
                esc(r.triage.as_deref().unwrap_or("–")),
            );
        }
        b.push_str("</table>");
        if a.state == crate::lifecycle::State::Failed
            || a.state == crate::lifecycle::State::InRepair
        {
            let _ = write!(
                b,
                "<form method=\"post\" action=\"/register/machine/{}/triage\">triage step <input name=\"step\" size=\"40\" placeholder=\"swap cable: the fault followed the board\"> <button>add to the open ticket</button></form>",
                esc(&path_segment(&a.serial))
            );
        }
    }
    page(&title, &b).into_response()
}
