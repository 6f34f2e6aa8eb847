//! SMTP adapter against a tiny in-process SMTP server (plain text, `tls = "none"` on
//! loopback) that records the dialogue and the message and answers per recipient.

mod support;

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use otpd_core::DeliveryStatus;
use otpd_delivery::Provider;
use otpd_providers::smtp::{SmtpConfig, SmtpProvider, SmtpTls};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the server saw: every command line, and each message's DATA.
#[derive(Default, Clone)]
struct Record {
    commands: Arc<Mutex<Vec<String>>>,
    messages: Arc<Mutex<Vec<String>>>,
}

impl Record {
    fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

/// How the mock server behaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Answer normally.
    Normal,
    /// Accept connections and never say anything.
    Silent,
}

const USER: &str = "mailer";
const PASSWORD: &str = "s3cret";

/// Starts the mock on a free loopback port and returns the port.
async fn smtp_server(mode: Mode) -> (u16, Record) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let record = Record::default();
    let shared = record.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let record = shared.clone();
            tokio::spawn(async move {
                if mode == Mode::Silent {
                    hang().await;
                    drop(socket);
                    return;
                }
                let _ = session(socket, record).await;
            });
        }
    });
    (port, record)
}

/// One SMTP session: EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, QUIT.
async fn session(socket: tokio::net::TcpStream, record: Record) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 mock.test ESMTP ready\r\n").await?;
    let expected_plain = STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    while let Some(line) = lines.next_line().await? {
        record.commands.lock().unwrap().push(line.clone());
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-mock.test\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SMTPUTF8\r\n".into()
        } else if let Some(initial) = line.strip_prefix("AUTH PLAIN ") {
            if initial == expected_plain {
                "235 2.7.0 Authentication successful\r\n".into()
            } else {
                "535 5.7.8 Authentication credentials invalid\r\n".into()
            }
        } else if upper == "AUTH LOGIN" {
            write.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            let user = lines.next_line().await?.unwrap_or_default();
            write.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            let password = lines.next_line().await?.unwrap_or_default();
            if user == STANDARD.encode(USER) && password == STANDARD.encode(PASSWORD) {
                "235 2.7.0 Authentication successful\r\n".into()
            } else {
                "535 5.7.8 Authentication credentials invalid\r\n".into()
            }
        } else if upper.starts_with("MAIL FROM:") {
            "250 2.1.0 Ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            if upper.contains("<NOBODY@") {
                "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown\r\n"
                    .into()
            } else if upper.contains("<BUSY@") {
                "451 4.3.0 Mailbox temporarily unavailable, try again later\r\n".into()
            } else {
                "250 2.1.5 Ok\r\n".into()
            }
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            while let Some(line) = lines.next_line().await? {
                if line == "." {
                    break;
                }
                let line = line
                    .strip_prefix('.')
                    .filter(|_| line.starts_with(".."))
                    .unwrap_or(&line);
                data.push_str(line);
                data.push_str("\r\n");
            }
            record.messages.lock().unwrap().push(data);
            "250 2.0.0 Ok: queued as 4F2B81C0A3\r\n".into()
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 Ok\r\n".into()
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 Error: command not recognized\r\n".into()
        };
        write.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

fn config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: SmtpTls::None,
        username: None,
        password: None,
        from_email: "no-reply@acme.example".into(),
        from_name: Some("ACME".into()),
        hello_name: Some("otpd.test".into()),
        timeout_seconds: Some(1),
    }
}

fn authenticated(port: u16, password: &str) -> SmtpConfig {
    SmtpConfig {
        username: Some(USER.into()),
        password: Some(password.into()),
        ..config(port)
    }
}

