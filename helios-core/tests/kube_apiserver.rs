//! End to end behind a real kube-apiserver (built from the `k8s.io/kubernetes` module, with etcd;
//! see `helios_testkit::ControlPlane`): the shipped `deploy/validatingwebhookconfiguration.yaml`
//! registered with a `url` client config and `caBundle`, and objects created through the API
//! server's REST API as kubectl would. What the client sees — the denial message, warnings, the
//! audit log's annotations, failure policies — is what the API server made of Helios's answer.
#![cfg(feature = "webhook")]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use helios_core::admission::server::{Metrics, ServerOptions, serve};
use helios_core::admission::{AdmissionController, ControllerConfig, Mode};
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::lacework::{LaceworkClient, LaceworkSource, NoScan};
use helios_core::scan::{CachedSource, DirSource, ScanSource};
use helios_lacework_emulator::{Emulator, Endpoint};
use helios_testkit::{Answer, ControlPlane, KubeApi, cert_manager_crd};
use serde::Deserialize as _;
use serde_json::{Value, json};
use support::webhook::{TlsWebhook, serve_tls};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const CLEAN: &str = "registry.example.com/team/app:1.4@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const CRITICAL: &str = "registry.example.com/team/critical:2.0@sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
const DENIED: &str = "admission webhook \"images.helios.dev\" denied the request";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Helios webhook on loopback with a certificate for `127.0.0.1`.
struct Webhook {
    url: String,
    ca_pem: String,
    _served: TlsWebhook,
}

async fn webhook(source: Arc<dyn ScanSource>, config: ControllerConfig) -> TestResult<Webhook> {
    let controller = AdmissionController::new(
        source,
        Arc::new(EmbeddedEvaluator::default_policy()?),
        config,
    );
    let served = serve_tls(controller, "127.0.0.1", Duration::from_secs(10)).await?;
    Ok(Webhook {
        url: format!("https://{}/validate", served.addr),
        ca_pem: served.ca_pem.clone(),
        _served: served,
    })
}

fn scan_dir() -> TestResult<Arc<dyn ScanSource>> {
    Ok(Arc::new(DirSource::open(
        root().join("tests/fixtures/admission-scans"),
    )?))
}

/// The API server as the admin ([`KubeApi`]), with the webhook registration these tests need.
struct Api(KubeApi);

impl std::ops::Deref for Api {
    type Target = KubeApi;

    fn deref(&self) -> &KubeApi {
        &self.0
    }
}

impl Api {
    /// Registers (or replaces) the shipped webhook configuration pointing at `url`.
    async fn register(&self, url: &str, ca_pem: &str, failure_policy: &str) -> TestResult {
        self.register_with(url, ca_pem, failure_policy, 5).await
    }

    /// [`Api::register`] with another `timeoutSeconds`.
    async fn register_with(
        &self,
        url: &str,
        ca_pem: &str,
        failure_policy: &str,
        timeout_seconds: u32,
    ) -> TestResult {
        let shipped =
            std::fs::read_to_string(root().join("deploy/validatingwebhookconfiguration.yaml"))?;
        let mut config: Value = yaml_serde::from_str(&shipped)?;
        config["webhooks"][0]["clientConfig"] = json!({
            "url": url,
            "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
        });
        config["webhooks"][0]["failurePolicy"] = json!(failure_policy);
        config["webhooks"][0]["timeoutSeconds"] = json!(timeout_seconds);
        let path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
        let existing = self
            .send(reqwest::Method::GET, &format!("{path}/helios"), None)
            .await?;
        let answer = if existing.status == 200 {
            config["metadata"]["resourceVersion"] =
                existing.body["metadata"]["resourceVersion"].clone();
            self.send(
                reqwest::Method::PUT,
                &format!("{path}/helios"),
                Some(&config),
            )
            .await?
        } else {
            self.create(path, &config).await?
        };
        if !(200..300).contains(&answer.status) {
            return Err(
                format!("registering the webhook: {} {}", answer.status, answer.body).into(),
            );
        }
        Ok(())
    }

    /// Creates `object` (dry run) until `done` holds: the API server picks a changed webhook
    /// configuration up asynchronously.
    async fn until(
        &self,
        collection: &str,
        object: &Value,
        done: impl Fn(&Answer) -> bool,
    ) -> TestResult<Answer> {
        let started = Instant::now();
        let dry = format!("{collection}?dryRun=All");
        loop {
            let answer = self.create(&dry, object).await?;
            if done(&answer) {
                return Ok(answer);
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "the webhook configuration never took effect: {} {}",
                    answer.status, answer.body
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A ready control plane and its API as the admin.
async fn control_plane() -> TestResult<(ControlPlane, Api)> {
    let plane = tokio::task::spawn_blocking(ControlPlane::start).await??;
    let api = Api(plane.api().await?);
    Ok((plane, api))
}

fn message(answer: &Answer) -> String {
    answer.body["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn pod_spec(image: &str) -> Value {
    json!({"containers": [{"name": "app", "image": image}]})
}

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(image)}
        }
    })
}

