//! Issue 11, HTTP edges of the HTTPS webhook server: an oversize body over HTTP/2 is answered
//! 413 (not a stream reset), idle and slow clients are cut off, connections and HTTP/2 streams
//! are bounded, shutdown drains in-flight reviews and refuses new connections, and a certificate
//! rotated under load drops no review.
#![cfg(feature = "webhook")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use helios_core::admission::server::{HttpLimits, Metrics, ServerOptions, serve};
use helios_core::admission::{AdmissionController, ControllerConfig};
use helios_core::image::ImageRef;
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::{Lookup, ScanReport, ScanSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Every image scanned and clean, after `delay`; counts lookups in flight.
struct Slow {
    delay: Duration,
    in_flight: AtomicUsize,
}

#[async_trait]
impl ScanSource for Slow {
    async fn scan(&self, _image: &ImageRef, _lookup: Lookup) -> helios_core::Result<ScanReport> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(ScanReport::completed("file", None, None, Vec::new()))
    }
}

struct Hook {
    port: u16,
    dir: tempfile::TempDir,
    ca: PathBuf,
    metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<helios_core::Result<()>>,
}

/// Writes a fresh self-signed certificate for `localhost` into `dir`; returns its PEM.
fn write_cert(dir: &Path) -> TestResult<String> {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    // Write-then-rename, as the kubelet swaps a Secret volume's files.
    for (name, pem) in [
        ("tls.key", key.signing_key.serialize_pem()),
        ("tls.crt", key.cert.pem()),
    ] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, pem)?;
        std::fs::rename(tmp, dir.join(name))?;
    }
    Ok(key.cert.pem())
}

async fn start(
    delay: Duration,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> TestResult<Hook> {
    start_with(
        delay,
        limits,
        Duration::ZERO,
        futures_util::stream::once(shutdown),
    )
    .await
}

/// [`start`] with a shutdown delay and a stream of stop requests.
async fn start_with(
    delay: Duration,
    limits: HttpLimits,
    shutdown_delay: Duration,
    shutdown: impl futures_util::Stream<Item = ()> + Send + 'static,
) -> TestResult<Hook> {
    let dir = tempfile::tempdir()?;
    let pem = write_cert(dir.path())?;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem)?;
    let controller = AdmissionController::new(
        Arc::new(Slow {
            delay,
            in_flight: AtomicUsize::new(0),
        }),
        Arc::new(EmbeddedEvaluator::default_policy()?),
        ControllerConfig::default(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let metrics = Arc::new(Metrics::new());
    let options = ServerOptions {
        reload_interval: Duration::from_millis(50),
        shutdown_delay,
        grace: Duration::from_secs(5),
        limits,
        ..ServerOptions::new(dir.path().join("tls.crt"), dir.path().join("tls.key"))
    };
    let task = serve(listener, controller, options, metrics.clone(), shutdown).await?;
    Ok(Hook {
        port,
        dir,
        ca,
        metrics,
        task,
    })
}

fn review() -> TestResult<Vec<u8>> {
    Ok(std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/admission/pod-create.json"),
    )?)
}

/// `curl` over TLS to the webhook; returns (exit status success, stdout, stderr).
fn curl(hook: &Hook, args: &[&str]) -> TestResult<(bool, String, String)> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(&hook.ca)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", hook.port)])
        .args(args)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A reqwest client builder trusting the webhook's certificate, with `localhost` on loopback.
fn client(hook: &Hook) -> TestResult<reqwest::ClientBuilder> {
    let pem = std::fs::read(&hook.ca)?;
    Ok(reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
        .resolve("localhost", ([127, 0, 0, 1], hook.port).into()))
}

fn url(hook: &Hook, path: &str) -> String {
    format!("https://localhost:{}{path}", hook.port)
}

/// The kube-apiserver speaks HTTP/2: a body over 3 MiB gets a 413 answer, whether its length is
/// announced or streamed, and the connection keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_body_over_http2_is_answered_413() -> TestResult {
    let hook = start(
        Duration::ZERO,
        HttpLimits::default(),
        std::future::pending(),
    )
    .await?;
    let big = hook.dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; 4 * 1024 * 1024])?;
    let data = format!("@{}", big.display());
    let validate = url(&hook, "/validate");
    let write_out = "%{http_code} %{http_version}";
    for streamed in [false, true] {
        let mut args = vec!["--http2", "-o", "/dev/null", "-w", write_out];
        args.extend(["-H", "content-type: application/json"]);
        if streamed {
            // No content-length: curl streams the file in DATA frames.
            args.extend(["-H", "content-length:", "-H", "transfer-encoding: chunked"]);
        }
        args.extend(["--data-binary", &data, &validate]);
        let (ok, stdout, stderr) = tokio::task::block_in_place(|| curl(&hook, &args))?;
        assert!(ok, "streamed {streamed}: curl failed: {stderr}");
        assert_eq!(stdout, "413 2", "streamed {streamed}: {stderr}");
    }
    // The server still answers reviews over HTTP/2.
    let pod = hook.dir.path().join("pod.json");
    std::fs::write(&pod, review()?)?;
    let pod = format!("@{}", pod.display());
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| {
        curl(
            &hook,
            &[
                "--http2",
                "-o",
                "/dev/null",
                "-w",
                write_out,
                "-H",
                "content-type: application/json",
                "--data-binary",
                &pod,
                &validate,
            ],
        )
    })?;
    assert!(ok && stdout == "200 2", "{stdout} {stderr}");
    Ok(())
}

