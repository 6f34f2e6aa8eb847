//! Attacks against a real server and what stops them: SMS bombing of one number, code brute
//! force across restarted verifications, one client flooding starts, premium-rate and
//! blocked destinations; limits that survive a restart; the safe list.

mod common;

use common::{TestApp, assert_error};
use otpd_core::Clock;
use otpd_core::abuse::Limit;
use serde_json::{Value, json};

const VICTIM: &str = "+33612345678";

/// A server with the default protections on (the common test config turns them off).
async fn protected(adjust: impl FnOnce(&mut otpd::Config)) -> TestApp {
    TestApp::spawn_configured(|config| {
        config.limits = otpd::config::LimitsConfig::default();
        adjust(config);
    })
    .await
}

async fn start(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/otp"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sms_bombing_one_number_stops_at_the_destination_limit() {
    let mut app = protected(|_| {}).await;
    assert_eq!(
        app.config.limits.per_destination,
        Limit {
            max: 5,
            window_seconds: 600
        }
    );
    let token = app.token().await;
    for _ in 0..5 {
        assert_eq!(
            start(&app, &token, json!({"phoneNumber": VICTIM}))
                .await
                .status(),
            201
        );
        app.clock.advance_seconds(1);
    }
    let refused = start(&app, &token, json!({"phoneNumber": VICTIM})).await;
    assert_eq!(refused.status(), 429);
    let headers = refused.headers().clone();
    assert_eq!(headers["x-rate-limit-limit"], "5");
    assert_eq!(headers["x-rate-limit-remaining"], "0");
    // The first start leaves the window 600 s after it was made (5 s ago).
    assert_eq!(headers["retry-after"], "595");
    let reset: i64 = headers["x-rate-limit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reset, app.clock.now().unix_seconds() + 595);
    let body: Value = refused.json().await.unwrap();
    assert_error(&(429, body), 429, "rate_limit", 1014);
    assert_eq!(
        start(&app, &token, json!({"phoneNumber": "+33612345679"}))
            .await
            .status(),
        201,
        "other numbers are untouched"
    );

    // The limit is in the database: a restart does not reset it.
    app.restart().await;
    let token = app.token().await;
    assert_eq!(
        start(&app, &token, json!({"phoneNumber": VICTIM}))
            .await
            .status(),
        429
    );
    app.clock.advance_seconds(595);
    assert_eq!(
        start(&app, &token, json!({"phoneNumber": VICTIM}))
            .await
            .status(),
        201,
        "a slot frees when the oldest start leaves the window"
    );
}

#[tokio::test]
async fn brute_force_across_new_verifications_stops_at_the_lockout() {
    let app = protected(|config| {
        config.limits.per_destination.max = 100;
    })
    .await;
    let token = app.token().await;
    let mut wrong = 0;
    // Each verification allows 5 wrong codes; an attacker starts anew to reset the counter.
    loop {
        let response = start(&app, &token, json!({"phoneNumber": VICTIM})).await;
        if response.status() == 429 {
            let body: Value = response.json().await.unwrap();
            assert_error(&(429, body), 429, "rate_limit", 1017);
            break;
        }
        assert_eq!(response.status(), 201);
        let otp: Value = response.json().await.unwrap();
        let id = otp["otpId"].as_str().unwrap();
        for _ in 0..5 {
            let (status, _) = app.check(&token, id, "000000").await;
            assert_eq!(status, 400);
            wrong += 1;
        }
        assert!(wrong <= 20, "the lockout must come by the 20th wrong code");
    }
    assert_eq!(
        wrong, 20,
        "locked out after exactly the configured failures"
    );
    app.clock.advance_seconds(3600);
    assert_eq!(
        start(&app, &token, json!({"phoneNumber": VICTIM}))
            .await
            .status(),
        201,
        "the lockout lifts when the failures age out"
    );
}

#[tokio::test]
async fn one_client_address_is_limited_and_forwarded_for_is_ignored_from_strangers() {
    let app = protected(|config| {
        config.limits.per_client_ip = Limit {
            max: 3,
            window_seconds: 60,
        };
    })
    .await;
    let token = app.token().await;
    for i in 0..3 {
        let response = app
            .client
            .post(app.url("/otp"))
            .bearer_auth(&token)
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .json(&json!({"phoneNumber": format!("+3361234567{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let response = start(&app, &token, json!({"phoneNumber": "+33612345675"})).await;
    assert_eq!(
        response.status(),
        429,
        "the header does not make a new client"
    );
    let body: Value = response.json().await.unwrap();
    assert_error(&(429, body), 429, "rate_limit", 1015);
    // A backend names its end user's address; each user is then counted apart.
    let (status, body) = app
        .create(
            &token,
            json!({"phoneNumber": "+33612345675", "deviceIp": "203.0.113.9"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .create(
            &token,
            json!({"phoneNumber": "+33612345676", "deviceIp": "not-an-ip"}),
        )
        .await;
    assert_error(&(status, body), 400, "invalid_param", 1022);
}

#[tokio::test]
async fn a_trusted_proxy_passes_on_the_client_address() {
    let app = protected(|config| {
        config.limits.per_client_ip = Limit {
            max: 1,
            window_seconds: 60,
        };
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let token = app.token().await;
    for (client, number, expected) in [
        ("203.0.113.1", "+33612345670", 201),
        ("203.0.113.2", "+33612345671", 201),
        ("203.0.113.1", "+33612345672", 429),
    ] {
        let response = app
            .client
            .post(app.url("/otp"))
            .bearer_auth(&token)
            .header("X-Forwarded-For", client)
            .json(&json!({"phoneNumber": number}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected, "{client}");
    }
}

#[tokio::test]
async fn premium_rate_and_blocked_destinations_get_no_code() {
    let app = protected(|config| {
        config.default_otp.blocked_countries = vec!["DE".into()];
        config.default_otp.blocked_prefixes = vec!["+3361234".into()];
        config.default_otp.safe_list = vec!["+33612340000".into()];
    })
    .await;
    let token = app.token().await;
    let (status, body) = app
        .create(&token, json!({"phoneNumber": "+449098765432"}))
        .await;
    assert_error(&(status, body), 403, "destination_blocked", 1019);
    let (status, body) = app
        .create(&token, json!({"phoneNumber": "+4915112345678"}))
        .await;
    assert_error(&(status, body), 403, "destination_blocked", 1018);
    let (status, body) = app
        .create(&token, json!({"phoneNumber": "+33612345678"}))
        .await;
    assert_error(&(status, body), 403, "destination_blocked", 1018);
    // The safe list bypasses the block list and the destination limit.
    for _ in 0..7 {
        let (status, body) = app
            .create(&token, json!({"phoneNumber": "+33612340000"}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(
        app.create(&token, json!({"phoneNumber": "+447400123456"}))
            .await
            .0,
        201
    );
    let inbox: Vec<Value> = app
        .client
        .get(app.url("/dev/inbox.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        inbox.iter().all(|m| m["to"] != "+449098765432"),
        "nothing reached the premium-rate number"
    );
}

#[tokio::test]
async fn allowed_countries_are_the_only_ones_reached() {
    let app = protected(|config| {
        config.default_otp.allowed_countries = vec!["FR".into()];
        config.default_otp.allow_costly_numbers = true;
    })
    .await;
    let token = app.token().await;
    assert_eq!(
        app.create(&token, json!({"phoneNumber": VICTIM})).await.0,
        201
    );
    let (status, body) = app
        .create(&token, json!({"phoneNumber": "+447400123456"}))
        .await;
    assert_error(&(status, body), 403, "destination_blocked", 1018);
}

#[tokio::test]
async fn twilio_lookup_reports_the_line_type_and_landlines_get_no_sms() {
    let app = protected(|_| {}).await;
    let store = app.server.as_ref().unwrap().store.clone();
    let auth = otpd::authenticator(&app.config, store, app.clock.clone()).unwrap();
    let account = auth.create_account("t").await.unwrap();
    let user = format!("AC{}", account.account.id.simple());
    let post = |path: String, form: Vec<(&'static str, &'static str)>| {
        let request = app
            .client
            .post(app.url(&path))
            .basic_auth(&user, Some(&account.auth_token))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            );
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, service) = post(
        "/v2/Services".into(),
        vec![
            ("FriendlyName", "Acme"),
            ("LookupEnabled", "true"),
            ("SkipSmsToLandlines", "true"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{service}");
    let sid = service["sid"].as_str().unwrap();
    let path = format!("/v2/Services/{sid}/Verifications");
    let (status, verification) = post(
        path.clone(),
        vec![("To", "+447400123456"), ("Channel", "sms")],
    )
    .await;
    assert_eq!(status, 201, "{verification}");
    assert_eq!(verification["lookup"]["carrier"]["type"], "mobile");
    let (status, body) = post(
        path.clone(),
        vec![("To", "+441212345678"), ("Channel", "sms")],
    )
    .await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (403, Some(60205)),
        "{body}"
    );
    let (status, body) = post(
        path.clone(),
        vec![("To", "+441212345678"), ("Channel", "call")],
    )
    .await;
    assert_eq!(status, 201, "a landline can take a call: {body}");
    let (status, body) = post(path, vec![("To", "+449098765432"), ("Channel", "sms")]).await;
    assert_eq!(
        (status, body["code"].as_u64()),
        (403, Some(60410)),
        "{body}"
    );
}

/// Basic credentials of the account that owns the test app's service (admin API).
/// The admin API's answer at `path`, with the account's credentials.
async fn admin_get(app: &TestApp, path: &str) -> Value {
    let (user, password) = account_auth(app);
    app.client
        .get(app.url(path))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn account_auth(app: &TestApp) -> (String, String) {
    (
        format!("AC{}", app.credentials.application.account_id.simple()),
        app.credentials.account_token.clone().unwrap(),
    )
}

#[tokio::test]
async fn a_pumping_bot_is_stopped_within_the_minimum_volume_and_real_users_are_not() {
    let app = protected(|config| {
        // The bot uses one address and many numbers: switch the per-IP limit off so that
        // only the pumping defence stands in its way (and premium numbers are allowed).
        config.limits.per_client_ip.max = 0;
        config.pumping = otpd::config::PumpingConfig::default();
        config.default_otp.allow_costly_numbers = true;
    })
    .await;
    let min_volume = app.config.pumping.settings().min_volume;
    assert_eq!(min_volume, 20);
    let token = app.token().await;
    let mut pumped_sent = 0;
    let mut pumped_refused = 0;
    let mut real_started = 0;
    let mut real_refused = 0;
    let real_numbers = |n: u32| match n % 4 {
        0 => format!("+336123{n:05}"),
        1 => format!("+447400{n:06}"),
        2 => format!("+346123{n:05}"),
        _ => format!("+1415555{:04}", n),
    };
    for i in 0..500u32 {
        // The bot: premium-rate numbers in one range, never verified.
        let (status, body) = app
            .create(&token, json!({"phoneNumber": format!("+44909876{:04}", i)}))
            .await;
        match status {
            201 => pumped_sent += 1,
            403 => {
                assert_eq!(body["error"]["code"], 1020, "{body}");
                pumped_refused += 1;
            }
            other => panic!("{other} {body}"),
        }
        // Real users, one for every two bot requests, 90 % of them enter their code.
        if i % 2 == 0 {
            let n = i / 2;
            let to = real_numbers(n);
            let (status, otp) = app.create(&token, json!({"phoneNumber": to})).await;
            if status != 201 {
                assert_eq!(status, 403, "{to}: {otp}");
                real_refused += 1;
                continue;
            }
            real_started += 1;
            if n % 10 != 0 {
                let code = app.last_code(&to).await;
                let id = otp["otpId"].as_str().unwrap();
                assert_eq!(app.check(&token, id, &code).await.0, 200);
            }
        }
    }
    eprintln!(
        "pumping: bot sent {pumped_sent}, refused {pumped_refused}; real users started {real_started}, refused {real_refused}"
    );
    assert_eq!(pumped_sent, min_volume, "stopped at the minimum volume");
    assert_eq!(pumped_refused, 500 - min_volume);
    assert_eq!(
        real_refused,
        0,
        "false-block rate 0/{}",
        real_started + real_refused
    );

    // The quarantine is listed and lifted through the admin API.
    let (user, password) = account_auth(&app);
    let listed = admin_get(&app, "/admin/v1/quarantines").await;
    let quarantines = listed["quarantines"].as_array().unwrap();
    assert_eq!(quarantines.len(), 1, "{listed}");
    assert_eq!(quarantines[0]["prefix"], "+44909");
    assert!(
        quarantines[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("20 starts, 0 approved")
    );
    // The decision is an event, with the figures and the thresholds it was taken on.
    let events = admin_get(&app, "/admin/v1/events?type=prefix.quarantined").await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let data = &events[0]["data"];
    assert_eq!(data["prefix"], "+44909");
    assert_eq!(data["signals"], json!({"starts": 20, "approved": 0}));
    assert_eq!(data["baseline"]["minApprovalRate"], 0.1);
    assert_eq!(data["mode"], "block");
    let unauthenticated = app
        .client
        .delete(app.url("/admin/v1/quarantines/%2B44909"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let lifted = app
        .client
        .delete(app.url("/admin/v1/quarantines/%2B44909"))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(lifted.status(), 204);
    // Lifted, the prefix is judged again on its (still bad) record.
    let (status, _) = app
        .create(&token, json!({"phoneNumber": "+449098769999"}))
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn shadow_mode_answers_as_if_sent_and_sends_nothing() {
    let app = protected(|config| {
        config.limits.per_client_ip.max = 0;
        config.pumping = otpd::config::PumpingConfig {
            min_volume: Some(5),
            mode: otpd_core::abuse::QuarantineMode::Shadow,
            ..Default::default()
        };
    })
    .await;
    let token = app.token().await;
    for i in 0..5 {
        let to = format!("+4474001{i:05}");
        assert_eq!(app.create(&token, json!({"phoneNumber": to})).await.0, 201);
    }
    let to = "+447400199999";
    let (status, otp) = app.create(&token, json!({"phoneNumber": to})).await;
    assert_eq!(status, 201, "the attacker sees a normal answer: {otp}");
    assert_eq!(otp["status"], "PENDING");
    assert_eq!(otp["deliveries"][0]["status"], "failed");
    assert_eq!(otp["deliveries"][0]["errorCode"], "shadow_blocked");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let inbox: Vec<Value> = app
        .client
        .get(app.url("/dev/inbox.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(inbox.iter().all(|m| m["to"] != to), "nothing was sent");
}

#[tokio::test]
async fn a_daily_budget_caps_spending() {
    let app = protected(|config| {
        config.prices.insert("GB".into(), 0.04);
        config.default_otp.daily_budget = Some(0.10);
    })
    .await;
    let token = app.token().await;
    for i in 0..2 {
        let to = format!("+44740012345{i}");
        let (status, otp) = app.create(&token, json!({"phoneNumber": to})).await;
        assert_eq!((status, otp["cost"].as_f64()), (201, Some(0.04)), "{otp}");
    }
    let (status, body) = app
        .create(&token, json!({"phoneNumber": "+447400123459"}))
        .await;
    assert_error(&(status, body), 429, "rate_limit", 1021);
    assert_eq!(
        app.create(&token, json!({"phoneNumber": "+14155552671"}))
            .await
            .0,
        201,
        "a destination without a price costs nothing"
    );
    app.clock.advance_seconds(86_400);
    let token = app.token().await;
    assert_eq!(
        app.create(&token, json!({"phoneNumber": "+447400123459"}))
            .await
            .0,
        201,
        "a new day, a new budget"
    );
}

#[tokio::test]
async fn the_admin_api_changes_a_services_protection() {
    let app = protected(|_| {}).await;
    let (user, password) = account_auth(&app);
    let sid = format!("VA{}", app.credentials.application.service_id.simple());
    let url = app.url(&format!("/admin/v1/services/{sid}/protection"));
    let put = |body: Value| {
        app.client
            .put(&url)
            .basic_auth(&user, Some(&password))
            .json(&body)
            .send()
    };
    let response = put(
        json!({"blockedCountries": ["de"], "safeList": ["+33 6 12 34 56 78"], "dailyBudget": 5}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let protection: Value = response.json().await.unwrap();
    assert_eq!(protection["blockedCountries"], json!(["DE"]));
    assert_eq!(protection["safeList"], json!(["+33612345678"]));
    assert_eq!(protection["dailyBudget"], 5.0);
    assert_eq!(protection["allowCostlyNumbers"], false);
    let response = put(json!({"blockedPrefixes": ["44"]})).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("blockedPrefixes"),
        "{body}"
    );
    let response = put(json!({"allowedCountries": ["XX"]})).await.unwrap();
    assert_eq!(response.status(), 400);
    let token = app.token().await;
    let (status, body) = app
        .create(&token, json!({"phoneNumber": "+4915112345678"}))
        .await;
    assert_error(&(status, body), 403, "destination_blocked", 1018);
    let other = app
        .client
        .get(app.url("/admin/v1/services/VA00000000000000000000000000000000/protection"))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

/// A server whose pumping defence quarantines a prefix after 5 unconverted starts.
async fn pumping_after_five() -> TestApp {
    protected(|config| {
        config.limits.per_client_ip.max = 0;
        config.pumping = otpd::config::PumpingConfig {
            min_volume: Some(5),
            ..Default::default()
        };
    })
    .await
}

/// A second application in a new account (another tenant), with a bearer token.
async fn other_tenant(app: &TestApp) -> (otpd_core::auth::IssuedCredentials, String) {
    let store = app.server.as_ref().unwrap().store.clone();
    let auth = otpd::authenticator(&app.config, store, app.clock.clone()).unwrap();
    let other = auth
        .create_application(None, "other", app.config.default_otp.clone())
        .await
        .unwrap();
    let response = app.token_for(&other, None).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();
    (other, token)
}

/// The n-th number of the +44740 range (one destination each, so only pumping counts).
fn in_range(n: u32) -> String {
    format!("+4474001{n:05}")
}

#[tokio::test]
async fn one_tenants_pumping_counts_and_quarantines_for_that_tenant_only() {
    let app = pumping_after_five().await;
    let a = app.token().await;
    let (_, b) = other_tenant(&app).await;
    for n in 0..4 {
        assert_eq!(
            app.create(&a, json!({"phoneNumber": in_range(n)})).await.0,
            201
        );
        assert_eq!(
            app.create(&b, json!({"phoneNumber": in_range(100 + n)}))
                .await
                .0,
            201
        );
    }
    // Eight unconverted starts to the range, but only four of A's: A's fifth is not judged on
    // B's traffic.
    assert_eq!(
        app.create(&a, json!({"phoneNumber": in_range(4)})).await.0,
        201
    );
    let refused = app.create(&a, json!({"phoneNumber": in_range(5)})).await;
    assert_error(&refused, 403, "destination_blocked", 1020);
    // A's quarantine does not stop B, whose own record is four unconverted starts.
    let (status, body) = app.create(&b, json!({"phoneNumber": in_range(104)})).await;
    assert_eq!(status, 201, "{body}");
    let refused = app.create(&a, json!({"phoneNumber": in_range(6)})).await;
    assert_error(&refused, 403, "destination_blocked", 1020);
}

/// GET and DELETE on /admin/v1/quarantines with an account's credentials.
async fn admin_quarantines(app: &TestApp, user: &str, password: &str) -> Value {
    let response = app
        .client
        .get(app.url("/admin/v1/quarantines"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn admin_lift(app: &TestApp, user: &str, password: &str, query: &str) -> (u16, Value) {
    let response = app
        .client
        .delete(app.url(&format!("/admin/v1/quarantines/%2B44740{query}")))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_account_sees_and_lifts_only_its_own_quarantines() {
    let app = pumping_after_five().await;
    let a = app.token().await;
    for n in 0..6 {
        app.create(&a, json!({"phoneNumber": in_range(n)})).await;
    }
    let (user_a, password_a) = account_auth(&app);
    let service_a = format!("VA{}", app.credentials.application.service_id.simple());
    let (other, b) = other_tenant(&app).await;
    let user_b = format!("AC{}", other.application.account_id.simple());
    let password_b = other.account_token.clone().unwrap();

    let listed = admin_quarantines(&app, &user_b, &password_b).await;
    assert_eq!(
        listed,
        json!({"quarantines": []}),
        "A's is not B's business"
    );
    for query in ["", &format!("?serviceSid={service_a}")] {
        let (status, body) = admin_lift(&app, &user_b, &password_b, query).await;
        assert_eq!(
            (status, &body["code"]),
            (404, &json!(20404)),
            "{query}: {body}"
        );
    }
    let (status, body) = admin_lift(&app, &user_b, &password_b, "?serviceSid=VAnope").await;
    assert_eq!((status, &body["code"]), (400, &json!(60200)), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("serviceSid"),
        "{body}"
    );
    let still = app.create(&a, json!({"phoneNumber": in_range(50)})).await;
    assert_error(&still, 403, "destination_blocked", 1020);

    let listed = admin_quarantines(&app, &user_a, &password_a).await;
    let items = listed["quarantines"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["prefix"], "+44740");
    assert_eq!(items[0]["scope"], "service");
    assert_eq!(items[0]["serviceSid"], service_a);
    assert_eq!(admin_lift(&app, &user_a, &password_a, "").await.0, 204);
    assert_eq!(
        admin_quarantines(&app, &user_a, &password_a).await,
        json!({"quarantines": []})
    );

    // A server-wide quarantine (only the operator sets one) stops B too; accounts see it,
    // read-only.
    let store = app.server.as_ref().unwrap().store.clone();
    let now = app.clock.now();
    otpd_core::LimitStore::quarantine(
        &store,
        &otpd_core::store::Quarantine {
            prefix: "+44740".into(),
            service: None,
            reason: "set by the operator".into(),
            until: now.plus_seconds(3600),
            created_at: now,
        },
    )
    .await
    .unwrap();
    let refused = app.create(&b, json!({"phoneNumber": in_range(200)})).await;
    assert_error(&refused, 403, "destination_blocked", 1020);
    let listed = admin_quarantines(&app, &user_b, &password_b).await;
    assert_eq!(listed["quarantines"][0]["scope"], "server", "{listed}");
    assert_eq!(listed["quarantines"][0]["serviceSid"], Value::Null);
    assert_eq!(admin_lift(&app, &user_b, &password_b, "").await.0, 404);
    let refused = app.create(&b, json!({"phoneNumber": in_range(201)})).await;
    assert_error(&refused, 403, "destination_blocked", 1020);
}
