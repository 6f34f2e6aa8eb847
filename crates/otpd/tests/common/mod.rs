//! Test helpers: a real otpd server in-process on a random port with its own SQLite file,
//! server secret and a controllable clock, plus typed HTTP helpers.
#![allow(dead_code)]

pub mod process;
pub mod providers;

use std::path::PathBuf;
use std::time::Duration;

use otpd::{Config, RunningServer};
use otpd_core::auth::IssuedCredentials;
use otpd_core::{ManualClock, Timestamp};
use serde_json::Value;

pub struct TestApp {
    pub server: Option<RunningServer>,
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub credentials: IssuedCredentials,
    pub config: Config,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL schema of this test (dropped with it), when running on PostgreSQL.
    pub schema: Option<otpd_store_postgres::testing::TestSchema>,
    /// How many messages to each number the test has read through `next_message`.
    seen: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// Whether the black-box suites run on PostgreSQL (`OTPD_TEST_BACKEND=postgres`) instead of
/// the default SQLite file.
pub fn on_postgres() -> bool {
    std::env::var("OTPD_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}", dir.join("otpd.db").display()).into(),
        secret_file: dir.join("otpd.key"),
        dev_mode: Some(true),
        ..Config::default()
    };
    config.prices.insert("FR".into(), 0.045);
    config.callbacks.base_delay_ms = 1000;
    config.callbacks.poll_interval_ms = 20;
    // Most tests send to one number many times, from one address; the cooldown and the
    // limits have tests of their own.
    config.default_otp.resend_cooldown_seconds = 0;
    let off = otpd_core::abuse::Limit {
        max: 0,
        window_seconds: 60,
    };
    config.limits.per_destination = off;
    config.limits.per_client_ip = off;
    config.limits.failed_checks = off;
    config.limits.auth_failures = off;
    config.pumping.enabled = false;
    // Callback and webhook receivers of the tests listen on this machine; the outbound rules
    // have tests of their own that start from the default (nothing private allowed).
    config.outbound.allowed_private = vec!["127.0.0.1".into()];
    config
}

pub fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_configured(|_| {}).await
    }

    /// A server on the selected backend, with `adjust` applied to its configuration.
    pub async fn spawn_configured(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        let schema = if on_postgres() {
            let schema = otpd_store_postgres::testing::TestSchema::create()
                .await
                .expect("OTPD_TEST_BACKEND=postgres needs a reachable PostgreSQL");
            config.database_url = schema.url.clone().into();
            Some(schema)
        } else {
            None
        };
        adjust(&mut config);
        let mut app = Self::spawn_with(dir, config).await;
        app.schema = schema;
        app
    }

    pub async fn spawn_with(dir: tempfile::TempDir, config: Config) -> TestApp {
        let clock = ManualClock::new(now());
        let server = otpd::start(&config, clock.clone())
            .await
            .expect("server starts");
        let credentials = server
            .first_application
            .clone()
            .expect("first start creates an application");
        TestApp {
            base: format!("http://{}", server.addr),
            server: Some(server),
            client: reqwest::Client::new(),
            clock,
            credentials,
            config,
            dir,
            schema: None,
            seen: Default::default(),
        }
    }

    /// Stops the server and starts a new one on the same files (a restart).
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let server = otpd::start(&self.config, self.clock.clone())
            .await
            .expect("server restarts");
        self.base = format!("http://{}", server.addr);
        self.server = Some(server);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("otpd.db")
    }

    pub async fn token_for(
        &self,
        app: &IssuedCredentials,
        scope: Option<&str>,
    ) -> reqwest::Response {
        let body = match scope {
            Some(scope) => format!("grant_type=client_credentials&scope={scope}"),
            None => "grant_type=client_credentials".to_string(),
        };
        self.client
            .post(self.url("/oauth/token"))
            .basic_auth(app.application.id.simple(), Some(&app.secret))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn token(&self) -> String {
        let response = self.token_for(&self.credentials, None).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    /// Sends a native request with a bearer token; returns status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body: {text}"));
        (status, json)
    }

    pub async fn create(&self, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, "/otp", token, Some(body))
            .await
    }

    pub async fn check(&self, token: &str, otp_id: &str, pin: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/otp/{otp_id}"),
            token,
            Some(serde_json::json!({"pin": pin})),
        )
        .await
    }

    /// Every message the dev inbox holds for `to`, newest first.
    async fn inbox(&self, to: &str) -> Vec<Value> {
        let url = format!(
            "{}?to={}",
            self.url("/dev/inbox.json"),
            to.replace('+', "%2B")
        );
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The newest message to `to`, waiting for the first one (delivery is asynchronous).
    pub async fn last_message(&self, to: &str) -> String {
        self.newest_after(to, 0).await.0
    }

    /// The newest message once more than `read` messages to `to` have arrived, and how many.
    async fn newest_after(&self, to: &str, read: usize) -> (String, usize) {
        for _ in 0..300 {
            let messages = self.inbox(to).await;
            if messages.len() > read {
                return (
                    messages[0]["body"].as_str().unwrap().to_string(),
                    messages.len(),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no new message to {to} reached the dev inbox");
    }

    /// The newest message to `to` that arrived after the last one this test read through
    /// `next_message`, waiting for it: a code read right after a send is that send's code.
    pub async fn next_message(&self, to: &str) -> String {
        let read = self.seen.lock().unwrap().get(to).copied().unwrap_or(0);
        let (body, count) = self.newest_after(to, read).await;
        self.seen.lock().unwrap().insert(to.to_string(), count);
        body
    }

    /// The code of the next unread message to `to` (the last word of the default template).
    pub async fn last_code(&self, to: &str) -> String {
        let body = self.next_message(to).await;
        body.rsplit(' ').next().unwrap().to_string()
    }
}

/// Asserts an SMS.CX error body.
pub fn assert_error(response: &(u16, Value), status: u16, kind: &str, code: u64) {
    assert_eq!(response.0, status, "status of {}", response.1);
    assert_eq!(response.1["error"]["type"], kind, "type of {}", response.1);
    assert_eq!(response.1["error"]["code"], code, "code of {}", response.1);
    assert!(
        response.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(response.1["error"]["uri"].as_str().is_some());
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Python in `<workspace>/<venv>` that can `import module`, created with the pinned
/// `requirement` from PyPI when missing (CI creates it first in `.ci/run`).
pub fn python_with(venv: &str, module: &str, requirement: &str) -> PathBuf {
    use std::process::Command;
    let venv = workspace().join(venv);
    let python = venv.join("bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", requirement])
            .status()
            .expect("pip runs");
        assert!(status.success(), "pip install {requirement} failed");
    }
    python
}

/// Runs a compatibility script to completion and asserts it ended with "N passed, 0 failed".
pub async fn run_script(mut command: std::process::Command) {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("the check script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "client check failed:\n{stdout}\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with("passed, 0 failed") && !last.starts_with("0 "),
        "{stdout}"
    );
}
