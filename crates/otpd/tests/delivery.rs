//! Delivery through real provider adapters against local mock providers: failover when the
//! first provider is down, a WhatsApp → SMS fallback chain driven by signed receipts, forged
//! receipts refused, the send cooldown, built-in language texts and the origin-bound line.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use common::providers::{ACCOUNT, AUTH_TOKEN, TwilioMock, WhatsappMock, serve, twilio_provider};
use common::{TestApp, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

const FR: &str = "+33612345678";
const APP_SECRET: &str = "meta-app-secret";

async fn deliveries(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, body) = app
        .call(Method::GET, &format!("/otp/{id}"), token, None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls `GET /otp/{id}` until `done` holds (the worker runs in the background).
async fn wait_for(app: &TestApp, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let otp = deliveries(app, token, id).await;
        if done(&otp) {
            return otp;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{}", deliveries(app, token, id).await);
}

/// The code in an SMS body (the built-in and default texts hold it as one word of digits).
fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_provider_that_is_down_fails_over_to_the_next() {
    let (primary, primary_url) = TwilioMock::start(true).await;
    let (secondary, secondary_url) = TwilioMock::start(false).await;
    let app = TestApp::spawn_configured(|config| {
        config.providers = vec![
            twilio_provider("twilio-primary", &primary_url),
            twilio_provider("twilio-secondary", &secondary_url),
        ];
        config.routes.sms = vec!["twilio-primary".into(), "twilio-secondary".into()];
    })
    .await;
    let token = app.token().await;
    let (status, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    assert_eq!(status, 201, "{otp}");
    // The first try ran inline, so the creation response already names the secondary.
    assert_eq!(otp["deliveryStatus"], "SENT");
    let delivery = &otp["deliveries"][0];
    assert_eq!(delivery["status"], "sent", "{otp}");
    assert_eq!(delivery["provider"], "twilio-secondary");
    assert_eq!(delivery["providerMessageId"], format!("SM{:032x}", 1));
    assert_eq!(delivery["parts"], 1);
    assert_eq!(primary.requests().len(), 1, "the primary was tried first");
    let sent = secondary.requests();
    assert_eq!(sent.len(), 1, "exactly one message left");
    assert_eq!(TwilioMock::field(&sent[0], "To"), FR);
    let code = code_in(&TwilioMock::field(&sent[0], "Body"));
    let id = otp["otpId"].as_str().unwrap();
    // The start answers from what it recorded, without reading it back: the same as a read.
    let stored = deliveries(&app, &token, id).await;
    assert_eq!(stored["deliveries"], otp["deliveries"]);
    assert_eq!(stored["deliveryStatus"], otp["deliveryStatus"]);
    assert_eq!(app.check(&token, id, &code).await.0, 200);
}

#[tokio::test]
async fn every_provider_down_is_retried_until_one_comes_back() {
    let (twilio, url) = TwilioMock::start(true).await;
    let app = TestApp::spawn_configured(|config| {
        config.providers = vec![twilio_provider("twilio", &url)];
        config.routes.sms = vec!["twilio".into()];
        config.delivery.first_backoff_ms = 200;
    })
    .await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    let delivery = &otp["deliveries"][0];
    assert_eq!(delivery["status"], "queued", "waiting to retry: {otp}");
    assert_eq!(delivery["errorCode"], "20503");
    let id = otp["otpId"].as_str().unwrap();
    assert_eq!(
        deliveries(&app, &token, id).await["deliveries"],
        otp["deliveries"],
        "the start's answer is what was stored"
    );
    assert_eq!(otp["deliveryStatus"], "SENT", "still in flight, not failed");
    twilio
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let id = otp["otpId"].as_str().unwrap();
    let otp = wait_for(&app, &token, id, |o| o["deliveries"][0]["status"] == "sent").await;
    assert_eq!(otp["deliveries"][0]["provider"], "twilio");
    let requests = twilio.requests();
    assert!(requests.len() >= 2, "retried after the 503");
    let code = code_in(&TwilioMock::field(requests.last().unwrap(), "Body"));
    assert_eq!(app.check(&token, id, &code).await.0, 200);
}

#[tokio::test]
async fn undelivered_whatsapp_falls_back_to_sms_with_the_same_code() {
    let (whatsapp, whatsapp_url) = WhatsappMock::start().await;
    let (twilio, twilio_url) = TwilioMock::start(false).await;
    // Receipt URLs are built from the public base URL, so the port is chosen up front.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_configured(|config| {
        config.listen = format!("127.0.0.1:{port}");
        config.public_base_url = Some(format!("http://127.0.0.1:{port}"));
        config.providers = vec![
            json!({
                "name": "meta", "kind": "whatsapp_cloud", "base_url": whatsapp_url,
                "phone_number_id": "106540352242922", "access_token": "meta-token",
                "template_name": "verification_code", "app_secret": APP_SECRET,
            })
            .as_object()
            .unwrap()
            .clone()
            .into(),
            twilio_provider("twilio", &twilio_url),
        ];
        config.routes.whatsapp = vec!["meta".into()];
        config.routes.sms = vec!["twilio".into()];
        config.default_otp.fallback_channels = vec![otpd_core::Channel::Sms];
    })
    .await;
    let token = app.token().await;
    let (status, otp) = app
        .create(&token, json!({"phoneNumber": FR, "channel": "whatsapp"}))
        .await;
    assert_eq!(status, 201, "{otp}");
    assert_eq!(otp["deliveries"][0]["channel"], "whatsapp");
    assert_eq!(otp["deliveries"][0]["status"], "sent");
    assert_eq!(otp["deliveries"][0]["providerMessageId"], "wamid.TEST1");
    let template = whatsapp.requests()[0].clone();
    let whatsapp_code = template["template"]["components"][0]["parameters"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        twilio.requests().is_empty(),
        "no SMS while WhatsApp may work"
    );

    // Meta reports the message undeliverable (not a WhatsApp user), signed with the app secret.
    let receipt = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "statuses": [{"id": "wamid.TEST1", "status": "failed", "timestamp": "1705320005", "recipient_id": "33612345678",
                      "errors": [{"code": 131026, "title": "Message undeliverable"}]}]}}]}]})
    .to_string();
    let signature = format!(
        "sha256={}",
        hex::encode(otpd_providers::signing::hmac_sha256(
            APP_SECRET.as_bytes(),
            receipt.as_bytes()
        ))
    );
    let forged = app
        .client
        .post(app.url("/webhooks/meta"))
        .header("X-Hub-Signature-256", "sha256=00")
        .header("Content-Type", "application/json")
        .body(receipt.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "a forged receipt is refused");
    let id = otp["otpId"].as_str().unwrap();
    let unchanged = deliveries(&app, &token, id).await;
    assert_eq!(
        unchanged["deliveries"][0]["status"], "sent",
        "and changes nothing"
    );
    assert!(twilio.requests().is_empty());

    let genuine = app
        .client
        .post(app.url("/webhooks/meta"))
        .header("X-Hub-Signature-256", signature)
        .header("Content-Type", "application/json")
        .body(receipt)
        .send()
        .await
        .unwrap();
    assert_eq!(genuine.status(), 204);
    let otp = wait_for(&app, &token, id, |o| {
        o["deliveries"].as_array().unwrap().len() == 2 && o["deliveries"][1]["status"] == "sent"
    })
    .await;
    assert_eq!(otp["deliveries"][0]["status"], "undelivered");
    assert_eq!(otp["deliveries"][0]["errorCode"], "131026");
    assert_eq!(otp["deliveries"][1]["channel"], "sms");
    assert_eq!(otp["deliveries"][1]["provider"], "twilio");
    let sms = twilio.requests();
    assert_eq!(sms.len(), 1);
    assert_eq!(
        code_in(&TwilioMock::field(&sms[0], "Body")),
        whatsapp_code,
        "same code"
    );

    // Twilio's signed status callback marks the SMS delivered.
    let callback_url = TwilioMock::field(&sms[0], "StatusCallback");
    assert_eq!(callback_url, app.url("/webhooks/twilio"));
    let params: Vec<(String, String)> = [
        ("AccountSid", ACCOUNT),
        ("MessageSid", &format!("SM{:032x}", 1)),
        ("MessageStatus", "delivered"),
        ("To", FR),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature =
        otpd_providers::twilio::compute_signature(AUTH_TOKEN.as_bytes(), &callback_url, &params);
    let response = app
        .client
        .post(&callback_url)
        .header("X-Twilio-Signature", signature)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let otp = deliveries(&app, &token, id).await;
    assert_eq!(otp["deliveries"][1]["status"], "delivered");
    assert_eq!(otp["deliveryStatus"], "SENT");
    assert_eq!(app.check(&token, id, &whatsapp_code).await.0, 200);
    let otp = deliveries(&app, &token, id).await;
    assert_eq!(otp["deliveryStatus"], "SUCCESS");
}

