//! Container image references: parsed, normalised the way Docker does, and turned into the
//! `image` object of the policy input.
//!
//! Parsing follows `oci-spec`'s distribution [`Reference`](oci_spec::distribution::Reference),
//! which implements the Docker reference grammar and its `docker.io/library/` normalisation. An
//! ASCII reference (every real one) is matched by the same grammar compiled for ASCII only:
//! oci-spec's expression spells word characters `\w`, which the `regex` crate reads as Unicode,
//! and compiling its 128 repetitions took 40–130 ms of every process's start (`helios gate`).
//! On an ASCII text both expressions match alike; anything else, and every error, goes to
//! oci-spec itself.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

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
        let parsed = Parts::parse(trimmed).map_err(invalid)?;
        let (mut registry, mut repository) = (parsed.registry.as_str(), parsed.repository.as_str());
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
            tag: parsed.tag,
            digest: parsed.digest,
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

/// oci-spec's `REFERENCE_REGEXP` with `\w` spelt `[0-9A-Za-z_]`: the same grammar on ASCII.
const REFERENCE_ASCII: &str = r"^((?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))+)?(?::[0-9]+)?/)?[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:(?:/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)+)?)(?::([0-9A-Za-z_][0-9A-Za-z_.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}))?$";

/// [`REFERENCE_ASCII`] compiled on first use; `None` if it did not compile, which leaves every
/// reference to oci-spec.
static REFERENCE: LazyLock<Option<regex_lite::Regex>> =
    LazyLock::new(|| regex_lite::Regex::new(REFERENCE_ASCII).ok());

/// A reference split and normalised as oci-spec does, before Helios's own rule.
#[derive(Debug, PartialEq, Eq)]
struct Parts {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Parts {
    /// The parts of `s`, or oci-spec's reason why it is not a reference.
    fn parse(s: &str) -> std::result::Result<Parts, String> {
        if let Some(parts) = Parts::parse_ascii(s) {
            return Ok(parts);
        }
        let parsed = oci_spec::distribution::Reference::from_str(s).map_err(|e| e.to_string())?;
        Ok(Parts {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: parsed.tag().map(str::to_string),
            digest: parsed.digest().map(str::to_string),
        })
    }

    /// oci-spec's `Reference::try_from` on an ASCII text, step by step; `None` for anything
    /// else and wherever it would fail (so that its error is the one reported).
    fn parse_ascii(s: &str) -> Option<Parts> {
        if !s.is_ascii() {
            return None;
        }
        let captures = REFERENCE.as_ref()?.captures(s)?;
        let name = captures.get(1)?.as_str();
        let digest = captures.get(3).map(|m| m.as_str().to_string());
        let tag = match (captures.get(2), &digest) {
            (Some(tag), _) => Some(tag.as_str().to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        // oci-spec's `split_domain`, Docker's `splitDockerDomain`.
        let (mut registry, mut repository) = match name.split_once('/') {
            Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => {
                (host.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        if registry == "index.docker.io" {
            registry = "docker.io".to_string();
        }
        if registry == "docker.io" && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if repository.len() > 255 {
            return None;
        }
        if let Some(digest) = &digest {
            let expected = match digest.split_once(':')? {
                ("sha256", _) => 64,
                ("sha384", _) => 96,
                ("sha512", _) => 128,
                _ => return None,
            };
            if digest.split_once(':')?.1.len() != expected {
                return None;
            }
        }
        Some(Parts {
            registry,
            repository,
            tag,
            digest,
        })
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

    /// The ASCII grammar decides every reference as oci-spec does: the same parts, or `None`
    /// where oci-spec fails (oci-spec's own test references, Helios's, and edge cases).
    #[test]
    fn the_ascii_grammar_agrees_with_oci_spec() {
        let hex = |n: usize| "f".repeat(n);
        let long_name = format!("a/{}", "b".repeat(260));
        let long_tag = format!("app:{}", "t".repeat(128));
        let max_tag = format!("app:{}", "t".repeat(127));
        let cases = [
            "busybox".to_string(),
            "test.com:tag".into(),
            "test.com:5000".into(),
            "test.com/repo:tag".into(),
            "test:5000/repo".into(),
            "test:5000/repo:tag".into(),
            format!("test:5000/repo@sha256:{}", hex(64)),
            format!("test:5000/repo:tag@sha256:{}", hex(64)),
            "lowercase:Uppercase".into(),
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
            "b.gcr.io/test.example.com/my-app:test.example.com".into(),
            format!("xn--7o8h.com/myimage:xn--7o8h.com@sha512:{}", hex(128)),
            format!("a/b@sha384:{}", hex(96)),
            "foo_bar.com:8080".into(),
            "foo/foo_bar.com:8080".into(),
            "opensuse/leap:15.3".into(),
            "index.docker.io/nginx".into(),
            "index.docker.io/team/app:1".into(),
            "localhost/app".into(),
            "localhost:5000/app".into(),
            "UPPER/case".into(),
            "Registry/team/app:1".into(),
            "a__b/c---d:_tag".into(),
            max_tag,
            long_tag,
            long_name,
            "".into(),
            "UPPER/Case".into(),
            "team/App".into(),
            "nginx:bad tag".into(),
            "nginx@sha256:short".into(),
            format!("nginx@sha256:{}", hex(63)),
            format!("nginx@sha256:{}", hex(65)),
            format!("nginx@md5:{}", hex(32)),
            format!("nginx@sha512:{}", hex(64)),
            "a:b:c".into(),
            "-a/b".into(),
            "a//b".into(),
            ":tag".into(),
            "a/b/".into(),
            "app:-tag".into(),
            "app:tag@".into(),
        ];
        for case in &cases {
            let expected = oci_spec::distribution::Reference::from_str(case)
                .ok()
                .map(|r| Parts {
                    registry: r.registry().to_string(),
                    repository: r.repository().to_string(),
                    tag: r.tag().map(str::to_string),
                    digest: r.digest().map(str::to_string),
                });
            assert_eq!(Parts::parse_ascii(case), expected, "{case:?}");
        }
        // Non-ASCII text is oci-spec's alone (its `\w` is Unicode).
        assert_eq!(Parts::parse_ascii("app:tä"), None);
        assert_eq!(
            Parts::parse("app:tä").ok().and_then(|p| p.tag).as_deref(),
            oci_spec::distribution::Reference::from_str("app:tä")
                .ok()
                .and_then(|r| r.tag().map(str::to_string))
                .as_deref()
        );
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
