//! Lacework API v2: the wire format of container vulnerability searches and its conversion to a
//! [`ScanReport`](crate::scan::ScanReport).

mod rows;

pub use rows::{
    ContainerVulnRow, EvalCtx, FeatureKey, FixInfo, FlexBool, ImageInfo, ScanRequestProps,
    TimeValue, parse_rows, report_from_rows,
};

/// The `source` of reports built from Lacework data.
pub const SOURCE: &str = "lacework";
