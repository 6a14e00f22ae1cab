//! Tag → digest resolution against the real CNCF distribution registry (built from its Go
//! module), with images pushed by `crane`: single-arch, multi-arch index, a moved tag, a
//! deleted tag, TLS with htpasswd credentials from a Docker config, and a registry that is down
//! or too slow.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use helios_core::image::ImageRef;
use helios_core::registry::{RegistryConfig, Resolver};
use helios_core::scan::{DirSource, Lookup, ScanSource, ScanStatus};
use helios_testkit::Registry;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn plain(registry: &Registry) -> RegistryConfig {
    RegistryConfig {
        plain_http: [registry.host()].into(),
        // An empty directory: no credentials, whatever the machine's ~/.docker holds.
        docker_config: Some(registry.docker_config().to_path_buf()),
        ..RegistryConfig::default()
    }
}

#[tokio::test]
async fn a_tag_resolves_to_the_digest_crane_sees_warm_from_the_cache() -> TestResult {
    let registry = Registry::anonymous()?;
    let digest = registry.push_image("team/app:1.0", "one", None)?;
    let resolver = Resolver::new(plain(&registry))?;
    let image = ImageRef::parse(&format!("{}/team/app:1.0", registry.host()))?;

    let t = Instant::now();
    let resolved = resolver.resolve(image.clone()).await?;
    let cold = t.elapsed();
    assert_eq!(resolved.resolved_digest.as_deref(), Some(digest.as_str()));
    assert_eq!(resolved.platform_digest, None);
    // The reference itself stays unpinned: a policy can still require pinned references.
    assert_eq!(resolved.digest, None);
    assert_eq!(resolved.candidate_digests(), [digest.as_str()]);

    let t = Instant::now();
    let again = resolver.resolve(image).await?;
    let warm = t.elapsed();
    assert_eq!(again.resolved_digest, resolved.resolved_digest);
    eprintln!("resolution latency: cold {cold:?}, warm {warm:?}");
    assert!(warm < cold, "warm {warm:?} should beat cold {cold:?}");
    Ok(())
}

#[tokio::test]
async fn a_pinned_reference_is_not_resolved() -> TestResult {
    // Nothing listens at this registry: a pinned reference must not need it.
    let resolver = Resolver::new(RegistryConfig::default())?;
    let pinned = format!("127.0.0.1:1/a@sha256:{}", "a".repeat(64));
    let image = resolver.resolve(ImageRef::parse(&pinned)?).await?;
    assert_eq!(image.resolved_digest, None);
    Ok(())
}

#[tokio::test]
async fn multi_arch_index_gives_the_platform_manifest_and_its_scan_is_found() -> TestResult {
    let registry = Registry::anonymous()?;
    let amd64 = registry.push_image("multi/app:amd64", "amd", Some("linux/amd64"))?;
    let arm64 = registry.push_image("multi/app:arm64", "arm", Some("linux/arm64"))?;
    let index = registry.push_index("multi/app:1.0", &["multi/app:amd64", "multi/app:arm64"])?;
    let reference = format!("{}/multi/app:1.0", registry.host());

    let resolver = Resolver::new(plain(&registry))?;
    let image = resolver.resolve(ImageRef::parse(&reference)?).await?;
    assert_eq!(image.resolved_digest.as_deref(), Some(index.as_str()));
    assert_eq!(image.platform_digest.as_deref(), Some(amd64.as_str()));

    let arm = Resolver::new(RegistryConfig {
        platform: "linux/arm64".parse()?,
        ..plain(&registry)
    })?;
    let image_arm = arm.resolve(ImageRef::parse(&reference)?).await?;
    assert_eq!(image_arm.platform_digest.as_deref(), Some(arm64.as_str()));

    let windows = Resolver::new(RegistryConfig {
        platform: "windows/amd64".parse()?,
        ..plain(&registry)
    })?;
    let err = windows
        .resolve(ImageRef::parse(&reference)?)
        .await
        .err()
        .ok_or("windows/amd64 should not resolve")?;
    assert_eq!(err.code(), "invalid_image");
    assert!(err.to_string().contains("linux/amd64"), "{err}");

    // The scanner knows only the amd64 manifest: the lookup still finds it.
    let scans = tempfile::tempdir()?;
    let report = r#"{"status":"completed","source":"file","id":"amd64-scan","scanned_at":null,
        "error":null,"summary":{"critical":0,"high":0,"medium":0,"low":0,"info":0,"unknown":0,
        "total":0,"fixable":0},"vulnerabilities":[]}"#;
    let name = format!("{}.json", amd64.replace(':', "-"));
    std::fs::write(scans.path().join(name), report)?;
    let dir = DirSource::open(scans.path())?;
    let scan = dir.scan(&image, Lookup::default()).await?;
    assert_eq!(scan.status, ScanStatus::Completed);
    assert_eq!(scan.id.as_deref(), Some("amd64-scan"));
    // Unresolved, the same image has no scan to find.
    let unresolved = dir
        .scan(&ImageRef::parse(&reference)?, Lookup::default())
        .await?;
    assert_eq!(unresolved.status, ScanStatus::NotFound);
    Ok(())
}

