//! The customer's pages: signed links in, the preference center, "opt out of everything", and
//! GPC. Server-rendered typed templates (askama, `templates/`), every word from `i18n/`.
//! Plain forms with POST-redirect-GET, so they work without JavaScript. Every state change calls
//! the same service functions as the JSON API.

pub mod i18n;

use askama::Template;
use assent_core::ControllerId;
use assent_service::center::PageEvidence;
use assent_service::links::{LinkError, Session};
use assent_store::Store;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::AppState;
use crate::extract::gpc;
use i18n::Tr;

const SESSION_COOKIE: &str = "assent_session";
const LANG_COOKIE: &str = "assent_lang";

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    lang: &'static str,
    title: String,
    message: String,
}

struct CardView {
    id: String,
    text: assent_core::catalog::NoticeText,
    data: String,
    status_text: String,
    since: Option<String>,
    necessary: bool,
    on: bool,
    version: u32,
}

#[derive(Template)]
#[template(path = "center.html")]
struct CenterPage {
    lang: &'static str,
    title: String,
    t: Tr,
    controller: String,
    controller_name: String,
    csrf: String,
    notices: Vec<String>,
    cards: Vec<CardView>,
}

fn render(page: &impl Template, status: StatusCode) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn message(lang: &'static str, key: &str, status: StatusCode) -> Response {
    let t = Tr::new(lang);
    render(&MessagePage { lang, title: t.get(&format!("{key}_title")), message: t.get(key) }, status)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn language(headers: &HeaderMap, query: Option<&str>) -> &'static str {
    i18n::negotiate(
        query,
        cookie(headers, LANG_COOKIE),
        headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
    )
}

/// Cookies are Secure whenever the request arrived over TLS (directly or through a proxy).
fn secure(headers: &HeaderMap) -> &'static str {
    let tls = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes() == b"https");
    if tls { "; Secure" } else { "" }
}

/// Only the customer's own browser, on these pages, may change their choices: the form must
/// echo the session's token, and a browser saying the request is cross-site is refused.
fn same_site_form(headers: &HeaderMap) -> bool {
    headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_none_or(|v| v == "same-origin" || v == "none")
}

fn evidence(headers: &HeaderMap, point: &str) -> PageEvidence {
    let ip = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| match ip {
            std::net::IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.0/24", o[0], o[1], o[2])
            }
            std::net::IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        });
    PageEvidence {
        collection_point: point.to_owned(),
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
        ip_prefix: ip,
    }
}

fn session_of<S: Store>(state: &AppState<S>, controller: &str, headers: &HeaderMap) -> Option<(Session, String)> {
    let id = ControllerId::parse(controller).ok()?;
    let value = cookie(headers, SESSION_COOKIE)?;
    state.session(&id, value).map(|s| (s, value.to_owned()))
}

#[derive(serde::Deserialize)]
pub(crate) struct OpenQuery {
    token: Option<String>,
    lang: Option<String>,
}

