//! The two searches — `Vulnerabilities/Containers/search` over rows and
//! `VulnerabilityObservations/ImageSummary/search` over one summary per image — and the paging
//! both share (`paging.urls.nextPage`, followed with `GET`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::auth::Authed;
use crate::filters::{self, field};
use crate::fixtures::{parse_time, rfc3339};
use crate::http::{host, json_response, lw_error, search_request};
use crate::state::{Inner, Shared, lock};

/// The container search's path.
pub(crate) const SEARCH_PATH: &str = "/api/v2/Vulnerabilities/Containers/search";
/// The image summary search's path.
pub(crate) const SUMMARY_PATH: &str = "/api/v2/VulnerabilityObservations/ImageSummary/search";

/// `POST …/Containers/search`: the rows in `timeFilter` (default the last day, at most 7 days)
/// that pass `filters`, newest first, paged; 204 when none.
pub(crate) async fn containers(
    _: Authed,
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match search_request(&body) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let (start, end) = match time_filter(&req, Utc::now()) {
        Ok(range) => range,
        Err(message) => return lw_error(StatusCode::BAD_REQUEST, message),
    };
    let mut s = lock(&shared);
    let in_range = s
        .rows
        .iter()
        .filter(|row| parse_time(row.get("startTime")).is_some_and(|t| start <= t && t < end));
    match filters::select(in_range, &filters::of_request(&req)) {
        Ok(hits) => paged(&mut s, &host(&headers), SEARCH_PATH, hits, "startTime"),
        Err(e) => lw_error(StatusCode::BAD_REQUEST, &e),
    }
}

/// A search's `timeFilter` at `now`: default the last day, start before end, at most 7 days.
fn time_filter(
    req: &Value,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), &'static str> {
    let tf = req.get("timeFilter");
    let start = match tf.and_then(|t| t.get("startTime")) {
        Some(v) => parse_time(Some(v)).ok_or("Invalid timeFilter.startTime")?,
        None => now - chrono::Duration::days(1),
    };
    let end = match tf.and_then(|t| t.get("endTime")) {
        Some(v) => parse_time(Some(v)).ok_or("Invalid timeFilter.endTime")?,
        None => now,
    };
    if end <= start {
        return Err("timeFilter.endTime must be after startTime");
    }
    if end - start > chrono::Duration::days(7) + chrono::Duration::seconds(1) {
        return Err("The time range of a search cannot exceed 7 days");
    }
    Ok((start, end))
}

/// `POST …/ImageSummary/search`: the same filters as the container search over one summary per
/// image digest; no time range (Lacework's CLI sends none), newest scans first, paged.
pub(crate) async fn summaries(
    _: Authed,
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match search_request(&body) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let mut s = lock(&shared);
    let generation = (s.rows.len(), s.summaries.len());
    if s.current
        .as_ref()
        .is_none_or(|(built, _)| *built != generation)
    {
        s.current = Some((generation, current_summaries(&s)));
    }
    let current = s.current.as_ref().map_or(&[][..], |(_, v)| v.as_slice());
    match filters::select(current, &filters::of_request(&req)) {
        Ok(hits) => paged(&mut s, &host(&headers), SUMMARY_PATH, hits, "lastScanTime"),
        Err(e) => lw_error(StatusCode::BAD_REQUEST, &e),
    }
}

/// `GET …/Containers/search/{page}`: a next page of the container search.
pub(crate) async fn next_container_page(
    _: Authed,
    State(shared): State<Shared>,
    page: Option<Path<String>>,
    headers: HeaderMap,
) -> Response {
    let page = page.map(|Path(p)| p).unwrap_or_default();
    next_page(&mut lock(&shared), &host(&headers), SEARCH_PATH, &page)
}

/// `GET …/ImageSummary/search/{page}`: a next page of the image summary search.
pub(crate) async fn next_summary_page(
    _: Authed,
    State(shared): State<Shared>,
    page: Option<Path<String>>,
    headers: HeaderMap,
) -> Response {
    let page = page.map(|Path(p)| p).unwrap_or_default();
    next_page(&mut lock(&shared), &host(&headers), SUMMARY_PATH, &page)
}

