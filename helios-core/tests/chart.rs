//! The Helm chart (`charts/helios`), with helm built from its Go module (`helm.sh/helm/v4`,
//! `scripts/install-tools.sh helm`; `HELIOS_HELM_BIN` to use another):
//!
//! - `helm lint --strict` and `helm template` pass for every value set below, and values that
//!   cannot work (no credentials, no certificate, an unknown failure policy) fail the render;
//! - every rendered manifest gets the checks `tests/deploy.rs` makes of `deploy/` (the webhook's
//!   admission contract, the configuration Helios accepts, the locked-down Deployment) and is
//!   created by a real API server, as `tests/kube_apiserver.rs` creates `deploy/`;
//! - deploy/ is the chart's default render: with the release `helios` in `helios-system`, every
//!   object of `deploy/` but the Namespace (`helm install --create-namespace`) equals the
//!   chart's, but for Helm's own labels and the config checksum annotation (and the pinning
//!   overlay equals `pinning.enabled=true`). deploy/ stays hand-written (kubectl apply -k, no
//!   helm needed); this test is what keeps the two from drifting.
//!
//! helm is never skipped: without it (and without Go to build it) these tests fail.
#![cfg(feature = "webhook")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use helios_core::admission::config::WebhookConfig;
use helios_core::admission::{FailurePolicy, Mode};
use helios_testkit::{ControlPlane, cert_manager_crd, helm_binary};
use serde::Deserialize;
use serde_json::{Value, json};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Credentials for the renders that let the chart create the Lacework Secret (deploy/'s values).
const CREDENTIALS: [&str; 3] = [
    "lacework.account=replace-me",
    "lacework.apiKey=replace-me",
    "lacework.apiSecret=replace-me",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs helm with `args` from the repository root: its stdout, or its stderr as the error.
fn helm(args: &[&str]) -> TestResult<String> {
    let out = Command::new(helm_binary()?)
        .args(args)
        .current_dir(root())
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("helios-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("helios-helm-config"),
        )
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "helm {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `--set` arguments for helm.
fn sets<'a>(values: &[&'a str]) -> Vec<&'a str> {
    values.iter().flat_map(|v| ["--set", *v]).collect()
}

