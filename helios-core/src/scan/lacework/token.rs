//! Access tokens: `POST /api/v2/access/tokens` with the secret in `X-LW-UAKS`, cached until
//! shortly before `expiresAt`, refreshed by one caller while the others wait for it.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::client::LaceworkClient;
use crate::error::{Error, Result};
use crate::http::Secret;

/// The token endpoint.
pub const TOKEN_PATH: &str = "/api/v2/access/tokens";

/// A token in use, with the generation that identifies it for invalidation.
#[derive(Clone)]
pub(super) struct Token {
    pub value: Secret,
    pub generation: u64,
}

struct Current {
    value: Secret,
    refresh_at: Instant,
    generation: u64,
}

#[derive(Default)]
struct State {
    current: Option<Current>,
    generation: u64,
    /// The last rejection of the keys, replayed during the cooldown instead of asking again.
    rejected: Option<(Instant, String)>,
}

/// The token cache of one client (shared by its clones).
pub(super) struct Tokens {
    // An async mutex, held across the refresh: concurrent callers queue behind the one refresh
    // and then reuse its token.
    state: tokio::sync::Mutex<State>,
    cooldown: Duration,
}

/// The token endpoint's answer: API v2 sends `{"token", "expiresAt"}`; API v1 wrapped the same
/// in `{"data": [...]}`. Both are read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    data: Vec<TokenData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenData {
    token: String,
    #[serde(default)]
    expires_at: Option<String>,
}

impl Tokens {
    pub(super) fn new(cooldown: Duration) -> Self {
        Tokens {
            state: tokio::sync::Mutex::new(State::default()),
            cooldown,
        }
    }

    /// A valid token, fetched if there is none or it is about to expire.
    pub(super) async fn get(&self, client: &LaceworkClient, deadline: Instant) -> Result<Token> {
        let mut state = tokio::time::timeout_at(deadline.into(), self.state.lock())
            .await
            .map_err(|_| {
                client.unavailable("the caller's deadline passed while waiting for an access token")
            })?;
        let now = Instant::now();
        if let Some(cur) = &state.current
            && now < cur.refresh_at
        {
            return Ok(Token {
                value: cur.value.clone(),
                generation: cur.generation,
            });
        }
        if let Some((at, reason)) = &state.rejected
            && now.duration_since(*at) < self.cooldown
        {
            return Err(Error::Auth {
                service: client.inner.service.clone(),
                reason: reason.clone(),
            });
        }
        match fetch(client, deadline).await {
            Ok((value, lifetime)) => {
                // Refresh a little early so that a token never expires in flight.
                let margin = (lifetime / 10).min(Duration::from_secs(60));
                state.generation += 1;
                state.rejected = None;
                state.current = Some(Current {
                    value: value.clone(),
                    refresh_at: now + lifetime.saturating_sub(margin),
                    generation: state.generation,
                });
                tracing::debug!(service = %client.inner.service, lifetime_s = lifetime.as_secs(), "new Lacework access token");
                Ok(Token {
                    value,
                    generation: state.generation,
                })
            }
            Err(Error::Auth { service, reason }) => {
                state.rejected = Some((Instant::now(), reason.clone()));
                Err(Error::Auth { service, reason })
            }
            Err(e) => Err(e),
        }
    }

    /// Drops the token of `generation` after the server rejected it (a newer one is kept).
    pub(super) async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state
            .current
            .as_ref()
            .is_some_and(|c| c.generation == generation)
        {
            state.current = None;
        }
    }
}

async fn fetch(client: &LaceworkClient, deadline: Instant) -> Result<(Secret, Duration)> {
    let inner = &client.inner;
    let expiry = inner.config.token_expiry;
    let body = json!({"keyId": inner.key_id, "expiryTime": expiry.as_secs().max(1)});
    let url = client.url(TOKEN_PATH)?;
    let mut reply = client
        .exchange(Method::POST, url, Some(&body), None, deadline)
        .await?;
    if matches!(
        reply.status,
        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND
    ) {
        // Lacework answers an unknown key id with 400/404 rather than 401: a credentials error.
        reply.status = StatusCode::UNAUTHORIZED;
    }
    let reply = client.check(reply)?;
    let parsed: TokenBody = serde_json::from_slice(&reply.body).map_err(|e| {
        Error::remote(
            inner.service.clone(),
            None,
            format!("malformed access-token response: {}", e.classify_str()),
        )
    })?;
    let (token, expires_at) = match (parsed.token, parsed.data.into_iter().next()) {
        (Some(t), _) => (t, parsed.expires_at),
        (None, Some(d)) => (d.token, d.expires_at),
        (None, None) => {
            return Err(Error::remote(
                inner.service.clone(),
                None,
                "the access-token response holds no token",
            ));
        }
    };
    let lifetime = expires_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| {
            (t.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .ok()
        })
        .unwrap_or(expiry);
    Ok((Secret::new(token), lifetime))
}

/// serde_json errors quote no input, but name the position; keep just the category and place.
trait Classify {
    fn classify_str(&self) -> String;
}

impl Classify for serde_json::Error {
    fn classify_str(&self) -> String {
        format!(
            "{:?} error at line {} column {}",
            self.classify(),
            self.line(),
            self.column()
        )
    }
}
