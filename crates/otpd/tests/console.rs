//! The operators' console (`/console/`) in a real browser: Debian's headless Chromium, driven
//! by `tests/console/console.mjs` (playwright-core), against a real server whose data was made
//! the way production makes it — starts refused by a protection, a provider that is down and
//! one that delivers, a signed delivery receipt, an approval, a quarantined prefix, operators
//! created with the command line. Only the SMS providers are mocked.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::process::otpd;
use common::providers::{ACCOUNT, AUTH_TOKEN, TwilioMock, twilio_provider};
use common::{TestApp, workspace};
use otpd_core::abuse::Limit;
use reqwest::Method;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The number whose timeline the browser reads.
const NUMBER: &str = "+33612345678";
/// A number the service's block list refuses (the safe list lets it through).
const BLOCKED: &str = "+33698765432";
const BLOCKED_PREFIX: &str = "+336987";
/// The first SMS provider: down (503, Twilio error 20503) once the timeline's start comes.
const PROVIDER_DOWN: &str = "twilio-primary";
const PROVIDER_DOWN_ERROR: &str = "20503";
/// The second SMS provider: takes every message.
const PROVIDER_UP: &str = "twilio-secondary";

/// One console operator, made with `otpd operator create`.
struct Operator {
    email: String,
    password: String,
}

/// What the browser script is told about the seeded data.
struct Seeds {
    code: String,
    prefix: String,
    api_key_sid: String,
    api_key_secret: String,
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_use_the_console_in_a_real_browser() {
    if !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMIUM} is missing: .ci/run installs Debian's chromium"
        );
        eprintln!("SKIPPED: chromium not installed (apt-get install chromium chromium-driver)");
        return;
    }
    install_playwright().await;

    let (down, down_url) = TwilioMock::start(false).await;
    let (up, up_url) = TwilioMock::start(false).await;
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
            twilio_provider(PROVIDER_DOWN, &down_url),
            twilio_provider(PROVIDER_UP, &up_url),
        ];
        config.routes.sms = vec![PROVIDER_DOWN.into(), PROVIDER_UP.into()];
        // One start per number per 600 s: the second start to NUMBER is refused.
        config.limits.per_destination = Limit {
            max: 1,
            window_seconds: 600,
        };
        config.default_otp.blocked_prefixes = vec![BLOCKED_PREFIX.into()];
        // Five unconverted starts to one range quarantine it.
        config.pumping = otpd::config::PumpingConfig {
            min_volume: Some(5),
            ..Default::default()
        };
    })
    .await;
    let seeds = seed(&app, &down, &up).await;
    let operators: Vec<(&str, Operator)> = [
        ("ADMIN", "admin"),
        ("SUPPORT", "support"),
        ("VIEWER", "viewer"),
        ("LOCKED", "viewer"),
    ]
    .into_iter()
    .map(|(who, role)| (who, create_operator(&app, &who.to_lowercase(), role)))
    .collect();

    let mut command = Command::new("node");
    command
        .arg("console.mjs")
        .current_dir(workspace().join("tests/console"))
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .env("OTPD_URL", &app.base)
        .env("OTPD_NUMBER", NUMBER)
        .env("OTPD_CODE", &seeds.code)
        .env("OTPD_REFUSAL_REASON", "destination")
        .env("OTPD_REFUSAL_NUMBERS", "1")
        .env("OTPD_PROVIDER_DOWN", PROVIDER_DOWN)
        .env("OTPD_PROVIDER_DOWN_ERROR", PROVIDER_DOWN_ERROR)
        .env("OTPD_PROVIDER_UP", PROVIDER_UP)
        .env("OTPD_BLOCKED_NUMBER", BLOCKED)
        .env("OTPD_QUARANTINED_PREFIX", &seeds.prefix)
        .env("OTPD_ACCOUNT_SID", account_sid(&app))
        .env("OTPD_AUTH_TOKEN", auth_token(&app))
        .env("OTPD_SERVICE_SID", service_sid(&app))
        .env("OTPD_API_KEY_SID", &seeds.api_key_sid)
        .env("OTPD_API_KEY_SECRET", &seeds.api_key_secret)
        .env("OTPD_SCREENSHOTS", workspace().join("docs/console"));
    for (who, operator) in &operators {
        command
            .env(format!("OTPD_{who}_EMAIL"), &operator.email)
            .env(format!("OTPD_{who}_PASSWORD"), &operator.password);
    }
    let status = tokio::task::spawn_blocking(move || command.status())
        .await
        .unwrap()
        .expect("node runs");
    assert!(
        status.success(),
        "tests/console/console.mjs failed ({status}); its output is above"
    );
}

