//! The HTTPS admission webhook: axum on hyper, TLS by rustls on ring, the certificate reloaded
//! when its files change.
//!
//! Routes: `POST /validate` (the AdmissionReview endpoint), `POST /mutate` (opt-in digest
//! pinning), `GET /healthz`, `GET /readyz`,
//! `GET /metrics` (Prometheus text format).
//!
//! The server takes parts already built (a controller, certificate files, a bound listener, a
//! shutdown future); it neither reads the configuration file nor handles signals, so a program
//! can embed the webhook: mount [`router`] in its own axum app, or [`serve`] it over TLS.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tower_http::limit::RequestBodyLimitLayer;

use crate::admission::{AdmissionController, Mode, ReviewOutcome, Verdict};
use crate::error::{Error, Result};

/// Largest accepted request body. The API server's own request limit is 3 MiB, so a larger body
/// is not a review; it is answered 413.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Longest time a request's whole body may take to arrive. The API server sends a review in one
/// go; a client trickling a body byte by byte would otherwise hold its connection for ever.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest time a request's headers may take to arrive on a kept-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How [`serve`] serves: its certificate and how it stops.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// PEM certificate chain.
    pub tls_cert: PathBuf,
    /// PEM private key.
    pub tls_key: PathBuf,
    /// How often the certificate files are checked for changes.
    pub reload_interval: Duration,
    /// Once shutdown is asked, how long in-flight reviews may take to finish before their
    /// connections are closed.
    pub grace: Duration,
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

/// The webhook's Prometheus metrics.
pub struct Metrics {
    registry: Registry,
    reviews: Family<ReviewLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: Histogram,
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
    /// and `helios_admission_review_duration_seconds`.
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
        Metrics {
            registry,
            reviews,
            errors,
            latency,
            #[cfg(feature = "audit")]
            audit: Arc::default(),
        }
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

    fn record_invalid(&self) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: "invalid_review".into(),
            })
            .inc();
    }

    /// The metrics in the Prometheus / OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
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

/// Shared state of the routes.
#[derive(Clone)]
struct AppState {
    controller: AdmissionController,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// The webhook's routes, for embedding in another axum app or serving with [`serve`].
///
/// `ready` is what `/readyz` reports; [`serve`] sets it once TLS is loaded.
pub fn router(
    controller: AdmissionController,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> Router {
    let state = AppState {
        controller,
        metrics,
        ready,
    };
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // tower-http's limit answers 413 at once when `Content-Length` announces more than
        // the limit, before a byte of the body is read; DefaultBodyLimit alone would only
        // notice once the body had arrived.
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .with_state(state)
}

async fn validate(State(state): State<AppState>, body: Body) -> Response {
    // One timeout over the whole body, written here because tower-http's RequestBodyTimeout
    // restarts its timer at every frame: a byte every few seconds would never trip it.
    let body: Bytes =
        match tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => {
                state.metrics.record_invalid();
                // http-body-util's LengthLimitError, reached through axum's boxed error.
                let too_large = e.to_string().contains("length limit");
                return if too_large {
                    (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body larger than 3 MiB\n",
                    )
                        .into_response()
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        "the request body could not be read\n",
                    )
                        .into_response()
                };
            }
            Err(_) => {
                state.metrics.record_invalid();
                return (
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} s\n",
                        BODY_READ_TIMEOUT.as_secs()
                    ),
                )
                    .into_response();
            }
        };
    match state.controller.review_json(&body).await {
        Ok((json, outcome)) => {
            state.metrics.record(&outcome);
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
async fn mutate(State(state): State<AppState>, body: Bytes) -> Response {
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
/// read it with [`TcpListener::local_addr`]) until `shutdown` completes, then stops accepting
/// connections and lets in-flight reviews finish for up to [`ServerOptions::grace`].
///
/// Returns once the certificate is loaded and the server accepts connections (`/readyz` then
/// answers ok), with the task that serves; it ends when the drain is over. Fails when the
/// certificate files cannot be read or the listener cannot be used.
pub async fn serve(
    listener: TcpListener,
    controller: AdmissionController,
    options: ServerOptions,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<Result<()>>> {
    let listen = listener
        .local_addr()
        .map_err(|e| unavailable("the given socket", e))?;
    let tls = RustlsConfig::from_pem_file(&options.tls_cert, &options.tls_key)
        .await
        .map_err(|e| tls_error(&options, e))?;
    let ready = Arc::new(AtomicBool::new(false));
    let app = router(controller, metrics, ready.clone());
    let handle: Handle<SocketAddr> = Handle::new();
    // A connection that sends no request in time is closed, so idle or slow clients cannot hold
    // the webhook's connections (the TLS handshake has its own timeout in the acceptor).
    let mut server = axum_server::from_tcp_rustls(listener, tls.clone())
        .map_err(|e| unavailable(listen, e))?
        .handle(handle.clone())
        .first_request_timeout(Duration::from_secs(10));
    // Later requests on a kept-alive connection get the same bound on their headers
    // (axum-server turns hyper's header read timeout off by default).
    server
        .http_builder()
        .http1()
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let grace = options.grace;
    let watcher = tokio::spawn(watch_certificates(tls, options));
    let stop = handle.clone();
    let stopper = tokio::spawn(async move {
        shutdown.await;
        tracing::info!(target: "helios::admission", "shutting down");
        stop.graceful_shutdown(Some(grace));
    });
    let task = tokio::spawn(async move {
        let served = server.serve(app.into_make_service()).await;
        watcher.abort();
        stopper.abort();
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
