//! Black-box tests of a destination's export (`GET /admin/v1/destinations/{to}`, `otpd
//! export`) and erasure (`DELETE …`, `otpd erase`): the export holds everything and never a
//! code; after an erasure the export is empty, no table but the abuse counters holds the
//! destination's blind index or a value that opens to it, the audit log shows the erasure
//! without the number, and another account can neither read nor erase it. Run on PostgreSQL
//! with `OTPD_TEST_BACKEND=postgres`.

mod common;

use common::TestApp;
use common::process::otpd;
use otpd_core::vault::Vault;
use reqwest::Method;
use serde_json::{Value, json};

const A: &str = "+33612345678";
const A_DIGITS: &str = "612345678";
const B: &str = "+33612345679";

async fn send(app: &TestApp, auth: &(String, String), method: Method, path: &str) -> (u16, Value) {
    send_form(app, auth, method, path, &[]).await
}

async fn send_form(
    app: &TestApp,
    auth: &(String, String),
    method: Method,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let response = app
        .client
        .request(method, app.url(path))
        .basic_auth(&auth.0, Some(&auth.1))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The first account's SID and auth token.
fn owner(app: &TestApp) -> (String, String) {
    (
        format!("AC{}", app.credentials.application.account_id.simple()),
        app.credentials.account_token.clone().unwrap(),
    )
}

/// A second account (made through the core, so not audited).
async fn stranger(app: &TestApp) -> (String, String) {
    let store = app.server.as_ref().unwrap().store.clone();
    let auth = otpd::authenticator(&app.config, store, app.clock.clone()).unwrap();
    let account = auth.create_account("stranger").await.unwrap();
    (
        format!("AC{}", account.account.id.simple()),
        account.auth_token,
    )
}

fn vault(app: &TestApp) -> Vault {
    Vault::new(&app.config.server_secret().unwrap(), &[])
}

/// Whether a stored value is, or carries, `A`: its digits, its blind index, or a sealed value
/// (raw, or base64 in an event's `toSealed`) that opens to it.
fn holds_a(vault: &Vault, text: Option<&str>, bytes: Option<&[u8]>) -> bool {
    use base64::Engine;
    let index = vault.blind(A).to_hex();
    if let Some(bytes) = bytes
        && (vault.open(bytes).is_ok_and(|to| to == A)
            || bytes.windows(index.len()).any(|w| w == index.as_bytes()))
    {
        return true;
    }
    let Some(text) = text else { return false };
    if text.contains(&index) || text.contains(A_DIGITS) {
        return true;
    }
    let opens = |sealed: &str| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(sealed)
            .ok()
            .is_some_and(|b| vault.open(&b).is_ok_and(|to| to == A))
    };
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("toSealed").and_then(|s| s.as_str().map(opens)))
        .unwrap_or(false)
}