/// Installs `tests/console`'s pinned playwright-core when `.ci/run` has not (it never
/// downloads a browser: the script launches Debian's).
async fn install_playwright() {
    let dir = workspace().join("tests/console");
    if dir.join("node_modules/playwright-core").exists() {
        return;
    }
    let status = tokio::task::spawn_blocking(move || {
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir)
            .status()
    })
    .await
    .unwrap()
    .expect("npm runs");
    assert!(status.success(), "npm ci in tests/console failed");
}

fn account_sid(app: &TestApp) -> String {
    format!("AC{}", app.credentials.application.account_id.simple())
}

fn auth_token(app: &TestApp) -> String {
    app.credentials.account_token.clone().unwrap()
}

fn service_sid(app: &TestApp) -> String {
    format!("VA{}", app.credentials.application.service_id.simple())
}

/// Runs the real `otpd` binary on the server's database and key file; its JSON output.
fn cli(app: &TestApp, args: &[&str], stdin: Option<&str>) -> Value {
    use std::io::Write;
    let database = app.config.database_url.expose().to_string();
    let mut child = otpd(app.dir.path())
        .args(args)
        .args(["--database", &database])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        writeln!(input, "{text}").unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "otpd {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("otpd {args:?}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// `otpd operator create … --password-stdin --json`.
fn create_operator(app: &TestApp, name: &str, role: &str) -> Operator {
    let email = format!("{name}@console.test");
    let password = format!("{name}-correct-horse-battery");
    let created = cli(
        app,
        &[
            "operator",
            "create",
            "--email",
            &email,
            "--role",
            role,
            "--password-stdin",
            "--json",
        ],
        Some(&password),
    );
    assert_eq!(created["email"], email.as_str(), "{created}");
    assert_eq!(created["role"], role, "{created}");
    assert!(created["id"].is_string(), "{created}");
    Operator { email, password }
}

/// A native start; status and body.
async fn start(app: &TestApp, token: &str, to: &str) -> (u16, Value) {
    app.create(token, json!({"phoneNumber": to})).await
}

/// A Twilio-dialect request with the account's credentials; status and body.
async fn twilio(app: &TestApp, method: Method, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, app.url(path))
        .basic_auth(account_sid(app), Some(auth_token(app)));
    if !form.is_empty() {
        request = request
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form_body(form.iter().copied()));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `application/x-www-form-urlencoded` text of `pairs`.
fn form_body<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The code in an SMS body (the default text holds it as one word of six digits).
fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_string()
}

