//! The HTTPS admission webhook: axum on hyper, TLS by rustls on ring, the certificate reloaded
//! when its files change.
//!
//! Routes: `POST /validate` (the AdmissionReview endpoint), `POST /mutate` (opt-in digest
//! pinning), `GET /healthz`, `GET /readyz`,
//! `GET /metrics` (Prometheus text format).
//!
//! The server takes parts already built (a controller, certificate files, a bound listener, a
//! stream of stop requests); it neither reads the configuration file nor handles signals, so a
//! program can embed the webhook: mount [`router`] in its own axum app, or [`serve`] it over TLS.
//!
//! Stopping (see [`serve`]): at the first stop request `/readyz` answers 503 while the server
//! keeps accepting and answering for [`ServerOptions::shutdown_delay`] (the time a load balancer
//! or Kubernetes' endpoints take to stop sending it connections); then it closes its listener,
//! tells kept-alive clients to go away (HTTP/2 `GOAWAY`; HTTP/1.1 idle connections closed, busy
//! ones answered with `Connection: close`) and lets in-flight reviews finish within
//! [`ServerOptions::grace`].

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, BodyDataStream, Bytes};
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::admission::decision_log::{DecisionLogConfig, DecisionLogger};
use crate::admission::{AdmissionController, Mode, ReviewOutcome, Verdict};
use crate::error::{Error, Result};
use crate::scan::CacheSize;

/// Largest accepted request body. The API server's own request limit is 3 MiB, so a larger body
/// is not a review; it is answered 413.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Longest time a request's whole body may take to arrive. The API server sends a review in one
/// go; a client trickling a body byte by byte would otherwise hold its connection for ever.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest time a request's headers may take to arrive on a kept-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How [`serve`] serves: its certificate, its HTTP limits and how it stops.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// PEM certificate chain.
    pub tls_cert: PathBuf,
    /// PEM private key.
    pub tls_key: PathBuf,
    /// How often the certificate files are checked for changes.
    pub reload_interval: Duration,
    /// After the first stop request, how long the server keeps accepting connections and
    /// answering reviews (with `/readyz` at 503) before it stops accepting: the time the
    /// endpoints of a terminating Pod take to stop receiving connections. Zero stops accepting
    /// at once.
    pub shutdown_delay: Duration,
    /// Once the server stops accepting, how long in-flight reviews may take to finish before
    /// their connections are closed.
    pub grace: Duration,
    /// Timeouts and connection limits against slow or idle clients.
    pub limits: HttpLimits,
    /// Decision logs (one event per review, see [`crate::admission::decision_log`]); `None`
    /// logs none.
    pub decision_logs: Option<DecisionLogConfig>,
}

impl ServerOptions {
    /// Options for the certificate files `tls_cert` and `tls_key`: checked for changes every
    /// 10 s, no shutdown delay, a 10 s grace period, the default [`HttpLimits`], no decision logs.
    pub fn new(tls_cert: impl Into<PathBuf>, tls_key: impl Into<PathBuf>) -> Self {
        ServerOptions {
            tls_cert: tls_cert.into(),
            tls_key: tls_key.into(),
            reload_interval: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            grace: Duration::from_secs(10),
            limits: HttpLimits::default(),
            decision_logs: None,
        }
    }
}

/// What one client may hold of the server: slow or idle clients cannot exhaust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// From the TCP accept to the first request: the TLS handshake and the first request's
    /// headers (10 s).
    pub first_request_timeout: Duration,
    /// Headers of later requests on a kept-alive HTTP/1.1 connection ([`HEADER_READ_TIMEOUT`]).
    pub header_read_timeout: Duration,
    /// A request's whole body ([`BODY_READ_TIMEOUT`]); 408 past it.
    pub body_read_timeout: Duration,
    /// Connections open at once (1024); a connection past it is closed at once, before the
    /// TLS handshake.
    pub max_connections: usize,
    /// Concurrent streams (requests) on one HTTP/2 connection (the API server multiplexes its
    /// reviews on few connections): 250, as Go's `net/http` server.
    pub max_concurrent_streams: u32,
    /// HTTP/2 keep-alive: a PING after this long without frames (20 s); a peer that does not
    /// answer within the same time is disconnected.
    pub keep_alive_interval: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            first_request_timeout: Duration::from_secs(10),
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            max_connections: 1024,
            max_concurrent_streams: 250,
            keep_alive_interval: Duration::from_secs(20),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    decision: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLogLabels {
    outcome: String,
}

