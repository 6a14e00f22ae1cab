//! A Rust service that embeds the Helios admission controller in its own axum app.
//!
//! ```text
//! cargo run -p helios-examples --bin admission-service -- tests/fixtures/admission-scans
//! curl -s localhost:8080/admission/validate -d @tests/fixtures/admission/deployment-digest-critical.json
//! ```
//!
//! The service keeps its own routes (`/`), mounts Helios's routes under `/admission`
//! (`/admission/validate`, `/admission/metrics`, …), and also calls the controller directly from
//! a handler of its own (`/explain`). It listens on plain HTTP for the demo; the Kubernetes API
//! server only calls webhooks over HTTPS, so terminate TLS in front of it or use
//! `helios_core::admission::server::serve`.
//!
//! With `--check FILE`, it runs one review through the controller, prints the verdict and exits
//! (used by the test suite).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use helios_core::admission::server::{Metrics, router};
use helios_core::admission::{AdmissionController, ControllerConfig, Mode};
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::{CachedSource, DirSource};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let scans = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "tests/fixtures/admission-scans".into()),
    );

    // One controller: a directory of scans behind a cache, the shipped default policy, warn mode
    // in `staging` and enforce elsewhere.
    let mut config = ControllerConfig::default();
    config.namespace_modes.insert("staging".into(), Mode::Warn);
    let controller = AdmissionController::new(
        Arc::new(CachedSource::new(DirSource::open(scans)?)),
        Arc::new(EmbeddedEvaluator::default_policy()?),
        config,
    );

    if let (Some(flag), Some(file)) = (args.next(), args.next())
        && flag == "--check"
    {
        let body = std::fs::read(&file)?;
        let (response, outcome) = controller.review_json(&body).await?;
        println!(
            "{} {}",
            outcome.verdict.as_str(),
            String::from_utf8_lossy(&response)
        );
        return Ok(());
    }

    let helios = router(
        controller.clone(),
        Arc::new(Metrics::new()),
        Arc::new(AtomicBool::new(true)),
    );
    let app = Router::new()
        .route("/", get(|| async { "my service\n" }))
        .route("/explain", post(explain))
        .with_state(controller)
        .nest("/admission", helios);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The service's own use of the controller: a plain-text verdict for a review.
async fn explain(State(controller): State<AdmissionController>, body: Bytes) -> String {
    match controller.review_json(&body).await {
        Ok((_, outcome)) => format!(
            "{} ({} mode, {} image(s), {:?})\n",
            outcome.verdict.as_str(),
            outcome.mode,
            outcome.images.len(),
            outcome.duration
        ),
        Err(e) => format!("not a review: {e}\n"),
    }
}
