//! Issue 8 acceptance: a clean image is never "not found", the newest evaluation wins, one image
//! may have several digests — against the Lacework API v2 emulator (tests/lacework-emulator) and
//! its project fixtures (`tests/fixtures/lacework-emulator/image-summaries.json`,
//! `images-reevaluated.json`, `image-multi-arch-platform.json`).

use std::time::{Duration, Instant};

use helios_core::image::ImageRef;
use helios_core::scan::lacework::{ClientBuilder, LaceworkClient, LaceworkSource, NoScan};
use helios_core::scan::{CachedSource, Lookup, ScanReport, ScanSource, ScanStatus, Severity};
use helios_core::{Error, Result};
use helios_lacework_emulator::{Emulator, EmulatorBuilder, Endpoint};

#[path = "support/shared.rs"]
mod shared;

/// Scanned with findings (two evaluations; the newer one has 2 findings).
const WITH_FINDINGS: &str =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// Scanned, no findings: a summary and no rows.
const CLEAN: &str = "sha256:c1ea000000000000000000000000000000000000000000000000000000000000";
/// A scan Lacework reports as `Failed`.
const FAILED: &str = "sha256:fa11000000000000000000000000000000000000000000000000000000000000";
/// An image Lacework reports as `Unsupported`.
const UNSUPPORTED: &str = "sha256:dead000000000000000000000000000000000000000000000000000000000000";
/// Never scanned.
const UNKNOWN: &str = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
/// Re-evaluated without the initial scan's critical.
const REEVAL_FIXED: &str =
    "sha256:4e01000000000000000000000000000000000000000000000000000000000000";
/// Re-evaluated with a critical published after the scan.
const REEVAL_NEW_CVE: &str =
    "sha256:4e02000000000000000000000000000000000000000000000000000000000000";
/// A multi-arch index (clean summary) and its linux/amd64 manifest (1 critical).
const INDEX: &str = "sha256:1dec000000000000000000000000000000000000000000000000000000000000";
const PLATFORM: &str = "sha256:a4d6000000000000000000000000000000000000000000000000000000000000";

fn io(e: std::io::Error) -> Error {
    Error::unavailable("emulator", e.to_string())
}

async fn emulator(b: EmulatorBuilder) -> Result<Emulator> {
    b.start().await.map_err(io)
}

/// A client with the default look-back and image-id fallback (what users get), quick polls.
fn builder(emu: &Emulator) -> ClientBuilder {
    LaceworkClient::builder()
        .account(emu.url())
        .api_key(emu.key_id())
        .api_secret(emu.secret())
        .retries(2, Duration::from_millis(10), Duration::from_millis(50))
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

/// (image_summary, search + search_page, scan) requests so far.
fn requests(emu: &Emulator) -> (u64, u64, u64) {
    (
        emu.count(Endpoint::ImageSummary),
        emu.count(Endpoint::Search) + emu.count(Endpoint::SearchPage),
        emu.count(Endpoint::Scan),
    )
}

#[tokio::test]
async fn a_clean_image_is_completed_from_one_summary_search() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).build()?;
    let report = client
        .find_scan(
            &image(&format!("registry.example.com/team/clean-app:3.0@{CLEAN}"))?,
            None,
        )
        .await?;
    assert_eq!(report.status, ScanStatus::Completed, "{report:?}");
    assert_eq!(report.summary.total, 0);
    assert!(report.vulnerabilities.is_empty());
    assert_eq!(report.digest.as_deref(), Some(CLEAN));
    assert!(report.scanned_at.is_some(), "scanned_at from lastScanTime");
    assert_eq!(report.error, None);
    assert_eq!(requests(&emu), (1, 0, 0), "{:?}", emu.counters());

    // Through the source in every mode: never a scan request for a clean image.
    for mode in [
        NoScan::ScanAndWait {
            wait: Duration::from_secs(5),
        },
        NoScan::RequestScan,
        NoScan::None,
    ] {
        let source = LaceworkSource::new(client.clone(), mode);
        let report = source
            .scan(
                &image(&format!("registry.example.com/team/clean-app@{CLEAN}"))?,
                within(5000),
            )
            .await?;
        assert_eq!(report.status, ScanStatus::Completed, "{mode:?}");
    }
    assert_eq!(emu.count(Endpoint::Scan), 0);
    Ok(())
}

