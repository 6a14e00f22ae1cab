//! Where scan reports come from: the [`ScanSource`] trait.

use std::time::Instant;

use async_trait::async_trait;

use crate::error::Result;
use crate::image::ImageRef;
use crate::scan::ScanReport;

/// Per-lookup options: the caller's deadline and whether the lookup may have side effects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lookup {
    /// Give up (answering `unavailable` or `pending`) when this instant passes.
    pub deadline: Option<Instant>,
    /// `true` forbids side effects such as requesting an on-demand scan (admission `dryRun`).
    pub dry_run: bool,
}

/// A source of scan reports (Lacework, a directory of scan files, a cache in front of either).
///
/// "No scan" is not an error: it is a report with status `not_found`, `pending` or
/// `unavailable`, so that the policy decides what it means. Errors are for misuse (an image the
/// source cannot look up at all) and are mapped by callers to the failure policy.
#[async_trait]
pub trait ScanSource: Send + Sync {
    /// The scan of `image`.
    async fn scan(&self, image: &ImageRef, lookup: Lookup) -> Result<ScanReport>;

    /// The size of this source's in-memory cache, when it has one (default: `None`). The
    /// webhook exports it as the `helios_scan_cache_entries` and `helios_scan_cache_max_entries`
    /// gauges.
    fn cache_size(&self) -> Option<CacheSize> {
        None
    }
}

/// How full an in-memory scan cache is ([`ScanSource::cache_size`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheSize {
    /// Cached images right now (expired ones included until evicted).
    pub entries: usize,
    /// The bound on `entries`.
    pub max_entries: usize,
}
