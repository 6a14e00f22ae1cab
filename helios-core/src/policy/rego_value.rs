//! Builds a `regorus::Value` straight from any `Serialize` type (the typed policy input).
//!
//! The obvious route, `serde_json::to_value` then `regorus::Value::from`, builds the whole input
//! twice and allocates every object key once per object. This serializer builds the regorus tree
//! in one pass and shares each struct field name (`&'static str`) across all objects, which makes
//! input conversion about twice as fast on large scans (docs/performance.md). It follows
//! serde_json's data model exactly (unit variants as strings, `None` as `null`, newtype variants
//! as one-key objects), so policies see the same document either way; a test pins that.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use rustc_hash::FxHashMap;

use regorus::Value;
use serde::Serialize;
use serde::ser;

use crate::image::ImageRef;
use crate::policy::{PolicyInput, Stage, Workload};

/// Converts `value` the way `regorus::Value::from(serde_json::to_value(value)?)` would.
pub(crate) fn to_rego_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ToRegoError> {
    let keys = Keys::default();
    value.serialize(ToRego { keys: &keys })
}

/// Converts a policy input, sharing its scan's value (built once per scan, see
/// [`ScanReport::engine_value`](crate::scan::ScanReport)) instead of converting the findings
/// again: only the small per-review parts are built here.
pub(crate) fn input_to_rego(input: &PolicyInput) -> Result<Value, ToRegoError> {
    // Destructured so that a new input field cannot be forgotten here.
    let PolicyInput {
        version,
        stage,
        image,
        scan,
        workload,
        ci,
    } = input;
    #[derive(Serialize)]
    struct Rest<'a> {
        version: &'a u32,
        stage: &'a Stage,
        image: &'a ImageRef,
        workload: &'a Option<Workload>,
        ci: &'a Option<serde_json::Value>,
    }
    let mut value = to_rego_value(&Rest {
        version,
        stage,
        image,
        workload,
        ci,
    })?;
    value
        .as_object_mut()
        .map_err(|e| ToRegoError(e.to_string()))?
        .insert(Value::from("scan"), scan.engine_value()?);
    Ok(value)
}

/// Why a value could not be converted (a map key that is not a string, a custom error).
#[derive(Debug)]
pub(crate) struct ToRegoError(String);

impl fmt::Display for ToRegoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ToRegoError {}

impl ser::Error for ToRegoError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ToRegoError(msg.to_string())
    }
}

/// Field names seen so far, each allocated once and shared by every object that has it (regorus
/// compares shared strings by pointer first, so sharing also speeds up evaluation: measured 1.7×
/// on the default policy). Found by address: serde hands over a field's name as the same
/// `&'static str` every time, so hashing its address (Fx, one multiply) finds it faster than
/// hashing the text (that was a third of a large scan's conversion) or searching a list by
/// address (that was a quarter); a name met at a new address is matched by its text once and
/// remembered at that address too.
#[derive(Default)]
struct Keys {
    /// By address and length (a name may start where a longer one does).
    by_address: RefCell<FxHashMap<(usize, usize), Value>>,
    by_text: RefCell<FxHashMap<&'static str, Value>>,
}

#[derive(Clone, Copy)]
struct ToRego<'k> {
    keys: &'k Keys,
}

impl ToRego<'_> {
    fn key(&self, name: &'static str) -> Value {
        let mut by_address = self.keys.by_address.borrow_mut();
        by_address
            .entry((name.as_ptr() as usize, name.len()))
            .or_insert_with(|| {
                self.keys
                    .by_text
                    .borrow_mut()
                    .entry(name)
                    .or_insert_with(|| Value::from(name))
                    .clone()
            })
            .clone()
    }
}

fn object(entries: BTreeMap<Value, Value>) -> Value {
    Value::from(entries)
}

