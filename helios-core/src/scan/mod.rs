//! Scans: the normalised [`ScanReport`] and where reports come from.
//!
//! Today a report comes from a scan file ([`ScanReport::from_scan_file`]) holding a Lacework API v2
//! search response, a bare array of its rows, or a Helios report; [`lacework`] holds the
//! conversion from Lacework's wire format.

mod file;
pub mod lacework;
mod report;
mod source;

pub use report::{Fix, Package, ScanReport, ScanStatus, Severity, Summary, Vulnerability};
pub use source::{Lookup, ScanSource};
