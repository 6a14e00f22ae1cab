//! Data: the fixture directories, loading their rows and summaries with times shifted to now,
//! and the timestamp forms Lacework writes and reads.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// The project's own emulator data (`tests/fixtures/lacework-emulator`).
pub fn project_fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/lacework-emulator")
}

/// Lacework's reference responses (`../shared/fixtures/lacework` seen from the project root);
/// absent on a user's clone.
pub fn shared_fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/lacework")
}

/// `t` as Lacework writes times: RFC 3339, milliseconds, `Z`.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A time in RFC 3339 or the `2025-08-06 13:05:05.000 Z` form of newer SDK fixtures'
/// `lastScanTime`.
pub(crate) fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let text = v?.as_str()?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(
        text.strip_suffix('Z').unwrap_or(text).trim(),
        "%Y-%m-%d %H:%M:%S%.f",
    )
    .ok()
    .map(|t| t.and_utc())
}

/// Sets `key` to now on the entries that lack it (rows' `startTime`, summaries' `lastScanTime`).
pub(crate) fn stamp(entries: Vec<Value>, key: &str) -> Vec<Value> {
    let now = rfc3339(Utc::now());
    entries
        .into_iter()
        .map(|mut entry| {
            if entry.get(key).is_none()
                && let Some(obj) = entry.as_object_mut()
            {
                obj.insert(key.into(), Value::String(now.clone()));
            }
            entry
        })
        .collect()
}

/// The entries of a Lacework answer: an array, or the array under `data`.
pub(crate) fn entries(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(entries) => Some(entries),
        Value::Object(mut m) => match m.remove("data") {
            Some(Value::Array(entries)) => Some(entries),
            _ => None,
        },
        _ => None,
    }
}

/// Loads the container-vulnerability rows and the image summaries of every `*.json` in `dir`,
/// shifting `startTime` and `lastScanTime` so the directory's newest row (else summary) is an
/// hour old (search windows are relative to now).
pub(crate) fn load_dir(dir: &Path) -> std::io::Result<(Vec<Value>, Vec<Value>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let (mut rows, mut summaries) = (Vec::new(), Vec::new());
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let Some(entries) = serde_json::from_str::<Value>(&text).ok().and_then(entries) else {
            continue;
        };
        for entry in entries {
            if entry.get("vulnId").is_some() && entry.get("featureKey").is_some() {
                rows.push(entry);
            } else if entry.get("scanStatus").is_some() || entry.get("lastScanTime").is_some() {
                summaries.push(entry);
            }
        }
    }
    let newest = rows
        .iter()
        .filter_map(|r| parse_time(r.get("startTime")))
        .max()
        .or_else(|| {
            summaries
                .iter()
                .filter_map(|r| parse_time(r.get("lastScanTime")))
                .max()
        });
    let target = Utc::now() - chrono::Duration::hours(1);
    let shift = newest.map_or(chrono::Duration::zero(), |n| target - n);
    for (list, key) in [(&mut rows, "startTime"), (&mut summaries, "lastScanTime")] {
        for entry in list.iter_mut() {
            let t = parse_time(entry.get(key)).map_or(target, |t| t + shift);
            if let Some(obj) = entry.as_object_mut() {
                obj.insert(key.into(), Value::String(rfc3339(t)));
            }
        }
    }
    Ok((rows, summaries))
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use serde_json::json;

    #[test]
    fn times_in_both_forms() -> TestResult {
        let t = parse_time(Some(&json!("2025-08-06T13:05:05.123Z"))).ok_or("missing")?;
        assert_eq!(rfc3339(t), "2025-08-06T13:05:05.123Z");
        let t = parse_time(Some(&json!("2025-08-06 13:05:05.000 Z"))).ok_or("missing")?;
        assert_eq!(rfc3339(t), "2025-08-06T13:05:05.000Z");
        assert_eq!(parse_time(Some(&json!("yesterday"))), None);
        assert_eq!(parse_time(Some(&json!(1))), None);
        Ok(())
    }

    #[test]
    fn entries_and_stamps() -> TestResult {
        assert_eq!(entries(json!([1])), Some(vec![json!(1)]));
        assert_eq!(entries(json!({"data": [2]})), Some(vec![json!(2)]));
        assert_eq!(entries(json!({"data": 2})), None);
        assert_eq!(entries(json!("x")), None);
        let stamped = stamp(vec![json!({"startTime": "kept"}), json!({})], "startTime");
        assert_eq!(stamped[0]["startTime"], "kept");
        assert!(parse_time(stamped[1].get("startTime")).is_some());
        Ok(())
    }

    #[test]
    fn a_directory_is_shifted_so_its_newest_row_is_an_hour_old() -> TestResult {
        let dir = std::env::temp_dir().join(format!("emu-fixtures-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let row = |t: &str| json!({"vulnId": "CVE-1", "featureKey": {}, "startTime": t});
        let data = json!({"data": [row("2020-01-01T00:00:00Z"), row("2020-01-01T02:00:00Z"),
            {"scanStatus": "Success", "lastScanTime": "2020-01-01T01:00:00Z"}, {"other": 1}]});
        std::fs::write(dir.join("a.json"), data.to_string())?;
        std::fs::write(dir.join("b.txt"), "not json")?;
        let (rows, summaries) = load_dir(&dir)?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!((rows.len(), summaries.len()), (2, 1));
        let newest = parse_time(rows[1].get("startTime")).ok_or("missing")?;
        let age = Utc::now() - newest;
        assert!((age - chrono::Duration::hours(1)).num_seconds().abs() < 5);
        let oldest = parse_time(rows[0].get("startTime")).ok_or("missing")?;
        assert_eq!(newest - oldest, chrono::Duration::hours(2));
        let summary = parse_time(summaries[0].get("lastScanTime")).ok_or("missing")?;
        assert_eq!(newest - summary, chrono::Duration::hours(1));
        Ok(())
    }
}
