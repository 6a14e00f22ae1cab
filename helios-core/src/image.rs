//! Container image references: parsed, normalised the way Docker does, and turned into the
//! `image` object of the policy input.
//!
//! Parsing follows `oci-spec`'s distribution [`Reference`](oci_spec::distribution::Reference),
//! which implements the Docker reference grammar and its `docker.io/library/` normalisation. An
//! ASCII reference (every real one) is read by that grammar written out by hand: oci-spec
//! compiles it as a regular expression on first use, which took 40–130 ms of every process's
//! start (`helios gate`; its `\w` is Unicode, repeated 128 times), and 0.4 M instructions with
//! `regex-lite`. On an ASCII text both read alike (a test compares them on oci-spec's own cases
//! and on generated ones); anything else, and every error, goes to oci-spec itself.

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

/// oci-spec's `REFERENCE_REGEXP` (Docker's reference grammar) on ASCII, written out: a name, a
/// `:tag`, an `@digest`. Compiling and matching that expression, even with `regex-lite`, was
/// 0.4 M instructions of every `helios gate` (a match alone 4.8 µs); this is one pass over the
/// text. `the_ascii_grammar_agrees_with_oci_spec` checks it against oci-spec itself, on its own
/// test references and on generated ones.
fn split_ascii(s: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (s, None),
    };
    // A `:` with no `/` after it starts the tag; one before a `/` ends a registry host.
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if !rest[colon..].contains('/') => (&rest[..colon], Some(&rest[colon + 1..])),
        _ => (rest, None),
    };
    let fits = is_name(name) && tag.is_none_or(is_tag) && digest.is_none_or(is_digest);
    fits.then_some((name, tag, digest))
}

/// `[domain '/'] path-component ('/' path-component)*`, the domain a host with an optional port.
fn is_name(name: &str) -> bool {
    let (first, rest) = match name.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    let rest_fits = rest.is_none_or(|rest| rest.split('/').all(is_path_component));
    rest_fits && (is_path_component(first) || (rest.is_some() && is_domain(first)))
}

/// Lower-case alphanumeric runs joined by one `.`, one or two `_`, or any number of `-`.
fn is_path_component(component: &str) -> bool {
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = component.as_bytes();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    bytes
        .split(alnum)
        .filter(|separator| !separator.is_empty())
        .all(|separator| {
            matches!(separator, b"." | b"_" | b"__") || separator.iter().all(|c| *c == b'-')
        })
}

/// Dot-separated labels of ASCII letters, digits and inner `-`, then an optional `:port`.
fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let label_fits = |label: &str| {
        let bytes = label.as_bytes();
        bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
            && bytes
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    host.split('.').all(label_fits)
        && port.is_none_or(|port| !port.is_empty() && port.bytes().all(|c| c.is_ascii_digit()))
}

/// A word character, then up to 127 word characters, `.` or `-`.
fn is_tag(tag: &str) -> bool {
    let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
    let bytes = tag.as_bytes();
    bytes.len() <= 128
        && bytes.first().is_some_and(word)
        && bytes.iter().all(|c| word(c) || matches!(c, b'.' | b'-'))
}

/// `algorithm:hex`: algorithm components (a letter, then letters and digits) joined by one of
/// `-_+.`, and at least 32 hexadecimal digits.
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let component_fits = |component: &str| {
        let bytes = component.as_bytes();
        bytes.first().is_some_and(u8::is_ascii_alphabetic)
            && bytes.iter().all(u8::is_ascii_alphanumeric)
    };
    algorithm.split(['-', '_', '+', '.']).all(component_fits)
        && hex.len() >= 32
        && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

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
        let (name, tag, digest) = split_ascii(s)?;
        let digest = digest.map(str::to_string);
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
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

    /// What oci-spec makes of `case`, as [`Parts`].
    fn oci_spec_parts(case: &str) -> Option<Parts> {
        oci_spec::distribution::Reference::from_str(case)
            .ok()
            .map(|r| Parts {
                registry: r.registry().to_string(),
                repository: r.repository().to_string(),
                tag: r.tag().map(str::to_string),
                digest: r.digest().map(str::to_string),
            })
    }

    /// The ASCII grammar decides every reference as oci-spec does: the same parts, or `None`
    /// where oci-spec fails (oci-spec's own test references, Helios's, edge cases, and generated
    /// ones).
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
            let expected = oci_spec_parts(case);
            assert_eq!(Parts::parse_ascii(case), expected, "{case:?}");
        }
        // Generated references: fragments of the grammar and of what breaks it, strung
        // together by a fixed pseudo-random sequence.
        let fragments = [
            "a",
            "b9",
            "x",
            "Z",
            "0",
            ".",
            "-",
            "--",
            "_",
            "__",
            "___",
            ":",
            "/",
            "@",
            "5000",
            "localhost",
            "docker.io",
            "index.docker.io",
            "sha256:",
            "sha512:",
            "a+b.c-d_e:",
            "0123456789abcdef0123456789abcdef",
            "0123456789ABCDEF0123456789ABCDEF01234567890",
            "..",
            "-x",
            "x-",
            "_x",
            "tag.1-2",
            " ",
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut matched = 0;
        for _ in 0..4000 {
            let case: String = (0..1 + next(8))
                .map(|_| fragments[next(fragments.len())])
                .collect();
            let expected = oci_spec_parts(&case);
            matched += usize::from(expected.is_some());
            assert_eq!(Parts::parse_ascii(&case), expected, "{case:?}");
        }
        // Both outcomes are well represented.
        assert!((400..3600).contains(&matched), "{matched} of 4000 matched");
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