#[tokio::test]
async fn a_moved_tag_is_seen_once_the_ttl_passes() -> TestResult {
    let registry = Registry::anonymous()?;
    let first = registry.push_image("move/app:1.0", "first", None)?;
    let second = registry.push_image("move/app:next", "second", None)?;
    assert_ne!(first, second);
    let resolver = Resolver::new(RegistryConfig {
        cache_ttl_secs: 1,
        ..plain(&registry)
    })?;
    let uncached = Resolver::new(RegistryConfig {
        cache_ttl_secs: 0,
        ..plain(&registry)
    })?;
    let image = ImageRef::parse(&format!("{}/move/app:1.0", registry.host()))?;
    let digest = |i: ImageRef| i.resolved_digest.unwrap_or_default();

    assert_eq!(digest(resolver.resolve(image.clone()).await?), first);
    let moved_at = Instant::now();
    registry.tag(&format!("move/app@{second}"), "1.0")?;
    assert_eq!(registry.digest("move/app:1.0")?, second);
    // Without a cache the move is seen at once.
    assert_eq!(digest(uncached.resolve(image.clone()).await?), second);
    // Within the TTL the warm entry still answers (documented: a move is seen within the TTL).
    if moved_at.elapsed() < Duration::from_millis(900) {
        assert_eq!(digest(resolver.resolve(image.clone()).await?), first);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(digest(resolver.resolve(image).await?), second);
    Ok(())
}

#[tokio::test]
async fn a_deleted_tag_is_a_clear_not_found() -> TestResult {
    let registry = Registry::anonymous()?;
    let digest = registry.push_image("gone/app:1.0", "gone", None)?;
    let resolver = Resolver::new(RegistryConfig {
        cache_ttl_secs: 0,
        ..plain(&registry)
    })?;
    let image = ImageRef::parse(&format!("{}/gone/app:1.0", registry.host()))?;
    resolver.resolve(image.clone()).await?;
    registry.delete(&format!("gone/app@{digest}"))?;
    let err = resolver
        .resolve(image)
        .await
        .err()
        .ok_or("a deleted tag must not resolve")?;
    assert_eq!(err.code(), "remote");
    let msg = err.to_string();
    assert!(msg.contains("MANIFEST_UNKNOWN"), "{msg}");
    assert!(msg.contains("gone/app:1.0 was not found"), "{msg}");
    Ok(())
}

#[tokio::test]
async fn tls_and_htpasswd_with_credentials_from_the_docker_config() -> TestResult {
    let password = "s3cret-Pa55word";
    let registry = Registry::builder()
        .tls()
        .htpasswd("ci-bot", password)
        .start()?;
    let digest = registry.push_image("private/app:2.0", "private", None)?;
    let ca = registry.ca_file().ok_or("no CA")?.to_path_buf();
    let config = RegistryConfig {
        docker_config: Some(registry.docker_config().to_path_buf()),
        ca: BTreeMap::from([(registry.host(), ca.clone())]),
        ..RegistryConfig::default()
    };
    let image = ImageRef::parse(&format!("{}/private/app:2.0", registry.host()))?;
    let resolved = Resolver::new(config.clone())?
        .resolve(image.clone())
        .await?;
    assert_eq!(resolved.resolved_digest.as_deref(), Some(digest.as_str()));

    // A mounted kubernetes.io/dockerconfigjson Secret: the file `.dockerconfigjson`.
    let secret = tempfile::tempdir()?;
    let json = std::fs::read_to_string(registry.docker_config().join("config.json"))?;
    std::fs::write(secret.path().join(".dockerconfigjson"), &json)?;
    let from_secret = Resolver::new(RegistryConfig {
        docker_config: Some(secret.path().to_path_buf()),
        ..config.clone()
    })?
    .resolve(image.clone())
    .await?;
    assert_eq!(from_secret.resolved_digest, resolved.resolved_digest);

    // Wrong credentials: 401 → auth, and the secret is never in the message or Debug.
    let wrong = tempfile::tempdir()?;
    let wrong_password = "WRONG-hunter2";
    std::fs::write(
        wrong.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"username":"ci-bot","password":"{wrong_password}"}}}}}}"#,
            registry.host()
        ),
    )?;
    let err = Resolver::new(RegistryConfig {
        docker_config: Some(wrong.path().to_path_buf()),
        ..config.clone()
    })?
    .resolve(image.clone())
    .await
    .err()
    .ok_or("wrong credentials must fail")?;
    assert_eq!(err.code(), "auth");
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains(wrong_password), "{shown}");
        assert!(!shown.contains(password), "{shown}");
    }

    // No credentials at all: auth, saying where to put them.
    let none = tempfile::tempdir()?;
    let err = Resolver::new(RegistryConfig {
        docker_config: Some(none.path().join("config.json")),
        ..config.clone()
    })?
    .resolve(image.clone())
    .await
    .err()
    .ok_or("a missing config file named explicitly must fail")?;
    assert_eq!(err.code(), "io");
    let empty = tempfile::tempdir()?;
    std::fs::write(empty.path().join("config.json"), r#"{"auths":{}}"#)?;
    let err = Resolver::new(RegistryConfig {
        docker_config: Some(empty.path().to_path_buf()),
        ..config.clone()
    })?
    .resolve(image.clone())
    .await
    .err()
    .ok_or("anonymous must fail")?;
    assert_eq!(err.code(), "auth");
    assert!(err.to_string().contains("Docker config"), "{err}");

    // Without the registry's CA: the certificate is not trusted, and the error says so.
    let err = Resolver::new(RegistryConfig {
        ca: BTreeMap::new(),
        ..config
    })?
    .resolve(image)
    .await
    .err()
    .ok_or("an unknown CA must fail")?;
    assert_eq!(err.code(), "unavailable");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn plain_http_is_never_a_fallback() -> TestResult {
    let registry = Registry::anonymous()?;
    registry.push_image("plain/app:1.0", "plain", None)?;
    let config = RegistryConfig {
        plain_http: Default::default(),
        ..plain(&registry)
    };
    let err = Resolver::new(config)?
        .resolve(ImageRef::parse(&format!(
            "{}/plain/app:1.0",
            registry.host()
        ))?)
        .await
        .err()
        .ok_or("https to a plain-HTTP registry must fail")?;
    assert_eq!(err.code(), "unavailable");
    assert!(err.to_string().contains("plain_http"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_registry_down_or_too_slow_is_unavailable_within_the_timeout() -> TestResult {
    let port = helios_testkit::free_port()?;
    let down = format!("127.0.0.1:{port}");
    let config = RegistryConfig {
        plain_http: [down.clone()].into(),
        timeout_ms: 300,
        ..RegistryConfig::default()
    };
    let err = Resolver::new(config)?
        .resolve(ImageRef::parse(&format!("{down}/a/b:1"))?)
        .await
        .err()
        .ok_or("down must fail")?;
    assert_eq!(err.code(), "unavailable");
    assert!(err.to_string().contains("cannot connect"), "{err}");

    // Accepts connections, never answers.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let slow = listener.local_addr()?.to_string();
    let _hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(4) {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let config = RegistryConfig {
        plain_http: [slow.clone()].into(),
        timeout_ms: 300,
        ..RegistryConfig::default()
    };
    let t = Instant::now();
    let err = Resolver::new(config)?
        .resolve(ImageRef::parse(&format!("{slow}/a/b:1"))?)
        .await
        .err()
        .ok_or("slow must fail")?;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(err.code(), "unavailable");
    assert!(err.to_string().contains("no answer within 300 ms"), "{err}");
    Ok(())
}

#[tokio::test]
async fn bearer_challenges_anonymous_and_with_credentials() -> TestResult {
    // A public registry behind a Docker token service: the challenge is answered with an
    // anonymous pull token.
    let public = Registry::builder().bearer().start()?;
    let digest = public.push_image("library/app:1.0", "public", None)?;
    let no_credentials = tempfile::tempdir()?;
    let resolver = Resolver::new(RegistryConfig {
        plain_http: [public.host()].into(),
        docker_config: Some(no_credentials.path().to_path_buf()),
        ..RegistryConfig::default()
    })?;
    let image = ImageRef::parse(&format!("{}/library/app:1.0", public.host()))?;
    let resolved = resolver.resolve(image).await?;
    assert_eq!(resolved.resolved_digest.as_deref(), Some(digest.as_str()));

    // A private one: the token service wants the Docker config's credentials.
    let password = "tok-s3cret";
    let private = Registry::builder()
        .bearer()
        .htpasswd("ci-bot", password)
        .start()?;
    let digest = private.push_image("team/app:2.0", "private", None)?;
    let image = ImageRef::parse(&format!("{}/team/app:2.0", private.host()))?;
    let config = RegistryConfig {
        plain_http: [private.host()].into(),
        docker_config: Some(private.docker_config().to_path_buf()),
        ..RegistryConfig::default()
    };
    let resolved = Resolver::new(config.clone())?
        .resolve(image.clone())
        .await?;
    assert_eq!(resolved.resolved_digest.as_deref(), Some(digest.as_str()));

    let wrong = tempfile::tempdir()?;
    std::fs::write(
        wrong.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"username":"ci-bot","password":"WRONG-{password}"}}}}}}"#,
            private.host()
        ),
    )?;
    let err = Resolver::new(RegistryConfig {
        docker_config: Some(wrong.path().to_path_buf()),
        ..config
    })?
    .resolve(image)
    .await
    .err()
    .ok_or("wrong credentials must fail")?;
    assert_eq!(err.code(), "auth");
    assert!(err.to_string().contains("token service refused"), "{err}");
    assert!(!format!("{err} {err:?}").contains(password), "{err:?}");
    Ok(())
}

