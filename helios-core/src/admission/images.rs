//! The images of a workload: where each kind keeps its pod spec, and the containers in it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::admission::review::GroupVersionKind;
use crate::policy::{Container, ContainerType};

/// One container of a workload and the image it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// The container's name and list.
    pub container: Container,
    /// The image exactly as written in the spec (not normalised).
    pub image: String,
}

/// The kinds Helios inspects, by API group and kind. `extensions` is accepted for the
/// workloads that lived there before `apps`.
pub fn is_inspected_kind(group: &str, kind: &str) -> bool {
    pod_spec_path(group, kind).is_some()
}

/// Where the pod spec of an object of this kind is, as a path of keys.
fn pod_spec_path(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    const TEMPLATE: &[&str] = &["spec", "template", "spec"];
    Some(match (group, kind) {
        ("", "Pod") => &["spec"],
        ("", "PodTemplate") => &["template", "spec"],
        ("", "ReplicationController") => TEMPLATE,
        ("apps" | "extensions", "Deployment" | "ReplicaSet" | "DaemonSet") => TEMPLATE,
        ("apps", "StatefulSet") => TEMPLATE,
        ("batch", "Job") => TEMPLATE,
        ("batch", "CronJob") => &["spec", "jobTemplate", "spec", "template", "spec"],
        // Before Kubernetes 1.25 the ephemeralcontainers subresource took this kind, with the
        // list at the top level.
        ("", "EphemeralContainers") => &[],
        _ => return None,
    })
}

/// The containers and images of `object`, of kind `gvk`; `None` when Helios does not know
/// where that kind keeps its pods. A missing or malformed spec yields no images: the API
/// server validates the object itself.
pub fn extract(gvk: &GroupVersionKind, object: &Value) -> Option<Vec<ContainerImage>> {
    extract_with_paths(gvk, object).map(|v| v.into_iter().map(|(_, c)| c).collect())
}

/// As [`extract`], each image with the JSON Pointer (RFC 6901) of its `image` field in
/// `object`, e.g. `/spec/template/spec/containers/0/image`: where a pinning patch writes.
pub fn extract_with_paths(
    gvk: &GroupVersionKind,
    object: &Value,
) -> Option<Vec<(String, ContainerImage)>> {
    let path = pod_spec_path(&gvk.group, &gvk.kind)?;
    let spec = path.iter().try_fold(object, |v, key| v.get(key));
    let mut images = Vec::new();
    let Some(spec) = spec else {
        return Some(images);
    };
    // The keys of pod spec paths are plain words: no `~` or `/` to escape.
    let prefix: String = path.iter().map(|k| format!("/{k}")).collect();
    for (list, kind) in [
        ("initContainers", ContainerType::Init),
        ("containers", ContainerType::Container),
        ("ephemeralContainers", ContainerType::Ephemeral),
    ] {
        let Some(containers) = spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in containers.iter().enumerate() {
            let Some(image) = c.get("image").and_then(Value::as_str) else {
                continue;
            };
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("{list}[{i}]"), str::to_string);
            images.push((
                format!("{prefix}/{list}/{i}/image"),
                ContainerImage {
                    container: Container { name, kind },
                    image: image.to_string(),
                },
            ));
        }
    }
    Some(images)
}

/// Object metadata Helios reads: name, labels, annotations, owners.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectMeta {
    /// `metadata.name` (empty with `generateName`).
    pub name: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`, without `kubectl.kubernetes.io/last-applied-configuration`
    /// (a copy of the whole object, useless to a policy and large).
    pub annotations: BTreeMap<String, String>,
    /// Kinds of `ownerReferences` entries with `controller: true`.
    pub controller_kinds: Vec<String>,
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

impl ObjectMeta {
    /// Reads the metadata of `object`; missing parts are empty.
    pub fn of(object: &Value) -> Self {
        let meta = object.get("metadata");
        let strings = |key: &str| -> BTreeMap<String, String> {
            meta.and_then(|m| m.get(key))
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut annotations = strings("annotations");
        annotations.remove(LAST_APPLIED);
        let controller_kinds = meta
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .map(|owners| {
                owners
                    .iter()
                    .filter(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
                    .filter_map(|o| o.get("kind").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        ObjectMeta {
            name: meta
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_string),
            labels: strings("labels"),
            annotations,
            controller_kinds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gvk(group: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
        }
    }

    #[test]
    fn cronjob_spec_is_found() {
        let obj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "busybox"}]}}}}}});
        let images = extract(&gvk("batch", "CronJob"), &obj).unwrap_or_default();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].image, "busybox");
        assert_eq!(images[0].container.kind, ContainerType::Container);
    }

    #[test]
    fn unknown_kind_is_none_and_missing_spec_is_empty() {
        assert!(extract(&gvk("example.com", "Widget"), &json!({})).is_none());
        assert!(extract(&gvk("apps", "Deployment"), &json!({})).is_some_and(|v| v.is_empty()));
        // A CRD that reuses a built-in kind name in another group is not inspected.
        assert!(extract(&gvk("example.com", "Deployment"), &json!({})).is_none());
    }

    #[test]
    fn container_without_name_is_named_by_position() {
        let obj = json!({"spec": {"containers": [{"image": "a"}]}});
        let images = extract(&gvk("", "Pod"), &obj).unwrap_or_default();
        assert_eq!(images[0].container.name, "containers[0]");
    }

    #[test]
    fn metadata_drops_last_applied_and_reads_controller_owner() {
        let obj = json!({"metadata": {"name": "p", "annotations": {LAST_APPLIED: "{}", "a": "b"},
            "ownerReferences": [{"kind": "ReplicaSet", "controller": true}, {"kind": "Foo"}]}});
        let meta = ObjectMeta::of(&obj);
        assert_eq!(meta.annotations.len(), 1);
        assert_eq!(meta.controller_kinds, vec!["ReplicaSet".to_string()]);
    }
}
