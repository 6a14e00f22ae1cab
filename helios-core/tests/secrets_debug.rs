//! Every public type that holds a secret redacts it in `Debug` (and `Display` where it has one):
//! each is built here with a known secret, from every way in (builder, environment, Lacework CLI
//! profile file), and its output is searched for it. Errors raised about a secret do not quote
//! it either. A new secret-holding type belongs in this walk.
//!
//! The CLI's `--opa-token` (helios-cli `OpaToken`) is checked in its own crate.

use std::path::Path;

use helios_core::gate::Gate;
use helios_core::policy::OpaEvaluator;
use helios_core::registry::{CredentialSource, RegistryConfig, Resolver};
use helios_core::scan::CachedSource;
use helios_core::scan::lacework::{ClientBuilder, LaceworkClient, LaceworkSource, NoScan, Secret};
use helios_core::{Error, Result};

const API_SECRET: &str = "_walk-api-s3cr3t";
const ENV_SECRET: &str = "_walk-env-s3cr3t";
const PROFILE_SECRET: &str = "_walk-profile-s3cr3t";
const OPA_TOKEN: &str = "walk-opa-t0ken";
const REGISTRY_PASSWORD: &str = "walk-registry-passw0rd";
const SECRETS: [&str; 5] = [
    API_SECRET,
    ENV_SECRET,
    PROFILE_SECRET,
    OPA_TOKEN,
    REGISTRY_PASSWORD,
];

fn fail(e: impl ToString) -> Error {
    Error::InvalidInput {
        what: "test".into(),
        reason: e.to_string(),
    }
}

/// Fails naming the value (not the secret) that printed a secret.
fn check(what: &str, printed: String) {
    assert!(!printed.trim().is_empty(), "{what} printed nothing");
    for secret in SECRETS {
        assert!(
            !printed.contains(secret),
            "{what} printed a secret: {}",
            printed.replace(secret, "<THE SECRET>")
        );
    }
}

fn builder_with_secret() -> ClientBuilder {
    LaceworkClient::builder()
        .account("acme")
        .api_key("ACME_0123456789")
        .api_secret(API_SECRET)
}

/// A Lacework CLI profile file holding the profile secret; `broken` leaves its string open.
fn profile_file(dir: &Path, broken: bool) -> Result<std::path::PathBuf> {
    let file = dir.join(if broken {
        "broken.toml"
    } else {
        "lacework.toml"
    });
    let end = if broken { "" } else { "\"" };
    let text = format!(
        "[default]\naccount = \"acme\"\napi_key = \"ACME_0123456789\"\napi_secret = \"{PROFILE_SECRET}{end}\n"
    );
    std::fs::write(&file, text).map_err(fail)?;
    Ok(file)
}

#[test]
fn every_secret_holder_redacts_in_debug() -> Result<()> {
    let secret = Secret::new(API_SECRET);
    check("Secret (Debug)", format!("{secret:?}"));
    check("Secret (Display)", format!("{secret}"));

    // Lacework: builder, client, source, the cache in front of it, from the builder methods.
    let builder = builder_with_secret();
    check("ClientBuilder", format!("{builder:?}"));
    let client = builder.build()?;
    check("LaceworkClient", format!("{client:?}"));
    let source = LaceworkSource::new(client.clone(), NoScan::RequestScan);
    check("LaceworkSource", format!("{source:?}"));
    let cached = CachedSource::new(source);
    check("CachedSource<LaceworkSource>", format!("{cached:?}"));

    // From the environment (LW_API_SECRET) and from a Lacework CLI profile.
    let env = |k: &str| match k {
        "LW_ACCOUNT" => Some("acme".to_string()),
        "LW_API_KEY" => Some("ACME_0123456789".to_string()),
        "LW_API_SECRET" => Some(ENV_SECRET.to_string()),
        _ => None,
    };
    let from_env = ClientBuilder::from_sources(&env, None, None)?;
    check(
        "ClientBuilder from the environment",
        format!("{from_env:?}"),
    );
    check(
        "LaceworkClient from the environment",
        format!("{:?}", from_env.build()?),
    );
    let dir = tempfile::tempdir().map_err(fail)?;
    let file = profile_file(dir.path(), false)?;
    let no_env = |_: &str| None;
    let from_profile = ClientBuilder::from_sources(&no_env, Some(&file), None)?;
    check("ClientBuilder from a profile", format!("{from_profile:?}"));
    check(
        "LaceworkClient from a profile",
        format!("{:?}", from_profile.build()?),
    );

    // OPA: the builder, the evaluator, and a CI gate over it.
    let opa = OpaEvaluator::builder("http://127.0.0.1:8181").token(OPA_TOKEN);
    check("OpaBuilder", format!("{opa:?}"));
    let opa = opa.build()?;
    check("OpaEvaluator", format!("{opa:?}"));
    let gate = Gate::new(opa);
    check("Gate<OpaEvaluator>", format!("{gate:?}"));

    // Registry credentials from a Docker config (as a mounted dockerconfigjson Secret holds
    // them), and the resolver reading them.
    let docker = tempfile::tempdir().map_err(fail)?;
    let config = docker.path().join("config.json");
    let auth = serde_json::json!({"auths": {"registry.example.com": {
        "username": "ci", "password": REGISTRY_PASSWORD}}});
    std::fs::write(&config, auth.to_string()).map_err(fail)?;
    let source = CredentialSource {
        path: Some(config.clone()),
    };
    let credentials = source
        .for_registry("registry.example.com")?
        .ok_or_else(|| fail("no credentials read"))?;
    assert_eq!(credentials.secret.expose(), REGISTRY_PASSWORD);
    check("registry Credentials", format!("{credentials:?}"));
    let resolver = Resolver::new(RegistryConfig {
        docker_config: Some(config),
        ..RegistryConfig::default()
    })?;
    check("registry Resolver", format!("{resolver:?}"));
    Ok(())
}

#[test]
fn errors_about_a_secret_never_quote_it() -> Result<()> {
    let dir = tempfile::tempdir().map_err(fail)?;
    let file = profile_file(dir.path(), true)?;
    let no_env = |_: &str| None;
    // An unterminated string on the secret's line: `toml` would quote that line.
    let broken = ClientBuilder::from_sources(&no_env, Some(&file), None);
    let Err(e) = broken else {
        panic!("a broken profile file was accepted");
    };
    check("the error of a broken profile file", format!("{e} {e:?}"));

    let e = OpaEvaluator::builder("http://127.0.0.1:8181")
        .token(format!("{OPA_TOKEN}\nx"))
        .build()
        .err()
        .map(|e| format!("{e} {e:?}"));
    let printed = e.ok_or_else(|| fail("a token with a newline was accepted"))?;
    check("the error of a token no header can carry", printed);

    // A Docker config that is not JSON, with the password in it.
    let docker = tempfile::tempdir().map_err(fail)?;
    let config = docker.path().join("config.json");
    let text =
        format!("{{\"auths\": {{\"r.example\": {{\"password\": \"{REGISTRY_PASSWORD}\" ,,}}}}}}");
    std::fs::write(&config, text).map_err(fail)?;
    let e = CredentialSource { path: Some(config) }
        .for_registry("r.example")
        .err()
        .ok_or_else(|| fail("a malformed Docker config was accepted"))?;
    check(
        "the error of a malformed Docker config",
        format!("{e} {e:?}"),
    );
    Ok(())
}
