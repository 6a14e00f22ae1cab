//! Faults injected per endpoint: what they are, which request takes one, what it answers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::http::lw_error;

/// An API endpoint, for counters and fault targeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /api/v2/access/tokens`.
    Tokens,
    /// `POST /api/v2/Vulnerabilities/Containers/search`.
    Search,
    /// `GET` of a `nextPage` URL.
    SearchPage,
    /// `POST /api/v2/Vulnerabilities/Containers/scan`.
    Scan,
    /// `GET /api/v2/Vulnerabilities/Containers/scan/{requestId}`.
    ScanStatus,
    /// `POST /api/v2/VulnerabilityObservations/ImageSummary/search`.
    ImageSummary,
}

impl Endpoint {
    /// Its counter name (the serde name).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Endpoint::Tokens => "tokens",
            Endpoint::Search => "search",
            Endpoint::SearchPage => "search_page",
            Endpoint::Scan => "scan",
            Endpoint::ScanStatus => "scan_status",
            Endpoint::ImageSummary => "image_summary",
        }
    }
}

/// What a fault does to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// HTTP 429 with `Retry-After` (seconds) and/or `RateLimit-Reset` (seconds).
    RateLimit {
        /// `Retry-After` value.
        #[serde(default)]
        retry_after: Option<u64>,
        /// `RateLimit-Reset` value.
        #[serde(default)]
        reset: Option<u64>,
    },
    /// A 5xx (default 500) with a Lacework error body.
    ServerError {
        /// The status code.
        #[serde(default = "default_500")]
        status: u16,
    },
    /// Answer normally, but only after `delay_ms`.
    Slow {
        /// The delay.
        delay_ms: u64,
    },
    /// HTTP 200 with a body that is not JSON.
    Malformed,
    /// HTTP 200 whose body stops half-way (the connection closes early).
    Truncated,
    /// HTTP 401 as for an expired or revoked token.
    Unauthorized,
}

fn default_500() -> u16 {
    500
}

impl FaultKind {
    /// The answer that replaces the endpoint's; `None` for [`FaultKind::Slow`], which answers
    /// normally (late).
    pub(crate) fn response(&self) -> Option<Response> {
        Some(match *self {
            FaultKind::Slow { .. } => return None,
            FaultKind::RateLimit { retry_after, reset } => {
                let mut r = lw_error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
                if let Some(v) = retry_after {
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(v));
                }
                if let Some(v) = reset {
                    r.headers_mut()
                        .insert("RateLimit-Reset", HeaderValue::from(v));
                }
                r.headers_mut()
                    .insert("RateLimit-Remaining", HeaderValue::from(0));
                r
            }
            FaultKind::ServerError { status } => lw_error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "Internal Server Error",
            ),
            FaultKind::Malformed => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"data\": [ {\"evalCtx\": <html>oops",
            )
                .into_response(),
            FaultKind::Truncated => {
                let full = br#"{"data": [], "paging": {"rows": 0, "totalRows": 0, "urls": {"nextPage": null}}, "padding": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
                let half = full[..full.len() / 2].to_vec();
                let mut r = (StatusCode::OK, half).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(full.len()));
                r
            }
            FaultKind::Unauthorized => {
                lw_error(StatusCode::UNAUTHORIZED, "Invalid or expired token")
            }
        })
    }
}

/// A fault applied to the next `times` requests of `endpoint` (any endpoint when `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// The endpoint targeted; all when absent.
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    /// What happens.
    pub fault: FaultKind,
    /// How many requests it applies to (default 1).
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// `fault` on the next request of `endpoint`.
    pub fn once(endpoint: Endpoint, fault: FaultKind) -> Self {
        Fault {
            endpoint: Some(endpoint),
            fault,
            times: 1,
        }
    }

    /// Applies to `times` requests.
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }
}

/// The fault a request of `endpoint` takes from the queue: the first one aimed at it (or at
/// any endpoint) with uses left; used up faults leave the queue.
pub(crate) fn take(faults: &mut Vec<Fault>, endpoint: Endpoint) -> Option<FaultKind> {
    let i = faults
        .iter()
        .position(|f| f.times > 0 && f.endpoint.is_none_or(|e| e == endpoint))?;
    let f = &mut faults[i];
    f.times -= 1;
    let kind = f.fault.clone();
    if f.times == 0 {
        faults.remove(i);
    }
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn faults_are_taken_in_order_per_endpoint_and_used_up() -> TestResult {
        let mut faults = vec![
            Fault::once(Endpoint::Search, FaultKind::Malformed).times(2),
            Fault {
                endpoint: None,
                fault: FaultKind::Unauthorized,
                times: 1,
            },
        ];
        assert_eq!(
            take(&mut faults, Endpoint::Tokens),
            Some(FaultKind::Unauthorized)
        );
        assert_eq!(take(&mut faults, Endpoint::Tokens), None);
        assert_eq!(
            take(&mut faults, Endpoint::Search),
            Some(FaultKind::Malformed)
        );
        assert_eq!(
            take(&mut faults, Endpoint::Search),
            Some(FaultKind::Malformed)
        );
        assert_eq!(take(&mut faults, Endpoint::Search), None);
        assert!(faults.is_empty());
        Ok(())
    }

    #[test]
    fn fault_answers() -> TestResult {
        let r = FaultKind::RateLimit {
            retry_after: Some(7),
            reset: None,
        }
        .response()
        .ok_or("missing")?;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "7");
        assert_eq!(r.headers()["ratelimit-remaining"], "0");
        assert!(r.headers().get("ratelimit-reset").is_none());
        let r = FaultKind::ServerError { status: 42 }
            .response()
            .ok_or("missing")?;
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let r = FaultKind::ServerError { status: 503 }
            .response()
            .ok_or("missing")?;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(FaultKind::Slow { delay_ms: 1 }.response().is_none());
        let r = FaultKind::Truncated.response().ok_or("missing")?;
        assert_eq!(r.headers()["content-length"], "158");
        Ok(())
    }

    #[test]
    fn faults_from_json() -> TestResult {
        let f: Fault = serde_json::from_str(r#"{"fault": {"type": "server_error"}}"#)?;
        assert_eq!(f.endpoint, None);
        assert_eq!(f.times, 1);
        assert_eq!(f.fault, FaultKind::ServerError { status: 500 });
        Ok(())
    }
}
