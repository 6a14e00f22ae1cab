//! A real OPA server for tests: found or built, started on loopback with a bundle, killed on drop.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server may take to become healthy (generous: CI machines are small and busy).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root (where `scripts/` and `.tools/` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// Finds the `opa` binary: `$HELIOS_OPA_BIN`, else `.tools/bin/opa`, else builds it there with
/// `scripts/install-tools.sh opa` (once per process; the script itself skips a present build).
pub fn opa_binary() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND.get_or_init(find_or_build).clone()
}

fn find_or_build() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("HELIOS_OPA_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("HELIOS_OPA_BIN={} is not a file", bin.display()))
        };
    }
    let root = workspace_root();
    // The same folder the script installs into (it honours HELIOS_TOOLS_BIN too).
    let tools = std::env::var_os("HELIOS_TOOLS_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".tools").join("bin"));
    let bin = tools.join("opa");
    let script = root.join("scripts").join("install-tools.sh");
    if !bin.is_file() {
        eprintln!(
            "helios-testkit: no opa at {}, building it with {}",
            bin.display(),
            script.display()
        );
    }
    // The script is idempotent and cheap when the pinned version is present; running it also
    // rebuilds after a version bump.
    let status = Command::new("bash")
        .arg(&script)
        .arg("opa")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !status.success() || !bin.is_file() {
        return Err(format!(
            "{} opa failed ({status}); install Go, or set HELIOS_OPA_BIN to an installed opa",
            script.display()
        ));
    }
    Ok(bin)
}

/// A free TCP port on 127.0.0.1 (nothing listens on it once this returns).
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Why a server did not start.
#[derive(Debug, Clone)]
pub enum StartError {
    /// No `opa` binary could be found or built.
    Binary(String),
    /// Writing the bundle or spawning the process failed.
    Setup(String),
    /// OPA exited before becoming healthy (e.g. a policy that does not compile); its log.
    Exited(String),
    /// OPA did not become healthy in time; its log.
    Timeout(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Binary(m) => write!(f, "no opa binary: {m}"),
            StartError::Setup(m) => write!(f, "cannot start opa: {m}"),
            StartError::Exited(log) => write!(f, "opa exited before it was healthy:\n{log}"),
            StartError::Timeout(log) => {
                write!(f, "opa was not healthy within {START_TIMEOUT:?}:\n{log}")
            }
        }
    }
}

impl std::error::Error for StartError {}

/// Configures an [`OpaServer`]. Policies and data become one bundle directory, loaded with
/// `--bundle`, so a revision set here is what OPA reports as the bundle's revision.
#[derive(Debug, Clone, Default)]
pub struct OpaServerBuilder {
    policies: Vec<(String, String)>,
    data: Option<Value>,
    revision: Option<String>,
    rego_v0: bool,
    tls: Option<(PathBuf, PathBuf)>,
    client_ca: Option<PathBuf>,
    token: Option<String>,
    decision_logs: bool,
    args: Vec<String>,
}

impl OpaServerBuilder {
    /// Adds a module from source, written into the bundle under `name` (e.g. `helios.rego`).
    pub fn policy(mut self, name: impl Into<String>, source: impl Into<String>) -> Self {
        self.policies.push((name.into(), source.into()));
        self
    }

