//! Parity suite: every shared case (`tests/fixtures/cases/*.json`) through BOTH backends, the
//! embedded engine and a real OPA server (built from its Go module by helios-testkit).
//!
//! Each case gets its own OPA, loaded with the same modules and data as the embedded engine as a
//! bundle whose revision is the embedded engine's digest, so whole decisions must be equal but
//! for `backend`. Errors must carry the same code, except where the two backends cannot agree by
//! design (see [`opa_agrees`] and the parity section of docs/policies.md).

mod support;

use std::time::{Duration, Instant};

use helios_core::policy::{
    Backend, Decision, EmbeddedEvaluator, OpaEvaluator, Package, PolicyInput, PolicySet,
};
use helios_testkit::{OpaServer, StartError};
use support::cases::{Case, load_cases};

/// What happened to a case on one backend.
enum Outcome {
    /// The backend refused the policy when loading it (OPA: the server would not start).
    LoadFailed(String),
    /// The evaluation returned.
    Evaluated(helios_core::Result<Decision>),
}

fn policy_set(case: &Case) -> helios_core::Result<PolicySet> {
    let mut set = PolicySet::new();
    for path in &case.policy {
        set.add_path(path)?;
    }
    if set.modules().is_empty() {
        set.add_default_policy();
    }
    if let Some(data) = &case.data {
        set.add_data(data.clone())?;
    }
    Ok(set)
}

fn run_embedded(case: &Case, set: &PolicySet) -> helios_core::Result<Decision> {
    let mut builder = EmbeddedEvaluator::builder()
        .policies(set.clone())
        .package(Package::parse(&case.package)?)
        .rego_v0(case.rego_v0);
    if let Some(limit) = case.time_limit {
        builder = builder.time_limit(limit);
    }
    let evaluator = builder.build()?;
    let input = PolicyInput::from_value(case.input.clone())?;
    evaluator.evaluate_sync(&input)
}

fn run_opa(rt: &tokio::runtime::Runtime, case: &Case, set: &PolicySet) -> Result<Outcome, String> {
    let mut builder = OpaServer::builder()
        .rego_v0(case.rego_v0)
        .data(serde_json::Value::Object(set.data().clone()))
        .revision(set.digest());
    for module in set.modules() {
        let name = std::path::Path::new(&module.name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "policy.rego".into());
        builder = builder.policy(name, module.source.clone());
    }
    let server = match builder.start() {
        Ok(server) => server,
        Err(StartError::Exited(log)) => return Ok(Outcome::LoadFailed(log)),
        Err(other) => return Err(other.to_string()),
    };
    let evaluate = || -> helios_core::Result<Decision> {
        let package = Package::parse(&case.package)?;
        // OPA has no per-query execution limit of its own: the request timeout plays that role.
        let timeout = case.time_limit.unwrap_or(Duration::from_secs(10));
        let opa = OpaEvaluator::builder(server.url())
            .package(package)
            .timeout(timeout)
            .build()?;
        let input = PolicyInput::from_value(case.input.clone())?;
        rt.block_on(helios_core::policy::PolicyEvaluator::evaluate(&opa, &input))
    };
    Ok(Outcome::Evaluated(evaluate()))
}

/// Whether OPA's error means what the embedded engine's error code means, where the two
/// backends cannot produce the same code by design (docs/policies.md, "Embedded and OPA").
fn opa_agrees(embedded_code: &str, opa: &helios_core::Error) -> bool {
    match (embedded_code, opa) {
        (code, e) if e.code() == code => true,
        // No server-side execution limit: the request timeout stops a runaway policy.
        ("policy_timeout", helios_core::Error::Unavailable { .. }) => true,
        // OPA reports evaluation errors (conflicts, builtin errors in strict mode) in its own
        // error body, kept as-is with OPA's `eval_*` code.
        ("policy_eval", helios_core::Error::Remote { code: Some(c), .. }) => c.starts_with("eval_"),
        _ => false,
    }
}

fn compare(
    case: &Case,
    embedded: &helios_core::Result<Decision>,
    opa: &Outcome,
) -> Result<(), String> {
    match (embedded, opa) {
        (Err(e), Outcome::LoadFailed(_)) if e.code() == "policy_parse" => Ok(()),
        (_, Outcome::LoadFailed(log)) => Err(format!(
            "OPA refused the policy but embedded gave {}: {}",
            describe(embedded),
            log.lines().take(5).collect::<Vec<_>>().join(" | ")
        )),
        (Err(e), Outcome::Evaluated(Err(o))) if opa_agrees(e.code(), o) => Ok(()),
        (Ok(d), Outcome::Evaluated(Ok(o))) => {
            // The contract's own rule first (it also reports *what* differs), then everything.
            case.check(&Ok(o.clone()))
                .map_err(|why| format!("OPA does not meet the case: {why}"))?;
            let mut o = o.clone();
            o.backend = Backend::Embedded;
            o.decision_id = None;
            if *d != o {
                return Err(format!(
                    "decisions differ:\n  embedded {}\n  opa      {}",
                    serde_json::to_string(d).unwrap_or_default(),
                    serde_json::to_string(&o).unwrap_or_default()
                ));
            }
            Ok(())
        }
        (_, Outcome::Evaluated(o)) => Err(format!(
            "embedded gave {}, OPA gave {}",
            describe(embedded),
            describe(o)
        )),
    }
}