#[tokio::test]
async fn native_services_wait_between_sends_to_one_destination() {
    let app = TestApp::spawn_configured(|config| {
        config.default_otp.resend_cooldown_seconds =
            otpd::Config::default().default_otp.resend_cooldown_seconds;
    })
    .await;
    assert_eq!(app.config.default_otp.resend_cooldown_seconds, 30);
    let token = app.token().await;
    assert_eq!(app.create(&token, json!({"phoneNumber": FR})).await.0, 201);
    app.clock.advance_seconds(10);
    let response = app
        .client
        .post(app.url("/otp"))
        .bearer_auth(&token)
        .json(&json!({"phoneNumber": FR}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "20");
    let body: Value = response.json().await.unwrap();
    assert_error(&(429, body), 429, "rate_limit", 1011);
    assert_eq!(
        app.create(&token, json!({"phoneNumber": "+33612345679"}))
            .await
            .0,
        201,
        "other destinations are not held back"
    );
    app.clock.advance_seconds(20);
    assert_eq!(app.create(&token, json!({"phoneNumber": FR})).await.0, 201);
}

#[tokio::test]
async fn a_locale_picks_the_built_in_text_and_the_origin_line_comes_last() {
    let app = TestApp::spawn_configured(|config| {
        config.default_otp.web_origin = Some("acme.example".into());
        config.default_otp.ttl = otpd_core::Ttl::new(300).unwrap();
    })
    .await;
    let token = app.token().await;
    let (status, _) = app
        .create(&token, json!({"phoneNumber": FR, "locale": "fr-FR"}))
        .await;
    assert_eq!(status, 201);
    let body = app.last_message(FR).await;
    let body = body.as_str();
    let code = code_in(body);
    assert_eq!(
        body,
        format!(
            "{code} est votre code de vérification default. Il expire dans 5 minutes.\n\n@acme.example #{code}"
        )
    );
    let (status, body) = app
        .create(&token, json!({"phoneNumber": FR, "locale": "not a tag"}))
        .await;
    assert_error(&(status, body), 400, "invalid_param", 1013);
}

#[tokio::test]
async fn a_service_routes_a_country_to_its_own_provider() {
    let (general, general_url) = TwilioMock::start(false).await;
    let (french, french_url) = TwilioMock::start(false).await;
    let app = TestApp::spawn_configured(|config| {
        config.providers = vec![
            twilio_provider("twilio-general", &general_url),
            twilio_provider("twilio-fr", &french_url),
        ];
        config.routes.sms = vec!["twilio-general".into()];
        config
            .default_otp
            .provider_routes
            .insert("sms:FR".into(), vec!["twilio-fr".into()]);
    })
    .await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    assert_eq!(otp["deliveries"][0]["provider"], "twilio-fr", "{otp}");
    let (_, otp) = app
        .create(&token, json!({"phoneNumber": "+447400123456"}))
        .await;
    assert_eq!(otp["deliveries"][0]["provider"], "twilio-general", "{otp}");
    assert_eq!(french.requests().len(), 1);
    assert_eq!(general.requests().len(), 1);
    assert_eq!(TwilioMock::field(&french.requests()[0], "To"), FR);
}

#[tokio::test]
async fn metrics_count_requests_verifications_deliveries_and_refusals() {
    let (_twilio, url) = TwilioMock::start(false).await;
    let app = TestApp::spawn_configured(|config| {
        config.providers = vec![twilio_provider("twilio", &url)];
        config.routes.sms = vec!["twilio".into()];
        config.default_otp.resend_cooldown_seconds = 30;
    })
    .await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    let id = otp["otpId"].as_str().unwrap();
    assert_eq!(app.check(&token, id, "000000").await.0, 400);
    assert_eq!(app.create(&token, json!({"phoneNumber": FR})).await.0, 429);
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"otpd_verifications_total{event="started",channel="sms",country="FR"} 1"#,
        r#"otpd_verifications_total{event="wrong_code",channel="sms",country="FR"} 1"#,
        r#"otpd_delivery_attempts_total{provider="twilio",outcome="sent"} 1"#,
        r#"otpd_refusals_total{reason="cooldown"} 1"#,
        r#"otpd_http_requests_total{dialect="native",route="/otp",method="POST",status="201"} 1"#,
        r#"otpd_http_requests_total{dialect="native",route="/otp",method="POST",status="429"} 1"#,
        "otpd_outbox_queued_deliveries 0",
        "otpd_pumping_quarantines 0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(text.contains("otpd_provider_request_duration_seconds_count{provider=\"twilio\"} 1"));
    assert!(!text.contains("612345678"), "no phone number in any label");
}

