//! `otpd-bench`: starts real otpd processes (one, or several on PostgreSQL), drives them over
//! HTTP with keep-alive connections at a fixed concurrency for a fixed time, and reports per
//! scenario the operation rate, latency percentiles, errors by status, and the server's peak
//! resident memory and CPU time. See docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};

/// The native API's key header.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Load generator for otpd.
#[derive(Parser, Clone)]
struct Args {
    /// start | check | flow | twilio-flow | ceiling | console | console-<page> | all
    /// (console: each console page in turn, as `console-<page>`, after seeding `--seed`
    /// verifications; `console-insights-cold` reads a window no view has read yet)
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Verifications created (not timed) before the console scenarios read the pages.
    #[arg(long, default_value_t = 100_000)]
    seed: usize,
    /// How long each scenario runs, e.g. 20s or 500ms.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The otpd binary (default: `otpd` beside this program).
    #[arg(long)]
    otpd: Option<PathBuf>,
    /// Database for the servers (default: a fresh SQLite file). Use a postgres:// URL for
    /// several nodes.
    #[arg(long)]
    database: Option<String>,
    /// otpd processes to start (more than one needs PostgreSQL); requests go round-robin.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number.parse().map_err(|_| format!("bad duration {text}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("bad duration unit in {text}")),
    }
}

/// The otpd processes under test and the credentials of their application.
struct Servers {
    nodes: Vec<Child>,
    bases: Vec<String>,
    api_key: String,
    account_sid: String,
    auth_token: String,
    service_sid: String,
    binary: PathBuf,
    database: String,
    _dir: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

fn otpd_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.otpd {
        return Ok(path.clone());
    }
    let beside = std::env::current_exe()?.with_file_name("otpd");
    if beside.exists() {
        return Ok(beside);
    }
    bail!(
        "no otpd binary beside this program: build it (cargo build --release -p otpd) or pass --otpd"
    )
}

fn start_servers(args: &Args) -> anyhow::Result<Servers> {
    let binary = otpd_binary(args)?;
    let dir = tempfile::tempdir()?;
    let database = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("otpd.db").display()));
    if args.nodes > 1 && !database.starts_with("postgres") {
        bail!("--nodes above 1 needs --database postgres://…");
    }
    let output = Command::new(&binary)
        .args([
            "app",
            "create",
            "--name",
            "bench",
            "--json",
            // No cooldown between sends to one number (the native default is 30 s): the
            // console scenarios seed five verifications per number at once. The other
            // scenarios send to a fresh number each time and never meet it.
            "--resend-cooldown",
            "0",
            "--database",
            &database,
        ])
        .current_dir(dir.path())
        .output()
        .context("run otpd app create")?;
    if !output.status.success() {
        bail!(
            "otpd app create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let app: Value = serde_json::from_slice(&output.stdout)?;
    let field = |name: &str| {
        app[name]
            .as_str()
            .map(str::to_string)
            .context("app create output")
    };
    let mut nodes = Vec::new();
    let mut bases = Vec::new();
    for n in 0..args.nodes {
        let log = std::fs::File::create(dir.path().join(format!("node{n}.log")))?;
        let mut child = Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("OTPD_DATABASE_URL", &database)
            .env("OTPD_PROVIDER", "null")
            // One load generator on one address sending to sequential numbers is, to the
            // abuse defences, an attacker: the per-client limit and the SMS-pumping defence
            // are off; every other protection (per-destination limit, lockout) stays on.
            .env("OTPD_LIMITS__PER_CLIENT_IP__MAX", "0")
            .env("OTPD_PUMPING__ENABLED", "false")
            .env_remove("OTPD_CONFIG")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("start otpd serve")?;
        bases.push(read_address(&mut child)?);
        nodes.push(child);
    }
    Ok(Servers {
        nodes,
        bases,
        api_key: field("apiKey")?,
        account_sid: field("accountSid")?,
        auth_token: field("authToken")?,
        service_sid: field("serviceSid")?,
        binary,
        database,
        _dir: dir,
    })
}

fn read_address(child: &mut Child) -> anyhow::Result<String> {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().context("otpd stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        if let Some(base) = line?.strip_prefix("otpd listening on ") {
            let base = base.to_string();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Ok(base);
        }
    }
    bail!("otpd exited before listening")
}

/// CPU seconds and peak resident memory of a process, from /proc.
fn process_usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let cpu = (ticks(11) + ticks(12)) / 100.0; // utime + stime, USER_HZ = 100
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_kb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu, peak_kb * 1024)
}