/// Makes what the browser reads, through the APIs, the receipt endpoint and the CLI, one
/// second of server time apart so that the timeline's order is the order of the steps.
async fn seed(app: &TestApp, down: &TwilioMock, up: &TwilioMock) -> Seeds {
    let token = app.token().await;
    let tick = || app.clock.advance_seconds(1);

    // NUMBER's first start takes the one slot of the destination limit (the first provider
    // is still up then); it is canceled, and the next start is refused by the limit.
    let (status, first) = start(app, &token, NUMBER).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["deliveries"][0]["provider"], PROVIDER_DOWN, "{first}");
    let first_id = first["otpId"].as_str().unwrap();
    tick();
    let (status, body) = app
        .call(Method::DELETE, &format!("/otp/{first_id}"), &token, None)
        .await;
    assert_eq!(status, 200, "{body}");
    tick();
    let (status, refused) = start(app, &token, NUMBER).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (429, &json!(1014)),
        "the destination limit refuses: {refused}"
    );

    // The window passes; the first provider goes down: the start is refused by it (503,
    // 20503) and delivered by the second, whose signed receipt says delivered; then the
    // right code approves it.
    app.clock.advance_seconds(600);
    down.set_down(true);
    let (status, otp) = start(app, &token, NUMBER).await;
    assert_eq!(status, 201, "{otp}");
    assert_eq!(otp["deliveries"][0]["status"], "sent", "{otp}");
    assert_eq!(otp["deliveries"][0]["provider"], PROVIDER_UP, "{otp}");
    assert_eq!(down.requests().len(), 2, "the first provider was tried");
    let sent = up.requests();
    assert_eq!(sent.len(), 1, "the second provider took the message");
    let code = code_in(&TwilioMock::field(&sent[0], "Body"));
    let message_sid = format!("SM{:032x}", 1);
    assert_eq!(otp["deliveries"][0]["providerMessageId"], message_sid);
    tick();
    post_twilio_receipt(app, &sent[0], &message_sid).await;
    let id = otp["otpId"].as_str().unwrap();
    let (_, read) = app
        .call(Method::GET, &format!("/otp/{id}"), &token, None)
        .await;
    assert_eq!(read["deliveries"][0]["status"], "delivered", "{read}");
    tick();
    let (status, body) = app.check(&token, id, &code).await;
    assert_eq!(status, 200, "{body}");
    tick();

    // BLOCKED is refused by the service's block list, which the safe list overrides.
    let path = format!("/v2/Services/{}/Verifications", service_sid(app));
    let (status, body) = twilio(
        app,
        Method::POST,
        &path,
        &[("To", BLOCKED), ("Channel", "sms")],
    )
    .await;
    assert_eq!((status, &body["code"]), (403, &json!(60605)), "{body}");
    tick();

    // Five unconverted starts to one range, and the sixth is refused: a quarantine.
    for n in 0..5 {
        let (status, body) = start(app, &token, &format!("+4474001{n:05}")).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = start(app, &token, "+447400100005").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!(1020)),
        "{body}"
    );
    let (status, listed) = twilio(app, Method::GET, "/admin/v1/quarantines", &[]).await;
    assert_eq!(status, 200, "{listed}");
    let quarantines = listed["quarantines"].as_array().unwrap();
    assert_eq!(quarantines.len(), 1, "{listed}");
    let prefix = quarantines[0]["prefix"].as_str().unwrap().to_string();

    // An API key of the account, made by the operator's command line.
    let account = account_sid(app);
    let key = cli(
        app,
        &["apikey", "create", "--json", "--account", &account],
        None,
    );
    Seeds {
        code,
        prefix,
        api_key_sid: key["sid"].as_str().unwrap().to_string(),
        api_key_secret: key["secret"].as_str().unwrap().to_string(),
    }
}

/// Posts Twilio's status callback `delivered` for `message_sid` to the URL the provider was
/// given, signed with the auth token as Twilio signs.
async fn post_twilio_receipt(app: &TestApp, request: &[(String, String)], message_sid: &str) {
    let callback_url = TwilioMock::field(request, "StatusCallback");
    assert!(
        callback_url.starts_with(&app.base),
        "the receipt URL is otpd's: {callback_url}"
    );
    let params: Vec<(String, String)> = [
        ("AccountSid", ACCOUNT),
        ("MessageSid", message_sid),
        ("MessageStatus", "delivered"),
        ("To", NUMBER),
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
        .body(form_body(
            params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "the receipt is accepted");
}
