//! The registry flags of `gate` and `scan`: how a tag is resolved to the digest that will run.

use std::path::PathBuf;

use clap::Args;
use helios_core::registry::{Platform, RegistryConfig, Resolver};
use helios_core::{Error, Result};

/// How image tags are resolved at their registry before the scan lookup.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Look the image up as written, without asking its registry for the digest a tag points
    /// to (the scan lookup then falls back to what the scanner knows by tag).
    /// `HELIOS_NO_RESOLVE=true` does the same.
    #[arg(long, env = "HELIOS_NO_RESOLVE")]
    no_resolve: bool,

    /// The platform whose manifest is picked from a multi-arch image.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    platform: Platform,

    /// Registry credentials: a Docker config.json, a `.dockerconfigjson`, or a directory with
    /// either (default: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
    #[arg(long, value_name = "PATH", env = "HELIOS_DOCKER_CONFIG")]
    docker_config: Option<PathBuf>,

    /// Speak plain HTTP to this registry (`host[:port]`, repeatable); never a fallback.
    #[arg(long, value_name = "HOST")]
    plain_http: Vec<String>,

    /// Trust this PEM CA for this registry (repeatable), e.g. `--registry-ca registry:5000=ca.pem`.
    #[arg(long, value_name = "HOST=FILE", value_parser = parse_ca)]
    registry_ca: Vec<(String, PathBuf)>,

    /// Milliseconds one registry request may take.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    registry_timeout_ms: u64,
}

fn parse_ca(s: &str) -> std::result::Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((host, file)) if !host.trim().is_empty() && !file.is_empty() => {
            Ok((host.trim().to_string(), PathBuf::from(file)))
        }
        _ => Err(format!("expected HOST=FILE, got {s:?}")),
    }
}

impl RegistryArgs {
    /// The resolver these flags configure; `None` with `--no-resolve`.
    pub fn resolver(&self) -> Result<Option<Resolver>> {
        if self.no_resolve {
            return Ok(None);
        }
        for (host, _) in &self.registry_ca {
            if self.plain_http.contains(host) {
                return Err(Error::InvalidInput {
                    what: "registry flags".into(),
                    reason: format!("{host} is given both --plain-http and --registry-ca"),
                });
            }
        }
        let config = RegistryConfig {
            docker_config: self.docker_config.clone(),
            platform: self.platform.clone(),
            timeout_ms: self.registry_timeout_ms,
            plain_http: self.plain_http.iter().cloned().collect(),
            ca: self.registry_ca.iter().cloned().collect(),
            ..RegistryConfig::default()
        };
        Resolver::new(config).map(Some)
    }
}
