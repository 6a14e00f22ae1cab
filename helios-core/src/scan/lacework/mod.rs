//! Lacework API v2: the client (tokens, image summaries, search, on-demand scans, rate limits),
//! the scan source built on it, and the wire format of container vulnerability searches with its
//! conversion to a [`ScanReport`](crate::scan::ScanReport).
//!
//! ```no_run
//! use helios_core::image::ImageRef;
//! use helios_core::scan::{Lookup, ScanSource};
//! use helios_core::scan::lacework::{LaceworkClient, LaceworkSource, NoScan};
//!
//! # async fn run() -> helios_core::Result<()> {
//! // LW_ACCOUNT / LW_API_KEY / LW_API_SECRET, or a ~/.lacework.toml profile.
//! let client = LaceworkClient::from_env()?;
//! let source = LaceworkSource::new(client, NoScan::RequestScan);
//! let image = ImageRef::parse("nginx@sha256:1234d2246518044ef95e3dbd029e51dd477788e5bf8e278e418685aabc3fe28a")?;
//! let report = source.scan(&image, Lookup::default()).await?;
//! println!("{}", report.status);
//! # Ok(())
//! # }
//! ```

mod budget;
mod client;
mod config;
#[cfg(feature = "redis")]
mod fleet_budget;
mod lookup;
mod ondemand;
mod retry;
mod rows;
mod search;
mod share;
mod source;
mod summary;
mod token;

pub use crate::http::Secret;
pub use budget::DEFAULT_REQUESTS_PER_HOUR;
pub use client::{ClientBuilder, DEFAULT_LOOK_BACK, LaceworkClient, MAX_SEARCH_WINDOW};
#[cfg(feature = "redis")]
pub use fleet_budget::cache_namespace;
pub use lookup::{
    DEFAULT_SCAN_WAIT, LOOKUP_ALLOWANCE, LaceworkLookup, ServiceFailure, scan_image, shared_client,
};
pub use ondemand::{SCAN_PATH, ScanState};
// The wire rows of a container vulnerability search stay inside the crate: callers read a
// search page or a scan file through `ScanReport::from_scan_json` / `from_scan_file`.
pub(crate) use rows::{ContainerVulnRow, parse_rows, report_from_rows};
pub use search::{Filter, MAX_LOOK_BACK, SEARCH_PATH, lacework_registry};
pub(crate) use share::refused as share_refused;
pub use share::{BudgetShare, ShareLedger};
pub use source::{LaceworkSource, NoScan};
pub use summary::{IMAGE_SUMMARY_PATH, ImageSummary, SummaryState};
pub use token::TOKEN_PATH;

/// The `source` of reports built from Lacework data.
pub const SOURCE: &str = "lacework";
