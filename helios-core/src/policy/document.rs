//! A package document as a backend hands it over, read in place by the decision contract.
//!
//! OPA answers with JSON; the embedded engine has its own `regorus::Value`. Both are read through
//! [`Document`] by one [`Decision::from_package`](crate::policy::Decision), so that every backend
//! applies the contract alike, and the embedded engine's decision is read straight from its own
//! value: copying a document of hundreds of reasons into a JSON tree first, then out of it into
//! the decision, was a third of what an evaluation did after the rules ran (docs/performance.md).

use std::borrow::Cow;

use serde_json::Value;

use crate::error::{Error, Result};

/// An object's fields, each key as it reads in JSON.
pub(crate) type Fields<'a, D> = Box<dyn Iterator<Item = (Cow<'a, str>, &'a D)> + 'a>;

/// What the decision contract reads of a document.
pub(crate) trait Document {
    /// The value as JSON: a reason's extra fields, and what an error message shows.
    fn to_json(&self) -> Result<Value>;
    /// Its text, if it is a string.
    fn as_text(&self) -> Option<&str>;
    /// Its truth, if it is a boolean.
    fn as_bool(&self) -> Option<bool>;
    /// Its members, if it is an array (or a set).
    fn members(&self) -> Option<Box<dyn Iterator<Item = &Self> + '_>>;
    /// Its fields, if it is an object.
    fn fields(&self) -> Option<Fields<'_, Self>>;

    /// The field `name`, if it is an object that has one.
    fn field(&self, name: &str) -> Option<&Self> {
        self.fields()?
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

impl Document for Value {
    fn to_json(&self) -> Result<Value> {
        Ok(self.clone())
    }
    fn as_text(&self) -> Option<&str> {
        self.as_str()
    }
    fn as_bool(&self) -> Option<bool> {
        Value::as_bool(self)
    }
    fn members(&self) -> Option<Box<dyn Iterator<Item = &Self> + '_>> {
        Some(Box::new(self.as_array()?.iter()))
    }
    fn fields(&self) -> Option<Fields<'_, Self>> {
        Some(Box::new(
            self.as_object()?
                .iter()
                .map(|(key, value)| (Cow::Borrowed(key.as_str()), value)),
        ))
    }
    fn field(&self, name: &str) -> Option<&Self> {
        self.as_object()?.get(name)
    }
}