/// Stores `hits` newest first (by `time_key`) as pages and answers the first; 204 when empty.
fn paged(s: &mut Inner, host: &str, base: &str, mut hits: Vec<Value>, time_key: &str) -> Response {
    if hits.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    // Newest first, as Lacework's searches answer.
    hits.sort_by_key(|r| std::cmp::Reverse(parse_time(r.get(time_key))));
    let total = hits.len();
    let pages: Vec<Vec<Value>> = hits
        .chunks(s.config.page_size)
        .map(<[Value]>::to_vec)
        .collect();
    let id = s.id("page");
    s.pages.insert(id.clone(), pages);
    page_response(s, host, base, &id, 0, total)
}

/// Page `index` of result set `id`, with the `nextPage` URL
/// `http://{host}{base}/{id}.{index + 1}.{total}` unless it is the last.
fn page_response(
    s: &mut Inner,
    host: &str,
    base: &str,
    id: &str,
    index: usize,
    total: usize,
) -> Response {
    let Some(pages) = s.pages.get(id) else {
        return lw_error(StatusCode::NOT_FOUND, "Unknown or expired page");
    };
    let Some(page) = pages.get(index).cloned() else {
        return lw_error(StatusCode::NOT_FOUND, "Unknown or expired page");
    };
    let last = index + 1 >= pages.len();
    let next = (!last).then(|| format!("http://{host}{base}/{id}.{}.{total}", index + 1));
    if last {
        // A result set is read once, front to back: free it with its last page.
        s.pages.remove(id);
    }
    json_response(
        StatusCode::OK,
        json!({
            "paging": {"rows": page.len(), "totalRows": total, "urls": {"nextPage": next}},
            "data": page,
        }),
    )
}

/// The page named by `page` (`{id}.{index}.{total}`, after any further path segments, which
/// stay part of the base) of a search at `base`.
fn next_page(s: &mut Inner, host: &str, base: &str, page: &str) -> Response {
    let (base, token) = match page.rsplit_once('/') {
        Some((dir, token)) => (format!("{base}/{dir}"), token),
        None => (base.to_string(), page),
    };
    let mut parts = token.split('.');
    let (Some(id), Some(Ok(index)), Some(Ok(total))) = (
        parts.next(),
        parts.next().map(str::parse::<usize>),
        parts.next().map(str::parse::<usize>),
    ) else {
        return lw_error(StatusCode::BAD_REQUEST, "Malformed page token");
    };
    page_response(s, host, &base, id, index, total)
}

/// One summary per image digest (else image id): the latest of those given explicitly (data
/// files, on-demand scans) and the one derived from the rows' newest evaluation.
fn current_summaries(s: &Inner) -> Vec<Value> {
    let mut by_image: BTreeMap<String, Value> = BTreeMap::new();
    let mut keyless = Vec::new();
    let derived = derive_summaries(&s.rows);
    // Explicit summaries after derived ones, so they win ties.
    for summary in derived.into_iter().chain(s.summaries.iter().cloned()) {
        let key = ["digest", "imageId"]
            .iter()
            .find_map(|k| summary.get(*k).and_then(Value::as_str))
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        let Some(key) = key else {
            keyless.push(summary);
            continue;
        };
        let newer = by_image.get(&key).is_none_or(|have| {
            parse_time(summary.get("lastScanTime")) >= parse_time(have.get("lastScanTime"))
        });
        if newer {
            by_image.insert(key, summary);
        }
    }
    by_image.into_values().chain(keyless).collect()
}

