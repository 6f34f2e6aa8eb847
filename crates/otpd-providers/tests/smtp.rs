//! SMTP adapter against a tiny in-process SMTP server that records the dialogue and the
//! message and answers per recipient: plain text (`tls = "none"` on loopback), STARTTLS and
//! implicit TLS (with a test CA from `tests/fixtures`).

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use otpd_core::DeliveryStatus;
use otpd_delivery::Provider;
use otpd_providers::smtp::{SmtpConfig, SmtpProvider, SmtpTls};
use otpd_providers::testing::*;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const TEST_CA: &str = include_str!("fixtures/test-ca.pem");
const TEST_CERT: &[u8] = include_bytes!("fixtures/test-server.pem");
const TEST_KEY: &[u8] = include_bytes!("fixtures/test-server.key");

/// What the server saw: every command line (with a `<tls>` marker where encryption
/// started), and each message's DATA.
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
    fn position(&self, prefix: &str) -> Option<usize> {
        self.commands()
            .iter()
            .position(|command| command.starts_with(prefix))
    }
}

/// How the mock server behaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Plain text, no STARTTLS offered.
    Plain,
    /// Plain text offering STARTTLS; AUTH is only offered once encrypted.
    Starttls,
    /// TLS from the first byte.
    Implicit,
    /// Accept connections and never say anything.
    Silent,
}

const USER: &str = "mailer";
const PASSWORD: &str = "s3cret";

fn acceptor() -> TlsAcceptor {
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let certs = CertificateDer::pem_slice_iter(TEST_CERT)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(TEST_KEY).unwrap();
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// Starts the mock on a free loopback port and returns the port.
async fn smtp_server(mode: Mode) -> (u16, Record) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let record = Record::default();
    let shared = record.clone();
    let acceptor = acceptor();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let record = shared.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match mode {
                    Mode::Silent => {
                        hang().await;
                        drop(socket);
                    }
                    Mode::Implicit => {
                        let Ok(tls) = acceptor.accept(socket).await else {
                            return;
                        };
                        record.commands.lock().unwrap().push("<tls>".into());
                        let _ = session(tls, &record, false, true, true).await;
                    }
                    Mode::Plain | Mode::Starttls => {
                        let starttls = mode == Mode::Starttls;
                        if let Ok(Some(socket)) =
                            session(socket, &record, starttls, !starttls, true).await
                        {
                            let Ok(tls) = acceptor.accept(socket).await else {
                                return;
                            };
                            record.commands.lock().unwrap().push("<tls>".into());
                            let _ = session(tls, &record, false, true, false).await;
                        }
                    }
                }
            });
        }
    });
    (port, record)
}

