//! `helios scan` and `helios gate` without `--scan-file`, against the Lacework emulator, with
//! configuration from the environment and from a Lacework CLI profile.

use std::path::Path;
use std::process::{Command, Output};

use helios_lacework_emulator::Emulator;

const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const UNKNOWN: &str = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Runs `helios` with a clean Lacework environment: `HOME` is `home` (so no real
/// ~/.lacework.toml is read) plus `env`.
fn helios(home: &Path, env: &[(&str, &str)], args: &[&str]) -> std::io::Result<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_helios"));
    cmd.args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    for var in [
        "LW_ACCOUNT",
        "LW_SUBACCOUNT",
        "LW_API_KEY",
        "LW_API_SECRET",
        "LW_PROFILE",
        "LW_API_SERVER_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home);
    // The images here live at made-up registries: look them up as written.
    cmd.env("HELIOS_NO_RESOLVE", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
}

fn temp_home(tag: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("helios-scan-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_prints_the_report_from_lacework_env_configuration() -> TestResult {
    let emu = Emulator::builder().start().await?;
    let home = temp_home("env")?;
    let (url, key, secret) = (emu.url(), emu.key_id(), emu.secret());
    let env = [
        ("LW_ACCOUNT", url.as_str()),
        ("LW_API_KEY", key.as_str()),
        ("LW_API_SECRET", secret.as_str()),
    ];
    let image = format!("registry.example.com/team/app@{A}");
    let out = tokio::task::spawn_blocking({
        let home = home.clone();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            helios(&home, &env, &["scan", &image])
        }
    })
    .await??;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["id"], "eval-a-new");
    assert_eq!(report["summary"]["total"], 2);

    // No scan and none requested; then one requested without waiting.
    let run = |args: Vec<String>| {
        let home = home.clone();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            helios(&home, &env, &args)
        })
    };
    let unknown = format!("registry.example.com/team/new@{UNKNOWN}");
    let out = run(vec!["scan".into(), unknown.clone(), "--no-scan".into()]).await??;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["status"], "not_found");
    let out = run(vec!["scan".into(), unknown, "--wait".into(), "0".into()]).await??;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["status"], "pending");
    assert_eq!(emu.count(helios_lacework_emulator::Endpoint::Scan), 1);

    // The gate asks Lacework when no scan file is given: the fixable high denies.
    let out = run(vec![
        "gate".into(),
        format!("registry.example.com/team/app:1.4@{A}"),
    ])
    .await??;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("CVE-2023-1234"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_is_read_and_bad_credentials_exit_2_without_the_secret() -> TestResult {
    let emu = Emulator::builder().start().await?;
    let home = temp_home("profile")?;
    std::fs::write(
        home.join(".lacework.toml"),
        format!(
            "[default]\naccount = \"nope\"\napi_key = \"x\"\napi_secret = \"x\"\n\n[ci]\naccount = \"{}\"\napi_key = \"{}\"\napi_secret = \"{}\"\nversion = 2\n",
            emu.url(),
            emu.key_id(),
            emu.secret()
        ),
    )?;
    let image = format!("registry.example.com/team/app@{A}");
    let h = home.clone();
    let img = image.clone();
    let out =
        tokio::task::spawn_blocking(move || helios(&h, &[("LW_PROFILE", "ci")], &["scan", &img]))
            .await??;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        report["status"],
        "completed",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The environment overrides the profile's secret: rejected, exit 2, secret not printed.
    let h = home.clone();
    let out = tokio::task::spawn_blocking(move || {
        helios(
            &h,
            &[
                ("LW_PROFILE", "ci"),
                ("LW_API_SECRET", "_definitely_wrong_secret"),
            ],
            &["scan", &image],
        )
    })
    .await??;
    assert_eq!(out.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["status"], "unavailable");
    assert!(all.contains("rejected the credentials"), "{all}");
    assert!(!all.contains("_definitely_wrong_secret"), "{all}");
    assert!(!all.contains(&emu.secret()), "{all}");
    let _ = std::fs::remove_dir_all(&home);
    Ok(())
}

/// Runs `helios` off the async runtime (the emulator serves on it meanwhile).
async fn run_helios(
    home: &Path,
    env: &[(String, String)],
    args: &[&str],
) -> Result<Output, Box<dyn std::error::Error>> {
    let (home, env) = (home.to_path_buf(), env.to_vec());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        helios(&home, &env, &args)
    })
    .await??;
    Ok(out)
}

