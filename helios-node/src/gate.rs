//! `helios_core::gate` and the Lacework lookup for Node: `scan`, `gate` and `gateSync`, what
//! `helios scan` and `helios gate` do, for pipeline plugins.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use helios_core::Error as CoreError;
use helios_core::gate::{Gate, ScanFrom};
use helios_core::image::ImageRef;
use helios_core::policy::EmbeddedBuilder;
use helios_core::registry::resolve_with;
use helios_core::registry::{RegistryConfig, Resolver};
use helios_core::scan::lacework::{LaceworkLookup, ServiceFailure, scan_image};
use napi::bindgen_prelude::{AsyncTask, Either, FromNapiValue, ToNapiValue, Unknown};
use napi::{Env, ScopedTask, ValueType};
use napi_derive::napi;
use serde_json::Value;

use crate::error::{invalid_arg, to_js};
use crate::policy::{EvaluateOptions, plan};

/// Options of `scan`.
#[napi(object)]
#[derive(Default)]
pub struct ScanOptions {
    /// Seconds to wait for an on-demand scan when Lacework has none (default 600; 0: answer
    /// `pending` at once).
    pub wait: Option<f64>,
    /// Never request an on-demand scan: an image without one is `not_found`.
    pub no_scan: Option<bool>,
    /// The Lacework CLI profile of `~/.lacework.toml` (default `LW_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// Resolve a tag at its registry first (default: yes, unless `HELIOS_NO_RESOLVE=true`).
    pub resolve: Option<bool>,
    /// The platform picked from a multi-arch image (default `linux/amd64`).
    pub platform: Option<String>,
    /// Registry credentials: a Docker `config.json`, a `.dockerconfigjson`, or a directory.
    pub docker_config: Option<String>,
    /// Registries (`host[:port]`) spoken to over plain HTTP.
    pub plain_http: Option<Vec<String>>,
    /// A PEM CA file per registry (`{"registry:5000": "ca.pem"}`).
    pub registry_ca: Option<HashMap<String, String>>,
}

/// Options of `gate` and `gateSync`.
#[napi(object)]
#[derive(Default)]
pub struct GateOptions {
    /// The image's scan file (a Lacework v2 search response, its rows, or a Helios report);
    /// absent means ask Lacework.
    pub scan_file: Option<String>,
    /// A `.rego` file, a data file or a directory, or a list of them; none means the shipped
    /// default policy.
    pub policy: Option<Either<String, Vec<String>>>,
    /// A data document (an object) merged under `data`.
    pub data: Option<Value>,
    /// The package whose document is the decision (default `helios`).
    pub package: Option<String>,
    /// CI context passed to the policy as `input.ci` (an object).
    pub ci: Option<Value>,
    /// Seconds to wait for an on-demand scan (default 600).
    pub wait: Option<f64>,
    /// Never request an on-demand scan.
    pub no_scan: Option<bool>,
    /// The Lacework CLI profile.
    pub profile: Option<String>,
    /// Resolve a tag at its registry first (default: yes, unless `HELIOS_NO_RESOLVE=true`).
    pub resolve: Option<bool>,
    /// The platform picked from a multi-arch image (default `linux/amd64`).
    pub platform: Option<String>,
    /// Registry credentials: a Docker `config.json`, a `.dockerconfigjson`, or a directory.
    pub docker_config: Option<String>,
    /// Registries (`host[:port]`) spoken to over plain HTTP.
    pub plain_http: Option<Vec<String>>,
    /// A PEM CA file per registry (`{"registry:5000": "ca.pem"}`).
    pub registry_ca: Option<HashMap<String, String>>,
}

/// The registry options as the core's resolver (an error rejects the call with its code).
fn resolver(
    resolve: Option<bool>,
    platform: Option<String>,
    docker_config: Option<String>,
    plain_http: Option<Vec<String>>,
    registry_ca: Option<HashMap<String, String>>,
) -> Result<Option<Resolver>, CoreError> {
    let mut config = RegistryConfig {
        docker_config: docker_config.map(PathBuf::from),
        plain_http: plain_http.unwrap_or_default().into_iter().collect(),
        ca: registry_ca
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, PathBuf::from(v)))
            .collect(),
        ..RegistryConfig::default()
    };
    if let Some(p) = platform {
        config.platform = p.parse()?;
    }
    Resolver::optional(config, resolve)
}

