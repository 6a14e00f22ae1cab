//! The remote backend: an OPA server's Data API over HTTP(S).
//!
//! One evaluation is one `POST /v1/data/<package path>?provenance` with `{"input": …}`. The
//! package document in `result` goes through the same [`Decision::from_document`] as the embedded
//! engine, so both backends agree byte for byte but for [`Decision::backend`] (and
//! [`PolicyRef::version`](crate::policy::PolicyRef), see [`OpaEvaluator`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::{self, BodyError, Secret};
use crate::policy::{Backend, Decision, Package, PolicyEvaluator, PolicyInput};

/// Default time limit of one request to OPA, connection included.
pub const DEFAULT_OPA_TIMEOUT: Duration = Duration::from_secs(5);

/// Prefix of [`PolicyRef::version`](crate::policy::PolicyRef) when the server loaded no bundle
/// with a revision: then OPA can name only itself, e.g. `opa-server:1.22.3`.
pub const SERVER_VERSION_PREFIX: &str = "opa-server:";

/// Evaluates policies held by an OPA server.
///
/// Cheap to clone (the connection pool is shared), and keeps connections alive between
/// evaluations. Build one with [`OpaEvaluator::builder`].
///
/// `policy.version` of its decisions is what OPA reports about the policy it ran (the Data API's
/// provenance): the revision of the bundle when the server runs exactly one bundle that has a
/// revision (build the bundle with `--revision "$(helios policy digest)"`-style digests and the
/// version equals the embedded engine's); `name=revision` pairs joined by `,` for several
/// bundles; otherwise `opa-server:<OPA version>`, since policies pushed through the Policy API carry
/// no revision OPA could report.
#[derive(Clone)]
pub struct OpaEvaluator {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    endpoint: Url,
    /// `OPA at <scheme>://<host>:<port>`: the only way the server is named in errors.
    service: String,
    package: Package,
    token: Option<Secret>,
    timeout: Duration,
}

// One evaluator is shared by every task of a webhook: prove at compile time that it can be.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<OpaEvaluator>();
};

impl fmt::Debug for OpaEvaluator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpaEvaluator")
            .field("service", &self.inner.service)
            .field("package", &self.inner.package)
            .field("token", &self.inner.token)
            .finish_non_exhaustive()
    }
}

/// Configures an [`OpaEvaluator`]; every option is checked in [`OpaBuilder::build`].
#[derive(Clone)]
pub struct OpaBuilder {
    url: String,
    package: Package,
    token: Option<Secret>,
    ca: Vec<CaSource>,
    identity: Option<IdentitySource>,
    timeout: Duration,
}

#[derive(Clone)]
enum CaSource {
    Pem(Vec<u8>),
    File(PathBuf),
}

#[derive(Clone)]
enum IdentitySource {
    Pem { cert: Vec<u8>, key: Vec<u8> },
    Files { cert: PathBuf, key: PathBuf },
}

