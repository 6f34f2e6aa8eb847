//! Black-box tests of the audit log: every management change through the Twilio resources,
//! the admin API and the CLI appears once with its actor and target; reads and refused
//! changes add nothing; an account sees only its own entries; and `otpd audit verify` passes
//! on an untouched database and fails, naming the entry, once a stored row is edited. Run on
//! PostgreSQL with `OTPD_TEST_BACKEND=postgres`.

mod common;

use common::TestApp;
use common::process::otpd;
use reqwest::Method;
use serde_json::Value;

struct Admin {
    app: TestApp,
    user: String,
    password: String,
}

impl Admin {
    async fn spawn() -> Admin {
        let app = TestApp::spawn().await;
        let (user, password) = account(&app, "audited").await;
        Admin {
            app,
            user,
            password,
        }
    }

    async fn send(&self, method: Method, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        send_as(&self.app, &self.user, &self.password, method, path, form).await
    }

    /// `path` must answer `status`; its body.
    async fn ok(&self, status: u16, method: Method, path: &str, form: &[(&str, &str)]) -> Value {
        let (got, body) = self.send(method, path, form).await;
        assert_eq!(got, status, "{path}: {body}");
        body
    }

    /// Every entry of this account's log, newest first.
    async fn entries(&self) -> Vec<Value> {
        entries_as(&self.app, &self.user, &self.password, "").await
    }

    fn database(&self) -> String {
        self.app.config.database_url.expose().to_string()
    }
}

/// A new account on `app`: its SID and auth token (made through the core, so not audited).
async fn account(app: &TestApp, name: &str) -> (String, String) {
    let store = app.server.as_ref().unwrap().store.clone();
    let auth = otpd::authenticator(&app.config, store, app.clock.clone()).unwrap();
    let account = auth.create_account(name).await.unwrap();
    (
        format!("AC{}", account.account.id.simple()),
        account.auth_token,
    )
}

