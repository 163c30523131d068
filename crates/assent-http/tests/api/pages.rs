//! The customer's side, over HTTP as a browser without JavaScript would use it: a signed link
//! in, the preference center, one-click choices, "opt out of everything", languages and GPC.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// A browser that does not follow redirects, so each step can be checked.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn link(app: &TestApp, subject: &str) -> String {
    let r = app
        .call(Method::POST, &format!("/v1/subjects/{subject}/links"), Some(&app.admin.clone()), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["expires_at"].as_str().is_some());
    r.body["url"].as_str().unwrap().to_owned()
}

/// Follows a link as a customer does: the page it shows, then "Continue", which spends it.
async fn open(app: &TestApp, url: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let shown = browser().get(url).send().await.unwrap();
    assert_eq!(shown.status(), StatusCode::OK, "looking at a link does not spend it");
    let token = url.split("token=").nth(1).unwrap().to_owned();
    let controller = url.split("/p/").nth(1).unwrap().split('/').next().unwrap().to_owned();
    let mut req = browser().post(format!("{}/p/{controller}/open", app.base)).form(&[("token", token.as_str())]);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Opens a link and returns the session cookie.
async fn sign_in(app: &TestApp, subject: &str) -> String {
    let r = open(app, &link(app, subject).await, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/p/acme", "the token is gone from the URL");
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax") && set_cookie.contains("Path=/p/acme")
    );
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn page(app: &TestApp, cookie: &str, extra: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = browser().get(format!("{}/p/acme", app.base)).header("cookie", cookie);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

async fn post(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser()
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_customer_opts_in_with_one_click_and_out_of_everything_with_one_click() {
    let app = spawn_app().await;
    let cookie = sign_in(&app, "cust-1").await;
    let (status, html) = page(&app, &cookie, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<html lang=\"en\">") && html.contains("ads (en)") && html.contains("Only us."));
    // Nothing is pre-selected: every choosable purpose offers a yes, none is on.
    assert_eq!(html.matches("value=\"yes\"").count(), 3, "ads, sharing and short-lived are off");
    assert!(
        !html.contains("value=\"no\">") || html.matches("value=\"no\"").count() == 1,
        "only the opt-out purpose is on"
    );
    let token = csrf(&html);

    // One click to opt in.
    let r = post(
        &app,
        &cookie,
        "/p/acme/choice",
        &[("csrf", &token), ("purpose", "ads"), ("version", "1"), ("choice", "yes")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.decision("cust-1", "ads").await, json!({"allowed": true, "reason": "granted"}));
    let history = app.get("/v1/subjects/cust-1/history", &app.admin.clone()).await.body;
    assert_eq!(history["events"][0]["method"], "web");
    let (_, html) = page(&app, &cookie, &[]).await;
    assert!(html.contains("You said yes"));

    // One click to opt out of everything.
    post(
        &app,
        &cookie,
        "/p/acme/choice",
        &[("csrf", &token), ("purpose", "sharing"), ("version", "1"), ("choice", "yes")],
    )
    .await;
    let r = post(&app, &cookie, "/p/acme/withdraw-all", &[("csrf", &token)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    for purpose in ["ads", "sharing"] {
        assert_eq!(app.decision("cust-1", purpose).await["reason"], "withdrawn");
    }
}

#[tokio::test]
async fn forms_from_elsewhere_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let cookie = sign_in(&app, "cust-1").await;
    let before = app.written().await;
    let r = post(
        &app,
        &cookie,
        "/p/acme/choice",
        &[("csrf", "forged"), ("purpose", "ads"), ("version", "1"), ("choice", "yes")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, html) = page(&app, &cookie, &[]).await;
    let r = browser()
        .post(format!("{}/p/acme/choice", app.base))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf(&html).as_str()), ("purpose", "ads"), ("version", "1"), ("choice", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = browser().post(format!("{}/p/acme/withdraw-all", app.base)).form(&[("csrf", "x")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.written().await, before);
}

#[tokio::test]
async fn expired_reused_tampered_and_foreign_links_get_a_friendly_page_and_no_access() {
    let app = spawn_app().await;
    let url = link(&app, "cust-1").await;
    // A mail scanner fetching the link first does not use it up.
    assert_eq!(browser().get(&url).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(open(&app, &url, &[]).await.status(), StatusCode::SEE_OTHER);
    let token = url.split("token=").nth(1).unwrap();
    let reused = browser().post(format!("{}/p/acme/open", app.base)).form(&[("token", token)]).send().await.unwrap();
    assert_eq!(reused.status(), StatusCode::GONE);
    assert!(reused.headers().get("set-cookie").is_none());
    assert!(reused.text().await.unwrap().contains("already used"));

    let url = link(&app, "cust-1").await;
    app.clock.advance_ms(15 * 60 * 1000);
    let expired = browser().get(&url).send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::GONE);
    assert!(expired.text().await.unwrap().contains("expired"));

    let url = link(&app, "cust-1").await;
    let tampered = url.replace("token=v1.", "token=v1.x");
    let r = browser().get(&tampered).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("does not work"));
    // Another subject under the same MAC: flip one character of the sealed subject.
    let (prefix, token) = url.split_once("token=").unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[2] = format!("{}{}", if parts[2].starts_with('A') { 'B' } else { 'A' }, &parts[2][1..]);
    let other_subject = format!("{prefix}token={}", parts.join("."));
    assert_eq!(browser().get(&other_subject).send().await.unwrap().status(), StatusCode::FORBIDDEN);

    // A link made for another controller opens nothing here.
    let theirs =
        app.call(Method::POST, "/v1/subjects/other-cust/links", Some(&app.other_admin.clone()), Some(json!({}))).await;
    let foreign = theirs.body["url"].as_str().unwrap().replace("/p/other/", "/p/acme/");
    assert_eq!(browser().get(&foreign).send().await.unwrap().status(), StatusCode::FORBIDDEN);

    // No session, or a forged one: the page asks for a link.
    let (status, html) = page(&app, "assent_session=s1.Y3VzdC0x.99999999999999.forged", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("Please use your link"));
}

#[tokio::test]
async fn the_pages_speak_spanish_from_the_browser_or_by_choice_and_remember_it() {
    let app = spawn_app().await;
    let cookie = sign_in(&app, "cust-1").await;
    let (_, html) = page(&app, &cookie, &[("accept-language", "es-MX,es;q=0.9")]).await;
    assert!(
        html.contains("<html lang=\"es\">") && html.contains("Tus opciones de privacidad") && html.contains("ads (es)")
    );
    let r = browser().get(format!("{}/p/acme?lang=es", app.base)).header("cookie", &cookie).send().await.unwrap();
    let remembered = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    assert_eq!(remembered, "assent_lang=es");
    let (_, html) = page(&app, &format!("{cookie}; {remembered}"), &[("accept-language", "en")]).await;
    assert!(html.contains("Rechazar todo"));
}

#[tokio::test]
async fn a_browser_privacy_signal_is_applied_once_and_said_plainly() {
    let app = spawn_app().await;
    let cookie = sign_in(&app, "cust-1").await;
    let (_, html) = page(&app, &[cookie.as_str()].concat(), &[("sec-gpc", "1")]).await;
    assert!(html.contains("Global Privacy Control"));
    let history = app.get("/v1/subjects/cust-1/history", &app.admin.clone()).await.body;
    let events: Vec<(Value, Value)> =
        history["events"].as_array().unwrap().iter().map(|e| (e["purpose"].clone(), e["method"].clone())).collect();
    assert_eq!(events, vec![(json!("ads"), json!("gpc")), (json!("sharing"), json!("gpc"))]);
    page(&app, &cookie, &[("sec-gpc", "1")]).await;
    let again = app.get("/v1/subjects/cust-1/history", &app.admin.clone()).await.body;
    assert_eq!(again["events"].as_array().unwrap().len(), 2, "recorded once, not on every view");
    let r = app.call(Method::GET, "/.well-known/gpc.json", None, None).await;
    assert_eq!(r.body["gpc"], true);
}

#[tokio::test]
async fn links_are_made_only_for_valid_requests() {
    let app = spawn_app().await;
    let key = app.admin.clone();
    let r = app.call(Method::POST, "/v1/subjects/cust-1/links", Some(&key), Some(json!({"ttl_seconds": 0}))).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.call(Method::POST, "/v1/subjects/cust%0A1/links", Some(&key), None).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.call(Method::POST, "/v1/subjects/cust-1/links", Some(&key), Some(json!({"ttl": 5}))).await;
    assert_problem(&r, StatusCode::BAD_REQUEST);
    let read_only = app.key(&[assent_store::Scope::Read]).await;
    let r = app.call(Method::POST, "/v1/subjects/cust-1/links", Some(&read_only), None).await;
    assert_problem(&r, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_history_lists_every_choice_in_words_with_a_receipt_to_keep() {
    let app = spawn_app().await;
    let cookie = sign_in(&app, "cust-1").await;
    let (_, html) = page(&app, &cookie, &[]).await;
    let token = csrf(&html);
    post(&app, &cookie, "/p/acme/choice", &[("csrf", &token), ("purpose", "ads"), ("version", "1"), ("choice", "yes")])
        .await;
    post(&app, &cookie, "/p/acme/choice", &[("csrf", &token), ("purpose", "ads"), ("version", "1"), ("choice", "no")])
        .await;
    let r = browser().get(format!("{}/p/acme/history", app.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.headers()["content-security-policy"], "frame-ancestors 'none'");
    let html = r.text().await.unwrap();
    let yes = html.find("You said yes to <strong>ads (en)</strong> on our pages").expect("the grant, in words");
    let no = html.find("You said no to <strong>ads (en)</strong> on our pages").expect("the withdrawal, in words");
    assert!(yes < no, "oldest first");
    let seq = html.split("/p/acme/receipts/").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let r =
        browser().get(format!("{}/p/acme/receipts/{seq}", app.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["receipt"].as_str().unwrap().split('.').count(), 3);
    // Someone else's receipt is not theirs to download.
    let other = app.ok(Method::POST, "/v1/consents", &app.admin.clone(), grant("cust-2", "ads", 1)).await["seq"]
        .as_u64()
        .unwrap();
    let r =
        browser().get(format!("{}/p/acme/receipts/{other}", app.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// The prompt works inside the controller's own page, where no cookie reaches us: the link
/// opens it and its form carries the session.
#[tokio::test]
async fn the_prompt_offers_yes_and_no_as_equals_and_records_the_text_shown() {
    let app = spawn_app().await;
    app.ok(Method::PATCH, "/v1/controller", &app.admin.clone(), json!({"allowed_origins": ["https://shop.example"]}))
        .await;
    let url = link(&app, "cust-1").await.replace("/open?", "/ask/ads?");
    let r = browser().get(format!("{url}&return_to=https://shop.example/thanks")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-security-policy"], "frame-ancestors 'self' https://shop.example");
    let html = r.text().await.unwrap();
    let yes =
        html.find(r#"<button type="submit" name="choice" value="yes">Yes, opt in</button>"#).expect("a yes button");
    let no = html
        .find(r#"<button type="submit" name="choice" value="no">No thanks</button>"#)
        .expect("a no button, styled the same");
    assert!(no > yes && html[yes..no].lines().count() <= 2, "side by side, in one form");
    let field = |name: &str| {
        let at = html.find(&format!("name=\"{name}\" value=\"")).unwrap() + format!("name=\"{name}\" value=\"").len();
        html[at..].split('"').next().unwrap().to_owned()
    };
    let form = |choice: &'static str, hash: String| {
        vec![
            ("session", field("session")),
            ("csrf", field("csrf")),
            ("version", field("version")),
            ("hash", hash),
            ("return_to", field("return_to")),
            ("choice", choice.to_owned()),
        ]
    };
    // Without a cookie, straight from the form.
    let r =
        browser().post(format!("{}/p/acme/ask/ads", app.base)).form(&form("no", field("hash"))).send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    assert_eq!(status, StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let r = (headers, ());
    assert_eq!(r.0["location"], "https://shop.example/thanks");
    assert_eq!(app.decision("cust-1", "ads").await["reason"], "withdrawn");
    let history = app.get("/v1/subjects/cust-1/history", &app.admin.clone()).await.body;
    assert_eq!(history["events"][0]["notice_hash"].as_str().unwrap(), field("hash"));
    assert_eq!(history["events"][0]["method"], "web");

    // An answer to a text that has since changed is not recorded.
    let before = app.written().await;
    let r = browser()
        .post(format!("{}/p/acme/ask/ads", app.base))
        .form(&form("yes", "sha256:00".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(app.written().await, before);

    // Returning anywhere but the allow-list is not offered.
    let url = link(&app, "cust-3").await.replace("/open?", "/ask/ads?");
    let html =
        browser().get(format!("{url}&return_to=https://evil.example/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"name="return_to" value="""#));
}

#[tokio::test]
async fn a_material_change_shows_what_changed_and_asks_again() {
    let app = spawn_app().await;
    let cookie = sign_in(&app, "cust-1").await;
    let (_, html) = page(&app, &cookie, &[]).await;
    post(
        &app,
        &cookie,
        "/p/acme/choice",
        &[("csrf", &csrf(&html)), ("purpose", "ads"), ("version", "1"), ("choice", "yes")],
    )
    .await;
    let mut v2 = notice("ads");
    v2["texts"]["en"]["benefit"] = json!("Ads about things you like, and a weekly digest.");
    v2["material"] = json!(true);
    app.ok(Method::POST, "/v1/purposes/ads/versions", &app.admin.clone(), v2).await;
    let (_, html) = page(&app, &cookie, &[]).await;
    let card = html.split("id=\"purpose-ads\"").nth(1).unwrap().split("</section>").next().unwrap();
    assert!(card.contains("This changed since you said yes"), "{card}");
    assert!(card.contains("What changed since you said yes"));
    assert!(
        card.contains("Before: Ads about things you like.")
            && card.contains("Now: Ads about things you like, and a weekly digest.")
    );
    assert!(
        card.contains("value=\"yes\"") && card.contains("name=\"version\" value=\"2\""),
        "asks again, for the new version"
    );
    assert_eq!(app.decision("cust-1", "ads").await["reason"], "reconsent_required");
    post(
        &app,
        &cookie,
        "/p/acme/choice",
        &[("csrf", &csrf(&html)), ("purpose", "ads"), ("version", "2"), ("choice", "yes")],
    )
    .await;
    assert_eq!(app.decision("cust-1", "ads").await["reason"], "granted");
}

#[tokio::test]
async fn session_cookies_are_secure_behind_tls_or_when_configured() {
    let app = spawn_app().await;
    let r = open(&app, &link(&app, "cust-1").await, &[("x-forwarded-proto", "https")]).await;
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
    let r = open(&app, &link(&app, "cust-1").await, &[]).await;
    assert!(!r.headers()["set-cookie"].to_str().unwrap().contains("Secure"));
    app.service.set_secure_cookies(true);
    let r = open(&app, &link(&app, "cust-1").await, &[]).await;
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
}

#[tokio::test]
async fn a_session_for_an_unknown_controller_is_refused_without_touching_the_keyring() {
    let app = spawn_app().await;
    let r = browser()
        .get(format!("{}/p/made-up-controller", app.base))
        .header("cookie", "assent_session=s1.eA.99999999999999.x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(!app.dir.path().join("keys/made-up-controller.ed25519").exists());
}

/// The evidence kept with a page choice (outside the ledger, erasable).
fn stored_evidence(app: &TestApp) -> Vec<Value> {
    let db = rusqlite::Connection::open(app.dir.path().join("assent.db")).unwrap();
    let mut stmt = db.prepare("SELECT body FROM evidence ORDER BY seq").unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(|b| serde_json::from_str(&b.unwrap()).unwrap()).collect()
}

#[tokio::test]
async fn evidence_records_a_truncated_address_that_a_client_cannot_forge() {
    let app = spawn_app().await;
    let cookie = sign_in(&app, "cust-1").await;
    let (_, html) = page(&app, &cookie, &[]).await;
    let token = csrf(&html);
    let choose = |xff: &'static str| {
        let (cookie, token, base) = (cookie.clone(), token.clone(), app.base.clone());
        async move {
            browser()
                .post(format!("{base}/p/acme/choice"))
                .header("cookie", cookie)
                .header("sec-fetch-site", "same-origin")
                .header("x-forwarded-for", xff)
                .header("user-agent", "Test Browser 1.0")
                .form(&[("csrf", token.as_str()), ("purpose", "ads"), ("version", "1"), ("choice", "yes")])
                .send()
                .await
                .unwrap()
        }
    };
    choose("203.0.113.77").await;
    let first = stored_evidence(&app).pop().unwrap();
    assert_eq!(first["ip_prefix"], "127.0.0.0/24", "the socket peer, not the client's claim");
    assert_eq!(first["collection_point"], "preference-center");
    assert_eq!(first["user_agent"], "Test Browser 1.0");
    // Behind a trusted proxy, the entry the proxy appended counts, truncated.
    app.service.set_trust_proxy(true);
    choose("198.51.100.9, 203.0.113.77").await;
    let second = stored_evidence(&app).pop().unwrap();
    assert_eq!(second["ip_prefix"], "203.0.113.0/24");
}

#[tokio::test]
async fn a_prompt_answer_without_its_page_token_is_refused_and_spends_nothing() {
    let app = spawn_app().await;
    let url = link(&app, "cust-1").await;
    let token = url.split("token=").nth(1).unwrap().to_owned();
    let html = browser().get(url.replace("/open?", "/ask/ads?")).send().await.unwrap().text().await.unwrap();
    let at = html.find("name=\"hash\" value=\"").unwrap() + "name=\"hash\" value=\"".len();
    let hash = html[at..].split('"').next().unwrap().to_owned();
    let forged = [
        ("session", format!("link:{token}")),
        ("csrf", "forged".to_owned()),
        ("version", "1".to_owned()),
        ("hash", hash),
        ("return_to", String::new()),
        ("choice", "yes".to_owned()),
    ];
    let before = app.written().await;
    let r = browser().post(format!("{}/p/acme/ask/ads", app.base)).form(&forged).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.written().await, before);
    // The link still works for the customer.
    let r =
        browser().post(format!("{}/p/acme/open", app.base)).form(&[("token", token.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}
