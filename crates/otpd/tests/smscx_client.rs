//! The official SMS.CX Python client (smscx-client 0.1.13 from PyPI), unmodified but for its
//! host, against a real otpd on a random port. The client checks every response it gets
//! against its own schema, so this is the wire-compatibility test.

mod common;

use std::process::Command;

use common::{TestApp, python_with, run_script, workspace};

#[tokio::test(flavor = "multi_thread")]
async fn the_official_smscx_python_client_works_unmodified() {
    let app = TestApp::spawn().await;
    let python = tokio::task::spawn_blocking(|| {
        python_with(".venv-smscx", "smscx_client", "smscx-client==0.1.13")
    })
    .await
    .unwrap();
    let mut command = Command::new(python);
    command
        .arg(workspace().join("tests/compat/smscx_client_check.py"))
        .arg(&app.base)
        .arg(app.credentials.application.id.simple())
        .arg(&app.credentials.secret)
        .arg(&app.credentials.api_key);
    run_script(command).await;
}