/// What one scenario measured.
struct Outcome {
    name: String,
    ops: u64,
    requests: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    cpu_seconds: f64,
    peak_rss: u64,
}

impl Outcome {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[index] as f64 / 1000.0
    }

    fn json(&self) -> Value {
        json!({
            "scenario": self.name,
            "ops": self.ops,
            "ops_per_second": self.ops as f64 / self.seconds,
            "requests_per_second": self.requests as f64 / self.seconds,
            "latency_ms": {
                "p50": self.percentile(0.50), "p90": self.percentile(0.90),
                "p99": self.percentile(0.99), "p999": self.percentile(0.999),
            },
            "errors": self.errors,
            "server_cpu_seconds": self.cpu_seconds,
            "server_peak_rss_mb": self.peak_rss as f64 / 1_048_576.0,
        })
    }
}

/// One keep-alive HTTP/1.1 connection on hyper's low-level client: no pool, no per-request
/// lookups. The load generator shares the two cores with the server, so every microsecond it
/// spends is one the server does not get (reqwest cost about twice as much per request).
struct Conn {
    authority: HeaderValue,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

/// A request's status and body, or a transport failure.
type Reply = Result<(u16, Bytes), String>;

impl Conn {
    fn new(base: &str) -> Conn {
        let authority = base.trim_start_matches("http://");
        Conn {
            authority: HeaderValue::from_str(authority)
                .expect("a server address is a valid header"),
            sender: None,
        }
    }

    /// Connects on first use and again after the server closed the connection.
    async fn ready(&mut self) -> Result<&mut http1::SendRequest<Full<Bytes>>, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let address = self.authority.to_str().unwrap_or_default().to_string();
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .map_err(|e| format!("transport: {e}"))?;
            stream
                .set_nodelay(true)
                .map_err(|e| format!("transport: {e}"))?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("transport: {e}"))?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().ok_or("transport: no connection")?;
        sender
            .ready()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        Ok(sender)
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, &HeaderValue)],
        body: String,
    ) -> Reply {
        self.send_full(method, path, headers, body)
            .await
            .map(|(status, _, body)| (status, body))
    }

    /// [`Conn::send`] with the answer's headers (the console's cookies).
    async fn send_full(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, &HeaderValue)],
        body: String,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = method;
        *request.uri_mut() = path.parse().map_err(|e| format!("bad path {path}: {e}"))?;
        let map = request.headers_mut();
        map.insert(HOST, self.authority.clone());
        for (name, value) in headers {
            map.insert(name.clone(), (*value).clone());
        }
        let sender = self.ready().await?;
        let response = sender.send_request(request).await.map_err(|e| {
            self.sender = None;
            format!("transport: {e}")
        })?;
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("transport: {e}"))?
            .to_bytes();
        Ok((status, parts.headers, body))
    }
}

/// The body when the status is the expected one, unparsed: most answers are judged by their
/// status alone, and the harness shares the server's two cores (parsing every answer into a
/// JSON tree was a quarter of its CPU time).
fn expect(reply: Reply, status: u16) -> Result<Bytes, String> {
    let (got, body) = reply?;
    if got != status {
        return Err(format!("HTTP {got}"));
    }
    Ok(body)
}

/// The few fields a scenario reads from a body; the rest is skipped, not built.
fn fields<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("unexpected body: {e}"))
}

/// A native start's answer.
#[derive(Deserialize)]
struct Created<'a> {
    #[serde(rename = "otpId", borrow)]
    otp_id: std::borrow::Cow<'a, str>,
}

/// A dev inbox message.
#[derive(Deserialize)]
struct InboxItem<'a> {
    #[serde(borrow)]
    to: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
}

/// A Twilio verification's status.
#[derive(Deserialize)]
struct Status<'a> {
    #[serde(borrow)]
    status: std::borrow::Cow<'a, str>,
}

/// Shared per-run state: the servers, their credentials as header values, counters for
/// distinct numbers.
struct Bench {
    servers: Servers,
    api_key: HeaderValue,
    basic_auth: HeaderValue,
    json: HeaderValue,
    form: HeaderValue,
    next_number: AtomicU64,
    /// The console session cookie, once the console scenarios signed in.
    console_cookie: std::sync::OnceLock<HeaderValue>,
}

/// One operation's result: requests made and, if something went wrong, its label.
type OpResult = (u64, Option<String>);

