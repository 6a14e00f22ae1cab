//! The Lacework API v2 client: configuration, the shared connection pool, and the one request
//! path every call takes (budget → token → send → retry / re-auth / rate-limit handling).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::budget::{Budget, DEFAULT_REQUESTS_PER_HOUR};
use super::config::{self, Settings};
use super::retry;
use super::token::Tokens;
use crate::bounded::MAX_LACEWORK_BODY;
use crate::error::{Error, Result};
use crate::http::{self, BodyError, Secret};

/// How far back the row search of an image with findings looks at least: 30 days, i.e. up to
/// five searches of at most 7 days each (Lacework's maximum time range), stopping at the first
/// window with rows. Lacework re-evaluates images that are in use daily, so a running image's
/// rows are normally in the first window. The image summary decides beforehand whether there are
/// rows at all, so a clean or never-scanned image costs no row search.
pub const DEFAULT_LOOK_BACK: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest time range one search may cover (Lacework rejects longer ranges).
pub const MAX_SEARCH_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Builds a [`LaceworkClient`]; validates everything in [`ClientBuilder::build`].
///
/// ```
/// use helios_core::scan::lacework::LaceworkClient;
///
/// let client = LaceworkClient::builder()
///     .account("acme") // or "acme.lacework.net", or a full URL such as "http://127.0.0.1:8080"
///     .api_key("ACME_ABCDEF0123456789")
///     .api_secret("_0123456789abcdef")
///     .build()?;
/// assert!(!format!("{client:?}").contains("_0123456789abcdef"));
/// # Ok::<(), helios_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    pub(super) settings: Settings,
    pub(super) token_expiry: Duration,
    pub(super) timeout: Duration,
    pub(super) max_wait: Duration,
    pub(super) retries: u32,
    pub(super) retry_base: Duration,
    pub(super) retry_max: Duration,
    pub(super) requests_per_hour: u32,
    pub(super) budget_window: Duration,
    pub(super) look_back: Duration,
    pub(super) image_id_fallback: bool,
    pub(super) poll_initial: Duration,
    pub(super) poll_max: Duration,
    pub(super) auth_failure_cooldown: Duration,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            settings: Settings::default(),
            token_expiry: Duration::from_secs(3600),
            timeout: Duration::from_secs(30),
            max_wait: Duration::from_secs(60),
            retries: 3,
            retry_base: Duration::from_millis(250),
            retry_max: Duration::from_secs(5),
            requests_per_hour: DEFAULT_REQUESTS_PER_HOUR,
            budget_window: Duration::from_secs(3600),
            look_back: DEFAULT_LOOK_BACK,
            image_id_fallback: true,
            poll_initial: Duration::from_secs(5),
            poll_max: Duration::from_secs(30),
            auth_failure_cooldown: Duration::from_secs(30),
        }
    }
}