fn pod(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

fn cronjob(name: &str, image: &str) -> Value {
    let mut spec = pod_spec(image);
    spec["restartPolicy"] = json!("OnFailure");
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": spec}}}}
    })
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/shop/deployments";
const PODS: &str = "/api/v1/namespaces/shop/pods";
const CRONJOBS: &str = "/apis/batch/v1/namespaces/shop/cronjobs";

#[tokio::test(flavor = "multi_thread")]
async fn a_real_kube_apiserver_applies_helios_decisions() -> TestResult {
    let (plane, api) = control_plane().await?;
    api.namespace("shop").await?;

    // Enforce: vulnerable objects of every kind are denied with Helios's message.
    let enforce = webhook(scan_dir()?, ControllerConfig::default()).await?;
    api.register(&enforce.url, &enforce.ca_pem, "Fail").await?;
    api.until(DEPLOYMENTS, &deployment("probe", CRITICAL), |a| {
        a.status == 403
    })
    .await?;

    let denied = api
        .create(DEPLOYMENTS, &deployment("web", CRITICAL))
        .await?;
    assert_eq!(denied.status, 403, "{}", denied.body);
    let msg = message(&denied);
    assert!(
        msg.contains(DENIED)
            && msg.contains("registry.example.com/team/critical")
            && msg.contains("CVE-2024-0001"),
        "{msg}"
    );
    assert_eq!(denied.body["reason"], "Forbidden", "{}", denied.body);

    let created = api.create(DEPLOYMENTS, &deployment("web", CLEAN)).await?;
    assert_eq!(created.status, 201, "{}", created.body);

    let bare = api.create(PODS, &pod("bare", pod_spec(CRITICAL))).await?;
    assert_eq!(bare.status, 403, "{}", bare.body);
    let mut with_init = pod_spec(CLEAN);
    with_init["initContainers"] = json!([{"name": "setup", "image": CRITICAL}]);
    let init = api.create(PODS, &pod("with-init", with_init)).await?;
    assert_eq!(init.status, 403, "{}", init.body);
    assert!(message(&init).contains("CVE-2024-0001"), "{}", init.body);
    assert_eq!(
        api.create(PODS, &pod("clean", pod_spec(CLEAN)))
            .await?
            .status,
        201
    );

    let cron = api.create(CRONJOBS, &cronjob("nightly", CRITICAL)).await?;
    assert_eq!(cron.status, 403, "{}", cron.body);
    assert_eq!(
        api.create(CRONJOBS, &cronjob("nightly", CLEAN))
            .await?
            .status,
        201
    );

    // Server-side dry run is decided too, and nothing is stored.
    let dry = api
        .create(
            &format!("{DEPLOYMENTS}?dryRun=All"),
            &deployment("dry", CRITICAL),
        )
        .await?;
    assert_eq!(dry.status, 403, "{}", dry.body);
    let stored = api
        .send(reqwest::Method::GET, &format!("{DEPLOYMENTS}/dry"), None)
        .await?;
    assert_eq!(stored.status, 404);

    // The API server's audit log carries Helios's audit annotations for the denied create.
    let audit = plane.audit_log();
    let event = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| {
            e["verb"] == "create"
                && e["objectRef"]["name"] == "web"
                && e["responseStatus"]["code"] == 403
        })
        .ok_or("no audit event for the denied create of deployment web")?;
    assert_eq!(
        event["annotations"]["images.helios.dev/decision"], "deny",
        "{event}"
    );
    assert_eq!(
        event["annotations"]["images.helios.dev/policy-id"], "helios.default",
        "{event}"
    );

    // Warn: created, with Helios's warnings returned to the client.
    let warn = webhook(
        scan_dir()?,
        ControllerConfig {
            mode: Mode::Warn,
            ..Default::default()
        },
    )
    .await?;
    api.register(&warn.url, &warn.ca_pem, "Ignore").await?;
    api.until(DEPLOYMENTS, &deployment("probe", CRITICAL), |a| {
        a.status == 201
    })
    .await?;
    let warned = api
        .create(DEPLOYMENTS, &deployment("warned", CRITICAL))
        .await?;
    assert_eq!(warned.status, 201, "{}", warned.body);
    let warnings = warned.warnings.join("\n");
    assert!(warnings.contains("CVE-2024-0001"), "{warnings}");

    // Helios down: failurePolicy Fail rejects, Ignore admits.
    let closed = format!(
        "https://127.0.0.1:{}/validate",
        helios_testkit::free_port()?
    );
    api.register(&closed, &enforce.ca_pem, "Fail").await?;
    let refused = api
        .until(DEPLOYMENTS, &deployment("probe", CLEAN), |a| {
            a.status >= 500
        })
        .await?;
    assert!(
        message(&refused).contains("failed calling webhook"),
        "{}",
        refused.body
    );
    api.register(&closed, &enforce.ca_pem, "Ignore").await?;
    api.until(DEPLOYMENTS, &deployment("probe", CLEAN), |a| {
        a.status == 201
    })
    .await?;
    assert_eq!(
        api.create(DEPLOYMENTS, &deployment("unchecked", CRITICAL))
            .await?
            .status,
        201
    );
    Ok(())
}

