//! A real Kubernetes control plane for tests: etcd and kube-apiserver on loopback, with a static
//! admin token, RBAC, a service-account key, an audit policy and an audit log. Killed on drop.
//!
//! kube-apiserver is built from the published `k8s.io/kubernetes` module by
//! `scripts/install-tools.sh kube-apiserver` (see `scripts/build-kube.sh`); etcd is Debian's
//! `etcd-server` (installed by `scripts/install-tools.sh etcd` when missing). `HELIOS_KUBE_APISERVER_BIN`
//! and `HELIOS_ETCD_BIN` point at other builds.
//!
//! There is no kubelet, scheduler or controller manager: objects are stored and admitted, nothing
//! runs. The `ServiceAccount` admission plugin is off, since no controller creates the `default`
//! service accounts it would require of every Pod.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::opa::free_port;
use crate::tools::tool;

/// How long the API server may take to become ready (it migrates storage and bootstraps RBAC on
/// a first start; a busy 2-core machine takes tens of seconds).
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// The bearer token of the test's cluster administrator (group `system:masters`).
pub const ADMIN_TOKEN: &str = "helios-test-admin-token";

/// The `kube-apiserver` binary (`$HELIOS_KUBE_APISERVER_BIN`, or built on first use).
pub fn kube_apiserver_binary() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| tool("kube-apiserver", "HELIOS_KUBE_APISERVER_BIN"))
        .clone()
}

/// The `etcd` binary: `$HELIOS_ETCD_BIN`, else `etcd` on `PATH`, else installed by
/// `scripts/install-tools.sh etcd`.
pub fn etcd_binary() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if std::env::var_os("HELIOS_ETCD_BIN").is_none()
                && let Some(found) = on_path("etcd")
            {
                return Ok(found);
            }
            tool("etcd", "HELIOS_ETCD_BIN")
        })
        .clone()
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A running etcd + kube-apiserver; both are killed when dropped.
#[derive(Debug)]
pub struct ControlPlane {
    etcd: Child,
    apiserver: Mutex<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver on free loopback ports and waits until the API server
    /// serves TLS; poll `GET /readyz` with [`ADMIN_TOKEN`] before relying on it.
    pub fn start() -> Result<Self, String> {
        let apiserver_bin = kube_apiserver_binary()?;
        let etcd_bin = etcd_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("helios-kube-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let path = |name: &str| dir.path().join(name);
        let write = |name: &str, text: &str| {
            std::fs::write(path(name), text).map_err(|e| format!("{name}: {e}"))
        };
        write(
            "tokens.csv",
            &format!("{ADMIN_TOKEN},helios-admin,1,\"system:masters\"\n"),
        )?;
        // Metadata level records the webhooks' audit annotations, without request bodies.
        write(
            "audit-policy.yaml",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [\"RequestReceived\"]\nrules:\n  - level: Metadata\n",
        )?;
        let sa_key = rcgen::KeyPair::generate().map_err(|e| format!("service-account key: {e}"))?;
        write("sa.key", &sa_key.serialize_pem())?;
        write("sa.pub", &sa_key.public_key_pem())?;

        let log =
            |name: &str| std::fs::File::create(path(name)).map_err(|e| format!("{name}: {e}"));
        let etcd_client = free_port()?;
        let etcd_peer = free_port()?;
        let mut etcd = Command::new(&etcd_bin)
            .arg("--data-dir")
            .arg(path("etcd"))
            .arg(format!(
                "--listen-client-urls=http://127.0.0.1:{etcd_client}"
            ))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{etcd_client}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"
            ))
            .arg(format!(
                "--initial-cluster=default=http://127.0.0.1:{etcd_peer}"
            ))
            .arg("--log-level=error")
            .stdin(Stdio::null())
            .stdout(log("etcd.log")?)
            .stderr(log("etcd.err")?)
            .spawn()
            .map_err(|e| format!("{}: {e}", etcd_bin.display()))?;
        if let Err(e) = wait_port(&mut etcd, etcd_client, &path("etcd.err")) {
            let _ = etcd.kill();
            return Err(format!("etcd did not start: {e}"));
        }

        let port = free_port()?;
        let mut args = vec![
            format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
            "--bind-address=127.0.0.1".to_string(),
            "--advertise-address=127.0.0.1".to_string(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", path("certs").display()),
            format!("--token-auth-file={}", path("tokens.csv").display()),
            "--authorization-mode=RBAC".to_string(),
            "--service-account-issuer=https://kubernetes.default.svc".to_string(),
            format!("--service-account-key-file={}", path("sa.pub").display()),
            format!(
                "--service-account-signing-key-file={}",
                path("sa.key").display()
            ),
            "--service-cluster-ip-range=10.96.0.0/16".to_string(),
            // The `kubernetes` Service's endpoints may not be a loopback address; nothing here
            // needs that Service.
            "--endpoint-reconciler-type=none".to_string(),
            "--disable-admission-plugins=ServiceAccount".to_string(),
            format!(
                "--audit-policy-file={}",
                path("audit-policy.yaml").display()
            ),
            format!("--audit-log-path={}", path("audit.log").display()),
            // Batching would delay events past what a test waits for.
            "--audit-log-mode=blocking".to_string(),
        ];
        args.push("--v=0".to_string());
        let apiserver = Command::new(&apiserver_bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log("apiserver.log")?)
            .stderr(log("apiserver.err")?)
            .spawn();
        let apiserver = match apiserver {
            Ok(child) => child,
            Err(e) => {
                let _ = etcd.kill();
                return Err(format!("{}: {e}", apiserver_bin.display()));
            }
        };
        let plane = ControlPlane {
            etcd,
            apiserver: Mutex::new(apiserver),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        plane.wait_ready()?;
        Ok(plane)
    }

    /// The API server's base URL, `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The PEM certificates the API server serves (its self-signed CA and serving certificate,
    /// from `--cert-dir`): a client's trust root.
    pub fn ca_pem(&self) -> Result<Vec<u8>, String> {
        let file = self.dir.path().join("certs").join("apiserver.crt");
        std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))
    }

    /// The audit log so far (JSON lines, one event each).
    pub fn audit_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default()
    }

    /// The last lines the API server logged, for failure messages.
    pub fn log(&self) -> String {
        tail(
            &std::fs::read_to_string(self.dir.path().join("apiserver.err")).unwrap_or_default(),
            40,
        )
    }

    /// `Err` with the API server's log when it has exited (e.g. a bad flag, or etcd gone).
    pub fn check_running(&self) -> Result<(), String> {
        let mut child = self.apiserver.lock().unwrap_or_else(|e| e.into_inner());
        match child.try_wait() {
            Ok(Some(status)) => Err(format!("kube-apiserver exited ({status}):\n{}", self.log())),
            _ => Ok(()),
        }
    }

    fn wait_ready(&self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            self.check_running()?;
            if self.readyz() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "kube-apiserver was not ready within {START_TIMEOUT:?}:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Whether the API server is serving: its certificate is written and its port accepts.
    /// Readiness proper (`/readyz`, which needs TLS and the token) is for the caller's HTTP
    /// client to poll ([`ControlPlane::api`] does).
    fn readyz(&self) -> bool {
        self.dir
            .path()
            .join("certs")
            .join("apiserver.crt")
            .is_file()
            && TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let child = self.apiserver.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}

fn wait_port(child: &mut Child, port: u16, log: &Path) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut msg = format!("exited ({status})");
            let _ = write!(
                msg,
                ":\n{}",
                tail(&std::fs::read_to_string(log).unwrap_or_default(), 20)
            );
            return Err(msg);
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("did not listen within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
