//! Black-box tests of the native (SMS.CX-compatible) API: a real server on a random port,
//! a real SQLite file, HTTP in and out.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestApp, assert_error};
use reqwest::Method;
use serde_json::{Value, json};

const FR: &str = "+33612345678";

#[tokio::test]
async fn token_flow_gives_a_bearer_token() {
    let app = TestApp::spawn().await;
    let response = app.token_for(&app.credentials, Some("otp")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86_400);
    assert_eq!(body["scope"], "otp");
    let token = body["access_token"].as_str().unwrap();
    assert!(token.len() >= 40);
    let (status, _) = app.create(token, json!({"phoneNumber": FR})).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn token_endpoint_errors_follow_the_reference() {
    let app = TestApp::spawn().await;
    let post = |auth: Option<(String, String)>, body: &'static str| {
        let mut request = app
            .client
            .post(app.url("/oauth/token"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some((id, secret)) = auth {
            request = request.basic_auth(id, Some(secret));
        }
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let good = Some((
        app.credentials.application.id.simple(),
        app.credentials.secret.clone(),
    ));
    assert_error(
        &post(good.clone(), "scope=otp").await,
        400,
        "invalid_request",
        1600,
    );
    assert_error(
        &post(good.clone(), "grant_type=password").await,
        400,
        "unsupported_grant_type",
        1600,
    );
    assert_error(
        &post(
            good.clone(),
            "grant_type=client_credentials&scope=otp+nonsense",
        )
        .await,
        400,
        "invalid_scope",
        1600,
    );
    let wrong = Some((
        app.credentials.application.id.simple(),
        "not-the-secret".to_string(),
    ));
    assert_error(
        &post(wrong, "grant_type=client_credentials").await,
        401,
        "invalid_client",
        1600,
    );
    assert_error(
        &post(None, "grant_type=client_credentials").await,
        401,
        "invalid_client",
        1600,
    );
    // The Python client's order and encoding.
    let (status, body) = post(good, "scope=otp+sms&grant_type=client_credentials").await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "otp sms");
}

#[tokio::test]
async fn otp_endpoints_require_credentials_and_the_otp_scope() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/otp"))
        .json(&json!({"phoneNumber": FR}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_api_key");
    assert_error(
        &app.create("made-up-token", json!({"phoneNumber": FR}))
            .await,
        401,
        "invalid_api_key",
        1001,
    );

    let sms_only: Value = app
        .token_for(&app.credentials, Some("sms"))
        .await
        .json()
        .await
        .unwrap();
    let token = sms_only["access_token"].as_str().unwrap();
    assert_error(
        &app.create(token, json!({"phoneNumber": FR})).await,
        403,
        "insufficient_scope",
        1002,
    );
}

#[tokio::test]
async fn api_key_authenticates_like_a_token() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/otp"))
        .header("X-API-KEY", &app.credentials.api_key)
        .json(&json!({"phoneNumber": FR}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-API-KEY", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .post(app.url("/otp"))
        .header("X-API-KEY", "wrong")
        .json(&json!({"phoneNumber": FR}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn revoked_and_expired_tokens_stop_working() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let response = app
        .client
        .post(app.url("/oauth/revoke"))
        .basic_auth(
            app.credentials.application.id.simple(),
            Some(&app.credentials.secret),
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["revoked"], true);
    assert_error(
        &app.create(&token, json!({"phoneNumber": FR})).await,
        401,
        "invalid_api_key",
        1001,
    );

    let token = app.token().await;
    assert_eq!(app.create(&token, json!({"phoneNumber": FR})).await.0, 201);
    app.clock.advance_seconds(86_400);
    assert_error(
        &app.create(&token, json!({"phoneNumber": FR})).await,
        401,
        "invalid_api_key",
        1001,
    );
}

#[tokio::test]
async fn create_returns_the_whole_otp_object() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let track = "bf325375-e030-fccb-a009-17317c574773";
    let (status, otp) = app
        .create(
            &token,
            json!({
                "phoneNumber": "+33 6 12 34 56 78", "from": "InfoText", "template": "Votre code: {{pin}}",
                "trackId": track.to_uppercase(), "ttl": 180, "maxAttempts": 4, "pinType": "numbers",
                "pinLength": 4, "otpCallbackUrl": "https://example.com/otp-status"
            }),
        )
        .await;
    assert_eq!(status, 201);
    let keys: Vec<&str> = otp
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "otpId",
        "trackId",
        "phoneNumber",
        "countryIso",
        "status",
        "cost",
        "parts",
        "maxAttempts",
        "attempts",
        "ttl",
        "otpCallbackUrl",
        "dateCreated",
        "dateExpires",
        // otpd's extensions: the sends and their one-word summary.
        "deliveries",
        "deliveryStatus",
    ];
    expected.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, expected);
    // The first try ran inline: the response already says the provider took the message.
    assert_eq!(otp["deliveryStatus"], "SENT");
    let deliveries = otp["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["status"], "sent");
    assert_eq!(deliveries[0]["channel"], "sms");
    assert_eq!(deliveries[0]["provider"], "console");
    assert!(
        deliveries[0]["providerMessageId"]
            .as_str()
            .unwrap()
            .starts_with("console-")
    );
    let id = otp["otpId"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(id, id.to_lowercase());
    assert_eq!(otp["trackId"], track);
    assert_eq!(otp["phoneNumber"], FR);
    assert_eq!(otp["countryIso"], "FR");
    assert_eq!(otp["status"], "PENDING");
    assert_eq!(otp["cost"], 0.045);
    assert_eq!(otp["parts"], 1);
    assert_eq!(otp["maxAttempts"], 4);
    assert_eq!(otp["attempts"], 0);
    assert_eq!(otp["ttl"], 180);
    assert_eq!(otp["otpCallbackUrl"], "https://example.com/otp-status");
    let created = otp["dateCreated"].as_str().unwrap();
    assert_eq!(created.len(), 19);
    assert_eq!(&created[10..11], " ");
    let message = app.last_message(FR).await;
    assert!(message.starts_with("Votre code: "));
    let code = message.trim_start_matches("Votre code: ");
    assert_eq!(code.len(), 4);
    assert!(code.chars().all(|c| c.is_ascii_digit()));
    // The code appears in no API response.
    assert!(!otp.to_string().contains(code));
    let (_, read) = app
        .call(Method::GET, &format!("/otp/{id}"), &token, None)
        .await;
    assert!(!read.to_string().contains(code));
    assert_eq!(read["dateExpires"], otp["dateExpires"]);
}

#[tokio::test]
async fn defaults_and_overrides_shape_the_code() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"to": "+447400123456"})).await;
    assert_eq!(
        (
            otp["countryIso"].as_str(),
            otp["ttl"].as_u64(),
            otp["maxAttempts"].as_u64()
        ),
        (Some("GB"), Some(600), Some(5))
    );
    let code = app.last_code("+447400123456").await;
    assert_eq!(code.len(), 6);
    assert!(code.chars().all(|c| c.is_ascii_digit()));

    app.create(
        &token,
        json!({"phoneNumber": "+4915123456789", "pinType": "letters", "pinLength": 8}),
    )
    .await;
    let code = app.last_code("+4915123456789").await;
    assert_eq!(code.len(), 8);
    assert!(code.chars().all(|c| c.is_ascii_uppercase()));

    let (_, otp) = app.create(&token, json!({"phoneNumber": "612345679", "countryIso": "fr", "pinType": "alphanumeric", "pinLength": 10})).await;
    assert_eq!(otp["phoneNumber"], "+33612345679");
    let code = app.last_code("+33612345679").await;
    assert_eq!(code.len(), 10);
    assert!(
        code.chars()
            .all(|c| "23456789ABCDEFGHJKLMNPQRSTUVWXYZ".contains(c))
    );
    // Letters are compared case-insensitively.
    let (status, _) = app
        .check(&token, otp["otpId"].as_str().unwrap(), &code.to_lowercase())
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_long_unicode_template_is_counted_in_ucs2_parts() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let template = format!("{} {{{{pin}}}}", "ж".repeat(70));
    let (status, otp) = app
        .create(&token, json!({"phoneNumber": FR, "template": template}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(otp["parts"], 2);
    assert_eq!(otp["cost"], 0.09);
}

#[tokio::test]
async fn every_create_mistake_gets_its_code_and_names_the_field() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let cases: Vec<(Value, u64, &str)> = vec![
        (json!({}), 2001, "phoneNumber"),
        (json!({"phoneNumber": "0612345678"}), 2002, "countryIso"),
        (
            json!({"phoneNumber": FR, "countryIso": "UK"}),
            2003,
            "Country",
        ),
        (json!({"phoneNumber": FR, "from": ""}), 2004, "from"),
        (
            json!({"phoneNumber": FR, "from": "a-very-long-sender-id"}),
            2005,
            "from",
        ),
        (json!({"phoneNumber": FR, "template": ""}), 2006, "template"),
        (
            json!({"phoneNumber": FR, "template": "no placeholder"}),
            2006,
            "{{pin}}",
        ),
        (json!({"phoneNumber": FR, "ttl": "soon"}), 2007, "ttl"),
        (json!({"phoneNumber": FR, "ttl": 59}), 2008, "ttl"),
        (json!({"phoneNumber": FR, "ttl": 1801}), 2009, "ttl"),
        (
            json!({"phoneNumber": FR, "maxAttempts": [1]}),
            2010,
            "maxAttempts",
        ),
        (
            json!({"phoneNumber": FR, "maxAttempts": 0}),
            2011,
            "maxAttempts",
        ),
        (
            json!({"phoneNumber": FR, "maxAttempts": 11}),
            2012,
            "maxAttempts",
        ),
        (json!({"phoneNumber": FR, "pinType": ""}), 2013, "pinType"),
        (
            json!({"phoneNumber": FR, "pinType": "hex"}),
            2014,
            "pinType",
        ),
        (
            json!({"phoneNumber": FR, "pinLength": "six"}),
            2015,
            "pinLength",
        ),
        (
            json!({"phoneNumber": FR, "pinLength": 3}),
            2016,
            "pinLength",
        ),
        (
            json!({"phoneNumber": FR, "pinLength": 11}),
            2017,
            "pinLength",
        ),
        (
            json!({"phoneNumber": FR, "trackId": "123"}),
            2018,
            "trackId",
        ),
        (
            json!({"phoneNumber": FR, "otpCallbackUrl": "not a url"}),
            2019,
            "otpCallbackUrl",
        ),
        (json!({"phoneNumber": "+999123"}), 2020, "phone number"),
    ];
    for (body, code, field) in cases {
        let response = app.create(&token, body.clone()).await;
        assert_error(&response, 400, "invalid_param", code);
        let message = response.1["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: message {message:?} should name {field}"
        );
    }
    // Malformed JSON and non-objects are 400 invalid_body, never a 500.
    for raw in ["{", "[]", "\"text\"", ""] {
        let response = app
            .client
            .post(app.url("/otp"))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "body {raw:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_body");
    }
}

#[tokio::test]
async fn right_pin_verifies_once_and_wrong_pins_count() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    let id = otp["otpId"].as_str().unwrap();
    let code = app.last_code(FR).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_error(
        &app.check(&token, id, wrong).await,
        400,
        "invalid_pin",
        2029,
    );
    let (_, read) = app
        .call(Method::GET, &format!("/otp/{id}"), &token, None)
        .await;
    assert_eq!(read["attempts"], 1);
    let (status, body) = app.check(&token, id, &code).await;
    assert_eq!((status, body), (200, json!({"status": "VERIFIED"})));
    assert_error(
        &app.check(&token, id, &code).await,
        400,
        "otp_verified",
        2023,
    );
    let (_, read) = app
        .call(Method::GET, &format!("/otp/{id}"), &token, None)
        .await;
    assert_eq!(read["status"], "VERIFIED");
    assert_eq!(read["attempts"], 1);
}