impl Bench {
    fn base(&self, worker: usize) -> &str {
        &self.servers.bases[worker % self.servers.bases.len()]
    }

    /// A distinct valid French mobile number per call.
    fn number(&self) -> String {
        let n = self.next_number.fetch_add(1, Ordering::Relaxed);
        format!("+336{:08}", 10_000_000 + n % 89_999_999)
    }

    async fn start_native(&self, conn: &mut Conn, to: &str) -> Result<String, String> {
        let headers = [(X_API_KEY, &self.api_key), (CONTENT_TYPE, &self.json)];
        let body = format!("{{\"phoneNumber\":\"{to}\"}}");
        let reply = conn.send(Method::POST, "/otp", &headers, body).await;
        let body = expect(reply, 201)?;
        Ok(fields::<Created>(&body)?.otp_id.into_owned())
    }

    async fn check_native(
        &self,
        conn: &mut Conn,
        id: &str,
        pin: &str,
        status: u16,
    ) -> Result<(), String> {
        let headers = [(X_API_KEY, &self.api_key), (CONTENT_TYPE, &self.json)];
        let body = format!("{{\"pin\":\"{pin}\"}}");
        let reply = conn
            .send(Method::POST, &format!("/otp/{id}"), &headers, body)
            .await;
        expect(reply, status).map(|_| ())
    }

