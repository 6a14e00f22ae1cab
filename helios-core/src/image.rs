//! Container image references: parsed, normalised the way Docker does, and turned into the
//! `image` object of the policy input.
//!
//! Parsing is delegated to `oci-spec`'s distribution [`Reference`](oci_spec::distribution::Reference),
//! which implements the Docker reference grammar and its `docker.io/library/` normalisation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A parsed, normalised image reference such as `registry.example.com/team/app:1.4@sha256:…`.
///
/// `nginx` becomes registry `docker.io`, repository `library/nginx`, tag `latest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Strict like the rest of the input contract: a misspelt key must not be silently ignored.
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ImageRef {
    /// The full normalised reference, e.g. `docker.io/library/nginx:1.25`.
    pub reference: String,
    /// The registry host (and port), e.g. `registry:5000` or `docker.io`.
    pub registry: String,
    /// The repository path inside the registry, e.g. `team/app` or `library/nginx`.
    pub repository: String,
    /// The tag, `latest` when neither a tag nor a digest was given, `null` when only a digest was.
    pub tag: Option<String>,
    /// The manifest digest (`sha256:…`) when the reference pins one.
    pub digest: Option<String>,
    /// The digest the registry resolved the tag to (for a multi-arch image, the index digest);
    /// `null` when the image was not resolved. Added to input contract v1 (absent in older
    /// documents reads as `null`).
    #[serde(default)]
    pub resolved_digest: Option<String>,
    /// The platform manifest digest chosen from a multi-arch index (e.g. `linux/amd64`);
    /// `null` for single-platform images and unresolved ones. Added to input contract v1.
    #[serde(default)]
    pub platform_digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalises an image reference.
    pub fn parse(reference: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidImage {
            reference: reference.to_string(),
            reason,
        };
        let trimmed = reference.trim();
        if trimmed.is_empty() {
            return Err(invalid("the reference is empty".into()));
        }
        let parsed = oci_spec::distribution::Reference::from_str(trimmed)
            .map_err(|e| invalid(e.to_string()))?;
        let (mut registry, mut repository) = (parsed.registry(), parsed.repository());
        // oci-spec misses one rule of Docker's normalisation (distribution/reference
        // `splitDockerDomain`): a first component with upper-case letters is a registry host, as
        // repository paths are lower-case. Without it `Registry/app` became
        // `docker.io/Registry/app`, a reference nothing (this parser included) accepts back.
        if registry == "docker.io"
            && let Some((host, path)) = repository.split_once('/')
            && host.bytes().any(|b| b.is_ascii_uppercase())
        {
            (registry, repository) = (host, path);
        }
        let mut image = ImageRef {
            reference: String::new(),
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: parsed.tag().map(str::to_string),
            digest: parsed.digest().map(str::to_string),
            resolved_digest: None,
            platform_digest: None,
        };
        if image.tag.is_none() && image.digest.is_none() {
            image.tag = Some("latest".into());
        }
        image.reference = image.to_string();
        Ok(image)
    }

    /// This reference pinned to `digest` (keeping the tag), as a registry lookup resolves it.
    pub fn with_digest(mut self, digest: impl Into<String>) -> Self {
        self.digest = Some(digest.into());
        self.reference = self.to_string();
        self
    }
}

