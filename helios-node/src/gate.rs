//! `helios_core::gate` and the Lacework lookup for Node: `scan`, `gate` and `gateSync`, what
//! `helios scan` and `helios gate` do, for pipeline plugins.
//!
//! `scan` and `gate` are futures on napi-rs's one tokio runtime: waiting on Lacework (up to the
//! scan wait) or a registry holds no libuv worker and never the JS thread. `gateSync` only
//! takes a scan that needs no waiting (`scanFile`, `scanDir`); asked for Lacework it fails with
//! the core's `invalid_input`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use helios_core::Error as CoreError;
use helios_core::gate::{Gate, GateOptions};
use helios_core::image::ImageRef;
use helios_core::registry::{RegistryConfig, Resolver, resolve_with};
use helios_core::scan::ScanOptions;
use helios_core::scan::lacework::{ServiceFailure, scan_image};
use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::to_js;
use crate::options::snake_case;

/// The registry options of `scan` and `gate` (`resolve`, `platform`, `dockerConfig`,
/// `plainHttp`, `registryCa`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RegistryOptions {
    resolve: Option<bool>,
    platform: Option<String>,
    docker_config: Option<PathBuf>,
    plain_http: Vec<String>,
    registry_ca: BTreeMap<String, PathBuf>,
}

impl RegistryOptions {
    /// The fields of this type.
    const FIELDS: [&str; 5] = [
        "resolve",
        "platform",
        "docker_config",
        "plain_http",
        "registry_ca",
    ];

    /// Takes the registry fields out of `options` (the rest belongs to the core's options).
    fn take(options: &mut Map<String, Value>) -> Result<Self, CoreError> {
        let mine: Map<String, Value> = Self::FIELDS
            .iter()
            .filter_map(|k| options.remove(*k).map(|v| (k.to_string(), v)))
            .collect();
        serde_path_to_error::deserialize(Value::Object(mine)).map_err(|e| CoreError::InvalidInput {
            what: "registry options".to_string(),
            reason: e.to_string(),
        })
    }

    /// The core's resolver for these options.
    fn resolver(self) -> Result<Option<Resolver>, CoreError> {
        let mut config = RegistryConfig {
            docker_config: self.docker_config,
            plain_http: self.plain_http.into_iter().collect(),
            ca: self.registry_ca,
            ..RegistryConfig::default()
        };
        if let Some(p) = self.platform {
            config.platform = p.parse()?;
        }
        Resolver::optional(config, self.resolve)
    }
}

/// A checked `scan` call, ready to run.
struct ScanJob {
    image: Result<ImageRef, CoreError>,
    resolver: Result<Option<Resolver>, CoreError>,
    options: ScanOptions,
}

impl ScanJob {
    fn new(image: String, options: Option<Value>) -> Result<Self, CoreError> {
        let mut options = snake_case(options, "scan options")?;
        let registry = RegistryOptions::take(&mut options)?;
        let options = ScanOptions::from_value(Value::Object(options))?;
        // Checked now, so a bad wait throws at the call.
        options.lacework(ServiceFailure::Error)?;
        Ok(ScanJob {
            image: ImageRef::parse(&image),
            resolver: registry.resolver(),
            options,
        })
    }

    /// The report: Lacework's (service failures are errors), or a scan file's or directory's.
    async fn run(self) -> Result<Value, CoreError> {
        let image = resolve_with(self.resolver?.as_ref(), self.image?).await?;
        let report = if self.options.uses_lacework() {
            scan_image(&image, &self.options.lacework(ServiceFailure::Error)?).await?
        } else {
            let (source, lookup) = self.options.source()?;
            source.scan(&image, lookup).await?
        };
        to_json(&report, "scan report")
    }
}

/// A checked `gate` call, ready to run.
struct GateJob {
    image: Result<ImageRef, CoreError>,
    resolver: Result<Option<Resolver>, CoreError>,
    options: GateOptions,
}