impl fmt::Debug for OpaBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpaBuilder")
            .field("url", &http::redact_url(&self.url))
            .field("package", &self.package)
            .field("token", &self.token)
            .field("ca_bundles", &self.ca.len())
            .field("client_identity", &self.identity.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OpaBuilder {
    /// The policy package whose document is the decision (default `helios`).
    pub fn package(mut self, package: Package) -> Self {
        self.package = package;
        self
    }

    /// A bearer token for OPA's `--authentication=token`. Never printed: `Debug` and errors
    /// redact it.
    pub fn token(mut self, token: impl Into<Secret>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trusts the CA certificates of a PEM bundle, besides the built-in roots (for an OPA behind a
    /// private CA).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca.push(CaSource::Pem(pem.into()));
        self
    }

    /// Like [`OpaBuilder::ca_pem`], reading the bundle from a file in `build()`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca.push(CaSource::File(path.into()));
        self
    }

    /// A client certificate (chain) and its private key, both PEM, for mutual TLS.
    pub fn client_identity_pem(
        mut self,
        cert: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some(IdentitySource::Pem {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Like [`OpaBuilder::client_identity_pem`], reading both files in `build()`.
    pub fn client_identity_files(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.identity = Some(IdentitySource::Files {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// The time limit of one request, connecting included (default 5 s). A request that times
    /// out is not retried: the caller's deadline (e.g. the webhook's) is what matters.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks every option and builds the client.
    ///
    /// Fails with [`Error::InvalidInput`] on a URL that is not `http(s)://host[:port][/prefix]`
    /// (or carries credentials, a query or a fragment), an empty or non-header-safe token, a zero
    /// timeout, or a CA bundle / client identity that is not valid PEM; with [`Error::Io`] when a
    /// named file cannot be read.
    pub fn build(self) -> Result<OpaEvaluator> {
        let base = parse_base_url(&self.url)?;
        let service = format!("OPA at {}", http::origin(&base));

        let endpoint = {
            let mut url = base.clone();
            let prefix = url.path().trim_end_matches('/').to_string();
            url.set_path(&format!("{prefix}/v1/data/{}", self.package.url_path()));
            url.set_query(Some("provenance"));
            url
        };

        let token = match self.token {
            None => None,
            Some(t) if t.expose().trim().is_empty() => {
                return Err(Error::invalid("OPA token", "the token is empty"));
            }
            Some(t) => {
                let t = Secret::new(t.expose().trim());
                if http::sensitive_header(&format!("Bearer {}", t.expose())).is_none() {
                    return Err(Error::invalid(
                        "OPA token",
                        "the token has characters an HTTP header cannot carry",
                    ));
                }
                Some(t)
            }
        };

        if self.timeout.is_zero() {
            return Err(Error::invalid(
                "OPA timeout",
                "the timeout must be above zero",
            ));
        }

        let mut client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // Redirects would carry the bearer token to wherever OPA points: OPA never redirects
            // the Data API, so a redirect means a misconfigured URL.
            .redirect(reqwest::redirect::Policy::none());

        for ca in self.ca {
            let (pem, what) = match ca {
                CaSource::Pem(pem) => (pem, "OPA CA bundle".to_string()),
                CaSource::File(path) => (
                    std::fs::read(&path).map_err(|e| Error::io(&path, e))?,
                    format!("OPA CA bundle {}", path.display()),
                ),
            };
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::invalid(&what, http::causes(&e)))?;
            if certs.is_empty() {
                return Err(Error::invalid(what, "no PEM certificate found"));
            }
            for cert in certs {
                client = client.add_root_certificate(cert);
            }
        }

        if let Some(identity) = self.identity {
            let (cert, key, what) = match identity {
                IdentitySource::Pem { cert, key } => (cert, key, "OPA client identity".to_string()),
                IdentitySource::Files { cert, key } => (
                    read(&cert)?,
                    read(&key)?,
                    format!("OPA client identity {} + {}", cert.display(), key.display()),
                ),
            };
            let mut pem = cert;
            pem.push(b'\n');
            pem.extend_from_slice(&key);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| Error::invalid(what, http::causes(&e)))?;
            client = client.identity(identity);
        }

        let client = client
            .build()
            .map_err(|e| Error::invalid("OPA client options", http::causes(&e)))?;

        Ok(OpaEvaluator {
            inner: Arc::new(Inner {
                client,
                endpoint,
                service,
                package: self.package,
                token,
                timeout: self.timeout,
            }),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// What a Data API answer may hold (`result` is absent when the document is undefined).
#[derive(Deserialize)]
struct DataResponse {
    result: Option<Value>,
    decision_id: Option<String>,
    provenance: Option<Provenance>,
}

#[derive(Deserialize)]
struct Provenance {
    version: Option<String>,
    #[serde(default)]
    bundles: std::collections::BTreeMap<String, BundleInfo>,
}

#[derive(Deserialize)]
struct BundleInfo {
    revision: Option<String>,
}

/// OPA's error body, e.g. `{"code": "internal_error", "message": "...", "errors": [...]}`.
#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
    #[serde(default)]
    errors: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Serialize)]
struct DataRequest<'a, T: Serialize> {
    input: &'a T,
}

impl OpaEvaluator {
    /// A builder for the OPA server at `url`, e.g. `https://opa.example.com:8181` (a path prefix,
    /// for an OPA behind a proxy, is kept).
    pub fn builder(url: impl Into<String>) -> OpaBuilder {
        OpaBuilder {
            url: url.into(),
            package: Package::default(),
            token: None,
            ca: Vec::new(),
            identity: None,
            timeout: DEFAULT_OPA_TIMEOUT,
        }
    }

    /// The server as errors name it: `OPA at <scheme>://<host>:<port>`.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Evaluates an input given as JSON, without checking it against the input contract
    /// (for tests of hand-written policies over arbitrary inputs).
    pub async fn evaluate_json(&self, input: &Value) -> Result<Decision> {
        self.query(input).await
    }

    async fn query<T: Serialize>(&self, input: &T) -> Result<Decision> {
        let inner = &self.inner;
        // Serialise once: the retry resends the same bytes.
        let body = serde_json::to_vec(&DataRequest { input })
            .map_err(|e| Error::invalid("policy input", e))?;
        let response = match self.send(body.clone()).await {
            // A connection that could not be made (refused while OPA restarts, a failed TLS
            // handshake) is retried once; a timeout is not, as the deadline is already spent.
            Err(e) if e.is_connect() && !e.is_timeout() => self.send(body).await,
            other => other,
        }
        .map_err(|e| self.transport_error(e))?;

        let status = response.status();
        let bytes = http::read_body(response, crate::bounded::MAX_OPA_BODY)
            .await
            .map_err(|e| match e {
                BodyError::Read(e) => self.transport_error(e),
                BodyError::TooLarge(cap) => Error::remote(
                    &inner.service,
                    Some(status.as_u16().to_string()),
                    BodyError::too_large(cap),
                ),
            })?;
        if !status.is_success() {
            return Err(self.status_error(status, &bytes));
        }
        let answer: DataResponse = serde_json::from_slice(&bytes).map_err(|e| {
            Error::remote(
                &inner.service,
                None,
                format!("unreadable Data API response: {e}"),
            )
            .with_source(e)
        })?;
        let version = policy_version(answer.provenance.as_ref());
        let mut decision = Decision::from_document(
            answer.result.as_ref(),
            &inner.package,
            version,
            Backend::Opa,
        )?;
        decision.decision_id = answer.decision_id;
        Ok(decision)
    }

    async fn send(&self, body: Vec<u8>) -> reqwest::Result<reqwest::Response> {
        let inner = &self.inner;
        let mut request = inner
            .client
            .post(inner.endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = &inner.token {
            request = request.bearer_auth(token.expose());
        }
        request.send().await
    }

    fn transport_error(&self, err: reqwest::Error) -> Error {
        let mut reason = http::describe(&err, self.inner.timeout);
        if err.is_timeout() {
            reason.push_str(", the OPA request timeout");
        }
        Error::unavailable(&self.inner.service, reason).with_source(err)
    }

    fn status_error(&self, status: StatusCode, body: &[u8]) -> Error {
        let service = self.inner.service.clone();
        let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let reason = match parsed {
                Some(b) => format!("HTTP {}: {} ({})", status.as_u16(), b.message, b.code),
                None => format!("HTTP {}", status.as_u16()),
            };
            return Error::Auth { service, reason };
        }
        match parsed {
            Some(body) => {
                // OPA wraps evaluation errors (e.g. `eval_conflict_error`) in an `internal_error`
                // whose `errors` say what actually failed: report the most specific code.
                let detail = body.errors.iter().find_map(|d| d.code.clone());
                let mut message = body.message;
                for d in &body.errors {
                    if let Some(m) = &d.message
                        && !message.contains(m.as_str())
                    {
                        message.push_str(": ");
                        message.push_str(m);
                    }
                }
                Error::remote(service, Some(detail.unwrap_or(body.code)), message)
            }
            // No OPA error body: a proxy or load balancer answered for an absent OPA.
            None if status.is_server_error() => {
                Error::unavailable(service, format!("HTTP {}", status.as_u16()))
            }
            None => Error::remote(
                service,
                None,
                format!("HTTP {}: {}", status.as_u16(), http::body_excerpt(body)),
            ),
        }
    }
}

#[async_trait]
impl PolicyEvaluator for OpaEvaluator {
    async fn evaluate(&self, input: &PolicyInput) -> Result<Decision> {
        self.query(input).await
    }

    fn backend(&self) -> Backend {
        Backend::Opa
    }
}

/// See [`OpaEvaluator`] for the rule.
fn policy_version(provenance: Option<&Provenance>) -> String {
    let Some(p) = provenance else {
        return format!("{SERVER_VERSION_PREFIX}unknown");
    };
    let revisions: Vec<(&String, &String)> = p
        .bundles
        .iter()
        .filter_map(|(name, b)| {
            b.revision
                .as_ref()
                .filter(|r| !r.is_empty())
                .map(|r| (name, r))
        })
        .collect();
    match revisions.as_slice() {
        [] => format!(
            "{SERVER_VERSION_PREFIX}{}",
            p.version.as_deref().unwrap_or("unknown")
        ),
        [(_, revision)] if p.bundles.len() == 1 => (*revision).clone(),
        many => many
            .iter()
            .map(|(name, rev)| format!("{name}={rev}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn parse_base_url(raw: &str) -> Result<Url> {
    let what = "OPA URL";
    let url = Url::parse(raw.trim()).map_err(|e| {
        Error::invalid(what, format!("{} is not a URL: {e}", http::redact_url(raw)))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid(
            what,
            format!("scheme {:?} is not http or https", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid(what, "the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(
            what,
            "credentials in the URL are not supported; pass the token as the OPA token option",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid(
            what,
            "the URL must not have a query or fragment: give the server's base URL",
        ));
    }
    if url.path().trim_end_matches('/').ends_with("/v1/data") || url.path().contains("/v1/data/") {
        return Err(Error::invalid(
            what,
            "give the server's base URL (e.g. http://127.0.0.1:8181), not a Data API path; \
             the package option chooses the path",
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_rejects_bad_urls_without_echoing_secrets() {
        for (url, needle) in [
            ("ftp://opa:8181", "scheme"),
            ("https://user:hunter2@opa:8181", "credentials"),
            ("http://opa:8181/?token=hunter2", "query"),
            ("http://opa:8181/v1/data/helios", "base URL"),
            ("not a url hunter2", "not a URL"),
        ] {
            let err = OpaEvaluator::builder(url).build().err();
            let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
            assert!(text.contains(needle), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{url} leaked: {text}");
            assert_eq!(err.map(|e| e.code()), Some("invalid_input"));
        }
    }

    #[test]
    fn endpoint_keeps_prefix_and_maps_package() -> Result<()> {
        let opa = OpaEvaluator::builder("https://proxy.example:9443/opa/")
            .package(Package::parse("acme.images")?)
            .build()?;
        assert_eq!(
            opa.inner.endpoint.as_str(),
            "https://proxy.example:9443/opa/v1/data/acme/images?provenance"
        );
        assert_eq!(opa.service(), "OPA at https://proxy.example:9443");
        Ok(())
    }

    #[test]
    fn token_is_redacted_in_debug() -> Result<()> {
        let builder = OpaEvaluator::builder("http://127.0.0.1:8181").token("s3cr3t-token");
        assert!(!format!("{builder:?}").contains("s3cr3t"));
        let opa = builder.build()?;
        let shown = format!("{opa:?}");
        assert!(
            shown.contains("Secret(***)") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        Ok(())
    }

    #[test]
    fn builder_rejects_bad_options() {
        let codes = [
            OpaEvaluator::builder("http://x").token("  ").build().err(),
            OpaEvaluator::builder("http://x")
                .token("a\nb")
                .build()
                .err(),
            OpaEvaluator::builder("http://x")
                .timeout(Duration::ZERO)
                .build()
                .err(),
            OpaEvaluator::builder("http://x")
                .ca_pem("not pem")
                .build()
                .err(),
            OpaEvaluator::builder("http://x")
                .client_identity_pem("nope", "nope")
                .build()
                .err(),
        ];
        for err in codes {
            assert_eq!(err.map(|e| e.code()), Some("invalid_input"));
        }
        let missing = OpaEvaluator::builder("http://x")
            .ca_file("/nonexistent/ca.pem")
            .build();
        assert_eq!(missing.err().map(|e| e.code()), Some("io"));
    }

    #[test]
    fn version_prefers_a_single_bundle_revision() {
        let p = |json: &str| serde_json::from_str::<Provenance>(json).ok();
        assert_eq!(
            policy_version(
                p(r#"{"version":"1.22.3","bundles":{"b":{"revision":"sha256:ab"}}}"#).as_ref()
            ),
            "sha256:ab"
        );
        assert_eq!(
            policy_version(
                p(r#"{"version":"1.22.3","bundles":{"b":{"revision":"2"},"a":{"revision":"1"}}}"#)
                    .as_ref()
            ),
            "a=1,b=2"
        );
        assert_eq!(
            policy_version(p(r#"{"version":"1.22.3"}"#).as_ref()),
            "opa-server:1.22.3"
        );
    }
}