impl ImageRef {
    /// Every digest this image may run as, most specific first and without repeats: the
    /// platform manifest, the reference's own digest, the registry-resolved digest. A scan
    /// lookup searches all of them (Lacework may know an image by its index or by its platform
    /// manifest digest); empty for a tag nobody resolved.
    pub fn candidate_digests(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::with_capacity(3);
        for d in [&self.platform_digest, &self.digest, &self.resolved_digest]
            .into_iter()
            .flatten()
        {
            if !out.contains(&d.as_str()) {
                out.push(d);
            }
        }
        out
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ImageRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:1234d2246518044ef95e3dbd029e51dd477788e5bf8e278e418685aabc3fe28a";

    #[test]
    fn bare_name_is_normalised_to_docker_hub_library() -> Result<()> {
        let image = ImageRef::parse("nginx")?;
        assert_eq!(image.registry, "docker.io");
        assert_eq!(image.repository, "library/nginx");
        assert_eq!(image.tag.as_deref(), Some("latest"));
        assert_eq!(image.digest, None);
        assert_eq!(image.reference, "docker.io/library/nginx:latest");
        Ok(())
    }

    /// Found by the `image_ref` fuzz target: the normalised form must parse back to itself.
    #[test]
    fn an_upper_case_first_component_is_a_registry_as_in_docker() -> Result<()> {
        let image = ImageRef::parse("UPPER/case")?;
        assert_eq!(image.registry, "UPPER");
        assert_eq!(image.repository, "case");
        assert_eq!(image.reference, "UPPER/case:latest");
        assert_eq!(ImageRef::parse(&image.reference)?, image);
        let image = ImageRef::parse("Registry/team/app:1")?;
        assert_eq!(
            (image.registry.as_str(), image.repository.as_str()),
            ("Registry", "team/app")
        );
        assert_eq!(ImageRef::parse(&image.reference)?, image);
        // Upper case is a host only in the first component; in a path it stays invalid.
        assert!(ImageRef::parse("docker.io/UPPER/case").is_err());
        assert!(ImageRef::parse("team/App").is_err());
        Ok(())
    }

    #[test]
    fn tag_is_kept() -> Result<()> {
        let image = ImageRef::parse("nginx:1.25")?;
        assert_eq!(image.reference, "docker.io/library/nginx:1.25");
        assert_eq!(image.tag.as_deref(), Some("1.25"));
        Ok(())
    }

    #[test]
    fn registry_with_port_tag_and_digest() -> Result<()> {
        let image = ImageRef::parse(&format!("registry:5000/team/app:tag@{DIGEST}"))?;
        assert_eq!(image.registry, "registry:5000");
        assert_eq!(image.repository, "team/app");
        assert_eq!(image.tag.as_deref(), Some("tag"));
        assert_eq!(image.digest.as_deref(), Some(DIGEST));
        assert_eq!(
            image.reference,
            format!("registry:5000/team/app:tag@{DIGEST}")
        );
        Ok(())
    }

    #[test]
    fn digest_only_has_no_tag() -> Result<()> {
        let image = ImageRef::parse(&format!("ghcr.io/org/tool@{DIGEST}"))?;
        assert_eq!(image.tag, None);
        assert_eq!(image.reference, format!("ghcr.io/org/tool@{DIGEST}"));
        Ok(())
    }

    #[test]
    fn user_repository_on_docker_hub() -> Result<()> {
        let image = ImageRef::parse("jmalloc/echo-server")?;
        assert_eq!(image.reference, "docker.io/jmalloc/echo-server:latest");
        Ok(())
    }

    #[test]
    fn candidate_digests_are_specific_first_and_unique() -> Result<()> {
        let mut image = ImageRef::parse("registry:5000/team/app:tag")?;
        assert!(image.candidate_digests().is_empty());
        image.resolved_digest = Some("sha256:index".into());
        image.platform_digest = Some("sha256:amd64".into());
        assert_eq!(image.candidate_digests(), ["sha256:amd64", "sha256:index"]);
        let pinned = ImageRef::parse(&format!("ghcr.io/org/tool@{DIGEST}"))?;
        let mut pinned2 = pinned.clone();
        pinned2.resolved_digest = Some(DIGEST.into());
        assert_eq!(pinned2.candidate_digests(), [DIGEST]);
        Ok(())
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for bad in [
            "",
            "   ",
            "UPPER/Case",
            "nginx:bad tag",
            "nginx@sha256:short",
        ] {
            let err = ImageRef::parse(bad).err();
            assert!(
                matches!(err, Some(Error::InvalidImage { .. })),
                "{bad:?} gave {err:?}"
            );
        }
    }
}
