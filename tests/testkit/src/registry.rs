//! A real OCI registry for tests: the CNCF distribution registry (built from its Go module by
//! `scripts/install-tools.sh registry`) on a free loopback port, anonymous over plain HTTP or
//! over TLS (a fresh rcgen CA) with htpasswd (bcrypt) authentication; and `crane` to push,
//! tag, index and delete images in it. Killed on drop.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::opa::free_port;
use crate::tools::tool;

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `registry` binary (`$HELIOS_REGISTRY_BIN`, or built on first use).
pub fn registry_binary() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| tool("registry", "HELIOS_REGISTRY_BIN"))
        .clone()
}

/// The `crane` binary (`$HELIOS_CRANE_BIN`, or built on first use).
pub fn crane_binary() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| tool("crane", "HELIOS_CRANE_BIN"))
        .clone()
}

/// Configures a [`Registry`].
#[derive(Debug, Clone, Default)]
pub struct RegistryBuilder {
    tls: bool,
    user: Option<(String, String)>,
    bearer: bool,
}

impl RegistryBuilder {
    /// Serve HTTPS with a certificate for `127.0.0.1`/`localhost` signed by a fresh CA
    /// ([`Registry::ca_file`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Require HTTP Basic authentication (htpasswd, bcrypt) as this one user.
    pub fn htpasswd(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some((user.into(), password.into()));
        self
    }

    /// Authenticate with Bearer tokens from a Docker token service (started alongside, plain
    /// HTTP on loopback) instead of htpasswd: with [`Self::htpasswd`] the service requires that
    /// user's Basic credentials, without it it grants tokens anonymously (a public registry).
    pub fn bearer(mut self) -> Self {
        self.bearer = true;
        self
    }

    /// Writes the configuration, starts the registry and waits until it listens.
    pub fn start(self) -> Result<Registry, String> {
        let bin = registry_binary()?;
        crane_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("helios-registry-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let d = dir.path();
        let write = |name: &str, text: &str| -> Result<PathBuf, String> {
            let p = d.join(name);
            std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p)
        };
        let mut tls_yaml = String::new();
        let mut ca_file = None;
        if self.tls {
            let (ca, cert, key) = certificates()?;
            let ca_path = write("ca.pem", &ca)?;
            let cert_path = write("cert.pem", &cert)?;
            let key_path = write("key.pem", &key)?;
            tls_yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert_path.display(),
                key_path.display()
            );
            ca_file = Some(ca_path);
        }
        let mut auth_yaml = String::new();
        let mut token_server = None;
        if self.bearer {
            let jwks = d.join("jwks.json");
            let server = crate::token::TokenServer::start(self.user.clone(), &jwks)?;
            auth_yaml = format!(
                "auth:\n  token:\n    realm: http://localhost:{}/token\n    service: {}\n    issuer: {}\n    jwks: {}\n",
                // A host name: clients (crane, Helios) refuse realms at private IP literals.
                server.addr.port(),
                crate::token::SERVICE,
                crate::token::ISSUER,
                jwks.display()
            );
            token_server = Some(server);
        } else if let Some((user, password)) = &self.user {
            let hash = bcrypt::hash(password, 4).map_err(|e| format!("bcrypt: {e}"))?;
            let path = write("htpasswd", &format!("{user}:{hash}\n"))?;
            auth_yaml = format!(
                "auth:\n  htpasswd:\n    realm: helios-test\n    path: {}\n",
                path.display()
            );
        }
        let docker_config = d.join("docker");
        std::fs::create_dir_all(&docker_config).map_err(|e| format!("docker config: {e}"))?;

        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let storage = d.join("storage");
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n{tls_yaml}{auth_yaml}",
                storage.display()
            );
            let config_path = write("config.yml", &config)?;
            let log_path = d.join("registry.log");
            let log = std::fs::File::create(&log_path).map_err(|e| format!("log: {e}"))?;
            let log_err = log.try_clone().map_err(|e| format!("log: {e}"))?;
            let mut child = Command::new(&bin)
                .arg("serve")
                .arg(&config_path)
                .current_dir(d)
                .env("OTEL_TRACES_EXPORTER", "none")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .map_err(|e| format!("{}: {e}", bin.display()))?;
            let started = Instant::now();
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!(
                        "registry exited ({status}): {}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    let registry = Registry {
                        _token_server: token_server.take(),
                        child,
                        addr,
                        ca_file,
                        user: self.user.clone(),
                        docker_config,
                        dir,
                    };
                    registry.login()?;
                    return Ok(registry);
                }
                if started.elapsed() > START_TIMEOUT {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("registry did not listen in time".into());
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            if !last.contains("address already in use") {
                return Err(last);
            }
        }
        Err(last)
    }
}