/// The runtime the core's async Lacework client runs on, built on first use and shared by
/// every call (one connection pool, one timer driver). Calls block on it from libuv workers
/// (or the JS thread for `gateSync`); its two workers only drive I/O.
fn runtime() -> napi::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("helios-node")
        .enable_all()
        .build()
        .map_err(|e| napi::Error::from_reason(format!("helios: cannot start a runtime: {e}")))?;
    // Another thread may have won the race; its runtime is as good, this one is dropped.
    let _ = RUNTIME.set(rt);
    RUNTIME
        .get()
        .ok_or_else(|| napi::Error::from_reason("helios: runtime unavailable"))
}

/// Reads an options argument: absent, `undefined` or `null` mean the defaults.
fn read<T: FromNapiValue + Default>(options: Option<Unknown<'_>>) -> napi::Result<T> {
    let Some(options) = options else {
        return Ok(T::default());
    };
    match options.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(T::default()),
        ValueType::Object => T::from_unknown(options),
        other => Err(invalid_arg(format!(
            "options must be an object, got {other:?}"
        ))),
    }
}

fn lookup(
    wait: Option<f64>,
    no_scan: Option<bool>,
    profile: Option<String>,
    on_failure: ServiceFailure,
) -> napi::Result<LaceworkLookup> {
    let wait = match wait {
        None => helios_core::scan::lacework::DEFAULT_SCAN_WAIT,
        Some(secs) => Duration::try_from_secs_f64(secs).map_err(|_| {
            invalid_arg(format!(
                "wait must be a non-negative finite number of seconds, got {secs}"
            ))
        })?,
    };
    Ok(LaceworkLookup {
        profile,
        wait,
        no_scan: no_scan.unwrap_or(false),
        on_failure,
    })
}

/// What a [`LookupTask`] does.
enum Job {
    /// `scan`: the Lacework report.
    Scan(Box<ScanJob>),
    /// `gate`: the scan, then the policy.
    Gate(Box<GateJob>),
}

/// A checked `scan` call, ready to run.
pub struct ScanJob {
    image: Result<ImageRef, CoreError>,
    resolver: Result<Option<Resolver>, CoreError>,
    lookup: LaceworkLookup,
}

/// A checked `gate` call, ready to run.
pub struct GateJob {
    image: Result<ImageRef, CoreError>,
    resolver: Result<Option<Resolver>, CoreError>,
    policy: Result<EmbeddedBuilder, CoreError>,
    from: ScanFrom,
    ci: Option<Value>,
}

fn gate_job(image: String, options: Option<Unknown<'_>>) -> napi::Result<GateJob> {
    let options: GateOptions = read(options)?;
    let ci = match options.ci {
        None | Some(Value::Null) => None,
        Some(ci @ Value::Object(_)) => Some(ci),
        Some(_) => return Err(invalid_arg("ci must be an object (the CI context)")),
    };
    let lookup = lookup(
        options.wait,
        options.no_scan,
        options.profile,
        // As the CLI: a Lacework failure is an `unavailable` scan, and the policy decides.
        ServiceFailure::Report,
    )?;
    let policy = plan(EvaluateOptions {
        policy: options.policy,
        data: options.data,
        package: options.package,
        rego_v0: None,
        time_limit_ms: None,
    })?
    .map(|p| p.0);
    Ok(GateJob {
        image: ImageRef::parse(&image),
        resolver: resolver(
            options.resolve,
            options.platform,
            options.docker_config,
            options.plain_http,
            options.registry_ca,
        ),
        policy,
        from: match options.scan_file {
            Some(path) => ScanFrom::File(PathBuf::from(path)),
            None => ScanFrom::Lacework(lookup),
        },
        ci,
    })
}