impl ClientBuilder {
    /// An empty builder: set the account and keys yourself.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder filled from the environment and `~/.lacework.toml`, in the Lacework CLI's
    /// precedence: `LW_ACCOUNT`, `LW_SUBACCOUNT`, `LW_API_KEY`, `LW_API_SECRET` over the values
    /// of the profile named by `LW_PROFILE` (else `default`); builder methods called afterwards
    /// override both, as the CLI's flags do. `LW_API_SERVER_URL` overrides the URL.
    pub fn from_env() -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok();
        let file = config::default_profile_file(&env);
        Self::from_sources(&env, file.as_deref(), None)
    }

    /// Like [`ClientBuilder::from_env`] with a profile chosen explicitly (the CLI's
    /// `--profile`).
    pub fn from_env_profile(profile: &str) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok();
        let file = config::default_profile_file(&env);
        Self::from_sources(&env, file.as_deref(), Some(profile))
    }

    /// Like [`ClientBuilder::from_env`] with the environment and the profile file given
    /// explicitly (for tests and embedders with their own configuration).
    pub fn from_sources(
        env: &dyn Fn(&str) -> Option<String>,
        profile_file: Option<&Path>,
        profile: Option<&str>,
    ) -> Result<Self> {
        Ok(ClientBuilder {
            settings: config::resolve(env, profile_file, profile)?,
            ..Self::default()
        })
    }

    /// The account: `acme`, `acme.lacework.net`, or a full base URL (`https://…`, `http://…`),
    /// as Lacework's Go SDK accepts; tests use a URL to reach an emulator on loopback.
    pub fn account(mut self, account: impl Into<String>) -> Self {
        self.settings.account = Some(account.into());
        self.settings.server_url = None;
        self
    }

    /// The sub-account, sent as the `Account-Name` header (organisation accounts).
    pub fn subaccount(mut self, subaccount: impl Into<String>) -> Self {
        self.settings.subaccount = Some(subaccount.into()).filter(|s| !s.is_empty());
        self
    }

    /// The API key id (`keyId`).
    pub fn api_key(mut self, key_id: impl Into<String>) -> Self {
        self.settings.api_key = Some(key_id.into());
        self
    }

    /// The API secret (sent only as `X-LW-UAKS` to the token endpoint; never printed).
    pub fn api_secret(mut self, secret: impl Into<Secret>) -> Self {
        self.settings.api_secret = Some(secret.into());
        self
    }

    /// Lifetime asked for each access token (default 1 hour). Tokens are reused until shortly
    /// before they expire.
    pub fn token_expiry(mut self, expiry: Duration) -> Self {
        self.token_expiry = expiry;
        self
    }

    /// Timeout of one HTTP exchange (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a call may take in all (retries and rate-limit waits included) when the caller
    /// gives no deadline (default 60 s).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Retries after a connection error or a 5xx (default 3), with jittered exponential backoff
    /// starting at `base` (default 250 ms) and capped at `max` (default 5 s).
    pub fn retries(mut self, retries: u32, base: Duration, max: Duration) -> Self {
        self.retries = retries;
        self.retry_base = base;
        self.retry_max = max;
        self
    }

    /// The client-side budget: at most `requests` per `window`, shared by every clone of the
    /// client (default 480 per hour, Lacework's documented limit).
    pub fn request_budget(mut self, requests: u32, window: Duration) -> Self {
        self.requests_per_hour = requests;
        self.budget_window = window;
        self
    }

    /// How far back the row search of an image with findings looks at least (default
    /// [`DEFAULT_LOOK_BACK`], 30 days), in windows of at most 7 days, newest first; it goes
    /// further when the image summary names an older scan (up to
    /// [`MAX_LOOK_BACK`](super::MAX_LOOK_BACK)).
    pub fn look_back(mut self, look_back: Duration) -> Self {
        self.look_back = look_back;
        self
    }

    /// Whether digests that match no image summary's `digest` are searched again as image ids
    /// (`imageId`, the config digest) (default `true`; costs a never-scanned image a second
    /// summary search).
    pub fn image_id_fallback(mut self, enabled: bool) -> Self {
        self.image_id_fallback = enabled;
        self
    }

    /// Polling of on-demand scans: first poll after `initial` (default 5 s), doubling up to
    /// `max` (default 30 s).
    pub fn poll_interval(mut self, initial: Duration, max: Duration) -> Self {
        self.poll_initial = initial;
        self.poll_max = max;
        self
    }

    /// After the token endpoint rejected the keys, how long to answer the same error without
    /// asking again (default 30 s), so that a bad key cannot cause a storm of requests.
    pub fn auth_failure_cooldown(mut self, cooldown: Duration) -> Self {
        self.auth_failure_cooldown = cooldown;
        self
    }

    /// Validates the settings and builds the client (one connection pool, shared by clones).
    pub fn build(self) -> Result<LaceworkClient> {
        let missing = |what: &str, env: &str, key: &str| {
            Error::invalid(
                "Lacework configuration",
                format!("{what} is not set: set {env} or `{key}` in a ~/.lacework.toml profile"),
            )
        };
        let base_text = match (&self.settings.server_url, &self.settings.account) {
            (Some(url), _) => url.clone(),
            (None, Some(account)) if !account.trim().is_empty() => account_url(account.trim()),
            _ => return Err(missing("the Lacework account", "LW_ACCOUNT", "account")),
        };
        let base = Url::parse(&base_text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                Error::invalid(
                    "Lacework configuration",
                    "the account must be a name (acme), a host (acme.lacework.net) or an \
                     http(s) URL",
                )
            })?;
        let key_id = self
            .settings
            .api_key
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| missing("the API key id", "LW_API_KEY", "api_key"))?;
        let secret = self
            .settings
            .api_secret
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("the API secret", "LW_API_SECRET", "api_secret"))?;

        let host = match base.port() {
            Some(p) => format!("{}:{p}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_string(),
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("helios/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| {
                Error::unavailable(
                    "Lacework",
                    format!("cannot set up the HTTP client: {}", http::causes(&e)),
                )
                .with_source(e)
            })?;
        Ok(LaceworkClient {
            inner: Arc::new(Inner {
                http,
                service: format!("Lacework ({host})"),
                base,
                subaccount: self.settings.subaccount.clone(),
                key_id,
                secret,
                tokens: Tokens::new(self.auth_failure_cooldown),
                budget: Budget::new(self.requests_per_hour, self.budget_window),
                #[cfg(feature = "redis")]
                fleet: std::sync::OnceLock::new(),
                config: self,
            }),
        })
    }
}

