//! Black-box tests of the Twilio Verify v2 dialect: a real server on a random port, form
//! bodies and HTTP Basic in, Twilio's JSON and error bodies out. Every error code of the
//! reference that applies to Services, Verifications and VerificationCheck is asserted
//! with its HTTP status here.

mod common;

use common::TestApp;
use reqwest::Method;
use serde_json::Value;

struct Twilio {
    app: TestApp,
    user: String,
    password: String,
}

impl Twilio {
    async fn spawn() -> Twilio {
        let app = TestApp::spawn().await;
        let store = app.server.as_ref().unwrap().store.clone();
        let auth = otpd::authenticator(&app.config, store, app.clock.clone()).unwrap();
        let account = auth.create_account("test").await.unwrap();
        Twilio {
            user: format!("AC{}", account.account.id.simple()),
            password: account.auth_token,
            app,
        }
    }

    async fn send(&self, method: Method, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.send_as(&self.user, &self.password, method, path, form)
            .await
    }

    async fn send_as(
        &self,
        user: &str,
        password: &str,
        method: Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .app
            .client
            .request(method, self.app.url(path))
            .basic_auth(user, Some(password))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        if text.is_empty() {
            return (status, Value::Null);
        }
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body: {text}")),
        )
    }

    async fn service(&self, form: &[(&str, &str)]) -> String {
        let (status, body) = self.send(Method::POST, "/v2/Services", form).await;
        assert_eq!(status, 201, "{body}");
        body["sid"].as_str().unwrap().to_string()
    }

    async fn start(&self, service: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.send(
            Method::POST,
            &format!("/v2/Services/{service}/Verifications"),
            form,
        )
        .await
    }

    async fn check(&self, service: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.send(
            Method::POST,
            &format!("/v2/Services/{service}/VerificationCheck"),
            form,
        )
        .await
    }

    async fn code(&self, to: &str) -> String {
        let message = self.app.next_message(to).await;
        message
            .split(|c: char| !c.is_ascii_alphanumeric())
            .find(|word| (4..=10).contains(&word.len()) && word.chars().all(|c| c.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no code in {message:?}"))
            .to_string()
    }
}

fn assert_twilio_error(response: &(u16, Value), status: u16, code: u64) {
    assert_eq!(response.0, status, "{}", response.1);
    assert_eq!(response.1["code"], code, "{}", response.1);
    assert_eq!(response.1["status"], status, "{}", response.1);
    assert_eq!(
        response.1["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}")
    );
    assert!(
        response.1["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(response.1.get("type").is_none() && response.1.get("title").is_none());
}

const PHONE: &str = "+14155552671";

#[tokio::test]
async fn credentials_are_checked_with_20003() {
    let t = Twilio::spawn().await;
    assert_twilio_error(
        &t.send_as(&t.user, "wrong", Method::GET, "/v2/Services", &[])
            .await,
        401,
        20003,
    );
    assert_twilio_error(
        &t.send_as("nobody", "x", Method::GET, "/v2/Services", &[])
            .await,
        401,
        20003,
    );
    let response = t
        .app
        .client
        .get(t.app.url("/v2/Services"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // An API key acts for its account.
    let store = t.app.server.as_ref().unwrap().store.clone();
    let auth = otpd::authenticator(&t.app.config, store, t.app.clock.clone()).unwrap();
    let account = otpd_core::auth::parse_application_id(&t.user[2..]).unwrap();
    let key = auth
        .create_api_key(otpd_core::AccountId::from_uuid(account.uuid()), "k")
        .await
        .unwrap()
        .unwrap();
    let sid = t.service(&[("FriendlyName", "Shop")]).await;
    let key_sid = format!("SK{}", key.key.id.simple());
    let (status, body) = t
        .send_as(
            &key_sid,
            &key.secret,
            Method::GET,
            &format!("/v2/Services/{sid}"),
            &[],
        )
        .await;
    assert_eq!((status, body["sid"].as_str()), (200, Some(sid.as_str())));
    assert_twilio_error(
        &t.send_as(&key_sid, "wrong", Method::GET, "/v2/Services", &[])
            .await,
        401,
        20003,
    );
}

#[tokio::test]
async fn a_service_has_the_documented_shape() {
    let t = Twilio::spawn().await;
    let (status, s) = t
        .send(
            Method::POST,
            "/v2/Services",
            &[
                ("FriendlyName", "My Service"),
                ("CodeLength", "8"),
                ("Psd2Enabled", "true"),
                ("Totp.Skew", "2"),
                (
                    "Passkeys.RelyingParty.Origins",
                    "https://a.example,https://b.example",
                ),
                ("Ttl", "300"),
            ],
        )
        .await;
    assert_eq!(status, 201);
    let sid = s["sid"].as_str().unwrap();
    assert!(sid.starts_with("VA") && sid.len() == 34);
    assert!(s["account_sid"].as_str().unwrap().starts_with("AC"));
    assert_eq!(s["friendly_name"], "My Service");
    assert_eq!(s["code_length"], 8);
    assert_eq!(s["psd2_enabled"], true);
    assert_eq!(s["custom_code_enabled"], false);
    assert_eq!(s["totp"]["skew"], 2);
    assert_eq!(s["totp"]["issuer"], Value::Null);
    assert_eq!(
        s["passkeys"]["relying_party"]["origins"],
        serde_json::json!(["https://a.example", "https://b.example"])
    );
    assert_eq!(s["ttl"], 300);
    for key in [
        "tts_name",
        "default_template_sid",
        "push",
        "whatsapp",
        "date_created",
        "date_updated",
    ] {
        assert!(s.get(key).is_some(), "{key} present");
    }
    assert_eq!(s["url"], format!("{}/v2/Services/{sid}", t.app.base));
    assert_eq!(
        s["links"]["verification_checks"],
        format!("{}/v2/Services/{sid}/VerificationCheck", t.app.base)
    );
    let created = s["date_created"].as_str().unwrap();
    assert!(created.len() == 20 && created.ends_with('Z') && &created[10..11] == "T");

    let (status, updated) = t
        .send(
            Method::POST,
            &format!("/v2/Services/{sid}"),
            &[("CustomCodeEnabled", "true")],
        )
        .await;
    assert_eq!(
        (status, &updated["custom_code_enabled"]),
        (200, &Value::Bool(true))
    );
    assert_eq!(
        updated["code_length"], 8,
        "update keeps what it does not name"
    );
    let (status, _) = t
        .send(Method::DELETE, &format!("/v2/Services/{sid}"), &[])
        .await;
    assert_eq!(status, 204);
    assert_twilio_error(
        &t.send(Method::GET, &format!("/v2/Services/{sid}"), &[])
            .await,
        404,
        20404,
    );
    assert_twilio_error(
        &t.send(Method::DELETE, &format!("/v2/Services/{sid}"), &[])
            .await,
        404,
        20404,
    );
}

#[tokio::test]
async fn service_parameters_are_validated() {
    let t = Twilio::spawn().await;
    assert_twilio_error(&t.send(Method::POST, "/v2/Services", &[]).await, 400, 20001);
    for form in [
        vec![("FriendlyName", "x".repeat(33))],
        vec![("FriendlyName", "ok".into()), ("CodeLength", "3".into())],
        vec![("FriendlyName", "ok".into()), ("CodeLength", "11".into())],
        vec![
            ("FriendlyName", "ok".into()),
            ("LookupEnabled", "yes".into()),
        ],
        vec![
            ("FriendlyName", "ok".into()),
            ("Totp.TimeStep", "10".into()),
        ],
        vec![
            ("FriendlyName", "ok".into()),
            ("DefaultTemplateSid", "HJ123".into()),
        ],
        vec![("FriendlyName", "ok".into()), ("Ttl", "59".into())],
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = t.send(Method::POST, "/v2/Services", &form).await;
        assert_twilio_error(&response, 400, 60200);
        let named = form.last().unwrap().0;
        assert!(
            response.1["message"].as_str().unwrap().contains(named),
            "{} names {named}",
            response.1
        );
    }
    assert_twilio_error(
        &t.send(Method::GET, "/v2/Services/VA0000", &[]).await,
        404,
        20404,
    );
    assert_twilio_error(&t.send(Method::PUT, "/v2/Services", &[]).await, 405, 20004);
    assert_twilio_error(&t.send(Method::GET, "/v2/Nothing", &[]).await, 404, 20404);
}

#[tokio::test]
async fn other_accounts_services_are_invisible() {
    let t = Twilio::spawn().await;
    let sid = t.service(&[("FriendlyName", "Mine")]).await;
    let path = format!("/v2/Services/{sid}");
    let store = t.app.server.as_ref().unwrap().store.clone();
    let auth = otpd::authenticator(&t.app.config, store, t.app.clock.clone()).unwrap();
    let stranger = auth.create_account("stranger").await.unwrap();
    let user = format!("AC{}", stranger.account.id.simple());
    assert_twilio_error(
        &t.send_as(&user, &stranger.auth_token, Method::GET, &path, &[])
            .await,
        404,
        20404,
    );
    let (_, list) = t
        .send_as(
            &user,
            &stranger.auth_token,
            Method::GET,
            "/v2/Services",
            &[],
        )
        .await;
    assert_eq!(list["services"], serde_json::json!([]));
}

#[tokio::test]
async fn services_list_in_pages_that_point_back_at_otpd() {
    let t = Twilio::spawn().await;
    let mut sids = Vec::new();
    for n in 0..5 {
        sids.push(t.service(&[("FriendlyName", &format!("S{n}"))]).await);
    }
    let (status, page) = t.send(Method::GET, "/v2/Services?PageSize=2", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(page["meta"]["key"], "services");
    assert_eq!(page["meta"]["page"], 0);
    assert_eq!(page["meta"]["page_size"], 2);
    assert_eq!(page["meta"]["previous_page_url"], Value::Null);
    assert_eq!(
        page["meta"]["first_page_url"],
        format!("{}/v2/Services?PageSize=2&Page=0", t.app.base)
    );
    let mut seen: Vec<String> = page["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sid"].as_str().unwrap().into())
        .collect();
    let mut next = page["meta"]["next_page_url"].as_str().map(str::to_string);
    let mut pages = 1;
    while let Some(url) = next {
        assert!(url.starts_with(&t.app.base));
        let path = url.trim_start_matches(&t.app.base).to_string();
        let (status, page) = t.send(Method::GET, &path, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(page["meta"]["page"], pages);
        seen.extend(
            page["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["sid"].as_str().unwrap().to_string()),
        );
        next = page["meta"]["next_page_url"].as_str().map(str::to_string);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, sids);
    assert_twilio_error(
        &t.send(Method::GET, "/v2/Services?PageSize=0", &[]).await,
        400,
        60200,
    );
    assert_twilio_error(
        &t.send(Method::GET, "/v2/Services?PageToken=bogus", &[])
            .await,
        400,
        60200,
    );
}

#[tokio::test]
async fn a_verification_has_the_documented_shape_and_resends_the_same_code() {
    let t = Twilio::spawn().await;
    let service = t.service(&[("FriendlyName", "Acme")]).await;
    let (status, v) = t
        .start(&service, &[("To", PHONE), ("Channel", "sms")])
        .await;
    assert_eq!(status, 201, "{v}");
    let sid = v["sid"].as_str().unwrap().to_string();
    assert!(sid.starts_with("VE") && sid.len() == 34);
    assert_eq!(v["service_sid"], service);
    assert_eq!(
        (
            v["to"].as_str(),
            v["channel"].as_str(),
            v["status"].as_str()
        ),
        (Some(PHONE), Some("sms"), Some("pending"))
    );
    assert_eq!(v["valid"], false);
    assert_eq!(v["lookup"], serde_json::json!({}));
    assert_eq!(
        (v["amount"].clone(), v["payee"].clone(), v["sna"].clone()),
        (Value::Null, Value::Null, Value::Null)
    );
    assert_eq!(v["send_code_attempts"][0]["channel"], "SMS");
    assert!(
        v["send_code_attempts"][0]["attempt_sid"]
            .as_str()
            .unwrap()
            .starts_with("VL")
    );
    assert_eq!(
        v["url"],
        format!("{}/v2/Services/{service}/Verifications/{sid}", t.app.base)
    );
    let message = t.app.last_message(PHONE).await;
    assert!(
        message.starts_with("Your Acme verification code is: "),
        "{message}"
    );
    let code = t.code(PHONE).await;
    assert!(
        !v.to_string().contains(&code),
        "codes never appear in responses"
    );

    let (status, again) = t
        .start(&service, &[("To", PHONE), ("Channel", "sms")])
        .await;
    assert_eq!((status, again["sid"].as_str()), (201, Some(sid.as_str())));
    assert_eq!(again["send_code_attempts"].as_array().unwrap().len(), 2);
    assert_eq!(t.code(PHONE).await, code, "a resend carries the same code");
    for _ in 0..3 {
        assert_eq!(
            t.start(&service, &[("To", PHONE), ("Channel", "sms")])
                .await
                .0,
            201
        );
    }
    assert_twilio_error(
        &t.start(&service, &[("To", PHONE), ("Channel", "sms")])
            .await,
        429,
        60203,
    );

    // Fetch by SID and by the raw `+` number in the path.
    let (status, fetched) = t
        .send(
            Method::GET,
            &format!("/v2/Services/{service}/Verifications/{sid}"),
            &[],
        )
        .await;
    assert_eq!((status, fetched["sid"].as_str()), (200, Some(sid.as_str())));
    let (status, by_to) = t
        .send(
            Method::GET,
            &format!("/v2/Services/{service}/Verifications/{PHONE}"),
            &[],
        )
        .await;
    assert_eq!((status, by_to["sid"].as_str()), (200, Some(sid.as_str())));
    let (status, checked) = t.check(&service, &[("To", PHONE), ("Code", &code)]).await;
    assert_eq!(status, 200);
    assert_eq!(
        (checked["status"].as_str(), checked["valid"].as_bool()),
        (Some("approved"), Some(true))
    );
    assert!(checked.get("url").is_none() && checked.get("send_code_attempts").is_none());
    assert_twilio_error(
        &t.send(
            Method::GET,
            &format!("/v2/Services/{service}/Verifications/{sid}"),
            &[],
        )
        .await,
        404,
        20404,
    );
    assert_twilio_error(
        &t.check(&service, &[("VerificationSid", &sid), ("Code", &code)])
            .await,
        404,
        20404,
    );
    // After approval the number can start afresh.
    let (status, fresh) = t
        .start(&service, &[("To", PHONE), ("Channel", "sms")])
        .await;
    assert_eq!(status, 201);
    assert_ne!(fresh["sid"].as_str(), Some(sid.as_str()));
}

#[tokio::test]
async fn verification_parameters_are_validated() {
    let t = Twilio::spawn().await;
    let service = t.service(&[("FriendlyName", "Acme")]).await;
    assert_twilio_error(&t.start(&service, &[("Channel", "sms")]).await, 400, 20001);
    assert_twilio_error(&t.start(&service, &[("To", PHONE)]).await, 400, 20001);
    for (to, channel, field) in [
        ("4155552671", "sms", "To"),
        ("+1234", "sms", "To"),
        ("ada@example.com", "sms", "To"),
        (PHONE, "email", "To"),
        (PHONE, "pigeon", "Channel"),
    ] {
        let response = t.start(&service, &[("To", to), ("Channel", channel)]).await;
        assert_twilio_error(&response, 400, 60200);
        assert!(response.1["message"].as_str().unwrap().contains(field));
    }
    for channel in ["sna", "auto"] {
        assert_twilio_error(
            &t.start(&service, &[("To", PHONE), ("Channel", channel)])
                .await,
            400,
            60223,
        );
    }
    for (name, value) in [
        ("CustomCode", "12"),
        ("Tags", "not json"),
        ("Tags", r#"{"a": {"nested": 1}}"#),
        ("RateLimits", "[1]"),
        ("TemplateSid", "HJ1"),
        ("Amount", "12.00"),
    ] {
        let response = t
            .start(
                &service,
                &[("To", PHONE), ("Channel", "sms"), (name, value)],
            )
            .await;
        assert_twilio_error(&response, 400, 60200);
        assert!(
            response.1["message"].as_str().unwrap().contains(name),
            "{}",
            response.1
        );
    }
    assert_twilio_error(
        &t.start(
            &service,
            &[("To", PHONE), ("Channel", "sms"), ("CustomCode", "1234")],
        )
        .await,
        403,
        60204,
    );
    // Accepted extras: tags, rate limits, locale, a template reference.
    let (status, _) = t
        .start(
            &service,
            &[
                ("To", PHONE),
                ("Channel", "sms"),
                ("Tags", r#"{"campaign": "spring"}"#),
                ("RateLimits", r#"{"end_user_ip": "203.0.113.9"}"#),
                ("Locale", "fr"),
                ("TemplateSid", "HJaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ],
        )
        .await;
    assert_eq!(status, 201);
    assert_twilio_error(
        &t.start(
            "VA00000000000000000000000000000000",
            &[("To", PHONE), ("Channel", "sms")],
        )
        .await,
        404,
        20404,
    );
}

#[tokio::test]
async fn checks_count_wrong_codes_then_answer_60202() {
    let t = Twilio::spawn().await;
    let service = t.service(&[("FriendlyName", "Acme")]).await;
    let (_, v) = t
        .start(&service, &[("To", PHONE), ("Channel", "sms")])
        .await;
    let sid = v["sid"].as_str().unwrap();
    let code = t.code(PHONE).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_twilio_error(&t.check(&service, &[("Code", wrong)]).await, 400, 60221);
    assert_twilio_error(&t.check(&service, &[("To", PHONE)]).await, 400, 20001);
    assert_twilio_error(
        &t.check(&service, &[("To", PHONE), ("Code", "12")]).await,
        400,
        60200,
    );
    assert_twilio_error(
        &t.check(&service, &[("VerificationSid", "VE12"), ("Code", wrong)])
            .await,
        400,
        60200,
    );
    for _ in 0..4 {
        let (status, body) = t
            .check(&service, &[("VerificationSid", sid), ("Code", wrong)])
            .await;
        assert_eq!(
            (status, body["status"].as_str(), body["valid"].as_bool()),
            (200, Some("pending"), Some(false))
        );
    }
    let (status, body) = t.check(&service, &[("To", PHONE), ("Code", wrong)]).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("max_attempts_reached"))
    );
    assert_twilio_error(
        &t.check(&service, &[("To", PHONE), ("Code", &code)]).await,
        429,
        60202,
    );
    assert_twilio_error(
        &t.check(&service, &[("VerificationSid", sid), ("Code", &code)])
            .await,
        429,
        60202,
    );
    assert_twilio_error(
        &t.send(
            Method::GET,
            &format!("/v2/Services/{service}/Verifications/{sid}"),
            &[],
        )
        .await,
        404,
        20404,
    );
    assert_twilio_error(
        &t.check(&service, &[("To", "+14155550000"), ("Code", &code)])
            .await,
        404,
        20404,
    );
}

#[tokio::test]
async fn expired_verifications_are_gone() {
    let t = Twilio::spawn().await;
    let service = t.service(&[("FriendlyName", "Acme"), ("Ttl", "60")]).await;
    let (_, v) = t
        .start(&service, &[("To", PHONE), ("Channel", "sms")])
        .await;
    let sid = v["sid"].as_str().unwrap();
    let code = t.code(PHONE).await;
    t.app.clock.advance_seconds(60);
    assert_twilio_error(
        &t.send(
            Method::GET,
            &format!("/v2/Services/{service}/Verifications/{sid}"),
            &[],
        )
        .await,
        404,
        20404,
    );
    assert_twilio_error(
        &t.check(&service, &[("VerificationSid", sid), ("Code", &code)])
            .await,
        404,
        20404,
    );
    assert_twilio_error(
        &t.check(&service, &[("To", PHONE), ("Code", &code)]).await,
        404,
        20404,
    );
}

#[tokio::test]
async fn cancel_and_approve_by_update() {
    let t = Twilio::spawn().await;
    let service = t.service(&[("FriendlyName", "Acme")]).await;
    let (_, v) = t
        .start(&service, &[("To", PHONE), ("Channel", "sms")])
        .await;
    let sid = v["sid"].as_str().unwrap();
    let path = format!("/v2/Services/{service}/Verifications/{sid}");
    assert_twilio_error(&t.send(Method::POST, &path, &[]).await, 400, 20001);
    assert_twilio_error(
        &t.send(Method::POST, &path, &[("Status", "deleted")]).await,
        400,
        60200,
    );
    let (status, canceled) = t.send(Method::POST, &path, &[("Status", "canceled")]).await;
    assert_eq!(
        (status, canceled["status"].as_str()),
        (200, Some("canceled"))
    );
    let (status, again) = t.send(Method::GET, &path, &[]).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("canceled")),
        "canceled stays readable"
    );
    assert_twilio_error(
        &t.check(&service, &[("VerificationSid", sid), ("Code", "123456")])
            .await,
        404,
        20404,
    );
    assert_twilio_error(
        &t.send(Method::POST, &path, &[("Status", "approved")]).await,
        404,
        20404,
    );

    let other = "+14155552672";
    let (_, v) = t
        .start(&service, &[("To", other), ("Channel", "sms")])
        .await;
    let (status, approved) = t
        .send(
            Method::POST,
            &format!("/v2/Services/{service}/Verifications/{other}"),
            &[("Status", "approved")],
        )
        .await;
    assert_eq!(
        (
            status,
            approved["status"].as_str(),
            approved["valid"].as_bool()
        ),
        (200, Some("approved"), Some(true))
    );
    assert_eq!(approved["sid"], v["sid"]);
}

#[tokio::test]
async fn custom_codes_psd2_and_message_options() {
    let t = Twilio::spawn().await;
    let service = t
        .service(&[
            ("FriendlyName", "Bank"),
            ("CustomCodeEnabled", "true"),
            ("Psd2Enabled", "true"),
            ("DoNotShareWarningEnabled", "true"),
        ])
        .await;
    let (status, _) = t
        .start(
            &service,
            &[
                ("To", PHONE),
                ("Channel", "sms"),
                ("CustomCode", "8642"),
                ("CustomFriendlyName", "Bank of Ada"),
            ],
        )
        .await;
    assert_eq!(status, 201);
    let message = t.app.last_message(PHONE).await;
    assert!(
        message.starts_with("Your Bank of Ada verification code is: 8642"),
        "{message}"
    );
    assert!(message.contains("Don't share this code"), "{message}");
    let (status, body) = t.check(&service, &[("To", PHONE), ("Code", "8642")]).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("approved")));

    let other = "+14155552673";
    let (status, v) = t
        .start(
            &service,
            &[
                ("To", other),
                ("Channel", "sms"),
                ("Amount", "€12.50"),
                ("Payee", "Acme"),
                ("AppHash", "He42w354ol9"),
            ],
        )
        .await;
    assert_eq!(
        (status, v["amount"].as_str(), v["payee"].as_str()),
        (201, Some("€12.50"), Some("Acme"))
    );
    let message = t.app.last_message(other).await;
    assert!(
        message.starts_with("<#> ") && message.ends_with("\nHe42w354ol9"),
        "{message:?}"
    );
    let code = t.code(other).await;
    let (_, wrong_payee) = t
        .check(
            &service,
            &[
                ("To", other),
                ("Code", &code),
                ("Amount", "€12.50"),
                ("Payee", "Mallory"),
            ],
        )
        .await;
    assert_eq!(wrong_payee["status"], "pending", "PSD2 details must match");
    let (_, right) = t
        .check(
            &service,
            &[
                ("To", other),
                ("Code", &code),
                ("Amount", "€12.50"),
                ("Payee", "Acme"),
            ],
        )
        .await;
    assert_eq!(
        (right["status"].as_str(), right["amount"].as_str()),
        (Some("approved"), Some("€12.50"))
    );
}

#[tokio::test]
async fn email_and_voice_channels_reach_the_console() {
    let t = Twilio::spawn().await;
    let service = t.service(&[("FriendlyName", "Acme")]).await;
    let (status, v) = t
        .start(&service, &[("To", "Ada@Example.com"), ("Channel", "email")])
        .await;
    assert_eq!(
        (status, v["channel"].as_str(), v["to"].as_str()),
        (201, Some("email"), Some("Ada@example.com"))
    );
    assert_eq!(v["send_code_attempts"][0]["channel"], "EMAIL");
    let messages: Vec<Value> = t
        .app
        .client
        .get(t.app.url("/dev/inbox.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m["channel"] == "email" && m["to"] == "Ada@example.com")
    );
    let (status, v) = t
        .start(&service, &[("To", PHONE), ("Channel", "call")])
        .await;
    assert_eq!((status, v["channel"].as_str()), (201, Some("call")));
}

#[tokio::test]
async fn force_check_once_allows_a_single_check() {
    let t = Twilio::spawn().await;
    let service = t
        .service(&[("FriendlyName", "Once"), ("DoForceCheckOnce", "true")])
        .await;
    t.start(&service, &[("To", PHONE), ("Channel", "sms")])
        .await;
    let code = t.code(PHONE).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (_, body) = t.check(&service, &[("To", PHONE), ("Code", wrong)]).await;
    assert_eq!(body["status"], "max_attempts_reached");
    assert_twilio_error(
        &t.check(&service, &[("To", PHONE), ("Code", &code)]).await,
        429,
        60202,
    );
}

#[tokio::test]
async fn both_dialects_see_the_same_verification() {
    let t = Twilio::spawn().await;
    // The first-start application's service, seen through the Twilio API of its account.
    let app = &t.app.credentials;
    let account_sid = format!("AC{}", app.application.account_id.simple());
    let token = app
        .account_token
        .clone()
        .expect("first start creates an account");
    let service = format!("VA{}", app.application.service_id.simple());
    let (status, v) = t
        .send_as(
            &account_sid,
            &token,
            Method::POST,
            &format!("/v2/Services/{service}/Verifications"),
            &[("To", PHONE), ("Channel", "sms")],
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let otp_id = uuid::Uuid::try_parse(&v["sid"].as_str().unwrap()[2..])
        .unwrap()
        .hyphenated()
        .to_string();
    let bearer = t.app.token().await;
    let (status, native) = t
        .app
        .call(Method::GET, &format!("/otp/{otp_id}"), &bearer, None)
        .await;
    assert_eq!(
        (
            status,
            native["status"].as_str(),
            native["phoneNumber"].as_str()
        ),
        (200, Some("PENDING"), Some(PHONE))
    );
    let code = t.code(PHONE).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(t.app.check(&bearer, &otp_id, wrong).await.0, 400);
    let (_, native) = t
        .app
        .call(Method::GET, &format!("/otp/{otp_id}"), &bearer, None)
        .await;
    assert_eq!(
        native["attempts"], 1,
        "one attempt counter for both dialects"
    );
    let (status, checked) = t
        .send_as(
            &account_sid,
            &token,
            Method::POST,
            &format!("/v2/Services/{service}/VerificationCheck"),
            &[("To", PHONE), ("Code", &code)],
        )
        .await;
    assert_eq!(
        (status, checked["status"].as_str()),
        (200, Some("approved"))
    );
    let (_, native) = t
        .app
        .call(Method::GET, &format!("/otp/{otp_id}"), &bearer, None)
        .await;
    assert_eq!(native["status"], "VERIFIED");
}

#[tokio::test]
async fn links_use_the_configured_public_url() {
    let app = TestApp::spawn_configured(|config| {
        config.public_base_url = Some("https://otp.example.com/".into())
    })
    .await;
    let app_sid = format!("AC{}", app.credentials.application.account_id.simple());
    let token = app.credentials.account_token.clone().unwrap();
    let response = app
        .client
        .get(app.url("/v2/Services"))
        .basic_auth(&app_sid, Some(&token))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["meta"]["url"],
        "https://otp.example.com/v2/Services?PageSize=50&Page=0"
    );
    assert!(
        body["services"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://otp.example.com/v2/Services/VA")
    );
}

#[tokio::test]
async fn programmable_rate_limits_count_starts_per_value() {
    let t = Twilio::spawn().await;
    let service = t.service(&[("FriendlyName", "Acme")]).await;
    let limits = format!("/v2/Services/{service}/RateLimits");
    let (status, limit) = t
        .send(
            Method::POST,
            &limits,
            &[("UniqueName", "end_user_ip"), ("Description", "per user")],
        )
        .await;
    assert_eq!(status, 201, "{limit}");
    let rk = limit["sid"].as_str().unwrap().to_string();
    assert!(rk.starts_with("RK") && rk.len() == 34);
    assert_eq!(limit["unique_name"], "end_user_ip");
    assert_eq!(limit["service_sid"], service);
    assert!(
        limit["links"]["buckets"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{rk}/Buckets"))
    );
    let duplicate = t
        .send(Method::POST, &limits, &[("UniqueName", "end_user_ip")])
        .await;
    assert_twilio_error(&duplicate, 400, 60200);
    assert_twilio_error(&t.send(Method::POST, &limits, &[]).await, 400, 20001);

    let buckets = format!("{limits}/{rk}/Buckets");
    let (status, bucket) = t
        .send(Method::POST, &buckets, &[("Max", "2"), ("Interval", "60")])
        .await;
    assert_eq!(status, 201, "{bucket}");
    assert_eq!(
        (bucket["max"].as_u64(), bucket["interval"].as_u64()),
        (Some(2), Some(60))
    );
    assert_eq!(bucket["rate_limit_sid"], rk);
    let (_, listed) = t.send(Method::GET, &buckets, &[]).await;
    assert_eq!(listed["buckets"].as_array().unwrap().len(), 1);
    assert_eq!(listed["meta"]["key"], "buckets");
    let (_, listed) = t.send(Method::GET, &limits, &[]).await;
    assert_eq!(listed["rate_limits"][0]["sid"], rk);

    let t = &t;
    let service = &service;
    let start = |to: &'static str, ip: &'static str| {
        let limits = format!("{{\"end_user_ip\": \"{ip}\"}}");
        async move {
            t.start(
                service,
                &[("To", to), ("Channel", "sms"), ("RateLimits", &limits)],
            )
            .await
        }
    };
    assert_eq!(start("+14155552671", "198.51.100.1").await.0, 201);
    assert_eq!(start("+14155552672", "198.51.100.1").await.0, 201);
    assert_twilio_error(&start("+14155552673", "198.51.100.1").await, 429, 20429);
    assert_eq!(
        start("+14155552673", "198.51.100.2").await.0,
        201,
        "another value"
    );
    t.app.clock.advance_seconds(60);
    assert_eq!(
        start("+14155552674", "198.51.100.1").await.0,
        201,
        "the interval passed"
    );

    let bucket_url = format!("{buckets}/{}", bucket["sid"].as_str().unwrap());
    let (status, updated) = t.send(Method::POST, &bucket_url, &[("Max", "5")]).await;
    assert_eq!((status, updated["max"].as_u64()), (200, Some(5)));
    assert_twilio_error(
        &t.send(Method::POST, &bucket_url, &[("Interval", "0")])
            .await,
        400,
        60200,
    );
    assert_eq!(t.send(Method::DELETE, &bucket_url, &[]).await.0, 204);
    assert_twilio_error(&t.send(Method::GET, &bucket_url, &[]).await, 404, 20404);
    for _ in 0..10 {
        t.send(Method::POST, &buckets, &[("Max", "1"), ("Interval", "1")])
            .await;
    }
    assert_twilio_error(
        &t.send(Method::POST, &buckets, &[("Max", "1"), ("Interval", "1")])
            .await,
        400,
        60210,
    );
    assert_eq!(
        t.send(Method::DELETE, &format!("{limits}/{rk}"), &[])
            .await
            .0,
        204
    );
    let (_, listed) = t.send(Method::GET, &limits, &[]).await;
    assert!(listed["rate_limits"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_safe_list_exempts_an_accounts_numbers_from_fraud_checks() {
    let t = Twilio::spawn().await;
    let service = t.service(&[("FriendlyName", "Acme")]).await;
    let premium = "+449098765432";
    let blocked = t
        .start(&service, &[("To", premium), ("Channel", "sms")])
        .await;
    assert_twilio_error(&blocked, 403, 60410);
    let (status, entry) = t
        .send(
            Method::POST,
            "/v2/SafeList/Numbers",
            &[("PhoneNumber", premium)],
        )
        .await;
    assert_eq!(status, 201, "{entry}");
    assert!(entry["sid"].as_str().unwrap().starts_with("GN"));
    assert_eq!(entry["phone_number"], premium);
    assert!(
        entry["url"]
            .as_str()
            .unwrap()
            .ends_with("/v2/SafeList/Numbers/+449098765432")
    );
    let (status, again) = t
        .send(
            Method::POST,
            "/v2/SafeList/Numbers",
            &[("PhoneNumber", premium)],
        )
        .await;
    assert_eq!(
        (status, &again["sid"]),
        (201, &entry["sid"]),
        "adding twice keeps one entry"
    );
    assert_twilio_error(
        &t.send(
            Method::POST,
            "/v2/SafeList/Numbers",
            &[("PhoneNumber", "12")],
        )
        .await,
        400,
        60200,
    );
    let (status, fetched) = t
        .send(Method::GET, "/v2/SafeList/Numbers/+449098765432", &[])
        .await;
    assert_eq!((status, &fetched["sid"]), (200, &entry["sid"]));
    let (status, _) = t
        .start(&service, &[("To", premium), ("Channel", "sms")])
        .await;
    assert_eq!(
        status, 201,
        "a safe-listed number skips the number-type rule"
    );
    assert_eq!(
        t.send(Method::DELETE, "/v2/SafeList/Numbers/+449098765432", &[])
            .await
            .0,
        204
    );
    assert_twilio_error(
        &t.send(Method::GET, "/v2/SafeList/Numbers/+449098765432", &[])
            .await,
        404,
        20404,
    );
    assert_twilio_error(
        &t.start(&service, &[("To", premium), ("Channel", "sms")])
            .await,
        403,
        60410,
    );
}

#[tokio::test]
async fn a_twilio_webhook_receives_only_its_event_types() {
    let received: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str::<Value>(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let t = Twilio::spawn().await;
    let service = t.service(&[("FriendlyName", "Acme")]).await;
    let (status, hook) = t
        .send(
            Method::POST,
            &format!("/v2/Services/{service}/Webhooks"),
            &[
                ("FriendlyName", "approvals"),
                ("EventTypes", "verification.approved"),
                ("WebhookUrl", &hook_url),
            ],
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    assert_eq!(
        hook["event_types"],
        serde_json::json!(["verification.approved"])
    );
    assert_eq!(hook["status"], "enabled");
    assert_twilio_error(
        &t.send(
            Method::POST,
            &format!("/v2/Services/{service}/Webhooks"),
            &[
                ("FriendlyName", "x"),
                ("EventTypes", "*"),
                ("WebhookUrl", "ftp://x"),
            ],
        )
        .await,
        400,
        60200,
    );
    let (status, _) = t
        .start(&service, &[("To", PHONE), ("Channel", "sms")])
        .await;
    assert_eq!(status, 201);
    let code = t.code(PHONE).await;
    let (_, checked) = t.check(&service, &[("To", PHONE), ("Code", &code)]).await;
    assert_eq!(checked["status"], "approved");
    for _ in 0..100 {
        if !received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let posts = received.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["type"], "verification.approved");
    assert_eq!(posts[0]["serviceSid"], service);
}

#[tokio::test]
async fn attempts_and_their_summary_count_conversions() {
    let t = Twilio::spawn().await;
    let service = t.service(&[("FriendlyName", "Acme")]).await;
    let (_, first) = t
        .start(&service, &[("To", PHONE), ("Channel", "sms")])
        .await;
    let (_, resent) = t
        .start(&service, &[("To", PHONE), ("Channel", "sms")])
        .await;
    assert_eq!(resent["send_code_attempts"].as_array().unwrap().len(), 2);
    let code = t.code(PHONE).await;
    let (_, checked) = t.check(&service, &[("To", PHONE), ("Code", &code)]).await;
    assert_eq!(checked["status"], "approved");
    let (_, other) = t
        .start(&service, &[("To", "+14155552672"), ("Channel", "sms")])
        .await;

    let (status, all) = t.send(Method::GET, "/v2/Attempts", &[]).await;
    assert_eq!(status, 200, "{all}");
    let attempts = all["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(all["meta"]["key"], "attempts");
    let first_sid = first["sid"].as_str().unwrap();
    let converted: Vec<&Value> = attempts
        .iter()
        .filter(|a| a["conversion_status"] == "converted")
        .collect();
    assert_eq!(converted.len(), 2);
    assert!(converted.iter().all(|a| a["verification_sid"] == first_sid));
    assert_eq!(converted[0]["channel_data"]["status"], "confirmed");
    assert_eq!(converted[0]["channel_data"]["to"], PHONE);
    assert_eq!(converted[0]["channel_data"]["message_status"], "sent");
    let (_, unconverted) = t
        .send(Method::GET, "/v2/Attempts?Status=unconverted", &[])
        .await;
    assert_eq!(unconverted["attempts"][0]["verification_sid"], other["sid"]);
    let (_, paged) = t.send(Method::GET, "/v2/Attempts?PageSize=2", &[]).await;
    assert_eq!(paged["attempts"].as_array().unwrap().len(), 2);
    let next = paged["meta"]["next_page_url"].as_str().unwrap();
    let next_path = &next[next.find("/v2/").unwrap()..];
    let (_, rest) = t.send(Method::GET, next_path, &[]).await;
    assert_eq!(rest["attempts"].as_array().unwrap().len(), 1);
    assert!(rest["meta"]["next_page_url"].is_null());

    let attempt_sid = resent["send_code_attempts"][1]["attempt_sid"]
        .as_str()
        .unwrap();
    let (status, fetched) = t
        .send(Method::GET, &format!("/v2/Attempts/{attempt_sid}"), &[])
        .await;
    assert_eq!((status, fetched["sid"].as_str()), (200, Some(attempt_sid)));
    assert_twilio_error(
        &t.send(
            Method::GET,
            "/v2/Attempts/VL00000000000000000000000000000000",
            &[],
        )
        .await,
        404,
        20404,
    );

    let (status, summary) = t.send(Method::GET, "/v2/Attempts/Summary", &[]).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["total_attempts"], 3);
    assert_eq!(summary["total_converted"], 2);
    assert_eq!(summary["total_unconverted"], 1);
    assert_eq!(summary["conversion_rate_percentage"], "66.666666667");
    let (_, gb) = t
        .send(Method::GET, "/v2/Attempts/Summary?Country=GB", &[])
        .await;
    assert_eq!(gb["total_attempts"], 0);
    let (_, prefix) = t
        .send(
            Method::GET,
            "/v2/Attempts/Summary?DestinationPrefix=%2B141555526&Channel=sms",
            &[],
        )
        .await;
    assert_eq!(prefix["total_attempts"], 3);
    assert_twilio_error(
        &t.send(Method::GET, "/v2/Attempts?Channel=fax", &[]).await,
        400,
        60200,
    );
}

impl Twilio {
    /// A new API key of this account: its SID and secret.
    async fn api_key(&self, name: &str) -> (String, String) {
        let store = self.app.server.as_ref().unwrap().store.clone();
        let auth = otpd::authenticator(&self.app.config, store, self.app.clock.clone()).unwrap();
        let account = otpd_core::auth::parse_application_id(&self.user[2..]).unwrap();
        let key = auth
            .create_api_key(otpd_core::AccountId::from_uuid(account.uuid()), name)
            .await
            .unwrap()
            .unwrap();
        (format!("SK{}", key.key.id.simple()), key.secret)
    }

    /// Another account on the same server: its SID and auth token.
    async fn other_account(&self) -> (String, String) {
        let store = self.app.server.as_ref().unwrap().store.clone();
        let auth = otpd::authenticator(&self.app.config, store, self.app.clock.clone()).unwrap();
        let account = auth.create_account("other").await.unwrap();
        (
            format!("AC{}", account.account.id.simple()),
            account.auth_token,
        )
    }
}

#[tokio::test]
async fn a_rotated_auth_token_replaces_the_old_one_at_once() {
    let t = Twilio::spawn().await;
    let (key, secret) = t.api_key("ci").await;
    assert_twilio_error(
        &t.send_as(&key, &secret, Method::POST, "/admin/v1/account/token", &[])
            .await,
        401,
        20003,
    );
    let (status, body) = t.send(Method::POST, "/admin/v1/account/token", &[]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["accountSid"], t.user);
    let token = body["authToken"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert_twilio_error(&t.send(Method::GET, "/v2/Services", &[]).await, 401, 20003);
    let (status, _) = t
        .send_as(&t.user, token, Method::GET, "/v2/Services", &[])
        .await;
    assert_eq!(status, 200);
    let (status, _) = t
        .send_as(&key, &secret, Method::GET, "/v2/Services", &[])
        .await;
    assert_eq!(status, 200, "the account's API keys are untouched");
}

#[tokio::test]
async fn api_keys_are_listed_without_secrets_and_revoked_by_their_own_account_only() {
    let t = Twilio::spawn().await;
    let (first, first_secret) = t.api_key("ci").await;
    let (second, second_secret) = t.api_key("backup").await;
    let (status, listed) = t.send(Method::GET, "/admin/v1/keys", &[]).await;
    assert_eq!(status, 200, "{listed}");
    let keys = listed["keys"].as_array().unwrap();
    let sids: Vec<_> = keys.iter().map(|k| k["sid"].as_str().unwrap()).collect();
    assert_eq!(sids, [first.as_str(), second.as_str()]);
    assert_eq!(keys[0]["friendlyName"], "ci");
    assert!(keys[0]["createdAt"].is_string());
    let text = listed.to_string();
    assert!(!text.contains(&first_secret) && !text.contains(&second_secret));
    assert_eq!(
        keys[0].as_object().unwrap().len(),
        3,
        "sid, name and date only: {listed}"
    );
    assert_twilio_error(
        &t.send_as(&first, &first_secret, Method::GET, "/admin/v1/keys", &[])
            .await,
        401,
        20003,
    );

    let (other, other_token) = t.other_account().await;
    let (status, theirs) = t
        .send_as(&other, &other_token, Method::GET, "/admin/v1/keys", &[])
        .await;
    assert_eq!((status, theirs), (200, serde_json::json!({"keys": []})));
    let path = format!("/admin/v1/keys/{first}");
    assert_twilio_error(
        &t.send_as(&other, &other_token, Method::DELETE, &path, &[])
            .await,
        404,
        20404,
    );
    let (status, _) = t
        .send_as(&first, &first_secret, Method::GET, "/v2/Services", &[])
        .await;
    assert_eq!(status, 200, "another account cannot revoke the key");

    assert_eq!(t.send(Method::DELETE, &path, &[]).await.0, 204);
    assert_twilio_error(
        &t.send_as(&first, &first_secret, Method::GET, "/v2/Services", &[])
            .await,
        401,
        20003,
    );
    assert_twilio_error(&t.send(Method::DELETE, &path, &[]).await, 404, 20404);
    assert_twilio_error(
        &t.send(Method::DELETE, "/admin/v1/keys/SKnope", &[]).await,
        404,
        20404,
    );
    let (status, _) = t
        .send_as(&second, &second_secret, Method::GET, "/v2/Services", &[])
        .await;
    assert_eq!(status, 200, "the other key still works");
}
