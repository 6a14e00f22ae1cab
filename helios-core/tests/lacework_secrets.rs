//! The API secret and access tokens never appear in a log line, an error message or `Debug`
//! output: every tracing event of every crate (reqwest, hyper included, at TRACE) is captured
//! while the client runs its happy path and its failure paths against the emulator.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use helios_core::image::ImageRef;
use helios_core::scan::lacework::{LaceworkClient, LaceworkSource, NoScan};
use helios_core::scan::{CachedSource, Lookup, ScanSource};
use helios_core::{Error, Result};
use helios_lacework_emulator::{Emulator, Endpoint, Fault, FaultKind};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn fail(e: impl ToString) -> Error {
    Error::InvalidInput {
        what: "test".into(),
        reason: e.to_string(),
    }
}

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const UNKNOWN: &str = "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

#[tokio::test]
async fn secret_and_tokens_never_leak() -> Result<()> {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).map_err(fail)?;

    let emu = Emulator::builder()
        .scan_duration(Duration::from_millis(20))
        .start()
        .await
        .map_err(fail)?;
    let secret = emu.secret();
    let builder = LaceworkClient::builder()
        .account(emu.url())
        .api_key(emu.key_id())
        .api_secret(secret.clone())
        .look_back(Duration::from_secs(7 * 24 * 3600))
        .retries(1, Duration::from_millis(5), Duration::from_millis(10))
        .poll_interval(Duration::from_millis(10), Duration::from_millis(20));
    let mut seen = vec![format!("{builder:?}")];
    let client = builder.clone().build()?;
    seen.push(format!("{client:?}"));

    // Happy path, on-demand scan, re-auth after a revoked token, every fault kind.
    let source = CachedSource::new(LaceworkSource::new(
        client.clone(),
        NoScan::ScanAndWait {
            wait: Duration::from_secs(3),
        },
    ));
    seen.push(format!("{source:?}"));
    let img = ImageRef::parse(&format!("registry.example.com/team/app@{A}"))?;
    let deadline = || Lookup {
        deadline: Some(Instant::now() + Duration::from_secs(3)),
        dry_run: false,
    };
    seen.push(format!("{:?}", source.scan(&img, deadline()).await?));
    let new = ImageRef::parse(&format!("registry.example.com/team/new@{UNKNOWN}"))?;
    seen.push(format!("{:?}", source.scan(&new, deadline()).await?));
    emu.expire_tokens();
    seen.push(format!("{:?}", client.find_scan(&img, None).await));
    for fault in [
        FaultKind::Unauthorized,
        FaultKind::Malformed,
        FaultKind::Truncated,
        FaultKind::ServerError { status: 502 },
        FaultKind::RateLimit {
            retry_after: Some(30),
            reset: None,
        },
    ] {
        emu.inject(Fault::once(Endpoint::Search, fault).times(3));
        let result = client
            .find_scan(&img, Some(Instant::now() + Duration::from_secs(2)))
            .await;
        if let Err(e) = &result {
            seen.push(e.to_string());
        }
        seen.push(format!("{result:?}"));
        emu.reset();
    }

    // Wrong secret, and a wrong key id: the rejection path.
    for (key, bad) in [
        (emu.key_id(), "_not_the_secret_value"),
        ("NOPE".to_string(), secret.as_str()),
    ] {
        let bad_client = builder.clone().api_key(key).api_secret(bad).build()?;
        let result = bad_client.find_scan(&img, None).await;
        if let Err(e) = &result {
            seen.push(e.to_string());
        }
        seen.push(format!("{result:?} {bad_client:?}"));
        let report = LaceworkSource::new(bad_client, NoScan::None)
            .scan(&img, Lookup::default())
            .await?;
        seen.push(format!("{report:?}"));
    }

    let tokens = emu.issued_tokens();
    assert!(tokens.len() >= 2, "the run used tokens: {tokens:?}");
    let logs = String::from_utf8_lossy(&capture.0.lock().map_err(fail)?).to_string();
    assert!(logs.contains("lacework request"), "logs were captured");
    let everything = format!("{}\n{}", seen.join("\n"), logs);
    for needle in std::iter::once(secret.as_str())
        .chain(["_not_the_secret_value"])
        .chain(tokens.iter().map(String::as_str))
    {
        assert!(
            !everything.contains(needle),
            "{needle:?} leaked:\n{}",
            everything
                .lines()
                .filter(|l| l.contains(needle))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}
