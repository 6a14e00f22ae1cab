//! Registry credentials: Docker `config.json` (and a mounted `kubernetes.io/dockerconfigjson`
//! Secret, which has the same shape), and the `WWW-Authenticate` challenges a registry answers
//! with.
//!
//! Credential helpers (`credsStore`, `credHelpers`) are not run: Helios runs in CI and in a
//! cluster, where credentials are files; an entry that only names a helper reads as anonymous.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::http::Secret;

/// A user name and secret for one registry. `Debug` never shows the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (for an identity token, Docker's `<token>`).
    pub username: String,
    /// The password, token or identity token.
    pub secret: Secret,
}

/// Where credentials are read from, in order: an explicit file or directory, else
/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. A missing file means anonymous.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialSource {
    /// A `config.json`, a Secret's `.dockerconfigjson`, or a directory holding either.
    pub path: Option<PathBuf>,
}

/// The Docker config file shapes: `{"auths": {host: entry}}` (config.json, dockerconfigjson)
/// and the legacy `.dockercfg` `{host: entry}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ConfigFile {
    Modern { auths: BTreeMap<String, AuthEntry> },
    Legacy(BTreeMap<String, AuthEntry>),
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl CredentialSource {
    /// The file to read, if any exists.
    fn file(&self) -> Option<PathBuf> {
        let candidates: Vec<PathBuf> = match &self.path {
            Some(p) if p.is_dir() => vec![
                p.join("config.json"),
                p.join(".dockerconfigjson"),
                p.join(".dockercfg"),
            ],
            Some(p) => vec![p.clone()],
            None => {
                let mut v = Vec::new();
                if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
                    v.push(PathBuf::from(dir).join("config.json"));
                } else if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
                    v.push(PathBuf::from(home).join(".docker").join("config.json"));
                }
                v
            }
        };
        candidates.into_iter().find(|p| p.is_file())
    }

    /// The credentials for `registry` (a host, with port if any), or `None` for anonymous.
    ///
    /// Read on every call (the caller caches resolutions), so a rotated Secret is picked up.
    /// An explicitly named file that is missing or malformed is an error; a malformed default
    /// file is too, since silently pulling anonymously would hide the mistake. A directory
    /// without a config file means anonymous.
    pub fn for_registry(&self, registry: &str) -> Result<Option<Credentials>> {
        let Some(file) = self.file() else {
            // A named file that is missing is a mistake; a directory without a config (an
            // empty DOCKER_CONFIG) means anonymous, as it does for Docker.
            if let Some(p) = self.path.as_ref().filter(|p| !p.is_dir()) {
                return Err(Error::io(
                    p,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no Docker config there"),
                ));
            }
            return Ok(None);
        };
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        parse_config(&text, &file, registry)
    }
}

fn parse_config(text: &str, file: &Path, registry: &str) -> Result<Option<Credentials>> {
    let what = || format!("Docker config {}", file.display());
    // serde_json errors quote no input values, so a secret cannot leak through them.
    let config: ConfigFile = serde_json::from_str(text).map_err(|e| Error::invalid(what(), e))?;
    let auths = match config {
        ConfigFile::Modern { auths } | ConfigFile::Legacy(auths) => auths,
    };
    let Some(entry) = auths
        .iter()
        .find(|(key, _)| host_of_key(key) == registry_key(registry))
        .map(|(_, e)| e)
    else {
        return Ok(None);
    };
    entry_credentials(entry)
        .map_err(|reason| Error::invalid(what(), format!("{registry}: {reason}")))
}

fn entry_credentials(entry: &AuthEntry) -> std::result::Result<Option<Credentials>, String> {
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials {
            username: "<token>".into(),
            secret: Secret::new(token),
        }));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials {
            username: u.clone(),
            secret: Secret::new(p.clone()),
        }));
    }
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| "`auth` is not base64 of user:password".to_string())?;
    let decoded = String::from_utf8(decoded).map_err(|_| "`auth` is not UTF-8".to_string())?;
    match decoded.split_once(':') {
        Some((u, p)) => Ok(Some(Credentials {
            username: u.to_string(),
            secret: Secret::new(p),
        })),
        None => Err("`auth` is not base64 of user:password".into()),
    }
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `registry:5000` stays.
fn host_of_key(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    registry_key(host)
}

/// Docker Hub goes by several names; config files use `index.docker.io`.
fn registry_key(host: &str) -> String {
    match host {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => "index.docker.io".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=…`: send the credentials with each request.
    Basic,
    /// `Bearer realm=…,service=…,scope=…`: fetch a token from `realm` first.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter, passed back to the token endpoint.
        service: Option<String>,
        /// The `scope` the registry asked for, if it said.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses a header value; `None` for schemes Helios does not speak.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header
            .split_once(char::is_whitespace)
            .unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        let realm = params.get("realm")?.clone();
        Some(Challenge::Bearer {
            realm,
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        })
    }
}

/// `key="value",key2=value2` (values may hold commas inside quotes).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn config_json_auth_and_hub_aliases() -> Result<()> {
        let text = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}},
                "registry:5000": {{"username": "u", "password": "p:w"}}}},
                "credsStore": "desktop"}}"#,
            b64("hub:s3cret")
        );
        let file = Path::new("config.json");
        let hub = parse_config(&text, file, "docker.io")?;
        assert_eq!(hub.as_ref().map(|c| c.username.as_str()), Some("hub"));
        assert_eq!(hub.as_ref().map(|c| c.secret.expose()), Some("s3cret"));
        let local = parse_config(&text, file, "registry:5000")?;
        assert_eq!(local.map(|c| c.secret), Some(Secret::new("p:w")));
        assert_eq!(parse_config(&text, file, "ghcr.io")?, None);
        Ok(())
    }

    #[test]
    fn legacy_dockercfg_and_identity_token() -> Result<()> {
        let text = r#"{"quay.io": {"identitytoken": "tok"}}"#;
        let c = parse_config(text, Path::new(".dockercfg"), "quay.io")?;
        assert_eq!(c.map(|c| c.secret), Some(Secret::new("tok")));
        Ok(())
    }

    #[test]
    fn bad_auth_is_an_error_without_the_secret() {
        let text = r#"{"auths": {"r.example": {"auth": "not base64 TOPSECRET!"}}}"#;
        let err = parse_config(text, Path::new("c.json"), "r.example").err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("base64"), "{msg}");
        assert!(!msg.contains("TOPSECRET"), "{msg}");
    }

    #[test]
    fn debug_redacts_the_secret() {
        let c = Credentials {
            username: "u".into(),
            secret: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="helios""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }
}