/// The webhook's Prometheus metrics.
pub struct Metrics {
    registry: Registry,
    reviews: Family<ReviewLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: Histogram,
    in_flight: Gauge,
    decision_logs: Family<DecisionLogLabels, Counter>,
    /// `helios_scan_cache_*`: the scan source's in-memory cache (its own registry, for the
    /// prefix).
    scan_cache: Registry,
    scan_cache_entries: Gauge,
    scan_cache_max_entries: Gauge,
    /// The background audit's `helios_audit_*` gauges, served on the same endpoint.
    #[cfg(feature = "audit")]
    audit: Arc<crate::audit::AuditMetrics>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the metrics: `helios_admission_reviews_total{decision,mode}`,
    /// `helios_admission_backend_errors_total{kind}` (scan, policy, deadline, limit, invalid_review)
    /// `helios_admission_review_duration_seconds`, `helios_admission_in_flight_reviews`,
    /// `helios_admission_decision_logs_total{outcome}` (sent, dropped, failed), and the gauges
    /// `helios_scan_cache_entries` / `helios_scan_cache_max_entries` (the scan cache's size and
    /// bound, read at each scrape; 0 / 0 for a source without a cache).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("helios_admission");
        let reviews = Family::<ReviewLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        // 1 ms … ~4 s: a cached review takes about a millisecond, the deadline is 2.5 s.
        let latency = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.001, 2.0, 13,
        ));
        registry.register(
            "reviews",
            "Admission reviews answered, by decision and mode",
            reviews.clone(),
        );
        registry.register(
            "backend_errors",
            "Images that could not be checked (scan source, policy engine, deadline), and invalid reviews",
            errors.clone(),
        );
        registry.register(
            "review_duration_seconds",
            "Time to answer one admission review",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight_reviews",
            "Reviews (and /mutate requests) being answered now",
            in_flight.clone(),
        );
        let decision_logs = Family::<DecisionLogLabels, Counter>::default();
        registry.register(
            "decision_logs",
            "Decision log events sent to the collector, dropped (queue full) or failed (not taken)",
            decision_logs.clone(),
        );
        for outcome in ["sent", "dropped", "failed"] {
            let _ = decision_logs.get_or_create(&DecisionLogLabels {
                outcome: outcome.into(),
            });
        }
        // Show every series from the start, so dashboards and alerts see zeros, not gaps.
        for v in Verdict::ALL {
            for m in [Mode::Enforce, Mode::Warn, Mode::Audit] {
                let _ = reviews.get_or_create(&ReviewLabels {
                    decision: v.as_str().into(),
                    mode: m.as_str().into(),
                });
            }
        }
        for k in [
            "scan",
            "policy",
            "deadline",
            "limit",
            "resolve",
            "invalid_review",
        ] {
            let _ = errors.get_or_create(&ErrorLabels { kind: k.into() });
        }
        let mut scan_cache = Registry::with_prefix("helios_scan_cache");
        let (scan_cache_entries, scan_cache_max_entries) = (Gauge::default(), Gauge::default());
        scan_cache.register(
            "entries",
            "Images in the in-memory scan cache (expired ones included until evicted)",
            scan_cache_entries.clone(),
        );
        scan_cache.register(
            "max_entries",
            "The bound on helios_scan_cache_entries (0: the scan source has no cache)",
            scan_cache_max_entries.clone(),
        );
        Metrics {
            registry,
            reviews,
            errors,
            latency,
            in_flight,
            decision_logs,
            scan_cache,
            scan_cache_entries,
            scan_cache_max_entries,
            #[cfg(feature = "audit")]
            audit: Arc::default(),
        }
    }

    /// Counts `n` decision log events by `outcome` (`sent`, `dropped`, `failed`).
    pub(crate) fn record_decision_logs(&self, outcome: &str, n: u64) {
        self.decision_logs
            .get_or_create(&DecisionLogLabels {
                outcome: outcome.into(),
            })
            .inc_by(n);
    }

    /// Records one answered review.
    pub fn record(&self, outcome: &ReviewOutcome) {
        self.reviews
            .get_or_create(&ReviewLabels {
                decision: outcome.verdict.as_str().into(),
                mode: outcome.mode.as_str().into(),
            })
            .inc();
        for f in &outcome.failures {
            self.errors
                .get_or_create(&ErrorLabels {
                    kind: f.as_str().into(),
                })
                .inc();
        }
        self.latency.observe(outcome.duration.as_secs_f64());
    }

    /// Reviews being answered now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.get().max(0).unsigned_abs()
    }

    /// Counts one review in flight until the returned guard is dropped.
    fn start_review(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    fn record_invalid(&self) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: "invalid_review".into(),
            })
            .inc();
    }

    /// Sets the `helios_scan_cache_*` gauges ([`ScanSource::cache_size`](crate::scan::ScanSource::cache_size)).
    pub fn record_scan_cache(&self, size: Option<CacheSize>) {
        let size = size.unwrap_or_default();
        let value = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.scan_cache_entries.set(value(size.entries));
        self.scan_cache_max_entries.set(value(size.max_entries));
    }

    /// The metrics in the Prometheus / OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        // The scan cache's gauges have their own prefix: one exposition, one `# EOF` at the end.
        if let Some(body) = out.strip_suffix("# EOF\n") {
            let mut cache = String::new();
            let _ = prometheus_client::encoding::text::encode(&mut cache, &self.scan_cache);
            out = format!("{body}{cache}");
        }
        // The audit gauges live in their own registry (this one prefixes `helios_admission`):
        // one exposition, one `# EOF` at the end.
        #[cfg(feature = "audit")]
        if let Some(body) = out.strip_suffix("# EOF\n") {
            out = format!("{body}{}", self.audit.encode());
        }
        // The Redis tier's process-wide counters (scale-out), likewise.
        #[cfg(feature = "redis")]
        if let Some(body) = out.strip_suffix("# EOF\n") {
            out = format!("{body}{}", crate::scan::shared::encode_metrics());
        }
        out
    }

    /// The background audit's gauges.
    #[cfg(feature = "audit")]
    pub fn audit(&self) -> &Arc<crate::audit::AuditMetrics> {
        &self.audit
    }
}

