//! The official Twilio SDKs — `twilio` 9.13.0 from PyPI and `twilio` 6.2.0 from npm — against
//! a real otpd on a random port, with only the Verify base URL changed. Each runs Twilio's
//! Verify quick-start (create a service, send an SMS, read the code from the dev inbox,
//! check it) and the error paths users meet: wrong code, max attempts (60202), max sends
//! (60203), cancel, custom code (60204), approved-then-404, fetch by `To`, API-key auth and
//! paging of the service list.

mod common;

use std::process::Command;

use common::{TestApp, python_with, run_script, workspace};

/// A fresh account (so the service list holds only what the script creates) with an API key:
/// `[account SID, auth token, key SID, key secret]`.
async fn twilio_credentials(app: &TestApp) -> [String; 4] {
    let store = app.server.as_ref().unwrap().store.clone();
    let auth = otpd::authenticator(&app.config, store, app.clock.clone()).unwrap();
    let account = auth.create_account("sdk").await.unwrap();
    let key = auth
        .create_api_key(account.account.id, "sdk")
        .await
        .unwrap()
        .unwrap();
    [
        format!("AC{}", account.account.id.simple()),
        account.auth_token,
        format!("SK{}", key.key.id.simple()),
        key.secret,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_twilio_python_sdk_works_with_only_the_base_url_changed() {
    let app = TestApp::spawn().await;
    let credentials = twilio_credentials(&app).await;
    let python =
        tokio::task::spawn_blocking(|| python_with(".venv-twilio", "twilio", "twilio==9.13.0"))
            .await
            .unwrap();
    let mut command = Command::new(python);
    command
        .arg(workspace().join("tests/compat/twilio_check.py"))
        .arg(&app.base)
        .args(credentials)
        .env_remove("TWILIO_EDGE")
        .env_remove("TWILIO_REGION");
    run_script(command).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_twilio_node_sdk_works_with_only_the_base_url_changed() {
    let app = TestApp::spawn().await;
    let credentials = twilio_credentials(&app).await;
    let dir = workspace().join("tests/compat/node");
    if !dir.join("node_modules/twilio").exists() {
        let install_dir = dir.clone();
        let status = tokio::task::spawn_blocking(move || {
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(install_dir)
                .status()
        })
        .await
        .unwrap()
        .expect("npm runs");
        assert!(status.success(), "npm ci failed");
    }
    let mut command = Command::new("node");
    command
        .arg("twilio_check.js")
        .arg(&app.base)
        .args(credentials)
        .current_dir(dir)
        .env_remove("TWILIO_EDGE")
        .env_remove("TWILIO_REGION");
    run_script(command).await;
}
