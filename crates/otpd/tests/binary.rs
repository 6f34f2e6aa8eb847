//! Tests of the real `otpd` binary: its command line, its first start, a hard crash, and
//! what it writes to its logs.

mod common;

use common::process::{Server, create_app, last_code, last_message, otpd};
use serde_json::{Value, json};

#[test]
fn help_documents_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        String::from_utf8(otpd(dir.path()).args(args).output().unwrap().stdout).unwrap()
    };
    let top = help(&["--help"]);
    assert!(top.contains("serve") && top.contains("app"));
    let app = help(&["app", "--help"]);
    assert!(app.contains("create") && app.contains("list") && app.contains("rotate-secret"));
    let quarantine = help(&["quarantine", "--help"]);
    assert!(
        quarantine.contains("list") && quarantine.contains("add") && quarantine.contains("lift")
    );
    let apikey = help(&["apikey", "--help"]);
    assert!(apikey.contains("create") && apikey.contains("list") && apikey.contains("revoke"));
    assert!(help(&["account", "--help"]).contains("rotate-token"));
    let operator = help(&["operator", "--help"]);
    assert!(
        ["create", "list", "disable", "reset"]
            .iter()
            .all(|command| operator.contains(command))
    );
    let serve = help(&["serve", "--help"]);
    assert!(
        serve.contains("--config") && serve.contains("--listen") && serve.contains("--database")
    );
}