/// One review in flight (see [`Metrics::in_flight`]), counted until dropped: answered, or its
/// connection closed.
struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Shared state of the routes.
#[derive(Clone)]
struct AppState {
    controller: AdmissionController,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    body_timeout: Duration,
    decisions: Option<DecisionLogger>,
}

/// The webhook's routes, for embedding in another axum app or serving with [`serve`].
///
/// `ready` is what `/readyz` reports; [`serve`] sets it once TLS is loaded.
pub fn router(
    controller: AdmissionController,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> Router {
    routes(AppState {
        controller,
        metrics,
        ready,
        body_timeout: BODY_READ_TIMEOUT,
        decisions: None,
    })
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_oversize,
        ))
        .with_state(state)
}

/// Most bytes of a refused body read and discarded (see [`drain`]).
const DRAIN_LIMIT: usize = 4 * MAX_BODY;

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body larger than 3 MiB\n",
    )
        .into_response()
}

/// Answers 413 at once when `Content-Length` announces more than [`MAX_BODY`], before a byte of
/// the body is read.
async fn refuse_oversize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        drain(request.into_body().into_data_stream(), state.body_timeout);
        return too_large();
    }
    next.run(request).await
}

/// Reads and discards the rest of a refused body in the background, at most [`DRAIN_LIMIT`]
/// bytes within `timeout`. Over HTTP/2 a request body dropped unread before the answer is sent
/// resets its stream (`RST_STREAM CANCEL`), and clients (curl, Go's `net/http`) then report a
/// stream error instead of the 413; kept until the client has sent it, the stream ends cleanly
/// (and past the bounds with `NO_ERROR`, which leaves the answer valid).
fn drain(mut stream: BodyDataStream, timeout: Duration) {
    tokio::spawn(async move {
        let mut left = DRAIN_LIMIT;
        let _ = tokio::time::timeout(timeout, async {
            while let Some(Ok(chunk)) = stream.next().await {
                left = left.saturating_sub(chunk.len());
                if left == 0 {
                    break;
                }
            }
        })
        .await;
    });
}