#[tokio::test]
async fn pin_is_required_and_may_be_a_number() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    let id = otp["otpId"].as_str().unwrap();
    for body in [
        json!({}),
        json!({"pin": ""}),
        json!({"pin": null}),
        json!({"pin": true}),
    ] {
        let response = app
            .call(Method::POST, &format!("/otp/{id}"), &token, Some(body))
            .await;
        assert_error(&response, 400, "invalid_param", 2022);
        assert!(
            response.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains("pin")
        );
    }
    let code = app.last_code(FR).await;
    if !code.starts_with('0') {
        let number: u64 = code.parse().unwrap();
        let response = app
            .call(
                Method::POST,
                &format!("/otp/{id}"),
                &token,
                Some(json!({"pin": number})),
            )
            .await;
        assert_eq!(response.0, 200);
    }
}

#[tokio::test]
async fn max_attempts_ends_the_verification() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let (_, otp) = app
        .create(&token, json!({"phoneNumber": FR, "maxAttempts": 2}))
        .await;
    let id = otp["otpId"].as_str().unwrap();
    let code = app.last_code(FR).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_error(
        &app.check(&token, id, wrong).await,
        400,
        "invalid_pin",
        2029,
    );
    assert_error(&app.check(&token, id, wrong).await, 400, "otp_failed", 2027);
    assert_error(&app.check(&token, id, &code).await, 400, "otp_failed", 2026);
    let (_, read) = app
        .call(Method::GET, &format!("/otp/{id}"), &token, None)
        .await;
    assert_eq!(
        (read["status"].as_str(), read["attempts"].as_u64()),
        (Some("FAILED"), Some(2))
    );
    assert_error(
        &app.call(Method::DELETE, &format!("/otp/{id}"), &token, None)
            .await,
        403,
        "access_denied",
        2031,
    );
}

