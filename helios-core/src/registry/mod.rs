//! Exact image identity: resolve `repo:tag` to the digest the registry serves now (and, for a
//! multi-arch image, to the platform manifest a node will pull), so a scan lookup and a pin are
//! about the bytes that will run.
//!
//! ```no_run
//! use helios_core::image::ImageRef;
//! use helios_core::registry::{RegistryConfig, Resolver};
//!
//! # async fn run() -> helios_core::Result<()> {
//! let resolver = Resolver::new(RegistryConfig::default())?;
//! let image = resolver.resolve(ImageRef::parse("ghcr.io/org/app:1.4")?).await?;
//! println!("{:?} {:?}", image.resolved_digest, image.platform_digest);
//! # Ok(())
//! # }
//! ```
//!
//! Resolutions are cached for [`RegistryConfig::cache_ttl_secs`] (default 30 s): a tag moved
//! at the registry is seen by Helios at most that long after the move.

mod auth;
mod cache;
mod client;
mod manifest;

pub use auth::{Challenge, CredentialSource, Credentials};
pub use client::Resolved;
pub use manifest::{
    ACCEPT, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, Platform, is_index,
    is_sha256_digest, select_platform,
};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::image::ImageRef;

/// Default lifetime of a cached resolution.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
/// Default time one registry request may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time to connect to a registry.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How Helios talks to registries. Deserialises from the webhook configuration's `registry:`
/// section; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Resolve tag-only images before the scan lookup (default); `false` looks them up as
    /// written, as `--no-resolve` does.
    pub resolve: bool,
    /// Webhook only: answer `/mutate` with patches pinning each tag to its resolved digest
    /// (opt-in; see the MutatingWebhookConfiguration in deploy/).
    pub pin_digests: bool,
    /// A Docker `config.json`, a mounted `kubernetes.io/dockerconfigjson` Secret file
    /// (`.dockerconfigjson`), or a directory holding either; default `$DOCKER_CONFIG/config.json`,
    /// else `~/.docker/config.json`. No file means anonymous pulls.
    pub docker_config: Option<PathBuf>,
    /// The platform whose manifest is picked from a multi-arch index.
    pub platform: Platform,
    /// Seconds a resolution is reused (0: ask the registry every time).
    pub cache_ttl_secs: u64,
    /// Milliseconds one registry request may take.
    pub timeout_ms: u64,
    /// Milliseconds to connect.
    pub connect_timeout_ms: u64,
    /// Registries (`host[:port]`) spoken to over plain HTTP. Explicit, never a fallback.
    pub plain_http: BTreeSet<String>,
    /// A PEM CA bundle per registry (`host[:port]`), trusted in addition to the public roots.
    pub ca: BTreeMap<String, PathBuf>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            resolve: true,
            pin_digests: false,
            docker_config: None,
            platform: Platform::default(),
            cache_ttl_secs: DEFAULT_CACHE_TTL.as_secs(),
            timeout_ms: DEFAULT_TIMEOUT.as_millis() as u64,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT.as_millis() as u64,
            plain_http: BTreeSet::new(),
            ca: BTreeMap::new(),
        }
    }
}

impl RegistryConfig {
    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.max(1))
    }

    /// The cache lifetime.
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }

    pub(crate) fn credentials(&self) -> CredentialSource {
        CredentialSource {
            path: self.docker_config.clone(),
        }
    }
}

