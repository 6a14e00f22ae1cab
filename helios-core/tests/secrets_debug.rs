//! Every public type that holds a secret redacts it in `Debug` (and `Display` where it has one):
//! each is built here with a known secret, from every way in (builder, environment, Lacework CLI
//! profile file), and its output is searched for it. Errors raised about a secret do not quote
//! it either. A new secret-holding type belongs in this walk.
//!
//! The CLI's `--opa-token` (helios-cli `OpaToken`) is checked in its own crate.

use std::path::Path;

use helios_core::gate::Gate;
use helios_core::policy::OpaEvaluator;
use helios_core::scan::CachedSource;
use helios_core::scan::lacework::{ClientBuilder, LaceworkClient, LaceworkSource, NoScan, Secret};
use helios_core::{Error, Result};

const API_SECRET: &str = "_walk-api-s3cr3t";
const ENV_SECRET: &str = "_walk-env-s3cr3t";
const PROFILE_SECRET: &str = "_walk-profile-s3cr3t";
const OPA_TOKEN: &str = "walk-opa-t0ken";
const SECRETS: [&str; 4] = [API_SECRET, ENV_SECRET, PROFILE_SECRET, OPA_TOKEN];

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
    Ok(())
}
