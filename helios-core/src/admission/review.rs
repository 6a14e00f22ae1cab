//! Wire types of `admission.k8s.io/v1` (and `v1beta1`) `AdmissionReview`.
//!
//! Names and shapes follow kube-rs `kube-core::admission` ([`AdmissionResponse::from`],
//! [`AdmissionResponse::deny`], [`AdmissionResponse::into_review`]) without pulling in
//! `k8s-openapi`: the object under review stays a [`serde_json::Value`], since Helios reads only
//! the pod template of it and must accept every kind the API server may send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// The `kind` of every review.
pub const META_KIND: &str = "AdmissionReview";
/// The `apiVersion` of a v1 review.
pub const META_API_VERSION_V1: &str = "admission.k8s.io/v1";
/// The `apiVersion` of a v1beta1 review (answered in v1beta1).
pub const META_API_VERSION_V1BETA1: &str = "admission.k8s.io/v1beta1";

/// An `AdmissionReview`: a request from the API server, or the webhook's response to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// `admission.k8s.io/v1` or `admission.k8s.io/v1beta1`; a response carries the version of
    /// its request.
    pub api_version: String,
    /// Always `AdmissionReview`.
    pub kind: String,
    /// What the API server asks about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<AdmissionRequest>,
    /// The webhook's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<AdmissionResponse>,
}

/// `group`, `version`, `kind` of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionKind {
    /// API group, empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version, e.g. `v1`.
    #[serde(default)]
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
}

/// `group`, `version`, `resource` of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionResource {
    /// API group, empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version, e.g. `v1`.
    #[serde(default)]
    pub version: String,
    /// Resource, e.g. `deployments`.
    pub resource: String,
}

/// The operation under review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    /// An object is created.
    Create,
    /// An object is updated.
    Update,
    /// An object is deleted.
    Delete,
    /// A connection (exec, attach, port-forward, proxy).
    Connect,
}

impl Operation {
    /// The wire name, e.g. `CREATE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// Who sent the request to the API server.
///
/// `extra` may hold identity assertions (GKE puts signed tokens there): Helios never logs it and
/// never passes it to a policy.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// User name, e.g. `alice` or `system:serviceaccount:kube-system:replicaset-controller`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes from the authenticator.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for UserInfo {
    // `extra` can carry credentials: keep it out of every debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserInfo")
            .field("username", &self.username)
            .field("uid", &self.uid)
            .field("groups", &self.groups)
            .field(
                "extra",
                &format_args!("<{} keys redacted>", self.extra.len()),
            )
            .finish()
    }
}

/// The request of a review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// The review's `apiVersion`, copied here so that a response answers in the same version.
    #[serde(skip)]
    pub api_version: String,
    /// Identifies this round trip; every response echoes it.
    pub uid: String,
    /// The type of the object under review, e.g. `apps/v1 Deployment`.
    pub kind: GroupVersionKind,
    /// The resource requested, e.g. `apps/v1 deployments`.
    pub resource: GroupVersionResource,
    /// The subresource, e.g. `ephemeralcontainers`, `status`, `scale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// The kind of the original API request, when the API server converted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_kind: Option<GroupVersionKind>,
    /// The resource of the original API request, when the API server converted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_resource: Option<GroupVersionResource>,
    /// The subresource of the original API request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sub_resource: Option<String>,
    /// The object's name; empty on a CREATE that relies on `generateName`.
    #[serde(default)]
    pub name: String,
    /// The namespace, absent for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The operation.
    pub operation: Operation,
    /// Who asked.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The object as it would be stored; `null` on DELETE.
    #[serde(default)]
    pub object: Option<Value>,
    /// The stored object, on UPDATE and DELETE.
    #[serde(default)]
    pub old_object: Option<Value>,
    /// `true` when the change will not be persisted: no side effects allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The operation's options (`CreateOptions`, `UpdateOptions`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
}

impl AdmissionRequest {
    /// Whether the request is a dry run.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run.unwrap_or(false)
    }
}