#[tokio::test]
async fn expiry_follows_the_clock() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let (_, otp) = app
        .create(&token, json!({"phoneNumber": FR, "ttl": 60}))
        .await;
    let id = otp["otpId"].as_str().unwrap();
    let code = app.last_code(FR).await;
    app.clock.advance_seconds(59);
    let (_, read) = app
        .call(Method::GET, &format!("/otp/{id}"), &token, None)
        .await;
    assert_eq!(read["status"], "PENDING");
    app.clock.advance_seconds(1);
    let (_, read) = app
        .call(Method::GET, &format!("/otp/{id}"), &token, None)
        .await;
    assert_eq!(read["status"], "EXPIRED");
    assert_error(
        &app.check(&token, id, &code).await,
        400,
        "otp_expired",
        2028,
    );
    assert_error(
        &app.check(&token, id, &code).await,
        400,
        "otp_expired",
        2025,
    );
    assert_error(
        &app.call(Method::DELETE, &format!("/otp/{id}"), &token, None)
            .await,
        403,
        "access_denied",
        2031,
    );
}

#[tokio::test]
async fn cancel_rules_and_unknown_ids() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    let id = otp["otpId"].as_str().unwrap();
    let code = app.last_code(FR).await;
    let (status, body) = app
        .call(Method::DELETE, &format!("/otp/{id}"), &token, None)
        .await;
    assert_eq!((status, body), (200, json!({"info": {"id": id}})));
    assert_error(
        &app.call(Method::DELETE, &format!("/otp/{id}"), &token, None)
            .await,
        403,
        "access_denied",
        2030,
    );
    assert_error(
        &app.check(&token, id, &code).await,
        400,
        "otp_cancelled",
        2024,
    );
    let (_, read) = app
        .call(Method::GET, &format!("/otp/{id}"), &token, None)
        .await;
    assert_eq!(read["status"], "CANCELLED");

    let (_, verified) = app.create(&token, json!({"phoneNumber": FR})).await;
    let verified_id = verified["otpId"].as_str().unwrap();
    let code = app.last_code(FR).await;
    assert_eq!(app.check(&token, verified_id, &code).await.0, 200);
    assert_error(
        &app.call(Method::DELETE, &format!("/otp/{verified_id}"), &token, None)
            .await,
        403,
        "access_denied",
        2031,
    );

    let unknown = "01a20884-c9be-7342-ade0-793327ba5265";
    for method in [Method::GET, Method::DELETE] {
        assert_error(
            &app.call(method.clone(), &format!("/otp/{unknown}"), &token, None)
                .await,
            404,
            "not_found",
            2021,
        );
        assert_error(
            &app.call(method, "/otp/not-a-uuid", &token, None).await,
            404,
            "not_found",
            2021,
        );
    }
    assert_error(
        &app.check(&token, unknown, "123456").await,
        404,
        "not_found",
        2021,
    );
}

