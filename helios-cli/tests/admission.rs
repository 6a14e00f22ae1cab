//! `helios review` and `helios webhook` end to end, with the directory scan source.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Writes a self-signed `localhost` certificate as `dir/tls.crt` and `dir/tls.key`, and picks a
/// free loopback port for the webhook to listen on.
fn tls_and_port(dir: &Path) -> Result<u16, Box<dyn std::error::Error>> {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    std::fs::write(dir.join("tls.crt"), key.cert.pem())?;
    std::fs::write(dir.join("tls.key"), key.signing_key.serialize_pem())?;
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn helios(args: &[&str], stdin: Option<&[u8]>) -> std::io::Result<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_helios"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // helios may exit before reading its input (a bad flag is refused first): a broken pipe
        // is then the expected outcome, not a test failure.
        match pipe.write_all(bytes) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
            _ => {}
        }
    }
    child.wait_with_output()
}

const SCANS: &str = "tests/fixtures/admission-scans";

#[test]
fn review_prints_the_response_and_exits_0_allowed_or_not() -> TestResult {
    let out = helios(
        &[
            "review",
            "tests/fixtures/admission/deployment-digest-critical.json",
            "--scan-dir",
            SCANS,
        ],
        None,
    )?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let review: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(review["response"]["status"]["code"], 403);
    assert!(
        review["response"]["status"]["message"]
            .to_string()
            .contains("CVE-2024-0001")
    );

    // From standard input, in warn mode given by the environment.
    let body =
        std::fs::read(root().join("tests/fixtures/admission/deployment-digest-critical.json"))?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_helios"));
    let mut child = cmd
        .args(["review", "-", "--scan-dir", SCANS])
        .env("HELIOS_MODE", "warn")
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(&body)?;
    }
    let out = child.wait_with_output()?;
    assert_eq!(out.status.code(), Some(0));
    let review: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(review["response"]["allowed"], true);
    assert!(
        review["response"]["warnings"]
            .to_string()
            .contains("CVE-2024-0001")
    );
    Ok(())
}

#[test]
fn review_of_something_that_is_not_a_review_exits_2() -> TestResult {
    let out = helios(
        &["review", "-", "--scan-dir", SCANS],
        Some(br#"{"kind": "Pod"}"#),
    )?;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid admission review"), "{err}");
    let out = helios(
        &["review", "-", "--scan-dir", SCANS, "--mode", "block"],
        Some(b"{}"),
    )?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("enforce, warn or audit"));
    Ok(())
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_serves_reviews_over_tls_from_a_config_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let port = tls_and_port(dir.path())?;
    let config = dir.path().join("helios.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\ntls:\n  cert: {cert}\n  key: {key}\nscans:\n  dir: {scans}\nadmission:\n  mode: enforce\n  failure_policy: closed\n",
            cert = dir.path().join("tls.crt").display(),
            key = dir.path().join("tls.key").display(),
            scans = root().join(SCANS).display(),
        ),
    )?;
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_helios"))
            .args(["webhook", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(
            dir.path().join("tls.crt"),
        )?)?)
        .resolve(
            "localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .build()?;
    let base = format!("https://localhost:{port}");
    assert!(
        wait_ready(&client, &base).await,
        "helios webhook did not become ready"
    );
    let body =
        std::fs::read(root().join("tests/fixtures/admission/deployment-digest-critical.json"))?;
    let resp = client
        .post(format!("{base}/validate"))
        .body(body)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let review: serde_json::Value = resp.json().await?;
    assert_eq!(review["response"]["allowed"], false);
    assert!(
        review["response"]["status"]["message"]
            .to_string()
            .contains("registry.example.com/team/critical")
    );
    Ok(())
}

