//! A Helios webhook served over real TLS on loopback, with a fresh self-signed certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use helios_core::admission::AdmissionController;
use helios_core::admission::server::{Metrics, ServerOptions, serve};

/// A running webhook; it stops when the test's runtime ends.
pub struct TlsWebhook {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificate (self-signed: also the client's trust root), PEM.
    pub ca_pem: String,
    /// The certificate file it serves (and watches for rotation).
    pub cert_file: PathBuf,
    /// The key file it serves.
    pub key_file: PathBuf,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Holds the certificate files.
    pub dir: tempfile::TempDir,
}

/// Serves `controller` with a certificate for `name` (a DNS name, or an IP address such as
/// `127.0.0.1`), checking the certificate files for changes every `reload`.
pub async fn serve_tls(
    controller: AdmissionController,
    name: &str,
    reload: Duration,
) -> Result<TlsWebhook, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let key = rcgen::generate_simple_self_signed(vec![name.to_string()])?;
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, key.cert.pem())?;
    std::fs::write(&key_file, key.signing_key.serialize_pem())?;
    let metrics = Arc::new(Metrics::new());
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let _task = serve(
        listener,
        controller,
        ServerOptions {
            tls_cert: cert_file.clone(),
            tls_key: key_file.clone(),
            reload_interval: reload,
            shutdown_delay: Duration::ZERO,
            grace: Duration::from_secs(1),
            limits: Default::default(),
            decision_logs: None,
        },
        metrics.clone(),
        futures_util::stream::pending(),
    )
    .await?;
    Ok(TlsWebhook {
        addr,
        ca_pem: key.cert.pem(),
        cert_file,
        key_file,
        metrics,
        dir,
    })
}