#[tokio::test]
async fn another_application_cannot_see_or_touch_an_otp() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    let id = otp["otpId"].as_str().unwrap();
    let code = app.last_code(FR).await;
    let store = app.server.as_ref().unwrap().store.clone();
    let auth = otpd::authenticator(&app.config, store, app.clock.clone()).unwrap();
    let other = auth
        .create_application(None, "other", Default::default())
        .await
        .unwrap();
    let other_token: Value = app.token_for(&other, None).await.json().await.unwrap();
    let other_token = other_token["access_token"].as_str().unwrap();
    assert_error(
        &app.call(Method::GET, &format!("/otp/{id}"), other_token, None)
            .await,
        403,
        "access_denied",
        1003,
    );
    assert_error(
        &app.check(other_token, id, &code).await,
        403,
        "access_denied",
        1003,
    );
    assert_error(
        &app.call(Method::DELETE, &format!("/otp/{id}"), other_token, None)
            .await,
        403,
        "access_denied",
        1003,
    );
    // Nothing was counted or changed: the owner still verifies.
    assert_eq!(app.check(&token, id, &code).await.0, 200);
}

#[tokio::test]
async fn concurrent_right_pins_verify_exactly_once() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    let id = otp["otpId"].as_str().unwrap().to_string();
    let code = app.last_code(FR).await;
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (app, token, id, code) = (app.clone(), token.clone(), id.clone(), code.clone());
            tokio::spawn(async move { app.check(&token, &id, &code).await })
        })
        .collect();
    let mut verified = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        if status == 200 {
            verified += 1;
        } else {
            assert_eq!(body["error"]["code"], 2023);
        }
    }
    assert_eq!(verified, 1);
}

