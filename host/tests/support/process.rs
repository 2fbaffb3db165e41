//! The real binary as a child process: a host serving on a loopback port, or a one-shot
//! CLI command; and a `moto` server standing in for AWS on loopback.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BINARY: &str = env!("CARGO_BIN_EXE_predict-host");

/// A `predict-host serve` child process. Killed on drop.
pub struct HostProcess {
    child: Child,
    pub base: String,
    /// `host:port` of the gRPC services.
    pub grpc: String,
    pub client: reqwest::Client,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl HostProcess {
    /// Starts `predict-host serve` with `env` and returns once it listens.
    pub fn start(env: &HashMap<String, String>) -> Self {
        let mut child = Command::new(BINARY)
            .arg("serve")
            .env_clear()
            .envs(env)
            .env("PORT", "0")
            .env("GRPC_PORT", "0")
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("LOG_FORMAT", "json")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start predict-host");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (address, grpc) = loop {
            let line = lines.next().expect("predict-host exited before listening").unwrap();
            logs.lock().unwrap().push(line.clone());
            let entry: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if entry["message"] == "listening" {
                let address = |key: &str| entry[key].as_str().unwrap().to_string();
                break (address("address"), address("grpc"));
            }
        };
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            lines.map_while(Result::ok).for_each(|line| sink.lock().unwrap().push(line))
        });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { child, base: format!("http://{address}"), grpc, client, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("GET answered");
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    pub async fn is_ready(&self) -> bool {
        self.client.get(self.url("/ready")).send().await.is_ok_and(|r| r.status() == 200)
    }

    /// Waits until `/ready` answers 200; panics with the host's log after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Duration {
        let started = Instant::now();
        while !self.is_ready().await {
            assert!(
                started.elapsed() < timeout,
                "host not ready after {timeout:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        started.elapsed()
    }

    pub async fn serving_version(&self) -> String {
        self.get_json("/model/info").await.1["model_version"].as_str().unwrap_or("").to_string()
    }

    /// Resident set size of the process in KiB (`VmRSS` in `/proc/<pid>/status`).
    #[allow(dead_code)] // used by the soak tests, which share this module
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn send_sigterm(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits (blocking) for the process to exit.
    pub fn wait_exit(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.send_sigterm();
        self.wait_exit()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `predict-host <args>` to completion with `env`.
pub fn run_cli(args: &[&str], env: &HashMap<String, String>) -> Output {
    Command::new(BINARY).args(args).env_clear().envs(env).output().expect("run predict-host")
}

/// Like [`run_cli`], but the command must succeed; returns its stdout.
pub fn cli_ok(args: &[&str], env: &HashMap<String, String>) -> String {
    let output = run_cli(args, env);
    assert!(
        output.status.success(),
        "predict-host {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A `moto` server (S3 and SageMaker over the real AWS wire protocol) on a loopback
/// port. Killed on drop; can be stopped and started again on the same port.
pub struct Moto {
    port: u16,
    child: Option<Child>,
}

impl Moto {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut moto = Self { port, child: None };
        moto.restart();
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts moto (again) on its port, with empty state, and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] (scripts/test.sh installs it)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Environment that points the AWS SDK (in the binary) at this server.
    pub fn aws_env(&self) -> HashMap<String, String> {
        let endpoint = self.endpoint();
        let pairs = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("S3_FORCE_PATH_STYLE", "true"),
            ("AWS_OPERATION_TIMEOUT_SECS", "5"),
        ];
        let mut env = env_of(&pairs);
        if let Ok(path) = std::env::var("PATH") {
            env.insert("PATH".into(), path);
        }
        env
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub fn write_file(dir: &Path, name: &str, text: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Runs a Python tool that `scripts/test.sh` installs; panics with its output on failure.
pub fn run_tool(program: &str, args: &[&str]) -> String {
    // In a scratch directory: schemathesis keeps a cache where it runs.
    let output = Command::new(program)
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("{program} not found ({e}); scripts/test.sh installs it"));
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

/// An environment for the binary from `(name, value)` pairs.
pub fn env_of(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
