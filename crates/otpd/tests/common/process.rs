//! Real `otpd` processes for tests: start `otpd serve` on a random port, read what it
//! prints, crash it, and talk to its dev inbox.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub fn otpd(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_otpd"));
    command
        .current_dir(dir)
        .env_remove("OTPD_CONFIG")
        .env_remove("OTPD_LOG");
    command
}

pub struct Server {
    pub child: Child,
    pub base: String,
    stdout: mpsc::Receiver<String>,
    before_listening: Vec<String>,
    /// Everything written to stderr so far, read by a thread as it comes.
    log: std::sync::Arc<std::sync::Mutex<String>>,
    log_reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `otpd serve` on a random port in `dir` and waits until it listens.
    pub fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let mut command = otpd(dir);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("otpd starts");
        let (sender, stdout) = mpsc::channel();
        let pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let log_reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(read) = stderr.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            stdout,
            before_listening: Vec::new(),
            log,
            log_reader: Some(log_reader),
        };
        loop {
            let line = server
                .stdout
                .recv_timeout(Duration::from_secs(30))
                .expect("otpd prints its address");
            if let Some(base) = line.strip_prefix("otpd listening on ") {
                server.base = base.to_string();
                return server;
            }
            server.before_listening.push(line);
        }
    }

    /// Every stdout line printed so far.
    pub fn printed(&self) -> Vec<String> {
        let mut lines = self.before_listening.clone();
        lines.extend(self.stdout.try_iter());
        lines
    }

    /// Stops the process with SIGTERM (a graceful shutdown, which writes out every buffered
    /// log line) and returns what it logged.
    #[allow(dead_code)]
    pub fn stop(self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "SIGTERM sent");
        self.wait_for_log()
    }

    /// Kills the process without warning (a crash) and returns what it logged (lines the
    /// logging thread had not written yet are lost, as in a real crash).
    pub fn crash(mut self) -> String {
        self.child.kill().unwrap();
        self.wait_for_log()
    }

    /// What the process has written to stderr so far.
    pub fn log_so_far(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `text` (lines are written by a logging thread), up to 10 s.
    pub fn wait_for_log_line(&self, text: &str) {
        for _ in 0..1000 {
            if self.log_so_far().contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to end and returns everything it wrote to stderr.
    fn wait_for_log(mut self) -> String {
        self.child.wait().unwrap();
        if let Some(reader) = self.log_reader.take() {
            let _ = reader.join();
        }
        self.log_so_far()
    }
}

pub fn create_app(dir: &Path, name: &str) -> Value {
    let output = otpd(dir)
        .args(["app", "create", "--name", name, "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

/// The newest message the dev inbox holds for `to` (waiting for the delivery worker).
pub async fn last_message(client: &reqwest::Client, base: &str, to: &str) -> Value {
    for _ in 0..300 {
        let url = format!("{base}/dev/inbox.json?to={}", to.replace('+', "%2B"));
        let messages: Vec<Value> = client.get(url).send().await.unwrap().json().await.unwrap();
        if let Some(message) = messages.into_iter().next() {
            return message;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no message for {to}");
}

pub async fn last_code(client: &reqwest::Client, base: &str, to: &str) -> String {
    let message = last_message(client, base, to).await;
    message["body"]
        .as_str()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
}