/// A CA, and a server certificate for 127.0.0.1 and localhost it signed (PEM: ca, cert, key).
fn certificates() -> Result<(String, String, String), String> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let err = |e: rcgen::Error| format!("rcgen: {e}");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(err)?).map_err(err)?;
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(err)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca).map_err(err)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
}

/// A running registry; killed when dropped.
#[derive(Debug)]
pub struct Registry {
    // Serves tokens for as long as the registry lives (its thread is detached).
    _token_server: Option<crate::token::TokenServer>,
    child: Child,
    addr: SocketAddr,
    ca_file: Option<PathBuf>,
    user: Option<(String, String)>,
    docker_config: PathBuf,
    dir: tempfile::TempDir,
}

impl Registry {
    /// A builder; see [`RegistryBuilder`].
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// An anonymous plain-HTTP registry.
    pub fn anonymous() -> Result<Registry, String> {
        RegistryBuilder::default().start()
    }

    /// `127.0.0.1:<port>`, the registry part of image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The CA that signed the TLS certificate, when serving TLS.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// A `DOCKER_CONFIG` directory whose `config.json` holds this registry's credentials
    /// (written by `crane auth login`); empty for an anonymous registry.
    pub fn docker_config(&self) -> &Path {
        &self.docker_config
    }

    /// A scratch directory that lives as long as the registry.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn login(&self) -> Result<(), String> {
        if let Some((user, password)) = &self.user {
            self.crane(&["auth", "login", &self.host(), "-u", user, "-p", password])?;
        }
        Ok(())
    }

    /// Runs `crane` against this registry (its CA trusted, its credentials in `DOCKER_CONFIG`,
    /// `--insecure` for plain HTTP) and returns its standard output, trimmed.
    pub fn crane(&self, args: &[&str]) -> Result<String, String> {
        let bin = crane_binary()?;
        let mut cmd = Command::new(bin);
        cmd.args(args).env("DOCKER_CONFIG", &self.docker_config);
        if self.ca_file.is_none() && args.first() != Some(&"auth") {
            cmd.arg("--insecure");
        }
        if let Some(ca) = &self.ca_file {
            cmd.env("SSL_CERT_FILE", ca);
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("crane: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "crane {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Pushes a one-layer image whose only file holds `content` to `repo:tag` (optionally for
    /// `platform`, e.g. `linux/arm64`) and returns its manifest digest.
    pub fn push_image(
        &self,
        repo_tag: &str,
        content: &str,
        platform: Option<&str>,
    ) -> Result<String, String> {
        let work = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.dir.path())
            .map_err(|e| format!("temp dir: {e}"))?;
        let file = work.path().join("content.txt");
        std::fs::File::create(&file)
            .and_then(|mut f| f.write_all(content.as_bytes()))
            .map_err(|e| format!("layer file: {e}"))?;
        let tar = work.path().join("layer.tar");
        let status = Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(work.path())
            .arg("content.txt")
            .status()
            .map_err(|e| format!("tar: {e}"))?;
        if !status.success() {
            return Err(format!("tar failed: {status}"));
        }
        let reference = format!("{}/{repo_tag}", self.host());
        let tar_arg = tar.to_string_lossy().into_owned();
        self.crane(&["append", "-f", &tar_arg, "-t", &reference])?;
        if let Some(platform) = platform {
            self.crane(&[
                "mutate",
                &reference,
                "--set-platform",
                platform,
                "-t",
                &reference,
            ])?;
        }
        self.digest(repo_tag)
    }

    /// Pushes an image index of `manifests` (`repo@digest` or `repo:tag`, in this registry) to
    /// `repo_tag`, and returns its digest.
    pub fn push_index(&self, repo_tag: &str, manifests: &[&str]) -> Result<String, String> {
        let reference = format!("{}/{repo_tag}", self.host());
        let refs: Vec<String> = manifests
            .iter()
            .map(|m| format!("{}/{m}", self.host()))
            .collect();
        let mut args = vec!["index", "append", "-t", reference.as_str()];
        for r in &refs {
            args.push("-m");
            args.push(r);
        }
        self.crane(&args)?;
        self.digest(repo_tag)
    }

    /// Points `repo:tag` at `repo@digest` (moves the tag).
    pub fn tag(&self, repo_digest: &str, tag: &str) -> Result<(), String> {
        let reference = format!("{}/{repo_digest}", self.host());
        self.crane(&["tag", &reference, tag]).map(|_| ())
    }

    /// The digest `crane` resolves `repo:tag` to (an independent client's answer).
    pub fn digest(&self, repo_tag: &str) -> Result<String, String> {
        self.crane(&["digest", &format!("{}/{repo_tag}", self.host())])
    }

    /// Deletes the manifest `repo@digest` (and so every tag pointing at it).
    pub fn delete(&self, repo_digest: &str) -> Result<(), String> {
        self.crane(&["delete", &format!("{}/{repo_digest}", self.host())])
            .map(|_| ())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