    /// Adds a `.rego` file, read now.
    pub fn policy_file(self, path: impl AsRef<Path>) -> Result<Self, String> {
        let path = path.as_ref();
        let source =
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "policy.rego".into());
        Ok(self.policy(name, source))
    }

    /// The data document (an object), written as the bundle's root `data.json`.
    pub fn data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The bundle revision OPA reports in the Data API's provenance.
    pub fn revision(mut self, revision: impl Into<String>) -> Self {
        self.revision = Some(revision.into());
        self
    }

    /// Run with `--v0-compatible` (Rego v0 syntax).
    pub fn rego_v0(mut self, v0: bool) -> Self {
        self.rego_v0 = v0;
        self
    }

    /// Serve HTTPS with this certificate (chain) and key, both PEM files.
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some((cert.into(), key.into()));
        self
    }

    /// Require client certificates signed by this CA (`--authentication=tls`); needs [`Self::tls`].
    pub fn client_ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(ca.into());
        self
    }

    /// Require `Authorization: Bearer <token>`: `--authentication=token --authorization=basic`
    /// and a `system.authz` policy that allows exactly this token.
    pub fn require_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Log decisions to the console, which makes OPA return a `decision_id`.
    pub fn decision_logs(mut self, on: bool) -> Self {
        self.decision_logs = on;
        self
    }

    /// Any other `opa run` argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Writes the bundle, starts OPA on free loopback ports and waits for its `/health`.
    pub fn start(self) -> Result<OpaServer, StartError> {
        let bin = opa_binary().map_err(StartError::Binary)?;
        let dir = tempfile::Builder::new()
            .prefix("helios-opa-")
            .tempdir()
            .map_err(|e| StartError::Setup(format!("temp dir: {e}")))?;
        let bundle = dir.path().join("bundle");
        self.write_bundle(&bundle).map_err(StartError::Setup)?;

        // A free port can be taken by someone else before OPA binds it: retry then.
        let mut last = StartError::Setup("not started".into());
        for _ in 0..3 {
            let (mut child, addr, diag) = self.spawn(&bin, &bundle, dir.path())?;
            // With TLS or token authentication the diagnostic listener is guarded too: then any
            // HTTP answer (Go's 400 to plain HTTP on a TLS port, a 401) proves OPA is serving,
            // and OPA serves only once the bundle is loaded.
            let guarded = self.tls.is_some() || self.token.is_some();
            match wait_healthy(&mut child, diag, guarded, &dir.path().join("opa.log")) {
                Ok(()) => {
                    return Ok(OpaServer {
                        child,
                        addr,
                        tls: self.tls.is_some(),
                        dir,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    match e {
                        StartError::Exited(log) if log.contains("address already in use") => {
                            last = StartError::Exited(log);
                        }
                        other => return Err(other),
                    }
                }
            }
        }
        Err(last)
    }

    fn write_bundle(&self, bundle: &Path) -> Result<(), String> {
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
        };
        std::fs::create_dir_all(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
        for (i, (name, source)) in self.policies.iter().enumerate() {
            // One folder per module keeps its own file name (shown in OPA's messages) unique.
            let sub = bundle.join(format!("m{i:02}"));
            std::fs::create_dir_all(&sub).map_err(|e| format!("{}: {e}", sub.display()))?;
            write(&sub.join(name), source)?;
        }
        if let Some(token) = &self.token {
            let authz = format!(
                "package system.authz\n\ndefault allow := false\n\nallow if input.identity == {}\n",
                Value::String(token.clone())
            );
            write(&bundle.join("authz.rego"), &authz)?;
        }
        if let Some(data) = &self.data {
            write(&bundle.join("data.json"), &data.to_string())?;
        }
        if let Some(revision) = &self.revision {
            let manifest = serde_json::json!({"revision": revision, "roots": [""]});
            write(&bundle.join(".manifest"), &manifest.to_string())?;
        }
        Ok(())
    }

    fn spawn(
        &self,
        bin: &Path,
        bundle: &Path,
        dir: &Path,
    ) -> Result<(Child, SocketAddr, SocketAddr), StartError> {
        let port = |_| free_port().map_err(StartError::Setup);
        let addr = SocketAddr::from(([127, 0, 0, 1], port(())?));
        let diag = SocketAddr::from(([127, 0, 0, 1], port(())?));
        let log_path = dir.join("opa.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| StartError::Setup(format!("{}: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::Setup(format!("{}: {e}", log_path.display())))?;

        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg("--server")
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--diagnostic-addr")
            .arg(diag.to_string())
            .arg("--shutdown-grace-period=0")
            .arg("--log-level=error");
        if self.rego_v0 {
            cmd.arg("--v0-compatible");
        }
        if let Some((cert, key)) = &self.tls {
            cmd.arg("--tls-cert-file").arg(cert);
            cmd.arg("--tls-private-key-file").arg(key);
        }
        if let Some(ca) = &self.client_ca {
            cmd.arg("--tls-ca-cert-file")
                .arg(ca)
                .arg("--authentication=tls");
        }
        if self.token.is_some() {
            cmd.arg("--authentication=token")
                .arg("--authorization=basic");
        }
        if self.decision_logs {
            cmd.arg("--set=decision_logs.console=true");
        }
        cmd.args(&self.args)
            .arg("--bundle")
            .arg(bundle)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = cmd
            .spawn()
            .map_err(|e| StartError::Setup(format!("{}: {e}", bin.display())))?;
        Ok((child, addr, diag))
    }
}

/// A running OPA server; killed when dropped.
#[derive(Debug)]
pub struct OpaServer {
    child: Child,
    addr: SocketAddr,
    tls: bool,
    dir: tempfile::TempDir,
}

impl OpaServer {
    /// A builder; see [`OpaServerBuilder`].
    pub fn builder() -> OpaServerBuilder {
        OpaServerBuilder::default()
    }

    /// The base URL of the API, `http(s)://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What OPA has logged so far (errors only, plus decisions when decision logs are on).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("opa.log")).unwrap_or_default()
    }
}

impl Drop for OpaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_healthy(
    child: &mut Child,
    diag: SocketAddr,
    guarded: bool,
    log: &Path,
) -> Result<(), StartError> {
    let read_log = || tail(&std::fs::read_to_string(log).unwrap_or_default(), 40);
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartError::Exited(format!("{status}\n{}", read_log())));
        }
        if health(diag, guarded) {
            return Ok(());
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(StartError::Timeout(read_log()));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The last `n` lines of a log.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `GET /health` over plain HTTP on the diagnostic listener: `200`, or when `guarded` any HTTP
/// status line.
fn health(addr: SocketAddr, guarded: bool) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok()
        && (head.starts_with(b"HTTP/1.1 200") || (guarded && head.starts_with(b"HTTP/1.")))
}
