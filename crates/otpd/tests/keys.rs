//! Rotating the server key with the real binary: what was issued and sealed before keeps
//! working, the background job reseals it, and then the old key can be removed.

mod common;

use common::process::{Server, create_app, last_code, otpd};
use serde_json::{Value, json};

fn run(dir: &std::path::Path, args: &[&str]) -> String {
    let output = otpd(dir).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "otpd {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_rotation_keeps_codes_and_credentials_and_the_old_key_can_go() {
    let dir = tempfile::tempdir().unwrap();
    let app = create_app(dir.path(), "shop");
    let key = app["apiKey"].as_str().unwrap().to_string();
    let client = reqwest::Client::new();
    let to = "+14155552671";

    // Before the rotation: a pending verification (the store tests cover the safe list and
    // events).
    let server = Server::start(dir.path(), &[]);
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
    server.stop();

    let rotated = run(dir.path(), &["keys", "rotate"]);
    assert!(rotated.contains("new server key"), "{rotated}");
    let keys = std::fs::read_to_string(dir.path().join("otpd.key")).unwrap();
    assert_eq!(keys.lines().count(), 2, "the new key and the previous one");
    let status = run(dir.path(), &["keys", "status"]);
    assert!(
        status.contains("values still sealed under a previous key: 2"),
        "the number in the verification and in its start event, before a restart reseals \
         them: {status}"
    );

    // After the rotation: the API key issued before still works, the code sent before checks,
    // and the background job reseals the number.
    let server = Server::start(dir.path(), &[]);
    server.wait_for_log_line("everything is sealed under the current server key");
    let response = client
        .post(format!("{}/otp/{id}", server.base))
        .header("X-API-KEY", &key)
        .json(&json!({"pin": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a code sent before the rotation");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "VERIFIED"})
    );
    server.stop();
    let status = run(dir.path(), &["keys", "status"]);
    assert!(
        status.contains("values still sealed under a previous key: 0")
            && status.contains("can be removed"),
        "{status}"
    );

    // The old key removed: everything still reads.
    let current = keys.lines().next().unwrap().to_string();
    std::fs::write(dir.path().join("otpd.key"), current).unwrap();
    let server = Server::start(dir.path(), &[]);
    let otp: Value = client
        .get(format!("{}/otp/{id}", server.base))
        .header("X-API-KEY", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(otp["status"], "VERIFIED", "{otp}");
    assert_eq!(otp["phoneNumber"], to, "{otp}");
    server.stop();
}
