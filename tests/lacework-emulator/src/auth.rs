//! Access tokens: `POST /api/v2/access/tokens` issues them, [`Authed`] checks the bearer token
//! of every other API call (401 when missing, unknown or expired).

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use serde_json::{Value, json};

use crate::fixtures::rfc3339;
use crate::http::{LwError, json_response, lw_error};
use crate::state::{Inner, Shared, lock};

/// `POST /api/v2/access/tokens`: `X-LW-UAKS` secret and `{"keyId", "expiryTime"}` → 201
/// `{"token", "expiresAt"}`, the lifetime capped by `token_ttl_cap_secs`.
pub(crate) async fn issue_token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = lock(&shared);
    let secret = headers.get("X-LW-UAKS").and_then(|v| v.to_str().ok());
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return lw_error(StatusCode::BAD_REQUEST, "Request body must be JSON");
    };
    let key = req.get("keyId").and_then(Value::as_str);
    if key != Some(s.config.key_id.as_str()) || secret != Some(s.config.secret.as_str()) {
        return lw_error(StatusCode::UNAUTHORIZED, "Invalid API key id or secret");
    }
    let asked = req
        .get("expiryTime")
        .and_then(Value::as_f64)
        .unwrap_or(3600.0);
    if asked <= 0.0 {
        return lw_error(StatusCode::BAD_REQUEST, "expiryTime must be positive");
    }
    let ttl = s
        .config
        .token_ttl_cap_secs
        .map_or(asked, |cap| asked.min(cap));
    let ttl = Duration::from_secs_f64(ttl);
    let token = format!("emu{}", s.id("token"));
    s.tokens.insert(token.clone(), Instant::now() + ttl);
    let expires_at =
        Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
    json_response(
        StatusCode::CREATED,
        json!({"token": token, "expiresAt": rfc3339(expires_at)}),
    )
}

/// Expires every issued token now.
pub(crate) fn expire_tokens(s: &mut Inner) {
    let now = Instant::now();
    for exp in s.tokens.values_mut() {
        *exp = now;
    }
}

/// Checks `Authorization: Bearer <token>` against the issued tokens at `now`.
fn check(s: &Inner, headers: &HeaderMap, now: Instant) -> Result<(), LwError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let unauthorized = |message: &str| Err(LwError(StatusCode::UNAUTHORIZED, message.into()));
    match token.and_then(|t| s.tokens.get(t)) {
        None => unauthorized("Invalid or missing access token"),
        Some(exp) if now >= *exp => unauthorized("Access token expired"),
        Some(_) => Ok(()),
    }
}

/// A request carrying a live token; extracting it answers 401 otherwise.
pub(crate) struct Authed;

impl FromRequestParts<Shared> for Authed {
    type Rejection = LwError;

    async fn from_request_parts(parts: &mut Parts, shared: &Shared) -> Result<Self, LwError> {
        check(&lock(shared), &parts.headers, Instant::now()).map(|()| Authed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Config;
    use axum::http::HeaderValue;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn bearer(token: &str) -> Result<HeaderMap, Box<dyn std::error::Error>> {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        Ok(h)
    }

    #[test]
    fn tokens_live_until_they_expire() -> TestResult {
        let mut s = Inner::new(Config::default(), vec![], vec![]);
        let now = Instant::now();
        s.tokens
            .insert("live".into(), now + Duration::from_secs(10));
        assert_eq!(check(&s, &bearer("live")?, now), Ok(()));
        assert_eq!(check(&s, &bearer(" live ")?, now), Ok(()));
        let unauthorized = |m: &str| Err(LwError(StatusCode::UNAUTHORIZED, m.into()));
        assert_eq!(
            check(&s, &bearer("live")?, now + Duration::from_secs(10)),
            unauthorized("Access token expired")
        );
        assert_eq!(
            check(&s, &bearer("other")?, now),
            unauthorized("Invalid or missing access token")
        );
        assert_eq!(
            check(&s, &HeaderMap::new(), now),
            unauthorized("Invalid or missing access token")
        );
        expire_tokens(&mut s);
        assert_eq!(
            check(&s, &bearer("live")?, Instant::now()),
            unauthorized("Access token expired")
        );
        Ok(())
    }
}
