//! Regression tests of the black-box security review (issue 18): request forgery through
//! callbacks and webhooks, bounded bodies and connections, codes on stdout in production,
//! dev mode exposure and bounded metric labels. Every target is on the loopback range, and
//! the forgery tests assert that nothing connects.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const FR: &str = "+33612345678";

/// A server whose outbound rules are the defaults (nothing private allowed).
async fn strict_app() -> TestApp {
    TestApp::spawn_configured(|config| config.outbound.allowed_private.clear()).await
}

/// `POST /otp` to [`FR`] with an API key.
async fn start_with_key(app: &TestApp, key: &str) -> reqwest::Response {
    app.client
        .post(app.url("/otp"))
        .header("X-API-KEY", key)
        .json(&json!({"phoneNumber": FR}))
        .send()
        .await
        .unwrap()
}

/// `GET path` naming the server `host` in the `Host` header.
async fn get_as(app: &TestApp, path: &str, host: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("Host", host)
        .send()
        .await
        .unwrap()
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn service_sid(app: &TestApp) -> String {
    format!("VA{}", app.credentials.application.service_id.simple())
}

fn account(app: &TestApp) -> (String, String) {
    (
        format!("AC{}", app.credentials.application.account_id.simple()),
        app.credentials.account_token.clone().unwrap(),
    )
}

/// A listener on 127.0.0.1 that must never see a connection.
struct Bystander(std::net::TcpListener);

impl Bystander {
    fn new() -> Bystander {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Bystander(listener)
    }

    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }

    fn assert_untouched(&self) {
        assert!(
            self.0.accept().is_err(),
            "a refused target received a connection"
        );
    }
}

/// Every way of writing an address inside the network.
fn private_targets(port: u16) -> Vec<String> {
    [
        "127.0.0.1",
        "localhost",
        "127.1",
        "2130706433",
        "0x7f000001",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "[fc00::1]",
        "[fe80::1]",
        "0.0.0.0",
    ]
    .iter()
    .map(|host| format!("https://{host}:{port}/hook"))
    .collect()
}

#[tokio::test]
async fn callback_and_webhook_urls_inside_the_network_are_refused_in_every_dialect() {
    let app = strict_app().await;
    let bystander = Bystander::new();
    let token = app.token().await;
    let (account_sid, auth_token) = account(&app);
    let sid = service_sid(&app);
    for url in private_targets(bystander.port()) {
        let refused = app
            .create(&token, json!({"phoneNumber": FR, "otpCallbackUrl": url}))
            .await;
        assert_error(&refused, 400, "invalid_param", 2019);
        assert!(
            refused.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains("otpCallbackUrl"),
            "{url}: {}",
            refused.1
        );

        let twilio = app
            .client
            .post(app.url(&format!("/v2/Services/{sid}/Webhooks")))
            .basic_auth(&account_sid, Some(&auth_token))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("FriendlyName", "hook"),
                ("EventTypes", "*"),
                ("WebhookUrl", url.as_str()),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(twilio.status(), 400, "{url}");
        let body: Value = twilio.json().await.unwrap();
        assert_eq!(body["code"], 60200, "{url}: {body}");
        assert!(body["message"].as_str().unwrap().contains("WebhookUrl"));

        let admin = app
            .client
            .post(app.url(&format!("/admin/v1/services/{sid}/webhooks")))
            .basic_auth(&account_sid, Some(&auth_token))
            .json(&json!({"url": url}))
            .send()
            .await
            .unwrap();
        assert_eq!(admin.status(), 400, "{url}");
        let body: Value = admin.json().await.unwrap();
        assert_eq!(body["code"], 60200, "{url}: {body}");
    }
    bystander.assert_untouched();
}

