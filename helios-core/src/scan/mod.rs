//! Scans: the normalised [`ScanReport`] and where reports come from.
//!
//! A report comes from a [`ScanSource`]: Lacework ([`lacework::LaceworkSource`]), a directory of
//! scan files ([`DirSource`]), one scan file ([`FileSource`]), or a cache in front of either ([`CachedSource`]). A single scan
//! file ([`ScanReport::from_scan_file`]) holds a Lacework API v2 search response, a bare array
//! of its rows, or a Helios report; [`lacework`] holds the client and the conversion from
//! Lacework's wire format. [`ScanOptions`] describes the source the CLI and the bindings ask.
//! [`shared`] holds the optional Redis tier that lets several webhook replicas share one cache
//! and one Lacework budget (feature `redis`).

pub mod cache;
mod dir;
mod file;
pub mod lacework;
mod options;
mod report;
pub mod shared;
mod source;

pub use cache::CachedSource;
pub use dir::DirSource;
pub use file::FileSource;
pub use options::{DEFAULT_WAIT_SECS, ScanOptions};
pub use report::{AffectedPackage, Fix, ScanReport, ScanStatus, Severity, Summary, Vulnerability};
pub use source::{CacheSize, Lookup, ScanSource};
