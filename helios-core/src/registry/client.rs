//! The narrow part of the OCI distribution API Helios needs: the manifest of `repo:tag`, by
//! `HEAD` then `GET`, behind Basic or Bearer authentication.
//!
//! Hand-written over the workspace's reqwest rather than through `oci-client`: Helios needs one
//! TLS stack (reqwest 0.12 with rustls on ring, shared with the Lacework and OPA clients), a CA
//! per registry, a plain-HTTP opt-in per registry, and every failure mapped to a distinct
//! [`Error`] (401 vs 404 vs timeout) without a URL or a secret in it. `oci-client` holds one
//! TLS configuration and protocol choice per client, hides the status behind its own error
//! type, and pulls a second dependency tree (JWT, its own `oci-spec` version) for the two
//! requests resolution makes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;

use super::RegistryConfig;
use super::auth::{Challenge, Credentials};
use super::manifest;
use crate::error::{Error, Result};
use crate::http::{self, BodyError};

/// Largest manifest Helios reads (the distribution spec lets registries refuse above 4 MiB).
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
/// Lifetime of a Bearer token that does not say (the Docker token spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// What a tag resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The digest of the manifest the tag points to (an index for a multi-arch image).
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// For an index: the digest of the configured platform's manifest.
    pub platform_digest: Option<String>,
}

/// HTTP access to registries; one per [`super::Resolver`].
pub(crate) struct Client {
    config: RegistryConfig,
    default: reqwest::Client,
    /// Clients for registries with their own CA, by registry host.
    with_ca: HashMap<String, reqwest::Client>,
    /// Bearer tokens by (registry, repository), with their expiry.
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
}

enum AuthHeader {
    Basic(Credentials),
    Bearer(String),
}