/// The base URL of an account given as a name, a host or a URL.
fn account_url(account: &str) -> String {
    if account.starts_with("http://") || account.starts_with("https://") {
        account.to_string()
    } else if account.contains('.') {
        format!("https://{account}")
    } else {
        format!("https://{account}.lacework.net")
    }
}

/// A Lacework API v2 client. Cheap to clone: clones share one connection pool, one access token
/// and one request budget.
#[derive(Clone)]
pub struct LaceworkClient {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    http: reqwest::Client,
    pub(super) service: String,
    base: Url,
    subaccount: Option<String>,
    pub(super) key_id: String,
    pub(super) secret: Secret,
    pub(super) tokens: Tokens,
    budget: Budget,
    pub(super) config: ClientBuilder,
    /// The fleet-wide budget in Redis, once shared ([`LaceworkClient::share_budget`]).
    #[cfg(feature = "redis")]
    pub(super) fleet: std::sync::OnceLock<super::fleet_budget::FleetBudget>,
}

impl fmt::Debug for LaceworkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaceworkClient")
            .field("service", &self.inner.service)
            .field("subaccount", &self.inner.subaccount)
            .field("key_id", &self.inner.key_id)
            .field("secret", &self.inner.secret)
            .finish_non_exhaustive()
    }
}

/// What came back from one exchange that was not retried away.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// Lacework's error body: `{"message": "..."}` (sometimes nested under `data`).
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    #[serde(default)]
    message: Option<String>,
}

/// Lacework's own explanation of a failed call, bounded in length.
pub(super) fn lacework_message(status: StatusCode, body: &[u8]) -> String {
    let msg = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message.or_else(|| b.data.and_then(|d| d.message)))
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    format!("HTTP {}: {}", status.as_u16(), http::excerpt(&msg))
}

impl LaceworkClient {
    /// A builder with nothing set.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// A client configured from the environment and `~/.lacework.toml`
    /// ([`ClientBuilder::from_env`]).
    pub fn from_env() -> Result<Self> {
        ClientBuilder::from_env()?.build()
    }

    /// The service name used in errors, e.g. `Lacework (acme.lacework.net)`.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The deadline of a call: the caller's, else now plus the configured maximum wait.
    pub(super) fn deadline(&self, deadline: Option<Instant>) -> Instant {
        deadline.unwrap_or_else(|| Instant::now() + self.inner.config.max_wait)
    }