#[tokio::test]
async fn concurrent_wrong_pins_count_exactly_max_attempts() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let (_, otp) = app
        .create(&token, json!({"phoneNumber": FR, "maxAttempts": 5}))
        .await;
    let id = otp["otpId"].as_str().unwrap().to_string();
    let code = app.last_code(FR).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (app, token, id) = (app.clone(), token.clone(), id.clone());
            tokio::spawn(async move { app.check(&token, &id, wrong).await })
        })
        .collect();
    let mut codes = std::collections::HashMap::new();
    for task in tasks {
        let (_, body) = task.await.unwrap();
        *codes
            .entry(body["error"]["code"].as_u64().unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(codes.get(&2029), Some(&4));
    assert_eq!(codes.get(&2027), Some(&1));
    assert_eq!(codes.get(&2026), Some(&45));
    let (_, read) = app
        .call(Method::GET, &format!("/otp/{id}"), &token, None)
        .await;
    assert_eq!(
        (read["status"].as_str(), read["attempts"].as_u64()),
        (Some("FAILED"), Some(5))
    );
}

#[tokio::test]
async fn a_restart_loses_nothing() {
    let mut app = TestApp::spawn().await;
    let token = app.token().await;
    let (_, otp) = app.create(&token, json!({"phoneNumber": FR})).await;
    let id = otp["otpId"].as_str().unwrap().to_string();
    let code = app.last_code(FR).await;
    app.restart().await;
    // The token, the application and the verification all survived.
    let (_, read) = app
        .call(Method::GET, &format!("/otp/{id}"), &token, None)
        .await;
    assert_eq!(read["status"], "PENDING");
    assert_eq!(app.check(&token, &id, &code).await.0, 200);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let response = app.client.put(app.url("/otp")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_method"
    );
    let response = app
        .client
        .get(app.url("/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        1008
    );
    let response = app
        .client
        .post(app.url("/otp"))
        .header("Content-Type", "application/json")
        .body(vec![b' '; otpd_http::MAX_BODY_BYTES + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_body"
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn dev_inbox_shows_messages_newest_first() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    app.create(
        &token,
        json!({"phoneNumber": FR, "template": "first {{pin}}"}),
    )
    .await;
    app.last_message(FR).await;
    app.create(
        &token,
        json!({"phoneNumber": FR, "template": "second {{pin}}"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let messages: Vec<Value> = app
        .client
        .get(app.url("/dev/inbox.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages.len(), 2);
    assert!(messages[0]["body"].as_str().unwrap().starts_with("second "));
    assert_eq!(messages[0]["to"], FR);
    assert_eq!(messages[0]["channel"], "sms");
    assert!(messages[0]["sent_at"].as_str().is_some());
    let page = app
        .client
        .get(app.url("/dev/inbox"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("http-equiv=\"refresh\""));
    let first = page.find("second ").unwrap();
    assert!(first < page.find("first ").unwrap());
    let none: Vec<Value> = app
        .client
        .get(app.url("/dev/inbox.json?to=%2B447400123456"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn dev_inbox_is_off_outside_dev_mode() {
    let app = TestApp::spawn_configured(|config| config.dev_mode = Some(false)).await;
    assert_eq!(
        app.client
            .get(app.url("/dev/inbox"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        app.client
            .get(app.url("/dev/inbox.json"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn prefix_templates_pick_the_language() {
    let app = TestApp::spawn().await;
    let store = app.server.as_ref().unwrap().store.clone();
    let auth = otpd::authenticator(&app.config, store, app.clock.clone()).unwrap();
    let mut settings = otpd_core::OtpSettings::default();
    settings.prefix_templates.push(otpd_core::PrefixTemplate {
        prefix: "+33".into(),
        template: otpd_core::Template::new("Votre code est {{pin}}").unwrap(),
    });
    let french = auth.create_application(None, "fr", settings).await.unwrap();
    let token: Value = app.token_for(&french, None).await.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap();
    app.create(token, json!({"phoneNumber": FR})).await;
    assert!(app.last_message(FR).await.starts_with("Votre code est "));
    app.create(token, json!({"phoneNumber": "+447400123456"}))
        .await;
    assert!(
        app.last_message("+447400123456")
            .await
            .starts_with("Your verification code is ")
    );
}

/// A receiver that answers 500 to the first post and 200 afterwards, recording bodies.
async fn flaky_receiver() -> (
    String,
    Arc<std::sync::Mutex<Vec<(String, String)>>>,
    Arc<AtomicUsize>,
) {
    use axum::http::{HeaderMap, StatusCode};
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (r, h) = (received.clone(), hits.clone());
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (r, h) = (r.clone(), h.clone());
            async move {
                let signature = headers
                    .get("x-otpd-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                r.lock().unwrap().push((signature, body));
                if h.fetch_add(1, Ordering::SeqCst) == 0 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}/hook"), received, hits)
}

#[tokio::test]
async fn status_callbacks_are_signed_and_retried_after_a_500() {
    let app = TestApp::spawn().await;
    let (url, received, hits) = flaky_receiver().await;
    let token = app.token().await;
    let track = "3b90b6d3-4fd6-40d8-9b2d-310cb50f201d";
    let (_, otp) = app
        .create(
            &token,
            json!({"phoneNumber": FR, "otpCallbackUrl": url, "trackId": track}),
        )
        .await;
    let id = otp["otpId"].as_str().unwrap();
    let code = app.last_code(FR).await;
    assert_eq!(app.check(&token, id, &code).await.0, 200);
    // First post fails with 500.
    for _ in 0..500 {
        if hits.load(Ordering::SeqCst) >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // The retry is scheduled one base delay after the failure is recorded, on the server's
    // clock; the receiver sees the post before that record, so the clock moves on until the
    // retry comes (moving it once could land before the record and never reach the retry).
    for _ in 0..500 {
        if hits.load(Ordering::SeqCst) >= 2 {
            break;
        }
        app.clock.advance_seconds(2);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.clock.advance_seconds(3600);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "a delivered callback is not sent again"
    );

    let posts = received.lock().unwrap().clone();
    let (signature, body) = &posts[1];
    let parsed: Value = serde_json::from_str(body).unwrap();
    assert_eq!(parsed["event"], "otp_update");
    assert_eq!(parsed["data"][0]["otpId"], id);
    assert_eq!(parsed["data"][0]["status"], "VERIFIED");
    assert_eq!(parsed["data"][0]["trackId"], track);
    assert!(!body.contains(&code));
    // The receiver recomputes the signature with the service's signing key.
    let signer = otpd_core::auth::CallbackSigner::new(app.config.server_secret().unwrap());
    let key = signer.key_for(app.credentials.application.service_id);
    let t: i64 = signature
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("t=")
        .parse()
        .unwrap();
    assert_eq!(
        signature,
        &otpd_core::auth::sign_with_key(&key, t, body.as_bytes())
    );
    assert_ne!(
        signature,
        &otpd_core::auth::sign_with_key(&key, t, b"tampered")
    );
}

#[tokio::test]
async fn a_delivery_lost_in_a_crash_is_sent_after_the_restart() {
    use otpd_core::{CodeHasher, DeliveryJob, DeliveryStore, Dispatch, TenantStore, Verifier};
    struct Crash;
    impl Dispatch for Crash {
        fn dispatch(
            &self,
            _job: DeliveryJob,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<otpd_core::FirstTry>> + Send>>
        {
            Box::pin(std::future::ready(None))
        }
    }
    let mut app = TestApp::spawn().await;
    let token = app.token().await;
    // A verification written while the process "crashes" before its code leaves.
    let store = app.server.as_ref().unwrap().store.clone();
    let verifier = Verifier::new(
        store.clone(),
        app.clock.clone(),
        CodeHasher::new(app.config.server_secret().unwrap()),
        Arc::new(Crash),
        Default::default(),
    );
    let service = store
        .service(app.credentials.application.service_id)
        .await
        .unwrap()
        .unwrap();
    let request = otpd_core::StartRequest {
        to: Some(otpd_core::Recipient::parse("+447400123999", None).unwrap()),
        ..Default::default()
    };
    let started = verifier.start(&service, request).await.unwrap();
    let verification = started.verification();
    assert_eq!(
        store.deliveries(verification.id).await.unwrap()[0].status,
        otpd_core::DeliveryStatus::Queued
    );
    // Past the writer's lease, so the takeover is immediate on either backend (a sole SQLite
    // node would not even wait for it).
    app.clock
        .advance_seconds(otpd_core::store::DELIVERY_LEASE_SECONDS);
    app.restart().await;
    let code = app.last_code("+447400123999").await;
    assert_eq!(
        app.check(&token, &verification.id.to_string(), &code)
            .await
            .0,
        200
    );
    let store = app.server.as_ref().unwrap().store.clone();
    let mut delivered = false;
    for _ in 0..100 {
        if store.deliveries(verification.id).await.unwrap()[0].status
            == otpd_core::DeliveryStatus::Sent
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(delivered);
}