impl GateJob {
    fn new(image: String, options: Option<Value>) -> Result<Self, CoreError> {
        let mut options = snake_case(options, "gate options")?;
        let registry = RegistryOptions::take(&mut options)?;
        let options = GateOptions::from_value(Value::Object(options))?;
        options.scan.lacework(ServiceFailure::Report)?;
        Ok(GateJob {
            image: ImageRef::parse(&image),
            resolver: registry.resolver(),
            options,
        })
    }

    /// Builds the evaluator, gets the scan and decides; `{decision, input, exit_code}`.
    async fn run(self) -> Result<Value, CoreError> {
        let image = self.image?;
        let resolver = self.resolver?;
        let evaluator = self.options.policy.build_embedded()?;
        // As the CLI: a Lacework failure is an `unavailable` scan, and the policy decides.
        let (source, lookup) = self.options.scan.source()?;
        let outcome = Gate::new(evaluator)
            .with_resolver(resolver)
            .check_image(image, &*source, lookup, self.options.ci)
            .await?;
        to_json(&outcome, "gate outcome")
    }
}

/// Serializes a core value for JavaScript (serde_json's `json!` would panic on failure).
fn to_json(value: &impl serde::Serialize, what: &str) -> Result<Value, CoreError> {
    serde_json::to_value(value).map_err(|e| CoreError::InvalidInput {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Runs `work` on napi-rs's tokio runtime and settles the promise on the JS thread, where a core
/// error becomes a JS error carrying its code. A panic rejects instead of aborting.
fn spawn<'env>(
    env: &'env Env,
    work: impl std::future::Future<Output = Result<Value, CoreError>> + Send + 'static,
) -> napi::Result<PromiseRaw<'env, Value>> {
    let task = async move {
        tokio::spawn(work)
            .await
            .map_err(|_| napi::Error::from_reason("helios: internal error (panic) in scan or gate"))
    };
    env.spawn_future_with_callback(task, |env, output| output.map_err(|e| to_js(env, &e)))
}

/// The scan of `image` (the scan report), without blocking a libuv worker: from Lacework,
/// requesting an on-demand scan and waiting up to `wait` seconds when it has none, or never with
/// `noScan`, its service failures rejecting (`err.code` `auth`, `unavailable`, `remote`); or
/// from `scanFile` / `scanDir`.
#[napi(catch_unwind, ts_return_type = "Promise<ScanReport>")]
pub fn scan<'env>(
    env: &'env Env,
    image: String,
    options: Option<Value>,
) -> napi::Result<PromiseRaw<'env, Value>> {
    // Bad options reject the promise, as every core error of an async call does.
    let job = ScanJob::new(image, options);
    spawn(env, async move { job?.run().await })
}

/// Decides whether `image` may ship, as `helios gate` does, without blocking a libuv worker
/// while Lacework scans. A tag is first resolved at its registry (`resolve: false`, or
/// `HELIOS_NO_RESOLVE=true`, skips it) and the digest recorded in `input.image`; a resolution
/// failure rejects.
#[napi(catch_unwind, ts_return_type = "Promise<GateResult>")]
pub fn gate<'env>(
    env: &'env Env,
    image: String,
    options: Option<Value>,
) -> napi::Result<PromiseRaw<'env, Value>> {
    let job = GateJob::new(image, options);
    spawn(env, async move { job?.run().await })
}

/// [`gate`] on the calling (JS) thread, for scans that need no waiting: `scanFile` or
/// `scanDir`. Without either it throws the core's `invalid_input` (Lacework may take minutes:
/// use `gate`). A tag is still resolved at its registry (bounded by its timeouts).
#[napi(catch_unwind, ts_return_type = "GateResult")]
pub fn gate_sync(env: Env, image: String, options: Option<Value>) -> napi::Result<Value> {
    let job = GateJob::new(image, options).map_err(|e| to_js(&env, &e))?;
    if job.options.scan.uses_lacework() {
        let err = CoreError::InvalidInput {
            what: "gateSync options".to_string(),
            reason: "gateSync cannot wait on Lacework: give scanFile or scanDir, or use gate()"
                .to_string(),
        };
        return Err(to_js(&env, &err));
    }
    napi::bindgen_prelude::block_on(job.run()).map_err(|e| to_js(&env, &e))
}
