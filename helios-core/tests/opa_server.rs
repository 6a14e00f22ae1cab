//! The OPA backend against a real OPA server: every error class, TLS with a custom CA, mutual TLS,
//! token authentication, decision ids and the reported policy version.

use std::time::{Duration, Instant};

use helios_core::Error;
use helios_core::policy::{
    Backend, EmbeddedEvaluator, OpaEvaluator, Package, PolicyEvaluator, PolicyInput,
    SERVER_VERSION_PREFIX,
};
use helios_testkit::{OpaServer, free_port};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TOKEN: &str = "helios-test-token-7f3a";

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A contract input with one fixable high: the default policy denies it.
fn fixable_high() -> helios_core::Result<PolicyInput> {
    PolicyInput::from_value(serde_json::json!({
        "version": 1, "stage": "ci",
        "image": {"reference": "registry.example.com/team/app:1.4", "registry": "registry.example.com",
                  "repository": "team/app", "tag": "1.4", "digest": null},
        "scan": {"status": "completed", "source": "file", "id": null, "scanned_at": null, "error": null,
                 "summary": {"critical": 0, "high": 1, "medium": 0, "low": 0, "info": 0, "unknown": 0,
                             "total": 1, "fixable": 1},
                 "vulnerabilities": [{"id": "CVE-2023-1234", "severity": "high", "status": "vulnerable",
                     "package": {"name": "openssl", "version": "1.1.1n", "namespace": "debian:11"},
                     "fix": {"available": true, "version": "1.1.1w"}}]},
        "workload": null, "ci": null
    }))
}

fn default_policy_server() -> Result<OpaServer, Box<dyn std::error::Error>> {
    let embedded = EmbeddedEvaluator::default_policy()?;
    let mut set = helios_core::policy::PolicySet::new();
    set.add_default_policy();
    let mut builder = OpaServer::builder()
        .decision_logs(true)
        .revision(embedded.version());
    for m in set.modules() {
        builder = builder.policy("helios.rego", m.source.clone());
    }
    Ok(builder.start()?)
}

#[test]
fn decides_like_embedded_with_decision_id_and_bundle_revision() -> TestResult {
    let rt = runtime()?;
    let server = default_policy_server()?;
    let embedded = EmbeddedEvaluator::default_policy()?;
    let opa = OpaEvaluator::builder(server.url()).build()?;
    let input = fixable_high()?;

    let decision = rt.block_on(opa.evaluate(&input))?;
    assert_eq!(decision.backend, Backend::Opa);
    assert_eq!(opa.backend(), Backend::Opa);
    let id = decision
        .decision_id
        .clone()
        .ok_or("OPA returned no decision_id")?;
    assert!(
        server.log().contains(&id),
        "decision {id} is not in OPA's decision log"
    );
    // The bundle's revision is the embedded digest: the whole decision matches.
    let mut expected = embedded.evaluate_sync(&input)?;
    expected.backend = Backend::Opa;
    expected.decision_id = Some(id);
    assert_eq!(decision, expected);
    assert!(!decision.allowed);
    assert_eq!(decision.violations[0].details["code"], "fixable-high");
    Ok(())
}

#[test]
fn without_a_bundle_revision_the_version_names_the_server() -> TestResult {
    let rt = runtime()?;
    let server = OpaServer::builder()
        .policy(
            "p.rego",
            "package helios\n\ndeny contains \"no\" if input.scan.status == \"completed\"\n",
        )
        .start()?;
    let opa = OpaEvaluator::builder(server.url()).build()?;
    let decision = rt.block_on(opa.evaluate(&fixable_high()?))?;
    assert!(
        decision.policy.version.starts_with(SERVER_VERSION_PREFIX)
            && decision.policy.version.len() > SERVER_VERSION_PREFIX.len(),
        "{}",
        decision.policy.version
    );
    assert_eq!(
        decision.decision_id, None,
        "no decision logs, no decision id"
    );
    assert_eq!(decision.violations[0].msg, "no");
    assert_eq!(decision.policy.id, "helios");
    Ok(())
}

