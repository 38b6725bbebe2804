//! The curtailment pages: `/curtail` (the form that sleeps, wakes or power-limits a group,
//! and the runs so far with the group's power before and after) and `/curtail/{id}` (each
//! machine of a run: how the command went, its watts before and after, when it confirmed);
//! `POST /api/curtail` and `GET /api/curtail` are the same as JSON.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::json;

use super::{esc, page, watts};
use crate::curtail::{Action, Group, Outcome, Run};
use crate::poll::Collector;

/// A curtailment as the form and the API send it.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Ask {
    /// `sleep`, `wake`, `clear`, or `target` with `watts`.
    action: String,
    #[serde(default)]
    watts: Option<String>,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    text: Option<String>,
    /// Serials or addresses, separated by commas, spaces or new lines (the form), or a
    /// list (the API).
    #[serde(default)]
    protect: Protect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Protect {
    #[default]
    None,
    Text(String),
    List(Vec<String>),
}

impl Ask {
    fn parse(self) -> Result<(Action, Group), String> {
        let action = match self.action.trim() {
            "target" => Action::parse(self.watts.as_deref().unwrap_or(""))
                .map_err(|e| format!("watts: {e}"))?,
            other => Action::parse(other)?,
        };
        let protect = match self.protect {
            Protect::None => Vec::new(),
            Protect::Text(t) => t
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Protect::List(l) => l,
        };
        let clean = |s: Option<String>| s.map(|x| x.trim().to_owned()).filter(|x| !x.is_empty());
        Ok((
            action,
            Group {
                site: clean(self.site),
                model: clean(self.model),
                text: clean(self.text),
                protect,
            },
        ))
    }
}

fn runs(c: &Collector) -> Vec<Run> {
    c.curtailments
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

fn group_text(g: &Group) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &g.site {
        parts.push(format!("site {s}"));
    }
    if let Some(m) = &g.model {
        parts.push(format!("model {m}"));
    }
    if let Some(t) = &g.text {
        parts.push(format!("matching “{t}”"));
    }
    if !g.protect.is_empty() {
        parts.push(format!("{} protected", g.protect.len()));
    }
    if parts.is_empty() {
        "every online machine".into()
    } else {
        parts.join(", ")
    }
}

fn ms_text(ms: Option<u64>) -> String {
    ms.map_or("–".into(), |ms| match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=9_999 => format!("{:.2} s", ms as f64 / 1000.0),
        _ => format!("{:.0} s", ms as f64 / 1000.0),
    })
}

/// Before and after as two bars.
fn before_after(run: &Run) -> String {
    let max = run.power_before_w.max(run.power_after_w).max(1.0);
    let w = 640.0;
    let mut s = String::from("<svg width=\"760\" height=\"62\" role=\"img\">");
    for (i, (label, v, colour)) in [
        ("before", run.power_before_w, "#8a94a6"),
        ("after", run.power_after_w, "#1f5fbf"),
    ]
    .into_iter()
    .enumerate()
    {
        let y = 6.0 + i as f64 * 26.0;
        let len = v / max * (w - 140.0);
        let _ = write!(
            s,
            "<text x=\"56\" y=\"{:.0}\" font-size=\"12\" text-anchor=\"end\">{label}</text>\
<rect x=\"62\" y=\"{y:.0}\" width=\"{len:.1}\" height=\"20\" fill=\"{colour}\" rx=\"2\"/>\
<text x=\"{:.1}\" y=\"{:.0}\" font-size=\"12\" fill=\"#667\">{}</text>",
            y + 15.0,
            62.0 + len + 6.0,
            y + 15.0,
            watts(v)
        );
    }
    s.push_str("</svg>");
    s
}

fn outcome_class(o: Outcome) -> &'static str {
    match o {
        Outcome::Confirmed => "ok",
        Outcome::Unconfirmed | Outcome::Unsupported | Outcome::Protected => "warn",
        Outcome::Refused | Outcome::Unreachable => "bad",
    }
}

const FORM: &str = "<form method=\"post\" action=\"/curtail\">\
<select name=\"action\"><option value=\"sleep\">sleep</option><option value=\"wake\">wake</option>\
<option value=\"target\">power target</option><option value=\"clear\">clear the power target</option></select> \
watts <input name=\"watts\" size=\"6\" placeholder=\"2500\"> \
site <input name=\"site\" size=\"8\"> model <input name=\"model\" size=\"10\" placeholder=\"S21 Pro\"> \
matching <input name=\"text\" size=\"12\" placeholder=\"address, serial\"> \
protected <input name=\"protect\" size=\"24\" placeholder=\"serials or addresses\"> <button>run</button></form>\
<p>hashforge miners take a power target, sleep and wake through their cgminer API (the console's <code>--api-token</code>); \
stock Antminers sleep and wake through their web CGI; other firmware is listed and left alone.</p>";

/// `/curtail`: the form and the runs so far.
pub(super) async fn curtail_page(State(c): State<Arc<Collector>>) -> Response {
    page("Curtailment", &runs_body(&c, None)).into_response()
}

