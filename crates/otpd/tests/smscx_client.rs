//! The official SMS.CX Python client (smscx-client 0.1.13 from PyPI), unmodified but for its
//! host, against a real otpd on a random port. The client checks every response it gets
//! against its own schema, so this is the wire-compatibility test.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::TestApp;

const CLIENT: &str = "smscx-client==0.1.13";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python that has the client: `SMSCX_PYTHON`, else `.venv-smscx/` at the workspace root,
/// created (with the pinned client from PyPI) when missing.
fn python() -> PathBuf {
    if let Ok(path) = std::env::var("SMSCX_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = workspace().join(".venv-smscx");
    let python = venv.join("bin/python");
    let has_client = python.exists()
        && Command::new(&python)
            .args(["-c", "import smscx_client"])
            .status()
            .is_ok_and(|s| s.success());
    if !has_client {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", CLIENT])
            .status()
            .expect("pip runs");
        assert!(status.success(), "pip install {CLIENT} failed");
    }
    python
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_smscx_python_client_works_unmodified() {
    let app = TestApp::spawn().await;
    let script = workspace().join("tests/compat/smscx_client_check.py");
    let args = [
        app.base.clone(),
        app.credentials.application.id.simple(),
        app.credentials.secret.clone(),
        app.credentials.api_key.clone(),
    ];
    let output =
        tokio::task::spawn_blocking(move || Command::new(python()).arg(script).args(args).output())
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