    pub(super) fn url(&self, path_or_url: &str) -> Result<Url> {
        // A `nextPage` URL is absolute; only its path and query are used, so the token is only
        // ever sent to the configured server.
        let (path, query) = match Url::parse(path_or_url) {
            Ok(u) => (u.path().to_string(), u.query().map(str::to_string)),
            Err(_) => match path_or_url.split_once('?') {
                Some((p, q)) => (p.to_string(), Some(q.to_string())),
                None => (path_or_url.to_string(), None),
            },
        };
        let mut url = self.inner.base.clone();
        url.set_path(&path);
        url.set_query(query.as_deref());
        Ok(url)
    }

    pub(super) fn unavailable(&self, reason: impl Into<String>) -> Error {
        Error::unavailable(&self.inner.service, reason)
    }

    /// An authenticated call: fetches (or reuses) the access token, re-authenticates once on a
    /// 401, and maps every non-success status to a typed error.
    pub(super) async fn call(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&serde_json::Value>,
        deadline: Instant,
    ) -> Result<Reply> {
        let url = self.url(path_or_url)?;
        let mut reauthenticated = false;
        loop {
            let token = self.inner.tokens.get(self, deadline).await?;
            let reply = self
                .exchange(
                    method.clone(),
                    url.clone(),
                    body,
                    Some(&token.value),
                    deadline,
                )
                .await?;
            if reply.status == StatusCode::UNAUTHORIZED && !reauthenticated {
                tracing::debug!(service = %self.inner.service, "access token rejected; re-authenticating once");
                self.inner.tokens.invalidate(token.generation).await;
                reauthenticated = true;
                continue;
            }
            return self.check(reply);
        }
    }