impl Client {
    pub(crate) fn new(config: RegistryConfig) -> Result<Self> {
        let builder = || {
            reqwest::Client::builder()
                .timeout(config.timeout())
                .connect_timeout(config.connect_timeout())
                .user_agent(concat!("helios/", env!("CARGO_PKG_VERSION")))
        };
        let build = |b: reqwest::ClientBuilder, what: &str| {
            b.build()
                .map_err(|e| Error::invalid(what.to_string(), http::causes(&e)))
        };
        let default = build(builder(), "registry client")?;
        let mut with_ca = HashMap::new();
        for (registry, path) in &config.ca {
            let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::invalid(
                    format!("CA of registry {registry} ({})", path.display()),
                    http::causes(&e),
                )
            })?;
            if certs.is_empty() {
                return Err(Error::invalid(
                    format!("CA of registry {registry} ({})", path.display()),
                    "no PEM certificate in the file",
                ));
            }
            let b = certs
                .into_iter()
                .fold(builder(), |b, c| b.add_root_certificate(c));
            with_ca.insert(
                registry.clone(),
                build(b, &format!("client of registry {registry}"))?,
            );
        }
        Ok(Client {
            config,
            default,
            with_ca,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn http(&self, registry: &str) -> &reqwest::Client {
        self.with_ca.get(registry).unwrap_or(&self.default)
    }

    fn base(&self, registry: &str) -> String {
        let scheme = if self.config.plain_http.contains(registry) {
            "http"
        } else {
            "https"
        };
        // Docker Hub's API lives on its own host.
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        format!("{scheme}://{host}")
    }

    /// Resolves `repository:tag` on `registry`: HEAD, then GET when the HEAD did not name the
    /// digest; for an index, GET it and pick the configured platform.
    pub(crate) async fn resolve(
        &self,
        registry: &str,
        repository: &str,
        tag: &str,
    ) -> Result<Resolved> {
        let creds = self.config.credentials().for_registry(registry)?;
        let what = format!("{registry}/{repository}:{tag}");
        let head = self
            .manifest(registry, repository, tag, Method::HEAD, creds.as_ref())
            .await?;
        let (digest, media_type, body) = match head.status() {
            StatusCode::OK => {
                let digest = header(&head, "docker-content-digest")
                    .filter(|d| manifest::is_sha256_digest(d));
                let media_type = header(&head, CONTENT_TYPE.as_str());
                match (digest, media_type) {
                    (Some(d), Some(m)) => (d, m, None),
                    // Some registries omit the digest on HEAD: the body's hash is the digest.
                    _ => {
                        self.get(registry, repository, tag, creds.as_ref(), &what)
                            .await?
                    }
                }
            }
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST => {
                self.get(registry, repository, tag, creds.as_ref(), &what)
                    .await?
            }
            _ => return Err(status_error(registry, &what, head).await),
        };
        let platform_digest = if manifest::is_index(&media_type) {
            let body = match body {
                Some(b) => b,
                None => self
                    .get(registry, repository, &digest, creds.as_ref(), &what)
                    .await?
                    .2
                    .unwrap_or_default(),
            };
            Some(manifest::select_platform(
                &body,
                &self.config.platform,
                &what,
            )?)
        } else {
            None
        };
        Ok(Resolved {
            digest,
            media_type,
            platform_digest,
        })
    }

    /// GET a manifest: (digest, media type, body), the digest computed from the body.
    async fn get(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
        creds: Option<&Credentials>,
        what: &str,
    ) -> Result<(String, String, Option<Vec<u8>>)> {
        let resp = self
            .manifest(registry, repository, reference, Method::GET, creds)
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(status_error(registry, what, resp).await);
        }
        let media_type = header(&resp, CONTENT_TYPE.as_str()).unwrap_or_default();
        let claimed = header(&resp, "docker-content-digest");
        let body = read_limited(resp, registry, self.config.timeout()).await?;
        let digest = manifest::sha256_digest(&body);
        if let Some(claimed) = claimed.filter(|c| manifest::is_sha256_digest(c))
            && claimed != digest
        {
            return Err(remote(
                registry,
                Some("DIGEST_INVALID"),
                format!("the manifest of {what} does not hash to the digest the registry named"),
            ));
        }
        if manifest::is_sha256_digest(reference) && reference != digest {
            return Err(remote(
                registry,
                Some("DIGEST_INVALID"),
                format!("the manifest {reference} of {what} does not hash to its digest"),
            ));
        }
        // A registry that sends no content type still sends the body's own `mediaType`.
        let media_type = if media_type.is_empty() {
            serde_json::from_slice::<MediaTypeOnly>(&body)
                .ok()
                .and_then(|m| m.media_type)
                .unwrap_or_default()
        } else {
            media_type
        };
        Ok((digest, media_type, Some(body)))
    }

    /// One manifest request, answering a 401 challenge once (Basic: send the credentials;
    /// Bearer: fetch a pull token, anonymously when there are no credentials).
    async fn manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
        method: Method,
        creds: Option<&Credentials>,
    ) -> Result<Response> {
        let url = format!(
            "{}/v2/{repository}/manifests/{reference}",
            self.base(registry)
        );
        let key = (registry.to_string(), repository.to_string());
        let mut auth = self.cached_token(&key).map(AuthHeader::Bearer);
        for attempt in 0..2 {
            let mut req = self
                .http(registry)
                .request(method.clone(), &url)
                .header(ACCEPT, manifest::ACCEPT);
            req = match &auth {
                Some(AuthHeader::Basic(c)) => req.basic_auth(&c.username, Some(c.secret.expose())),
                Some(AuthHeader::Bearer(t)) => req.bearer_auth(t),
                None => req,
            };
            let resp = req
                .send()
                .await
                .map_err(|e| transport_error(registry, &self.config, e))?;
            if resp.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse);
            auth = match challenge {
                Some(Challenge::Basic) => match creds {
                    Some(c) => Some(AuthHeader::Basic(c.clone())),
                    None => return Err(no_credentials(registry)),
                },
                Some(Challenge::Bearer { realm, service, .. }) => {
                    let token = self
                        .token(registry, repository, &realm, service.as_deref(), creds)
                        .await?;
                    Some(AuthHeader::Bearer(token))
                }
                None => {
                    return Err(Error::Auth {
                        service: service(registry),
                        reason: "it answered 401 without a challenge Helios can answer (Basic or Bearer)"
                            .into(),
                    });
                }
            };
        }
        Err(no_credentials(registry))
    }

    fn cached_token(&self, key: &(String, String)) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    /// A pull token for `repository` from the challenge's realm.
    async fn token(
        &self,
        registry: &str,
        repository: &str,
        realm: &str,
        service_name: Option<&str>,
        creds: Option<&Credentials>,
    ) -> Result<String> {
        check_realm(registry, realm, self.config.plain_http.contains(registry))?;
        let scope = format!("repository:{repository}:pull");
        let mut query: Vec<(&str, &str)> = vec![("scope", &scope)];
        if let Some(s) = service_name {
            query.push(("service", s));
        }
        let mut req = self.http(registry).get(realm).query(&query);
        if let Some(c) = creds {
            req = req.basic_auth(&c.username, Some(c.secret.expose()));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(registry, &self.config, e))?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(Error::Auth {
                    service: service(registry),
                    reason: format!(
                        "its token service refused a pull token for {repository} ({}); check the credentials in the Docker config",
                        resp.status()
                    ),
                });
            }
            other => {
                return Err(Error::unavailable(
                    service(registry),
                    format!("its token service answered {other}"),
                ));
            }
        }
        let body = read_limited(resp, registry, self.config.timeout()).await?;
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            remote(
                registry,
                None,
                "its token service sent no JSON token".into(),
            )
        })?;
        let value = token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| remote(registry, None, "its token service sent no token".into()))?;
        let lifetime = token
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        // Renew a little early so a token never expires in flight.
        let until = Instant::now() + lifetime.saturating_sub(Duration::from_secs(5));
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, (_, u)| Instant::now() < *u);
        tokens.insert(
            (registry.to_string(), repository.to_string()),
            (value.clone(), until),
        );
        Ok(value)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct MediaTypeOnly {
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorsBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: Option<String>,
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn service(registry: &str) -> String {
    format!("registry {registry}")
}

fn remote(registry: &str, code: Option<&str>, message: String) -> Error {
    Error::remote(service(registry), code.map(str::to_string), message)
}

fn no_credentials(registry: &str) -> Error {
    Error::Auth {
        service: service(registry),
        reason: format!(
            "it requires credentials and none matched; add {registry} to the Docker config (DOCKER_CONFIG, ~/.docker/config.json, or the mounted dockerconfigjson Secret) or check them"
        ),
    }
}

/// Refuses a token realm Helios must not send credentials to: plain HTTP for a registry not
/// opted in to it, or an IP literal in a loopback, private or link-local range (the cloud
/// metadata service) other than the registry's own host. A registry's challenge is input; this
/// keeps it from steering Helios's credentials or requests inside the network (as crane does).
fn check_realm(registry: &str, realm: &str, plain_http: bool) -> Result<()> {
    let refuse = |why: &str| Error::Auth {
        service: service(registry),
        reason: format!("its token realm is refused: {why}"),
    };
    let url = reqwest::Url::parse(realm).map_err(|_| refuse("not a URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if plain_http => {}
        _ => {
            return Err(refuse(
                "it must be https (http only for plain_http registries)",
            ));
        }
    }
    let host_port = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(refuse("it names no host")),
    };
    if host_port == registry || url.host_str() == Some(registry) {
        return Ok(());
    }
    let literal = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<std::net::IpAddr>().ok());
    let internal = match literal {
        Some(std::net::IpAddr::V4(ip)) => {
            ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
        }
        Some(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
        None => false,
    };
    if internal {
        return Err(refuse("it is a loopback, private or link-local address"));
    }
    Ok(())
}

/// Reads a body up to [`MAX_MANIFEST_BYTES`].
/// `timeout` is the request's, named when the body stops arriving in time.
async fn read_limited(resp: Response, registry: &str, timeout: Duration) -> Result<Vec<u8>> {
    http::read_body(resp, MAX_MANIFEST_BYTES)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(cap) => remote(registry, None, BodyError::too_large(cap)),
            BodyError::Read(e) => {
                Error::unavailable(service(registry), http::describe(&e, timeout)).with_source(e)
            }
        })
}