/// The HTTP/2 stream limit is what the server announces in its SETTINGS (an HTTP/2 client
/// then opens no more streams at once on the connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_per_connection_are_bounded() -> TestResult {
    let limits = HttpLimits {
        max_concurrent_streams: 7,
        ..HttpLimits::default()
    };
    let hook = start(Duration::ZERO, limits, std::future::pending()).await?;
    let (mut client, connection) = h2::client::handshake(tls(&hook, &[b"h2"]).await?).await?;
    tokio::spawn(connection);
    let request = http::Request::get(url(&hook, "/healthz")).body(())?;
    let (response, _) = client.send_request(request, true)?;
    assert_eq!(response.await?.status(), 200);
    assert_eq!(client.current_max_send_streams(), 7);
    Ok(())
}

/// Reads until the peer closes (or `within` passes); returns how long that took.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + within),
            conn.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A client that connects and sends nothing (no TLS handshake) is disconnected after the first
/// request timeout; past `max_connections`, a new connection is closed at once, and one is
/// accepted again when a slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_cut_off_and_connections_are_bounded() -> TestResult {
    let limits = HttpLimits {
        first_request_timeout: Duration::from_millis(1500),
        max_connections: 2,
        ..HttpLimits::default()
    };
    let hook = start(Duration::ZERO, limits, std::future::pending()).await?;
    let addr = format!("127.0.0.1:{}", hook.port);
    let mut idle1 = TcpStream::connect(&addr).await?;
    let mut idle2 = TcpStream::connect(&addr).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(&addr).await?;
    let took = closed_within(&mut third, Duration::from_millis(1000)).await;
    assert!(took.is_some(), "a connection past the limit was kept open");
    // The idle ones are closed by the first request timeout, not before.
    let took = closed_within(&mut idle1, Duration::from_secs(5))
        .await
        .ok_or("an idle connection was never closed")?;
    assert!(took > Duration::from_millis(1000), "closed after {took:?}");
    closed_within(&mut idle2, Duration::from_secs(2))
        .await
        .ok_or("an idle connection was never closed")?;
    // The slots are free again: a real client is served.
    let healthz = url(&hook, "/healthz");
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| curl(&hook, &[&healthz]))?;
    assert!(ok && stdout == "ok", "{stdout} {stderr}");
    Ok(())
}

async fn tls(
    hook: &Hook,
    alpn: &[&[u8]],
) -> TestResult<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&hook.ca)?;
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut config = config;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", hook.port)).await?;
    Ok(connector
        .connect(rustls::pki_types::ServerName::try_from("localhost")?, tcp)
        .await?)
}