impl<'k> ser::Serializer for ToRego<'k> {
    type Ok = Value;
    type Error = ToRegoError;
    type SerializeSeq = Seq<'k>;
    type SerializeTuple = Seq<'k>;
    type SerializeTupleStruct = Seq<'k>;
    type SerializeTupleVariant = Seq<'k>;
    type SerializeMap = Map<'k>;
    type SerializeStruct = Map<'k>;
    type SerializeStructVariant = Map<'k>;

    fn serialize_bool(self, v: bool) -> Result<Value, ToRegoError> {
        Ok(Value::from(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, ToRegoError> {
        Ok(Value::from(i64::from(v)))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, ToRegoError> {
        Ok(Value::from(i64::from(v)))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, ToRegoError> {
        Ok(Value::from(i64::from(v)))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, ToRegoError> {
        Ok(Value::from(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, ToRegoError> {
        Ok(Value::from(u64::from(v)))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, ToRegoError> {
        Ok(Value::from(u64::from(v)))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, ToRegoError> {
        Ok(Value::from(u64::from(v)))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, ToRegoError> {
        Ok(Value::from(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, ToRegoError> {
        Ok(Value::from(f64::from(v)))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, ToRegoError> {
        Ok(Value::from(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, ToRegoError> {
        Ok(Value::from(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, ToRegoError> {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ToRegoError> {
        Ok(Value::from(
            v.iter()
                .map(|b| Value::from(u64::from(*b)))
                .collect::<Vec<_>>(),
        ))
    }
    fn serialize_none(self) -> Result<Value, ToRegoError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ToRegoError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, ToRegoError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ToRegoError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ToRegoError> {
        Ok(self.key(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, ToRegoError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ToRegoError> {
        let mut map = BTreeMap::new();
        map.insert(self.key(variant), value.serialize(self)?);
        Ok(object(map))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'k>, ToRegoError> {
        Ok(Seq {
            ser: self,
            items: Vec::with_capacity(len.unwrap_or(0)),
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'k>, ToRegoError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Seq<'k>, ToRegoError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Seq<'k>, ToRegoError> {
        Ok(Seq {
            ser: self,
            items: Vec::with_capacity(len),
            variant: Some(variant),
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Map<'k>, ToRegoError> {
        Ok(Map {
            ser: self,
            entries: BTreeMap::new(),
            key: None,
            variant: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Map<'k>, ToRegoError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Map<'k>, ToRegoError> {
        Ok(Map {
            ser: self,
            entries: BTreeMap::new(),
            key: None,
            variant: Some(variant),
        })
    }
}

/// A sequence being built (also tuples, and tuple variants as `{variant: [...]}`).
struct Seq<'k> {
    ser: ToRego<'k>,
    items: Vec<Value>,
    variant: Option<&'static str>,
}

impl Seq<'_> {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ToRegoError> {
        self.items.push(value.serialize(self.ser)?);
        Ok(())
    }
    fn finish(self) -> Value {
        let array = Value::from(self.items);
        match self.variant {
            None => array,
            Some(variant) => {
                let mut map = BTreeMap::new();
                map.insert(self.ser.key(variant), array);
                object(map)
            }
        }
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = Value;
    type Error = ToRegoError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ToRegoError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, ToRegoError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = Value;
    type Error = ToRegoError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ToRegoError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, ToRegoError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = Value;
    type Error = ToRegoError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ToRegoError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, ToRegoError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for Seq<'_> {
    type Ok = Value;
    type Error = ToRegoError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ToRegoError> {
        self.push(value)
    }
    fn end(self) -> Result<Value, ToRegoError> {
        Ok(self.finish())
    }
}

/// An object being built (maps, structs, and struct variants as `{variant: {...}}`). (Gathering
/// the entries in a list and building the tree at the end, sorted in one go, measured no faster:
/// regorus turns the tree into its own sorted slice anyway.)
struct Map<'k> {
    ser: ToRego<'k>,
    entries: BTreeMap<Value, Value>,
    key: Option<Value>,
    variant: Option<&'static str>,
}

impl Map<'_> {
    fn finish(self) -> Value {
        let obj = object(self.entries);
        match self.variant {
            None => obj,
            Some(variant) => {
                let mut map = BTreeMap::new();
                map.insert(self.ser.key(variant), obj);
                object(map)
            }
        }
    }
}

impl ser::SerializeMap for Map<'_> {
    type Ok = Value;
    type Error = ToRegoError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ToRegoError> {
        let key = key.serialize(self.ser)?;
        // JSON object keys are strings: keep the input a JSON document, as serde_json would.
        match key {
            Value::String(_) => {
                self.key = Some(key);
                Ok(())
            }
            other => Err(ToRegoError(format!("map key {other} is not a string"))),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ToRegoError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| ToRegoError("map value without a key".into()))?;
        self.entries.insert(key, value.serialize(self.ser)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ToRegoError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for Map<'_> {
    type Ok = Value;
    type Error = ToRegoError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), ToRegoError> {
        let key = self.ser.key(name);
        self.entries.insert(key, value.serialize(self.ser)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ToRegoError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for Map<'_> {
    type Ok = Value;
    type Error = ToRegoError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), ToRegoError> {
        let key = self.ser.key(name);
        self.entries.insert(key, value.serialize(self.ser)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ToRegoError> {
        Ok(self.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn via_json<T: Serialize>(v: &T) -> Value {
        Value::from(serde_json::to_value(v).unwrap_or_default())
    }

    #[derive(serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(i32, String),
        Struct { a: Option<f64>, b: Vec<bool> },
    }

    #[test]
    fn matches_serde_json_on_every_shape() -> Result<(), ToRegoError> {
        let doc = json!({"n": null, "b": true, "i": -3, "u": 7, "f": 1.5, "s": "x",
                         "a": [1, "two", {"three": [3.0]}], "o": {"k": {}}});
        assert_eq!(to_rego_value(&doc)?, via_json(&doc));
        for shape in [
            Shape::Unit,
            Shape::Newtype(4),
            Shape::Tuple(-1, "t".into()),
            Shape::Struct {
                a: None,
                b: vec![true, false],
            },
            Shape::Struct {
                a: Some(2.25),
                b: vec![],
            },
        ] {
            assert_eq!(to_rego_value(&shape)?, via_json(&shape));
        }
        let map: BTreeMap<String, (u8, char)> = [("k".to_string(), (1, 'c'))].into();
        assert_eq!(to_rego_value(&map)?, via_json(&map));
        Ok(())
    }

    /// Every project input fixture gives the policy the same document on both routes.
    #[test]
    fn policy_inputs_convert_like_serde_json() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/inputs");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let input =
                    crate::policy::PolicyInput::from_json(&std::fs::read_to_string(&path)?)?;
                assert_eq!(
                    to_rego_value(&input)?,
                    via_json(&input),
                    "{}",
                    path.display()
                );
                // Built, then shared by a clone: the same document both times.
                assert_eq!(
                    input_to_rego(&input)?,
                    via_json(&input),
                    "{}",
                    path.display()
                );
                let clone = input.clone();
                assert_eq!(
                    input_to_rego(&clone)?,
                    via_json(&input),
                    "{}",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(
            checked >= 10,
            "only {checked} input fixtures in {}",
            dir.display()
        );
        Ok(())
    }

    /// A clone edited after its scan value was built converts afresh, never a stale value.
    #[test]
    fn an_edited_scan_is_converted_again() -> Result<(), ToRegoError> {
        use crate::scan::{ScanReport, ScanStatus};
        let report = ScanReport::without_findings(ScanStatus::Pending, "file", None);
        assert_eq!(report.engine_value()?, via_json(&report));
        let mut edited = report.clone();
        edited.status = ScanStatus::Failed;
        assert_eq!(edited.engine_value()?, via_json(&edited));
        assert_eq!(report.engine_value()?, via_json(&report));
        Ok(())
    }

    #[test]
    fn non_string_map_keys_are_rejected() {
        let map: BTreeMap<u8, u8> = [(1, 2)].into();
        assert!(to_rego_value(&map).is_err());
    }
}