/// Read exactly as its JSON serialisation (`regorus::Value: Serialize`) would read: a set is an
/// array in its sorted order, a non-string object key is its JSON text, and `undefined` is the
/// text `<undefined>`. A test pins the two readings together.
impl Document for regorus::Value {
    fn to_json(&self) -> Result<Value> {
        serde_json::to_value(self).map_err(|e| Error::PolicyEval {
            message: e.to_string(),
        })
    }
    fn as_text(&self) -> Option<&str> {
        match self {
            regorus::Value::String(text) => Some(text),
            regorus::Value::Undefined => Some("<undefined>"),
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            regorus::Value::Bool(truth) => Some(*truth),
            _ => None,
        }
    }
    fn members(&self) -> Option<Box<dyn Iterator<Item = &Self> + '_>> {
        match self {
            regorus::Value::Array(items) => Some(Box::new(items.iter())),
            regorus::Value::Set(items) => Some(Box::new(items.iter_sorted())),
            _ => None,
        }
    }
    fn fields(&self) -> Option<Fields<'_, Self>> {
        match self {
            regorus::Value::Object(fields) => {
                Some(Box::new(fields.iter_sorted().map(|(key, value)| {
                    let key = match key {
                        regorus::Value::String(text) => Cow::Borrowed(&**text),
                        // A number JSON cannot hold shows as regorus writes it.
                        other => Cow::Owned(
                            serde_json::to_string(other).unwrap_or_else(|_| other.to_string()),
                        ),
                    };
                    (key, value)
                })))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use regorus::Value as Rego;

    use crate::policy::{Backend, Decision, Package};

    fn text(s: &str) -> Rego {
        Rego::from(s)
    }

    fn object(entries: Vec<(Rego, Rego)>) -> Rego {
        Rego::from(entries.into_iter().collect::<BTreeMap<_, _>>())
    }

    fn set(members: Vec<Rego>) -> Rego {
        Rego::from(members.into_iter().collect::<BTreeSet<_>>())
    }

    fn package(rules: Vec<(&str, Rego)>) -> Rego {
        object(rules.into_iter().map(|(k, v)| (text(k), v)).collect())
    }

    fn reason(msg: Rego, more: Vec<(Rego, Rego)>) -> Rego {
        let mut fields = vec![(text("msg"), msg)];
        fields.extend(more);
        object(fields)
    }

    /// The embedded engine's document reads as its JSON serialisation does: the same decision,
    /// or the same error, on every shape the contract meets (and some it refuses).
    #[test]
    fn an_engine_value_decides_as_its_json() -> anyhow::Result<()> {
        let documents = vec![
            package(vec![]),
            package(vec![("deny", set(vec![text("b"), text("a")]))]),
            package(vec![
                ("policy_id", text("acme")),
                (
                    "deny",
                    set(vec![
                        reason(text("z"), vec![(text("code"), text("critical"))]),
                        reason(text("z"), vec![(text("code"), text("high"))]),
                        reason(
                            text("y"),
                            vec![
                                (text("n"), Rego::from(1.5)),
                                (text("nested"), package(vec![("a", Rego::Null)])),
                                (Rego::from(1u64), text("number key")),
                                (text("1"), text("string key")),
                                (Rego::Bool(true), set(vec![Rego::from(2u64)])),
                            ],
                        ),
                    ]),
                ),
                ("violation", Rego::from(vec![text("from an array")])),
                ("warn", set(vec![text("w"), reason(text("v"), vec![])])),
                ("allow", Rego::Bool(true)),
            ]),
            package(vec![("allow", Rego::Bool(false))]),
            package(vec![("warn", set(vec![Rego::Undefined]))]),
            // Refused, with the same error either way.
            text("not a package"),
            package(vec![("deny", Rego::from(3u64))]),
            package(vec![("deny", set(vec![Rego::Null]))]),
            package(vec![(
                "deny",
                set(vec![package(vec![("code", text("x"))])]),
            )]),
            package(vec![("deny", set(vec![reason(Rego::from(7u64), vec![])]))]),
            package(vec![("allow", text("yes"))]),
            package(vec![("policy_id", Rego::from(7u64))]),
        ];
        for document in documents {
            let read = read(&document);
            let json = serde_json::to_value(&document)?;
            let expected = Decision::from_document(
                Some(&json),
                &Package::default(),
                "v".into(),
                Backend::Embedded,
            );
            match (&read, &expected) {
                (Ok(read), Ok(expected)) => assert_eq!(read, expected, "{document}"),
                (Err(read), Err(expected)) => {
                    assert_eq!(read.to_string(), expected.to_string(), "{document}")
                }
                _ => panic!("{document}: {read:?} against {expected:?}"),
            }
        }
        Ok(())
    }

    fn read(document: &Rego) -> crate::Result<Decision> {
        Decision::from_package(
            Some(document),
            &Package::default(),
            "v".into(),
            Backend::Embedded,
        )
    }

    /// A number JSON cannot hold fails the evaluation where the contract reads it, and only there
    /// (a helper rule's value is not read).
    #[test]
    fn a_number_json_cannot_hold_fails_only_where_read() -> anyhow::Result<()> {
        let huge = Rego::from_numeric_string(&format!("1{}", "0".repeat(400)))?;
        assert!(serde_json::to_value(&huge).is_err());
        let helper = read(&package(vec![
            ("deny", set(vec![text("a")])),
            ("helper", huge.clone()),
        ]))?;
        assert_eq!(helper.violations.len(), 1);
        let detail = read(&package(vec![(
            "deny",
            set(vec![reason(text("m"), vec![(text("n"), huge)])]),
        )]));
        assert!(
            matches!(detail, Err(crate::Error::PolicyEval { .. })),
            "{detail:?}"
        );
        Ok(())
    }
}