    /// Maps a non-success reply to a typed error.
    pub(super) fn check(&self, reply: Reply) -> Result<Reply> {
        let status = reply.status;
        if status.is_success() {
            return Ok(reply);
        }
        let message = lacework_message(status, &reply.body);
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Auth {
                service: self.inner.service.clone(),
                reason: format!(
                    "{message}; check LW_API_KEY / LW_API_SECRET (or the profile) and LW_ACCOUNT"
                ),
            },
            _ => Error::remote(
                &self.inner.service,
                Some(status.as_u16().to_string()),
                message,
            ),
        })
    }

    /// One logical exchange: spends the budget, sends, and retries what is worth retrying
    /// (connection errors, truncated bodies, 5xx with jittered backoff; 429 after the server's
    /// `Retry-After` / `RateLimit-Reset`) as long as the deadline allows. Other statuses are
    /// returned as they are.
    pub(super) async fn exchange(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        bearer: Option<&Secret>,
        deadline: Instant,
    ) -> Result<Reply> {
        let cfg = &self.inner.config;
        let mut transient = 0u32;
        let mut rate_waits = 0u32;
        loop {
            self.take_budget(deadline).await?;
            let now = Instant::now();
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                return Err(
                    self.unavailable("the caller's deadline passed before Lacework answered")
                );
            };
            let timeout = cfg.timeout.min(left);
            let mut req = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .timeout(timeout);
            if let Some(token) = bearer {
                req = req.bearer_auth(token.expose());
            } else {
                // Marked sensitive, as `bearer_auth` marks the token, so HTTP layers never
                // print it.
                let secret =
                    http::sensitive_header(self.inner.secret.expose()).ok_or_else(|| {
                        Error::invalid(
                            "Lacework configuration",
                            "the API secret contains characters not allowed in an HTTP header",
                        )
                    })?;
                req = req.header("X-LW-UAKS", secret);
            }
            if let Some(sub) = &self.inner.subaccount {
                req = req.header("Account-Name", sub);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            tracing::debug!(service = %self.inner.service, method = %method, path = url.path(), "lacework request");

            let failure = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    #[cfg(feature = "redis")]
                    self.report_rate_limit(&headers);
                    let body = match http::read_body(resp, MAX_LACEWORK_BODY).await {
                        Ok(body) => Ok(body),
                        // Not retried: the same request would bring the same oversized answer.
                        Err(BodyError::TooLarge(cap)) => {
                            return Err(Error::remote(
                                &self.inner.service,
                                Some(status.as_u16().to_string()),
                                BodyError::too_large(cap),
                            ));
                        }
                        Err(BodyError::Read(e)) => Err(e),
                    };
                    match body {
                        Ok(bytes) if status == StatusCode::TOO_MANY_REQUESTS => {
                            let wait = retry::retry_after(&headers).unwrap_or_else(|| {
                                retry::backoff(cfg.retry_base, cfg.retry_max, rate_waits)
                            });
                            let message = lacework_message(status, &bytes);
                            if rate_waits < 3 && Instant::now() + wait <= deadline {
                                tracing::info!(service = %self.inner.service, wait_ms = wait.as_millis() as u64, "rate limited by Lacework; waiting as asked");
                                rate_waits += 1;
                                tokio::time::sleep(wait).await;
                                continue;
                            }
                            return Err(self.unavailable(format!(
                                "rate limited ({message}); Lacework asks to wait {} s, past the caller's deadline",
                                wait.as_secs_f64().ceil()
                            )));
                        }
                        Ok(bytes) if status.is_server_error() => {
                            (lacework_message(status, &bytes), None)
                        }
                        Ok(bytes) => {
                            tracing::debug!(service = %self.inner.service, status = status.as_u16(), "lacework response");
                            return Ok(Reply {
                                status,
                                body: bytes,
                            });
                        }
                        Err(e) => (http::describe(&e, timeout), Some(e)),
                    }
                }
                Err(e) => (http::describe(&e, timeout), Some(e)),
            };
            let (failure, cause) = failure;
            let wait = retry::backoff(cfg.retry_base, cfg.retry_max, transient);
            if transient < cfg.retries && Instant::now() + wait < deadline {
                tracing::warn!(service = %self.inner.service, attempt = transient + 1, error = %failure, "lacework call failed; retrying");
                transient += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            let error = self.unavailable(format!(
                "{failure} (after {} attempt{})",
                transient + 1,
                if transient == 0 { "" } else { "s" }
            ));
            return Err(match cause {
                Some(cause) => error.with_source(cause),
                None => error,
            });
        }
    }

    async fn take_budget(&self, deadline: Instant) -> Result<()> {
        let budget = &self.inner.budget;
        super::share::spend(budget.limit(), budget.window()).map_err(|r| self.unavailable(r))?;
        #[cfg(feature = "redis")]
        self.take_fleet_token(deadline).await?;
        loop {
            match self.inner.budget.try_take(Instant::now()) {
                Ok(()) => return Ok(()),
                Err(free_at) if free_at <= deadline => {
                    tokio::time::sleep_until(free_at.into()).await;
                }
                Err(free_at) => {
                    let budget = &self.inner.budget;
                    return Err(self.unavailable(format!(
                        "client-side request budget spent ({} requests per {} s, Lacework's \
                         documented limit); the next request is allowed in {} s, past the \
                         caller's deadline",
                        budget.limit(),
                        budget.window().as_secs(),
                        free_at
                            .saturating_duration_since(Instant::now())
                            .as_secs_f64()
                            .ceil()
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_become_base_urls() {
        assert_eq!(account_url("acme"), "https://acme.lacework.net");
        assert_eq!(
            account_url("acme.fra.lacework.net"),
            "https://acme.fra.lacework.net"
        );
        assert_eq!(account_url("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }

    #[test]
    fn build_names_what_is_missing() {
        let err = LaceworkClient::builder().account("acme").build().err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("LW_API_KEY"), "{text}");
        let err = LaceworkClient::builder()
            .api_key("k")
            .api_secret("s")
            .build()
            .err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("LW_ACCOUNT"), "{text}");
    }

    #[test]
    fn next_page_urls_are_rebased_on_the_configured_server() -> Result<()> {
        let c = LaceworkClient::builder()
            .account("http://127.0.0.1:9")
            .api_key("k")
            .api_secret("s")
            .build()?;
        let url =
            c.url("https://elsewhere.example/api/v2/Vulnerabilities/Containers/search/abc?x=1")?;
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/api/v2/Vulnerabilities/Containers/search/abc?x=1"
        );
        Ok(())
    }
}
