//! [`ScanOptions`]: where the gate and `scan` front ends (CLI, Python, Node) take a scan from.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::scan::lacework::{
    DEFAULT_SCAN_WAIT, LaceworkLookup, LaceworkSource, ServiceFailure, shared_client,
};
use crate::scan::shared::CacheConfig;
use crate::scan::{DirSource, FileSource, Lookup, ScanSource};

/// The default wait for an on-demand scan, in seconds ([`DEFAULT_SCAN_WAIT`]).
pub const DEFAULT_WAIT_SECS: u64 = DEFAULT_SCAN_WAIT.as_secs();

/// Where a scan comes from: a scan file, a directory of scan files, or (neither set) Lacework
/// with the wait / no-scan / profile settings. Unknown fields are errors; absent ones take the
/// defaults (Lacework, wait [`DEFAULT_WAIT_SECS`], request scans, the default profile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanOptions {
    /// One scan file (a Lacework v2 search response, its rows, or a Helios report).
    pub scan_file: Option<PathBuf>,
    /// A directory of scan files named by digest ([`DirSource`]).
    pub scan_dir: Option<PathBuf>,
    /// Seconds to wait for an on-demand scan when Lacework has none (0: request one and answer
    /// `pending` at once).
    pub wait: f64,
    /// Never request an on-demand scan: an image Lacework has no record of is `not_found`.
    pub no_scan: bool,
    /// The Lacework CLI profile of `~/.lacework.toml` (default `LW_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// Share Lacework lookups and the request budget with every process using this Redis
    /// (`redis://…`, `rediss://…`; needs the `redis` feature, which the CLI has): one lookup per
    /// digest for a fleet of CI jobs (docs/scale-out.md).
    pub cache_redis: Option<String>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            scan_file: None,
            scan_dir: None,
            wait: DEFAULT_WAIT_SECS as f64,
            no_scan: false,
            profile: None,
            cache_redis: None,
        }
    }
}

impl ScanOptions {
    /// Reads options from a JSON value; a wrong field or type is `invalid_input` naming it.
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        serde_path_to_error::deserialize(value).map_err(|e| Error::invalid("scan options", e))
    }

    /// `true` when the scan comes from Lacework (neither a scan file nor a directory), i.e.
    /// the lookup may wait on the network.
    pub fn uses_lacework(&self) -> bool {
        self.scan_file.is_none() && self.scan_dir.is_none()
    }

    /// The Lacework lookup these options describe (`invalid_input` for a negative, NaN or
    /// infinite wait).
    pub fn lacework(&self, on_failure: ServiceFailure) -> Result<LaceworkLookup> {
        let wait = Duration::try_from_secs_f64(self.wait).map_err(|_| {
            Error::invalid(
                "scan options",
                format!(
                    "wait must be a non-negative finite number of seconds, got {}",
                    self.wait
                ),
            )
        })?;
        Ok(LaceworkLookup {
            profile: self.profile.clone(),
            wait,
            no_scan: self.no_scan,
            on_failure,
        })
    }

    /// The source these options describe, and the [`Lookup`] to ask it with (the Lacework
    /// wait's deadline). Lacework service failures become `unavailable` reports, so the policy
    /// decides; the client is the process-wide one for the credentials ([`shared_client`]).
    pub fn source(&self) -> Result<(Arc<dyn ScanSource>, Lookup)> {
        let lookup = self.lacework(ServiceFailure::Report)?;
        match (&self.scan_file, &self.scan_dir) {
            (Some(_), Some(_)) => Err(Error::invalid(
                "scan options",
                "give either scan_file or scan_dir, not both",
            )),
            (Some(file), None) => Ok((Arc::new(FileSource::new(file)), Lookup::default())),
            (None, Some(dir)) => Ok((Arc::new(DirSource::open(dir)?), Lookup::default())),
            (None, None) => {
                let client = shared_client(lookup.profile.as_deref())?;
                let source: Arc<dyn ScanSource> = match &self.cache_redis {
                    Some(url) => {
                        let cache = CacheConfig::redis(url.as_str());
                        cache.validate()?;
                        cache.scan_source(client, lookup.no_scan_mode())?
                    }
                    None => Arc::new(LaceworkSource::new(client, lookup.no_scan_mode())),
                };
                Ok((source, lookup.lookup()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_mistakes() -> Result<()> {
        let d = ScanOptions::default();
        assert_eq!(
            d.lacework(ServiceFailure::Report)?,
            LaceworkLookup::default()
        );
        let o = ScanOptions::from_value(serde_json::json!({"wait": 5, "no_scan": true}))?;
        assert_eq!((o.wait, o.no_scan), (5.0, true));
        for bad in [
            serde_json::json!({"wiat": 5}),
            serde_json::json!({"wait": "5"}),
            serde_json::json!({"wait": -1}),
            serde_json::json!({"scan_file": "a", "scan_dir": "b"}),
        ] {
            let err = ScanOptions::from_value(bad.clone()).and_then(|o| o.source().map(|_| ()));
            assert!(
                err.as_ref().is_err_and(|e| e.code() == "invalid_input"),
                "{bad}: {err:?}"
            );
        }
        Ok(())
    }
}
