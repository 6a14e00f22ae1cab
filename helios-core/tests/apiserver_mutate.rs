//! Digest pinning driven by the Kubernetes API server's own mutating-webhook dispatcher
//! (`k8s.io/apiserver`, through `tests/k8s-webhook-harness`) with the shipped
//! `deploy/pinning/mutatingwebhookconfiguration.yaml`: for every inspected kind the dispatcher
//! applies Helios's JSONPatch to the object exactly as kube-apiserver would, and the patched
//! object runs `repo:tag@digest`, the digest a real registry (built from its Go module, images
//! pushed by crane) resolves the tag to. A pinned object gets no patch; a tag moved at the
//! registry is followed; an unresolvable tag leaves the object as it was.
#![cfg(feature = "webhook")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use helios_core::admission::{AdmissionController, ControllerConfig};
use helios_core::policy::EmbeddedEvaluator;
use helios_core::registry::{RegistryConfig, Resolver};
use helios_core::scan::DirSource;
use helios_testkit::Registry;
use serde_json::Value;
use support::harness::k8s_webhook_harness;
use support::webhook::{TlsWebhook, serve_tls};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Webhook {
    url: String,
    ca: PathBuf,
    _served: TlsWebhook,
}

async fn start(registry: &Registry, ttl: u64) -> Result<Webhook, Box<dyn std::error::Error>> {
    let resolver = Resolver::new(RegistryConfig {
        plain_http: [registry.host()].into(),
        docker_config: Some(registry.docker_config().to_path_buf()),
        cache_ttl_secs: ttl,
        pin_digests: true,
        ..RegistryConfig::default()
    })?;
    let controller = AdmissionController::new(
        Arc::new(DirSource::open(
            root().join("tests/fixtures/admission-scans"),
        )?),
        Arc::new(EmbeddedEvaluator::default_policy()?),
        ControllerConfig::default(),
    )
    .with_resolver(Some(resolver))
    .with_pinning(true);
    // The dispatcher verifies the server as <service>.<namespace>.svc.
    let served = serve_tls(
        controller,
        "helios-webhook.helios-system.svc",
        Duration::from_secs(10),
    )
    .await?;
    Ok(Webhook {
        url: format!("https://{}", served.addr),
        ca: served.cert_file.clone(),
        _served: served,
    })
}

/// Points every container image of `v` (any list of any kind) at `image`.
fn retarget(v: &mut Value, image: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if matches!(
                    k.as_str(),
                    "containers" | "initContainers" | "ephemeralContainers"
                ) && let Value::Array(list) = child
                {
                    for c in list.iter_mut() {
                        if let Some(slot) = c.get_mut("image") {
                            *slot = Value::String(image.to_string());
                        }
                    }
                }
                retarget(child, image);
            }
        }
        Value::Array(list) => list.iter_mut().for_each(|c| retarget(c, image)),
        _ => {}
    }
}

/// Every (list, image) of an object, in document order.
fn images(v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if matches!(
                    k.as_str(),
                    "containers" | "initContainers" | "ephemeralContainers"
                ) && let Some(list) = child.as_array()
                {
                    for c in list {
                        let image = c["image"].as_str().unwrap_or_default().to_string();
                        out.push((k.clone(), image));
                    }
                }
                images(child, out);
            }
        }
        Value::Array(list) => list.iter().for_each(|c| images(c, out)),
        _ => {}
    }
}

struct Call<'a> {
    bin: &'a Path,
    hook: &'a Webhook,
}