/// The Lacework variant of the multi-arch case: Lacework knows only the amd64 platform manifest
/// of a multi-arch tag; resolved at the real registry, the lookup finds that scan with one image
/// summary search, and `scan.digest` names the platform manifest.
#[tokio::test]
async fn multi_arch_tag_finds_the_lacework_scan_of_its_platform_manifest() -> TestResult {
    use helios_core::scan::lacework::{LaceworkClient, LaceworkSource, NoScan};
    use helios_lacework_emulator::{Emulator, Endpoint};

    let registry = Registry::anonymous()?;
    let amd64 = registry.push_image("multi/lw:amd64", "amd-lw", Some("linux/amd64"))?;
    registry.push_image("multi/lw:arm64", "arm-lw", Some("linux/arm64"))?;
    let index = registry.push_index("multi/lw:2.0", &["multi/lw:amd64", "multi/lw:arm64"])?;
    let reference = format!("{}/multi/lw:2.0", registry.host());
    let image = Resolver::new(plain(&registry))?
        .resolve(ImageRef::parse(&reference)?)
        .await?;
    assert_eq!(image.resolved_digest.as_deref(), Some(index.as_str()));

    let emu = Emulator::builder().start().await?;
    emu.add_rows(vec![serde_json::json!({
        "evalGuid": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "evalCtx": {"image_info": {"digest": amd64, "registry": registry.host(),
            "repo": "multi/lw", "tags": ["amd64"]}},
        "featureKey": {"name": "openssl", "version": "3.0.1", "namespace": "debian:12"},
        "fixInfo": {"fix_available": 1, "fixed_version": "3.0.13"},
        "severity": "Critical", "status": "VULNERABLE", "vulnId": "CVE-2024-7777"
    })]);
    let client = LaceworkClient::builder()
        .account(emu.url())
        .api_key(emu.key_id())
        .api_secret(emu.secret())
        .build()?;
    let source = LaceworkSource::new(client, NoScan::None);

    let scan = source.scan(&image, Lookup::default()).await?;
    assert_eq!(scan.status, ScanStatus::Completed, "{scan:?}");
    assert_eq!(scan.digest.as_deref(), Some(amd64.as_str()));
    assert!(scan.vulnerabilities.iter().any(|v| v.id == "CVE-2024-7777"));
    assert_eq!(emu.count(Endpoint::ImageSummary), 1, "{:?}", emu.counters());

    // Unresolved, Lacework has no record of the tag: not_found, never a scan of another image.
    let unresolved = source
        .scan(&ImageRef::parse(&reference)?, Lookup::default())
        .await?;
    assert_eq!(unresolved.status, ScanStatus::NotFound, "{unresolved:?}");
    Ok(())
}