/// `--dry-run=server` against the Lacework source: decided (an unknown image is `pending`), and no
/// on-demand scan is requested; the same create without dry run requests one.
#[tokio::test(flavor = "multi_thread")]
async fn dry_run_requests_no_lacework_scan_through_the_api_server() -> TestResult {
    let (_plane, api) = control_plane().await?;
    api.namespace("shop").await?;

    let emu = Emulator::builder().start().await?;
    let client = LaceworkClient::builder()
        .account(emu.url())
        .api_key(emu.key_id())
        .api_secret(emu.secret())
        .build()?;
    let source = Arc::new(CachedSource::new(LaceworkSource::new(
        client,
        NoScan::RequestScan,
    )));
    let hook = webhook(source, ControllerConfig::default()).await?;
    api.register(&hook.url, &hook.ca_pem, "Fail").await?;
    let unknown = format!("registry.example.com/team/new@sha256:{}", "d".repeat(64));
    // Wait for the configuration with a dry run (no scan) that Helios answers.
    let dry = api
        .until(DEPLOYMENTS, &deployment("new", &unknown), |a| {
            a.status == 403
        })
        .await?;
    assert!(message(&dry).contains(DENIED), "{}", dry.body);
    assert_eq!(emu.count(Endpoint::Scan), 0, "a dry run requested a scan");

    let real = api
        .create(DEPLOYMENTS, &deployment("new", &unknown))
        .await?;
    assert_eq!(real.status, 403, "{}", real.body);
    assert!(message(&real).contains("pending"), "{}", real.body);
    assert_eq!(emu.count(Endpoint::Scan), 1, "{:?}", emu.counters());
    Ok(())
}

/// Every manifest in deploy/ (and the pinning overlay's MutatingWebhookConfiguration) is
/// accepted by the API server as written (namespace first, webhook configurations last, as
/// `kubectl apply -k` orders them).
#[tokio::test(flavor = "multi_thread")]
async fn the_deploy_manifests_are_accepted_by_a_real_api_server() -> TestResult {
    let (_plane, api) = control_plane().await?;
    for (kind, plural) in [("Issuer", "issuers"), ("Certificate", "certificates")] {
        let crd = api
            .create(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                &cert_manager_crd(kind, plural),
            )
            .await?;
        assert_eq!(crd.status, 201, "{}", crd.body);
    }

    let mut objects = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml") && !p.ends_with("kustomization.yaml")
        })
        .collect();
    files.sort();
    // The pinning overlay's own object (its other file is a patch of the base Deployment).
    files.push(root().join("deploy/pinning/mutatingwebhookconfiguration.yaml"));
    for file in &files {
        for document in yaml_serde::Deserializer::from_str(&std::fs::read_to_string(file)?) {
            let value = Value::deserialize(document)?;
            if !value.is_null() {
                objects.push((file.clone(), value));
            }
        }
    }
    let rank = |v: &Value| match v["kind"].as_str() {
        Some("Namespace") => 0,
        Some(k) if k.ends_with("WebhookConfiguration") => 2,
        _ => 1,
    };
    objects.sort_by_key(|(_, v)| rank(v));
    assert!(
        objects.len() >= 10,
        "only {} manifests found in deploy/",
        objects.len()
    );

    for (file, object) in &objects {
        // The CRDs are served a moment after they are created.
        let started = Instant::now();
        let path = loop {
            match api.collection_of(object).await {
                Ok(path) => break path,
                Err(e) if started.elapsed() > Duration::from_secs(30) => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let created = api.create(&path, object).await?;
        assert_eq!(
            created.status,
            201,
            "{} ({}): {}",
            file.display(),
            object["kind"],
            created.body
        );
    }
    Ok(())
}

/// A scan source slower than the webhook's `timeoutSeconds`.
struct Slow;

#[async_trait::async_trait]
impl ScanSource for Slow {
    async fn scan(
        &self,
        _image: &helios_core::image::ImageRef,
        _lookup: helios_core::scan::Lookup,
    ) -> helios_core::Result<helios_core::scan::ScanReport> {
        tokio::time::sleep(Duration::from_secs(4)).await;
        Ok(helios_core::scan::ScanReport::completed(
            "file",
            None,
            None,
            Vec::new(),
        ))
    }
}

/// Helios slower than `timeoutSeconds`: the API server gives up on it and applies the
/// webhook's failure policy.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_slower_than_its_timeout_gets_the_failure_policy() -> TestResult {
    let (_plane, api) = control_plane().await?;
    api.namespace("shop").await?;
    let slow = webhook(
        Arc::new(Slow),
        ControllerConfig {
            deadline_ms: 10_000,
            ..Default::default()
        },
    )
    .await?;
    api.register_with(&slow.url, &slow.ca_pem, "Fail", 1)
        .await?;
    let timed_out = api
        .until(DEPLOYMENTS, &deployment("slow", CLEAN), |a| a.status >= 500)
        .await?;
    let msg = message(&timed_out);
    assert!(
        msg.contains("failed calling webhook")
            && (msg.contains("deadline") || msg.contains("timeout")),
        "{msg}"
    );
    api.register_with(&slow.url, &slow.ca_pem, "Ignore", 1)
        .await?;
    api.until(DEPLOYMENTS, &deployment("slow", CLEAN), |a| a.status == 201)
        .await?;
    Ok(())
}

