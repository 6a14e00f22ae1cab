//! Issue 4 acceptance: the Lacework client, source and cache against the Lacework API v2
//! emulator (tests/lacework-emulator), started in-process on a loopback port per test. (Issue 8's
//! summary-first lookup changed the request counts asserted here; its own acceptance tests are
//! in `lacework_truth.rs`.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use helios_core::image::ImageRef;
use helios_core::scan::lacework::{ClientBuilder, LaceworkClient, LaceworkSource, NoScan};
use helios_core::scan::{CachedSource, Lookup, ScanSource, ScanStatus};
use helios_core::{Error, Result};
use helios_lacework_emulator::{Emulator, EmulatorBuilder, Endpoint, Fault, FaultKind};

#[path = "support/shared.rs"]
mod shared;

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const UNKNOWN: &str = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

fn io(e: std::io::Error) -> Error {
    Error::unavailable("emulator", e.to_string())
}

fn fail(e: impl ToString) -> Error {
    Error::InvalidInput {
        what: "test".into(),
        reason: e.to_string(),
    }
}

async fn emulator(b: EmulatorBuilder) -> Result<Emulator> {
    b.start().await.map_err(io)
}

/// A client for `emu` with fast test timings: one 7-day window, no image-id fallback (so a
/// lookup is one summary search, plus one row search for an image with findings), quick retries
/// and polls.
fn builder(emu: &Emulator) -> ClientBuilder {
    LaceworkClient::builder()
        .account(emu.url())
        .api_key(emu.key_id())
        .api_secret(emu.secret())
        .look_back(Duration::from_secs(7 * 24 * 3600))
        .image_id_fallback(false)
        .retries(3, Duration::from_millis(10), Duration::from_millis(50))
        .poll_interval(Duration::from_millis(20), Duration::from_millis(100))
        .max_wait(Duration::from_secs(10))
}

fn image(s: &str) -> Result<ImageRef> {
    ImageRef::parse(s)
}

fn within(ms: u64) -> Lookup {
    Lookup {
        deadline: Some(Instant::now() + Duration::from_millis(ms)),
        dry_run: false,
    }
}

#[tokio::test]
async fn one_token_for_50_sequential_and_50_concurrent_calls() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).build()?;
    let img = image(&format!("registry.example.com/team/app@{A}"))?;
    for _ in 0..50 {
        let report = client.find_scan(&img, None).await?;
        assert_eq!(report.id.as_deref(), Some("eval-a-new"));
    }
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, img) = (client.clone(), img.clone());
        tasks.push(tokio::spawn(
            async move { client.find_scan(&img, None).await },
        ));
    }
    for t in tasks {
        let report = t.await.map_err(fail)??;
        assert_eq!(report.status, ScanStatus::Completed);
    }
    assert_eq!(emu.count(Endpoint::Tokens), 1, "{:?}", emu.counters());
    assert_eq!(emu.count(Endpoint::Search), 100);
    Ok(())
}

#[tokio::test]
async fn newest_evaluation_wins() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).build()?;
    let report = client
        .find_scan(
            &image(&format!("registry.example.com/team/app:1.4@{A}"))?,
            None,
        )
        .await?;
    assert_eq!(report.status, ScanStatus::Completed);
    assert_eq!(report.id.as_deref(), Some("eval-a-new"));
    assert_eq!(report.summary.total, 2);
    assert_eq!(report.summary.high, 1);
    assert_eq!(report.summary.fixable, 1);
    assert_eq!(report.scanned_at.as_deref(), Some("2024-06-01T11:00:00Z"));
    assert_eq!(report.digest.as_deref(), Some(A));
    // The evaluation time is the rows' `startTime` (shifted by the emulator to an hour ago).
    let evaluated = report.evaluated_at.as_deref().unwrap_or_default();
    assert!(evaluated > "2025", "{evaluated}");
    Ok(())
}