#[test]
fn undefined_package_is_a_policy_error_naming_the_path() -> TestResult {
    let rt = runtime()?;
    let server = default_policy_server()?;
    let opa = OpaEvaluator::builder(server.url())
        .package(Package::parse("acme.missing")?)
        .build()?;
    let err = rt
        .block_on(opa.evaluate(&fixable_high()?))
        .err()
        .ok_or("decided")?;
    assert!(
        matches!(&err, Error::PolicyUndefined { package } if package == "data.acme.missing"),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn opa_error_body_keeps_opas_code_and_message() -> TestResult {
    let rt = runtime()?;
    let server = OpaServer::builder()
        .policy(
            "conflict.rego",
            "package helios\n\npolicy_id := \"a\" if input.version == 1\n\npolicy_id := \"b\" if input.version == 1\n",
        )
        .start()?;
    let opa = OpaEvaluator::builder(server.url()).build()?;
    let err = rt
        .block_on(opa.evaluate(&fixable_high()?))
        .err()
        .ok_or("decided")?;
    match &err {
        Error::Remote { code, message, .. } => {
            assert_eq!(code.as_deref(), Some("eval_conflict_error"));
            assert!(message.contains("data.helios.policy_id"), "{message}");
        }
        other => return Err(format!("expected remote, got {other:?}").into()),
    }
    assert_eq!(err.code(), "remote");
    Ok(())
}

#[test]
fn wrong_rule_type_is_the_same_policy_error_as_embedded() -> TestResult {
    let rt = runtime()?;
    let server = OpaServer::builder()
        .policy("bool.rego", "package helios\n\ndeny := true\n")
        .start()?;
    let opa = OpaEvaluator::builder(server.url()).build()?;
    let err = rt
        .block_on(opa.evaluate(&fixable_high()?))
        .err()
        .ok_or("decided")?;
    assert_eq!(err.code(), "policy_type", "{err}");
    assert!(err.to_string().contains("data.helios.deny"), "{err}");
    Ok(())
}

#[test]
fn unreachable_server_is_unavailable() -> TestResult {
    let rt = runtime()?;
    let port = free_port()?;
    let opa = OpaEvaluator::builder(format!("http://127.0.0.1:{port}")).build()?;
    let started = Instant::now();
    let err = rt
        .block_on(opa.evaluate(&fixable_high()?))
        .err()
        .ok_or("decided")?;
    assert!(matches!(&err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("OPA at http://127.0.0.1:{port}")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}

#[test]
fn slow_policy_times_out_as_unavailable() -> TestResult {
    let rt = runtime()?;
    // Counts a hundred million numbers: seconds of work, far beyond the 300 ms timeout.
    let server = OpaServer::builder()
        .policy(
            "slow.rego",
            "package helios\n\ndeny contains \"slow\" if count([x | some x in numbers.range(1, 100000000)]) > 0\n",
        )
        .start()?;
    let opa = OpaEvaluator::builder(server.url())
        .timeout(Duration::from_millis(300))
        .build()?;
    let started = Instant::now();
    let err = rt
        .block_on(opa.evaluate(&fixable_high()?))
        .err()
        .ok_or("decided")?;
    let took = started.elapsed();
    assert!(
        matches!(&err, Error::Unavailable { reason, .. } if reason.contains("timeout")),
        "{err:?}"
    );
    // Not retried: a timeout spends the deadline once.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    Ok(())
}

#[test]
fn token_auth_right_token_allowed_wrong_or_missing_rejected() -> TestResult {
    let rt = runtime()?;
    let server = OpaServer::builder()
        .policy(
            "p.rego",
            "package helios\n\nwarn contains \"hello\" if true\n",
        )
        .require_token(TOKEN)
        .start()?;
    let input = fixable_high()?;

    let good = OpaEvaluator::builder(server.url()).token(TOKEN).build()?;
    let decision = rt.block_on(good.evaluate(&input))?;
    assert_eq!(decision.warnings[0].msg, "hello");
    assert!(!format!("{good:?}").contains(TOKEN));

    let wrong = OpaEvaluator::builder(server.url())
        .token("not-the-token")
        .build()?;
    let missing = OpaEvaluator::builder(server.url()).build()?;
    for opa in [wrong, missing] {
        let err = rt
            .block_on(opa.evaluate(&input))
            .err()
            .ok_or("decided without the token")?;
        assert!(matches!(&err, Error::Auth { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(TOKEN) && !shown.contains("not-the-token"),
            "{shown}"
        );
    }
    Ok(())
}

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all made now.
fn pki() -> Result<Pki, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "helios test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    for (name, sans, usage) in [
        (
            "server",
            vec!["127.0.0.1".to_string(), "localhost".to_string()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        (
            "client",
            vec!["helios-client".to_string()],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    ] {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca)?;
        std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem())?;
        std::fs::write(
            dir.path().join(format!("{name}-key.pem")),
            key.serialize_pem(),
        )?;
    }
    std::fs::write(dir.path().join("ca.pem"), ca.pem())?;
    Ok(Pki {
        ca_pem: ca.pem(),
        dir,
    })
}

#[test]
fn tls_with_a_custom_ca() -> TestResult {
    let rt = runtime()?;
    let pki = pki()?;
    let p = pki.dir.path();
    let server = OpaServer::builder()
        .policy(
            "p.rego",
            "package helios\n\nwarn contains \"over tls\" if true\n",
        )
        .tls(p.join("server.pem"), p.join("server-key.pem"))
        .start()?;
    assert!(server.url().starts_with("https://"));
    let input = fixable_high()?;

    let trusted = OpaEvaluator::builder(server.url())
        .ca_pem(pki.ca_pem.clone())
        .build()?;
    assert_eq!(
        rt.block_on(trusted.evaluate(&input))?.warnings[0].msg,
        "over tls"
    );
    let from_file = OpaEvaluator::builder(server.url())
        .ca_file(p.join("ca.pem"))
        .build()?;
    assert_eq!(
        rt.block_on(from_file.evaluate(&input))?.warnings[0].msg,
        "over tls"
    );

    // Without the CA the server's certificate is unknown: no decision, and no retry loop.
    let untrusted = OpaEvaluator::builder(server.url()).build()?;
    let err = rt
        .block_on(untrusted.evaluate(&input))
        .err()
        .ok_or("trusted an unknown CA")?;
    assert_eq!(err.code(), "unavailable", "{err}");
    // Exactly one retry on a connection failure (a failed TLS handshake is one): OPA saw two
    // handshakes from this client. Its log line may trail the client's error by a moment.
    let handshakes = || {
        server
            .log()
            .matches("unknown certificate authority")
            .count()
    };
    let waited = Instant::now();
    while handshakes() < 2 && waited.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(handshakes(), 2, "{}", server.log());
    Ok(())
}

#[test]
fn mutual_tls_client_certificate() -> TestResult {
    let rt = runtime()?;
    let pki = pki()?;
    let p = pki.dir.path();
    let server = OpaServer::builder()
        .policy(
            "p.rego",
            "package helios\n\nwarn contains \"mtls\" if true\n",
        )
        .tls(p.join("server.pem"), p.join("server-key.pem"))
        .client_ca(p.join("ca.pem"))
        .start()?;
    let input = fixable_high()?;

    let with_cert = OpaEvaluator::builder(server.url())
        .ca_file(p.join("ca.pem"))
        .client_identity_files(p.join("client.pem"), p.join("client-key.pem"))
        .build()?;
    assert_eq!(
        rt.block_on(with_cert.evaluate(&input))?.warnings[0].msg,
        "mtls"
    );

    let without = OpaEvaluator::builder(server.url())
        .ca_file(p.join("ca.pem"))
        .build()?;
    let err = rt
        .block_on(without.evaluate(&input))
        .err()
        .ok_or("served without a client cert")?;
    assert!(matches!(err.code(), "unavailable" | "auth"), "{err}");
    Ok(())
}