/// The error of a non-200 manifest answer.
async fn status_error(registry: &str, what: &str, resp: Response) -> Error {
    let status = resp.status();
    let body = read_limited(resp, registry, Duration::ZERO)
        .await
        .unwrap_or_default();
    let code = serde_json::from_slice::<ErrorsBody>(&body)
        .ok()
        .and_then(|b| b.errors.into_iter().find_map(|e| e.code));
    match status {
        StatusCode::NOT_FOUND => remote(
            registry,
            Some(code.as_deref().unwrap_or("MANIFEST_UNKNOWN")),
            format!(
                "{what} was not found (the tag was never pushed or was deleted); check the reference"
            ),
        ),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Auth {
            service: service(registry),
            reason: format!(
                "{status} for {what}; check the credentials for {registry} in the Docker config"
            ),
        },
        s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => Error::unavailable(
            service(registry),
            format!("it answered {s} for {what}; retry later"),
        ),
        s => remote(
            registry,
            code.as_deref(),
            format!("it answered {s} for {what}"),
        ),
    }
}

/// A transport failure, named without its URL, with the registry's own hints.
fn transport_error(registry: &str, config: &RegistryConfig, e: reqwest::Error) -> Error {
    let mut reason = http::describe(&e, config.timeout());
    if e.is_timeout() {
        reason.push_str("; check the registry, or raise the registry timeout");
    } else if e.is_connect() && !config.plain_http.contains(registry) {
        reason.push_str(" (a plain-HTTP registry must be listed in plain_http / --plain-http)");
    }
    Error::unavailable(service(registry), reason).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::check_realm;

    #[test]
    fn token_realms_cannot_point_inside_the_network() {
        let ok = |r: &str, plain| check_realm("registry.example.com", r, plain).is_ok();
        assert!(ok("https://auth.example.com/token", false));
        assert!(ok("https://localhost:5001/token", false));
        assert!(!ok("http://auth.example.com/token", false));
        assert!(ok("http://auth.example.com/token", true));
        assert!(!ok("https://169.254.169.254/latest/meta-data", false));
        assert!(!ok("https://10.0.0.7/token", false));
        assert!(!ok("https://[::1]:8080/token", false));
        assert!(!ok("https://[fd00:ec2::254]/token", false));
        assert!(!ok("ftp://auth.example.com/", false));
        // The registry's own host is always fine.
        assert!(check_realm("10.0.0.7:5000", "https://10.0.0.7:5000/token", false).is_ok());
    }
}