impl Call<'_> {
    /// Runs the dispatcher on `object` (UPDATE when `old` is given) and returns its result.
    async fn run(
        &self,
        object: &Value,
        old: Option<&Value>,
        subresource: Option<&str>,
    ) -> Result<Value, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("object.json");
        std::fs::write(&path, object.to_string())?;
        let mut cmd = Command::new(self.bin);
        cmd.current_dir(root())
            .args([
                "-webhook-config",
                "deploy/pinning/mutatingwebhookconfiguration.yaml",
                "-url",
                &self.hook.url,
            ])
            .arg("-ca")
            .arg(&self.hook.ca)
            .arg("-object")
            .arg(&path)
            .args(["-namespace", "shop"]);
        if let Some(old) = old {
            let old_path = dir.path().join("old.json");
            std::fs::write(&old_path, old.to_string())?;
            cmd.arg("-old-object")
                .arg(old_path)
                .args(["-operation", "UPDATE"]);
        }
        if let Some(s) = subresource {
            cmd.args(["-subresource", s]);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
        if !out.status.success() {
            return Err(format!("harness failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

const KINDS: &[&str] = &[
    "pod-create.json",
    "podtemplate-create.json",
    "replicationcontroller-create.json",
    "deployment-create.json",
    "replicaset-create.json",
    "statefulset-create.json",
    "daemonset-create.json",
    "job-create.json",
    "cronjob-create.json",
    "pod-ephemeralcontainers.json",
];

#[tokio::test(flavor = "multi_thread")]
async fn the_apiserver_dispatcher_applies_pins_for_every_kind() -> TestResult {
    let bin = k8s_webhook_harness()?;
    let registry = Registry::anonymous()?;
    let first = registry.push_image("pin/app:1.0", "first", None)?;
    let tagged = format!("{}/pin/app:1.0", registry.host());
    let pinned = format!("{tagged}@{first}");
    // TTL 0: every review asks the registry, so a moved tag is followed at once.
    let hook = start(&registry, 0).await?;
    let call = Call {
        bin: &bin,
        hook: &hook,
    };

    for fixture in KINDS {
        let review: Value = serde_json::from_slice(&std::fs::read(
            root().join("tests/fixtures/admission").join(fixture),
        )?)?;
        let req = &review["request"];
        let mut object = req["object"].clone();
        retarget(&mut object, &tagged);
        let old = match &req["oldObject"] {
            Value::Null => None,
            o => {
                let mut o = o.clone();
                retarget(&mut o, &tagged);
                // The stored pod has no ephemeral container yet: only the new one is pinned.
                if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.remove("ephemeralContainers");
                }
                Some(o)
            }
        };
        let subresource = req["subResource"].as_str();
        let out = call.run(&object, old.as_ref(), subresource).await?;
        assert_eq!(out["allowed"], true, "{fixture}: {out}");
        let mut after = Vec::new();
        images(&out["object"], &mut after);
        assert!(!after.is_empty(), "{fixture}: no images in {out}");
        for (list, image) in &after {
            let expected =
                if subresource == Some("ephemeralcontainers") && list != "ephemeralContainers" {
                    // Unchanged containers of a running pod are never re-pinned (no restart).
                    &tagged
                } else {
                    &pinned
                };
            assert_eq!(image, expected, "{fixture} {list}: {out}");
        }
        let pins = out["annotations"]["pin.images.helios.dev/pinned"]
            .as_str()
            .unwrap_or_default();
        assert!(pins.contains(&pinned), "{fixture}: {out}");

        // Idempotent: the pinned object gets no patch on a second pass.
        if subresource.is_none() {
            let again = call.run(&out["object"], None, None).await?;
            assert_eq!(again["object"], out["object"], "{fixture}: {again}");
            assert!(
                again["annotations"]
                    .get("pin.images.helios.dev/pinned")
                    .is_none(),
                "{fixture}: {again}"
            );
        }
    }

    // The tag moves: the next pin follows the registry.
    let second = registry.push_image("pin/app:next", "second", None)?;
    registry.tag(&format!("pin/app@{second}"), "1.0")?;
    let mut pod: Value = serde_json::from_slice::<Value>(&std::fs::read(
        root().join("tests/fixtures/admission/pod-create.json"),
    )?)?["request"]["object"]
        .clone();
    retarget(&mut pod, &tagged);
    let out = call.run(&pod, None, None).await?;
    let mut after = Vec::new();
    images(&out["object"], &mut after);
    assert!(
        after
            .iter()
            .all(|(_, i)| *i == format!("{tagged}@{second}")),
        "{out}"
    );

    // An unresolvable tag: no patch, a warning, and the object as it was.
    registry.delete(&format!("pin/app@{second}"))?;
    let out = call.run(&pod, None, None).await?;
    assert_eq!(out["allowed"], true, "{out}");
    let mut after = Vec::new();
    images(&out["object"], &mut after);
    assert!(after.iter().all(|(_, i)| *i == tagged), "{out}");
    assert!(out["warnings"].to_string().contains("not pinned"), "{out}");
    Ok(())
}

#[test]
fn the_pinning_overlay_is_valid_kubernetes() -> TestResult {
    let bin = k8s_webhook_harness()?;
    let out = Command::new(bin)
        .current_dir(root())
        .args(["-validate-manifests", "deploy/pinning"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"validated\": 2"), "{stdout}");
    Ok(())
}