/// A serving certificate for `127.0.0.1` signed by `ca`, as (cert PEM, key PEM, cert DER).
fn leaf(
    ca: &rcgen::CertificateParams,
    ca_key: &rcgen::KeyPair,
) -> TestResult<(String, String, Vec<u8>)> {
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?
        .signed_by(&key, &rcgen::Issuer::from_params(ca, ca_key))?;
    Ok((cert.pem(), key.serialize_pem(), cert.der().to_vec()))
}

/// The certificate the webhook serves to a new connection (DER).
async fn served_certificate(url: &str, ca_pem: &str) -> TestResult<Vec<u8>> {
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes())?)
        .tls_info(true)
        .build()?;
    let response = client.get(url).send().await?;
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .ok_or("no TLS info")?;
    Ok(info
        .peer_certificate()
        .ok_or("no peer certificate")?
        .to_vec())
}

/// The webhook's certificate is rotated (same CA, new key) while the API server keeps calling:
/// no call fails, and new connections get the new certificate.
#[tokio::test(flavor = "multi_thread")]
async fn certificate_rotation_while_the_api_server_calls_drops_nothing() -> TestResult {
    let (_plane, api) = control_plane().await?;
    api.namespace("shop").await?;

    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let dir = tempfile::tempdir()?;
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let (cert, key, first) = leaf(&ca, &ca_key)?;
    std::fs::write(&cert_file, cert)?;
    std::fs::write(&key_file, key)?;
    let controller = AdmissionController::new(
        scan_dir()?,
        Arc::new(EmbeddedEvaluator::default_policy()?),
        ControllerConfig::default(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let _task = serve(
        listener,
        controller,
        ServerOptions {
            tls_cert: cert_file.clone(),
            tls_key: key_file.clone(),
            reload_interval: Duration::from_millis(100),
            shutdown_delay: Duration::ZERO,
            grace: Duration::from_secs(1),
            limits: Default::default(),
            decision_logs: None,
        },
        Arc::new(Metrics::new()),
        futures_util::stream::pending(),
    )
    .await?;
    let url = format!("https://{addr}/validate");
    assert_eq!(served_certificate(&url, &ca_pem).await?, first);
    api.register(&url, &ca_pem, "Fail").await?;
    api.until(DEPLOYMENTS, &deployment("probe", CRITICAL), |a| {
        a.status == 403
    })
    .await?;

    let (cert, key, second) = leaf(&ca, &ca_key)?;
    let dry = format!("{DEPLOYMENTS}?dryRun=All");
    for i in 0..40 {
        if i == 10 {
            // Key first, then certificate: the server reloads when both have changed.
            std::fs::write(&key_file, &key)?;
            std::fs::write(&cert_file, &cert)?;
        }
        let (image, expected) = if i % 2 == 0 {
            (CLEAN, 201)
        } else {
            (CRITICAL, 403)
        };
        let answer = api
            .create(&dry, &deployment(&format!("d{i}"), image))
            .await?;
        assert_eq!(answer.status, expected, "call {i}: {}", answer.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        served_certificate(&url, &ca_pem).await?,
        second,
        "the rotated certificate is not served"
    );
    Ok(())
}