#[tokio::test]
async fn token_is_refreshed_after_expiry_and_once_on_401() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).token_expiry(Duration::from_secs(1)).build()?;
    let img = image(&format!("registry.example.com/team/app@{A}"))?;
    client.find_scan(&img, None).await?;
    client.find_scan(&img, None).await?;
    assert_eq!(emu.count(Endpoint::Tokens), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.find_scan(&img, None).await?;
    assert_eq!(emu.count(Endpoint::Tokens), 2, "refreshed after expiry");

    // The server revokes the token early: one 401, one re-authentication, one retry.
    emu.expire_tokens();
    let report = client.find_scan(&img, None).await?;
    assert_eq!(report.status, ScanStatus::Completed);
    assert_eq!(emu.count(Endpoint::Tokens), 3);
    assert_eq!(
        emu.count(Endpoint::ImageSummary),
        5,
        "4 lookups + the rejected one + its retry"
    );
    assert_eq!(emu.count(Endpoint::Search), 4);

    // A server that keeps answering 401 gets one retry, not a loop.
    emu.inject(Fault::once(Endpoint::Search, FaultKind::Unauthorized).times(5));
    let err = client.find_scan(&img, None).await.err();
    assert!(matches!(err, Some(Error::Auth { .. })), "{err:?}");
    assert_eq!(emu.count(Endpoint::Search), 6);
    Ok(())
}

#[tokio::test]
async fn bad_credentials_give_one_clear_error_without_a_retry_storm() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).api_secret("_wrong_secret_value").build()?;
    let img = image(&format!("registry.example.com/team/app@{A}"))?;
    let err = client.find_scan(&img, None).await.err();
    let Some(err @ Error::Auth { .. }) = err else {
        return Err(fail(format!("expected an auth error, got {err:?}")));
    };
    let text = err.to_string();
    assert!(text.contains("rejected the credentials"), "{text}");
    assert!(text.contains("Invalid API key id or secret"), "{text}");
    assert!(text.contains("LW_API_KEY"), "{text}");

    // 20 concurrent lookups through the source: all unavailable, no new token requests.
    let source = Arc::new(LaceworkSource::new(client, NoScan::RequestScan));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (source, img) = (source.clone(), img.clone());
        tasks.push(tokio::spawn(async move {
            source.scan(&img, Lookup::default()).await
        }));
    }
    for t in tasks {
        let report = t.await.map_err(fail)??;
        assert_eq!(report.status, ScanStatus::Unavailable);
        assert!(
            report
                .error
                .unwrap_or_default()
                .contains("rejected the credentials")
        );
    }
    assert_eq!(emu.count(Endpoint::Tokens), 1, "{:?}", emu.counters());
    assert_eq!(emu.count(Endpoint::ImageSummary), 0);
    assert_eq!(emu.count(Endpoint::Search), 0);
    Ok(())
}

#[tokio::test]
async fn a_three_page_result_is_assembled_completely() -> Result<()> {
    let emu = emulator(Emulator::builder().page_size(2)).await?;
    let client = builder(&emu).build()?;
    let report = client
        .find_scan(&image(&format!("nginx:1.25@{B}"))?, None)
        .await?;
    assert_eq!(report.status, ScanStatus::Completed);
    assert_eq!(report.summary.total, 5);
    assert_eq!(report.summary.info, 1, "Negligible counts as info");
    assert_eq!(emu.count(Endpoint::Search), 1);
    assert_eq!(emu.count(Endpoint::SearchPage), 2);
    Ok(())
}

#[tokio::test]
async fn no_content_and_unknown_digests_are_not_found() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    // Default look-back (30 days = 5 windows of at most 7 days) with the image-id fallback.
    let client = LaceworkClient::builder()
        .account(emu.url())
        .api_key(emu.key_id())
        .api_secret(emu.secret())
        .build()?;
    let report = client
        .find_scan(
            &image(&format!("registry.example.com/team/x@{UNKNOWN}"))?,
            None,
        )
        .await?;
    assert_eq!(report.status, ScanStatus::NotFound);
    assert_eq!(
        emu.count(Endpoint::ImageSummary),
        2,
        "one summary search by digest, one by image id"
    );
    assert_eq!(emu.count(Endpoint::Search), 0, "no record: no row search");

    // A bare 204 on a single search.
    let now = chrono::Utc::now();
    let rows = client
        .search_rows(
            &[helios_core::scan::lacework::Filter::eq(
                "vulnId",
                "CVE-0000-0000",
            )],
            now - chrono::Duration::days(1),
            now,
            None,
        )
        .await?;
    assert!(rows.is_empty());
    Ok(())
}