    /// The code sent to `to`, from the dev inbox of the node that sent it.
    async fn code(&self, conn: &mut Conn, to: &str) -> Result<String, String> {
        let path = format!("/dev/inbox.json?to={}", to.replace('+', "%2B"));
        for _ in 0..100 {
            let reply = conn.send(Method::GET, &path, &[], String::new()).await;
            let body = expect(reply, 200)?;
            if let Some(newest) = fields::<Vec<InboxItem>>(&body)?.first() {
                return newest
                    .body
                    .rsplit(' ')
                    .next()
                    .map(str::to_string)
                    .ok_or_else(|| "no code".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Err("code never reached the inbox".into())
    }

    /// A Twilio dialect form POST under this run's service.
    async fn twilio(&self, conn: &mut Conn, resource: &str, body: String) -> Reply {
        let path = format!("/v2/Services/{}/{resource}", self.servers.service_sid);
        let headers = [
            (AUTHORIZATION, &self.basic_auth),
            (CONTENT_TYPE, &self.form),
        ];
        conn.send(Method::POST, &path, &headers, body).await
    }

    async fn op(
        &self,
        conn: &mut Conn,
        scenario: &str,
        pool: &[(String, String)],
        cursor: &AtomicU64,
    ) -> OpResult {
        match scenario {
            "ceiling" => {
                let reply = conn.send(Method::GET, "/healthz", &[], String::new()).await;
                (1, expect(reply, 200).err())
            }
            "start" => (1, self.start_native(conn, &self.number()).await.err()),
            "check" => {
                let i = cursor.fetch_add(1, Ordering::Relaxed) as usize;
                let Some((id, code)) = pool.get(i) else {
                    return (0, Some("check pool exhausted".into()));
                };
                if i.is_multiple_of(2) {
                    let wrong = if code == "000000" { "111111" } else { "000000" };
                    if let Err(e) = self.check_native(conn, id, wrong, 400).await {
                        return (1, Some(e));
                    }
                    (2, self.check_native(conn, id, code, 200).await.err())
                } else {
                    (1, self.check_native(conn, id, code, 200).await.err())
                }
            }
            "flow" => {
                let to = self.number();
                let id = match self.start_native(conn, &to).await {
                    Ok(id) => id,
                    Err(e) => return (1, Some(e)),
                };
                let code = match self.code(conn, &to).await {
                    Ok(code) => code,
                    Err(e) => return (2, Some(e)),
                };
                let wrong = if code == "000000" { "111111" } else { "000000" };
                if let Err(e) = self.check_native(conn, &id, wrong, 400).await {
                    return (3, Some(e));
                }
                (4, self.check_native(conn, &id, &code, 200).await.err())
            }
            "twilio-flow" => {
                let to = self.number();
                let encoded = to.replace('+', "%2B");
                let start = self
                    .twilio(conn, "Verifications", format!("To={encoded}&Channel=sms"))
                    .await;
                if let Err(e) = expect(start, 201) {
                    return (1, Some(e));
                }
                let code = match self.code(conn, &to).await {
                    Ok(code) => code,
                    Err(e) => return (2, Some(e)),
                };
                let wrong = if code == "000000" { "111111" } else { "000000" };
                let check = self
                    .twilio(
                        conn,
                        "VerificationCheck",
                        format!("To={encoded}&Code={wrong}"),
                    )
                    .await;
                match expect(check, 200)
                    .and_then(|body| Ok(fields::<Status>(&body)?.status == "pending"))
                {
                    Ok(true) => {}
                    Ok(_) => return (3, Some("wrong code not pending".into())),
                    Err(e) => return (3, Some(e)),
                }
                let check = self
                    .twilio(
                        conn,
                        "VerificationCheck",
                        format!("To={encoded}&Code={code}"),
                    )
                    .await;
                match expect(check, 200)
                    .and_then(|body| Ok(fields::<Status>(&body)?.status == "approved"))
                {
                    Ok(true) => (4, None),
                    Ok(_) => (4, Some("right code not approved".into())),
                    Err(e) => (4, Some(e)),
                }
            }
            page if page.starts_with("console-") => {
                let Some(cookie) = self.console_cookie.get() else {
                    return (0, Some("not signed in".into()));
                };
                let path = match page {
                    "console-overview" => "/console/".to_string(),
                    "console-verifications" => "/console/verifications".to_string(),
                    "console-number" => {
                        // A number the seeding sent to (the seeds cycle through them).
                        let n = cursor.fetch_add(1, Ordering::Relaxed) % 1000;
                        format!("/console/numbers/%2B336{:08}", 10_000_000 + n)
                    }
                    "console-insights" => "/console/insights?days=1".to_string(),
                    "console-insights-cold" => {
                        // A window no view has read yet (2 to 90 days, each once within
                        // the minute a report is kept): what the first view of one costs.
                        let n = cursor.fetch_add(1, Ordering::Relaxed) % 89;
                        format!("/console/insights?days={}", 2 + n)
                    }
                    "console-fraud" => "/console/fraud".to_string(),
                    "console-services" => "/console/services".to_string(),
                    _ => "/console/keys".to_string(),
                };
                let reply = conn
                    .send(
                        Method::GET,
                        &path,
                        &[(hyper::header::COOKIE, cookie)],
                        String::new(),
                    )
                    .await;
                (1, expect(reply, 200).err())
            }
            other => (0, Some(format!("unknown scenario {other}"))),
        }
    }

    /// Seeds `count` verifications (their numbers cycling through 20,000, so each has a
    /// timeline of several), makes an operator and signs in (not timed).
    async fn console_setup(
        self: &Arc<Self>,
        count: usize,
        concurrency: usize,
    ) -> anyhow::Result<()> {
        if self.console_cookie.get().is_some() {
            return Ok(());
        }
        let made = Arc::new(AtomicU64::new(0));
        let workers: Vec<_> = (0..concurrency)
            .map(|worker| {
                let (bench, made) = (self.clone(), made.clone());
                tokio::spawn(async move {
                    let mut conn = Conn::new(bench.base(worker));
                    let mut refused = (0u64, None);
                    loop {
                        let n = made.fetch_add(1, Ordering::Relaxed);
                        if n as usize >= count {
                            return refused;
                        }
                        // 20,000 numbers, five starts each: the per-destination limit (5 in
                        // 10 minutes) lets all of them through, and the application has no
                        // cooldown between sends (see `start_servers`).
                        let to = format!("+336{:08}", 10_000_000 + n % 20_000);
                        if let Err(error) = bench.start_native(&mut conn, &to).await {
                            refused.0 += 1;
                            refused.1.get_or_insert(error);
                        }
                    }
                })
            })
            .collect();
        let (mut refused, mut first) = (0, None);
        for worker in workers {
            let (n, error) = worker.await?;
            refused += n;
            first = first.or(error);
        }
        if let Some(error) = first {
            bail!("seeding: {refused} of {count} starts failed, the first with {error}");
        }
        let servers = &self.servers;
        let password = "bench-console-password";
        let mut child = Command::new(&servers.binary)
            .args([
                "operator",
                "create",
                "--email",
                "bench@example.com",
                "--role",
                "admin",
                "--password-stdin",
                "--database",
                &servers.database,
            ])
            .current_dir(servers._dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("run otpd operator create")?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().context("operator create stdin")?;
            writeln!(stdin, "{password}")?;
        }
        if !child.wait()?.success() {
            bail!("otpd operator create failed");
        }
        let mut conn = Conn::new(self.base(0));
        let (_, headers, body) = conn
            .send_full(Method::GET, "/console/login", &[], String::new())
            .await
            .map_err(anyhow::Error::msg)?;
        let cookie = |headers: &hyper::HeaderMap| {
            headers
                .get_all(hyper::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split(';').next())
                .map(str::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        let pre = cookie(&headers);
        let html = String::from_utf8_lossy(&body);
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .context("no csrf field on the sign-in page")?
            .to_string();
        let form = format!("csrf={csrf}&email=bench%40example.com&password={password}");
        let pre = HeaderValue::from_str(&pre)?;
        let (status, headers, _) = conn
            .send_full(
                Method::POST,
                "/console/login",
                &[(hyper::header::COOKIE, &pre), (CONTENT_TYPE, &self.form)],
                form,
            )
            .await
            .map_err(anyhow::Error::msg)?;
        if status != 303 {
            bail!("console sign-in answered {status}");
        }
        let session = HeaderValue::from_str(&cookie(&headers))?;
        let _ = self.console_cookie.set(session);
        Ok(())
    }

    /// Verifications with known codes for the `check` scenario (not timed). Created in
    /// batches the dev inbox can hold, then their codes are read from it.
    async fn check_pool(
        self: &Arc<Self>,
        size: usize,
        concurrency: usize,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut pool = Vec::with_capacity(size);
        let nodes = self.servers.bases.len();
        while pool.len() < size {
            let batch = (size - pool.len()).min(400);
            let tasks: Vec<_> = (0..concurrency.min(batch))
                .map(|worker| {
                    let bench = self.clone();
                    let share = (worker..batch).step_by(concurrency).count();
                    tokio::spawn(async move {
                        let mut conn = Conn::new(bench.base(worker));
                        let mut created = Vec::new();
                        for _ in 0..share {
                            let to = bench.number();
                            let id = bench.start_native(&mut conn, &to).await?;
                            created.push((worker % nodes, to, id));
                        }
                        Ok::<_, String>(created)
                    })
                })
                .collect();
            let mut created = Vec::new();
            for task in tasks {
                created.extend(task.await?.map_err(anyhow::Error::msg)?);
            }
            for node in 0..nodes {
                let mut conn = Conn::new(&self.servers.bases[node]);
                let reply = conn
                    .send(Method::GET, "/dev/inbox.json", &[], String::new())
                    .await;
                let body = expect(reply, 200).map_err(anyhow::Error::msg)?;
                let inbox: Vec<InboxItem> = fields(&body).map_err(anyhow::Error::msg)?;
                let codes: BTreeMap<&str, &str> = inbox
                    .iter()
                    .filter_map(|m| Some((m.to.as_ref(), m.body.rsplit(' ').next()?)))
                    .collect();
                for (sent_by, to, id) in &created {
                    if *sent_by == node
                        && let Some(code) = codes.get(to.as_str())
                    {
                        pool.push((id.clone(), code.to_string()));
                    }
                }
            }
        }
        Ok(pool)
    }

    async fn run(self: &Arc<Self>, scenario: &str, args: &Args) -> anyhow::Result<Outcome> {
        let pool = if scenario == "check" {
            // Enough for the whole run at a generous rate; setup is not timed.
            let size = (args.duration.as_secs_f64() * 30_000.0).max(args.concurrency as f64 * 20.0)
                as usize;
            Arc::new(self.check_pool(size, args.concurrency).await?)
        } else {
            Arc::new(Vec::new())
        };
        if scenario.starts_with("console-") {
            self.console_setup(args.seed, args.concurrency).await?;
        }
        let cursor = Arc::new(AtomicU64::new(0));
        let before: Vec<(f64, u64)> = self
            .servers
            .nodes
            .iter()
            .map(|n| process_usage(n.id()))
            .collect();
        let started = Instant::now();
        let deadline = started + args.duration;
        let workers: Vec<_> = (0..args.concurrency)
            .map(|worker| {
                let (bench, pool, cursor, scenario) = (
                    self.clone(),
                    pool.clone(),
                    cursor.clone(),
                    scenario.to_string(),
                );
                tokio::spawn(async move {
                    let mut conn = Conn::new(bench.base(worker));
                    let mut latencies = Vec::new();
                    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                    let (mut ops, mut requests) = (0u64, 0u64);
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let (made, error) = bench.op(&mut conn, &scenario, &pool, &cursor).await;
                        requests += made;
                        match error {
                            None => {
                                ops += 1;
                                latencies
                                    .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            }
                            Some(e) if e == "check pool exhausted" => break,
                            Some(e) => *errors.entry(e).or_insert(0) += 1,
                        }
                    }
                    (ops, requests, latencies, errors)
                })
            })
            .collect();
        let mut outcome = Outcome {
            name: scenario.to_string(),
            ops: 0,
            requests: 0,
            seconds: 0.0,
            latencies_us: Vec::new(),
            errors: BTreeMap::new(),
            cpu_seconds: 0.0,
            peak_rss: 0,
        };
        for worker in workers {
            let (ops, requests, latencies, errors) = worker.await?;
            outcome.ops += ops;
            outcome.requests += requests;
            outcome.latencies_us.extend(latencies);
            for (k, v) in errors {
                *outcome.errors.entry(k).or_insert(0) += v;
            }
        }
        outcome.seconds = started
            .elapsed()
            .as_secs_f64()
            .min(args.duration.as_secs_f64().max(0.001));
        outcome.latencies_us.sort_unstable();
        for (node, (cpu_before, _)) in self.servers.nodes.iter().zip(before) {
            let (cpu, rss) = process_usage(node.id());
            outcome.cpu_seconds += cpu - cpu_before;
            outcome.peak_rss = outcome.peak_rss.max(rss);
        }
        Ok(outcome)
    }
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "{:<22} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7}  errors",
        "scenario",
        "ops/s",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9",
        "cpu s",
        "peak MB",
        "ops"
    );
    for o in outcomes {
        println!(
            "{:<22} {:>10.0} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>9.1} {:>7}  {:?}",
            o.name,
            o.ops as f64 / o.seconds,
            o.requests as f64 / o.seconds,
            o.percentile(0.5),
            o.percentile(0.9),
            o.percentile(0.99),
            o.percentile(0.999),
            o.cpu_seconds,
            o.peak_rss as f64 / 1_048_576.0,
            o.ops,
            o.errors
        );
    }
}

fn ratio(outcomes: &[Outcome], of: &str, to: &str) -> Option<f64> {
    let rate = |name: &str| {
        outcomes
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.requests as f64 / o.seconds)
    };
    Some(rate(of)? / rate(to)?)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let scenarios: Vec<&str> = match args.scenario.as_str() {
        "all" => vec![
            "ceiling",
            "start",
            "check",
            "flow",
            "twilio-flow",
            "console-overview",
            "console-verifications",
            "console-number",
            "console-insights",
            "console-insights-cold",
            "console-fraud",
            "console-services",
            "console-keys",
        ],
        "console" => vec![
            "console-overview",
            "console-verifications",
            "console-number",
            "console-insights",
            "console-insights-cold",
            "console-fraud",
            "console-services",
            "console-keys",
        ],
        one @ ("ceiling" | "start" | "check" | "flow" | "twilio-flow") => vec![one],
        page if page.starts_with("console-") => vec![page],
        other => bail!("unknown scenario {other}"),
    };
    let servers = start_servers(&args)?;
    let header = |value: &str| HeaderValue::from_str(value).context("credentials as a header");
    let basic = BASE64.encode(format!("{}:{}", servers.account_sid, servers.auth_token));
    let bench = Arc::new(Bench {
        api_key: header(&servers.api_key)?,
        basic_auth: header(&format!("Basic {basic}"))?,
        json: HeaderValue::from_static("application/json"),
        form: HeaderValue::from_static("application/x-www-form-urlencoded"),
        servers,
        next_number: AtomicU64::new(0),
        console_cookie: std::sync::OnceLock::new(),
    });
    let mut outcomes = Vec::new();
    for scenario in scenarios {
        outcomes.push(bench.run(scenario, &args).await?);
    }
    print_table(&outcomes);
    let flow_ratio = ratio(&outcomes, "flow", "ceiling");
    if let Some(r) = flow_ratio {
        println!("flow request rate / ceiling request rate = {:.3}", r);
    }
    let report = json!({
        "nodes": args.nodes,
        "database": if args.database.as_deref().is_some_and(|d| d.starts_with("postgres")) { "postgres" } else { "sqlite" },
        "concurrency": args.concurrency,
        "duration_seconds": args.duration.as_secs_f64(),
        "scenarios": outcomes.iter().map(Outcome::json).collect::<Vec<_>>(),
        "flow_to_ceiling_request_ratio": flow_ratio,
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    let failed: u64 = outcomes
        .iter()
        .map(|o| o.ops)
        .filter(|&ops| ops == 0)
        .count() as u64;
    if failed > 0 {
        bail!("{failed} scenario(s) completed no operation");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}