#[tokio::test]
async fn submits_a_plain_text_message() {
    let (port, record) = smtp_server(Mode::Normal).await;
    let provider = SmtpProvider::new("smtp".into(), config(port)).unwrap();
    assert_eq!(provider.kind(), "smtp");
    let accepted = provider
        .send(&email_message("user@example.com", false))
        .await
        .unwrap();
    assert_eq!(accepted.message_id, "<att_0123456789@acme.example>");
    assert_eq!(accepted.status, DeliveryStatus::Sent);

    let commands = record.commands();
    assert_eq!(commands[0], "EHLO otpd.test");
    assert!(
        commands.contains(&"MAIL FROM:<no-reply@acme.example>".to_string()),
        "{commands:?}"
    );
    assert!(
        commands.contains(&"RCPT TO:<user@example.com>".to_string()),
        "{commands:?}"
    );
    assert!(commands.contains(&"DATA".to_string()));
    assert!(!commands.iter().any(|command| command.starts_with("AUTH")));

    let messages = record.messages();
    assert_eq!(messages.len(), 1);
    let data = &messages[0];
    assert!(
        data.contains("From: ACME <no-reply@acme.example>\r\n"),
        "{data}"
    );
    assert!(data.contains("To: user@example.com\r\n"), "{data}");
    assert!(data.contains("Subject: Your ACME code\r\n"), "{data}");
    assert!(
        data.contains("Message-ID: <att_0123456789@acme.example>\r\n"),
        "{data}"
    );
    assert!(data.contains("Date: "), "{data}");
    assert!(
        data.contains("Content-Type: text/plain; charset=utf-8"),
        "{data}"
    );
    assert!(
        data.contains("Your code is 482910. It expires in 10 minutes."),
        "{data}"
    );
    assert!(!data.contains("multipart"), "{data}");
}

#[tokio::test]
async fn html_makes_a_multipart_alternative() {
    let (port, record) = smtp_server(Mode::Normal).await;
    let provider = SmtpProvider::new("smtp".into(), config(port)).unwrap();
    provider
        .send(&email_message("user@example.com", true))
        .await
        .unwrap();
    let data = &record.messages()[0];
    assert!(
        data.contains("Content-Type: multipart/alternative;"),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: text/plain; charset=utf-8"),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: text/html; charset=utf-8"),
        "{data}"
    );
    assert!(
        data.contains("Your code is 482910. It expires in 10 minutes."),
        "{data}"
    );
    assert!(
        data.contains("<p>Your code is <b>482910</b>.</p>"),
        "{data}"
    );
}

#[tokio::test]
async fn authenticates_when_credentials_are_configured() {
    let (port, record) = smtp_server(Mode::Normal).await;
    let provider = SmtpProvider::new("smtp".into(), authenticated(port, PASSWORD)).unwrap();
    provider
        .send(&email_message("user@example.com", false))
        .await
        .unwrap();
    let commands = record.commands();
    assert!(
        commands
            .iter()
            .any(|command| command.starts_with("AUTH PLAIN ")),
        "{commands:?}"
    );
    assert_eq!(record.messages().len(), 1);
}

#[tokio::test]
async fn an_unknown_mailbox_is_rejected() {
    let (port, record) = smtp_server(Mode::Normal).await;
    let provider = SmtpProvider::new("smtp".into(), config(port)).unwrap();
    let error = assert_rejected(
        provider
            .send(&email_message("nobody@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "550");
    assert!(record.messages().is_empty());
}

#[tokio::test]
async fn an_invalid_address_is_rejected_without_connecting() {
    let (port, record) = smtp_server(Mode::Normal).await;
    let provider = SmtpProvider::new("smtp".into(), config(port)).unwrap();
    let error = assert_rejected(provider.send(&email_message("not an address", false)).await);
    assert_eq!(error.code(), "invalid_address");
    assert!(record.commands().is_empty());
}

#[tokio::test]
async fn a_temporary_refusal_is_transient() {
    let (port, _record) = smtp_server(Mode::Normal).await;
    let provider = SmtpProvider::new("smtp".into(), config(port)).unwrap();
    let error = assert_transient(
        provider
            .send(&email_message("busy@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "451");
}

#[tokio::test]
async fn failed_authentication_is_a_provider_error() {
    let (port, record) = smtp_server(Mode::Normal).await;
    let provider = SmtpProvider::new("smtp".into(), authenticated(port, "wrong")).unwrap();
    let error = assert_provider(
        provider
            .send(&email_message("user@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "535");
    assert!(record.messages().is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let provider = SmtpProvider::new("smtp".into(), config(port)).unwrap();
    let error = assert_transient(
        provider
            .send(&email_message("user@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "connect");
}

#[tokio::test]
async fn a_silent_server_times_out_as_transient() {
    let (port, _record) = smtp_server(Mode::Silent).await;
    let provider = SmtpProvider::new("smtp".into(), config(port)).unwrap();
    let started = std::time::Instant::now();
    let error = assert_transient(
        provider
            .send(&email_message("user@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
