//! The Kubernetes manifests in `deploy/`: every YAML document parses, the webhook is registered
//! the way docs/admission.md says, and the shipped configuration is one Helios accepts.
#![cfg(feature = "webhook")]

use std::path::Path;

use helios_core::admission::config::WebhookConfig;
use helios_core::admission::{FailurePolicy, Mode};
use serde::Deserialize;
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn documents() -> Result<Vec<(String, Value)>, Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for de in yaml_serde::Deserializer::from_str(&text) {
            let doc = Value::deserialize(de).map_err(|e| format!("{}: {e}", file.display()))?;
            if doc.is_null() {
                continue;
            }
            docs.push((file.display().to_string(), doc));
        }
    }
    Ok(docs)
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

#[test]
fn every_document_parses_and_names_its_kind() -> TestResult {
    let docs = documents()?;
    assert!(docs.len() >= 12, "{} documents", docs.len());
    for (file, doc) in &docs {
        assert!(doc["apiVersion"].is_string(), "{file}: apiVersion");
        assert!(doc["kind"].is_string(), "{file}: kind");
        if doc["kind"] != "Kustomization" {
            assert!(doc["metadata"]["name"].is_string(), "{file}: metadata.name");
        }
    }
    // Kustomize lists every manifest file.
    let kustomization = docs
        .iter()
        .find(|(_, d)| d["kind"] == "Kustomization")
        .map(|(_, d)| d.clone())
        .ok_or("no kustomization")?;
    let listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (file, _) in &docs {
        let base = Path::new(file)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(
            base == "kustomization.yaml" || listed.contains(&base),
            "{base} not in kustomization"
        );
    }
    Ok(())
}

#[test]
fn webhook_configuration_matches_the_admission_contract() -> TestResult {
    let docs = documents()?;
    let vwc = find(&docs, "ValidatingWebhookConfiguration", "helios").ok_or("no webhook config")?;
    assert_eq!(vwc["apiVersion"], "admissionregistration.k8s.io/v1");
    let hook = &vwc["webhooks"][0];
    assert_eq!(hook["admissionReviewVersions"], serde_json::json!(["v1"]));
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["timeoutSeconds"], 5);
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["clientConfig"]["service"]["path"], "/validate");
    let selector = hook["namespaceSelector"]["matchExpressions"].to_string();
    assert!(selector.contains("helios.dev/admission") && selector.contains("NotIn"));
    let resources = hook["rules"].to_string();
    for r in [
        "pods",
        "pods/ephemeralcontainers",
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
        "replicationcontrollers",
        "podtemplates",
    ] {
        assert!(
            resources.contains(&format!("\"{r}\"")),
            "{r} not registered"
        );
    }
    // The webhook's timeout is above Helios's own deadline, so Helios always answers first.
    let cm = find(&docs, "ConfigMap", "helios-config").ok_or("no config map")?;
    let config = WebhookConfig::from_yaml(cm["data"]["helios.yaml"].as_str().unwrap_or_default())?;
    assert!(config.admission.deadline_ms < 5000);
    // failurePolicy Fail goes with enforce + closed.
    assert_eq!(config.admission.mode, Mode::Enforce);
    assert_eq!(config.admission.failure_policy, FailurePolicy::Closed);
    assert_eq!(config.listen.port(), 8443);
    Ok(())
}

#[test]
fn deployment_is_highly_available_and_locked_down() -> TestResult {
    let docs = documents()?;
    let d = find(&docs, "Deployment", "helios-webhook").ok_or("no deployment")?;
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert!(pod["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    // After SIGTERM: the 5 s shutdown delay, then up to 10 s of drain (`helios webhook`'s
    // grace), both within the Pod's termination grace period.
    let cm = find(&docs, "ConfigMap", "helios-config").ok_or("no config")?;
    let config = WebhookConfig::from_yaml(cm["data"]["helios.yaml"].as_str().unwrap_or_default())?;
    assert_eq!(config.server.shutdown_delay_ms, 5000);
    let termination_ms = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(0) * 1000;
    assert!(config.server.shutdown_delay_ms + 10_000 <= termination_ms);
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "helios-lacework");
    let pdb = find(&docs, "PodDisruptionBudget", "helios-webhook").ok_or("no PDB")?;
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    // The Service targets the container's port by name.
    let svc = find(&docs, "Service", "helios-webhook").ok_or("no service")?;
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], c["ports"][0]["name"]);
    let secret = find(&docs, "Secret", "helios-lacework").ok_or("no secret")?;
    for k in ["LW_ACCOUNT", "LW_API_KEY", "LW_API_SECRET"] {
        assert!(secret["stringData"][k].is_string(), "{k}");
    }
    Ok(())
}

/// The documents of `deploy/pinning/` (the opt-in digest-pinning overlay).
fn pinning_documents() -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/pinning");
    let mut docs = Vec::new();
    for name in [
        "kustomization.yaml",
        "mutatingwebhookconfiguration.yaml",
        "pin-digests.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(name))?;
        for de in yaml_serde::Deserializer::from_str(&text) {
            docs.push(Value::deserialize(de).map_err(|e| format!("{name}: {e}"))?);
        }
    }
    Ok(docs)
}