/// Opens a signed link: sets the session cookie and redirects to a clean URL without the token.
pub(crate) async fn open<S: Store>(
    State(state): State<AppState<S>>,
    Path(controller): Path<String>,
    Query(q): Query<OpenQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    let Some(token) = q.token else { return message(lang, "link_invalid", StatusCode::BAD_REQUEST) };
    match state.open_link(&controller, &token).await {
        Ok((_, value)) => {
            let mut response = Redirect::to(&format!("/p/{controller}")).into_response();
            let cookie = format!(
                "{SESSION_COOKIE}={value}; Path=/p/{controller}; HttpOnly; SameSite=Lax; Max-Age=3600{}",
                secure(&headers)
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(LinkError::Expired) => message(lang, "link_expired", StatusCode::GONE),
        Err(LinkError::Used) => message(lang, "link_used", StatusCode::GONE),
        Err(LinkError::Invalid) => message(lang, "link_invalid", StatusCode::FORBIDDEN),
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct CenterQuery {
    lang: Option<String>,
    done: Option<String>,
}

/// The preference center.
pub(crate) async fn center<S: Store>(
    State(state): State<AppState<S>>,
    Path(controller): Path<String>,
    Query(q): Query<CenterQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    let Some((session, cookie_value)) = session_of(&state, &controller, &headers) else {
        return message(lang, "no_session", StatusCode::UNAUTHORIZED);
    };
    let t = Tr::new(lang);
    let mut notices = Vec::new();
    match q.done.as_deref() {
        Some("saved") => notices.push(t.get("saved")),
        Some("all") => notices.push(t.get("withdrawn_all")),
        _ => {}
    }
    if gpc(&headers) {
        match state.page_gpc(&session, lang, &evidence(&headers, "preference-center")).await {
            Ok(out) if !out.withdrawn.is_empty() => notices.push(t.get("gpc_applied")),
            Ok(_) => notices.push(t.get("gpc_applied")),
            Err(e) => tracing::error!(error = %e, "could not record a GPC signal"),
        }
    }
    let view = match state.center(&session, lang).await {
        Ok(v) => v,
        Err(_) => return message(lang, "no_session", StatusCode::NOT_FOUND),
    };
    let cards = view
        .cards
        .into_iter()
        .map(|c| {
            let necessary = c.model == assent_core::ConsentModel::Necessary;
            let status_key = if necessary {
                "status_necessary".to_owned()
            } else if c.model == assent_core::ConsentModel::OptOut && c.status == assent_core::Status::NotAsked {
                "status_not_objected".to_owned()
            } else {
                format!("status_{}", c.status.as_str())
            };
            CardView {
                id: c.id,
                data: c.data.join(", "),
                text: c.text,
                status_text: t.get(&status_key),
                since: c.since.map(|s| s.to_string().chars().take(10).collect()),
                necessary,
                on: c.allowed,
                version: c.current_version,
            }
        })
        .collect();
    let csrf = state.csrf_token(&session.controller, &cookie_value).unwrap_or_default();
    let page = CenterPage {
        lang,
        title: t.get("center_title"),
        t,
        controller,
        controller_name: view.controller_name,
        csrf,
        notices,
        cards,
    };
    let mut response = render(&page, StatusCode::OK);
    if let Some(l) = q.lang.as_deref().filter(|l| i18n::LANGUAGES.contains(l))
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={l}; Path=/p; SameSite=Lax; Max-Age=31536000{}",
            secure(&headers)
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(serde::Deserialize)]
pub(crate) struct ChoiceForm {
    csrf: String,
    purpose: String,
    choice: String,
    version: Option<u32>,
}

fn check_form<S: Store>(
    state: &AppState<S>,
    controller: &str,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Session, Box<Response>> {
    let lang = language(headers, None);
    let Some((session, cookie_value)) = session_of(state, controller, headers) else {
        return Err(Box::new(message(lang, "no_session", StatusCode::UNAUTHORIZED)));
    };
    let expected = state.csrf_token(&session.controller, &cookie_value).unwrap_or_default();
    let token_ok = !expected.is_empty() && assent_core::crypto::constant_time_eq(expected.as_bytes(), csrf.as_bytes());
    if !token_ok || !same_site_form(headers) {
        return Err(Box::new(message(lang, "forbidden", StatusCode::FORBIDDEN)));
    }
    Ok(session)
}

/// One yes or no, from a card.
pub(crate) async fn choice<S: Store>(
    State(state): State<AppState<S>>,
    Path(controller): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ChoiceForm>,
) -> Response {
    let session = match check_form(&state, &controller, &headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let lang = language(&headers, None);
    let grant = form.choice == "yes";
    let recorded = state
        .page_choice(&session, &form.purpose, grant, form.version, lang, &evidence(&headers, "preference-center"))
        .await;
    match recorded {
        Ok(()) => Redirect::to(&format!("/p/{controller}?done=saved#purpose-{}", form.purpose)).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "a page choice was refused");
            message(lang, "forbidden", StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct CsrfForm {
    csrf: String,
}

/// "Opt out of everything".
pub(crate) async fn withdraw_all<S: Store>(
    State(state): State<AppState<S>>,
    Path(controller): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let session = match check_form(&state, &controller, &headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let lang = language(&headers, None);
    match state.page_withdraw_all(&session, gpc(&headers), lang, &evidence(&headers, "preference-center")).await {
        Ok(_) => Redirect::to(&format!("/p/{controller}?done=all")).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "opt out of everything failed");
            message(lang, "forbidden", StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// `/.well-known/gpc.json`: this site honours Global Privacy Control.
pub(crate) async fn gpc_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"gpc": true, "lastUpdate": "2026-11-29"}"#)
}
