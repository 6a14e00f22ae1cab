//! Rego package paths, e.g. `helios` or `acme.images`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A validated Rego package path, written without the `data.` prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Package(String);

impl Package {
    /// Parses `helios`, `acme.images` or `data.acme.images`.
    pub fn parse(name: &str) -> Result<Self> {
        let path = name.trim().strip_prefix("data.").unwrap_or(name.trim());
        let valid = !path.is_empty()
            && path.split('.').all(|seg| {
                let mut chars = seg.chars();
                chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if !valid {
            return Err(Error::invalid(
                "package",
                format!("{name:?} is not a Rego package path like `helios` or `acme.images`"),
            ));
        }
        Ok(Package(path.to_string()))
    }

    /// The query of the package document, e.g. `data.acme.images`.
    pub fn query(&self) -> String {
        format!("data.{}", self.0)
    }

    /// The full path of one of its rules, e.g. `data.acme.images.deny`.
    pub fn rule(&self, rule: &str) -> String {
        format!("data.{}.{rule}", self.0)
    }

    /// The path as URL segments, e.g. `acme/images` (OPA's `/v1/data/acme/images`).
    pub fn url_path(&self) -> String {
        self.0.replace('.', "/")
    }
}

impl Default for Package {
    fn default() -> Self {
        Package("helios".into())
    }
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Package {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Package::parse(s)
    }
}
