//! Tests of the real `otpd` binary: its command line, its first start, a hard crash, and
//! what it writes to its logs.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

fn otpd(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_otpd"));
    command
        .current_dir(dir)
        .env_remove("OTPD_CONFIG")
        .env_remove("OTPD_LOG");
    command
}

struct Server {
    child: Child,
    base: String,
    stdout: mpsc::Receiver<String>,
    before_listening: Vec<String>,
}

impl Server {
    /// Starts `otpd serve` on a random port in `dir` and waits until it listens.
    fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let mut command = otpd(dir);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("otpd starts");
        let (sender, stdout) = mpsc::channel();
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            stdout,
            before_listening: Vec::new(),
        };
        loop {
            let line = server
                .stdout
                .recv_timeout(Duration::from_secs(30))
                .expect("otpd prints its address");
            if let Some(base) = line.strip_prefix("otpd listening on ") {
                server.base = base.to_string();
                return server;
            }
            server.before_listening.push(line);
        }
    }

    /// Every stdout line printed so far.
    fn printed(&self) -> Vec<String> {
        let mut lines = self.before_listening.clone();
        lines.extend(self.stdout.try_iter());
        lines
    }

    /// Kills the process without warning (a crash) and returns what it logged.
    fn crash(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let mut log = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        log
    }
}

fn create_app(dir: &Path, name: &str) -> Value {
    let output = otpd(dir)
        .args(["app", "create", "--name", name, "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

/// The newest message the dev inbox holds for `to` (waiting for the delivery worker).
async fn last_message(client: &reqwest::Client, base: &str, to: &str) -> Value {
    for _ in 0..300 {
        let url = format!("{base}/dev/inbox.json?to={}", to.replace('+', "%2B"));
        let messages: Vec<Value> = client.get(url).send().await.unwrap().json().await.unwrap();
        if let Some(message) = messages.into_iter().next() {
            return message;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no message for {to}");
}

async fn last_code(client: &reqwest::Client, base: &str, to: &str) -> String {
    let message = last_message(client, base, to).await;
    message["body"]
        .as_str()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
}

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
    let stdout = server.printed().join("\n");
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
    let log = server.crash();
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