#[tokio::test]
async fn a_clean_image_scanned_on_demand_is_found_clean_afterwards() -> Result<()> {
    let emu = emulator(Emulator::builder().scan_duration(Duration::from_millis(50))).await?;
    let client = builder(&emu).build()?;
    let img = image(&format!("registry.example.com/team/clean-new@{UNKNOWN}"))?;
    let wait = LaceworkSource::new(
        client.clone(),
        NoScan::ScanAndWait {
            wait: Duration::from_secs(5),
        },
    );
    let first = wait.scan(&img, within(5000)).await?;
    assert_eq!(first.status, ScanStatus::Completed, "{first:?}");
    assert_eq!(first.summary.total, 0);
    assert_eq!(emu.count(Endpoint::Scan), 1);

    // A second lookup, by a fresh source (a new pipeline run): with and without scanning.
    for mode in [
        NoScan::None,
        NoScan::ScanAndWait {
            wait: Duration::from_secs(5),
        },
    ] {
        let again = LaceworkSource::new(client.clone(), mode)
            .scan(&img, within(5000))
            .await?;
        assert_eq!(again.status, ScanStatus::Completed, "{mode:?}: {again:?}");
        assert_eq!(again.summary.total, 0);
        assert_eq!(again.digest.as_deref(), Some(UNKNOWN));
    }
    assert_eq!(emu.count(Endpoint::Scan), 1, "no second scan request");
    Ok(())
}

/// Admission: the cache entry of a clean image expires; the next lookup asks Lacework again and
/// gets `completed` — never `pending`, never a scan request.
#[tokio::test]
async fn a_clean_image_stays_completed_after_its_cache_entry_expires() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let source = CachedSource::new(LaceworkSource::new(
        builder(&emu).build()?,
        NoScan::RequestScan,
    ))
    .ttl(Duration::from_millis(50));
    let img = image(&format!("registry.example.com/team/clean-app@{CLEAN}"))?;
    for _ in 0..3 {
        let report = source.scan(&img, within(5000)).await?;
        assert_eq!(report.status, ScanStatus::Completed, "{report:?}");
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    assert_eq!(
        emu.count(Endpoint::ImageSummary),
        3,
        "asked again after each expiry"
    );
    assert_eq!(emu.count(Endpoint::Scan), 0);
    Ok(())
}

#[tokio::test]
async fn not_found_failed_and_unsupported_stay_distinct() -> Result<()> {
    let emu = emulator(Emulator::builder().scan_duration(Duration::from_millis(10))).await?;
    let client = builder(&emu).build()?;
    let source = LaceworkSource::new(
        client.clone(),
        NoScan::ScanAndWait {
            wait: Duration::from_secs(3),
        },
    );
    let failed = source
        .scan(
            &image(&format!("registry.example.com/team/broken@{FAILED}"))?,
            within(3000),
        )
        .await?;
    assert_eq!(failed.status, ScanStatus::Failed, "{failed:?}");
    let why = failed.error.clone().unwrap_or_default();
    assert!(why.contains("failed") && why.contains("Failed"), "{why}");
    assert_eq!(failed.digest.as_deref(), Some(FAILED));

    let unsupported = source
        .scan(
            &image(&format!(
                "registry.example.com/team/scratch-tool@{UNSUPPORTED}"
            ))?,
            within(3000),
        )
        .await?;
    assert_eq!(unsupported.status, ScanStatus::Failed, "{unsupported:?}");
    let why = unsupported.error.clone().unwrap_or_default();
    assert!(
        why.contains("not supported") && why.contains("Unsupported"),
        "{why}"
    );
    assert_eq!(
        emu.count(Endpoint::Scan),
        0,
        "a failed scan is a record: no new request"
    );

    let unknown = LaceworkSource::new(client.clone(), NoScan::None)
        .scan(
            &image(&format!("registry.example.com/team/x@{UNKNOWN}"))?,
            within(3000),
        )
        .await?;
    assert_eq!(unknown.status, ScanStatus::NotFound);
    assert_eq!(unknown.error, None);

    // An image that fails on demand is `failed` then, and later from its summary, without a
    // second request.
    let img = image("registry.example.com/team/unsupported-thing:1")?;
    let first = source.scan(&img, within(3000)).await?;
    assert_eq!(first.status, ScanStatus::Failed, "{first:?}");
    let later = LaceworkSource::new(client, NoScan::RequestScan)
        .scan(&img, within(3000))
        .await?;
    assert_eq!(later.status, ScanStatus::Failed, "{later:?}");
    assert!(later.error.unwrap_or_default().contains("not supported"));
    assert_eq!(emu.count(Endpoint::Scan), 1);
    Ok(())
}

