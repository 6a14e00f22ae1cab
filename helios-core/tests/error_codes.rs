//! The error codes the bindings document are exactly the ones the core returns: `Error::CODES`
//! (which a unit test in `error.rs` ties to `Error::code()` for every variant) against the
//! tables of docs/python.md and docs/node.md and the exception classes of the Python stub.

use std::collections::BTreeSet;
use std::path::Path;

use helios_core::Error;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The backticked words of column `column` of the table under `## Errors` in a document.
fn table_codes(relative: &str, column: usize) -> BTreeSet<String> {
    let text = read(relative);
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Errors"))
        .unwrap_or_else(|| panic!("{relative} has no `## Errors` section"));
    // The rows after the table's `|---|` line (the header names the column, not a code).
    section
        .lines()
        .skip_while(|l| !l.starts_with("|---"))
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(column + 1))
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn core_codes() -> BTreeSet<String> {
    Error::CODES.iter().map(|c| c.to_string()).collect()
}

#[test]
fn python_docs_list_every_code() {
    assert_eq!(table_codes("docs/python.md", 1), core_codes());
}

#[test]
fn node_docs_list_every_code() {
    assert_eq!(table_codes("docs/node.md", 0), core_codes());
}

#[test]
fn python_stub_has_a_class_per_code() {
    let stub = read("helios-py/helios/_helios.pyi");
    let codes: BTreeSet<String> = stub
        .split("Literal[\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(code, _)| code.to_string()))
        .collect();
    assert_eq!(codes, core_codes());
}