/// The background audit resolves tags like admission does: a Deployment running `app:1.0` is
/// judged on the scan of the digest the tag points to (here clean, so allowed); unresolved, the
/// tag has no scan and the default policy reports it as unscanned.
#[cfg(feature = "audit")]
#[tokio::test]
async fn the_audit_resolves_tags_before_the_lookup() -> TestResult {
    use std::sync::Arc;

    use helios_core::admission::ControllerConfig;
    use helios_core::admission::GroupVersionKind;
    use helios_core::audit::{Auditor, WorkloadObject};
    use helios_core::policy::EmbeddedEvaluator;

    let registry = Registry::anonymous()?;
    let digest = registry.push_image("audited/app:1.0", "audited", None)?;
    let scans = tempfile::tempdir()?;
    let clean = r#"{"status":"completed","source":"file","id":"clean","scanned_at":null,
        "error":null,"summary":{"critical":0,"high":0,"medium":0,"low":0,"info":0,"unknown":0,
        "total":0,"fixable":0},"vulnerabilities":[]}"#;
    std::fs::write(
        scans
            .path()
            .join(format!("{}.json", digest.replace(':', "-"))),
        clean,
    )?;
    let deployment = WorkloadObject {
        gvk: GroupVersionKind {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
        },
        object: serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": format!("{}/audited/app:1.0", registry.host())}
            ]}}}
        }),
    };
    let auditor = |resolver| -> Result<Auditor, Box<dyn std::error::Error>> {
        Ok(Auditor::new(
            Arc::new(DirSource::open(scans.path())?),
            Arc::new(EmbeddedEvaluator::default_policy()?),
            ControllerConfig::default(),
        )
        .with_resolver(resolver))
    };

    let resolved = auditor(Some(Resolver::new(plain(&registry))?))?
        .audit(std::slice::from_ref(&deployment))
        .await;
    assert!(resolved.findings.is_empty(), "{:?}", resolved.findings);
    let unresolved = auditor(None)?.audit(&[deployment]).await;
    let finding = unresolved
        .findings
        .first()
        .ok_or("no finding without resolution")?;
    assert_eq!(finding.name, "web");
    assert_eq!(finding.verdict, "deny");
    Ok(())
}