#[tokio::test]
async fn search_walks_back_in_7_day_windows_and_by_tag() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu)
        .look_back(Duration::from_secs(30 * 24 * 3600))
        .build()?;
    let report = client
        .find_scan(
            &image(&format!("registry.example.com/team/legacy@{C}"))?,
            None,
        )
        .await?;
    assert_eq!(report.id.as_deref(), Some("eval-c"));
    assert_eq!(emu.count(Endpoint::Search), 3, "found in the third window");

    let by_tag = client
        .find_scan(&image("registry.example.com/team/app:1.4")?, None)
        .await?;
    assert_eq!(by_tag.id.as_deref(), Some("eval-a-new"));
    Ok(())
}

#[tokio::test]
async fn on_demand_scan_is_requested_polled_and_its_rows_fetched() -> Result<()> {
    let emu = emulator(Emulator::builder().scan_duration(Duration::from_millis(150))).await?;
    let source = LaceworkSource::new(
        builder(&emu).build()?,
        NoScan::ScanAndWait {
            wait: Duration::from_secs(5),
        },
    );
    let img = image(&format!("registry.example.com/team/new@{UNKNOWN}"))?;
    let report = source.scan(&img, within(5000)).await?;
    assert_eq!(report.status, ScanStatus::Completed, "{report:?}");
    assert_eq!(
        report.summary.total as usize,
        helios_lacework_emulator::generated_vuln_count(UNKNOWN)
    );
    assert_eq!(emu.count(Endpoint::Scan), 1);
    assert!(emu.count(Endpoint::ScanStatus) >= 1);
    assert_eq!(emu.count(Endpoint::ImageSummary), 1, "the lookup");
    assert_eq!(emu.count(Endpoint::Search), 1, "that request's rows");

    // Now that it is scanned, a plain lookup finds it.
    let again = source.scan(&img, within(5000)).await?;
    assert_eq!(again.status, ScanStatus::Completed);
    assert_eq!(
        again.id,
        report.id,
        "{again:?} {report:?} {:?}",
        emu.counters()
    );
    assert_eq!(emu.count(Endpoint::Scan), 1);
    Ok(())
}

#[tokio::test]
async fn request_scan_answers_pending_then_follows_the_same_request() -> Result<()> {
    let emu = emulator(Emulator::builder().scan_duration(Duration::from_millis(100))).await?;
    let source = LaceworkSource::new(builder(&emu).build()?, NoScan::RequestScan);
    let img = image("registry.example.com/team/fresh:2.0")?;
    let first = source.scan(&img, within(2000)).await?;
    assert_eq!(first.status, ScanStatus::Pending);
    assert!(first.id.is_some());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = source.scan(&img, within(2000)).await?;
    assert_eq!(second.status, ScanStatus::Completed, "{second:?}");
    assert_eq!(
        emu.count(Endpoint::Scan),
        1,
        "followed up, not requested again"
    );
    Ok(())
}

#[tokio::test]
async fn failed_scans_none_and_dry_run() -> Result<()> {
    let emu = emulator(Emulator::builder().scan_duration(Duration::from_millis(10))).await?;
    let client = builder(&emu).build()?;
    let wait = LaceworkSource::new(
        client.clone(),
        NoScan::ScanAndWait {
            wait: Duration::from_secs(3),
        },
    );
    let failed = wait
        .scan(
            &image("registry.example.com/team/unsupported-thing:1")?,
            within(3000),
        )
        .await?;
    assert_eq!(failed.status, ScanStatus::Failed);
    assert!(
        failed
            .error
            .unwrap_or_default()
            .contains("Unsupported image")
    );

    let clean = wait
        .scan(
            &image("registry.example.com/team/clean-base:1")?,
            within(3000),
        )
        .await?;
    assert_eq!(
        clean.status,
        ScanStatus::Completed,
        "a scan without findings is a clean image"
    );
    assert_eq!(clean.summary.total, 0);

    let img = image(&format!("registry.example.com/team/other@{UNKNOWN}"))?;
    let dry = wait
        .scan(
            &img,
            Lookup {
                deadline: None,
                dry_run: true,
            },
        )
        .await?;
    assert_eq!(dry.status, ScanStatus::NotFound);
    let none = LaceworkSource::new(client, NoScan::None)
        .scan(&img, Lookup::default())
        .await?;
    assert_eq!(none.status, ScanStatus::NotFound);
    assert_eq!(
        emu.count(Endpoint::Scan),
        2,
        "only the unsupported and the clean image"
    );
    Ok(())
}