/// A request's whole body, at most [`MAX_BODY`] bytes within the body timeout; otherwise the
/// answer to send (413, 408 or 400).
async fn read_body(state: &AppState, body: Body) -> std::result::Result<Bytes, Response> {
    enum Failed {
        TooLarge,
        Broken,
    }
    // One timeout over the whole body, written here because tower-http's RequestBodyTimeout
    // restarts its timer at every frame: a byte every few seconds would never trip it.
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let read = tokio::time::timeout(state.body_timeout, async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| Failed::Broken)?;
            if buf.len() + chunk.len() > MAX_BODY {
                return Err(Failed::TooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(())
    })
    .await;
    match read {
        Ok(Ok(())) => Ok(Bytes::from(buf)),
        Ok(Err(Failed::TooLarge)) => {
            state.metrics.record_invalid();
            drain(stream, state.body_timeout);
            Err(too_large())
        }
        Ok(Err(Failed::Broken)) => {
            state.metrics.record_invalid();
            Err((
                StatusCode::BAD_REQUEST,
                "the request body could not be read\n",
            )
                .into_response())
        }
        Err(_) => {
            state.metrics.record_invalid();
            Err((
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ms\n",
                    state.body_timeout.as_millis()
                ),
            )
                .into_response())
        }
    }
}

