//! The shared reference fixtures (`../shared/fixtures/…` beside the checkout: Lacework's and
//! kube-rs's own files) are not part of the repository, so a user's clone has none. They are the
//! one prerequisite whose absence is not a failure, even under `CI`: the project-owned fixtures
//! in `tests/fixtures` cover the same ground. Set `HELIOS_REQUIRE_SHARED_FIXTURES` (any value)
//! to make their absence fail, e.g. on a machine that is meant to have them.
//!
//! Included with `#[path = "support/shared.rs"] mod shared;`.

use std::path::Path;

/// Whether the shared fixture file or directory `path` is there. When it is absent this says so
/// in one consistent line (`NOTE <test>: … absent …`) and returns `false`, or fails the test
/// when `HELIOS_REQUIRE_SHARED_FIXTURES` is set.
pub fn present(test: &str, path: &Path) -> bool {
    if path.exists() {
        return true;
    }
    assert!(
        std::env::var_os("HELIOS_REQUIRE_SHARED_FIXTURES").is_none(),
        "{test}: the shared fixtures at {} are absent and HELIOS_REQUIRE_SHARED_FIXTURES is set",
        path.display()
    );
    eprintln!(
        "NOTE {test}: the shared fixtures at {} are absent (not part of the repository); \
         its reference part did not run, the project-owned fixtures did",
        path.display()
    );
    false
}