#[tokio::test]
async fn targets_stored_before_the_rules_are_refused_at_send_time_and_nothing_connects() {
    let bystander = Bystander::new();
    let port = bystander.port();
    let app = TestApp::spawn_configured(|config| {
        config.outbound.allowed_private.clear();
        // The operator's own setting: checked at every send like a tenant's.
        config.default_otp.callback_url = Some(format!("http://127.0.0.1:{port}/callback"));
    })
    .await;
    let (account_sid, auth_token) = account(&app);
    let sid = service_sid(&app);
    let store = &app.server.as_ref().unwrap().store;
    let webhook = otpd_core::events::Webhook {
        id: uuid::Uuid::now_v7(),
        service_id: app.credentials.application.service_id,
        url: format!("http://localhost:{port}/hook"),
        event_types: vec!["*".into()],
        enabled: true,
        friendly_name: "stored before the upgrade".into(),
        created_at: now(),
        updated_at: now(),
    };
    otpd_core::EventStore::create_webhook(store, &webhook)
        .await
        .unwrap();

    let token = app.token().await;
    let (status, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    assert_eq!(status, 201, "{otp}");
    let code = app.last_code(FR).await;
    let otp_id = otp["otpId"].as_str().unwrap();
    assert_eq!(app.check(&token, otp_id, &code).await.0, 200);

    let deliveries = app.url(&format!(
        "/admin/v1/services/{sid}/webhooks/WH{}/deliveries",
        webhook.id.simple()
    ));
    let mut refused = Value::Null;
    for _ in 0..300 {
        let log: Value = app
            .client
            .get(&deliveries)
            .basic_auth(&account_sid, Some(&auth_token))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(entry) = log["deliveries"]
            .as_array()
            .and_then(|entries| entries.iter().find(|e| !e["lastError"].is_null()))
        {
            refused = entry.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        refused["lastError"], "refused: private address",
        "{refused}"
    );
    assert!(refused["lastStatus"].is_null());

    let mut failures = 0.0;
    for _ in 0..300 {
        let metrics = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        failures = metrics
            .lines()
            .find(|l| l.starts_with("otpd_callback_failures_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if failures >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(failures >= 1.0, "the status callback was tried and refused");
    bystander.assert_untouched();
}

#[tokio::test]
async fn plain_http_targets_need_dev_mode_or_the_operators_consent() {
    let app = TestApp::spawn_configured(|config| {
        config.dev_mode = Some(false);
        config.routes.sms = vec!["null".into()];
    })
    .await;
    let (account_sid, auth_token) = account(&app);
    let sid = service_sid(&app);
    let create = |url: &'static str| {
        app.client
            .post(app.url(&format!("/admin/v1/services/{sid}/webhooks")))
            .basic_auth(&account_sid, Some(&auth_token))
            .json(&json!({"url": url, "enabled": false}))
            .send()
    };
    let refused = create("http://8.8.8.8/hook").await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("https"),
        "{body}"
    );
    // A public address literal (no name to resolve); disabled, so nothing is ever sent.
    assert_eq!(create("https://8.8.8.8/hook").await.unwrap().status(), 201);
}

/// Sends raw bytes and reads the whole answer (the request asks to close the connection).
fn raw(app: &TestApp, request: &[u8]) -> (u16, String) {
    let address = app.server.as_ref().unwrap().addr;
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn json_body(answer: &str) -> Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not a JSON body: {answer}"))
}

fn chunked(path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Transfer-Encoding: chunked\r\n{headers}\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(8 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_bodies_over_the_limit_get_the_dialects_413() {
    let app = TestApp::spawn().await;
    let padding = "x".repeat(200 * 1024);
    let body = format!(r#"{{"phoneNumber": "{FR}", "templateId": "{padding}"}}"#);
    let headers = format!(
        "X-API-KEY: {}\r\nContent-Type: application/json\r\n",
        app.credentials.api_key
    );
    let (status, answer) =
        tokio::task::block_in_place(|| raw(&app, &chunked("/otp", &headers, body.as_bytes())));
    assert_eq!(status, 413, "{answer}");
    assert_eq!(json_body(&answer)["error"]["code"], 1009);

    let (account_sid, auth_token) = account(&app);
    let basic = base64_basic(&account_sid, &auth_token);
    let form = format!("To=%2B33612345678&Channel=sms&Pad={padding}");
    let (status, answer) = tokio::task::block_in_place(|| {
        raw(
            &app,
            &chunked(
                &format!("/v2/Services/{}/Verifications", service_sid(&app)),
                &format!(
                    "Authorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                ),
                form.as_bytes(),
            ),
        )
    });
    assert_eq!(status, 413, "{answer}");
    assert_eq!(json_body(&answer)["code"], 20413);
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_from_below_the_handlers_are_the_dialects_json() {
    let app = TestApp::spawn().await;
    let key = app.credentials.api_key.clone();
    let (status, answer) = tokio::task::block_in_place(|| {
        raw(
            &app,
            format!("GET /otp/%FF%FE HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-API-KEY: {key}\r\n\r\n")
                .as_bytes(),
        )
    });
    assert!((400..500).contains(&status), "{answer}");
    assert!(json_body(&answer)["error"]["code"].is_u64(), "{answer}");

    let (account_sid, auth_token) = account(&app);
    let basic = base64_basic(&account_sid, &auth_token);
    let (status, answer) = tokio::task::block_in_place(|| {
        raw(
            &app,
            format!(
                "GET /v2/Services/%FF%FE HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Basic {basic}\r\n\r\n"
            )
            .as_bytes(),
        )
    });
    assert!((400..500).contains(&status), "{answer}");
    assert!(json_body(&answer)["code"].is_u64(), "{answer}");

    // A chunked body whose framing is broken.
    let (status, answer) = tokio::task::block_in_place(|| {
        raw(
            &app,
            format!(
                "POST /otp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-API-KEY: {key}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
            )
            .as_bytes(),
        )
    });
    if status != 0 {
        assert!((400..500).contains(&status), "{answer}");
        assert!(json_body(&answer)["error"]["code"].is_u64(), "{answer}");
    }
}

async fn app_with_timeouts(max_connections: usize) -> TestApp {
    TestApp::spawn_configured(|config| {
        config.server.header_timeout_ms = 500;
        config.server.body_timeout_ms = 500;
        config.server.max_connections = max_connections;
    })
    .await
}

/// Reads until the peer closes, giving up after `limit`: `Some(bytes)` when it closed.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some(String::from_utf8_lossy(&answer).to_string()),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => Some(String::new()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_and_idle_keep_alive_connections_are_closed() {
    let app = app_with_timeouts(1024).await;
    let address = app.server.as_ref().unwrap().addr;
    tokio::task::block_in_place(|| {
        let mut slow = TcpStream::connect(address).unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .unwrap();
        assert!(
            read_until_closed(&mut slow, Duration::from_secs(10)).is_some(),
            "a request head that never ends is cut off"
        );

        let mut idle = TcpStream::connect(address).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let answer = read_until_closed(&mut idle, Duration::from_secs(10))
            .expect("an idle keep-alive connection is closed");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_never_arrives_gets_the_dialects_408() {
    let app = app_with_timeouts(1024).await;
    let address = app.server.as_ref().unwrap().addr;
    let key = app.credentials.api_key.clone();
    tokio::task::block_in_place(|| {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .write_all(
                format!(
                    "POST /otp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-KEY: {key}\r\n\
                     Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"phone"
                )
                .as_bytes(),
            )
            .unwrap();
        let answer = read_until_closed(&mut stream, Duration::from_secs(10))
            .expect("the server answers and closes");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert_eq!(json_body(&answer)["error"]["code"], 1023);
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slowloris_of_hundreds_of_connections_does_not_stop_other_clients() {
    let app = TestApp::spawn().await;
    let address = app.server.as_ref().unwrap().addr;
    let slow: Vec<TcpStream> = tokio::task::block_in_place(|| {
        (0..300)
            .map(|_| {
                let mut stream = TcpStream::connect(address).unwrap();
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
                stream
            })
            .collect()
    });
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        app.client.get(app.url("/healthz")).send(),
    )
    .await
    .expect("healthz answers while 300 connections dribble")
    .unwrap();
    assert_eq!(answer.status(), 200);
    drop(slow);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_past_the_cap_wait_until_one_closes() {
    let app = app_with_timeouts(4).await;
    let address = app.server.as_ref().unwrap().addr;
    let held: Vec<TcpStream> = tokio::task::block_in_place(|| {
        (0..4)
            .map(|_| TcpStream::connect(address).unwrap())
            .collect()
    });
    // The fifth is accepted by the kernel but not served until a held one closes (here:
    // when the header deadline cuts the idle ones off).
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        app.client.get(app.url("/healthz")).send(),
    )
    .await
    .expect("served once the idle connections are cut off")
    .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the fifth connection waited for a free slot"
    );
    drop(held);
}

#[tokio::test]
async fn in_production_a_channel_without_a_route_is_refused_in_both_dialects() {
    let app = TestApp::spawn_configured(|config| {
        config.dev_mode = Some(false);
        config.routes.sms = vec!["null".into()];
    })
    .await;
    let token = app.token().await;
    let call = app
        .create(&token, json!({"phoneNumber": FR, "channel": "call"}))
        .await;
    assert_error(&call, 400, "invalid_param", 1025);
    let sms = app.create(&token, json!({"phoneNumber": FR})).await;
    assert_eq!(sms.0, 201, "{}", sms.1);

    let (account_sid, auth_token) = account(&app);
    for (to, channel) in [
        ("alice@example.com", "email"),
        (FR, "call"),
        (FR, "whatsapp"),
    ] {
        let answer = app
            .client
            .post(app.url(&format!("/v2/Services/{}/Verifications", service_sid(&app))))
            .basic_auth(&account_sid, Some(&auth_token))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(&[("To", to), ("Channel", channel)]))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{channel}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], 60223, "{channel}: {body}");
    }
}

#[test]
fn the_console_provider_cannot_be_routed_in_production() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("otpd.toml");
    for text in [
        "dev_mode = false\n[routes]\nsms = [\"console\"]\n",
        "dev_mode = false\nprovider = \"console\"\n",
        "[routes.country.GB]\nsms = [\"console\"]\n",
    ] {
        std::fs::write(&file, text).unwrap();
        let error = otpd::Config::load(Some(&file)).expect_err(text);
        assert!(format!("{error:#}").contains("console"), "{error:#}");
    }
    // Without a route, production serves no channel rather than printing codes.
    std::fs::write(&file, "dev_mode = false\n").unwrap();
    let config = otpd::Config::load(Some(&file)).unwrap();
    assert_eq!(config.fallback_provider(), None);
    std::fs::write(&file, "dev_mode = true\n[routes]\nsms = [\"console\"]\n").unwrap();
    assert!(otpd::Config::load(Some(&file)).is_ok());
}

#[test]
fn implicit_dev_mode_refuses_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let output = process::otpd(dir.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("OTPD_DEV_MODE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OTPD_DEV_MODE=true"), "{stderr}");
    assert!(
        !dir.path().join("otpd.db").exists(),
        "refused before creating anything"
    );

    let mut config = test_config(dir.path());
    config.listen = "0.0.0.0:0".into();
    config.implicit_dev_mode = true;
    assert!(config.check_exposure().is_err());
    config.implicit_dev_mode = false; // OTPD_DEV_MODE=true or dev_mode = true: chosen
    assert!(config.check_exposure().is_ok());
    config.listen = "127.0.0.1:0".into();
    config.implicit_dev_mode = true;
    assert!(config.check_exposure().is_ok());
}

#[tokio::test]
async fn the_dev_inbox_answers_only_loopback_host_names() {
    let app = TestApp::spawn().await;
    for path in ["/dev/inbox.json", "/dev/inbox"] {
        for host in ["evil.example", "evil.example:8080", "10.0.0.1"] {
            let answer = get_as(&app, path, host).await;
            assert_eq!(answer.status(), 404, "{path} as {host}");
            let body: Value = answer.json().await.unwrap();
            assert_eq!(body["error"]["code"], 1008);
        }
        for host in ["localhost:8080", "127.0.0.1", "[::1]:8080", "app.localhost"] {
            let answer = get_as(&app, path, host).await;
            assert_eq!(answer.status(), 200, "{path} as {host}");
        }
    }
}

#[tokio::test]
async fn made_up_methods_do_not_create_metric_series() {
    let app = TestApp::spawn().await;
    for n in 0..40 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{n}").as_bytes()).unwrap();
        let _ = app
            .client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("MADEUP"), "client methods became labels");
    assert!(metrics.contains("method=\"other\""));
}

#[test]
fn a_production_first_start_writes_its_secrets_to_an_owner_only_file_not_stdout() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("otpd.toml");
    std::fs::write(&config, "dev_mode = false\n[routes]\nsms = [\"null\"]\n").unwrap();
    let server = process::Server::start(dir.path(), &[("OTPD_CONFIG", config.to_str().unwrap())]);
    let printed = server.printed().join("\n");
    let log = server.stop();
    let file = dir.path().join("otpd-first-start.json");
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    for secret in ["applicationSecret", "apiKey", "authToken"] {
        let value = credentials[secret].as_str().unwrap();
        assert!(!printed.contains(value), "{secret} printed: {printed}");
        assert!(!log.contains(value), "{secret} logged");
    }
    assert!(printed.contains("otpd-first-start.json"), "{printed}");
    let db = std::fs::metadata(dir.path().join("otpd.db")).unwrap();
    assert_eq!(
        db.permissions().mode() & 0o777,
        0o600,
        "the database is owner-only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn codes_typed_in_another_digit_script_are_accepted() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    let code = app.last_code(FR).await;
    let arabic: String = code
        .chars()
        .map(|c| char::from_u32(0x0660 + c.to_digit(10).unwrap()).unwrap())
        .collect();
    let answer = app
        .check(&token, otp["otpId"].as_str().unwrap(), &arabic)
        .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(answer.1["status"], "VERIFIED");
}

#[tokio::test]
async fn a_forged_host_never_reaches_the_twilio_apis_links() {
    let app = TestApp::spawn().await;
    let (account_sid, auth_token) = account(&app);
    let list = |host: &'static str| {
        app.client
            .get(app.url("/v2/Services"))
            .basic_auth(&account_sid, Some(&auth_token))
            .header("Host", host)
            .send()
    };
    let body: Value = list("evil.example").await.unwrap().json().await.unwrap();
    let url = body["meta"]["url"].as_str().unwrap();
    assert!(!url.contains("evil.example"), "{url}");
    assert!(
        url.starts_with(&app.base),
        "the listen address instead: {url}"
    );
    let body: Value = list("localhost:8080").await.unwrap().json().await.unwrap();
    assert!(
        body["meta"]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://localhost:8080/"),
        "{body}"
    );
}

#[tokio::test]
async fn repeated_failed_authentications_are_held_back_with_retry_after() {
    let app = TestApp::spawn_configured(|config| {
        config.limits.auth_failures = otpd_core::abuse::Limit {
            max: 5,
            window_seconds: 60,
        };
    })
    .await;
    for _ in 0..5 {
        let (status, _) = app.create("not-a-token", json!({"phoneNumber": FR})).await;
        assert_eq!(status, 401);
    }
    // The sixth try is refused before it is checked, even with good credentials.
    let good = app.credentials.api_key.clone();
    let refused = start_with_key(&app, &good).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], 1026);

    let (account_sid, auth_token) = account(&app);
    let twilio = app
        .client
        .get(app.url("/v2/Services"))
        .basic_auth(&account_sid, Some(&auth_token))
        .send()
        .await
        .unwrap();
    assert_eq!(twilio.status(), 429);
    let body: Value = twilio.json().await.unwrap();
    assert_eq!(body["code"], 20429);
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "unauthenticated routes stay open"
    );

    app.clock.advance_seconds(61);
    let allowed = start_with_key(&app, &good).await;
    assert_eq!(allowed.status(), 201, "the window ended");
}

#[tokio::test]
async fn sender_ids_and_templates_are_held_to_what_providers_accept() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    for from in [
        "Acme\r\nX-Evil: 1",
        "Ac\0me",
        "\u{202E}emcA",
        "     ",
        " Acme",
        "TwelveChars1",
        "+1234567890123456",
        "Acme-Shop",
    ] {
        let refused = app
            .create(&token, json!({"phoneNumber": FR, "from": from}))
            .await;
        assert_error(&refused, 400, "invalid_param", 2005);
    }
    for from in ["Acme Shop", "+15017122661", "12345"] {
        let accepted = app
            .create(&token, json!({"phoneNumber": FR, "from": from}))
            .await;
        assert_eq!(accepted.0, 201, "{from}: {}", accepted.1);
    }
    let huge = format!("{} {{{{pin}}}}", "x".repeat(60_000));
    let refused = app
        .create(&token, json!({"phoneNumber": FR, "template": huge}))
        .await;
    assert_error(&refused, 400, "invalid_param", 2006);
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too long")
    );
}

#[test]
fn a_real_provider_can_be_configured_from_the_environment_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = process::Server::start(
        dir.path(),
        &[
            (
                "OTPD_PROVIDERS",
                r#"[{name = "sms-gateway", kind = "twilio", account_sid = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", auth_token = "secret-token-xyz", from = "+15017122661"}]"#,
            ),
            ("OTPD_ROUTES__SMS", r#"["sms-gateway"]"#),
            ("OTPD_DEV_MODE", "false"),
        ],
    );
    let log = server.stop();
    assert!(
        log.contains("channel served channel=\"sms\" providers=sms-gateway"),
        "{log}"
    );
    assert!(log.contains("channel not offered"), "{log}");
    assert!(
        !log.contains("secret-token-xyz"),
        "the provider's token is never logged"
    );
}
