//! Manifest media types, digests and platform selection in image indexes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Docker v2 single-platform manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker v2 manifest list (multi-arch).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-arch).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The `Accept` header of a manifest request: every type Helios reads, so a registry never
/// down-converts a manifest (which would change its digest).
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Whether a media type is an index (manifest list).
pub fn is_index(media_type: &str) -> bool {
    let base = media_type.split(';').next().unwrap_or("").trim();
    base == OCI_INDEX || base == DOCKER_MANIFEST_LIST
}

/// `sha256:<hex>` of a manifest's bytes, which is its digest.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Whether `s` is a well-formed `sha256:<64 hex>` digest (what Helios accepts from a header).
pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A platform, `os/architecture[/variant]`, e.g. `linux/amd64` or `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// The operating system, e.g. `linux`.
    pub os: String,
    /// The CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// The variant, e.g. `v8`; `None` matches any.
    pub variant: Option<String>,
}

impl Default for Platform {
    /// `linux/amd64`, what nodes of most clusters and CI runners run.
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let ok =
            |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(Error::invalid(
                "platform",
                format!("{s:?}: expected os/architecture[/variant], e.g. linux/amd64"),
            )),
        }
    }
}

impl Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    platform: Option<DescriptorPlatform>,
}

#[derive(Deserialize)]
struct DescriptorPlatform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// The digest of `platform`'s manifest in an index body. `Err` names the platforms there are.
pub fn select_platform(index: &[u8], platform: &Platform, reference: &str) -> Result<String> {
    let index: Index = serde_json::from_slice(index).map_err(|e| {
        Error::remote(
            "registry",
            None,
            format!("the image index of {reference} is not valid JSON: {e}"),
        )
    })?;
    let mut seen = Vec::new();
    for m in &index.manifests {
        let Some(p) = &m.platform else { continue };
        let matches = p.os == platform.os
            && p.architecture == platform.architecture
            && match (&platform.variant, &p.variant) {
                (None, _) => true,
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
            };
        if matches && is_sha256_digest(&m.digest) {
            return Ok(m.digest.clone());
        }
        let name = match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        };
        // Attestation manifests carry `unknown/unknown`; they are not platforms.
        if p.os != "unknown" {
            seen.push(name);
        }
    }
    Err(Error::InvalidImage {
        reference: reference.to_string(),
        reason: format!(
            "the image index has no {platform} manifest (it has: {}); set the platform to one of them",
            if seen.is_empty() {
                "none".into()
            } else {
                seen.join(", ")
            }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn index() -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"digest":"{A}","platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"digest":"{B}","platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"digest":"{A}","platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#
        )
    }

    #[test]
    fn picks_the_platform() -> Result<()> {
        let i = index();
        assert_eq!(select_platform(i.as_bytes(), &Platform::default(), "r")?, B);
        assert_eq!(
            select_platform(i.as_bytes(), &"linux/arm64".parse()?, "r")?,
            A
        );
        assert_eq!(
            select_platform(i.as_bytes(), &"linux/arm64/v8".parse()?, "r")?,
            A
        );
        Ok(())
    }

    #[test]
    fn a_missing_platform_names_the_ones_there_are() -> Result<()> {
        let i = index();
        let err = select_platform(i.as_bytes(), &"windows/amd64".parse()?, "r").err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("linux/arm64/v8, linux/amd64"), "{msg}");
        assert!(!msg.contains("unknown"), "{msg}");
        Ok(())
    }

    #[test]
    fn platform_parsing() {
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/amd64/v1/x".parse::<Platform>().is_err());
        assert!("linux/".parse::<Platform>().is_err());
        assert_eq!(
            "linux/arm/v7"
                .parse::<Platform>()
                .map(|p| p.to_string())
                .ok(),
            Some("linux/arm/v7".into())
        );
        assert!(is_index(&format!("{DOCKER_MANIFEST_LIST}; charset=utf-8")));
        assert!(!is_index(OCI_MANIFEST));
    }
}