/// Over TLS and HTTP/1.1: headers trickled past the first request timeout close the
/// connection; a body trickled past the body timeout is answered 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_bodies_are_cut_off() -> TestResult {
    let limits = HttpLimits {
        first_request_timeout: Duration::from_millis(800),
        body_read_timeout: Duration::from_millis(800),
        ..HttpLimits::default()
    };
    let hook = start(Duration::ZERO, limits, std::future::pending()).await?;

    let mut conn = tls(&hook, &[]).await?;
    conn.write_all(b"POST /validate HTTP/1.1\r\nhost: localhost\r\n")
        .await?;
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "headers that never end held the connection");
    assert!(started.elapsed() < Duration::from_secs(3));

    let mut conn = tls(&hook, &[]).await?;
    conn.write_all(
        b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"kind\":",
    )
    .await?;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await??;
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    Ok(())
}

/// Shutdown (what SIGTERM triggers in `helios webhook`) while reviews are in flight: every one
/// of them is answered, and new connections are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_reviews_and_refuses_new_connections() -> TestResult {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let hook = start(Duration::from_millis(1500), HttpLimits::default(), async {
        let _ = stopped.await;
    })
    .await?;
    let client = client(&hook)?.build()?;
    let body = review()?;
    let validate = url(&hook, "/validate");
    let reviews: Vec<_> = (0..16)
        .map(|_| {
            let request = client
                .post(&validate)
                .header("content-type", "application/json")
                .body(body.clone())
                .send();
            tokio::spawn(async move {
                let resp = request.await?;
                let status = resp.status().as_u16();
                resp.text().await.map(|text| (status, text))
            })
        })
        .collect();
    // The reviews are in flight (each lookup takes 1.5 s) when shutdown is asked: waiting for
    // the server to count them, not a fixed time, so that a loaded machine's slow TLS handshakes
    // do not leave a connection without its request when the drain closes the others.
    for _ in 0..140 {
        if hook.metrics.in_flight() == 16 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        hook.metrics.in_flight(),
        16,
        "the reviews were not all in flight"
    );
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(("127.0.0.1", hook.port)).await.is_err(),
        "a new connection was accepted after shutdown"
    );
    for review in reviews {
        let (status, text) = review.await??;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("\"allowed\":true"), "{text}");
    }
    // The server ends once drained.
    tokio::time::timeout(Duration::from_secs(5), hook.task).await???;
    Ok(())
}

/// With a shutdown delay: after the first stop request `/readyz` answers 503 while `/healthz`
/// stays ok and a new connection is still accepted and its review answered; a second request
/// skips the rest of the (long) delay: new connections are refused, and the server ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delay_serves_on_not_ready_until_a_second_stop_request() -> TestResult {
    let (stop, stops) = tokio::sync::mpsc::unbounded_channel::<()>();
    let hook = start_with(
        Duration::ZERO,
        HttpLimits::default(),
        Duration::from_secs(60),
        futures_util::stream::unfold(
            stops,
            |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
        ),
    )
    .await?;
    // No pooling: each request opens a new connection.
    let client = client(&hook)?.pool_max_idle_per_host(0).build()?;
    let status = |path: &'static str| {
        let request = client.get(url(&hook, path)).send();
        async move { request.await.map(|r| r.status().as_u16()) }
    };
    assert_eq!(status("/readyz").await?, 200);
    stop.send(())?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        status("/readyz").await?,
        503,
        "not ready once asked to stop"
    );
    assert_eq!(
        status("/healthz").await?,
        200,
        "still live during the delay"
    );
    let answer = client
        .post(url(&hook, "/validate"))
        .header("content-type", "application/json")
        .body(review()?)
        .send()
        .await?;
    assert_eq!(answer.status().as_u16(), 200);
    assert!(answer.text().await?.contains("\"allowed\":true"));
    stop.send(())?;
    tokio::time::timeout(Duration::from_secs(5), hook.task).await???;
    assert!(
        TcpStream::connect(("127.0.0.1", hook.port)).await.is_err(),
        "a new connection was accepted after the drain"
    );
    Ok(())
}

