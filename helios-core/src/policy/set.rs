//! A policy set: Rego modules plus the data document they read, and its digest.

use std::path::Path;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The `policy_id` of the shipped default policy.
pub const DEFAULT_POLICY_ID: &str = "helios.default";

/// The shipped default policy's Rego source.
pub(crate) const DEFAULT_POLICY_SOURCE: &str = include_str!("default/helios.rego");
const DEFAULT_POLICY: (&str, &str) = ("helios-default/helios.rego", DEFAULT_POLICY_SOURCE);
const DEFAULT_POLICY_TESTS: (&str, &str) = (
    "helios-default/helios_test.rego",
    include_str!("default/helios_test.rego"),
);

/// One Rego module: a name (its file path, shown in errors) and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The file path or label the module was loaded from.
    pub name: String,
    /// Rego source.
    pub source: String,
}

/// Rego modules and the data document they evaluate against.
///
/// Files named `*_test.rego` are unit tests: they are loaded only by [`PolicySet::with_tests`]
/// sets (what `helios policy test` uses), so evaluations never pay for them.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    modules: Vec<Module>,
    data: Map<String, Value>,
    tests: bool,
}

impl PolicySet {
    /// An empty set that skips `*_test.rego` files.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set that also loads `*_test.rego` files.
    pub fn with_tests() -> Self {
        PolicySet {
            tests: true,
            ..Self::default()
        }
    }

    /// Adds the shipped default policy (package `helios`, `policy_id` `helios.default`), and its
    /// unit tests when this set loads tests.
    pub fn add_default_policy(&mut self) {
        self.add_module(DEFAULT_POLICY.0, DEFAULT_POLICY.1);
        if self.tests {
            self.add_module(DEFAULT_POLICY_TESTS.0, DEFAULT_POLICY_TESTS.1);
        }
    }

    /// Whether the set's only module is the shipped default policy (whatever its data).
    pub(crate) fn is_default_policy(&self) -> bool {
        matches!(self.modules.as_slice(), [only] if only.name == DEFAULT_POLICY.0 && only.source == DEFAULT_POLICY.1)
    }

    /// Adds one module from source.
    pub fn add_module(&mut self, name: impl Into<String>, source: impl Into<String>) {
        self.modules.push(Module {
            name: name.into(),
            source: source.into(),
        });
    }

    /// Adds a `.rego` file, a data file (`.json`, `.yaml`, `.yml`), or every such file under a
    /// directory (recursively, in name order; hidden entries skipped).
    pub fn add_path(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            let mut entries = std::fs::read_dir(path)
                .and_then(|rd| {
                    rd.map(|e| e.map(|e| e.path()))
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| Error::io(path, e))?;
            entries.sort();
            for entry in entries {
                let hidden = entry
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if !hidden && (entry.is_dir() || kind_of(&entry).is_some()) {
                    self.add_path(&entry)?;
                }
            }
            return Ok(());
        }
        match kind_of(path) {
            Some(FileKind::Rego) => {
                if self.tests || !is_test_file(path) {
                    let source = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                    self.add_module(path.display().to_string(), source);
                }
                Ok(())
            }
            Some(FileKind::Data) => self.add_data_file(path),
            None => Err(Error::invalid(
                "policy path",
                format!(
                    "{}: expected a .rego file, a .json/.yaml data file or a directory",
                    path.display()
                ),
            )),
        }
    }

    /// Merges a JSON or YAML data file into the data document.
    pub fn add_data_file(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let what = format!("data file {}", path.display());
        let value = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| Error::invalid(&what, e))?
        } else {
            let yaml =
                regorus::Value::from_yaml_str(&text).map_err(|e| Error::invalid(&what, e))?;
            serde_json::to_value(yaml).map_err(|e| Error::invalid(&what, e))?
        };
        self.add_data(value).map_err(|e| match e {
            Error::InvalidInput { reason, .. } => Error::invalid(what, reason),
            other => other,
        })
    }

    /// Deep-merges a data document (an object) into the data; a key set twice to different
    /// non-object values is an error, as in OPA.
    pub fn add_data(&mut self, value: Value) -> Result<()> {
        match value {
            Value::Object(obj) => merge(&mut self.data, obj, "data"),
            other => Err(Error::invalid(
                "data",
                format!(
                    "the data document must be an object, found {}",
                    crate::error::json_kind(&other)
                ),
            )),
        }
    }

    /// The modules, in load order.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// The merged data document.
    pub fn data(&self) -> &Map<String, Value> {
        &self.data
    }

    /// `sha256:` digest of the modules (by name, in name order) and the data, so a decision
    /// names exactly which policy made it.
    pub fn digest(&self) -> String {
        let mut modules: Vec<&Module> = self.modules.iter().collect();
        modules.sort_by(|a, b| a.name.cmp(&b.name));
        let mut hasher = Sha256::new();
        for m in modules {
            // Length-prefix each part so that no two different sets hash alike.
            for part in [m.name.as_bytes(), m.source.as_bytes()] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
        }
        // serde_json maps are sorted by key, so this serialisation is canonical.
        hasher.update(Value::Object(self.data.clone()).to_string().as_bytes());
        let digest = hasher.finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

enum FileKind {
    Rego,
    Data,
}

fn kind_of(path: &Path) -> Option<FileKind> {
    match path.extension()?.to_str()? {
        "rego" => Some(FileKind::Rego),
        "json" | "yaml" | "yml" => Some(FileKind::Data),
        _ => None,
    }
}

fn is_test_file(path: &Path) -> bool {
    path.file_stem()
        .is_some_and(|s| s.to_string_lossy().ends_with("_test"))
}

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>, at: &str) -> Result<()> {
    for (key, value) in from {
        let path = format!("{at}.{key}");
        match (into.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) => {
                merge(existing, incoming, &path)?
            }
            (Some(existing), incoming) if *existing != incoming => {
                return Err(Error::invalid(
                    "data",
                    format!("{path} is defined twice with different values"),
                ));
            }
            (Some(_), _) => {}
            (None, incoming) => {
                into.insert(key, incoming);
            }
        }
    }
    Ok(())
}
