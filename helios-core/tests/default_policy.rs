//! The shipped default policy passes its own Rego unit tests, run by the embedded engine.

use helios_core::policy::testing::{Outcome, run_tests};
use helios_core::policy::{DEFAULT_TIME_LIMIT, PolicySet};

#[test]
fn default_policy_unit_tests_pass() -> helios_core::Result<()> {
    let mut set = PolicySet::with_tests();
    set.add_default_policy();
    let results = run_tests(&set, false, DEFAULT_TIME_LIMIT)?;
    assert!(results.len() >= 14, "found only {} tests", results.len());
    let failed: Vec<_> = results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| format!("{}: {:?}", r.name, r.outcome))
        .collect();
    assert!(failed.is_empty(), "failing tests: {failed:#?}");
    Ok(())
}

#[test]
fn a_zero_time_limit_is_refused_not_read_as_unlimited() {
    let err = helios_core::policy::EmbeddedEvaluator::builder()
        .time_limit(std::time::Duration::ZERO)
        .build()
        .err();
    assert_eq!(err.map(|e| e.code()), Some("invalid_input"));
}