async fn send_as(
    app: &TestApp,
    user: &str,
    password: &str,
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
        .basic_auth(user, Some(password))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn entries_as(app: &TestApp, user: &str, password: &str, query: &str) -> Vec<Value> {
    let path = format!("/admin/v1/audit?pageSize=1000{query}");
    let (status, body) = send_as(app, user, password, Method::GET, &path, &[]).await;
    assert_eq!(status, 200, "{body}");
    body["entries"].as_array().unwrap().clone()
}

/// (action, target, actor kind) of each entry, oldest first.
fn changes(entries: &[Value]) -> Vec<(String, String, String)> {
    entries
        .iter()
        .rev()
        .map(|e| {
            let text = |v: &Value| v.as_str().unwrap().to_string();
            (
                text(&e["action"]),
                text(&e["target"]),
                text(&e["actor"]["kind"]),
            )
        })
        .collect()
}

fn change(action: &str, target: &str, actor: &str) -> (String, String, String) {
    (action.into(), target.into(), actor.into())
}

#[tokio::test]
async fn each_change_appears_once_with_its_actor_and_target() {
    let a = Admin::spawn().await;
    let service = a
        .ok(
            201,
            Method::POST,
            "/v2/Services",
            &[("FriendlyName", "Shop")],
        )
        .await;
    let va = service["sid"].as_str().unwrap().to_string();
    let base = format!("/v2/Services/{va}");
    a.ok(200, Method::POST, &base, &[("CodeLength", "8")]).await;
    let limit = a
        .ok(
            201,
            Method::POST,
            &format!("{base}/RateLimits"),
            &[("UniqueName", "user")],
        )
        .await;
    let rk = limit["sid"].as_str().unwrap().to_string();
    let limit_path = format!("{base}/RateLimits/{rk}");
    a.ok(
        200,
        Method::POST,
        &limit_path,
        &[("Description", "per user")],
    )
    .await;
    let bucket = a
        .ok(
            201,
            Method::POST,
            &format!("{limit_path}/Buckets"),
            &[("Max", "5"), ("Interval", "60")],
        )
        .await;
    let bl = bucket["sid"].as_str().unwrap().to_string();
    let bucket_path = format!("{limit_path}/Buckets/{bl}");
    a.ok(200, Method::POST, &bucket_path, &[("Max", "6")]).await;
    a.ok(204, Method::DELETE, &bucket_path, &[]).await;
    a.ok(204, Method::DELETE, &limit_path, &[]).await;
    let hook = [
        ("FriendlyName", "h"),
        ("EventTypes", "*"),
        ("WebhookUrl", "http://127.0.0.1:9/h"),
    ];
    let webhook = a
        .ok(201, Method::POST, &format!("{base}/Webhooks"), &hook)
        .await;
    let yw = webhook["sid"].as_str().unwrap().to_string();
    a.ok(
        200,
        Method::POST,
        &format!("{base}/Webhooks/{yw}"),
        &[("Status", "disabled")],
    )
    .await;
    a.ok(204, Method::DELETE, &format!("{base}/Webhooks/{yw}"), &[])
        .await;
    let safe = a
        .ok(
            201,
            Method::POST,
            "/v2/SafeList/Numbers",
            &[("PhoneNumber", "+14155552671")],
        )
        .await;
    let gn = safe["sid"].as_str().unwrap().to_string();
    a.ok(
        204,
        Method::DELETE,
        "/v2/SafeList/Numbers/+14155552671",
        &[],
    )
    .await;
    // An API key acting for the account is named as itself.
    let store = a.app.server.as_ref().unwrap().store.clone();
    let auth = otpd::authenticator(&a.app.config, store, a.app.clock.clone()).unwrap();
    let account_id = otpd_core::AccountId::from_uuid(uuid::Uuid::try_parse(&a.user[2..]).unwrap());
    let key = auth
        .create_api_key(account_id, "ci")
        .await
        .unwrap()
        .unwrap();
    let sk = format!("SK{}", key.key.id.simple());
    let (status, body) = send_as(
        &a.app,
        &sk,
        &key.secret,
        Method::POST,
        &base,
        &[("FriendlyName", "Shop 2")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    a.ok(204, Method::DELETE, &format!("/admin/v1/keys/{sk}"), &[])
        .await;
    let token = a
        .ok(201, Method::POST, "/admin/v1/account/token", &[])
        .await;
    let a = Admin {
        password: token["authToken"].as_str().unwrap().to_string(),
        ..a
    };
    a.ok(204, Method::DELETE, &base, &[]).await;

    let entries = a.entries().await;
    assert_eq!(
        changes(&entries),
        vec![
            change("service.create", &va, "account"),
            change("service.update", &va, "account"),
            change("rate_limit.create", &rk, "account"),
            change("rate_limit.update", &rk, "account"),
            change("bucket.create", &bl, "account"),
            change("bucket.update", &bl, "account"),
            change("bucket.delete", &bl, "account"),
            change("rate_limit.delete", &rk, "account"),
            change("webhook.create", &yw, "account"),
            change("webhook.update", &yw, "account"),
            change("webhook.delete", &yw, "account"),
            change("safe_number.add", &gn, "account"),
            change("safe_number.remove", &gn, "account"),
            change("service.update", &va, "api_key"),
            change("api_key.revoke", &sk, "account"),
            change("account.rotate_token", &a.user, "account"),
            change("service.delete", &va, "account"),
        ]
    );
    let by_key = &entries[3];
    assert_eq!(by_key["actor"]["id"], sk.as_str());
    assert_eq!(
        by_key["summary"],
        serde_json::json!({"before": {"friendly_name": "Shop"}, "after": {"friendly_name": "Shop 2"}})
    );
    assert_eq!(entries[0]["actor"]["id"], a.user.as_str());
    assert!(
        entries.iter().all(|e| e["source"] == "127.0.0.1"),
        "{entries:?}"
    );
    let code_length = &entries[entries.len() - 2]["summary"];
    assert_eq!(code_length["after"]["code_length"], 8, "{code_length}");
    let safe_add = &entries[entries.len() - 12]["summary"];
    assert_eq!(safe_add["after"]["phone_number"], "+1415***2671");
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains("+14155552671") && !text.contains(&key.secret));
    assert!(!text.contains(token["authToken"].as_str().unwrap()));
}

#[tokio::test]
async fn reads_and_refused_changes_add_nothing() {
    let a = Admin::spawn().await;
    let service = a
        .ok(
            201,
            Method::POST,
            "/v2/Services",
            &[("FriendlyName", "Shop")],
        )
        .await;
    let base = format!("/v2/Services/{}", service["sid"].as_str().unwrap());
    assert_eq!(a.entries().await.len(), 1);
    a.ok(200, Method::GET, &base, &[]).await;
    a.ok(200, Method::GET, "/v2/Services", &[]).await;
    a.ok(200, Method::GET, &format!("{base}/RateLimits"), &[])
        .await;
    a.ok(200, Method::GET, "/admin/v1/keys", &[]).await;
    a.ok(200, Method::GET, "/admin/v1/events", &[]).await;
    a.ok(400, Method::POST, &base, &[("CodeLength", "99")])
        .await;
    a.ok(
        404,
        Method::DELETE,
        "/v2/SafeList/Numbers/+14155552671",
        &[],
    )
    .await;
    a.ok(
        404,
        Method::DELETE,
        &format!("{base}/RateLimits/RK{}", "0".repeat(32)),
        &[],
    )
    .await;
    let (status, _) = send_as(&a.app, &a.user, "wrong", Method::DELETE, &base, &[]).await;
    assert_eq!(status, 401);
    assert_eq!(a.entries().await.len(), 1);
}

#[tokio::test]
async fn an_account_sees_only_its_own_entries_and_filters_page_them() {
    let a = Admin::spawn().await;
    let (other, other_token) = account(&a.app, "other").await;
    let theirs = send_as(
        &a.app,
        &other,
        &other_token,
        Method::POST,
        "/v2/Services",
        &[("FriendlyName", "T")],
    )
    .await;
    assert_eq!(theirs.0, 201);
    let mut sids = Vec::new();
    for n in 0..5 {
        let name = format!("S{n}");
        let body = a
            .ok(
                201,
                Method::POST,
                "/v2/Services",
                &[("FriendlyName", &name)],
            )
            .await;
        sids.push(body["sid"].as_str().unwrap().to_string());
    }
    a.ok(
        200,
        Method::POST,
        &format!("/v2/Services/{}", sids[1]),
        &[("Ttl", "300")],
    )
    .await;
    let mine = a.entries().await;
    assert_eq!(mine.len(), 6);
    let theirs_sid = theirs.1["sid"].as_str().unwrap();
    assert!(mine.iter().all(|e| e["target"] != theirs_sid));
    let only_theirs = entries_as(&a.app, &other, &other_token, "").await;
    assert_eq!(
        changes(&only_theirs),
        vec![change("service.create", theirs_sid, "account")]
    );
    let query = format!("&target={theirs_sid}");
    assert!(
        entries_as(&a.app, &a.user, &a.password, &query)
            .await
            .is_empty()
    );

    let updates = entries_as(&a.app, &a.user, &a.password, "&action=service.update").await;
    assert_eq!(
        changes(&updates),
        vec![change("service.update", &sids[1], "account")]
    );
    let query = format!("&target={}", sids[2]);
    assert_eq!(
        entries_as(&a.app, &a.user, &a.password, &query).await.len(),
        1
    );
    let future = "&since=2999-01-01T00:00:00Z";
    assert!(
        entries_as(&a.app, &a.user, &a.password, future)
            .await
            .is_empty()
    );
    let past = "&until=2000-01-01T00:00:00%2B02:00";
    assert!(
        entries_as(&a.app, &a.user, &a.password, past)
            .await
            .is_empty()
    );

    let first = a
        .ok(200, Method::GET, "/admin/v1/audit?pageSize=4", &[])
        .await;
    let token = first["nextPageToken"].as_str().unwrap();
    let second = a
        .ok(
            200,
            Method::GET,
            &format!("/admin/v1/audit?pageSize=4&pageToken={token}"),
            &[],
        )
        .await;
    assert_eq!(second["entries"].as_array().unwrap().len(), 2);
    assert_eq!(second["nextPageToken"], Value::Null);
    assert_eq!(second["entries"][1]["id"], mine[5]["id"]);

    for (query, field) in [
        ("since=yesterday", "since"),
        ("until=2024-13-01T00:00:00Z", "until"),
        ("pageSize=0", "pageSize"),
        ("pageSize=1001", "pageSize"),
        ("pageToken=nope", "pageToken"),
    ] {
        let (status, body) = a
            .send(Method::GET, &format!("/admin/v1/audit?{query}"), &[])
            .await;
        assert_eq!(
            (status, &body["code"]),
            (400, &Value::from(60200)),
            "{query}: {body}"
        );
        assert!(body["message"].as_str().unwrap().contains(field), "{body}");
    }
}

/// Runs `otpd audit verify` on the test's database: whether it passed, and what it printed.
fn verify(a: &Admin) -> (bool, String) {
    let output = otpd(a.app.dir.path())
        .args(["audit", "verify", "--database", &a.database()])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), printed)
}

