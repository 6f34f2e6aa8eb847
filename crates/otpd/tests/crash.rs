//! A real otpd process killed with SIGKILL in the middle of a delivery (its first try failed
//! and it is waiting to retry) sends the message exactly once after a restart: the mock
//! provider counts.

mod common;

use std::time::Duration;

use common::process::{Server, create_app};
use common::providers::{TwilioMock, twilio_provider};
use serde_json::{Value, json};

const TO: &str = "+447400123456";

/// The configuration file of a node that sends SMS through the mock.
pub fn write_config(dir: &std::path::Path, twilio_url: &str, extra: &str) {
    let provider = twilio_provider("twilio", twilio_url);
    let keys: String = provider
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    let text = format!(
        "dev_mode = true\n{extra}\n[delivery]\nfirst_backoff_ms = 3000\nsweep_interval_ms = 200\n\n\
         [routes]\nsms = [\"twilio\"]\n\n[[providers]]\n{keys}"
    );
    std::fs::write(dir.join("otpd.toml"), text).unwrap();
}

async fn post(url: String, key: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("X-API-KEY", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_interrupted_by_sigkill_is_sent_exactly_once_after_restart() {
    let (twilio, twilio_url) = TwilioMock::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &twilio_url, "");
    let app = create_app(dir.path(), "crash");
    let key = app["apiKey"].as_str().unwrap();
    let config = [("OTPD_CONFIG", "otpd.toml")];
    let node = Server::start(dir.path(), &config);
    let (status, otp) = post(
        format!("{}/otp", node.base),
        key,
        json!({"phoneNumber": TO}),
    )
    .await;
    assert_eq!(status, 201, "{otp}");
    assert_eq!(
        otp["deliveries"][0]["status"], "queued",
        "waiting to retry: {otp}"
    );
    let id = otp["otpId"].as_str().unwrap().to_string();
    node.crash();
    assert_eq!(twilio.accepted(), 0);

    twilio.set_down(false);
    let node = Server::start(dir.path(), &config);
    for _ in 0..250 {
        if twilio.accepted() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(twilio.accepted(), 1, "resumed at start");
    let sent = twilio.requests().last().cloned().unwrap();
    assert_eq!(TwilioMock::field(&sent, "To"), TO);
    let body = TwilioMock::field(&sent, "Body");
    let code = body.rsplit(' ').next().unwrap();
    let (status, verified) =
        post(format!("{}/otp/{id}", node.base), key, json!({"pin": code})).await;
    assert_eq!(status, 200, "{verified}");
    // Long enough for the failed node's retry to have come due: nobody sends it again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(twilio.accepted(), 1, "sent exactly once");
    node.crash();
}
