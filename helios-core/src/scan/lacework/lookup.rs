//! One image looked up in Lacework with settings from the environment or a Lacework CLI profile:
//! what `helios scan`, `helios gate` without a scan file, and the Python and Node `scan`/`gate`
//! do. The CLI and the bindings only fill in a [`LaceworkLookup`].

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::client::{ClientBuilder, LaceworkClient};
use super::source::{LaceworkSource, NoScan};
use crate::error::Result;
use crate::image::ImageRef;
use crate::scan::{Lookup, ScanReport, ScanSource};

/// How long the lookup itself (token, search, retries) may take on top of the scan wait.
pub const LOOKUP_ALLOWANCE: Duration = Duration::from_secs(60);

/// The default wait for an on-demand scan (the CLI's `--wait 600`): Lacework documents scans of
/// up to 15 minutes, most finish in a few.
pub const DEFAULT_SCAN_WAIT: Duration = Duration::from_secs(600);

/// What a Lacework lookup failing for service reasons (network, credentials, rate limit,
/// Lacework error answers) gives the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceFailure {
    /// A report with status `unavailable` and the reason in `error`, so a policy decides (the
    /// CLI, and every gate).
    #[default]
    Report,
    /// The typed error (`auth`, `unavailable`, `remote`), for callers that handle failures
    /// themselves (the bindings' `scan`).
    Error,
}

/// Options of [`scan_image`]: where the settings come from and what to do without a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaceworkLookup {
    /// The profile of `~/.lacework.toml` (else `LW_PROFILE`, else `default`); `LW_ACCOUNT`,
    /// `LW_SUBACCOUNT`, `LW_API_KEY`, `LW_API_SECRET` override its values.
    pub profile: Option<String>,
    /// How long to wait for an on-demand scan when Lacework has none; zero requests one and
    /// answers `pending` at once.
    pub wait: Duration,
    /// Never request an on-demand scan: an image without one is `not_found`.
    pub no_scan: bool,
    /// What service failures become.
    pub on_failure: ServiceFailure,
}

impl Default for LaceworkLookup {
    /// The CLI's defaults: default profile, wait 600 s, request scans, failures as reports.
    fn default() -> Self {
        LaceworkLookup {
            profile: None,
            wait: DEFAULT_SCAN_WAIT,
            no_scan: false,
            on_failure: ServiceFailure::Report,
        }
    }
}

impl LaceworkLookup {
    /// The [`NoScan`] mode these options mean: `no_scan` wins; a zero wait requests a scan
    /// without waiting; otherwise request and wait.
    pub fn no_scan_mode(&self) -> NoScan {
        match (self.no_scan, self.wait) {
            (true, _) => NoScan::None,
            (false, wait) if wait.is_zero() => NoScan::RequestScan,
            (false, wait) => NoScan::ScanAndWait { wait },
        }
    }

    /// The deadline [`scan_image`] gives its lookup: with `no_scan` none, so the client's
    /// documented `max_wait` bounds it (no scan will be waited for, so the scan wait must not
    /// count); otherwise [`Self::deadline`].
    pub(crate) fn lookup_deadline(&self) -> Option<Instant> {
        (!self.no_scan).then(|| self.deadline())
    }

    /// The per-lookup options of a lookup starting now: [`Self::lookup_deadline`], no dry run.
    pub fn lookup(&self) -> Lookup {
        Lookup {
            deadline: self.lookup_deadline(),
            dry_run: false,
        }
    }

    /// The deadline of a lookup starting now: the scan wait plus [`LOOKUP_ALLOWANCE`].
    pub fn deadline(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.wait.saturating_add(LOOKUP_ALLOWANCE))
            // A wait too long for the clock: a far but representable deadline.
            .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
    }
}

/// The Lacework scan of `image`, with the client configured from the environment and
/// `options.profile` (see [`ClientBuilder::from_env`]).
///
/// Errors: a bad configuration (no account, an unreadable or missing named profile) fails with
/// `invalid_input`/`io`; service failures follow `options.on_failure`.
///
/// ```no_run
/// use helios_core::image::ImageRef;
/// use helios_core::scan::lacework::{LaceworkLookup, scan_image};
///
/// # async fn run() -> helios_core::Result<()> {
/// let image = ImageRef::parse("registry.example.com/team/app:1.4")?;
/// let report = scan_image(&image, &LaceworkLookup { no_scan: true, ..Default::default() }).await?;
/// println!("{}", report.status);
/// # Ok(())
/// # }
/// ```
pub async fn scan_image(image: &ImageRef, options: &LaceworkLookup) -> Result<ScanReport> {
    let source = LaceworkSource::new(
        shared_client(options.profile.as_deref())?,
        options.no_scan_mode(),
    );
    let lookup = options.lookup();
    match options.on_failure {
        ServiceFailure::Report => source.scan(image, lookup).await,
        ServiceFailure::Error => source.lookup(image, lookup).await,
    }
}

/// The process-wide client for the settings of the environment and `profile` (see
/// [`ClientBuilder::from_env`]): one per account, sub-account, key and secret, built on first use,
/// so every lookup of a process (CLI, bindings) shares one connection pool, one access token and
/// one request budget.
pub fn shared_client(profile: Option<&str>) -> Result<LaceworkClient> {
    type Key = [Option<String>; 5];
    static CLIENTS: OnceLock<Mutex<HashMap<Key, LaceworkClient>>> = OnceLock::new();
    let builder = match profile {
        Some(p) => ClientBuilder::from_env_profile(p)?,
        None => ClientBuilder::from_env()?,
    };
    let s = &builder.settings;
    let key: Key = [
        s.server_url.clone(),
        s.account.clone(),
        s.subaccount.clone(),
        s.api_key.clone(),
        s.api_secret.as_ref().map(|k| k.expose().to_string()),
    ];
    // A poisoned lock only means another thread panicked while holding it: the map is intact.
    let mut clients = CLIENTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(client) = clients.get(&key) {
        return Ok(client.clone());
    }
    let client = builder.build()?;
    clients.insert(key, client.clone());
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_scan_mode_follows_the_cli_flags() {
        let mode = |no_scan, secs| {
            LaceworkLookup {
                no_scan,
                wait: Duration::from_secs(secs),
                ..Default::default()
            }
            .no_scan_mode()
        };
        assert_eq!(mode(true, 600), NoScan::None);
        assert_eq!(mode(true, 0), NoScan::None);
        assert_eq!(mode(false, 0), NoScan::RequestScan);
        assert_eq!(
            mode(false, 5),
            NoScan::ScanAndWait {
                wait: Duration::from_secs(5)
            }
        );
    }

    #[test]
    fn a_no_scan_lookup_is_bounded_by_max_wait_not_the_scan_wait() {
        let no_scan = LaceworkLookup {
            no_scan: true,
            ..Default::default()
        };
        assert_eq!(no_scan.lookup_deadline(), None);
        let waiting = LaceworkLookup::default();
        assert!(waiting.lookup_deadline() > Some(Instant::now() + DEFAULT_SCAN_WAIT));
    }

    #[test]
    fn the_deadline_is_the_wait_plus_a_minute_and_never_overflows() {
        let options = LaceworkLookup {
            wait: Duration::from_secs(10),
            ..Default::default()
        };
        let left = options.deadline() - Instant::now();
        assert!(left > Duration::from_secs(69) && left <= Duration::from_secs(70));
        let huge = LaceworkLookup {
            wait: Duration::MAX,
            ..Default::default()
        };
        assert!(huge.deadline() > Instant::now() + Duration::from_secs(86_400));
    }
}