/// A summary per image of `rows`, from its newest evaluation (latest `startTime`): counts by
/// severity and fixable, `lastScanTime` that evaluation's time. Docker Hub is `docker.io` in
/// summaries (the SDK's fixture) where rows say `index.docker.io`.
fn derive_summaries(rows: &[Value]) -> Vec<Value> {
    type Eval<'a> = (Option<DateTime<Utc>>, Vec<&'a Value>);
    let mut images: BTreeMap<String, BTreeMap<String, Eval>> = BTreeMap::new();
    for row in rows {
        let info = field(row, "evalCtx.image_info");
        let image = info
            .and_then(|i| i.get("digest"))
            .or_else(|| row.get("imageId"))
            .and_then(Value::as_str);
        let Some(image) = image else {
            continue;
        };
        let eval = row
            .get("evalGuid")
            .or_else(|| field(row, "evalCtx.scan_request_props.reqId"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let entry = images
            .entry(image.to_string())
            .or_default()
            .entry(eval)
            .or_default();
        entry.0 = entry.0.max(parse_time(row.get("startTime")));
        entry.1.push(row);
    }
    let mut out = Vec::new();
    for evals in images.into_values() {
        let Some((_, (at, rows))) = evals
            .into_iter()
            .max_by(|a, b| (a.1.0, &a.0).cmp(&(b.1.0, &b.0)))
        else {
            continue;
        };
        let Some(first) = rows.first() else {
            continue;
        };
        let info = field(first, "evalCtx.image_info");
        let text = |k: &str| {
            info.and_then(|i| i.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let registry = match text("registry").as_str() {
            "index.docker.io" => "docker.io".to_string(),
            other => other.to_string(),
        };
        let tag = info
            .and_then(|i| i.get("tags"))
            .and_then(|t| t.get(0))
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut summary = json!({
            "containerCount": 0,
            "digest": text("digest"),
            "imageId": first.get("imageId").cloned().unwrap_or_else(|| json!(text("id"))),
            "lastScanTime": at.map(rfc3339),
            "registry": registry,
            "repository": text("repo"),
            "tag": tag,
            "scanStatus": "Success",
        });
        count_findings(&mut summary, &rows);
        out.push(summary);
    }
    out
}

/// Sets the `vulnCount*` fields of `summary` from `rows`.
pub(crate) fn count_findings(summary: &mut Value, rows: &[&Value]) {
    const SEVERITIES: [&str; 5] = ["Critical", "High", "Medium", "Low", "Info"];
    for sev in SEVERITIES {
        summary[format!("vulnCount{sev}")] = json!(0);
        summary[format!("vulnCount{sev}Fixable")] = json!(0);
    }
    for row in rows {
        let sev = match row
            .get("severity")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
            .as_str()
        {
            "critical" => "Critical",
            "high" => "High",
            "medium" => "Medium",
            "low" => "Low",
            _ => "Info",
        };
        let fixable = match field(row, "fixInfo.fix_available") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0) != 0,
            Some(Value::String(t)) => t == "1" || t.eq_ignore_ascii_case("true"),
            _ => false,
        };
        let bump = |v: &mut Value| *v = json!(v.as_u64().unwrap_or(0) + 1);
        bump(&mut summary[format!("vulnCount{sev}")]);
        if fixable {
            bump(&mut summary[format!("vulnCount{sev}Fixable")]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use crate::state::Config;

    fn state(page_size: usize) -> Inner {
        Inner::new(
            Config {
                page_size,
                ..Config::default()
            },
            vec![],
            vec![],
        )
    }

    fn body(r: Response) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
        let status = r.status();
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        let bytes = rt.block_on(axum::body::to_bytes(r.into_body(), usize::MAX))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    fn rows(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"n": i, "startTime": format!("2025-01-01T00:00:{i:02}Z")}))
            .collect()
    }

    #[test]
    fn pages_newest_first_until_the_last_frees_the_set() -> TestResult {
        let mut s = state(2);
        let (status, first) = body(paged(&mut s, "h:1", SEARCH_PATH, rows(5), "startTime"))?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(first["paging"]["rows"], 2);
        assert_eq!(first["paging"]["totalRows"], 5);
        assert_eq!(first["data"][0]["n"], 4);
        assert_eq!(first["data"][1]["n"], 3);
        let next = first["paging"]["urls"]["nextPage"]
            .as_str()
            .ok_or("missing")?;
        let prefix = format!("http://h:1{SEARCH_PATH}/");
        let token = next.strip_prefix(&prefix).ok_or("missing")?.to_string();
        assert!(token.ends_with(".1.5"), "{token}");
        let (_, second) = body(next_page(&mut s, "h:1", SEARCH_PATH, &token))?;
        assert_eq!(second["data"][0]["n"], 2);
        let token = second["paging"]["urls"]["nextPage"]
            .as_str()
            .ok_or("missing")?
            .strip_prefix(&prefix)
            .ok_or("missing")?
            .to_string();
        let (_, last) = body(next_page(&mut s, "h:1", SEARCH_PATH, &token))?;
        assert_eq!(last["paging"]["rows"], 1);
        assert_eq!(last["data"][0]["n"], 0);
        assert_eq!(last["paging"]["urls"]["nextPage"], Value::Null);
        assert!(s.pages.is_empty());
        let (status, gone) = body(next_page(&mut s, "h:1", SEARCH_PATH, &token))?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(gone["message"], "Unknown or expired page");
        Ok(())
    }

    #[test]
    fn empty_results_are_204_and_bad_tokens_400() -> TestResult {
        let mut s = state(2);
        let r = paged(&mut s, "h", SUMMARY_PATH, vec![], "lastScanTime");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        for token in ["", "abc", "a.b.c", "a.1", "x/a.1"] {
            let (status, v) = body(next_page(&mut s, "h", SEARCH_PATH, token))?;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{token}");
            assert_eq!(v["message"], "Malformed page token");
        }
        Ok(())
    }

    #[test]
    fn extra_segments_stay_in_the_base() -> TestResult {
        let mut s = state(1);
        let (_, first) = body(paged(&mut s, "h", SUMMARY_PATH, rows(3), "startTime"))?;
        let next = first["paging"]["urls"]["nextPage"]
            .as_str()
            .ok_or("missing")?;
        let token = next.rsplit('/').next().ok_or("missing")?;
        let (_, second) = body(next_page(&mut s, "h", SUMMARY_PATH, &format!("a/{token}")))?;
        let next = second["paging"]["urls"]["nextPage"]
            .as_str()
            .ok_or("missing")?;
        assert!(
            next.starts_with(&format!("http://h{SUMMARY_PATH}/a/")),
            "{next}"
        );
        Ok(())
    }

    #[test]
    fn time_filters() -> TestResult {
        let now = Utc::now();
        let (start, end) = time_filter(&json!({}), now)?;
        assert_eq!((end - start, end), (chrono::Duration::days(1), now));
        let tf = |start: &str, end: &str| {
            time_filter(
                &json!({"timeFilter": {"startTime": start, "endTime": end}}),
                now,
            )
        };
        assert!(tf("2025-01-01T00:00:00Z", "2025-01-08T00:00:01Z").is_ok());
        assert_eq!(
            tf("2025-01-01T00:00:00Z", "2025-01-08T00:00:02Z"),
            Err("The time range of a search cannot exceed 7 days")
        );
        assert_eq!(
            tf("2025-01-02T00:00:00Z", "2025-01-01T00:00:00Z"),
            Err("timeFilter.endTime must be after startTime")
        );
        assert_eq!(
            tf("soon", "2025-01-01T00:00:00Z"),
            Err("Invalid timeFilter.startTime")
        );
        assert_eq!(
            tf("2025-01-01T00:00:00Z", "later"),
            Err("Invalid timeFilter.endTime")
        );
        Ok(())
    }

    #[test]
    fn summaries_come_from_the_newest_evaluation_and_explicit_ones_win_ties() -> TestResult {
        let row = |eval: &str, t: &str, sev: &str, fix: i64| {
            json!({"evalGuid": eval, "startTime": t, "severity": sev,
                "fixInfo": {"fix_available": fix}, "imageId": "sha256:id",
                "evalCtx": {"image_info": {"digest": "sha256:d", "registry": "index.docker.io",
                    "repo": "library/nginx", "tags": ["1.0"]}}})
        };
        let mut s = state(10);
        s.rows = vec![
            row("old", "2025-01-01T00:00:00Z", "Critical", 1),
            row("new", "2025-01-02T00:00:00Z", "High", 1),
            row("new", "2025-01-02T00:00:00Z", "weird", 0),
        ];
        let derived = current_summaries(&s);
        assert_eq!(derived.len(), 1);
        let d = &derived[0];
        assert_eq!(d["registry"], "docker.io");
        assert_eq!(d["tag"], "1.0");
        assert_eq!(d["lastScanTime"], "2025-01-02T00:00:00.000Z");
        assert_eq!(
            (d["vulnCountCritical"].clone(), d["vulnCountHigh"].clone()),
            (json!(0), json!(1))
        );
        assert_eq!(
            (
                d["vulnCountHighFixable"].clone(),
                d["vulnCountInfo"].clone()
            ),
            (json!(1), json!(1))
        );
        s.summaries = vec![
            json!({"digest": "sha256:d", "lastScanTime": "2025-01-02T00:00:00.000Z", "scanStatus": "Failed"}),
            json!({"scanStatus": "Success"}),
        ];
        let current = current_summaries(&s);
        assert_eq!(current.len(), 2);
        assert_eq!(current[0]["scanStatus"], "Failed");
        Ok(())
    }
}
