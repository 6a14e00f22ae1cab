//! `helios eval` and `helios gate` with `--opa-url`: the same decisions from a real OPA server
//! (built from its Go module by helios-testkit), over TLS with `--opa-ca` and token auth.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use helios_testkit::OpaServer;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TOKEN: &str = "cli-opa-token-93b1";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn helios(args: &[&str], env: &[(&str, &str)]) -> std::io::Result<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_helios"));
    cmd.args(args)
        .current_dir(root())
        // The images here live at made-up registries: look them up as written.
        .env("HELIOS_NO_RESOLVE", "true")
        .env_remove("HELIOS_OPA_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
}

fn default_policy_source() -> String {
    // The shipped default policy, read from the source tree (the CLI embeds the same file).
    std::fs::read_to_string(root().join("helios-core/src/policy/default/helios.rego"))
        .unwrap_or_default()
}

fn json(out: &Output) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn eval_on_opa_matches_embedded_but_for_backend() -> TestResult {
    let source = default_policy_source();
    assert!(source.contains("package helios"));
    let server = OpaServer::builder().policy("helios.rego", source).start()?;
    let input = "tests/fixtures/inputs/mixed.json";

    let embedded = helios(&["eval", "--input", input], &[])?;
    let remote = helios(&["eval", "--input", input, "--opa-url", &server.url()], &[])?;
    assert_eq!(
        remote.status.code(),
        embedded.status.code(),
        "{}",
        String::from_utf8_lossy(&remote.stderr)
    );
    let (mut e, mut o) = (json(&embedded)?, json(&remote)?);
    assert_eq!(e["backend"], "embedded");
    assert_eq!(o["backend"], "opa");
    // The server runs the policy file outside a revisioned bundle: OPA names itself.
    assert!(
        o["policy"]["version"]
            .as_str()
            .unwrap_or("")
            .starts_with("opa-server:")
    );
    for d in [&mut e, &mut o] {
        let obj = d.as_object_mut().ok_or("decision is not an object")?;
        obj.remove("backend");
        obj.remove("decision_id");
        obj.insert("policy".into(), Value::Null);
    }
    assert_eq!(e, o);
    Ok(())
}

#[test]
fn gate_on_opa_over_tls_with_token_from_env() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()])?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca)?;
    let (ca_file, cert_file, key_file) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    std::fs::write(&ca_file, ca.pem())?;
    std::fs::write(&cert_file, cert.pem())?;
    std::fs::write(&key_file, key.serialize_pem())?;

    let server = OpaServer::builder()
        .policy("helios.rego", default_policy_source())
        .tls(&cert_file, &key_file)
        .require_token(TOKEN)
        .start()?;
    let url = server.url();
    let ca_arg = ca_file.to_string_lossy().into_owned();
    let gate = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "gate",
            "registry.example.com/team/app:1.4",
            "--scan-file",
            "examples/scans/sample-lacework-scan.json",
            "--format",
            "json",
            "--opa-url",
            &url,
            "--opa-ca",
            &ca_arg,
        ];
        args.extend_from_slice(extra);
        helios(&args, env)
    };

    let ok = gate(&[], &[("HELIOS_OPA_TOKEN", TOKEN)])?;
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(matches!(ok.status.code(), Some(0 | 1)), "{stderr}");
    assert_eq!(json(&ok)?["backend"], "opa", "{stderr}");

    let flag = gate(&["--opa-token", TOKEN], &[])?;
    assert_eq!(json(&flag)?["backend"], "opa");

    for (extra, env) in [
        (vec![], vec![]),
        (vec!["--opa-token", "wrong-token"], vec![]),
    ] {
        let denied = gate(&extra, &env)?;
        let err = String::from_utf8_lossy(&denied.stderr);
        assert_eq!(denied.status.code(), Some(2), "{err}");
        assert!(err.starts_with("helios: error[auth]"), "{err}");
        assert!(
            !err.contains("wrong-token") && !err.contains(TOKEN),
            "{err}"
        );
    }
    Ok(())
}

#[test]
fn opa_url_conflicts_with_local_policies() -> TestResult {
    let out = helios(
        &[
            "eval",
            "--input",
            "tests/fixtures/inputs/mixed.json",
            "--opa-url",
            "http://127.0.0.1:1",
            "--policy",
            "tests/fixtures/policies/strings.rego",
        ],
        &[],
    )?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
    Ok(())
}