/// Polls `/readyz` for up to 10 s.
async fn wait_ready(client: &reqwest::Client, base: &str) -> bool {
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `--listen` and `--tls-cert`/`--tls-key` replace the file's values (the CLI applies its flags
/// to the parsed file), and SIGTERM stops the webhook cleanly: exit 0 after the drain.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn webhook_flags_replace_the_file_and_sigterm_stops_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let port = tls_and_port(dir.path())?;
    let config = dir.path().join("helios.yaml");
    // The file names a port nobody can bind and certificate files that do not exist.
    std::fs::write(
        &config,
        "listen: 192.0.2.1:1
tls:
  cert: /nonexistent/tls.crt
  key: /nonexistent/tls.key
",
    )?;
    let mut server = Killed(
        Command::new(env!("CARGO_BIN_EXE_helios"))
            .args(["webhook", "--config"])
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--tls-cert"])
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .args(["--scan-dir", SCANS])
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(
            dir.path().join("tls.crt"),
        )?)?)
        .resolve(
            "localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .build()?;
    assert!(
        wait_ready(&client, &format!("https://localhost:{port}")).await,
        "helios webhook did not become ready on the --listen address"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()?;
    assert!(killed.success());
    for _ in 0..150 {
        if let Some(status) = server.0.try_wait()? {
            assert_eq!(status.code(), Some(0), "exit after SIGTERM");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("helios webhook did not stop within 15 s of SIGTERM");
}

/// `helios review` takes the policy flags of every deciding command: `--data` (here an
/// exception waiving the critical finding), `--package`, `--rego-v0`.
#[test]
fn review_takes_the_policy_flags_of_gate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("exceptions.yaml");
    std::fs::write(
        &data,
        "helios:\n  exceptions:\n    - id: CVE-2024-0001\n      expires: \"2999-12-31\"\n      reason: test\n",
    )?;
    let review = "tests/fixtures/admission/deployment-digest-critical.json";
    let data_arg = data.to_string_lossy().into_owned();
    let out = helios(
        &["review", review, "--scan-dir", SCANS, "--data", &data_arg],
        None,
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let response: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(response["response"]["allowed"], true, "{response}");
    assert!(response.to_string().contains("excepted"), "{response}");

    let out = helios(
        &["review", review, "--scan-dir", SCANS, "--package", "nope"],
        None,
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error[policy_undefined]") && stderr.contains("check --package"),
        "{stderr}"
    );

    let out = helios(
        &[
            "review",
            review,
            "--scan-dir",
            SCANS,
            "--rego-v0",
            "--policy",
            "tests/fixtures/policies/legacy_v0.rego",
            "--time-limit-ms",
            "1000",
        ],
        None,
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    Ok(())
}

/// SIGTERM with `--shutdown-delay`: at once `/readyz` answers 503 (`/healthz` stays ok) while
/// new connections are still accepted and reviews answered for the delay; then new connections
/// are refused, the reviews in flight at that moment (each scan lookup takes 4 s) are answered,
/// and the process exits 0.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_serves_on_for_the_shutdown_delay_then_drains_and_exits_0() -> TestResult {
    use helios_lacework_emulator::{Emulator, Endpoint, Fault, FaultKind};
    const DELAY: Duration = Duration::from_millis(3000);
    let emu = Emulator::builder().start().await?;
    // Each review of an image never seen requests an on-demand scan: 4 s each.
    emu.inject(Fault::once(Endpoint::Scan, FaultKind::Slow { delay_ms: 4000 }).times(1000));
    let dir = tempfile::tempdir()?;
    let port = tls_and_port(dir.path())?;
    let log = dir.path().join("webhook.log");
    let mut server = Killed(
        Command::new(env!("CARGO_BIN_EXE_helios"))
            .args([
                "webhook",
                "--lacework",
                "--no-resolve",
                "--deadline-ms",
                "20000",
            ])
            .args([
                "--shutdown-delay",
                "3s",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--tls-cert")
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .env("LW_ACCOUNT", emu.url())
            .env("LW_API_KEY", emu.key_id())
            .env("LW_API_SECRET", emu.secret())
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?,
    );
    let base = format!("https://localhost:{port}");
    // No pooling: every request below opens a new connection.
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(
            dir.path().join("tls.crt"),
        )?)?)
        .resolve(
            "localhost",
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        )
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()?;
    assert!(
        wait_ready(&client, &base).await,
        "helios webhook did not become ready"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()?;
    assert!(killed.success());
    let signalled = std::time::Instant::now();
    let mut not_ready = false;
    for _ in 0..50 {
        let status = client.get(format!("{base}/readyz")).send().await?.status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(not_ready, "/readyz did not turn 503 after SIGTERM");
    let live = client.get(format!("{base}/healthz")).send().await?.status();
    assert_eq!(live, reqwest::StatusCode::OK, "liveness during the delay");

    // Reviews sent during the delay, each on a new connection, of images never seen (so each
    // waits for its slow scan lookup): still in flight when the delay ends.
    let mut review: serde_json::Value = serde_json::from_slice(&std::fs::read(
        root().join("tests/fixtures/admission/pod-create.json"),
    )?)?;
    let reviews: Vec<_> = (0..8)
        .map(|i| {
            review["request"]["object"]["spec"] = serde_json::json!({"containers": [{
                "name": "app",
                "image": format!("registry.example.com/restart/app@sha256:{i:064x}"),
            }]});
            let request = client
                .post(format!("{base}/validate"))
                .header("content-type", "application/json")
                .body(review.to_string())
                .send();
            tokio::spawn(async move {
                let resp = request.await?;
                let status = resp.status().as_u16();
                resp.text().await.map(|text| (status, text))
            })
        })
        .collect();
    // After the delay new connections are refused (never before it).
    let mut refused = None;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            refused = Some(signalled.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let refused = refused.ok_or("new connections were still accepted 5 s after SIGTERM")?;
    assert!(
        refused >= DELAY - Duration::from_millis(100),
        "new connections refused {refused:?} after SIGTERM, before the {DELAY:?} delay ended"
    );
    for review in reviews {
        let (status, text) = review.await??;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("\"allowed\""), "{text}");
    }
    for _ in 0..150 {
        if let Some(status) = server.0.try_wait()? {
            assert_eq!(status.code(), Some(0), "exit after SIGTERM");
            let log = std::fs::read_to_string(&log)?;
            for phase in ["shutdown requested", "draining", "webhook stopped"] {
                assert!(log.contains(phase), "no {phase:?} in the log:\n{log}");
            }
            // The 8 reviews were in flight when the drain began.
            assert!(
                log.lines()
                    .any(|l| l.contains("draining") && l.contains("\"in_flight\":8")),
                "{log}"
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("helios webhook did not stop within 15 s of the drain");
}