impl GateJob {
    /// Builds the evaluator, gets the scan and decides; `{decision, input, exit_code}`.
    fn run(self) -> Result<Value, CoreError> {
        let image = self.image?;
        let resolver = self.resolver?;
        let evaluator = self.policy?.build()?;
        let outcome = block_on(
            Gate::new(evaluator)
                .with_resolver(resolver)
                .check_image(image, &self.from, self.ci),
        )?;
        to_json(&outcome, "gate outcome")
    }
}

/// Runs a core future on the shared runtime; a runtime that cannot start is `unavailable`.
fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, CoreError>>,
) -> Result<T, CoreError> {
    match runtime() {
        Ok(rt) => rt.block_on(future),
        Err(e) => Err(CoreError::unavailable(
            "the helios-node runtime".to_string(),
            e.reason.clone(),
        )),
    }
}

/// Serializes a core value for JavaScript (serde_json's `json!` would panic on failure).
fn to_json(value: &impl serde::Serialize, what: &str) -> Result<Value, CoreError> {
    serde_json::to_value(value).map_err(|e| CoreError::InvalidInput {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// The Lacework scan of `image` (the scan report), off the JS thread: requests an on-demand
/// scan and waits up to `wait` seconds when Lacework has none, or never with `noScan`. Service
/// failures reject (`err.code` `auth`, `unavailable`, `remote`).
#[napi(catch_unwind, ts_return_type = "Promise<ScanReport>")]
pub fn scan(image: String, options: Option<Unknown<'_>>) -> napi::Result<AsyncTask<LookupTask>> {
    let options: ScanOptions = read(options)?;
    let lookup = lookup(
        options.wait,
        options.no_scan,
        options.profile,
        ServiceFailure::Error,
    )?;
    Ok(AsyncTask::new(LookupTask {
        job: Some(Job::Scan(Box::new(ScanJob {
            image: ImageRef::parse(&image),
            resolver: resolver(
                options.resolve,
                options.platform,
                options.docker_config,
                options.plain_http,
                options.registry_ca,
            ),
            lookup,
        }))),
    }))
}

/// Decides whether `image` may ship, as `helios gate` does, off the JS thread. A tag is first
/// resolved at its registry (`resolve: false`, or `HELIOS_NO_RESOLVE=true`, skips it) and the
/// digest recorded in `input.image`; a resolution failure rejects.
#[napi(catch_unwind, ts_return_type = "Promise<GateResult>")]
pub fn gate(image: String, options: Option<Unknown<'_>>) -> napi::Result<AsyncTask<LookupTask>> {
    Ok(AsyncTask::new(LookupTask {
        job: Some(Job::Gate(Box::new(gate_job(image, options)?))),
    }))
}

/// [`gate`] on the calling (JS) thread.
#[napi(catch_unwind, ts_return_type = "GateResult")]
pub fn gate_sync(env: Env, image: String, options: Option<Unknown<'_>>) -> napi::Result<Value> {
    gate_job(image, options)?.run().map_err(|e| to_js(&env, &e))
}

/// One `scan` or `gate` on the libuv thread pool.
pub struct LookupTask {
    job: Option<Job>,
}

impl<'task> ScopedTask<'task> for LookupTask {
    // As `EvaluateTask`: the core's error becomes a JS error (with its code) in `resolve`.
    type Output = Result<Value, CoreError>;
    type JsValue = Unknown<'task>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let Some(job) = self.job.take() else {
            return Err(napi::Error::from_reason("task ran twice"));
        };
        // A libuv worker is outside napi-rs's `catch_unwind`: a panic becomes a rejection.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || match job {
            Job::Scan(job) => {
                let ScanJob {
                    image,
                    resolver,
                    lookup,
                } = *job;
                let image = image?;
                let resolver = resolver?;
                let report = block_on(async {
                    let image = resolve_with(resolver.as_ref(), image).await?;
                    scan_image(&image, &lookup).await
                })?;
                to_json(&report, "scan report")
            }
            Job::Gate(job) => job.run(),
        }))
        .map_err(|_| napi::Error::from_reason("helios: internal error (panic) in scan or gate"))
    }

    fn resolve(&mut self, env: &'task Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        match output {
            Ok(value) => value.into_unknown(env),
            Err(e) => Err(to_js(env, &e)),
        }
    }
}
