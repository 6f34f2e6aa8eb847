//! The console over HTTP, against the real server (the browser test drives the pages; these
//! check what a browser cannot show quickly): a second factor, invitations, sign-out
//! everywhere, the idle timeout, the CSRF token of the sign-in form, and service settings
//! checked by the API's rules.

mod common;

use std::process::Stdio;

use common::TestApp;
use common::process::otpd;
use otpd_core::operators::{Operators, SessionRules, totp_code};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

const PASSWORD: &str = "sessions-correct-horse";
const FORM: &str = "application/x-www-form-urlencoded";

/// A form body.
fn encoded(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `otpd operator create` on the server's database; its JSON.
fn create(app: &TestApp, email: &str, extra: &[&str], password: Option<&str>) -> Value {
    use std::io::Write;
    let database = app.config.database_url.expose().to_string();
    let mut child = otpd(app.dir.path())
        .args([
            "operator", "create", "--email", email, "--role", "admin", "--json",
        ])
        .args(extra)
        .args(["--database", &database])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(password) = password {
        writeln!(input, "{password}").unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The `name=value` pairs an answer sets, as a `Cookie` header.
fn cookies(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

fn csrf_in(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_string()
}

/// Signs in with the password form; the answer (303 on success).
async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let client = client();
    let form = client.get(app.url("/console/login")).send().await.unwrap();
    let pre = cookies(&form);
    let csrf = csrf_in(&form.text().await.unwrap());
    client
        .post(app.url("/console/login"))
        .header(COOKIE, pre)
        .header(CONTENT_TYPE, FORM)
        .body(encoded(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ]))
        .send()
        .await
        .unwrap()
}

/// The page at `path` as this session sees it.
async fn page_text(app: &TestApp, session: &str, path: &str) -> String {
    client()
        .get(app.url(path))
        .header(COOKIE, session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Where a page sends this session: `None` when it is served (200), else the redirect.
async fn page(app: &TestApp, session: &str, path: &str) -> Option<String> {
    let answer = client()
        .get(app.url(path))
        .header(COOKIE, session)
        .send()
        .await
        .unwrap();
    match answer.status() {
        StatusCode::OK => None,
        _ => answer
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_string()),
    }
}

#[tokio::test]
async fn an_authenticator_code_completes_a_sign_in_once() {
    let app = TestApp::spawn().await;
    let created = create(
        &app,
        "two@example.com",
        &["--password-stdin", "--totp"],
        Some(PASSWORD),
    );
    assert!(
        created["totpUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let answer = sign_in(&app, "two@example.com", PASSWORD).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[LOCATION], "/console/login/code");
    let pending = cookies(&answer);
    assert_eq!(
        page(&app, &pending, "/console/").await.as_deref(),
        Some("/console/login"),
        "a session waiting for its code grants nothing"
    );
    let form = client()
        .get(app.url("/console/login/code"))
        .header(COOKIE, &pending)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let csrf = csrf_in(&form.text().await.unwrap());
    let post = |code: String| {
        let (pending, csrf) = (pending.clone(), csrf.clone());
        let url = app.url("/console/login/code");
        async move {
            client()
                .post(url)
                .header(COOKIE, pending)
                .header(CONTENT_TYPE, FORM)
                .body(encoded(&[("csrf", csrf.as_str()), ("code", code.as_str())]))
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = post("000000".into()).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Wrong or already used code.")
    );
    // The code the operator's authenticator app shows now.
    let store = otpd::open_store(&app.config).await.unwrap();
    let vault = otpd::vault(&app.config).unwrap();
    let operators = Operators::new(
        store,
        app.clock.clone(),
        vault.clone(),
        SessionRules::default(),
    );
    let operator = operators
        .by_email("two@example.com")
        .await
        .unwrap()
        .unwrap();
    let now = (common::now().0 / 1000) as u64;
    let code = totp_code(&vault, operator.totp_sealed.as_deref().unwrap(), now).unwrap();
    let right = post(code.clone()).await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(right.headers()[LOCATION], "/console/");
    let full = cookies(&right);
    assert_ne!(full, pending, "a new session token after the second factor");
    assert_eq!(page(&app, &full, "/console/").await, None, "signed in");
    // The same code cannot be used again, even by a fresh password sign-in.
    let again = sign_in(&app, "two@example.com", PASSWORD).await;
    let pending = cookies(&again);
    let form = client()
        .get(app.url("/console/login/code"))
        .header(COOKIE, &pending)
        .send()
        .await
        .unwrap();
    let csrf = csrf_in(&form.text().await.unwrap());
    let replayed = client()
        .post(app.url("/console/login/code"))
        .header(COOKIE, &pending)
        .header(CONTENT_TYPE, FORM)
        .body(encoded(&[("csrf", csrf.as_str()), ("code", code.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replayed.status(),
        StatusCode::UNAUTHORIZED,
        "a code is good once"
    );
}

#[tokio::test]
async fn an_invitation_sets_a_password_once() {
    let app = TestApp::spawn().await;
    let created = create(&app, "new@example.com", &[], None);
    let link = created["invitationUrl"].as_str().unwrap().to_string();
    let path = link[link.find("/console/invite/").unwrap()..].to_string();
    let form = client().get(app.url(&path)).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let pre = cookies(&form);
    let html = form.text().await.unwrap();
    assert!(html.contains("new@example.com"));
    let csrf = csrf_in(&html);
    let short = client()
        .post(app.url(&path))
        .header(COOKIE, &pre)
        .header(CONTENT_TYPE, FORM)
        .body(encoded(&[("csrf", csrf.as_str()), ("password", "short")]))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    assert!(
        short
            .text()
            .await
            .unwrap()
            .contains("at least 12 characters")
    );
    let set = client()
        .post(app.url(&path))
        .header(COOKIE, &pre)
        .header(CONTENT_TYPE, FORM)
        .body(encoded(&[("csrf", csrf.as_str()), ("password", PASSWORD)]))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::SEE_OTHER);
    let signed = sign_in(&app, "new@example.com", PASSWORD).await;
    assert_eq!(signed.headers()[LOCATION], "/console/");
    let used = client().get(app.url(&path)).send().await.unwrap();
    assert_eq!(used.status(), StatusCode::NOT_FOUND, "the link works once");
    assert!(
        used.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "people get an HTML page"
    );
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_and_idle_sessions_end() {
    let app = TestApp::spawn().await;
    create(
        &app,
        "ops@example.com",
        &["--password-stdin"],
        Some(PASSWORD),
    );
    let laptop = cookies(&sign_in(&app, "ops@example.com", PASSWORD).await);
    let phone = cookies(&sign_in(&app, "ops@example.com", PASSWORD).await);
    assert_eq!(page(&app, &laptop, "/console/").await, None);
    assert_eq!(page(&app, &phone, "/console/").await, None);
    let html = client()
        .get(app.url("/console/"))
        .header(COOKIE, &phone)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let everywhere = client()
        .post(app.url("/console/logout/everywhere"))
        .header(COOKIE, &phone)
        .header(CONTENT_TYPE, FORM)
        .body(encoded(&[("csrf", csrf_in(&html).as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(everywhere.status(), StatusCode::SEE_OTHER);
    for session in [&laptop, &phone] {
        assert_eq!(
            page(&app, session, "/console/").await.as_deref(),
            Some("/console/login")
        );
    }
    let fresh = cookies(&sign_in(&app, "ops@example.com", PASSWORD).await);
    assert_eq!(page(&app, &fresh, "/console/").await, None);
    app.clock.advance_seconds(31 * 60);
    assert_eq!(
        page(&app, &fresh, "/console/").await.as_deref(),
        Some("/console/login"),
        "30 minutes unused end a session"
    );
}

#[tokio::test]
async fn the_sign_in_form_refuses_a_post_without_its_token() {
    let app = TestApp::spawn().await;
    create(
        &app,
        "csrf@example.com",
        &["--password-stdin"],
        Some(PASSWORD),
    );
    let forged = client()
        .post(app.url("/console/login"))
        .header(CONTENT_TYPE, FORM)
        .body(encoded(&[
            ("email", "csrf@example.com"),
            ("password", PASSWORD),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(cookies(&forged).is_empty() || !cookies(&forged).contains("otpd_console="));
    assert!(
        sign_in(&app, "csrf@example.com", PASSWORD)
            .await
            .status()
            .is_redirection()
    );
}

#[tokio::test]
async fn service_settings_are_checked_by_the_api_rules_and_saved() {
    let app = TestApp::spawn().await;
    create(
        &app,
        "svc@example.com",
        &["--password-stdin"],
        Some(PASSWORD),
    );
    let session = cookies(&sign_in(&app, "svc@example.com", PASSWORD).await);
    let sid = format!("VA{}", app.credentials.application.service_id.simple());
    let path = format!("/console/services/{sid}");
    let html = page_text(&app, &session, &path).await;
    let csrf = csrf_in(&html);
    let post = |pairs: Vec<(&'static str, &'static str)>| {
        let (session, csrf, url) = (session.clone(), csrf.clone(), app.url(&path));
        async move {
            let mut all = vec![("csrf", csrf.as_str())];
            all.extend(pairs);
            client()
                .post(url)
                .header(COOKIE, session)
                .header(CONTENT_TYPE, FORM)
                .body(encoded(&all))
                .send()
                .await
                .unwrap()
        }
    };
    let good = vec![
        ("name", "Checkout"),
        ("code_length", "8"),
        ("ttl", "300"),
        ("max_attempts", "3"),
        ("sender", "Acme"),
        ("template", "Your Acme code: {{pin}}"),
        ("fallbacks", "whatsapp, sms"),
        ("allowed_countries", ""),
        ("blocked_countries", "ru"),
        ("blocked_prefixes", "+4490"),
        ("daily_budget", "25"),
        ("locale_templates", "fr = Votre code Acme : {{pin}}\r\n"),
        ("routes", "sms:gb = vonage, twilio"),
    ];
    let mut bad = good.clone();
    bad[2] = ("ttl", "5");
    bad[8] = ("blocked_countries", "XX");
    bad[11] = ("locale_templates", "fr = Votre code Acme\r\nde = {{pin}}");
    bad[12] = ("routes", "sms = twilio\r\nfax = twilio");
    let refused = post(bad).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("Code lifetime: from 60 to 1800 seconds"),
        "{page}"
    );
    assert!(
        page.contains("Blocked countries: &#x27;XX&#x27; is not an ISO 3166-1 alpha-2 country")
            || page
                .contains("Blocked countries: &#39;XX&#39; is not an ISO 3166-1 alpha-2 country"),
        "the same words as the admin API"
    );
    assert!(
        page.contains("Templates per locale: line 1: fr: "),
        "a template without {{{{pin}}}} is refused at its line: {page}"
    );
    assert!(
        page.contains(
            "Provider routes: line 2: &#x27;fax&#x27; is not sms, call, email or whatsapp"
        ) || page
            .contains("Provider routes: line 2: &#39;fax&#39; is not sms, call, email or whatsapp"),
        "{page}"
    );
    assert!(
        page.contains("fax = twilio</textarea>"),
        "what was typed is kept for correcting"
    );
    let saved = post(good).await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let service = client()
        .get(app.url(&format!("/v2/Services/{sid}")))
        .basic_auth(
            format!("AC{}", app.credentials.application.account_id.simple()),
            app.credentials.account_token.clone(),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(service["friendly_name"], "Checkout");
    assert_eq!(service["code_length"], 8);
    let protection = client()
        .get(app.url(&format!("/admin/v1/services/{sid}/protection")))
        .basic_auth(
            format!("AC{}", app.credentials.application.account_id.simple()),
            app.credentials.account_token.clone(),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(protection["blockedCountries"], serde_json::json!(["RU"]));
    assert_eq!(protection["blockedPrefixes"], serde_json::json!(["+4490"]));
    assert_eq!(protection["dailyBudget"], 25.0);
    let html = page_text(&app, &session, &path).await;
    assert!(
        html.contains("sms:GB = vonage, twilio</textarea>"),
        "{html}"
    );
    let token = app.token().await;
    let (status, _) = app
        .create(
            &token,
            serde_json::json!({"phoneNumber": "+33612345670", "locale": "fr"}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(
        app.last_message("+33612345670")
            .await
            .starts_with("Votre code Acme : "),
        "a start in French gets the service's French template"
    );
}

#[tokio::test]
async fn every_page_answers_on_this_backend() {
    let app = TestApp::spawn().await;
    create(
        &app,
        "pages@example.com",
        &["--password-stdin"],
        Some(PASSWORD),
    );
    let token = app.token().await;
    let (status, _) = app
        .create(&token, serde_json::json!({"phoneNumber": "+33612345678"}))
        .await;
    assert_eq!(status, 201);
    let session = cookies(&sign_in(&app, "pages@example.com", PASSWORD).await);
    let sid = format!("VA{}", app.credentials.application.service_id.simple());
    let today = otpd_core::report::utc_day(common::now().0);
    for path in [
        "/console/".to_string(),
        "/console/verifications".to_string(),
        format!(
            "/console/verifications?service={sid}&status=pending&channel=sms&delivery=SENT\
             &country=FR&since={today}&until={today}"
        ),
        "/console/numbers/%2B33612345678".to_string(),
        "/console/insights?days=30".to_string(),
        format!("/console/insights?service={sid}"),
        "/console/fraud".to_string(),
        "/console/services".to_string(),
        format!("/console/services/{sid}"),
        "/console/keys".to_string(),
        "/console/webhooks".to_string(),
    ] {
        let answer = client()
            .get(app.url(&path))
            .header(COOKIE, &session)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let html = answer.text().await.unwrap();
        assert!(html.contains("<main id=\"main\">"), "{path}");
    }
    let html = page_text(&app, &session, "/console/verifications?channel=sms").await;
    assert!(html.contains("+33612345678"), "the send is in the log");
    for (path, why) in [
        ("/console/verifications?since=yesterday", "is not a date"),
        (
            "/console/insights?days=400",
            "days: a whole number from 1 to 90",
        ),
        ("/console/numbers/not-a-number", "international format"),
    ] {
        let answer = client()
            .get(app.url(path))
            .header(COOKIE, &session)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(answer.text().await.unwrap().contains(why), "{path}");
    }
}