#[test]
fn pinning_overlay_adds_a_reinvoked_mutating_webhook_matching_the_validating_one() -> TestResult {
    let docs = documents()?;
    let pinning = pinning_documents()?;
    let vwc = find(&docs, "ValidatingWebhookConfiguration", "helios").ok_or("no vwc")?;
    let mwc = pinning
        .iter()
        .find(|d| d["kind"] == "MutatingWebhookConfiguration")
        .ok_or("no MutatingWebhookConfiguration")?;
    let hook = &mwc["webhooks"][0];
    assert_eq!(hook["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
    assert_eq!(hook["sideEffects"], "None");
    // Pinning is not the gate: the validating webhook (Fail) still decides when Helios is down.
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(vwc["webhooks"][0]["failurePolicy"], "Fail");
    // Same objects, same namespaces as the validating webhook.
    assert_eq!(hook["rules"], vwc["webhooks"][0]["rules"]);
    assert_eq!(
        hook["namespaceSelector"],
        vwc["webhooks"][0]["namespaceSelector"]
    );
    assert_eq!(
        hook["clientConfig"]["service"]["name"],
        vwc["webhooks"][0]["clientConfig"]["service"]["name"]
    );
    // The overlay builds on the base and turns pinning on for the webhook container.
    let kustomization = pinning
        .iter()
        .find(|d| d["kind"] == "Kustomization")
        .ok_or("no kustomization")?;
    assert_eq!(kustomization["resources"][0], "..");
    let patch = pinning
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .ok_or("no deployment patch")?;
    let base = find(&docs, "Deployment", "helios-webhook").ok_or("no deployment")?;
    let container = &patch["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["name"],
        base["spec"]["template"]["spec"]["containers"][0]["name"]
    );
    assert_eq!(container["env"][0]["name"], "HELIOS_PIN_DIGESTS");
    assert_eq!(container["env"][0]["value"], "true");

    // The base config resolves tags with the mounted dockerconfigjson Secret, within the
    // review deadline; pinning is off until the overlay turns it on.
    let cm = find(&docs, "ConfigMap", "helios-config").ok_or("no config map")?;
    let config = WebhookConfig::from_yaml(cm["data"]["helios.yaml"].as_str().unwrap_or_default())?;
    assert!(config.registry.resolve);
    assert!(!config.registry.pin_digests);
    assert!(config.registry.timeout_ms < config.admission.deadline_ms);
    let dir = config.registry.docker_config.ok_or("no docker_config")?;
    let spec = &base["spec"]["template"]["spec"];
    let mount = spec["containers"][0]["volumeMounts"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["mountPath"] == dir.to_string_lossy().as_ref())
        })
        .ok_or("docker_config is not mounted")?;
    let volume = spec["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == mount["name"]))
        .ok_or("no registry volume")?;
    assert_eq!(volume["secret"]["optional"], true);
    Ok(())
}

/// The audit's ClusterRole reads every workload kind admission checks and never writes one;
/// the only thing it writes is PolicyReports. The CronJob runs under that role.
#[cfg(feature = "audit")]
#[test]
fn audit_rbac_is_read_only_for_workloads() -> TestResult {
    let docs = documents()?;
    let role = find(&docs, "ClusterRole", "helios-audit").ok_or("no audit ClusterRole")?;
    let rules = role["rules"].as_array().ok_or("no rules")?;
    let mut readable = Vec::new();
    for rule in rules {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let resources: Vec<&str> = rule["resources"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if rule["apiGroups"][0] == "wgpolicyk8s.io" {
            assert_eq!(resources, ["policyreports"]);
            continue;
        }
        assert_eq!(verbs, ["get", "list", "watch"], "{rule}");
        readable.extend(resources);
    }
    for kind in helios_core::audit::AUDITED_KINDS {
        assert!(
            readable.contains(&kind.plural),
            "{} not readable",
            kind.plural
        );
    }
    let binding = find(&docs, "ClusterRoleBinding", "helios-audit").ok_or("no binding")?;
    assert_eq!(binding["subjects"][0]["name"], "helios-audit");
    let cron = find(&docs, "CronJob", "helios-audit").ok_or("no audit CronJob")?;
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "helios-audit");
    assert_eq!(pod["containers"][0]["args"][0], "audit");
    Ok(())
}

/// `deploy/redis/` (the scale-out overlay): a Redis Deployment and Service, and a configuration
/// that is the base one plus `cache.redis` pointing at that Service.
#[test]
fn redis_overlay_is_the_base_configuration_plus_a_shared_cache() -> TestResult {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/redis");
    let mut overlay = Vec::new();
    for name in ["kustomization.yaml", "redis.yaml", "config-redis.yaml"] {
        let text = std::fs::read_to_string(dir.join(name))?;
        for de in yaml_serde::Deserializer::from_str(&text) {
            overlay.push(Value::deserialize(de).map_err(|e| format!("{name}: {e}"))?);
        }
    }
    let docs = documents()?;
    let base = find(&docs, "ConfigMap", "helios-config").ok_or("no base config")?;
    let base = WebhookConfig::from_yaml(base["data"]["helios.yaml"].as_str().unwrap_or_default())?;
    let patched = overlay
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "helios-config")
        .ok_or("no ConfigMap patch")?;
    let mut config =
        WebhookConfig::from_yaml(patched["data"]["helios.yaml"].as_str().unwrap_or_default())?;
    let url = config.cache.redis.take().ok_or("no cache.redis")?;
    assert_eq!(url, "redis://helios-redis.helios-system.svc:6379");
    config.cache = Default::default();
    assert_eq!(
        config, base,
        "the overlay's helios.yaml drifted from deploy/configmap.yaml"
    );

    let service = overlay
        .iter()
        .find(|d| d["kind"] == "Service")
        .ok_or("no Service")?;
    assert_eq!(service["metadata"]["name"], "helios-redis");
    assert_eq!(service["metadata"]["namespace"], "helios-system");
    let deployment = overlay
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .ok_or("no Deployment")?;
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("allkeys-lru") && args.contains("maxmemory"),
        "{args}"
    );
    Ok(())
}