/// The chart rendered as `release` in `namespace` with `values`, one JSON value per object.
fn render(release: &str, namespace: &str, values: &[&str]) -> TestResult<Vec<Value>> {
    let mut args = vec![
        "template",
        release,
        "charts/helios",
        "--namespace",
        namespace,
    ];
    args.extend(sets(values));
    let text = helm(&args)?;
    let mut docs = Vec::new();
    for de in yaml_serde::Deserializer::from_str(&text) {
        let doc = Value::deserialize(de)?;
        if !doc.is_null() {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// The value sets the tests render: name and `--set` values.
fn value_sets() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("default", CREDENTIALS.to_vec()),
        (
            "provided certificate, warn, fail open, existing Secret and ConfigMap",
            vec![
                "lacework.existingSecret=lw",
                "policy.existingConfigMap=my-policy",
                "certificate.certManager.enabled=false",
                "certificate.secretName=my-tls",
                "certificate.caBundle=Y2E=",
                "mode=warn",
                "failurePolicy=open",
                "replicaCount=3",
                "namespaces.exclude={kube-system,monitoring}",
                "audit.enabled=false",
            ],
        ),
        (
            "pinning, a cluster issuer, own rego, an image digest",
            [
                CREDENTIALS.as_slice(),
                &[
                    "pinning.enabled=true",
                    "certificate.certManager.issuerRef.kind=ClusterIssuer",
                    "certificate.certManager.issuerRef.name=ca",
                    "policy.rego.acme\\.rego=package helios",
                    "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                ],
            ]
            .concat(),
        ),
    ]
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"] == kind)
}

fn config_of(docs: &[Value]) -> TestResult<WebhookConfig> {
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"]["helios.yaml"].is_string())
        .ok_or("no helios.yaml ConfigMap")?;
    Ok(WebhookConfig::from_yaml(
        cm["data"]["helios.yaml"].as_str().unwrap_or_default(),
    )?)
}

#[test]
fn helm_lint_passes_for_every_value_set() -> TestResult {
    for (name, values) in value_sets() {
        let mut args = vec!["lint", "--strict", "charts/helios"];
        args.extend(sets(&values));
        helm(&args).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

#[test]
fn values_that_cannot_work_fail_the_render() -> TestResult {
    for (values, says) in [
        (vec![], "lacework.account"),
        (
            [
                CREDENTIALS.as_slice(),
                &["certificate.certManager.enabled=false"],
            ]
            .concat(),
            "certificate.secretName",
        ),
        (
            [
                CREDENTIALS.as_slice(),
                &[
                    "certificate.certManager.enabled=false",
                    "certificate.secretName=tls",
                ],
            ]
            .concat(),
            "certificate.caBundle",
        ),
        (
            [CREDENTIALS.as_slice(), &["failurePolicy=sometimes"]].concat(),
            "failurePolicy",
        ),
        ([CREDENTIALS.as_slice(), &["mode=block"]].concat(), "mode"),
    ] {
        let err = render("helios", "helios-system", &values)
            .err()
            .ok_or(format!("{values:?} rendered"))?;
        assert!(err.to_string().contains(says), "{values:?}: {err}");
    }
    Ok(())
}

/// What tests/deploy.rs checks of deploy/, for every value set.
#[test]
fn every_render_passes_the_deploy_checks() -> TestResult {
    for (name, values) in value_sets() {
        let docs = render("helios", "helios-system", &values)?;
        let has = |v: &str| values.contains(&v);
        for doc in &docs {
            assert!(doc["apiVersion"].is_string(), "{name}: {doc}");
            assert!(doc["metadata"]["name"].is_string(), "{name}: {doc}");
            assert_eq!(
                doc["metadata"]["labels"]["app.kubernetes.io/name"],
                "helios"
            );
        }
        let config = config_of(&docs)?;
        let vwc = find(&docs, "ValidatingWebhookConfiguration").ok_or("no vwc")?;
        let hook = &vwc["webhooks"][0];
        assert_eq!(hook["admissionReviewVersions"], json!(["v1"]));
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(hook["clientConfig"]["service"]["path"], "/validate");
        assert!(config.admission.deadline_ms < hook["timeoutSeconds"].as_u64().unwrap_or(0) * 1000);
        assert!(config.registry.timeout_ms < config.admission.deadline_ms);
        assert_eq!(config.listen.port(), 8443);
        // The webhook's failurePolicy and Helios's own go together.
        let (mode, failure, api) = if has("failurePolicy=open") {
            (Mode::Warn, FailurePolicy::Open, "Ignore")
        } else {
            (Mode::Enforce, FailurePolicy::Closed, "Fail")
        };
        assert_eq!(config.admission.mode, mode, "{name}");
        assert_eq!(config.admission.failure_policy, failure, "{name}");
        assert_eq!(hook["failurePolicy"], api, "{name}");
        // The release namespace is never sent to the webhook, by label selector and by config.
        let excluded: std::collections::BTreeSet<String> = serde_json::from_value(
            hook["namespaceSelector"]["matchExpressions"][1]["values"].clone(),
        )?;
        assert!(excluded.contains("helios-system"), "{name}");
        let configured: std::collections::BTreeSet<String> =
            serde_json::from_value(json!(config.admission.excluded_namespaces))?;
        assert_eq!(configured, excluded, "{name}");

        let d = find(&docs, "Deployment").ok_or("no deployment")?;
        let pod = &d["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        // After SIGTERM: the shutdown delay, then up to 10 s of drain (`helios webhook`'s grace),
        // both within the Pod's termination grace period.
        assert_eq!(config.server.shutdown_delay_ms, 5000, "{name}");
        let termination_ms = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(0) * 1000;
        assert!(
            config.server.shutdown_delay_ms + 10_000 <= termination_ms,
            "{name}"
        );
        assert!(pod["affinity"]["podAntiAffinity"].is_object());
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        let svc = find(&docs, "Service").ok_or("no service")?;
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], c["ports"][0]["name"]);
        assert_eq!(
            svc["spec"]["selector"],
            d["spec"]["selector"]["matchLabels"]
        );
        assert_eq!(
            d["spec"]["template"]["metadata"]["labels"],
            d["spec"]["selector"]["matchLabels"]
        );
        assert_eq!(
            hook["clientConfig"]["service"]["name"],
            svc["metadata"]["name"]
        );
        let volume = |n: &str| {
            pod["volumes"]
                .as_array()
                .and_then(|v| v.iter().find(|v| v["name"] == n))
                .cloned()
                .unwrap_or_default()
        };
        let secret = c["envFrom"][0]["secretRef"]["name"].clone();
        let certificate = find(&docs, "Certificate");
        if has("certificate.certManager.enabled=false") {
            assert!(certificate.is_none() && find(&docs, "Issuer").is_none());
            assert_eq!(hook["clientConfig"]["caBundle"], "Y2E=");
            assert!(vwc["metadata"]["annotations"].is_null());
            assert_eq!(volume("tls")["secret"]["secretName"], "my-tls");
            assert_eq!(secret, "lw");
            assert!(find(&docs, "Secret").is_none());
            assert_eq!(volume("policy")["configMap"]["name"], "my-policy");
            assert_eq!(d["spec"]["replicas"], 3);
            assert!(find(&docs, "CronJob").is_none());
        } else {
            let certificate = certificate.ok_or("no Certificate")?;
            assert_eq!(
                volume("tls")["secret"]["secretName"],
                certificate["spec"]["secretName"]
            );
            assert_eq!(
                vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
                format!(
                    "helios-system/{}",
                    certificate["metadata"]["name"].as_str().unwrap_or("?")
                )
            );
            let dns = certificate["spec"]["dnsNames"][0].clone();
            assert_eq!(
                dns,
                format!(
                    "{}.helios-system.svc",
                    svc["metadata"]["name"].as_str().unwrap_or("?")
                )
            );
            let lacework = find(&docs, "Secret").ok_or("no Secret")?;
            assert_eq!(secret, lacework["metadata"]["name"]);
            for k in ["LW_ACCOUNT", "LW_API_KEY", "LW_API_SECRET"] {
                assert!(lacework["stringData"][k].is_string(), "{k}");
            }
            let cron = find(&docs, "CronJob").ok_or("no audit CronJob")?;
            let audit = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
            assert_eq!(audit["containers"][0]["image"], c["image"]);
        }
        let mwc = find(&docs, "MutatingWebhookConfiguration");
        if has("pinning.enabled=true") {
            let pin = &mwc.ok_or("no MutatingWebhookConfiguration")?["webhooks"][0];
            assert_eq!(pin["clientConfig"]["service"]["path"], "/mutate");
            assert_eq!(pin["failurePolicy"], "Ignore");
            assert_eq!(pin["rules"], hook["rules"]);
            assert_eq!(pin["namespaceSelector"], hook["namespaceSelector"]);
            assert!(c["env"].to_string().contains("HELIOS_PIN_DIGESTS"));
            assert_eq!(
                c["image"],
                "ghcr.io/helios-policy/helios@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            );
            let policy = docs
                .iter()
                .find(|d| d["kind"] == "ConfigMap" && d["data"]["acme.rego"].is_string())
                .ok_or("acme.rego not in the policy ConfigMap")?;
            assert_eq!(
                volume("policy")["configMap"]["name"],
                policy["metadata"]["name"]
            );
            let issuer = &certificate.ok_or("no Certificate")?["spec"]["issuerRef"];
            assert_eq!(*issuer, json!({"kind": "ClusterIssuer", "name": "ca"}));
            assert!(find(&docs, "Issuer").is_none());
        } else {
            assert!(mwc.is_none(), "{name}");
            assert!(!c["env"].to_string().contains("HELIOS_PIN_DIGESTS"));
        }
    }
    Ok(())
}

/// The labels and annotations Helm adds to deploy/'s: removed before comparing.
const HELM_ONLY: [&str; 5] = [
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
    "checksum/config",
];

/// An object as compared with deploy/: without Helm's labels (wherever they are: metadata,
/// selectors, pod templates), without maps left empty by that, and with each ConfigMap entry
/// parsed (so comments and YAML layout do not count).
fn normalized(value: &Value) -> TestResult<Value> {
    Ok(match value {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                if HELM_ONLY.contains(&k.as_str()) {
                    continue;
                }
                let v = normalized(v)?;
                if matches!(&v, Value::Object(m) if m.is_empty())
                    && matches!(k.as_str(), "annotations" | "labels")
                {
                    continue;
                }
                out.insert(k.clone(), v);
            }
            if map.get("kind") == Some(&json!("ConfigMap"))
                && let Some(Value::Object(data)) = out.get_mut("data")
            {
                for v in data.values_mut() {
                    *v = yaml_serde::from_str(v.as_str().unwrap_or_default())?;
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(normalized).collect::<TestResult<_>>()?)
        }
        other => other.clone(),
    })
}

/// The YAML documents of files, as JSON values.
fn manifests(files: &[PathBuf]) -> TestResult<Vec<Value>> {
    let mut docs = Vec::new();
    for file in files {
        for de in yaml_serde::Deserializer::from_str(&std::fs::read_to_string(file)?) {
            let doc = Value::deserialize(de).map_err(|e| format!("{}: {e}", file.display()))?;
            if !doc.is_null() {
                docs.push(doc);
            }
        }
    }
    Ok(docs)
}

fn by_kind_and_name(docs: Vec<Value>) -> TestResult<std::collections::BTreeMap<String, Value>> {
    docs.iter()
        .map(|d| {
            Ok((
                format!("{} {}", d["kind"], d["metadata"]["name"]),
                normalized(d)?,
            ))
        })
        .collect()
}

#[test]
fn the_default_render_is_deploy() -> TestResult {
    let dir = root().join("deploy");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml")
                && !p.ends_with("kustomization.yaml")
                && !p.ends_with("namespace.yaml")
        })
        .collect();
    files.sort();
    let deploy = by_kind_and_name(manifests(&files)?)?;
    let chart = by_kind_and_name(render("helios", "helios-system", &CREDENTIALS)?)?;
    assert_eq!(
        deploy.keys().collect::<Vec<_>>(),
        chart.keys().collect::<Vec<_>>(),
        "deploy/ and the chart have different objects"
    );
    for (key, object) in &deploy {
        assert_eq!(Some(object), chart.get(key), "{key} differs from deploy/");
    }

    // The pinning overlay: its webhook, and the base Deployment with its patch applied.
    let pinned = by_kind_and_name(render(
        "helios",
        "helios-system",
        &[CREDENTIALS.as_slice(), &["pinning.enabled=true"]].concat(),
    )?)?;
    let overlay = by_kind_and_name(manifests(&[
        dir.join("pinning/mutatingwebhookconfiguration.yaml")
    ])?)?;
    for (key, object) in &overlay {
        assert_eq!(
            Some(object),
            pinned.get(key),
            "{key} differs from deploy/pinning/"
        );
    }
    let patch = &manifests(&[dir.join("pinning/pin-digests.yaml")])?[0];
    let mut deployment = deploy
        .get("\"Deployment\" \"helios-webhook\"")
        .cloned()
        .ok_or("no Deployment")?;
    let env = &mut deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    let added = patch["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    env.as_array_mut().ok_or("no env")?.extend(added);
    assert_eq!(
        Some(&deployment),
        pinned.get("\"Deployment\" \"helios-webhook\""),
        "the pinned Deployment differs from deploy/ with deploy/pinning/pin-digests.yaml"
    );
    Ok(())
}

/// Every render of every value set is created by a real API server (its own release and
/// namespace each, so the cluster-wide objects do not collide), webhook configurations last.
#[tokio::test(flavor = "multi_thread")]
async fn every_render_is_accepted_by_a_real_api_server() -> TestResult {
    let plane = ControlPlane::start()?;
    let api = plane.api().await?;
    for (kind, plural) in [("Issuer", "issuers"), ("Certificate", "certificates")] {
        api.create_ok(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &cert_manager_crd(kind, plural),
        )
        .await?;
    }
    let mut objects = Vec::new();
    for (i, (name, values)) in value_sets().into_iter().enumerate() {
        let (release, namespace) = (format!("helios{i}"), format!("helios-system-{i}"));
        api.namespace(&namespace).await?;
        for object in render(&release, &namespace, &values)? {
            objects.push((name, object));
        }
    }
    objects.sort_by_key(|(_, o)| {
        o["kind"]
            .as_str()
            .is_some_and(|k| k.ends_with("WebhookConfiguration"))
    });
    assert!(objects.len() >= 30, "{} objects", objects.len());
    for (name, object) in &objects {
        // The CRDs are served a moment after they are created.
        let started = Instant::now();
        let collection = loop {
            match api.collection_of(object).await {
                Ok(path) => break path,
                Err(e) if started.elapsed() > Duration::from_secs(30) => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let created = api.create(&collection, object).await?;
        assert_eq!(
            created.status, 201,
            "{name}: {} {}: {}",
            object["kind"], object["metadata"]["name"], created.body
        );
    }
    Ok(())
}
