//! `otpd operator …` with the real binary: creating console operators (with a password from
//! stdin or an invitation link, and an authenticator URI), listing, disabling and resetting
//! them, each change audited without a secret in it. Run on PostgreSQL with
//! `OTPD_TEST_BACKEND=postgres`.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};

use common::on_postgres;
use common::process::otpd;
use otpd::Config;
use otpd_core::SystemClock;
use otpd_core::operators::{Operators, SessionRules, SignInError, verify_password};
use otpd_core::{Secret, operators::PasswordWork};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery";

/// A directory to run `otpd` in, and the database its commands use.
struct Cli {
    dir: tempfile::TempDir,
    database: String,
    _schema: Option<otpd_store_postgres::testing::TestSchema>,
}

impl Cli {
    async fn new() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let (database, schema) = if on_postgres() {
            let schema = otpd_store_postgres::testing::TestSchema::create()
                .await
                .expect("OTPD_TEST_BACKEND=postgres needs a reachable PostgreSQL");
            (schema.url.clone(), Some(schema))
        } else {
            (
                format!("sqlite://{}", dir.path().join("otpd.db").display()),
                None,
            )
        };
        Cli {
            dir,
            database,
            _schema: schema,
        }
    }

    /// Runs `otpd` with `args` on the test's database, `stdin` fed to it.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = otpd(self.dir.path());
        command
            .args(args)
            .args(["--database", &self.database])
            .env("USER", "alice")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).unwrap();
        }
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.run(args, stdin);
        assert!(
            output.status.success(),
            "otpd {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn json(&self, args: &[&str], stdin: Option<&str>) -> Value {
        let printed = self.ok(args, stdin);
        serde_json::from_str(&printed).unwrap_or_else(|_| panic!("one JSON value: {printed}"))
    }

    fn list(&self) -> Vec<Value> {
        self.json(&["operator", "list", "--json"], None)
            .as_array()
            .unwrap()
            .clone()
    }

    /// The audit entries of operator changes, oldest first.
    fn audited(&self) -> Vec<Value> {
        let entries = self.json(&["audit", "list", "--json"], None);
        let mut entries: Vec<Value> = entries
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"].as_str().unwrap().starts_with("operator."))
            .cloned()
            .collect();
        entries.reverse();
        entries
    }

    /// The configuration the commands ran with (dev mode, the key file in the directory),
    /// to check what they did through the core.
    fn config(&self) -> Config {
        Config {
            database_url: self.database.clone().into(),
            secret_file: self.dir.path().join("otpd.key"),
            dev_mode: Some(true),
            ..Config::default()
        }
    }

    async fn operators(&self) -> Operators<otpd::AnyStore, SystemClock> {
        let config = self.config();
        Operators::new(
            otpd::open_store(&config).await.unwrap(),
            SystemClock,
            otpd::vault(&config).unwrap(),
            SessionRules::default(),
        )
    }
}

/// The password work done on the test's thread.
struct Inline;

impl PasswordWork for Inline {
    async fn hash(&self, password: Secret) -> String {
        otpd_core::operators::hash_password(&password)
    }

    async fn verify(&self, phc: String, password: Secret) -> bool {
        verify_password(&phc, &password)
    }
}

fn create_alice(cli: &Cli) -> Value {
    cli.json(
        &[
            "operator",
            "create",
            "--email",
            "Alice@Example.com",
            "--role",
            "admin",
            "--password-stdin",
            "--json",
        ],
        Some(&format!("{PASSWORD}\n")),
    )
}

