//! Target selection: which containers of which object a review checks — a pure function of the
//! request and the settings (exclusions, operations, subresources, controller-made objects,
//! unchanged images of an update, the container limit).

use std::collections::HashSet;

use crate::admission::images::{self, ContainerImage, ObjectMeta};
use crate::admission::review::{AdmissionRequest, Operation};
use crate::admission::settings::ControllerConfig;
use crate::policy::ContainerType;

/// What a review checks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Targets {
    /// Nothing, for this reason (excluded namespace, operation, subresource, no object, no new
    /// images).
    Skip(String),
    /// A kind Helios cannot read images from, as `group/kind`.
    UnknownKind(String),
    /// Containers to check.
    Check {
        /// The object's metadata (name, labels, annotations for the policy input).
        meta: ObjectMeta,
        /// The containers to check, in spec order, at most `limits.max_containers`.
        check: Vec<ContainerImage>,
        /// The containers past `limits.max_containers`, left unchecked.
        over_limit: Vec<ContainerImage>,
    },
}

/// The containers `req` asks to check under `cfg`: new or changed containers of a create or
/// update of a known kind, outside excluded namespaces; only ephemeral containers for the
/// `ephemeralcontainers` subresource and for objects a controller made from a checked template.
pub(crate) fn targets(req: &AdmissionRequest, cfg: &ControllerConfig) -> Targets {
    if let Some(ns) = req
        .namespace
        .as_deref()
        .filter(|ns| cfg.excluded_namespaces.contains(*ns))
    {
        return Targets::Skip(format!("namespace {ns} is excluded"));
    }
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Targets::Skip(format!(
            "operation {} is not inspected",
            req.operation.as_str()
        ));
    }
    let ephemeral_only = match req.sub_resource.as_deref() {
        None | Some("") => false,
        Some("ephemeralcontainers") => true,
        Some(other) => return Targets::Skip(format!("subresource {other} is not inspected")),
    };
    let Some(object) = req.object.as_ref() else {
        return Targets::Skip("the request has no object".into());
    };
    let Some(mut check) = images::extract(&req.kind, object) else {
        return Targets::UnknownKind(format!("{}/{}", req.kind.group, req.kind.kind));
    };
    if ephemeral_only {
        check.retain(|t| t.container.kind == ContainerType::Ephemeral);
    }
    let meta = ObjectMeta::of(object);
    if cfg.skip_controlled_objects
        && meta.controller_kinds.iter().any(|k| is_workload_kind(k))
        && cfg.is_controller_user(req.user_info.username.as_deref())
    {
        check.retain(|t| t.container.kind == ContainerType::Ephemeral);
    }
    if req.operation == Operation::Update {
        // A container is new or changed unless the stored object has the same container
        // (list and name) with the same image: a scale or a label change checks nothing,
        // and an ephemeral container reusing an image of the pod is still checked.
        let old: Vec<ContainerImage> = req
            .old_object
            .as_ref()
            .and_then(|o| images::extract(&req.kind, o))
            .unwrap_or_default();
        // A set, not `Vec::contains`: an update listing tens of thousands of containers
        // in both objects must not cost their square.
        let old: HashSet<_> = old.iter().map(container_key).collect();
        check.retain(|t| !old.contains(&container_key(t)));
    }
    if check.is_empty() {
        return Targets::Skip("no new images to check".into());
    }
    let over_limit = check.split_off(check.len().min(cfg.limits.max_containers));
    Targets::Check {
        meta,
        check,
        over_limit,
    }
}

/// What identifies a container across the old and new object of an update.
fn container_key(t: &ContainerImage) -> (&str, &'static str, &str) {
    let kind = match t.container.kind {
        ContainerType::Container => "container",
        ContainerType::Init => "init",
        ContainerType::Ephemeral => "ephemeral",
    };
    (t.container.name.as_str(), kind, t.image.as_str())
}