async fn validate(State(state): State<AppState>, body: Body) -> Response {
    let _in_flight = state.metrics.start_review();
    let body = match read_body(&state, body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    match state.controller.review_json(&body).await {
        Ok((json, outcome)) => {
            state.metrics.record(&outcome);
            if let Some(decisions) = &state.decisions {
                decisions.log(&outcome);
            }
            ([(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        Err(e) => {
            state.metrics.record_invalid();
            tracing::warn!(target: "helios::admission", error = %e, bytes = body.len(), "invalid admission review");
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
    }
}

/// The opt-in digest-pinning endpoint (see [`crate::admission::mutate`]).
async fn mutate(State(state): State<AppState>, body: Body) -> Response {
    let _in_flight = state.metrics.start_review();
    let body = match read_body(&state, body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    match crate::admission::mutate::review_json(&state.controller, &body).await {
        Ok((json, _)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => {
            state.metrics.record_invalid();
            tracing::warn!(target: "helios::admission", error = %e, bytes = body.len(), "invalid admission review");
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    state
        .metrics
        .record_scan_cache(state.controller.scan_source().cache_size());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Serves the webhook over HTTPS on `listener` (bound by the caller: port 0 picks a free port,
/// read it with [`TcpListener::local_addr`]) until asked to stop.
///
/// `shutdown` yields a stop request each time the server is asked to stop (in `helios webhook`,
/// each SIGTERM or Ctrl-C; a single future becomes a stream with
/// [`futures_util::stream::once`]). At the first, `/readyz` answers 503 (`/healthz` stays ok) and
/// the server keeps accepting connections and answering for [`ServerOptions::shutdown_delay`];
/// a second request skips the rest of the delay. Then it stops accepting connections, tells
/// kept-alive clients to go away (HTTP/2 `GOAWAY`; idle HTTP/1.1 connections are closed, busy
/// ones close after their answer, sent with `Connection: close`) and lets in-flight reviews
/// finish for up to [`ServerOptions::grace`]. Each phase is logged.
///
/// Returns once the certificate is loaded and the server accepts connections (`/readyz` then
/// answers ok), with the task that serves; it ends when the drain is over. Fails when the
/// certificate files cannot be read or the listener cannot be used.
pub async fn serve(
    listener: TcpListener,
    controller: AdmissionController,
    options: ServerOptions,
    metrics: Arc<Metrics>,
    shutdown: impl Stream<Item = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<Result<()>>> {
    let listen = listener
        .local_addr()
        .map_err(|e| unavailable("the given socket", e))?;
    let tls = RustlsConfig::from_pem_file(&options.tls_cert, &options.tls_key)
        .await
        .map_err(|e| tls_error(&options, e))?;
    let ready = Arc::new(AtomicBool::new(false));
    let limits = options.limits.clone();
    let (decisions, log_writer) = match &options.decision_logs {
        Some(config) => DecisionLogger::start(config, metrics.clone())?.unzip(),
        None => (None, None),
    };
    let app = routes(AppState {
        controller,
        metrics: metrics.clone(),
        ready: ready.clone(),
        body_timeout: limits.body_read_timeout,
        decisions,
    });
    let handle: Handle<SocketAddr> = Handle::new();
    // A connection that sends no request in time is closed, so idle or slow clients cannot hold
    // the webhook's connections; past `max_connections` a new one is closed at once.
    let acceptor = ConnectionLimit::new(
        RustlsAcceptor::new(tls.clone()).handshake_timeout(limits.first_request_timeout),
        limits.max_connections,
    );
    let mut server = axum_server::from_tcp(listener)
        .map_err(|e| unavailable(listen, e))?
        .acceptor(acceptor)
        .handle(handle.clone())
        .first_request_timeout(limits.first_request_timeout);
    // Later requests on a kept-alive connection get a bound on their headers (axum-server
    // turns hyper's header read timeout off by default).
    let http = server.http_builder();
    http.http1().header_read_timeout(limits.header_read_timeout);
    http.http2()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(limits.keep_alive_interval)
        .keep_alive_timeout(limits.keep_alive_interval);
    let grace = options.grace;
    let delay = options.shutdown_delay;
    let watcher = tokio::spawn(watch_certificates(tls, options));
    // When the drain began (the listener closed): the exit log reports how long it took.
    let drain_began = Arc::new(OnceLock::new());
    let stopper = tokio::spawn(stop_on_request(
        shutdown,
        StopPlan {
            handle: handle.clone(),
            ready: ready.clone(),
            metrics: metrics.clone(),
            delay,
            grace,
            drain_began: drain_began.clone(),
        },
    ));
    let stopped = handle.clone();
    let task = tokio::spawn(async move {
        let served = server.serve(app.into_make_service()).await;
        watcher.abort();
        stopper.abort();
        if let Some(began) = drain_began.get() {
            let took: Duration = began.elapsed();
            // Past the grace the server closed the connections with reviews still in flight.
            let cut = took >= grace;
            tracing::info!(target: "helios::admission", drained_ms = took.as_millis() as u64, grace_expired = cut, in_flight = metrics.in_flight(), connections = stopped.connection_count(), "webhook stopped");
        }
        // Every connection (and its logger) is gone: the writer sends what is queued, and ends.
        if let Some(writer) = log_writer {
            let _ = tokio::time::timeout(grace.max(Duration::from_secs(1)), writer).await;
        }
        served.map_err(|e| unavailable(listen, e))
    });
    let Some(addr) = handle.listening().await else {
        return Err(match task.await {
            Ok(Err(e)) => e,
            _ => unavailable(listen, "the server stopped before listening"),
        });
    };
    ready.store(true, Ordering::Relaxed);
    tracing::info!(target: "helios::admission", %addr, "webhook listening");
    Ok(task)
}

/// What [`stop_on_request`] acts on.
struct StopPlan {
    handle: Handle<SocketAddr>,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    delay: Duration,
    grace: Duration,
    drain_began: Arc<OnceLock<Instant>>,
}

/// The shutdown sequence of [`serve`]: not ready at the first stop request, serving on for the
/// delay (cut short by a second request), then the graceful shutdown. A stream that ends
/// without a request never stops the server.
async fn stop_on_request(shutdown: impl Stream<Item = ()> + Send, plan: StopPlan) {
    let mut shutdown = std::pin::pin!(shutdown);
    if shutdown.next().await.is_none() {
        return;
    }
    plan.ready.store(false, Ordering::Relaxed);
    tracing::info!(target: "helios::admission", delay_ms = plan.delay.as_millis() as u64, in_flight = plan.metrics.in_flight(), connections = plan.handle.connection_count(), "shutdown requested: /readyz answers 503; serving on for the shutdown delay");
    if !plan.delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(plan.delay) => {}
            Some(()) = shutdown.next() => {
                tracing::info!(target: "helios::admission", "second stop request: the rest of the shutdown delay skipped");
            }
        }
    }
    let _ = plan.drain_began.set(Instant::now());
    tracing::info!(target: "helios::admission", grace_ms = plan.grace.as_millis() as u64, in_flight = plan.metrics.in_flight(), connections = plan.handle.connection_count(), "draining: new connections refused, kept-alive clients told to go away");
    plan.handle.graceful_shutdown(Some(plan.grace));
}

fn unavailable(listen: impl std::fmt::Display, reason: impl ToString) -> Error {
    Error::unavailable(format!("webhook listener on {listen}"), reason.to_string())
}

fn tls_error(options: &ServerOptions, e: std::io::Error) -> Error {
    Error::invalid(
        "TLS certificate",
        format!(
            "{} / {}: {e}",
            options.tls_cert.display(),
            options.tls_key.display()
        ),
    )
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads the certificate when either file changes (cert-manager rotates the Secret, the
/// kubelet swaps the mounted files). A bad new pair is logged and the old one kept.
async fn watch_certificates(tls: RustlsConfig, options: ServerOptions) {
    let stamp = |o: &ServerOptions| (modified(&o.tls_cert), modified(&o.tls_key));
    let mut last = stamp(&options);
    let mut tick = tokio::time::interval(options.reload_interval.max(Duration::from_millis(50)));
    loop {
        tick.tick().await;
        let now = stamp(&options);
        if now == last {
            continue;
        }
        last = now;
        match tls
            .reload_from_pem_file(&options.tls_cert, &options.tls_key)
            .await
        {
            Ok(()) => {
                tracing::info!(target: "helios::admission", cert = %options.tls_cert.display(), "TLS certificate reloaded")
            }
            Err(e) => {
                tracing::warn!(target: "helios::admission", error = %tls_error(&options, e), "TLS certificate reload failed; keeping the previous one")
            }
        }
    }
}

/// An acceptor that holds one of `max` permits per open connection: past the limit a new
/// connection is closed at once, before the TLS handshake costs anything.
#[derive(Clone)]
struct ConnectionLimit<A> {
    inner: A,
    permits: Arc<Semaphore>,
}

impl<A> ConnectionLimit<A> {
    fn new(inner: A, max: usize) -> Self {
        ConnectionLimit {
            inner,
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

impl<I, S, A> Accept<I, S> for ConnectionLimit<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Counted<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, std::io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            drop(stream);
            tracing::warn!(target: "helios::admission", "connection limit reached; closing a new connection");
            return Box::pin(async {
                Err(std::io::Error::other("the connection limit is reached"))
            });
        };
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            Ok((
                Counted {
                    stream,
                    _permit: permit,
                },
                service,
            ))
        })
    }
}

/// A connection holding its permit until it closes.
struct Counted<S> {
    stream: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