#[tokio::test]
async fn cli_changes_are_audited_and_an_edited_entry_fails_verify() {
    let a = Admin::spawn().await;
    for n in 0..3 {
        let name = format!("S{n}");
        a.ok(
            201,
            Method::POST,
            "/v2/Services",
            &[("FriendlyName", &name)],
        )
        .await;
    }
    let output = otpd(a.app.dir.path())
        .args([
            "apikey",
            "create",
            "--json",
            "--account",
            &a.user,
            "--database",
            &a.database(),
        ])
        .env("USER", "alice")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let sk = created["sid"].as_str().unwrap();
    let listed = otpd(a.app.dir.path())
        .args([
            "audit",
            "list",
            "--json",
            "--account",
            &a.user,
            "--database",
            &a.database(),
        ])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 4);
    assert_eq!(listed[0]["action"], "api_key.create");
    assert_eq!(listed[0]["target"], sk);
    assert_eq!(
        listed[0]["actor"],
        serde_json::json!({"kind": "cli", "id": "alice"})
    );
    assert_eq!(listed[0]["source"], Value::Null);
    assert_eq!(
        a.entries().await.len(),
        4,
        "the account sees the operator's change"
    );

    let (passed, printed) = verify(&a);
    assert!(passed, "{printed}");
    assert!(
        printed.contains("audit chain intact: 4 entries"),
        "{printed}"
    );

    let edited = a.entries().await[2]["id"].as_str().unwrap().to_string();
    tamper(&a, 2).await;
    let (passed, printed) = verify(&a);
    assert!(!passed, "{printed}");
    assert!(
        printed.contains(&edited) && printed.contains("position 2"),
        "{printed}"
    );
}

/// Rewrites the target of the entry at `position` straight in the database.
async fn tamper(a: &Admin, position: i64) {
    let sql = "UPDATE audit_log SET target = 'VAforged' WHERE seq = ";
    if common::on_postgres() {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(&a.database()).await.unwrap();
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{sql}{position}")))
            .execute(&mut connection)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    } else {
        let connection = rusqlite::Connection::open(a.app.db_path()).unwrap();
        assert_eq!(
            connection.execute(&format!("{sql}{position}"), []).unwrap(),
            1
        );
    }
}