#[tokio::test]
async fn a_graceful_stop_hands_unfinished_deliveries_back_at_once() {
    use otpd_core::{Clock, DeliveryStore};
    let (_twilio, url) = TwilioMock::start(true).await;
    let mut app = TestApp::spawn_configured(|config| {
        config.providers = vec![twilio_provider("twilio", &url)];
        config.routes.sms = vec!["twilio".into()];
        config.delivery.first_backoff_ms = 30_000;
    })
    .await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    assert_eq!(otp["deliveries"][0]["status"], "queued", "{otp}");
    let store = app.server.as_ref().unwrap().store.clone();
    let now = app.clock.now();
    let lease = now.plus_seconds(60);
    assert!(
        store
            .claim_stale_deliveries(now, lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "while running, this node holds the retry"
    );
    app.server.take().unwrap().stop().await;
    let handed_back = store.claim_stale_deliveries(now, lease, 10).await.unwrap();
    assert_eq!(handed_back.len(), 1, "another node may take it at once");
    assert_eq!(
        handed_back[0].1.id.to_string(),
        otp["otpId"].as_str().unwrap()
    );
}

#[tokio::test]
async fn events_are_listed_per_verification_type_and_page() {
    let app = TestApp::spawn_configured(|config| {
        config.delivery.sweep_interval_ms = 50;
    })
    .await;
    let token = app.token().await;
    let user = format!("AC{}", app.credentials.application.account_id.simple());
    let password = app.credentials.account_token.clone().unwrap();
    let events = |query: String| {
        let request = app
            .client
            .get(app.url(&format!("/admin/v1/events?{query}")))
            .basic_auth(&user, Some(&password));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    let id = otp["otpId"].as_str().unwrap().to_string();
    assert_eq!(app.check(&token, &id, "000000").await.0, 400);
    let code = app.last_code(FR).await;
    assert_eq!(app.check(&token, &id, &code).await.0, 200);
    let (status, _) = app
        .create(&token, json!({"phoneNumber": "+449098765432"}))
        .await;
    assert_eq!(status, 403);
    let (_, expiring) = app
        .create(&token, json!({"phoneNumber": "+447400123456"}))
        .await;
    app.clock.advance_seconds(601);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let sid = format!("VE{}", id.replace('-', ""));
    let listed = events(format!("verificationSid={sid}")).await;
    let kinds: Vec<&str> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "verification.started",
            "delivery.queued",
            "delivery.sent",
            "verification.check_failed",
            "verification.approved"
        ]
    );
    let blocked = events("type=verification.blocked".into()).await;
    assert_eq!(blocked["events"][0]["data"]["reason"], "costly_number");
    let expired = events(format!(
        "verificationSid={}&type=verification.expired",
        expiring["otpId"].as_str().unwrap()
    ))
    .await;
    assert_eq!(
        expired["events"].as_array().unwrap().len(),
        1,
        "the sweeper recorded the expiry when it happened: {expired}"
    );
    let first = events("type=verification.started&pageSize=1".into()).await;
    let token_next = first["nextPageToken"].as_str().unwrap();
    let second = events(format!(
        "type=verification.started&pageSize=1&pageToken={token_next}"
    ))
    .await;
    assert_ne!(first["events"][0]["id"], second["events"][0]["id"]);
    assert_eq!(
        app.client
            .get(app.url("/admin/v1/events"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

/// A webhook receiver that answers 503 to its first `failures` posts, then 200, recording
/// every post.
#[derive(Clone, Default)]
struct Receiver {
    failures: Arc<std::sync::atomic::AtomicUsize>,
    accepted: Arc<Mutex<Vec<(Value, String, String)>>>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
}

async fn receive(
    State(receiver): State<Receiver>,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::http::StatusCode {
    use std::sync::atomic::Ordering;
    if receiver.failures.load(Ordering::SeqCst) > 0 {
        receiver.failures.fetch_sub(1, Ordering::SeqCst);
        receiver.refused.fetch_add(1, Ordering::SeqCst);
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    let signature = headers["x-otpd-signature"].to_str().unwrap().to_string();
    receiver
        .accepted
        .lock()
        .unwrap()
        .push((serde_json::from_str(&body).unwrap(), body, signature));
    axum::http::StatusCode::OK
}

#[tokio::test]
async fn a_webhook_that_fails_then_recovers_gets_every_event_once_in_order() {
    let receiver = Receiver::default();
    receiver
        .failures
        .store(6, std::sync::atomic::Ordering::SeqCst);
    let receiver_url = serve(
        axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone()),
    )
    .await;
    let app = TestApp::spawn_configured(|config| {
        config.callbacks.base_delay_ms = 200;
    })
    .await;
    let token = app.token().await;
    let user = format!("AC{}", app.credentials.application.account_id.simple());
    let password = app.credentials.account_token.clone().unwrap();
    let sid = format!("VA{}", app.credentials.application.service_id.simple());
    let response = app
        .client
        .post(app.url(&format!("/admin/v1/services/{sid}/webhooks")))
        .basic_auth(&user, Some(&password))
        .json(&json!({"url": format!("{receiver_url}/hook"), "eventTypes": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let webhook: Value = response.json().await.unwrap();
    let key = webhook["signingKey"].as_str().unwrap().to_string();

    let (_, a) = app.create(&token, json!({"phoneNumber": FR})).await;
    let (_, b) = app
        .create(&token, json!({"phoneNumber": "+447400123456"}))
        .await;
    let a_id = a["otpId"].as_str().unwrap();
    assert_eq!(app.check(&token, a_id, "000000").await.0, 400);
    let code = app.last_code(FR).await;
    assert_eq!(app.check(&token, a_id, &code).await.0, 200);
    let b_id = b["otpId"].as_str().unwrap();
    let (status, _) = app
        .call(Method::DELETE, &format!("/otp/{b_id}"), &token, None)
        .await;
    assert_eq!(status, 200);

    let listed: Value = app
        .client
        .get(app.url("/admin/v1/events"))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected: Vec<String> = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(expected.len() >= 9, "{listed}");
    // Retries are scheduled on the server's clock: move it on until everything arrived.
    for _ in 0..400 {
        if receiver.accepted.lock().unwrap().len() >= expected.len() {
            break;
        }
        app.clock.advance_seconds(1);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let accepted = receiver.accepted.lock().unwrap().clone();
    let mut ids: Vec<String> = accepted
        .iter()
        .map(|(e, _, _)| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(receiver.refused.load(std::sync::atomic::Ordering::SeqCst) == 6);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "no event twice: {ids:?}");
    ids.sort();
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(ids, wanted, "every event once");
    // Destinations are sealed at rest, yet receivers get them in clear, and nothing else.
    for (event, body, _) in &accepted {
        if event["type"].as_str().unwrap().starts_with("verification.") {
            assert!(
                event["data"]["to"] == FR || event["data"]["to"] == "+447400123456",
                "{event}"
            );
            assert!(!body.contains("toSealed"), "{body}");
        }
    }
    if !common::on_postgres() {
        let mut stored = std::fs::read(app.dir.path().join("otpd.db")).unwrap();
        stored.extend(std::fs::read(app.dir.path().join("otpd.db-wal")).unwrap_or_default());
        for digits in [&FR[3..], "7400123456"] {
            assert!(
                !stored.windows(digits.len()).any(|w| w == digits.as_bytes()),
                "{digits} is in the database file after a full flow"
            );
        }
    }
    for verification in [a_id, b_id] {
        let sid = format!("VE{}", verification.replace('-', ""));
        let order: Vec<String> = accepted
            .iter()
            .filter(|(e, _, _)| e["verificationSid"] == sid)
            .map(|(e, _, _)| e["id"].as_str().unwrap().to_string())
            .collect();
        let mut in_order = order.clone();
        in_order.sort();
        assert_eq!(order, in_order, "a verification's events arrive in order");
    }
    // The documented recipe: t and v1 from the header, HMAC-SHA256(key, "<t>." + body).
    for (_, body, signature) in &accepted {
        let t: i64 = signature
            .split(',')
            .find_map(|p| p.strip_prefix("t="))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            signature,
            &otpd_core::auth::sign_with_key(&key, t, body.as_bytes())
        );
    }
    let webhook_id = webhook["id"].as_str().unwrap();
    let log: Value = app
        .client
        .get(app.url(&format!(
            "/admin/v1/services/{sid}/webhooks/{webhook_id}/deliveries"
        )))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = log["deliveries"].as_array().unwrap();
    assert_eq!(entries.len(), expected.len());
    assert!(
        entries
            .iter()
            .all(|e| e["state"] == "delivered" && e["lastStatus"] == 200)
    );
    assert!(
        entries.iter().any(|e| e["attempts"].as_u64().unwrap() > 1),
        "{log}"
    );
}

#[tokio::test]
async fn the_lifecycle_report_counts_failed_sent_and_success() {
    let (_twilio, url) = TwilioMock::start(false).await;
    let app = TestApp::spawn_configured(|config| {
        // The mock refuses numbers ending in 0001 as invalid: FAILED.
        config.providers = vec![twilio_provider("twilio", &url)];
        config.routes.whatsapp = vec!["twilio".into()];
    })
    .await;
    let token = app.token().await;
    let (_, approved) = app.create(&token, json!({"phoneNumber": FR})).await;
    app.create(&token, json!({"phoneNumber": "+33612345679"}))
        .await;
    let (_, failed) = app
        .create(
            &token,
            json!({"phoneNumber": "+447400000001", "channel": "whatsapp"}),
        )
        .await;
    assert_eq!(failed["deliveryStatus"], "FAILED", "{failed}");
    app.clock.advance_seconds(20);
    let code = app.last_code(FR).await;
    let id = approved["otpId"].as_str().unwrap();
    assert_eq!(app.check(&token, id, &code).await.0, 200);

    let user = format!("AC{}", app.credentials.application.account_id.simple());
    let password = app.credentials.account_token.clone().unwrap();
    let report: Value = app
        .client
        .get(app.url("/admin/v1/report?groupBy=channel"))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let groups = report["groups"].as_array().unwrap();
    let sms = groups.iter().find(|g| g["group"] == "sms").unwrap();
    assert_eq!(
        (
            &sms["verifications"],
            &sms["SUCCESS"],
            &sms["SENT"],
            &sms["FAILED"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(0)),
        "{report}"
    );
    assert_eq!(sms["shares"]["SUCCESS"], 0.5);
    assert_eq!(sms["secondsToApprove"]["median"], 20.0);
    let whatsapp = groups.iter().find(|g| g["group"] == "whatsapp").unwrap();
    assert_eq!(whatsapp["FAILED"], 1);
    assert!(whatsapp["secondsToApprove"]["median"].is_null());
    let by_provider: Value = app
        .client
        .get(app.url("/admin/v1/report?groupBy=provider"))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = by_provider["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["console", "twilio"]);
    let bad = app
        .client
        .get(app.url("/admin/v1/report?groupBy=planet"))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn an_approval_rate_alert_fires_once_and_clears() {
    use otpd_core::Clock;
    let app = TestApp::spawn_configured(|config| {
        config.alerts.enabled = false; // judged by hand below, at chosen times
    })
    .await;
    let token = app.token().await;
    let store = app.server.as_ref().unwrap().store.clone();
    let policy = otpd_core::alerts::AlertPolicy::default();
    let mut n = 0;
    let mut start = |approve: bool| {
        n += 1;
        let to = format!("+3361{n:07}");
        let app = &app;
        let token = token.clone();
        async move {
            let (status, otp) = app.create(&token, json!({"phoneNumber": to})).await;
            assert_eq!(status, 201, "{otp}");
            if approve {
                let code = app.last_code(&to).await;
                let id = otp["otpId"].as_str().unwrap();
                assert_eq!(app.check(&token, id, &code).await.0, 200);
            }
        }
    };
    for _ in 0..20 {
        start(true).await; // the baseline: every code used
    }
    app.clock.advance_seconds(3600);
    for _ in 0..20 {
        start(false).await; // then nobody enters their code
    }
    let check = || otpd_core::alerts::check_alerts(&store, &policy, app.clock.now());
    assert_eq!(check().await.unwrap(), 1, "the drop is reported");
    assert_eq!(check().await.unwrap(), 0, "once");
    for _ in 0..20 {
        start(true).await; // half of the window converts again: back to the threshold
    }
    assert_eq!(check().await.unwrap(), 1, "the recovery is reported");
    assert_eq!(check().await.unwrap(), 0);

    let user = format!("AC{}", app.credentials.application.account_id.simple());
    let password = app.credentials.account_token.clone().unwrap();
    let of_type = |kind: &'static str| {
        let request = app
            .client
            .get(app.url(&format!("/admin/v1/events?type={kind}")))
            .basic_auth(&user, Some(&password));
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            body["events"].as_array().unwrap().clone()
        }
    };
    let dropped = of_type("alert.approval_rate_dropped").await;
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["data"]["approvalRate"], 0.0);
    assert_eq!(dropped[0]["data"]["baselineApprovalRate"], 1.0);
    let recovered = of_type("alert.approval_rate_recovered").await;
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0]["data"]["approvalRate"], 0.5);
}