#[tokio::test]
async fn create_with_a_password_from_stdin_signs_in_and_is_listed() {
    let cli = Cli::new().await;
    let alice = create_alice(&cli);
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["role"], "admin");
    assert!(
        alice["id"].as_str().is_some_and(|id| id.len() == 36),
        "{alice}"
    );
    assert!(alice.get("invitationUrl").is_none(), "{alice}");
    assert!(alice.get("totpUri").is_none(), "{alice}");

    let operators = cli.operators().await;
    let (signed_in, session) = operators
        .sign_in(&Inline, "alice@example.com", Secret::new(PASSWORD))
        .await
        .expect("the password read from stdin signs in");
    assert_eq!(signed_in.id.to_string(), alice["id"].as_str().unwrap());
    assert!(!session.session.second_factor_pending);

    let bob = cli.json(
        &[
            "operator",
            "create",
            "--email",
            "bob@example.com",
            "--role",
            "viewer",
            "--totp",
            "--json",
        ],
        None,
    );
    let link = bob["invitationUrl"].as_str().unwrap();
    let token = link
        .strip_prefix("http://127.0.0.1:8080/console/invite/")
        .unwrap_or_else(|| panic!("{link}"));
    assert_eq!(token.len(), 43, "256 bits, base64url: {link}");
    let uri = bob["totpUri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/otpd:bob") && uri.contains("secret="),
        "{uri}"
    );
    assert!(operators.invited(token).await.unwrap().is_some());

    let listed = cli.list();
    let summary: Vec<(&str, &str, bool, bool, bool, bool)> = listed
        .iter()
        .map(|o| {
            (
                o["email"].as_str().unwrap(),
                o["role"].as_str().unwrap(),
                o["disabled"].as_bool().unwrap(),
                o["locked"].as_bool().unwrap(),
                o["secondFactor"].as_bool().unwrap(),
                o["invitationPending"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("alice@example.com", "admin", false, false, false, false),
            ("bob@example.com", "viewer", false, false, true, true),
        ]
    );
    assert!(listed[0]["createdAt"].as_str().unwrap().ends_with('Z'));
    let text = cli.ok(&["operator", "list"], None);
    assert!(
        text.contains("alice@example.com") && text.contains("bob@example.com"),
        "{text}"
    );

    let audited = cli.audited();
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert_eq!(audited[0]["action"], "operator.create");
    assert_eq!(audited[0]["target"], alice["id"]);
    assert_eq!(
        audited[0]["summary"],
        serde_json::json!({"after": {
            "email": "alice@example.com",
            "role": "admin",
            "invited": false,
            "secondFactor": false,
        }})
    );
    assert_eq!(audited[1]["summary"]["after"]["secondFactor"], true);
    assert_eq!(
        audited[0]["actor"],
        serde_json::json!({"kind": "cli", "id": "alice"})
    );
    let everything = serde_json::to_string(&audited).unwrap();
    assert!(!everything.contains(PASSWORD) && !everything.contains(token));
    assert!(!everything.contains("argon2") && !everything.contains("otpauth"));
}

#[tokio::test]
async fn a_taken_email_and_a_weak_password_are_refused() {
    let cli = Cli::new().await;
    create_alice(&cli);
    let again = cli.run(
        &[
            "operator",
            "create",
            "--email",
            "ALICE@example.com",
            "--role",
            "viewer",
        ],
        None,
    );
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("an operator with the email ALICE@example.com exists already"),
        "{stderr}"
    );

    let weak = cli.run(
        &[
            "operator",
            "create",
            "--email",
            "carol@example.com",
            "--role",
            "support",
            "--password-stdin",
        ],
        Some("elevenchars\n"),
    );
    assert_eq!(weak.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&weak.stderr);
    assert!(
        stderr.contains("--password-stdin: the password must be at least 12 characters"),
        "{stderr}"
    );

    let malformed = cli.run(
        &[
            "operator", "create", "--email", "carol", "--role", "support",
        ],
        None,
    );
    assert_eq!(malformed.status.code(), Some(2));
    let bad_role = cli.run(
        &[
            "operator",
            "create",
            "--email",
            "carol@example.com",
            "--role",
            "root",
        ],
        None,
    );
    assert!(!bad_role.status.success());

    let emails: Vec<String> = cli
        .list()
        .iter()
        .map(|o| o["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(emails, ["alice@example.com"]);
    assert_eq!(cli.audited().len(), 1, "refusals are not audited");
}

#[tokio::test]
async fn disable_ends_sessions_and_reset_replaces_the_password_with_a_link() {
    let cli = Cli::new().await;
    create_alice(&cli);
    cli.json(
        &[
            "operator",
            "create",
            "--email",
            "dan@example.com",
            "--role",
            "support",
            "--password-stdin",
            "--json",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    let operators = cli.operators().await;
    let sign_in = |email: &'static str| {
        let operators = &operators;
        async move {
            operators
                .sign_in(&Inline, email, Secret::new(PASSWORD))
                .await
        }
    };

    let (_, alice_session) = sign_in("alice@example.com").await.unwrap();
    let disabled = cli.ok(
        &["operator", "disable", "--email", "alice@example.com"],
        None,
    );
    assert!(disabled.contains("sessions ended: 1"), "{disabled}");
    let token = alice_session.token.expose();
    assert!(operators.session(token).await.unwrap().is_none());
    assert!(matches!(
        sign_in("alice@example.com").await,
        Err(SignInError::WrongCredentials)
    ));

    let (_, dan_session) = sign_in("dan@example.com").await.unwrap();
    let reset = cli.ok(&["operator", "reset", "--email", "Dan@Example.com"], None);
    let link = reset
        .split_whitespace()
        .find(|word| word.contains("/console/invite/"))
        .unwrap_or_else(|| panic!("a link: {reset}"));
    let invitation = link.rsplit('/').next().unwrap();
    assert!(
        operators
            .session(dan_session.token.expose())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        sign_in("dan@example.com").await,
        Err(SignInError::WrongCredentials)
    ));
    let invited = operators.invited(invitation).await.unwrap().unwrap();
    assert_eq!(invited.email, "dan@example.com");

    let listed = cli.list();
    assert_eq!(listed[0]["disabled"], true);
    assert_eq!(listed[1]["invitationPending"], true);
    let audited = cli.audited();
    let actions: Vec<(String, String)> = audited
        .iter()
        .map(|e| {
            let email = e["summary"]["email"]
                .as_str()
                .or(e["summary"]["after"]["email"].as_str())
                .unwrap();
            (e["action"].as_str().unwrap().to_string(), email.to_string())
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("operator.create".into(), "alice@example.com".into()),
            ("operator.create".into(), "dan@example.com".into()),
            ("operator.disable".into(), "alice@example.com".into()),
            ("operator.reset".into(), "dan@example.com".into()),
        ]
    );
    assert!(
        !serde_json::to_string(&cli.audited())
            .unwrap()
            .contains(invitation)
    );

    let unknown = cli.run(
        &["operator", "disable", "--email", "nobody@example.com"],
        None,
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no operator has the email"));
}

#[tokio::test]
async fn invitation_links_use_the_public_base_url_and_the_console_settings() {
    let cli = Cli::new().await;
    std::fs::write(
        cli.dir.path().join("otpd.toml"),
        "dev_mode = true\npublic_base_url = \"https://otp.example.com/\"\n\n\
         [console]\ninvitation_hours = 2\n",
    )
    .unwrap();
    let created = cli.json(
        &[
            "operator",
            "create",
            "--config",
            "otpd.toml",
            "--email",
            "erin@example.com",
            "--role",
            "viewer",
            "--json",
        ],
        None,
    );
    let link = created["invitationUrl"].as_str().unwrap();
    assert!(
        link.starts_with("https://otp.example.com/console/invite/"),
        "{link}"
    );
    let reset = cli.ok(
        &[
            "operator",
            "reset",
            "--config",
            "otpd.toml",
            "--email",
            "erin@example.com",
        ],
        None,
    );
    assert!(
        reset.starts_with(
            "Invitation for erin@example.com (viewer): https://otp.example.com/console/invite/"
        ) && reset.contains("works for 2 hours"),
        "{reset}"
    );
}