/// Issue 8, CI: a clean image gated twice is allowed twice; the second run (with and without
/// `--no-scan`) finds Lacework's clean scan and requests none.
#[tokio::test(flavor = "multi_thread")]
async fn a_clean_image_is_allowed_on_every_run_and_scanned_once() -> TestResult {
    let emu = Emulator::builder()
        .scan_duration(std::time::Duration::from_millis(300))
        .start()
        .await?;
    let home = temp_home("clean")?;
    let env = vec![
        ("LW_ACCOUNT".to_string(), emu.url()),
        ("LW_API_KEY".to_string(), emu.key_id()),
        ("LW_API_SECRET".to_string(), emu.secret()),
    ];
    // Never scanned; the emulator's scan of a `clean` repository finds nothing.
    let image = format!("registry.example.com/team/clean-new@{UNKNOWN}");
    let scans = || emu.count(helios_lacework_emulator::Endpoint::Scan);

    let first = run_helios(&home, &env, &["gate", &image, "--wait", "20"]).await?;
    let text = String::from_utf8_lossy(&first.stdout);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(text.contains("ALLOWED"), "{text}");
    assert_eq!(
        scans(),
        1,
        "the first run requests the scan and waits for it"
    );

    for extra in [&["--no-scan"][..], &[][..]] {
        let mut args = vec!["gate", image.as_str()];
        args.extend_from_slice(extra);
        let again = run_helios(&home, &env, &args).await?;
        let text = String::from_utf8_lossy(&again.stdout);
        assert_eq!(again.status.code(), Some(0), "{extra:?}: {text}");
        assert!(text.contains("ALLOWED"), "{extra:?}: {text}");
        assert_eq!(scans(), 1, "{extra:?}: no new scan request");
    }

    // `helios scan` says why: completed, no findings, the scan's digest and time.
    let out = run_helios(&home, &env, &["scan", &image, "--no-scan"]).await?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["summary"]["total"], 0);
    assert_eq!(report["digest"], UNKNOWN);
    assert!(report["scanned_at"].is_string(), "{report}");
    assert!(report["evaluated_at"].is_null(), "{report}");
    Ok(())
}

/// Issue 13 for CI fleets: three `helios gate --cache-redis URL` jobs at once on one unknown
/// digest make one lookup and one scan request; the other jobs read the first one's
/// answer from Redis. Fails without `redis-server` (scripts/install-tools.sh installs it).
#[tokio::test(flavor = "multi_thread")]
async fn gate_jobs_sharing_redis_make_one_lookup() -> TestResult {
    let redis = helios_testkit::RedisServer::start()?;
    let emu = Emulator::builder()
        .scan_duration(std::time::Duration::from_secs(600))
        .start()
        .await?;
    let home = temp_home("redis")?;
    let env: Vec<(String, String)> = vec![
        ("LW_ACCOUNT".into(), emu.url()),
        ("LW_API_KEY".into(), emu.key_id()),
        ("LW_API_SECRET".into(), emu.secret()),
        ("HELIOS_CACHE_REDIS".into(), redis.url()),
    ];
    let image = format!("registry.example.com/team/new@{UNKNOWN}");
    let jobs: Vec<_> = (0..3)
        .map(|_| {
            let (home, env, image) = (home.clone(), env.clone(), image.clone());
            tokio::task::spawn_blocking(move || {
                let env: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                helios(
                    &home,
                    &env,
                    &["gate", &image, "--wait", "0", "--format", "json"],
                )
            })
        })
        .collect();
    for job in jobs {
        let out = job.await??;
        let decision: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stderr)))?;
        assert!(
            decision["violations"]
                .to_string()
                .contains("status: pending"),
            "{decision}"
        );
    }
    let counters = emu.counters();
    // One job talked to Lacework (one token); its lookup (the summary, by digest then by image
    // id) found nothing and requested one scan.
    assert_eq!(counters.get("tokens"), Some(&1), "{counters:?}");
    assert_eq!(counters.get("scan"), Some(&1), "{counters:?}");
    Ok(())
}