/// Idle kept-alive connections are closed when the drain begins, not left to time out: an
/// HTTP/1.1 connection is closed, an HTTP/2 one gets a GOAWAY and ends; the server ends at once
/// although a client holds each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_closes_idle_keep_alive_connections() -> TestResult {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let hook = start(Duration::ZERO, HttpLimits::default(), async {
        let _ = stopped.await;
    })
    .await?;
    let http1 = client(&hook)?.http1_only().build()?;
    // One answered request leaves the connection idle in the client's pool.
    let answer = http1.get(url(&hook, "/healthz")).send().await?;
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.version(), reqwest::Version::HTTP_11);
    let (mut http2, connection) = h2::client::handshake(tls(&hook, &[b"h2"]).await?).await?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get(url(&hook, "/healthz")).body(())?;
    let (response, _) = http2.send_request(request, true)?;
    assert_eq!(response.await?.status(), 200);

    let began = Instant::now();
    let _ = stop.send(());
    // The grace is 5 s: an idle connection left open would hold the server that long.
    tokio::time::timeout(Duration::from_secs(5), hook.task).await???;
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "the drain took {:?}: an idle connection was not closed",
        began.elapsed()
    );
    // The HTTP/2 connection ended cleanly (GOAWAY), not by a reset or a protocol error. The
    // client may still be writing (an acknowledgement, its TLS close) when the server's socket
    // is gone: a broken pipe on that write is the race of an orderly close, not a failure.
    match tokio::time::timeout(Duration::from_secs(2), connection).await?? {
        Ok(()) => {}
        Err(e) if e.get_io().map(std::io::Error::kind) == Some(std::io::ErrorKind::BrokenPipe) => {}
        Err(e) => return Err(e.into()),
    }
    drop(http1);
    Ok(())
}

/// Reviews sent without pause, each on a new connection (a new TLS handshake), while the
/// certificate files are rotated several times: none fails, and the last certificate is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_load_drops_nothing() -> TestResult {
    let hook = start(
        Duration::ZERO,
        HttpLimits::default(),
        std::future::pending(),
    )
    .await?;
    let dir = hook.dir.path().to_path_buf();
    // Rotations made beforehand so that the client can trust every certificate served.
    let mut pems = vec![std::fs::read_to_string(&hook.ca)?];
    let staged: Vec<_> = (0..3)
        .map(|i| {
            let d = dir.join(format!("next{i}"));
            std::fs::create_dir(&d)?;
            pems.push(write_cert(&d)?);
            Ok(d)
        })
        .collect::<TestResult<_>>()?;
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .resolve("localhost", ([127, 0, 0, 1], hook.port).into());
    for pem in &pems {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?);
    }
    let client = builder.build()?;
    let body = review()?;
    let validate = url(&hook, "/validate");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, done) = (client.clone(), done.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0usize, Vec::new());
            while !done.load(Ordering::SeqCst) {
                let sent = client
                    .post(&validate)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => ok += 1,
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    Err(e) => failed.push(format!("{e:?}")),
                }
            }
            (ok, failed)
        })
    };
    for d in &staged {
        tokio::time::sleep(Duration::from_millis(400)).await;
        for name in ["tls.key", "tls.crt"] {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::copy(d.join(name), &tmp)?;
            std::fs::rename(&tmp, dir.join(name))?;
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    done.store(true, Ordering::SeqCst);
    let (ok, failed) = load.await?;
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    assert!(ok > 10, "only {ok} reviews were sent");
    // The last certificate is the one served now.
    let last = pems.last().ok_or("no certificate")?;
    let only_last = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(last.as_bytes())?)
        .resolve("localhost", ([127, 0, 0, 1], hook.port).into())
        .build()?;
    assert_eq!(
        only_last.get(url(&hook, "/healthz")).send().await?.status(),
        200
    );
    println!("{ok} reviews over new connections across 3 rotations, none failed");
    Ok(())
}
