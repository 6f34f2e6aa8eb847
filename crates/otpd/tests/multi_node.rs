//! Several real otpd processes on one PostgreSQL database: a verification started on one node
//! is checked on another and read on a third; concurrent checks spread over the nodes approve
//! once and count wrong codes exactly; the send limit and the pumping defence hold whichever
//! node receives a send.
//! Skipped (with a message) outside CI when PostgreSQL is not reachable.

mod common;

use std::sync::Arc;

use common::process::{Server, last_code, otpd};
use otpd_store_postgres::testing::TestSchema;
use serde_json::{Value, json};

struct Cluster {
    nodes: Vec<Server>,
    app: Value,
    _schema: TestSchema,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// One application created up front (so no node creates its own on first start), then
    /// `n` nodes sharing the database and the server secret file.
    async fn start(n: usize) -> Option<Cluster> {
        let schema = TestSchema::create().await?;
        let dir = tempfile::tempdir().unwrap();
        let output = otpd(dir.path())
            .args([
                "app",
                "create",
                "--name",
                "cluster",
                // The cluster tests send to one number repeatedly, as Twilio users do.
                "--resend-cooldown",
                "0",
                "--json",
                "--database",
                &schema.url,
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let app: Value = serde_json::from_slice(&output.stdout).unwrap();
        let nodes = (0..n)
            .map(|_| Server::start(dir.path(), &[("OTPD_DATABASE_URL", schema.url.as_str())]))
            .collect();
        Some(Cluster {
            nodes,
            app,
            _schema: schema,
            _dir: dir,
        })
    }

    fn key(&self) -> String {
        self.app["apiKey"].as_str().unwrap().to_string()
    }

    fn base(&self, node: usize) -> &str {
        &self.nodes[node % self.nodes.len()].base
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.drain(..) {
            node.crash();
        }
    }
}

async fn post(client: &reqwest::Client, url: String, key: &str, body: Value) -> (u16, Value) {
    let response = client
        .post(url)
        .header("X-API-KEY", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verification_moves_between_nodes() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let client = reqwest::Client::new();
    let key = cluster.key();
    let to = "+14155552671";
    let (status, otp) = post(
        &client,
        format!("{}/otp", cluster.base(0)),
        &key,
        json!({"phoneNumber": to}),
    )
    .await;
    assert_eq!(status, 201);
    let id = otp["otpId"].as_str().unwrap();
    let code = last_code(&client, cluster.base(0), to).await;
    let (status, body) = post(
        &client,
        format!("{}/otp/{id}", cluster.base(1)),
        &key,
        json!({"pin": code}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"status": "VERIFIED"})));
    let read: Value = client
        .get(format!("{}/otp/{id}", cluster.base(2)))
        .header("X-API-KEY", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["status"], "VERIFIED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_over_three_nodes_approve_once_and_count_exactly() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let bases: Arc<Vec<String>> = Arc::new(cluster.nodes.iter().map(|n| n.base.clone()).collect());
    let client = reqwest::Client::new();
    let key = cluster.key();

    let right = "+14155552672";
    let (_, otp) = post(
        &client,
        format!("{}/otp", cluster.base(0)),
        &key,
        json!({"phoneNumber": right}),
    )
    .await;
    let id = otp["otpId"].as_str().unwrap().to_string();
    let code = last_code(&client, cluster.base(0), right).await;
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (client, bases, key, id, code) = (
                client.clone(),
                bases.clone(),
                key.clone(),
                id.clone(),
                code.clone(),
            );
            tokio::spawn(async move {
                post(
                    &client,
                    format!("{}/otp/{id}", bases[i % 3]),
                    &key,
                    json!({"pin": code}),
                )
                .await
            })
        })
        .collect();
    let mut approved = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => approved += 1,
            _ => assert_eq!(body["error"]["code"], 2023, "{body}"),
        }
    }
    assert_eq!(approved, 1);

    let wrong_to = "+14155552673";
    let (_, otp) = post(
        &client,
        format!("{}/otp", cluster.base(1)),
        &key,
        json!({"phoneNumber": wrong_to, "maxAttempts": 5}),
    )
    .await;
    let id = otp["otpId"].as_str().unwrap().to_string();
    let code = last_code(&client, cluster.base(1), wrong_to).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (client, bases, key, id) = (client.clone(), bases.clone(), key.clone(), id.clone());
            tokio::spawn(async move {
                post(
                    &client,
                    format!("{}/otp/{id}", bases[i % 3]),
                    &key,
                    json!({"pin": wrong}),
                )
                .await
            })
        })
        .collect();
    let mut codes = std::collections::BTreeMap::new();
    for task in tasks {
        let (_, body) = task.await.unwrap();
        *codes
            .entry(body["error"]["code"].as_u64().unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(
        codes,
        [(2026, 95), (2027, 1), (2029, 4)].into_iter().collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_send_limit_holds_across_nodes() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let client = reqwest::Client::new();
    let (sid, token) = (
        cluster.app["accountSid"].as_str().unwrap(),
        cluster.app["authToken"].as_str().unwrap(),
    );
    let service = cluster.app["serviceSid"].as_str().unwrap();
    let mut statuses = Vec::new();
    for node in 0..6 {
        let response = client
            .post(format!(
                "{}/v2/Services/{service}/Verifications",
                cluster.base(node)
            ))
            .basic_auth(sid, Some(token))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("To=%2B14155552674&Channel=sms")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        statuses.push((status, body["code"].as_u64()));
    }
    assert_eq!(statuses[..5], [(201, None); 5]);
    assert_eq!(statuses[5], (429, Some(60203)));
}

/// A TCP forwarder to PostgreSQL that the test can cut and restore, to play a database outage.
struct Outage {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Outage {
    async fn start() -> Outage {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up_flag, registry) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up_flag.load(Ordering::SeqCst) {
                    continue; // closed at once: the database is "down"
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                registry.lock().unwrap().push(task.abort_handle());
            }
        });
        Outage {
            port,
            up,
            connections,
        }
    }

    /// Cuts every open connection and refuses new ones, or lets them through again.
    fn set(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            for connection in self.connections.lock().unwrap().drain(..) {
                connection.abort();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_503_and_recovers_without_loss() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let outage = Outage::start().await;
    let url = schema
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", outage.port));
    let dir = tempfile::tempdir().unwrap();
    let output = otpd(dir.path())
        .args(["app", "create", "--name", "o", "--json", "--database", &url])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let app: Value = serde_json::from_slice(&output.stdout).unwrap();
    let key = app["apiKey"].as_str().unwrap();
    let node = Server::start(
        dir.path(),
        &[
            ("OTPD_DATABASE_URL", url.as_str()),
            ("OTPD_POSTGRES__ACQUIRE_TIMEOUT_MS", "500"),
        ],
    );
    let client = reqwest::Client::new();
    let (status, otp) = post(
        &client,
        format!("{}/otp", node.base),
        key,
        json!({"phoneNumber": "+14155552675"}),
    )
    .await;
    assert_eq!(status, 201);
    let id = otp["otpId"].as_str().unwrap().to_string();

    outage.set(false);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (status, body) = post(
        &client,
        format!("{}/otp", node.base),
        key,
        json!({"phoneNumber": "+14155552676"}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], 1010);
    let ready = client
        .get(format!("{}/readyz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    outage.set(true);
    let mut recovered = false;
    for _ in 0..100 {
        let response = client
            .get(format!("{}/otp/{id}", node.base))
            .header("X-API-KEY", key)
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            let read: Value = response.json().await.unwrap();
            assert_eq!(
                read["status"], "PENDING",
                "the verification committed before the outage is intact"
            );
            recovered = true;
            break;
        }
        assert_eq!(response.status(), 503);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "requests succeed again once the database is back"
    );
    node.crash();
}

/// A delivery written by a node that died before sending it is sent by exactly one of the
/// surviving nodes once its lease has run out, with a code that verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_nodes_delivery_is_sent_once_by_another_node() {
    use otpd_core::{
        CodeHasher, DeliveryJob, DeliveryStore, Dispatch, ManualClock, Recipient, ServerSecret,
        StartRequest, TenantStore, Timestamp, Verifier,
    };
    struct DiesBeforeSending;
    impl Dispatch for DiesBeforeSending {
        fn dispatch(
            &self,
            _job: DeliveryJob,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<otpd_core::FirstTry>> + Send>>
        {
            Box::pin(std::future::ready(None))
        }
    }
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = otpd(dir.path())
        .args([
            "app",
            "create",
            "--name",
            "d",
            "--json",
            "--database",
            &schema.url,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let app: Value = serde_json::from_slice(&output.stdout).unwrap();

    // The "dead node": writes the verification and its queued delivery two minutes ago, then
    // never sends it.
    let secret =
        ServerSecret::from_hex(&std::fs::read_to_string(dir.path().join("otpd.key")).unwrap())
            .unwrap();
    let store = otpd_store_postgres::PgStore::connect(
        &schema.url,
        &Default::default(),
        Arc::new(otpd_core::vault::Vault::new(&secret, &[])),
    )
    .await
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clock = ManualClock::new(Timestamp(now - 120_000));
    let verifier = Verifier::new(
        store.clone(),
        clock,
        CodeHasher::new(secret),
        Arc::new(DiesBeforeSending),
        Default::default(),
    );
    let service_id = uuid::Uuid::try_parse(&app["serviceSid"].as_str().unwrap()[2..]).unwrap();
    let service = store
        .service(otpd_core::ServiceId::from_uuid(service_id))
        .await
        .unwrap()
        .unwrap();
    let to = "+14155552677";
    let request = StartRequest {
        to: Some(Recipient::parse(to, None).unwrap()),
        ..Default::default()
    };
    let started = verifier.start(&service, request).await.unwrap();
    let id = started.verification().id;

    let cluster: Vec<Server> = (0..3)
        .map(|_| Server::start(dir.path(), &[("OTPD_DATABASE_URL", schema.url.as_str())]))
        .collect();
    // Every node takes over stale deliveries as it starts; give them time, then count what
    // each printed, once (`printed` repeats the lines from before "listening").
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let sent: Vec<String> = cluster
        .iter()
        .flat_map(|node| node.printed().into_iter().filter(|line| line.contains(to)))
        .collect();
    assert_eq!(
        sent.len(),
        1,
        "sent exactly once across the nodes: {sent:?}"
    );
    let code = sent[0]
        .trim_end_matches('"')
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let client = reqwest::Client::new();
    let key = app["apiKey"].as_str().unwrap();
    let (status, _) = post(
        &client,
        format!("{}/otp/{id}", cluster[1].base),
        key,
        json!({"pin": code}),
    )
    .await;
    assert_eq!(status, 200, "the resent code verifies");
    let deliveries = store.deliveries(id).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, otpd_core::DeliveryStatus::Sent);
    for node in cluster {
        node.crash();
    }
}

/// A node killed with SIGKILL while it holds a delivery (first try failed, retry pending): one
/// of the surviving nodes takes the delivery over when its lease runs out and the mock
/// provider accepts the message exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_nodes_delivery_is_completed_once_by_another_node() {
    use common::providers::{TwilioMock, twilio_provider};
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let (twilio, twilio_url) = TwilioMock::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let provider: String = twilio_provider("twilio", &twilio_url)
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    std::fs::write(
        dir.path().join("otpd.toml"),
        format!(
            "dev_mode = true\n[delivery]\nfirst_backoff_ms = 2000\nsweep_interval_ms = 200\n\n\
             [routes]\nsms = [\"twilio\"]\n\n[[providers]]\n{provider}"
        ),
    )
    .unwrap();
    let env = [
        ("OTPD_CONFIG", "otpd.toml"),
        ("OTPD_DATABASE_URL", schema.url.as_str()),
    ];
    let output = otpd(dir.path())
        .args(["app", "create", "--name", "kill", "--json"])
        .envs(env)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let app: Value = serde_json::from_slice(&output.stdout).unwrap();
    let key = app["apiKey"].as_str().unwrap();
    let mut nodes: Vec<Server> = (0..3).map(|_| Server::start(dir.path(), &env)).collect();
    let client = reqwest::Client::new();
    let (status, otp) = post(
        &client,
        format!("{}/otp", nodes[0].base),
        key,
        json!({"phoneNumber": "+14155552679"}),
    )
    .await;
    assert_eq!(status, 201, "{otp}");
    assert_eq!(otp["deliveries"][0]["status"], "queued", "{otp}");
    let id = otp["otpId"].as_str().unwrap().to_string();
    nodes.remove(0).crash();
    twilio.set_down(false);
    // The dead node's lease: its retry time (≤ 2 s) plus the 5 s margin.
    for _ in 0..600 {
        if twilio.accepted() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(twilio.accepted(), 1, "another node took the delivery over");
    let sent = twilio.requests().last().cloned().unwrap();
    let code = TwilioMock::field(&sent, "Body")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let (status, body) = post(
        &client,
        format!("{}/otp/{id}", nodes[1].base),
        key,
        json!({"pin": code}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        twilio.accepted(),
        1,
        "exactly once across the surviving nodes"
    );
    for node in nodes {
        node.crash();
    }
}

/// The per-destination rate limit is one counter in PostgreSQL: the sixth start to one number
/// inside the window is refused whichever node receives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_destination_rate_limit_holds_across_nodes() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let client = reqwest::Client::new();
    let key = cluster.key();
    let mut answers = Vec::new();
    for node in 0..6 {
        let (status, body) = post(
            &client,
            format!("{}/otp", cluster.base(node)),
            &key,
            json!({"phoneNumber": "+14155552677"}),
        )
        .await;
        answers.push((status, body["error"]["code"].as_u64()));
    }
    assert_eq!(answers[..5], [(201, None); 5]);
    assert_eq!(answers[5], (429, Some(1014)));
}

/// The pumping defence decides the same on every node: an unconverted run to one prefix,
/// spread over three nodes, is stopped at the 20th start and quarantined once (one event);
/// a network sweeping prefixes is stopped at its sixth, whichever node it reaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pumping_defence_decides_the_same_on_every_node() {
    let Some(cluster) = Cluster::start(3).await else {
        return;
    };
    let client = reqwest::Client::new();
    let key = cluster.key();
    let mut answers = Vec::new();
    for n in 0..26 {
        let (status, body) = post(
            &client,
            format!("{}/otp", cluster.base(n)),
            &key,
            json!({"phoneNumber": format!("+4474001234{n:02}")}),
        )
        .await;
        answers.push((status, body["error"]["code"].as_u64()));
    }
    assert_eq!(answers[..20], [(201, None); 20]);
    assert_eq!(answers[20..], [(403, Some(1020)); 6]);
    let mut swept = Vec::new();
    for d in 0..7 {
        let (status, _) = post(
            &client,
            format!("{}/otp", cluster.base(d)),
            &key,
            json!({
                "phoneNumber": format!("+4475{d}0123456"),
                "deviceIp": format!("2a0e:1234:5678:9abc::{d}"),
            }),
        )
        .await;
        swept.push(status);
    }
    assert_eq!(swept, [201, 201, 201, 201, 201, 403, 403]);
    let events: Value = client
        .get(format!(
            "{}/admin/v1/events?type=prefix.quarantined",
            cluster.base(1)
        ))
        .basic_auth(
            cluster.app["accountSid"].as_str().unwrap(),
            cluster.app["authToken"].as_str(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held: Vec<(&str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["data"]["prefix"].as_str().unwrap(),
                e["data"]["rule"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        held,
        [
            ("+44740", "approval_rate"),
            ("2a0e:1234:5678:9abc::/64", "source_spread")
        ],
        "each quarantine decided once"
    );
}

/// GET /v2/Services with HTTP Basic credentials: the status.
async fn services_status(client: &reqwest::Client, base: &str, user: &str, password: &str) -> u16 {
    client
        .get(format!("{base}/v2/Services"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_or_a_token_rotated_on_one_node_is_refused_at_once_on_another() {
    let Some(cluster) = Cluster::start(2).await else {
        return;
    };
    let client = reqwest::Client::new();
    let account = cluster.app["accountSid"].as_str().unwrap().to_string();
    let token = cluster.app["authToken"].as_str().unwrap().to_string();
    let output = otpd(cluster._dir.path())
        .args(["apikey", "create", "--account", &account, "--json"])
        .args(["--database", &cluster._schema.url])
        .output()
        .unwrap();
    assert!(output.status.success());
    let key: Value = serde_json::from_slice(&output.stdout).unwrap();
    let (sid, secret) = (
        key["sid"].as_str().unwrap(),
        key["secret"].as_str().unwrap(),
    );
    // Node 1 has just accepted both credentials (a cache would keep them for a while).
    assert_eq!(
        services_status(&client, cluster.base(1), sid, secret).await,
        200
    );
    assert_eq!(
        services_status(&client, cluster.base(1), &account, &token).await,
        200
    );

    let revoked = client
        .delete(format!("{}/admin/v1/keys/{sid}", cluster.base(0)))
        .basic_auth(&account, Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(
        services_status(&client, cluster.base(1), sid, secret).await,
        401
    );

    let rotated: Value = client
        .post(format!("{}/admin/v1/account/token", cluster.base(0)))
        .basic_auth(&account, Some(&token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_token = rotated["authToken"].as_str().unwrap();
    assert_eq!(
        services_status(&client, cluster.base(1), &account, &token).await,
        401
    );
    assert_eq!(
        services_status(&client, cluster.base(1), &account, new_token).await,
        200
    );
}