#[test]
fn bad_configuration_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let output = otpd(dir.path())
        .args(["serve", "--database", "ftp://localhost/otpd"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("database_url"));
    let output = otpd(dir.path())
        .args(["serve", "--config", "missing.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));
    std::fs::write(dir.path().join("bad.toml"), "listne = \"127.0.0.1:1\"\n").unwrap();
    let output = otpd(dir.path())
        .args(["serve", "--config", "bad.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("listne"));
}

#[tokio::test]
async fn first_start_prints_credentials_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let printed = server.printed().join("\n");
    let field = |label: &str| {
        printed
            .lines()
            .find(|l| l.starts_with(label))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("{label} printed in {printed}"))
            .to_string()
    };
    let (id, secret) = (field("application id:"), field("application secret:"));
    let (account_sid, auth_token) = (field("account SID:"), field("auth token:"));
    assert!(account_sid.starts_with("AC") && account_sid.len() == 34);
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/oauth/token", server.base))
        .basic_auth(&id, Some(&secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let services = client
        .get(format!("{}/v2/Services", server.base))
        .basic_auth(&account_sid, Some(&auth_token))
        .send()
        .await
        .unwrap();
    assert_eq!(
        services.status(),
        200,
        "the printed account SID and auth token work on /v2"
    );
    assert!(dir.path().join("otpd.db").exists());
    assert!(dir.path().join("otpd.key").exists());
    let log = server.crash();
    assert!(log.contains("DEV MODE"));
    assert!(
        !log.contains(&secret),
        "the secret is printed once, never logged"
    );
    assert!(
        !log.contains(&auth_token),
        "the auth token is printed once, never logged"
    );
}

#[tokio::test]
async fn a_crash_loses_no_verification_and_logs_hold_no_codes() {
    let dir = tempfile::tempdir().unwrap();
    let app = create_app(dir.path(), "shop");
    for key in [
        "applicationId",
        "applicationSecret",
        "apiKey",
        "callbackSigningKey",
    ] {
        assert!(
            app[key].as_str().is_some_and(|v| v.len() >= 32),
            "{key} in {app}"
        );
    }
    let key = app["apiKey"].as_str().unwrap().to_string();
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let to = "+14155552671";
    let otp: Value = client
        .post(format!("{}/otp", server.base))
        .header("X-API-KEY", &key)
        .json(&json!({"phoneNumber": to}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = otp["otpId"].as_str().unwrap().to_string();
    let code = last_code(&client, &server.base, to).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let response = client
        .post(format!("{}/otp/{id}", server.base))
        .header("X-API-KEY", &key)
        .json(&json!({"pin": wrong}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // The console line reaches the test through a pipe and a reader thread: wait for it.
    let mut stdout = String::new();
    for _ in 0..200 {
        stdout.push_str(&server.printed().join("\n"));
        if stdout.contains(&code) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The request lines are written by a logging thread: a crash before it wrote them would
    // lose them, so the crash waits for the check's line.
    server.wait_for_log_line("otp checked");
    let log = server.crash();
    assert!(
        stdout.contains(&code),
        "the console provider shows the code on stdout"
    );
    assert!(!log.contains(&code), "codes never reach the log");
    assert!(!log.contains(wrong), "typed codes never reach the log");
    assert!(
        !log.contains("4155552671"),
        "phone numbers are masked in the log"
    );
    assert!(log.contains("+1415***2671"));
    // The start's request line reports the send its first try made; no second line does.
    let start_line = log
        .lines()
        .find(|line| line.contains("otp created"))
        .expect("the start's request line");
    assert!(
        start_line.contains(r#"delivery_status="sent""#)
            && start_line.contains(r#"provider="console""#),
        "{start_line}"
    );
    assert!(!log.contains("code sent"), "{log}");

    let restarted = Server::start(dir.path(), &[]);
    let response = client
        .post(format!("{}/otp/{id}", restarted.base))
        .header("X-API-KEY", &key)
        .json(&json!({"pin": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "VERIFIED"})
    );
    let otp: Value = client
        .get(format!("{}/otp/{id}", restarted.base))
        .header("X-API-KEY", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        otp["attempts"], 1,
        "the wrong attempt before the crash is still counted"
    );
    restarted.crash();
    // Codes are stored only as hashes.
    let db = std::fs::read(dir.path().join("otpd.db")).unwrap();
    let wal = std::fs::read(dir.path().join("otpd.db-wal")).unwrap_or_default();
    let needle = format!("verification code is {code}");
    for bytes in [db, wal] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()));
    }
}

#[tokio::test]
async fn app_list_and_rotate_secret() {
    let dir = tempfile::tempdir().unwrap();
    let app = create_app(dir.path(), "billing");
    let id = app["applicationId"].as_str().unwrap();
    let output = otpd(dir.path())
        .args(["app", "list", "--json"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["applicationId"] == id)
        .expect("listed");
    assert_eq!(listed["name"], "billing");
    assert!(
        listed.get("applicationSecret").is_none(),
        "list never shows secrets"
    );

    let output = otpd(dir.path())
        .args(["app", "rotate-secret", id, "--json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let rotated: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_ne!(rotated["applicationSecret"], app["applicationSecret"]);

    let server = Server::start(dir.path(), &[("OTPD_LOG_FORMAT", "json")]);
    let client = reqwest::Client::new();
    let token = |secret: String| {
        let request = client
            .post(format!("{}/oauth/token", server.base))
            .basic_auth(id, Some(secret))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials");
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        token(app["applicationSecret"].as_str().unwrap().into()).await,
        401
    );
    assert_eq!(
        token(rotated["applicationSecret"].as_str().unwrap().into()).await,
        200
    );
    let old_key = client
        .get(format!(
            "{}/otp/01a20884-c9be-7342-ade0-793327ba5265",
            server.base
        ))
        .header("X-API-KEY", app["apiKey"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(old_key.status(), 401);
    let log = server.crash();
    let first = log.lines().next().unwrap();
    assert!(
        serde_json::from_str::<Value>(first).is_ok(),
        "JSON log lines: {first}"
    );
}

#[tokio::test]
async fn a_configuration_file_and_environment_shape_the_server() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("otpd.toml"),
        r#"
dev_mode = true
database_url = "sqlite://data.db"
secret_file = "server.key"

[prices]
FR = 0.05

[default_otp]
template = "Acme code {{pin}}"
from = "Acme"
pinType = "letters"
pinLength = 5
prefixTemplates = [{ prefix = "+33", template = "Code Acme {{pin}}" }]
"#,
    )
    .unwrap();
    let server = Server::start(
        dir.path(),
        &[("OTPD_CONFIG", "otpd.toml"), ("OTPD_LOG_LEVEL", "warn")],
    );
    let printed = server.printed().join("\n");
    let key = printed
        .lines()
        .find(|l| l.starts_with("API key"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_string();
    assert!(dir.path().join("data.db").exists() && dir.path().join("server.key").exists());
    let client = reqwest::Client::new();
    let otp: Value = client
        .post(format!("{}/otp", server.base))
        .header("X-API-KEY", &key)
        .json(&json!({"phoneNumber": "+33612345678"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(otp["cost"], 0.05);
    let message = last_message(&client, &server.base, "+33612345678").await;
    let body = message["body"].as_str().unwrap();
    assert!(body.starts_with("Code Acme "), "{body}");
    let code = body.rsplit(' ').next().unwrap();
    assert!(code.len() == 5 && code.chars().all(|c| c.is_ascii_uppercase()));
    assert_eq!(message["from"], "Acme");
    let log = server.crash();
    assert!(
        !log.contains(" INFO "),
        "log_level from the environment applies: {log}"
    );
}

#[tokio::test]
async fn a_broken_store_answers_a_json_500_without_details() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let printed = server.printed().join("\n");
    let key = printed
        .lines()
        .find(|l| l.starts_with("API key"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_string();
    // Sabotage the database behind the server's back.
    let connection = rusqlite::Connection::open(dir.path().join("otpd.db")).unwrap();
    connection.execute_batch("DROP TABLE deliveries").unwrap();
    drop(connection);
    let response = reqwest::Client::new()
        .post(format!("{}/otp", server.base))
        .header("X-API-KEY", &key)
        .json(&json!({"phoneNumber": "+33612345678"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(body["error"]["code"], 1006);
    assert!(
        !body.to_string().contains("deliveries"),
        "no internal detail leaks: {body}"
    );
    let log = server.stop();
    assert!(
        log.contains("deliveries"),
        "the cause is logged for the operator"
    );
}

#[tokio::test]
async fn account_and_apikey_commands_print_working_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let output = otpd(dir.path())
        .args(["account", "create", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let account: Value = serde_json::from_slice(&output.stdout).unwrap();
    let sid = account["accountSid"].as_str().unwrap().to_string();
    assert!(sid.starts_with("AC") && sid.len() == 34);
    let output = otpd(dir.path())
        .args(["apikey", "create", "--account", &sid, "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key: Value = serde_json::from_slice(&output.stdout).unwrap();
    let key_sid = key["sid"].as_str().unwrap().to_string();
    assert!(key_sid.starts_with("SK") && key_sid.len() == 34);
    let output = otpd(dir.path())
        .args([
            "apikey",
            "create",
            "--account",
            "AC00000000000000000000000000000000",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no such account"));
    let app = otpd(dir.path())
        .args([
            "app",
            "create",
            "--name",
            "in-account",
            "--account",
            &sid,
            "--json",
        ])
        .output()
        .unwrap();
    let app: Value = serde_json::from_slice(&app.stdout).unwrap();
    assert_eq!(app["accountSid"], sid);
    assert_eq!(
        app["authToken"],
        Value::Null,
        "an existing account's token is not reissued"
    );

    let server = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    for (user, password) in [
        (sid.as_str(), account["authToken"].as_str().unwrap()),
        (key_sid.as_str(), key["secret"].as_str().unwrap()),
    ] {
        let response = client
            .get(format!("{}/v2/Services", server.base))
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let list: Value = response.json().await.unwrap();
        assert_eq!(
            list["services"][0]["sid"], app["serviceSid"],
            "the application's service is the account's Twilio service"
        );
    }
    server.crash();
}

#[tokio::test]
async fn quarantines_are_listed_and_lifted_from_the_command_line() {
    use otpd_core::LimitStore;
    let dir = tempfile::tempdir().unwrap();
    create_app(dir.path(), "cli");
    let list = |dir: &std::path::Path| {
        let output = otpd(dir)
            .args(["quarantine", "list", "--json"])
            .output()
            .unwrap();
        assert!(output.status.success());
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    assert_eq!(list(dir.path()), json!([]));
    let secret = std::fs::read_to_string(dir.path().join("otpd.key")).unwrap();
    let secret = otpd_core::ServerSecret::from_hex(&secret).unwrap();
    let vault = std::sync::Arc::new(otpd_core::vault::Vault::new(&secret, &[]));
    let store = otpd_store_sqlite::SqliteStore::open(dir.path().join("otpd.db"), vault).unwrap();
    let now = common::now();
    store
        .quarantine(&otpd_core::store::Quarantine {
            prefix: "+44909".into(),
            service: None,
            reason: "20 starts, 0 approved (0 %) in 3600 s".into(),
            until: now.plus_seconds(3600),
            created_at: now,
        })
        .await
        .unwrap();
    let listed = list(dir.path());
    assert_eq!(listed[0]["prefix"], "+44909");
    let lift = otpd(dir.path())
        .args(["quarantine", "lift", "+44909"])
        .output()
        .unwrap();
    assert!(lift.status.success());
    assert_eq!(list(dir.path()), json!([]));
    let again = otpd(dir.path())
        .args(["quarantine", "lift", "+44909"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not quarantined"));
}

/// Runs `otpd` in `dir`; its stdout when it succeeds, else its stderr as the error.
fn run(dir: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let output = otpd(dir).args(args).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(text(&output.stderr))
    }
}

#[test]
fn quarantines_are_added_per_service_or_server_wide_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let app = create_app(dir.path(), "cli");
    let service = app["serviceSid"].as_str().unwrap();
    let dir = dir.path();
    let list = || {
        serde_json::from_str::<Value>(&run(dir, &["quarantine", "list", "--json"]).unwrap())
            .unwrap()
    };
    let added = run(
        dir,
        &[
            "quarantine",
            "add",
            "+44909",
            "--service",
            service,
            "--seconds",
            "60",
        ],
    )
    .unwrap();
    assert_eq!(
        added.trim(),
        format!("quarantined +44909 for {service} for 60 s")
    );
    let added = run(
        dir,
        &["quarantine", "add", "+44909", "--reason", "pumping seen"],
    )
    .unwrap();
    assert!(added.contains("for all services"), "{added}");
    let err = run(dir, &["quarantine", "add", "+44909"]).unwrap_err();
    assert!(err.contains("already quarantined"), "{err}");
    let listed = list();
    let scopes: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["serviceSid"].clone())
        .collect();
    assert_eq!(
        scopes,
        [Value::Null, json!(service)],
        "newest first: {listed}"
    );
    assert_eq!(listed[0]["reason"], "pumping seen");
    let text = run(dir, &["quarantine", "list"]).unwrap();
    assert!(text.contains("+44909  all services  lifts in"), "{text}");
    assert!(
        text.contains(&format!("+44909  {service}  lifts in")),
        "{text}"
    );

    for (args, message) in [
        (vec!["+44x"], "must be + and 1–15 digits"),
        (vec!["+44909", "--service", "VAnope"], "expected VA"),
        (
            vec!["+44909", "--service", "VA0123456789abcdef0123456789abcdef"],
            "no such service",
        ),
    ] {
        let err = run(dir, &[&["quarantine", "add"][..], &args].concat()).unwrap_err();
        assert!(err.contains(message), "{args:?}: {err}");
    }

    let lifted = run(dir, &["quarantine", "lift", "+44909", "--service", service]).unwrap();
    assert_eq!(
        lifted.trim(),
        format!("lifted the quarantine of +44909 for {service}")
    );
    assert_eq!(list()[0]["serviceSid"], Value::Null);
    run(dir, &["quarantine", "add", "+44909", "--service", service]).unwrap();
    let lifted = run(dir, &["quarantine", "lift", "+44909"]).unwrap();
    assert_eq!(lifted.lines().count(), 2, "every scope: {lifted}");
    assert_eq!(list(), json!([]));
}

#[tokio::test]
async fn credentials_are_rotated_and_revoked_from_the_command_line_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let app = create_app(dir, "cli");
    let account = app["accountSid"].as_str().unwrap();
    let old_token = app["authToken"].as_str().unwrap();
    let key: Value = serde_json::from_str(
        &run(
            dir,
            &[
                "apikey",
                "create",
                "--account",
                account,
                "--name",
                "ci",
                "--json",
            ],
        )
        .unwrap(),
    )
    .unwrap();
    let (sid, secret) = (
        key["sid"].as_str().unwrap(),
        key["secret"].as_str().unwrap(),
    );
    let listed = run(dir, &["apikey", "list", "--account", account, "--json"]).unwrap();
    assert!(!listed.contains(secret), "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["sid"], sid);
    assert_eq!(listed[0]["friendlyName"], "ci");
    let text = run(dir, &["apikey", "list", "--account", account]).unwrap();
    assert!(text.starts_with(&format!("{sid}  ci  created ")), "{text}");

    let server = Server::start(dir, &[]);
    let client = reqwest::Client::new();
    let status = |user: String, password: String| {
        let request = client
            .get(format!("{}/v2/Services", server.base))
            .basic_auth(user, Some(password));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(sid.into(), secret.into()).await, 200);
    assert_eq!(status(account.into(), old_token.into()).await, 200);

    let revoked = run(dir, &["apikey", "revoke", sid]).unwrap();
    assert_eq!(
        revoked.trim(),
        format!("revoked {sid}; it no longer authenticates")
    );
    assert_eq!(
        status(sid.into(), secret.into()).await,
        401,
        "at once, from another process"
    );
    assert_eq!(
        run(dir, &["apikey", "list", "--account", account, "--json"])
            .unwrap()
            .trim(),
        "[]"
    );
    let err = run(dir, &["apikey", "revoke", sid]).unwrap_err();
    assert!(err.contains("no such API key"), "{err}");

    let rotated: Value =
        serde_json::from_str(&run(dir, &["account", "rotate-token", account, "--json"]).unwrap())
            .unwrap();
    let new_token = rotated["authToken"].as_str().unwrap();
    assert_ne!(new_token, old_token);
    assert_eq!(status(account.into(), old_token.into()).await, 401);
    assert_eq!(status(account.into(), new_token.into()).await, 200);
    server.stop();
}

/// `url` with `password` added to its user part (`postgres://user@…` → `postgres://user:pw@…`).
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').expect("a user in the test server URL");
    let user = user.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

#[tokio::test]
async fn passwords_and_provider_tokens_never_reach_stdout_or_the_log() {
    // The test server trusts every local connection, so the URL's password is accepted and
    // otpd really connects (to a fresh schema) with it.
    let Some(schema) = otpd_store_postgres::testing::TestSchema::create().await else {
        return;
    };
    let database_url = with_password(&schema.url, "pw-in-url");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("OTPD_DATABASE_URL", &database_url),
            (
                "OTPD_PROVIDERS",
                r#"[{name = "tw", kind = "twilio", account_sid = "AC0123456789abcdef0123456789abcdef", auth_token = "tok-secret-123", from = "+15017122661"}]"#,
            ),
            ("OTPD_ROUTES__SMS", r#"["tw"]"#),
            ("OTPD_DEV_MODE", "false"),
            ("OTPD_LOG_LEVEL", "debug"),
        ],
    );
    let health = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "otpd runs on the URL with a password");
    let stdout = server.printed().join("\n");
    let log = server.stop();
    assert!(
        log.contains(":***@127.0.0.1"),
        "the start-up line names the database without its password: {log}"
    );
    for secret in ["pw-in-url", "tok-secret-123"] {
        assert!(!stdout.contains(secret), "{secret} printed: {stdout}");
        assert!(!log.contains(secret), "{secret} logged: {log}");
    }
}
