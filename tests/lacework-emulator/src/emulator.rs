//! The [`Emulator`] handle and its [`EmulatorBuilder`]: loading the data, serving the routes,
//! and reaching into the state from Rust tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::auth;
use crate::faults::{Endpoint, Fault};
use crate::fixtures::{load_dir, project_fixtures_dir, shared_fixtures_dir};
use crate::state::{Config, Inner, Shared, lock};

/// Configures and starts an [`Emulator`].
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    config: Config,
    data_dirs: Vec<PathBuf>,
    default_data: bool,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        EmulatorBuilder {
            config: Config::default(),
            data_dirs: Vec::new(),
            default_data: true,
        }
    }
}

impl EmulatorBuilder {
    /// Defaults: [`crate::DEFAULT_KEY_ID`] / [`crate::DEFAULT_SECRET`], pages of 5000, scans of 200 ms, 480
    /// requests per hour, the project fixtures and (when present) the shared ones.
    pub fn new() -> Self {
        Self::default()
    }

    /// The accepted credentials.
    pub fn credentials(mut self, key_id: &str, secret: &str) -> Self {
        self.config.key_id = key_id.into();
        self.config.secret = secret.into();
        self
    }

    /// Rows per page.
    pub fn page_size(mut self, n: usize) -> Self {
        self.config.page_size = n.max(1);
        self
    }

    /// How long on-demand scans run.
    pub fn scan_duration(mut self, d: Duration) -> Self {
        self.config.scan_duration_ms = d.as_millis() as u64;
        self
    }

    /// Caps token lifetimes (to test expiry quickly).
    pub fn token_ttl_cap(mut self, d: Duration) -> Self {
        self.config.token_ttl_cap_secs = Some(d.as_secs_f64());
        self
    }

    /// Requests per hour before 429.
    pub fn rate_limit(mut self, n: u32) -> Self {
        self.config.rate_limit = n;
        self
    }

    /// Registries on-demand scans accept (any by default).
    pub fn registries(mut self, registries: &[&str]) -> Self {
        self.config.registries = registries.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Also serve the search responses in `dir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dirs.push(dir.into());
        self
    }

    /// Do not load the project and shared fixtures.
    pub fn without_default_data(mut self) -> Self {
        self.default_data = false;
        self
    }

    /// Starts on `127.0.0.1` with an ephemeral port.
    pub async fn start(self) -> std::io::Result<Emulator> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr`.
    pub async fn start_on(self, addr: SocketAddr) -> std::io::Result<Emulator> {
        let mut dirs = Vec::new();
        if self.default_data {
            dirs.push(project_fixtures_dir());
            let shared = shared_fixtures_dir();
            if shared.is_dir() {
                dirs.push(shared);
            }
        }
        dirs.extend(self.data_dirs);
        let (mut rows, mut summaries) = (Vec::new(), Vec::new());
        for dir in &dirs {
            let (r, s) = load_dir(dir)?;
            rows.extend(r);
            summaries.extend(s);
        }
        let shared: Shared = Arc::new(Mutex::new(Inner::new(self.config, rows, summaries)));
        let app = crate::router(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Emulator {
            addr,
            shared,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running emulator; stops when dropped.
pub struct Emulator {
    addr: SocketAddr,
    shared: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// A builder.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::new()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The accepted key id.
    pub fn key_id(&self) -> String {
        lock(&self.shared).config.key_id.clone()
    }

    /// The accepted secret.
    pub fn secret(&self) -> String {
        lock(&self.shared).config.secret.clone()
    }

    /// Calls received by `endpoint` (faulted ones included).
    pub fn count(&self, endpoint: Endpoint) -> u64 {
        lock(&self.shared)
            .counters
            .get(endpoint.name())
            .copied()
            .unwrap_or(0)
    }

    /// All counters by endpoint name.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        lock(&self.shared).counters.clone()
    }

    /// Every token issued so far (for tests that check a token never leaks).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared).tokens.keys().cloned().collect()
    }

    /// The `Account-Name` (sub-account) header of every API request, in order.
    pub fn account_names(&self) -> Vec<String> {
        lock(&self.shared).account_names.clone()
    }

    /// Forgets every on-demand scan request (its status then answers 404).
    pub fn forget_scans(&self) {
        lock(&self.shared).scans.clear();
    }

    /// Zeroes the counters and the rate-limit window and drops pending faults.
    pub fn reset(&self) {
        lock(&self.shared).reset();
    }

    /// Queues a fault.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared).faults.push(fault);
    }

    /// Expires every issued token now (the next call with one gets 401).
    pub fn expire_tokens(&self) {
        auth::expire_tokens(&mut lock(&self.shared));
    }

    /// Adds search rows (their `startTime` is kept, or set to now when absent).
    pub fn add_rows(&self, rows: Vec<Value>) {
        lock(&self.shared).add_rows(rows);
    }

    /// Adds image summaries (`lastScanTime` defaults to now), e.g. an image Lacework scanned and
    /// found clean, which has no rows.
    pub fn add_summaries(&self, summaries: Vec<Value>) {
        lock(&self.shared).add_summaries(summaries);
    }

    /// Changes the run-time configuration.
    pub fn configure(&self, f: impl FnOnce(&mut Config)) {
        f(&mut lock(&self.shared).config);
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