#[tokio::test]
async fn two_hundred_concurrent_lookups_make_one_summary_search_and_one_scan_request() -> Result<()>
{
    let emu = emulator(Emulator::builder().scan_duration(Duration::from_secs(60))).await?;
    let source = Arc::new(CachedSource::new(LaceworkSource::new(
        builder(&emu).build()?,
        NoScan::RequestScan,
    )));
    let img = image(&format!("registry.example.com/team/new@{UNKNOWN}"))?;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (source, img) = (source.clone(), img.clone());
        tasks.push(tokio::spawn(async move {
            source.scan(&img, within(5000)).await
        }));
    }
    for t in tasks {
        let report = t.await.map_err(fail)??;
        assert_eq!(report.status, ScanStatus::Pending);
    }
    assert_eq!(emu.count(Endpoint::ImageSummary), 1, "{:?}", emu.counters());
    assert_eq!(emu.count(Endpoint::Search), 0);
    assert_eq!(emu.count(Endpoint::Scan), 1);
    Ok(())
}

#[tokio::test]
async fn rate_limit_inside_the_deadline_waits_beyond_it_is_unavailable() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let source = LaceworkSource::new(builder(&emu).build()?, NoScan::None);
    let img = image(&format!("registry.example.com/team/app@{A}"))?;

    emu.inject(Fault::once(
        Endpoint::Search,
        FaultKind::RateLimit {
            retry_after: Some(1),
            reset: None,
        },
    ));
    let started = Instant::now();
    let ok = source.scan(&img, within(3000)).await?;
    assert_eq!(ok.status, ScanStatus::Completed);
    assert!(started.elapsed() >= Duration::from_secs(1));

    emu.inject(Fault::once(
        Endpoint::Search,
        FaultKind::RateLimit {
            retry_after: Some(1),
            reset: None,
        },
    ));
    let started = Instant::now();
    let late = source.scan(&img, within(500)).await?;
    assert_eq!(late.status, ScanStatus::Unavailable);
    let reason = late.error.unwrap_or_default();
    assert!(
        reason.contains("rate limited") && reason.contains("429"),
        "{reason}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "did not wait in vain"
    );

    // RateLimit-Reset is honoured when Retry-After is absent.
    emu.inject(Fault::once(
        Endpoint::Search,
        FaultKind::RateLimit {
            retry_after: None,
            reset: Some(1),
        },
    ));
    let ok = source.scan(&img, within(3000)).await?;
    assert_eq!(ok.status, ScanStatus::Completed);
    Ok(())
}

#[tokio::test]
async fn server_errors_and_broken_bodies_are_retried_then_unavailable() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).build()?;
    let img = image(&format!("registry.example.com/team/app@{A}"))?;

    emu.inject(Fault::once(Endpoint::Search, FaultKind::ServerError { status: 503 }).times(2));
    assert_eq!(
        client.find_scan(&img, None).await?.status,
        ScanStatus::Completed
    );
    assert_eq!(emu.count(Endpoint::Search), 3);

    emu.inject(Fault::once(Endpoint::Search, FaultKind::Truncated));
    assert_eq!(
        client.find_scan(&img, None).await?.status,
        ScanStatus::Completed
    );

    emu.inject(Fault::once(Endpoint::Search, FaultKind::ServerError { status: 500 }).times(10));
    let err = client.find_scan(&img, None).await.err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(matches!(err, Some(Error::Unavailable { .. })), "{err:?}");
    assert!(
        text.contains("HTTP 500") && text.contains("4 attempts"),
        "{text}"
    );
    emu.reset();

    emu.inject(Fault::once(Endpoint::Search, FaultKind::Malformed));
    let err = client.find_scan(&img, None).await.err();
    assert!(
        matches!(&err, Some(Error::Remote { message, .. }) if message.contains("malformed")),
        "{err:?}"
    );

    emu.inject(Fault::once(Endpoint::Search, FaultKind::Slow { delay_ms: 2000 }).times(10));
    let quick = builder(&emu).timeout(Duration::from_millis(100)).build()?;
    let started = Instant::now();
    let err = quick
        .find_scan(&img, Some(Instant::now() + Duration::from_millis(600)))
        .await
        .err();
    assert!(matches!(err, Some(Error::Unavailable { .. })), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
    Ok(())
}

