//! HTTP plumbing: Lacework's error and JSON answers, the meter every API call passes (counter,
//! on-demand scan progress, faults, the hourly rate limit and its `RateLimit-*` headers), and
//! the 404 for everything else.

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::faults::{self, Endpoint, FaultKind};
use crate::scans;
use crate::state::{Inner, Shared, lock};

/// Lacework's error answer: `status` with `{"message": message}`.
pub(crate) fn lw_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message}))).into_response()
}

/// A Lacework error answer as a value: status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LwError(pub(crate) StatusCode, pub(crate) String);

impl LwError {
    /// 400 with `message`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        LwError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for LwError {
    fn into_response(self) -> Response {
        lw_error(self.0, &self.1)
    }
}

/// `body` as JSON with `status`.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// 404 for paths and methods the API does not have (neither counted nor rate-limited).
pub(crate) async fn not_found() -> Response {
    lw_error(StatusCode::NOT_FOUND, "Not Found")
}

/// A search request body: JSON, an empty body meaning `{}`.
pub(crate) fn search_request(body: &[u8]) -> Result<Value, LwError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| LwError::bad_request("Request body must be JSON"))
}

/// The `Host` the client called, for `nextPage` URLs.
pub(crate) fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string()
}

/// Where a request stands in the hourly window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimit {
    /// Requests allowed per hour.
    limit: u32,
    /// Requests in the window, this one included.
    used: u32,
    /// Seconds until the window resets.
    reset: u64,
}

impl RateLimit {
    /// Counts a request at `now` in `s`'s window (a new window once the hour is over).
    fn tick(s: &mut Inner, now: Instant) -> RateLimit {
        if now.duration_since(s.window.0) >= Duration::from_secs(3600) {
            s.window = (now, 0);
        }
        s.window.1 += 1;
        RateLimit {
            limit: s.config.rate_limit,
            used: s.window.1,
            reset: 3600u64.saturating_sub(now.duration_since(s.window.0).as_secs()),
        }
    }

    /// The real 429 once the window is used up.
    fn exceeded(self) -> Option<Response> {
        (self.used > self.limit).then(|| {
            let mut r = lw_error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(self.reset));
            r
        })
    }

    /// `RateLimit-Limit`, `-Remaining` and `-Reset`; a fault's own remaining and reset win.
    fn annotate(self, response: &mut Response) {
        let h = response.headers_mut();
        h.insert("RateLimit-Limit", HeaderValue::from(self.limit));
        if !h.contains_key("RateLimit-Remaining") {
            h.insert(
                "RateLimit-Remaining",
                HeaderValue::from(self.limit.saturating_sub(self.used)),
            );
        }
        if !h.contains_key("RateLimit-Reset") {
            h.insert("RateLimit-Reset", HeaderValue::from(self.reset));
        }
    }
}

/// The middleware in front of every API route: counts the call to `endpoint`, records its
/// `Account-Name`, finishes due scans, then answers with the next queued fault or the 429 of
/// a used-up window — or lets the handler answer — and adds the rate-limit headers.
pub(crate) async fn meter(
    State((shared, endpoint)): State<(Shared, Endpoint)>,
    request: Request,
    next: Next,
) -> Response {
    // Count, advance scans, pick a fault: all under one short lock.
    let (fault, rate) = {
        let mut s = lock(&shared);
        *s.counters.entry(endpoint.name().to_string()).or_default() += 1;
        if let Some(name) = request
            .headers()
            .get("Account-Name")
            .and_then(|v| v.to_str().ok())
        {
            s.account_names.push(name.to_string());
        }
        scans::advance(&mut s);
        let fault = faults::take(&mut s.faults, endpoint);
        (fault, RateLimit::tick(&mut s, Instant::now()))
    };
    if let Some(FaultKind::Slow { delay_ms }) = fault {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let early = fault
        .as_ref()
        .and_then(FaultKind::response)
        .or_else(|| rate.exceeded());
    let mut response = match early {
        Some(r) => r,
        None => next.run(request).await,
    };
    rate.annotate(&mut response);
    response
}

/// Drops the `Allow` header axum adds when a route exists but not for the method: Lacework's
/// 404s carry none.
pub(crate) async fn without_allow(mut response: Response) -> Response {
    response.headers_mut().remove(header::ALLOW);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use crate::state::Config;

    #[test]
    fn the_window_counts_down_and_then_answers_429() -> TestResult {
        let mut s = Inner::new(
            Config {
                rate_limit: 2,
                ..Config::default()
            },
            vec![],
            vec![],
        );
        let start = s.window.0;
        let first = RateLimit::tick(&mut s, start + Duration::from_secs(10));
        assert_eq!(
            first,
            RateLimit {
                limit: 2,
                used: 1,
                reset: 3590
            }
        );
        assert!(first.exceeded().is_none());
        RateLimit::tick(&mut s, start + Duration::from_secs(11));
        let third = RateLimit::tick(&mut s, start + Duration::from_secs(12));
        let mut r = third.exceeded().ok_or("missing")?;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "3588");
        third.annotate(&mut r);
        assert_eq!(r.headers()["ratelimit-limit"], "2");
        assert_eq!(r.headers()["ratelimit-remaining"], "0");
        assert_eq!(r.headers()["ratelimit-reset"], "3588");
        // A new hour, a new window.
        let later = RateLimit::tick(&mut s, start + Duration::from_secs(3600));
        assert_eq!((later.used, later.reset), (1, 3600));
        Ok(())
    }

    #[test]
    fn a_faults_own_headers_win() -> TestResult {
        let rate = RateLimit {
            limit: 5,
            used: 1,
            reset: 100,
        };
        let mut r = FaultKind::RateLimit {
            retry_after: None,
            reset: Some(9),
        }
        .response()
        .ok_or("missing")?;
        rate.annotate(&mut r);
        assert_eq!(r.headers()["ratelimit-remaining"], "0");
        assert_eq!(r.headers()["ratelimit-reset"], "9");
        let mut r = json_response(StatusCode::OK, json!({}));
        rate.annotate(&mut r);
        assert_eq!(r.headers()["ratelimit-remaining"], "4");
        assert_eq!(r.headers()["ratelimit-reset"], "100");
        Ok(())
    }

    #[test]
    fn search_requests() -> TestResult {
        assert_eq!(search_request(b""), Ok(json!({})));
        assert_eq!(search_request(b"{\"a\":1}"), Ok(json!({"a": 1})));
        assert_eq!(
            search_request(b"{"),
            Err(LwError::bad_request("Request body must be JSON"))
        );
        Ok(())
    }
}