/// Kinds whose children (Pods, ReplicaSets, Jobs) are made from a template Helios already
/// checked.
pub(crate) fn is_workload_kind(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment"
            | "ReplicaSet"
            | "ReplicationController"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "CronJob"
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::policy::Container;

    fn request(kind: &str, group: &str, object: Value) -> AdmissionRequest {
        request_with(kind, group, "CREATE", object, Value::Null, None)
    }

    fn request_with(
        kind: &str,
        group: &str,
        operation: &str,
        object: Value,
        old_object: Value,
        sub_resource: Option<&str>,
    ) -> AdmissionRequest {
        let value = json!({
            "uid": "u-1",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": "things"},
            "subResource": sub_resource,
            "name": "web",
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": object,
            "oldObject": old_object,
        });
        serde_json::from_value(value).unwrap_or_else(|e| panic!("test request: {e}"))
    }

    fn pod_spec() -> Value {
        json!({
            "initContainers": [{"name": "init", "image": "busybox:1"}],
            "containers": [
                {"name": "app", "image": "nginx:1.27"},
                {"name": "side", "image": "envoy:1"}
            ],
            "ephemeralContainers": [{"name": "debug", "image": "debug:1"}]
        })
    }

    fn image(name: &str, kind: ContainerType, image: &str) -> ContainerImage {
        ContainerImage {
            container: Container {
                name: name.into(),
                kind,
            },
            image: image.into(),
        }
    }

    fn checked(t: Targets) -> Vec<ContainerImage> {
        match t {
            Targets::Check { check, .. } => check,
            other => panic!("expected containers to check, got {other:?}"),
        }
    }

    #[test]
    fn a_pod_checks_init_regular_and_ephemeral_containers() {
        let req = request(
            "Pod",
            "",
            json!({"metadata": {"name": "web"}, "spec": pod_spec()}),
        );
        assert_eq!(
            checked(targets(&req, &ControllerConfig::default())),
            vec![
                image("init", ContainerType::Init, "busybox:1"),
                image("app", ContainerType::Container, "nginx:1.27"),
                image("side", ContainerType::Container, "envoy:1"),
                image("debug", ContainerType::Ephemeral, "debug:1"),
            ]
        );
    }

    #[test]
    fn deployments_and_cronjobs_are_read_through_their_templates() {
        let deployment = request(
            "Deployment",
            "apps",
            json!({"spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec()}}}),
        );
        let Targets::Check { meta, check, .. } = targets(&deployment, &ControllerConfig::default())
        else {
            panic!("a deployment is checked");
        };
        assert_eq!(check.len(), 4);
        assert_eq!(meta.name, None);

        let cron = request(
            "CronJob",
            "batch",
            json!({"metadata": {"name": "nightly", "labels": {"team": "a"}},
                   "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                       "containers": [{"name": "job", "image": "reports:2"}]}}}}}}),
        );
        let Targets::Check { meta, check, .. } = targets(&cron, &ControllerConfig::default())
        else {
            panic!("a cronjob is checked");
        };
        assert_eq!(
            check,
            vec![image("job", ContainerType::Container, "reports:2")]
        );
        assert_eq!(meta.name.as_deref(), Some("nightly"));
        assert_eq!(meta.labels.get("team").map(String::as_str), Some("a"));
    }

    #[test]
    fn the_ephemeralcontainers_subresource_checks_only_ephemeral_containers() {
        let req = request_with(
            "Pod",
            "",
            "UPDATE",
            json!({"spec": pod_spec()}),
            Value::Null,
            Some("ephemeralcontainers"),
        );
        assert_eq!(
            checked(targets(&req, &ControllerConfig::default())),
            vec![image("debug", ContainerType::Ephemeral, "debug:1")]
        );
        let status = request_with(
            "Pod",
            "",
            "UPDATE",
            json!({"spec": pod_spec()}),
            Value::Null,
            Some("status"),
        );
        assert_eq!(
            targets(&status, &ControllerConfig::default()),
            Targets::Skip("subresource status is not inspected".into())
        );
    }

    #[test]
    fn an_update_checks_only_new_or_changed_containers() {
        let old = json!({"spec": pod_spec()});
        let mut new = old.clone();
        new["spec"]["containers"][1]["image"] = json!("envoy:2");
        let req = request_with("Pod", "", "UPDATE", new, old.clone(), None);
        assert_eq!(
            checked(targets(&req, &ControllerConfig::default())),
            vec![image("side", ContainerType::Container, "envoy:2")]
        );
        let unchanged = request_with("Pod", "", "UPDATE", old.clone(), old, None);
        assert_eq!(
            targets(&unchanged, &ControllerConfig::default()),
            Targets::Skip("no new images to check".into())
        );
    }

    #[test]
    fn excluded_namespaces_and_other_operations_are_skipped() {
        let mut req = request("Pod", "", json!({"spec": pod_spec()}));
        req.namespace = Some("kube-system".into());
        assert_eq!(
            targets(&req, &ControllerConfig::default()),
            Targets::Skip("namespace kube-system is excluded".into())
        );
        let delete = request_with("Pod", "", "DELETE", Value::Null, Value::Null, None);
        assert_eq!(
            targets(&delete, &ControllerConfig::default()),
            Targets::Skip("operation DELETE is not inspected".into())
        );
        let no_object = request("Pod", "", Value::Null);
        assert_eq!(
            targets(&no_object, &ControllerConfig::default()),
            Targets::Skip("the request has no object".into())
        );
    }

    #[test]
    fn kinds_it_does_not_know_are_named() {
        let req = request("Widget", "example.com", json!({"spec": pod_spec()}));
        assert_eq!(
            targets(&req, &ControllerConfig::default()),
            Targets::UnknownKind("example.com/Widget".into())
        );
    }

    #[test]
    fn pods_a_controller_made_keep_only_ephemeral_containers() {
        let object = json!({
            "metadata": {"ownerReferences": [{"kind": "ReplicaSet", "controller": true}]},
            "spec": pod_spec()
        });
        let mut req = request("Pod", "", object);
        req.user_info.username =
            Some("system:serviceaccount:kube-system:replicaset-controller".into());
        assert_eq!(
            checked(targets(&req, &ControllerConfig::default())),
            vec![image("debug", ContainerType::Ephemeral, "debug:1")]
        );
        // Anyone else writing an owner reference is checked in full.
        req.user_info.username = Some("mallory".into());
        assert_eq!(
            checked(targets(&req, &ControllerConfig::default())).len(),
            4
        );
    }

    #[test]
    fn containers_past_the_limit_are_set_apart() {
        let req = request("Pod", "", json!({"spec": pod_spec()}));
        let mut cfg = ControllerConfig::default();
        cfg.limits.max_containers = 3;
        let Targets::Check {
            check, over_limit, ..
        } = targets(&req, &cfg)
        else {
            panic!("the pod is checked");
        };
        assert_eq!(check.len(), 3);
        assert_eq!(
            over_limit,
            vec![image("debug", ContainerType::Ephemeral, "debug:1")]
        );
    }
}