fn describe(r: &helios_core::Result<Decision>) -> String {
    match r {
        Ok(d) => serde_json::to_string(d).unwrap_or_default(),
        Err(e) => format!("error {} ({e})", e.code()),
    }
}

#[test]
fn every_case_decides_alike_on_embedded_and_opa() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let cases = load_cases()?;
    assert!(!cases.is_empty(), "no shared cases found");
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut decided = 0;
    for case in &cases {
        let set = match policy_set(case) {
            Ok(set) => set,
            Err(e) => {
                // Loading files and data is shared code, not a backend difference.
                failures.push(format!("{}: cannot load its policy set: {e}", case.name));
                continue;
            }
        };
        let embedded = run_embedded(case, &set);
        // The embedded engine must meet the case too, or parity would be parity in error.
        if let Err(why) = case.check(&embedded) {
            failures.push(format!(
                "{}: embedded does not meet the case: {why}",
                case.name
            ));
            continue;
        }
        let opa = run_opa(&rt, case, &set)?;
        if matches!(opa, Outcome::Evaluated(Ok(_))) {
            decided += 1;
        }
        if let Err(why) = compare(case, &embedded, &opa) {
            failures.push(format!("{} ({}): {why}", case.name, case.description));
        }
    }
    eprintln!(
        "opa parity: {} cases ({decided} decisions, {} errors) in {:.1} s",
        cases.len(),
        cases.len() - decided,
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ between embedded and OPA:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Not a vacuous pass: most cases are decisions, and they were compared whole.
    assert!(
        decided * 2 > cases.len(),
        "only {decided} of {} cases decided",
        cases.len()
    );
    Ok(())
}

/// Builtin results that differ between regorus and OPA, by probe name (see
/// `tests/opa/builtins.rego` and docs/policies.md). The test fails when this list is stale in
/// either direction, so the documented list stays true.
const KNOWN_BUILTIN_DIFFERENCES: &[&str] = &[
    // 0.1 + 0.2: regorus computes in f64 (0.30000000000000004), OPA in exact decimals (0.3).
    "float_sum",
    // sprintf("%d", [2.0]): regorus "2", OPA "%!d(float64=2)" (a float, even a whole one).
    "sprintf_d_int_float",
    // sprintf("%s", [1.5]): regorus "1.5", OPA Go's "%!s(float64=1.5)"; `%v` agrees.
    "sprintf_s_num",
    // to_number("1e3"): regorus the integer 1000, OPA 1000 written as a float (1e3 / 1000.0).
    "to_number",
    // upper("straße"): regorus full Unicode case mapping ("STRASSE"), OPA Go's simple one ("STRAßE").
    "upper",
];

#[test]
fn builtins_agree_between_regorus_and_opa() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let probe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/opa/builtins.rego");
    let package = Package::parse("probe").map_err(|e| e.to_string())?;
    let embedded = EmbeddedEvaluator::builder()
        .policy_path(&probe)
        .package(package.clone())
        .build()
        .and_then(|e| e.evaluate_json(serde_json::json!({})))
        .map_err(|e| e.to_string())?;
    let server = OpaServer::builder()
        .policy_file(&probe)?
        .start()
        .map_err(|e| e.to_string())?;
    let opa = OpaEvaluator::builder(server.url())
        .package(package)
        .build()
        .map_err(|e| e.to_string())?;
    let remote = rt
        .block_on(opa.evaluate_json(&serde_json::json!({})))
        .map_err(|e| e.to_string())?;

    let values = |d: &Decision| -> std::collections::BTreeMap<String, serde_json::Value> {
        d.warnings
            .iter()
            .map(|w| {
                (
                    w.msg.clone(),
                    w.details.get("value").cloned().unwrap_or_default(),
                )
            })
            .collect()
    };
    let (e, o) = (values(&embedded), values(&remote));
    assert!(
        e.len() >= 40,
        "only {} probes evaluated on embedded",
        e.len()
    );
    let mut differ = Vec::new();
    for name in e
        .keys()
        .chain(o.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if e.get(name) != o.get(name) {
            eprintln!(
                "builtin {name}: regorus {} | opa {}",
                e.get(name)
                    .map(|v| v.to_string())
                    .unwrap_or("undefined".into()),
                o.get(name)
                    .map(|v| v.to_string())
                    .unwrap_or("undefined".into())
            );
            differ.push(name.as_str());
        }
    }
    assert_eq!(
        differ, KNOWN_BUILTIN_DIFFERENCES,
        "builtin differences changed: update KNOWN_BUILTIN_DIFFERENCES and docs/policies.md"
    );
    Ok(())
}