#[tokio::test]
async fn the_client_side_budget_is_shared_by_clones() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu)
        .request_budget(7, Duration::from_secs(3600))
        .build()?;
    let img = image(&format!("registry.example.com/team/app@{A}"))?;
    client.find_scan(&img, None).await?; // token + summary + search
    client.clone().find_scan(&img, None).await?; // summary + search
    client.clone().find_scan(&img, None).await?; // summary + search: budget spent
    let err = client
        .find_scan(&img, Some(Instant::now() + Duration::from_secs(5)))
        .await
        .err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(matches!(err, Some(Error::Unavailable { .. })), "{err:?}");
    assert!(
        text.contains("budget") && text.contains("7 requests per 3600 s"),
        "{text}"
    );
    assert_eq!(emu.count(Endpoint::Search), 3);
    Ok(())
}

#[tokio::test]
async fn rejected_scan_requests_carry_laceworks_message() -> Result<()> {
    let emu = emulator(Emulator::builder().registries(&["registry.example.com"])).await?;
    let client = builder(&emu).build()?;
    let err = client
        .request_scan(&image(&format!("ghcr.io/org/tool@{UNKNOWN}"))?, None)
        .await
        .err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(matches!(err, Some(Error::Remote { .. })), "{err:?}");
    assert!(
        text.contains("Could not find integration matching the registry provided"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn reference_fixtures_are_served_when_present() -> Result<()> {
    let shared = helios_lacework_emulator::shared_fixtures_dir();
    if !shared::present("reference_fixtures_are_served_when_present", &shared) {
        return Ok(());
    }
    let emu = emulator(Emulator::builder().page_size(1)).await?;
    let client = builder(&emu).build()?;
    let digest = "sha256:77b2d2246518044ef95e3dbd029e51dd477788e5bf8e278e418685aabc3fe28a";
    let report = client
        .find_scan(&image(&format!("techally-test/test-cli@{digest}"))?, None)
        .await?;
    assert_eq!(report.status, ScanStatus::Completed);
    assert_eq!(
        report.id.as_deref(),
        Some("781865fdff984def2587b5f05065f0db")
    );
    let from_file = helios_core::scan::ScanReport::from_scan_file(
        &shared.join("v2-containers-search-response-paged-with-evalguid.json"),
        Some(digest),
    )?;
    assert_eq!(report.vulnerabilities, from_file.vulnerabilities);
    assert_eq!(report.summary, from_file.summary);
    Ok(())
}

#[tokio::test]
async fn the_subaccount_header_is_sent() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).subaccount("team-a").build()?;
    client
        .find_scan(&image(&format!("registry.example.com/team/app@{A}"))?, None)
        .await?;
    assert_eq!(
        emu.account_names(),
        vec!["team-a".to_string(); 3],
        "token, summary and search"
    );
    Ok(())
}

#[tokio::test]
async fn a_request_lacework_forgot_is_requested_again() -> Result<()> {
    let emu = emulator(Emulator::builder().scan_duration(Duration::from_secs(60))).await?;
    let source = LaceworkSource::new(builder(&emu).build()?, NoScan::RequestScan);
    let img = image(&format!("registry.example.com/team/new@{UNKNOWN}"))?;
    let first = source.scan(&img, within(2000)).await?;
    assert_eq!(first.status, ScanStatus::Pending);
    emu.forget_scans();
    let second = source.scan(&img, within(2000)).await?;
    assert_eq!(second.status, ScanStatus::Pending);
    assert_ne!(
        second.id, first.id,
        "a new request replaced the forgotten one"
    );
    assert_eq!(emu.count(Endpoint::Scan), 2);
    assert_eq!(emu.count(Endpoint::ScanStatus), 1);
    Ok(())
}
