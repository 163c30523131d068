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
    changes: Vec<(String, String, String)>,
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
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            // Pages carry a customer's choices (and the prompt, their session): never cache them,
            // never leak their URL onward.
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            response
        }
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

/// Cookies are Secure whenever the request arrived over TLS (as a proxy announces it), or when
/// configured (`secure_cookies`, or a public URL starting with `https://`).
fn secure<S: Store>(state: &AppState<S>, headers: &HeaderMap) -> &'static str {
    let tls = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes() == b"https");
    if tls || state.secure_cookies() { "; Secure" } else { "" }
}

/// Only the customer's own browser, on these pages, may change their choices: the form must
/// echo the session's token, and a browser saying the request is cross-site is refused.
fn same_site_form(headers: &HeaderMap) -> bool {
    headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_none_or(|v| v == "same-origin" || v == "none")
}

/// The client's address: the socket peer, or, behind a trusted proxy, the entry that proxy
/// appended to `X-Forwarded-For` (the rightmost: earlier ones are the client's to invent).
pub(crate) struct Peer(Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())))
    }
}

fn client_ip<S: Store>(state: &AppState<S>, peer: &Peer, headers: &HeaderMap) -> Option<std::net::IpAddr> {
    if state.trust_proxy() {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer.0
}

fn evidence(ip: Option<std::net::IpAddr>, headers: &HeaderMap, point: &str) -> PageEvidence {
    let ip = ip.map(|ip| match ip {
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

#[derive(Template)]
#[template(path = "continue.html")]
struct ContinuePage {
    lang: &'static str,
    title: String,
    t: Tr,
    controller: String,
    token: String,
}

fn link_error(lang: &'static str, e: LinkError) -> Response {
    match e {
        LinkError::Expired => message(lang, "link_expired", StatusCode::GONE),
        LinkError::Used => message(lang, "link_used", StatusCode::GONE),
        LinkError::Invalid => message(lang, "link_invalid", StatusCode::FORBIDDEN),
    }
}

/// A signed link lands here. Looking does not spend it (mail scanners and previews fetch links
/// too): the page asks the customer to continue, and that POST spends it.
pub(crate) async fn open<S: Store>(
    State(state): State<AppState<S>>,
    Path(controller): Path<String>,
    Query(q): Query<OpenQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    let Some(token) = q.token else { return message(lang, "link_invalid", StatusCode::BAD_REQUEST) };
    if let Err(e) = state.check_link(&controller, &token).await {
        return link_error(lang, e);
    }
    let t = Tr::new(lang);
    with_frame_policy(
        render(&ContinuePage { lang, title: t.get("continue_title"), t, controller, token }, StatusCode::OK),
        "'none'",
    )
}

#[derive(serde::Deserialize)]
pub(crate) struct OpenForm {
    token: String,
}

/// Spends the link: sets the session cookie and redirects to a clean URL without the token.
pub(crate) async fn open_post<S: Store>(
    State(state): State<AppState<S>>,
    Path(controller): Path<String>,
    headers: HeaderMap,
    Form(form): Form<OpenForm>,
) -> Response {
    let lang = language(&headers, None);
    match state.open_link(&controller, &form.token).await {
        Ok((_, value)) => {
            let mut response = Redirect::to(&format!("/p/{controller}")).into_response();
            let cookie = format!(
                "{SESSION_COOKIE}={value}; Path=/p/{controller}; HttpOnly; SameSite=Lax; Max-Age=3600{}",
                secure(&state, &headers)
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => link_error(lang, e),
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
    peer: Peer,
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
        match state
            .page_gpc(&session, lang, &evidence(client_ip(&state, &peer, &headers), &headers, "preference-center"))
            .await
        {
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
                changes: c.changes.into_iter().map(|(field, before, now)| (t.get(&field), before, now)).collect(),
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
            secure(&state, &headers)
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_frame_policy(response, "'none'")
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
    peer: Peer,
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
        .page_choice(
            &session,
            &form.purpose,
            grant,
            form.version,
            lang,
            &evidence(client_ip(&state, &peer, &headers), &headers, "preference-center"),
        )
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
    peer: Peer,
    Path(controller): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let session = match check_form(&state, &controller, &headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let lang = language(&headers, None);
    match state
        .page_withdraw_all(
            &session,
            gpc(&headers),
            lang,
            &evidence(client_ip(&state, &peer, &headers), &headers, "preference-center"),
        )
        .await
    {
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

struct HistoryItemView {
    seq: u64,
    at: String,
    at_iso: String,
    action: String,
    purpose: String,
    method: String,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    lang: &'static str,
    title: String,
    t: Tr,
    controller: String,
    items: Vec<HistoryItemView>,
}

/// Every event of the customer, in words, with a receipt to download for each.
pub(crate) async fn history<S: Store>(
    State(state): State<AppState<S>>,
    Path(controller): Path<String>,
    Query(q): Query<CenterQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    let Some((session, _)) = session_of(&state, &controller, &headers) else {
        return message(lang, "no_session", StatusCode::UNAUTHORIZED);
    };
    let t = Tr::new(lang);
    let Ok(lines) = state.page_history(&session, lang).await else {
        return message(lang, "no_session", StatusCode::NOT_FOUND);
    };
    let items = lines
        .into_iter()
        .map(|l| {
            let iso = l.at.to_string();
            HistoryItemView {
                seq: l.seq,
                at: format!("{} {} UTC", iso.get(..10).unwrap_or_default(), iso.get(11..16).unwrap_or_default()),
                at_iso: iso,
                action: t.get(&format!("action_{}", l.action.as_str())),
                purpose: l.purpose,
                method: t.get(&format!("method_{}", l.method.as_str())),
            }
        })
        .collect();
    let page = HistoryPage { lang, title: t.get("history_title"), t, controller, items };
    with_frame_policy(render(&page, StatusCode::OK), "'none'")
}

/// A receipt, as a file the customer keeps.
pub(crate) async fn receipt<S: Store>(
    State(state): State<AppState<S>>,
    Path((controller, seq)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&headers, None);
    let Some((session, _)) = session_of(&state, &controller, &headers) else {
        return message(lang, "no_session", StatusCode::UNAUTHORIZED);
    };
    let Ok(principal) = state.system_principal(&session.controller).await else {
        return message(lang, "no_session", StatusCode::NOT_FOUND);
    };
    match state.receipt(&principal, session.subject.as_str(), seq).await {
        Ok(receipt) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_str(&format!("attachment; filename=\"receipt-{seq}.json\""))
                        .unwrap_or(HeaderValue::from_static("attachment")),
                ),
            ],
            serde_json::json!({ "receipt": receipt }).to_string(),
        )
            .into_response(),
        Err(_) => message(lang, "no_session", StatusCode::NOT_FOUND),
    }
}

/// Pages may only be framed by the controller's own sites (the prompt) or not at all.
fn with_frame_policy(mut response: Response, ancestors: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("frame-ancestors {ancestors}")) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

#[derive(Template)]
#[template(path = "prompt.html")]
struct PromptPage {
    lang: &'static str,
    title: String,
    t: Tr,
    controller: String,
    purpose: String,
    text: assent_core::catalog::NoticeText,
    data: String,
    version: u32,
    hash: String,
    session: String,
    csrf: String,
    return_to: String,
}

#[derive(serde::Deserialize)]
pub(crate) struct AskQuery {
    token: Option<String>,
    return_to: Option<String>,
    lang: Option<String>,
}

/// Where the customer may be sent back to: this controller's pages, or one of its origins.
fn allowed_return(return_to: &str, controller: &str, origins: &[String]) -> bool {
    if return_to.starts_with(&format!("/p/{controller}")) && !return_to.contains("//") {
        return true;
    }
    origins
        .iter()
        .any(|o| return_to == o || return_to.strip_prefix(o.as_str()).is_some_and(|rest| rest.starts_with('/')))
}

/// The consent prompt at the point of collection: one purpose, a yes and a no of equal weight.
/// It works inside the controller's own pages (an iframe) without cookies: a signed link opens
/// it, and its form carries the session.
pub(crate) async fn ask<S: Store>(
    State(state): State<AppState<S>>,
    Path((controller, purpose)): Path<(String, String)>,
    Query(q): Query<AskQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&headers, q.lang.as_deref());
    // With a link, the prompt is shown without spending it; answering spends it. Without one,
    // the customer's session cookie is used.
    let opened = match q.token.as_deref() {
        Some(token) => match state.check_link(&controller, token).await {
            Ok((id, subject, _)) => Some((
                Session { controller: id, subject, expires_at: assent_core::Timestamp::from_unix_millis(0) },
                format!("link:{token}"),
            )),
            Err(e) => return link_error(lang, e),
        },
        None => session_of(&state, &controller, &headers),
    };
    let Some((session, session_value)) = opened else { return message(lang, "no_session", StatusCode::UNAUTHORIZED) };
    let origins = state.allowed_origins(&session.controller).await;
    let return_to = q.return_to.filter(|r| allowed_return(r, &controller, &origins)).unwrap_or_default();
    let Ok(Some(view)) = state.prompt_view(&session, &purpose, lang).await else {
        return message(lang, "link_invalid", StatusCode::NOT_FOUND);
    };
    let t = Tr::new(lang);
    let csrf = state.csrf_token(&session.controller, &session_value).unwrap_or_default();
    let page = PromptPage {
        lang,
        title: view.text.title.clone(),
        t,
        controller,
        purpose,
        text: view.text,
        data: view.data.join(", "),
        version: view.version,
        hash: view.hash,
        session: session_value,
        csrf,
        return_to,
    };
    let ancestors = std::iter::once("'self'".to_owned()).chain(origins).collect::<Vec<_>>().join(" ");
    with_frame_policy(render(&page, StatusCode::OK), &ancestors)
}

#[derive(serde::Deserialize)]
pub(crate) struct AskForm {
    session: String,
    csrf: String,
    version: u32,
    hash: String,
    choice: String,
    #[serde(default)]
    return_to: String,
}

pub(crate) async fn answer<S: Store>(
    State(state): State<AppState<S>>,
    peer: Peer,
    Path((controller, purpose)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<AskForm>,
) -> Response {
    let lang = language(&headers, None);
    let Some(id) = ControllerId::parse(&controller).ok() else {
        return message(lang, "link_invalid", StatusCode::NOT_FOUND);
    };
    // The form carries either a session or the link that opened the prompt (inside a frame no
    // cookie reaches us). Find the customer without spending anything yet.
    let link_token = form.session.strip_prefix("link:");
    let session = match link_token {
        Some(token) => match state.check_link(&controller, token).await {
            Ok((controller_id, subject, _)) => {
                Session { controller: controller_id, subject, expires_at: assent_core::Timestamp::from_unix_millis(0) }
            }
            Err(e) => return link_error(lang, e),
        },
        None => match state.session(&id, &form.session) {
            Some(session) => session,
            None => return message(lang, "no_session", StatusCode::UNAUTHORIZED),
        },
    };
    let expected = state.csrf_token(&id, &form.session).unwrap_or_default();
    if expected.is_empty() || !assent_core::crypto::constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return message(lang, "forbidden", StatusCode::FORBIDDEN);
    }
    // The answer counts only for the exact text the customer read.
    match state.prompt_view(&session, &purpose, lang).await {
        Ok(Some(view)) if view.version == form.version && view.hash == form.hash => {}
        Ok(Some(_)) => return message(lang, "notice_changed", StatusCode::CONFLICT),
        _ => return message(lang, "link_invalid", StatusCode::NOT_FOUND),
    }
    // Only a valid answer spends the link, once.
    if let Some(token) = link_token
        && let Err(e) = state.open_link(&controller, token).await
    {
        return link_error(lang, e);
    }
    let mut evidence = evidence(client_ip(&state, &peer, &headers), &headers, "prompt");
    evidence.collection_point = format!("prompt {}", form.hash);
    let grant = form.choice == "yes";
    if let Err(e) = state.page_choice(&session, &purpose, grant, Some(form.version), lang, &evidence).await {
        tracing::warn!(error = %e, "a prompt answer was refused");
        return message(lang, "forbidden", StatusCode::UNPROCESSABLE_ENTITY);
    }
    let origins = state.allowed_origins(&id).await;
    if !form.return_to.is_empty() && allowed_return(&form.return_to, &controller, &origins) {
        return Redirect::to(&form.return_to).into_response();
    }
    message(lang, "thanks", StatusCode::OK)
}