/// The columns (`table.column`) that hold `A`, and whether `rate_events` does.
async fn tables_holding_a(app: &TestApp) -> Vec<String> {
    let vault = vault(app);
    let mut found = Vec::new();
    if let Some(schema) = &app.schema {
        let pool = sqlx::PgPool::connect(&schema.url).await.unwrap();
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             AND data_type IN ('text', 'bytea', 'character varying', 'jsonb')",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(columns.len() > 10, "{columns:?}");
        for (table, column, kind) in columns {
            let held = if kind == "bytea" {
                let sql = format!("SELECT \"{column}\" FROM \"{table}\"");
                let values: Vec<(Option<Vec<u8>>,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                values
                    .iter()
                    .any(|(v,)| holds_a(&vault, None, v.as_deref()))
            } else {
                let sql = format!("SELECT \"{column}\"::text FROM \"{table}\"");
                let values: Vec<(Option<String>,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                values
                    .iter()
                    .any(|(v,)| holds_a(&vault, v.as_deref(), None))
            };
            if held {
                found.push(format!("{table}.{column}"));
            }
        }
    } else {
        use rusqlite::types::ValueRef;
        let db = rusqlite::Connection::open(app.db_path()).unwrap();
        let tables: Vec<String> = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(tables.len() > 10, "{tables:?}");
        for table in tables {
            let mut statement = db.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
            let names: Vec<String> = statement
                .column_names()
                .iter()
                .map(|n| n.to_string())
                .collect();
            let mut rows = statement.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                for (i, name) in names.iter().enumerate() {
                    let held = match row.get_ref(i).unwrap() {
                        ValueRef::Text(t) => {
                            holds_a(&vault, Some(&String::from_utf8_lossy(t)), None)
                        }
                        ValueRef::Blob(b) => holds_a(&vault, None, Some(b)),
                        _ => false,
                    };
                    let column = format!("{table}.{name}");
                    if held && !found.contains(&column) {
                        found.push(column);
                    }
                }
            }
        }
    }
    found.sort();
    found
}

/// Two verifications to A (one approved, one pending), one to B, a refused start to A (the
/// destination limit) and A on the safe list; the export shows all of A and no code; the
/// erasure cancels the pending one and answers the counts; then A's export is empty, B is
/// untouched, only the abuse counters hold A's blind index, and the audit log shows one
/// erasure without A's digits. Another account reads and erases nothing of it.
#[tokio::test]
async fn an_erased_destination_leaves_no_trace_but_its_abuse_counters() {
    let app = TestApp::spawn_configured(|config| {
        config.limits.per_destination = otpd_core::abuse::Limit {
            max: 2,
            window_seconds: 600,
        };
    })
    .await;
    let owner = owner(&app);
    let token = app.token().await;
    let (status, approved) = app.create(&token, json!({"phoneNumber": A})).await;
    assert!(status < 300, "{approved}");
    let first_code = app.last_code(A).await;
    let id = approved["otpId"].as_str().unwrap();
    let (status, body) = app.check(&token, id, &first_code).await;
    assert_eq!(status, 200, "{body}");
    let (status, pending) = app.create(&token, json!({"phoneNumber": A})).await;
    assert!(status < 300, "{pending}");
    let second_code = app.last_code(A).await;
    let (status, refused) = app.create(&token, json!({"phoneNumber": A})).await;
    assert_eq!(
        status, 429,
        "the destination limit refuses a third start: {refused}"
    );
    let (status, kept) = app.create(&token, json!({"phoneNumber": B})).await;
    assert!(status < 300, "{kept}");
    let (status, body) = send_form(
        &app,
        &owner,
        Method::POST,
        "/v2/SafeList/Numbers",
        &[("PhoneNumber", A)],
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let (status, export) = send(
        &app,
        &owner,
        Method::GET,
        "/admin/v1/destinations/%2B33612345678",
    )
    .await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["destination"], A);
    let verifications = export["verifications"].as_array().unwrap();
    let statuses: Vec<&str> = verifications
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["approved", "pending"]);
    assert_eq!(verifications[1]["otpId"], pending["otpId"]);
    for v in verifications {
        assert_eq!(v["deliveries"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["deliveries"][0]["provider"], "console");
        assert!(v["events"].as_array().unwrap().len() >= 2, "{v}");
    }
    assert_eq!(export["blockedStarts"].as_array().unwrap().len(), 1);
    assert_eq!(export["blockedStarts"][0]["data"]["to"], A);
    assert_eq!(export["blockedStarts"][0]["data"]["reason"], "destination");
    assert_eq!(export["safeList"].as_array().unwrap().len(), 1);
    let text = export.to_string();
    for secret in [&first_code, &second_code] {
        assert!(
            !text.contains(secret.as_str()),
            "a code in the export: {text}"
        );
    }
    for field in ["\"code", "codeHash", "seed", "template", "body"] {
        assert!(!text.contains(field), "{field} in the export: {text}");
    }

    let other = stranger(&app).await;
    let (status, theirs) = send(
        &app,
        &other,
        Method::GET,
        "/admin/v1/destinations/%2B33612345678",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            theirs["verifications"].clone(),
            theirs["blockedStarts"].clone(),
            theirs["safeList"].clone()
        ),
        (json!([]), json!([]), json!([])),
        "another account sees nothing of it"
    );
    let (status, nothing) = send(
        &app,
        &other,
        Method::DELETE,
        "/admin/v1/destinations/+33612345678",
    )
    .await;
    assert_eq!(status, 200, "{nothing}");
    assert_eq!(nothing["verifications"], 0);
    assert_eq!(nothing["safeList"], 0);
    let (_, still) = send(
        &app,
        &owner,
        Method::GET,
        "/admin/v1/destinations/%2B33612345678",
    )
    .await;
    assert_eq!(still, export, "another account's erasure touched nothing");

    let (status, bad) = send(
        &app,
        &owner,
        Method::DELETE,
        "/admin/v1/destinations/0612345678",
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["code"], 60200);
    assert!(
        bad["message"].as_str().unwrap().contains("destination"),
        "{bad}"
    );

    let before = tables_holding_a(&app).await;
    for column in [
        "events.data",
        "rate_events.key",
        "safe_numbers.phone_index",
        "verifications.to_index",
        "verifications.to_sealed",
    ] {
        assert!(
            before.contains(&column.to_string()),
            "the scan finds {column}: {before:?}"
        );
    }

    let (status, counts) = send(
        &app,
        &owner,
        Method::DELETE,
        "/admin/v1/destinations/+33612345678",
    )
    .await;
    assert_eq!(status, 200, "{counts}");
    let events: u64 = verifications
        .iter()
        .map(|v| v["events"].as_array().unwrap().len() as u64)
        .sum::<u64>()
        + 1;
    assert_eq!(
        counts,
        json!({"verifications": 2, "canceled": 1, "deliveries": 2, "events": events,
               "callbacks": 0, "webhookDeliveries": 0, "safeList": 1})
    );
    let (_, after) = send(
        &app,
        &owner,
        Method::GET,
        "/admin/v1/destinations/%2B33612345678",
    )
    .await;
    assert_eq!(
        after,
        json!({"destination": A, "verifications": [], "blockedStarts": [], "safeList": []})
    );
    let (_, b) = send(
        &app,
        &owner,
        Method::GET,
        "/admin/v1/destinations/%2B33612345679",
    )
    .await;
    assert_eq!(b["verifications"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["verifications"][0]["otpId"], kept["otpId"]);
    let (status, read) = app
        .call(
            Method::GET,
            &format!("/otp/{}", pending["otpId"].as_str().unwrap()),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 404, "the erased verification is gone: {read}");

    assert_eq!(
        tables_holding_a(&app).await,
        vec!["rate_events.key".to_string()],
        "only the abuse counters keep A's blind index"
    );

    let (status, audit) = send(
        &app,
        &owner,
        Method::GET,
        "/admin/v1/audit?action=destination.erase",
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        1,
        "the stranger's erasure is in its own log: {audit}"
    );
    assert_eq!(entries[0]["target"], "destination");
    assert_eq!(entries[0]["summary"]["erased"]["verifications"], 2);
    let entry = entries[0].to_string();
    assert!(!entry.contains(A_DIGITS), "{entry}");
    assert!(!entry.contains(&vault(&app).blind(A).to_hex()), "{entry}");
}

/// `otpd erase --to … --json` erases in every account and is audited as the CLI user;
/// `otpd export --to …` then prints an empty document.
#[tokio::test]
async fn the_command_line_exports_and_erases_in_every_account() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let (status, started) = app.create(&token, json!({"phoneNumber": B})).await;
    assert!(status < 300, "{started}");
    let database = app.config.database_url.expose().to_string();
    let run = |args: &[&str]| {
        let output = otpd(app.dir.path())
            .args(args)
            .args(["--database", &database])
            .env("USER", "alice")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let export = run(&["export", "--to", B]);
    assert_eq!(export["verifications"][0]["otpId"], started["otpId"]);
    let counts = run(&["erase", "--to", B, "--json"]);
    assert_eq!(counts["verifications"], 1);
    assert_eq!(counts["canceled"], 1);
    let export = run(&["export", "--to", B]);
    assert_eq!(export["verifications"], json!([]));
    let owner = owner(&app);
    let (_, audit) = send(
        &app,
        &owner,
        Method::GET,
        "/admin/v1/audit?action=destination.erase",
    )
    .await;
    assert_eq!(
        audit["entries"],
        json!([]),
        "an erasure in every account is the operator's"
    );
    let output = otpd(app.dir.path())
        .args([
            "audit",
            "list",
            "--json",
            "--action",
            "destination.erase",
            "--database",
            &database,
        ])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed[0]["actor"]["id"], "alice");
    assert_eq!(listed[0]["target"], "destination");
}