/// The re-evaluation (later `startTime`, same scan time, `is_reeval: true`) decides, whichever
/// way the GUIDs sort: in the fixtures the re-evaluation's GUID sorts first.
#[tokio::test]
async fn the_newest_evaluation_decides_in_both_directions() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).build()?;
    let critical = |r: &ScanReport| {
        r.vulnerabilities
            .iter()
            .filter(|v| v.severity == Severity::Critical)
            .count()
    };

    let fixed = client
        .find_scan(
            &image(&format!(
                "registry.example.com/team/reeval-fixed@{REEVAL_FIXED}"
            ))?,
            None,
        )
        .await?;
    assert_eq!(
        fixed.id.as_deref(),
        Some("0000aaaareevaluation0000000000001")
    );
    assert_eq!(critical(&fixed), 0, "{fixed:?}");
    assert_eq!(fixed.summary.total, 1);
    assert_eq!(fixed.scanned_at.as_deref(), Some("2024-05-31T09:00:00Z"));

    let new_cve = client
        .find_scan(
            &image(&format!(
                "registry.example.com/team/reeval-new-cve@{REEVAL_NEW_CVE}"
            ))?,
            None,
        )
        .await?;
    assert_eq!(
        new_cve.id.as_deref(),
        Some("0000bbbbreevaluation0000000000002")
    );
    assert_eq!(critical(&new_cve), 1, "{new_cve:?}");
    assert!(
        new_cve
            .vulnerabilities
            .iter()
            .any(|v| v.id == "CVE-2024-3100")
    );

    // evaluated_at is the re-evaluation's time: a day after the scan, after the initial one.
    for report in [&fixed, &new_cve] {
        let scanned = report.scanned_at.as_deref().unwrap_or_default();
        let evaluated = report.evaluated_at.as_deref().unwrap_or_default();
        assert!(evaluated > scanned, "{evaluated} vs {scanned}");
    }
    Ok(())
}

#[tokio::test]
async fn candidate_digests_are_looked_up_in_one_summary_search() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).build()?;

    // The pod names the index; the registry resolved the platform manifest, which Lacework
    // scanned with a critical: the platform scan decides, and the report says so.
    let mut pod = image(&format!("registry.example.com/team/multi:2.1@{INDEX}"))?;
    pod.platform_digest = Some(PLATFORM.into());
    let report = client.find_scan(&pod, None).await?;
    assert_eq!(report.digest.as_deref(), Some(PLATFORM), "{report:?}");
    assert_eq!(report.summary.critical, 1);
    assert_eq!(
        requests(&emu),
        (1, 1, 0),
        "one summary search for both digests"
    );

    // Only the index known to the lookup: its own (clean) summary.
    let index_only = client
        .find_scan(
            &image(&format!("registry.example.com/team/multi@{INDEX}"))?,
            None,
        )
        .await?;
    assert_eq!(index_only.digest.as_deref(), Some(INDEX));
    assert_eq!(index_only.status, ScanStatus::Completed);
    assert_eq!(index_only.summary.total, 0);

    // A tag resolved by the registry: the resolved digest is searched, not the tag.
    let mut tagged = image("registry.example.com/team/multi:2.1")?;
    tagged.resolved_digest = Some(PLATFORM.into());
    let report = client.find_scan(&tagged, None).await?;
    assert_eq!(report.digest.as_deref(), Some(PLATFORM));

    // A candidate Lacework does not know does not hide one it knows.
    let mut pod = image(&format!("registry.example.com/team/multi@{UNKNOWN}"))?;
    pod.resolved_digest = Some(CLEAN.into());
    let report = client.find_scan(&pod, None).await?;
    assert_eq!(report.digest.as_deref(), Some(CLEAN));
    assert_eq!(report.status, ScanStatus::Completed);
    Ok(())
}

/// The figures of docs/lacework.md ("Requests per lookup"): Lacework requests of one lookup,
/// counted by the emulator, with the default client (image-id fallback on), token excluded.
#[tokio::test]
async fn requests_per_lookup() -> Result<()> {
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).build()?;
    let mut figures = Vec::new();
    for (what, digest, expected) in [
        ("known image with findings", WITH_FINDINGS, (1, 1, 0)),
        ("known clean image", CLEAN, (1, 0, 0)),
        ("unknown image", UNKNOWN, (2, 0, 0)),
    ] {
        emu.reset();
        client
            .find_scan(
                &image(&format!("registry.example.com/team/app@{digest}"))?,
                None,
            )
            .await?;
        let got = requests(&emu);
        figures.push(format!("{what}: {got:?}"));
        assert_eq!(got, expected, "{what}: {:?}", emu.counters());
    }
    let lean = builder(&emu).image_id_fallback(false).build()?;
    emu.reset();
    lean.find_scan(
        &image(&format!("registry.example.com/team/app@{UNKNOWN}"))?,
        None,
    )
    .await?;
    assert_eq!(
        requests(&emu),
        (1, 0, 0),
        "unknown, without the image-id fallback"
    );
    eprintln!(
        "(image_summary, search, scan) per lookup: {}",
        figures.join("; ")
    );
    Ok(())
}