/// `metav1.Status`: why a request was denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `Success` or `Failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The message the user sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A machine-readable reason, e.g. `Forbidden`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The HTTP status code the API server answers the user with, e.g. 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// The response of a webhook: a validating one never carries a patch; the `/mutate` endpoint's
/// may (see [`AdmissionResponse::with_patch`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AdmissionResponse {
    /// The `apiVersion` the answer goes out in (that of the request).
    #[serde(skip)]
    pub api_version: String,
    /// The request's `uid`, echoed.
    pub uid: String,
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Why not, when denied.
    #[serde(rename = "status", default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Status>,
    /// Added to the request's audit event, each key prefixed by the API server with the
    /// webhook's name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
    /// Shown to the client (kubectl prints them as `Warning: …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
    /// A base64 JSONPatch (RFC 6902) to apply to the object (mutating webhooks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` whenever [`Self::patch`] is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
}

impl From<&AdmissionRequest> for AdmissionResponse {
    /// An allowing response to `req`, in its version, echoing its uid.
    fn from(req: &AdmissionRequest) -> Self {
        AdmissionResponse {
            api_version: req.api_version.clone(),
            uid: req.uid.clone(),
            allowed: true,
            result: None,
            audit_annotations: BTreeMap::new(),
            warnings: None,
            patch: None,
            patch_type: None,
        }
    }
}

/// Each warning is cut to this many bytes, as the API server truncates longer ones.
pub const MAX_WARNING_LEN: usize = 256;
/// The warnings of one response add up to at most this many bytes.
pub const MAX_WARNINGS_TOTAL: usize = 4096;

impl AdmissionResponse {
    /// A denying response for a request that could not be read (no uid to echo).
    pub fn invalid(reason: impl ToString) -> Self {
        AdmissionResponse {
            api_version: META_API_VERSION_V1.to_string(),
            uid: String::new(),
            allowed: false,
            result: Some(Status {
                status: Some("Failure".into()),
                message: Some(reason.to_string()),
                reason: Some("BadRequest".into()),
                code: Some(400),
            }),
            audit_annotations: BTreeMap::new(),
            warnings: None,
            patch: None,
            patch_type: None,
        }
    }

    /// Attaches a JSONPatch (the list of RFC 6902 operations); an empty list attaches nothing,
    /// so an object with nothing to change gets no patch at all.
    #[must_use]
    pub fn with_patch(mut self, operations: &[serde_json::Value]) -> Self {
        use base64::Engine as _;
        if operations.is_empty() {
            return self;
        }
        let json = serde_json::Value::Array(operations.to_vec()).to_string();
        self.patch = Some(base64::engine::general_purpose::STANDARD.encode(json));
        self.patch_type = Some("JSONPatch".into());
        self
    }

    /// Denies with `message`, answered to the user as HTTP 403 Forbidden.
    #[must_use]
    pub fn deny(mut self, message: impl ToString) -> Self {
        self.allowed = false;
        self.result = Some(Status {
            status: Some("Failure".into()),
            message: Some(message.to_string()),
            reason: Some("Forbidden".into()),
            code: Some(403),
        });
        self
    }

    /// Adds warnings within the API server's limits: each at most [`MAX_WARNING_LEN`] bytes,
    /// control characters replaced, duplicates dropped, [`MAX_WARNINGS_TOTAL`] bytes in all
    /// (the last kept warning then says how many were left out).
    #[must_use]
    pub fn with_warnings<I, S>(mut self, warnings: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all = self.warnings.take().unwrap_or_default();
        all.extend(warnings.into_iter().map(|w| w.as_ref().to_string()));
        let kept = limit_warnings(all);
        self.warnings = (!kept.is_empty()).then_some(kept);
        self
    }

    /// Adds an audit annotation. Keys that the API server would reject (not a qualified name
    /// part: `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters) are dropped.
    #[must_use]
    pub fn with_audit_annotation(mut self, key: &str, value: impl Into<String>) -> Self {
        if is_valid_annotation_key(key) {
            self.audit_annotations.insert(key.to_string(), value.into());
        }
        self
    }

    /// Wraps the response in a review of the request's version.
    pub fn into_review(self) -> AdmissionReview {
        let api_version = if self.api_version.is_empty() {
            META_API_VERSION_V1.to_string()
        } else {
            self.api_version.clone()
        };
        AdmissionReview {
            api_version,
            kind: META_KIND.to_string(),
            request: None,
            response: Some(self),
        }
    }
}