/// Resolves image tags at their registry, with a TTL cache and single-flight. Cheap to clone;
/// share one per process.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    client: client::Client,
    cache: cache::ResolveCache,
    platform: Platform,
    enabled: bool,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("platform", &self.inner.platform)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver; fails when a configured CA file cannot be read or holds no certificate.
    pub fn new(config: RegistryConfig) -> Result<Self> {
        let cache = cache::ResolveCache::new(config.cache_ttl());
        let platform = config.platform.clone();
        let enabled = config.resolve;
        Ok(Resolver {
            inner: Arc::new(Inner {
                client: client::Client::new(config)?,
                cache,
                platform,
                enabled,
            }),
        })
    }

    /// `image` with [`ImageRef::resolved_digest`] (and, for a multi-arch image,
    /// [`ImageRef::platform_digest`]) filled from the registry.
    ///
    /// A reference that already pins a digest is returned unchanged without asking the
    /// registry: the digest is the identity. Every failure (401, 404, down, timeout, no
    /// manifest for the platform) is an error; callers apply their failure policy. With
    /// [`RegistryConfig::resolve`] off, every image is returned unchanged.
    pub async fn resolve(&self, image: ImageRef) -> Result<ImageRef> {
        if image.digest.is_some() || !self.inner.enabled {
            return Ok(image);
        }
        let tag = image.tag.clone().unwrap_or_else(|| "latest".into());
        let resolved = self
            .resolve_tag(&image.registry, &image.repository, &tag)
            .await?;
        let mut image = image;
        image.resolved_digest = Some(resolved.digest);
        image.platform_digest = resolved.platform_digest;
        Ok(image)
    }

    /// The registry's current answer for `registry/repository:tag` (cached up to the TTL).
    pub async fn resolve_tag(
        &self,
        registry: &str,
        repository: &str,
        tag: &str,
    ) -> Result<Resolved> {
        let key = format!("{registry}/{repository}:{tag}|{}", self.inner.platform);
        let started = std::time::Instant::now();
        let (result, cached) = self
            .inner
            .cache
            .get_or_fetch(&key, || {
                self.inner.client.resolve(registry, repository, tag)
            })
            .await;
        match &result {
            Ok(r) => tracing::debug!(
                image = %format!("{registry}/{repository}:{tag}"),
                digest = %r.digest,
                platform_digest = r.platform_digest.as_deref().unwrap_or(""),
                cached,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "resolved tag"
            ),
            Err(e) => tracing::warn!(
                image = %format!("{registry}/{repository}:{tag}"),
                code = e.code(),
                error = %e,
                "tag resolution failed"
            ),
        }
        result
    }
}

/// `image` resolved by `resolver` when there is one, else unchanged (as is a reference that
/// already pins a digest): the one step every front end, the admission controller and the audit
/// take before a scan lookup.
pub async fn resolve_with(resolver: Option<&Resolver>, image: ImageRef) -> Result<ImageRef> {
    match resolver {
        Some(r) => r.resolve(image).await,
        None => Ok(image),
    }
}

/// Whether `HELIOS_NO_RESOLVE` (`true`, `1` or `yes`) turns tag resolution off, as
/// `--no-resolve` does; the default of the Python and Node `gate`/`scan` too.
pub fn no_resolve_from_env() -> bool {
    std::env::var("HELIOS_NO_RESOLVE")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
        .unwrap_or(false)
}

impl Resolver {
    /// The resolver a caller asked for: `resolve` `Some(false)` (or, when `None`,
    /// `HELIOS_NO_RESOLVE` set) means none, so images are looked up as written.
    pub fn optional(config: RegistryConfig, resolve: Option<bool>) -> Result<Option<Resolver>> {
        if !resolve.unwrap_or_else(|| !no_resolve_from_env()) || !config.resolve {
            return Ok(None);
        }
        Resolver::new(config).map(Some)
    }
}

/// What `original` (an image as written in a spec) is pinned to: `original@digest`, with the
/// digest the registry resolved (the index for a multi-arch image, so every node still pulls
/// its own platform). The spelling of `original` is kept (`nginx:1.25` stays short), so a
/// reviewer sees the same name. `None` when the image was not resolved or already pins one.
pub fn pinned_reference(original: &str, image: &ImageRef) -> Option<String> {
    if image.digest.is_some() || original.contains('@') {
        return None;
    }
    let digest = image.resolved_digest.as_ref()?;
    Some(format!("{}@{digest}", original.trim()))
}
