//! Starting the server in-process on port 0, and small request helpers.

use clap::Parser;
use predict_host::config::{Cli, Command, ServeArgs};
use predict_host::server::Server;
use reqwest::{Client, Response};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The runbook's seed basket.
pub fn seed_payload() -> Value {
    json!({
        "BASKET_SIZE": "M", "BASKET_TYPE": "MIXED", "STORE_REGION": "LONDON", "STORE_FORMAT": "LS",
        "SPEND": 125.50, "QUANTITY": 3, "PROD_CODE_20": "FOOD", "PROD_CODE_30": "FRESH"
    })
}

pub struct TestApp {
    pub address: SocketAddr,
    /// Where the gRPC services listen.
    pub grpc_address: SocketAddr,
    pub client: Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Parses `serve` flags as the binary would, on a free loopback port.
pub fn serve_args(extra: &[&str]) -> ServeArgs {
    let mut argv = vec!["predict-host", "serve", "--port", "0", "--grpc-port", "0", "--bind", "127.0.0.1"];
    argv.extend_from_slice(extra);
    match Cli::parse_from(argv).command {
        Command::Serve(args) => args,
        _ => unreachable!("parsed a serve command"),
    }
}

/// Starts a server with `extra` flags; returns once it is listening.
pub async fn spawn_app(extra: &[&str]) -> TestApp {
    let server = Server::bind(serve_args(extra)).await.expect("server binds");
    let address = server.local_addr().unwrap();
    let grpc_address = server.grpc_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let client = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    TestApp { address, grpc_address, client, stop: Some(stop), task: Some(task) }
}

/// Starts a server on the plugin directory `dir` and waits until it is ready.
pub async fn spawn_ready_app(extra: &[&str]) -> TestApp {
    let app = spawn_app(extra).await;
    app.wait_ready().await;
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET answered")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.expect("POST answered")
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST answered")
    }

    /// `POST /predict` of the seed basket; returns status and body.
    pub async fn predict(&self, body: &Value) -> (u16, Value) {
        let response = self.post_json("/predict", body).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    pub async fn wait_ready(&self) {
        let ready = self.wait_until(Duration::from_secs(30), |app| async move {
            app.get("/ready").await.status().is_success()
        });
        assert!(ready.await, "server did not become ready");
    }

    /// Polls `check` every 20 ms until it holds or `timeout` passes.
    pub async fn wait_until<'a, F, Fut>(&'a self, timeout: Duration, check: F) -> bool
    where
        F: Fn(&'a TestApp) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        within(timeout, || check(self)).await.is_some()
    }

    pub async fn info(&self) -> Value {
        self.get("/model/info").await.json().await.expect("info is JSON")
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server exits cleanly");
        }
    }
}

/// Writes the bundled plugin (and its metrics) into `dir` as `price-sensitivity-<version>`.
pub fn install_price_sensitivity(dir: &Path, version: &str) {
    std::fs::write(
        dir.join(format!("price-sensitivity-{version}.metrics.json")),
        plugin_artifacts::PRICE_SENSITIVITY_METRICS,
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("price-sensitivity-{version}.wasm")),
        plugin_artifacts::PRICE_SENSITIVITY_WASM,
    )
    .unwrap();
}

/// Copies the fixture component at `path` into `dir` as `<name>-1.wasm`.
pub fn install_fixture(dir: &Path, name: &str, path: &str) {
    std::fs::copy(path, dir.join(format!("{name}-1.wasm"))).unwrap();
}

/// Polls `check` every 20 ms until it holds or `timeout` passes; returns the time taken.
pub async fn within<F, Fut>(timeout: Duration, check: F) -> Option<Duration>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < timeout {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