/// One SMTP session: EHLO, STARTTLS (when offered: then the raw stream is handed back for
/// the TLS handshake), AUTH PLAIN/LOGIN (when offered), MAIL, RCPT, DATA, RSET, QUIT.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    record: &Record,
    offer_starttls: bool,
    offer_auth: bool,
    greet: bool,
) -> std::io::Result<Option<S>> {
    let mut stream = BufReader::new(stream);
    if greet {
        stream.write_all(b"220 mock.test ESMTP ready\r\n").await?;
    }
    let expected_plain = STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        record.commands.lock().unwrap().push(line.clone());
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut reply = String::from("250-mock.test\r\n250-8BITMIME\r\n");
            if offer_starttls {
                reply.push_str("250-STARTTLS\r\n");
            }
            if offer_auth {
                reply.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            reply.push_str("250 SMTPUTF8\r\n");
            reply
        } else if upper == "STARTTLS" && offer_starttls {
            stream
                .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                .await?;
            stream.flush().await?;
            return Ok(Some(stream.into_inner()));
        } else if let Some(initial) = line.strip_prefix("AUTH PLAIN ").filter(|_| offer_auth) {
            if initial == expected_plain {
                "235 2.7.0 Authentication successful\r\n".into()
            } else {
                "535 5.7.8 Authentication credentials invalid\r\n".into()
            }
        } else if upper == "AUTH LOGIN" && offer_auth {
            stream.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            let mut user = String::new();
            stream.read_line(&mut user).await?;
            stream.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            let mut password = String::new();
            stream.read_line(&mut password).await?;
            if user.trim_end() == STANDARD.encode(USER)
                && password.trim_end() == STANDARD.encode(PASSWORD)
            {
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
            stream
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                let mut line = String::new();
                if stream.read_line(&mut line).await? == 0 {
                    return Ok(None);
                }
                let line = line.trim_end_matches(['\r', '\n']);
                if line == "." {
                    break;
                }
                // Undo dot-stuffing.
                let line = if line.starts_with("..") {
                    &line[1..]
                } else {
                    line
                };
                data.push_str(line);
                data.push_str("\r\n");
            }
            record.messages.lock().unwrap().push(data);
            "250 2.0.0 Ok: queued as 4F2B81C0A3\r\n".into()
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 Ok\r\n".into()
        } else if upper == "QUIT" {
            stream.write_all(b"221 2.0.0 Bye\r\n").await?;
            stream.flush().await?;
            return Ok(None);
        } else {
            "502 5.5.2 Error: command not recognized\r\n".into()
        };
        stream.write_all(reply.as_bytes()).await?;
        stream.flush().await?;
    }
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
        ca_certificate_pem: None,
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
    let (port, record) = smtp_server(Mode::Plain).await;
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
    let (port, record) = smtp_server(Mode::Plain).await;
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
    let (port, record) = smtp_server(Mode::Plain).await;
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
    let (port, record) = smtp_server(Mode::Plain).await;
    let provider = SmtpProvider::new("smtp".into(), config(port)).unwrap();
    let error = expect_rejected(
        provider
            .send(&email_message("nobody@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "550");
    assert!(record.messages().is_empty());
}

#[tokio::test]
async fn an_invalid_address_is_rejected_without_connecting() {
    let (port, record) = smtp_server(Mode::Plain).await;
    let provider = SmtpProvider::new("smtp".into(), config(port)).unwrap();
    let error = expect_rejected(provider.send(&email_message("not an address", false)).await);
    assert_eq!(error.code(), "invalid_address");
    assert!(record.commands().is_empty());
}

#[tokio::test]
async fn a_temporary_refusal_is_transient() {
    let (port, _record) = smtp_server(Mode::Plain).await;
    let provider = SmtpProvider::new("smtp".into(), config(port)).unwrap();
    let error = expect_transient(
        provider
            .send(&email_message("busy@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "451");
}

#[tokio::test]
async fn failed_authentication_is_a_provider_error() {
    let (port, record) = smtp_server(Mode::Plain).await;
    let provider = SmtpProvider::new("smtp".into(), authenticated(port, "wrong")).unwrap();
    let error = expect_provider(
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
    let error = expect_transient(
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
    let error = expect_transient(
        provider
            .send(&email_message("user@example.com", false))
            .await,
    );
    assert_eq!(error.code(), "timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

fn tls_config(port: u16, tls: SmtpTls) -> SmtpConfig {
    SmtpConfig {
        tls,
        ca_certificate_pem: Some(TEST_CA.into()),
        ..authenticated(port, PASSWORD)
    }
}

#[tokio::test]
async fn starttls_encrypts_before_authenticating() {
    let (port, record) = smtp_server(Mode::Starttls).await;
    let provider = SmtpProvider::new("smtp".into(), tls_config(port, SmtpTls::Starttls)).unwrap();
    let accepted = provider
        .send(&email_message("user@example.com", true))
        .await
        .unwrap();
    assert_eq!(accepted.status, DeliveryStatus::Sent);
    let commands = record.commands();
    let tls = record.position("<tls>").expect("TLS was started");
    assert_eq!(record.position("STARTTLS"), Some(tls - 1), "{commands:?}");
    assert_eq!(
        commands[tls + 1],
        "EHLO otpd.test",
        "EHLO again after STARTTLS"
    );
    assert!(
        record.position("AUTH PLAIN ").unwrap() > tls,
        "{commands:?}"
    );
    assert!(record.position("MAIL FROM:").unwrap() > tls, "{commands:?}");
    assert_eq!(record.messages().len(), 1);
}

#[tokio::test]
async fn implicit_tls_encrypts_from_the_first_byte() {
    let (port, record) = smtp_server(Mode::Implicit).await;
    let provider = SmtpProvider::new("smtp".into(), tls_config(port, SmtpTls::Implicit)).unwrap();
    provider
        .send(&email_message("user@example.com", false))
        .await
        .unwrap();
    let commands = record.commands();
    assert_eq!(commands[0], "<tls>");
    assert_eq!(commands[1], "EHLO otpd.test");
    assert!(record.position("STARTTLS").is_none());
    assert_eq!(record.messages().len(), 1);
}

#[tokio::test]
async fn a_server_without_starttls_gets_no_credentials() {
    // A plain server (or a downgrade attack stripping STARTTLS): refuse, credentials unsent.
    let (port, record) = smtp_server(Mode::Plain).await;
    let provider = SmtpProvider::new("smtp".into(), tls_config(port, SmtpTls::Starttls)).unwrap();
    expect_provider(
        provider
            .send(&email_message("user@example.com", false))
            .await,
    );
    assert!(record.position("AUTH").is_none(), "{:?}", record.commands());
    assert!(record.messages().is_empty());
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    // Without the test CA the server's certificate does not verify.
    let (port, record) = smtp_server(Mode::Starttls).await;
    let config = SmtpConfig {
        ca_certificate_pem: None,
        ..tls_config(port, SmtpTls::Starttls)
    };
    let provider = SmtpProvider::new("smtp".into(), config).unwrap();
    let error = provider
        .send(&email_message("user@example.com", false))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "tls", "{error:?}");
    assert!(record.position("AUTH").is_none());
    assert!(record.messages().is_empty());
}