impl AdmissionReview {
    /// Reads a review request, naming the field at fault when it is not one.
    ///
    /// Accepts `admission.k8s.io/v1` and `v1beta1`; requires `kind: AdmissionReview` and a
    /// `request` with a non-empty `uid`.
    pub fn from_slice(body: &[u8]) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let mut review: AdmissionReview = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| Error::invalid("admission review", e))?;
        de.end()
            .map_err(|e| Error::invalid("admission review", e))?;
        if review.kind != META_KIND {
            return Err(Error::invalid(
                "admission review",
                format!("kind: expected {META_KIND}, got {:?}", review.kind),
            ));
        }
        if review.api_version != META_API_VERSION_V1
            && review.api_version != META_API_VERSION_V1BETA1
        {
            return Err(Error::invalid(
                "admission review",
                format!(
                    "apiVersion: expected {META_API_VERSION_V1} or {META_API_VERSION_V1BETA1}, got {:?}",
                    review.api_version
                ),
            ));
        }
        let api_version = review.api_version.clone();
        match review.request.as_mut() {
            None => Err(Error::invalid("admission review", "request: missing")),
            Some(req) if req.uid.is_empty() => {
                Err(Error::invalid("admission review", "request.uid: empty"))
            }
            Some(req) => {
                req.api_version = api_version;
                Ok(review)
            }
        }
    }

    /// Serialises the review as compact JSON.
    pub fn to_vec(&self) -> Vec<u8> {
        // A review is plain maps, strings and numbers: serialising it cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Whether the API server accepts `key` as an audit annotation key (the name part of a qualified
/// name; the server adds the `<webhook name>/` prefix itself).
pub fn is_valid_annotation_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Cuts `s` to at most `max` bytes at a character boundary, ending in `...` when cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let budget = max.saturating_sub(3);
    let cut = (0..=budget)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}...", &s[..cut])
}

fn limit_warnings(warnings: Vec<String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    let mut total = 0;
    let mut omitted = 0usize;
    for w in warnings {
        // The API server drops warnings with non-printable characters; keep the text instead.
        let clean: String = w
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let clean = shorten(clean.trim(), MAX_WARNING_LEN);
        if clean.is_empty() || kept.contains(&clean) {
            continue;
        }
        // Keep room for the "N more omitted" note.
        if total + clean.len() > MAX_WARNINGS_TOTAL - 64 {
            omitted += 1;
            continue;
        }
        total += clean.len();
        kept.push(clean);
    }
    if omitted > 0 {
        kept.push(format!("{omitted} more warning(s) omitted"));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_limited_deduplicated_and_cleaned() {
        let long = "x".repeat(1000);
        let resp = AdmissionResponse::invalid("r").with_warnings(
            ["a", "a", "line\nbreak", long.as_str()]
                .into_iter()
                .chain(std::iter::repeat_n(long.as_str(), 1)),
        );
        let w = resp.warnings.unwrap_or_default();
        assert_eq!(w[0], "a");
        assert_eq!(w[1], "line break");
        assert_eq!(w[2].len(), MAX_WARNING_LEN);
        assert!(w[2].ends_with("..."));
        assert_eq!(w.len(), 3, "duplicates dropped: {w:?}");

        let many: Vec<String> = (0..100)
            .map(|i| format!("{i}: {}", "y".repeat(200)))
            .collect();
        let w = AdmissionResponse::invalid("r")
            .with_warnings(many)
            .warnings
            .unwrap_or_default();
        let total: usize = w.iter().map(String::len).sum();
        assert!(total <= MAX_WARNINGS_TOTAL, "{total}");
        assert!(w.iter().all(|x| x.len() <= MAX_WARNING_LEN));
        assert!(
            w.last()
                .is_some_and(|l| l.ends_with("more warning(s) omitted"))
        );
    }

    #[test]
    fn annotation_keys_are_checked() {
        for ok in ["decision", "policy-id", "a.b_c", "x"] {
            assert!(is_valid_annotation_key(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a/b", "has space", &"k".repeat(64)] {
            assert!(!is_valid_annotation_key(bad), "{bad}");
        }
    }

    #[test]
    fn shorten_respects_char_boundaries() {
        let s = "é".repeat(10);
        let cut = shorten(&s, 8);
        assert!(cut.len() <= 8);
        assert!(cut.ends_with("..."));
    }
}
