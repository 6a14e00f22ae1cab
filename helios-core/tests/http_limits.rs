//! Issue 16: the webhook's HTTP limits against hostile clients — an announced oversize body is
//! refused before it is read, and a body trickled byte by byte does not hold the connection.
#![cfg(feature = "webhook")]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use helios_core::admission::server::{BODY_READ_TIMEOUT, Metrics, router};
use helios_core::admission::{AdmissionController, ControllerConfig};
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::DirSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Serves the webhook's routes over plain HTTP on loopback (TLS is not what is tested here).
async fn start() -> std::result::Result<String, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let controller = AdmissionController::new(
        Arc::new(DirSource::open(dir.path())?),
        Arc::new(EmbeddedEvaluator::default_policy()?),
        ControllerConfig::default(),
    );
    let app = router(
        controller,
        Arc::new(Metrics::new()),
        Arc::new(AtomicBool::new(true)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        let _dir = dir;
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

async fn read_status(conn: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 64];
    match conn.read(&mut buf).await {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).to_string(),
        Err(e) => format!("read error: {e}"),
    }
}

#[tokio::test]
async fn an_announced_oversize_body_is_refused_before_it_is_sent() -> TestResult {
    let addr = start().await?;
    let mut conn = TcpStream::connect(&addr).await?;
    conn.write_all(
        b"POST /validate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10000000000\r\n\r\n",
    )
    .await?;
    // Not a byte of the body is sent: the answer must come from the header alone.
    let answer = tokio::time::timeout(Duration::from_secs(5), read_status(&mut conn)).await;
    let answer = answer.unwrap_or_else(|_| "no answer within 5 s".into());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    Ok(())
}

#[tokio::test]
async fn a_trickled_body_does_not_hold_the_connection() -> TestResult {
    let addr = start().await?;
    let mut conn = TcpStream::connect(&addr).await?;
    conn.write_all(
        b"POST /validate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
    )
    .await?;
    // One byte a second, for longer than the body timeout; the server must answer (and stop
    // waiting) by then.
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if conn.write_all(b" ").await.is_err() {
                break;
            }
            let mut buf = [0u8; 64];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), conn.read(&mut buf)).await
            {
                return String::from_utf8_lossy(&buf[..n]).to_string();
            }
        }
        String::from("closed")
    };
    let answer = tokio::time::timeout(BODY_READ_TIMEOUT + Duration::from_secs(5), trickle).await;
    let answer = answer.unwrap_or_else(|_| "still open".into());
    assert!(answer != "still open", "{answer}");
    Ok(())
}