/// The Go SDK's own summary fixture, served when `../shared` is present: its images are
/// reported from their summaries (these have findings but no rows in the shared data, so a
/// lookup reports that inconsistency as a Lacework error rather than a clean image).
#[tokio::test]
async fn the_sdk_summary_fixture_is_understood_when_present() -> Result<()> {
    let shared = helios_lacework_emulator::shared_fixtures_dir();
    if !shared::present(
        "the_sdk_summary_fixture_is_understood_when_present",
        &shared.join("v2-vulnerability-observations-imagesummary-search-response.json"),
    ) {
        return Ok(());
    }
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).build()?;
    let digest = "sha256:8182c226d7d5bc4ce596f31017e62442fd6fdf4796595073d5342094f1b778df";
    let found = client
        .search_image_summaries(
            &[helios_core::scan::lacework::Filter::any("digest", [digest])],
            None,
        )
        .await?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].repository.as_deref(), Some("lacework/jre"));
    assert_eq!(found[0].findings(), 1);
    assert_eq!(found[0].vuln_count_high_fixable, Some(1));
    assert!(found[0].last_scanned().is_some());
    let err = client
        .find_scan(&image(&format!("docker.io/lacework/jre@{digest}"))?, None)
        .await
        .err();
    assert!(
        matches!(&err, Some(Error::Remote { message, .. }) if message.contains("lists 1 findings")),
        "{err:?}"
    );
    Ok(())
}

/// One entry of `tests/fixtures/lacework-emulator/lookups.json`, shared with the Python and
/// Node suites.
#[derive(Debug, serde::Deserialize)]
struct SharedLookup {
    what: String,
    image: String,
    status: ScanStatus,
    total: u64,
    critical: u64,
    digest: Option<String>,
    id: Option<String>,
    error_contains: Option<String>,
    allowed: bool,
}

#[derive(serde::Deserialize)]
struct SharedLookups {
    lookups: Vec<SharedLookup>,
}

/// The expectations the Python and Node suites check through their `scan`/`gate`, checked here
/// through the core (the gate with the shipped default policy).
#[tokio::test]
async fn the_shared_lookup_expectations_hold_in_rust() -> Result<()> {
    let path = helios_lacework_emulator::project_fixtures_dir().join("lookups.json");
    let text = std::fs::read_to_string(&path).map_err(io)?;
    let shared: SharedLookups = serde_json::from_str(&text).map_err(|e| Error::InvalidInput {
        what: path.display().to_string(),
        reason: e.to_string(),
    })?;
    assert!(shared.lookups.len() >= 7);
    let emu = emulator(Emulator::builder()).await?;
    let client = builder(&emu).build()?;
    let gate =
        helios_core::gate::Gate::new(helios_core::policy::EmbeddedEvaluator::default_policy()?);
    for case in &shared.lookups {
        let mode = if case.status == ScanStatus::NotFound {
            NoScan::None
        } else {
            // Known images must not be scanned again, even when a lookup may request scans.
            NoScan::ScanAndWait {
                wait: Duration::from_secs(5),
            }
        };
        let img = image(&case.image)?;
        let report = LaceworkSource::new(client.clone(), mode)
            .scan(&img, within(5000))
            .await?;
        let what = &case.what;
        assert_eq!(report.status, case.status, "{what}: {report:?}");
        assert_eq!(report.summary.total, case.total, "{what}");
        assert_eq!(report.summary.critical, case.critical, "{what}");
        assert_eq!(report.digest, case.digest, "{what}");
        assert_eq!(report.id, case.id, "{what}");
        match &case.error_contains {
            Some(part) => assert!(
                report
                    .error
                    .as_deref()
                    .unwrap_or_default()
                    .contains(part.as_str()),
                "{what}: {:?}",
                report.error
            ),
            None => assert_eq!(report.error, None, "{what}"),
        }
        let outcome = gate.check(img, report, None).await?;
        assert_eq!(
            outcome.decision.allowed, case.allowed,
            "{what}: {:?}",
            outcome.decision
        );
    }
    assert_eq!(emu.count(Endpoint::Scan), 0, "{:?}", emu.counters());
    Ok(())
}