fn runs_body(c: &Collector, message: Option<String>) -> String {
    let mut b = String::from("<h1>Curtailment</h1>");
    if let Some(m) = message {
        b.push_str(&m);
    }
    b.push_str(FORM);
    let runs = runs(c);
    let _ = write!(b, "<h2>Runs ({})</h2>", runs.len());
    if runs.is_empty() {
        b.push_str("<p>None yet.</p>");
        return b;
    }
    b.push_str("<table><tr><th>#</th><th>started</th><th>action</th><th>group</th><th>machines</th><th>confirmed</th><th>not done</th><th>left alone</th><th>before</th><th>after</th><th>confirmed in</th></tr>");
    for r in runs.iter().rev() {
        let _ = write!(
            b,
            "<tr><td><a href=\"/curtail/{id}\">{id}</a></td><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td class=\"ok\">{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            duration_ago(r.started_unix),
            esc(&r.action.label()),
            esc(&group_text(&r.group)),
            r.machines,
            r.confirmed,
            if r.unconfirmed + r.refused + r.unreachable > 0 { "bad" } else { "" },
            r.unconfirmed + r.refused + r.unreachable,
            r.unsupported + r.protected,
            watts(r.power_before_w),
            watts(r.power_after_w),
            ms_text(r.confirmed_within_ms),
            id = r.id,
        );
    }
    b.push_str("</table>");
    b
}

fn duration_ago(unix: u64) -> String {
    let ago = crate::unix_now().saturating_sub(unix);
    format!("{} ago", hashforge_metrics::duration_for_people(ago as f64))
}

/// `POST /curtail` (the form): runs it, then shows the run.
pub(super) async fn curtail_post(
    State(c): State<Arc<Collector>>,
    Form(ask): Form<Ask>,
) -> Response {
    match ask.parse() {
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                "Curtailment",
                &runs_body(&c, Some(format!("<p class=\"bad\">{}</p>", esc(&e)))),
            ),
        )
            .into_response(),
        Ok((action, group)) => {
            let run = c.curtail(action, group).await;
            run_page(&run).into_response()
        }
    }
}

/// `/curtail/{id}`: one run, machine by machine.
pub(super) async fn run_detail(State(c): State<Arc<Collector>>, Path(id): Path<u64>) -> Response {
    match runs(&c).into_iter().find(|r| r.id == id) {
        Some(r) => run_page(&r).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            page(
                "Curtailment",
                "<p class=\"bad\">No such run (a console keeps its last 50).</p>",
            ),
        )
            .into_response(),
    }
}

fn run_page(r: &Run) -> axum::response::Html<String> {
    let mut b = format!(
        "<h1>Curtailment {}: {}</h1><p>{} · {} machine(s) · started {} · took {} · <a href=\"/curtail\">all runs</a></p>",
        r.id,
        esc(&r.action.label()),
        esc(&group_text(&r.group)),
        r.machines,
        duration_ago(r.started_unix),
        ms_text(Some((r.elapsed_secs * 1000.0) as u64))
    );
    let card = |v: String, l: &str, class: &str| {
        format!("<div class=\"card\"><div class=\"v {class}\">{v}</div><div class=\"l\">{l}</div></div>")
    };
    b.push_str("<div class=\"cards\">");
    b.push_str(&card(r.confirmed.to_string(), "confirmed", "ok"));
    let not_done = r.unconfirmed + r.refused + r.unreachable;
    b.push_str(&card(
        not_done.to_string(),
        "not done (refused, unreachable, unconfirmed)",
        if not_done > 0 { "bad" } else { "" },
    ));
    b.push_str(&card(
        (r.unsupported + r.protected).to_string(),
        "left alone (protected, firmware without the command)",
        "",
    ));
    b.push_str(&card(
        ms_text(r.confirmed_within_ms),
        "until the last confirmed",
        "",
    ));
    b.push_str("</div>");
    let _ = write!(
        b,
        "<h2>The group's power (machines it touched, as they report it)</h2>{}",
        before_after(r)
    );
    b.push_str("<table><tr><th>address</th><th>serial</th><th>model</th><th>via</th><th>outcome</th><th>before</th><th>after</th><th>confirmed after</th><th>what it said</th></tr>");
    for m in &r.results {
        let w = |x: Option<f64>| x.map_or("–".into(), watts);
        let _ = write!(
            b,
            "<tr><td class=\"t\"><a href=\"/miner/{ip}\">{ip}</a></td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t {}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td></tr>",
            esc(m.serial.as_deref().unwrap_or("–")),
            esc(&m.model),
            if m.via.is_empty() { "–" } else { m.via },
            outcome_class(m.outcome),
            format!("{:?}", m.outcome).to_ascii_lowercase(),
            w(m.power_before_w),
            w(m.power_after_w),
            ms_text(m.confirmed_ms),
            esc(&m.detail),
            ip = m.ip,
        );
    }
    b.push_str("</table>");
    page(&format!("Curtailment {}", r.id), &b)
}

/// `POST /api/curtail` (JSON): runs it; the run as JSON.
pub(super) async fn api_curtail(State(c): State<Arc<Collector>>, Json(ask): Json<Ask>) -> Response {
    match ask.parse() {
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": e })),
        )
            .into_response(),
        Ok((action, group)) => Json(c.curtail(action, group).await).into_response(),
    }
}

/// `GET /api/curtail`: the runs this console keeps.
pub(super) async fn api_runs(State(c): State<Arc<Collector>>) -> Response {
    Json(json!({ "runs": runs(&c) })).into_response()
}
