//! `helios_core::gate` and the Lacework lookup for Python: `scan` and `gate`, what `helios scan`
//! and `helios gate` do, for CI scripts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use helios_core::gate::Gate;
use helios_core::image::ImageRef;
use helios_core::registry::resolve_with;
use helios_core::registry::{RegistryConfig, Resolver};
use helios_core::scan::ScanOptions;
use helios_core::scan::lacework::{ServiceFailure, scan_image};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;

use crate::convert::{object_to_json, type_name};
use crate::error::to_py;
use crate::policy::Evaluator;

/// The runtime the core's async Lacework client runs on, built on first use and shared by every
/// call (so the client's connections and timers live on one runtime). Two workers: the calls
/// block on it from Python threads, the workers only drive I/O.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("helios-py")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("helios: cannot start a runtime: {e}")))?;
    // Another thread may have won the race; its runtime is as good, this one is dropped.
    let _ = RUNTIME.set(rt);
    RUNTIME
        .get()
        .ok_or_else(|| PyRuntimeError::new_err("helios: runtime unavailable"))
}

/// The scan keyword arguments as the core's options (a thin field copy; the core checks the
/// values, e.g. a negative wait is `InvalidInputError`). `None` keeps the core's default.
fn scan_options(
    scan_file: Option<PathBuf>,
    scan_dir: Option<PathBuf>,
    wait: Option<f64>,
    no_scan: bool,
    profile: Option<String>,
) -> ScanOptions {
    let defaults = ScanOptions::default();
    ScanOptions {
        scan_file,
        scan_dir,
        wait: wait.unwrap_or(defaults.wait),
        no_scan,
        profile,
        ..defaults
    }
}

fn path_arg(arg: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<PathBuf>> {
    match arg {
        Some(f) if !f.is_none() => Ok(Some(f.extract::<PathBuf>().map_err(|_| {
            PyTypeError::new_err(format!(
                "{name} must be a path (str or os.PathLike), not {}",
                type_name(f)
            ))
        })?)),
        _ => Ok(None),
    }
}

/// The registry keyword arguments of `scan` and `gate`, as the core's resolver.
fn resolver(
    py: Python<'_>,
    resolve: Option<bool>,
    platform: Option<&str>,
    docker_config: Option<PathBuf>,
    plain_http: Option<Vec<String>>,
    registry_ca: Option<BTreeMap<String, PathBuf>>,
) -> PyResult<Option<Resolver>> {
    let mut config = RegistryConfig {
        docker_config,
        plain_http: plain_http.unwrap_or_default().into_iter().collect(),
        ca: registry_ca.unwrap_or_default(),
        ..RegistryConfig::default()
    };
    if let Some(p) = platform {
        config.platform = p.parse().map_err(|e| to_py(py, &e))?;
    }
    Resolver::optional(config, resolve).map_err(|e| to_py(py, &e))
}

fn parse_image(py: Python<'_>, image: &Bound<'_, PyAny>) -> PyResult<ImageRef> {
    let Ok(text) = image.extract::<String>() else {
        return Err(PyTypeError::new_err(format!(
            "image must be a str, not {}",
            type_name(image)
        )));
    };
    ImageRef::parse(&text).map_err(|e| to_py(py, &e))
}

/// The Lacework scan of `image` as a dict (the scan report), requesting an on-demand scan and
/// waiting up to `wait` seconds when Lacework has none (0: answer `pending` at once), or never
/// with `no_scan`. Service failures raise (`AuthError`, `UnavailableError`, `RemoteError`).
/// A tag is first resolved at its registry (see `gate`).
#[pyfunction]
#[pyo3(signature = (image, *, wait=None, no_scan=false, profile=None, resolve=None, platform=None, docker_config=None, plain_http=None, registry_ca=None))]
#[allow(clippy::too_many_arguments)] // Python keyword arguments, one per CLI flag.
pub fn scan<'py>(
    image: &Bound<'py, PyAny>,
    wait: Option<f64>,
    no_scan: bool,
    profile: Option<String>,
    resolve: Option<bool>,
    platform: Option<&str>,
    docker_config: Option<PathBuf>,
    plain_http: Option<Vec<String>>,
    registry_ca: Option<BTreeMap<String, PathBuf>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = image.py();
    let image = parse_image(py, image)?;
    let resolver = resolver(
        py,
        resolve,
        platform,
        docker_config,
        plain_http,
        registry_ca,
    )?;
    let lookup = scan_options(None, None, wait, no_scan, profile)
        .lacework(ServiceFailure::Error)
        .map_err(|e| to_py(py, &e))?;
    let rt = runtime()?;
    let report = py
        .detach(|| {
            rt.block_on(async {
                let image = resolve_with(resolver.as_ref(), image).await?;
                scan_image(&image, &lookup).await
            })
        })
        .map_err(|e| to_py(py, &e))?;
    Ok(pythonize::pythonize(py, &report)?)
}

/// Decides whether `image` may ship, as `helios gate` does: the scan from `scan_file` or
/// `scan_dir`, else from Lacework (one client per process and credentials); the policy; `{"decision", "input", "exit_code"}`. A tag is first resolved
/// at its registry (`resolve=False`, or `HELIOS_NO_RESOLVE=true`, skips it), the digest and
/// platform manifest recorded in `input.image`; a resolution failure raises.
#[pyfunction]
#[pyo3(signature = (image, *, scan_file=None, scan_dir=None, policy=None, data=None, package=None, ci=None, wait=None, no_scan=false, profile=None, resolve=None, platform=None, docker_config=None, plain_http=None, registry_ca=None, parallel_rules=false))]
#[allow(clippy::too_many_arguments)] // Python keyword arguments, one per CLI flag.
pub fn gate<'py>(
    image: &Bound<'py, PyAny>,
    scan_file: Option<&Bound<'py, PyAny>>,
    scan_dir: Option<&Bound<'py, PyAny>>,
    policy: Option<&Bound<'py, PyAny>>,
    data: Option<&Bound<'py, PyAny>>,
    package: Option<String>,
    ci: Option<&Bound<'py, PyAny>>,
    wait: Option<f64>,
    no_scan: bool,
    profile: Option<String>,
    resolve: Option<bool>,
    platform: Option<&str>,
    docker_config: Option<PathBuf>,
    plain_http: Option<Vec<String>>,
    registry_ca: Option<BTreeMap<String, PathBuf>>,
    parallel_rules: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = image.py();
    let image = parse_image(py, image)?;
    let resolver = resolver(
        py,
        resolve,
        platform,
        docker_config,
        plain_http,
        registry_ca,
    )?;
    let options = scan_options(
        path_arg(scan_file, "scan_file")?,
        path_arg(scan_dir, "scan_dir")?,
        wait,
        no_scan,
        profile,
    );
    let ci = match ci {
        Some(c) if !c.is_none() => Some(object_to_json(c, "ci")?),
        _ => None,
    };
    // As the CLI: a Lacework failure is an `unavailable` scan, and the policy decides.
    let (source, lookup) = options.source().map_err(|e| to_py(py, &e))?;
    // Arguments first, then the policy (compiled without the GIL), then the scan.
    let evaluator = Evaluator::new(py, policy, data, package, false, None, parallel_rules)?.inner;
    let rt = runtime()?;
    let outcome = py
        .detach(|| {
            rt.block_on(
                Gate::new(evaluator)
                    .with_resolver(resolver)
                    .check_image(image, &*source, lookup, ci),
            )
        })
        .map_err(|e| to_py(py, &e))?;
    Ok(pythonize::pythonize(py, &outcome)?)
}
