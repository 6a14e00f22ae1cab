//! On-demand scans: `POST …/Containers/scan` starts one, `GET …/scan/{requestId}` reports it;
//! after `scan_duration_ms` it completes with generated rows and a summary (none for
//! repositories containing `clean`) or fails (repositories containing `unsupported`).

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::Authed;
use crate::fixtures::rfc3339;
use crate::http::{json_response, lw_error};
use crate::search::count_findings;
use crate::state::{Inner, Shared, hex, lock};

/// An on-demand scan request.
pub(crate) struct ScanJob {
    registry: String,
    repository: String,
    /// A tag or a `sha256:` digest.
    tag: String,
    started: Instant,
    state: JobState,
}

/// Where a scan stands.
enum JobState {
    Scanning,
    Completed { eval_guid: String },
    Failed { message: String },
}

/// How many vulnerabilities an on-demand scan of `digest` finds: 1 to 3, derived from the
/// digest so tests can predict it (repositories containing `clean` get none).
pub fn generated_vuln_count(digest: &str) -> usize {
    1 + Sha256::digest(digest.as_bytes())[0] as usize % 3
}

/// The digest the emulator gives an image scanned by tag.
pub fn digest_for_tag(registry: &str, repository: &str, tag: &str) -> String {
    format!(
        "sha256:{}",
        hex(&Sha256::digest(
            format!("{registry}/{repository}:{tag}").as_bytes()
        ))
    )
}

fn image_id_for(digest: &str) -> String {
    format!(
        "sha256:{}",
        hex(&Sha256::digest(format!("id/{digest}").as_bytes()))
    )
}

/// `POST …/Containers/scan`: `{"registry", "repository", "tag"}` → 201 with a request id.
pub(crate) async fn request(_: Authed, State(shared): State<Shared>, body: Bytes) -> Response {
    let mut s = lock(&shared);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return lw_error(StatusCode::BAD_REQUEST, "Request body must be JSON");
    };
    let get = |k: &str| {
        req.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|v| !v.is_empty())
    };
    let (Some(registry), Some(repository), Some(tag)) =
        (get("registry"), get("repository"), get("tag"))
    else {
        return lw_error(
            StatusCode::BAD_REQUEST,
            "registry, repository and tag are required",
        );
    };
    if !s.config.registries.is_empty() && !s.config.registries.contains(&registry) {
        return lw_error(
            StatusCode::BAD_REQUEST,
            "Could not find integration matching the registry provided",
        );
    }
    let id = s.id("scan");
    let request_id = format!(
        "{}-{}-{}-{}-{}",
        &id[..8],
        &id[8..12],
        &id[12..16],
        &id[16..20],
        &id[20..32]
    );
    s.scans.insert(
        request_id.clone(),
        ScanJob {
            registry,
            repository,
            tag,
            started: Instant::now(),
            state: JobState::Scanning,
        },
    );
    json_response(
        StatusCode::CREATED,
        json!({"data": {"requestId": request_id, "status": "scanning"}}),
    )
}

/// `GET …/Containers/scan/{requestId}`: the scan's status; 404 for unknown ids. Extra path
/// segments are ignored: the id is the last one.
pub(crate) async fn status(
    _: Authed,
    State(shared): State<Shared>,
    request_id: Option<Path<String>>,
) -> Response {
    let path = request_id.map(|Path(p)| p).unwrap_or_default();
    let id = path.rsplit('/').next().unwrap_or_default();
    let s = lock(&shared);
    let Some(job) = s.scans.get(id) else {
        return lw_error(StatusCode::NOT_FOUND, "Scan request not found");
    };
    let data = match &job.state {
        JobState::Scanning => json!({"requestId": id, "status": "scanning"}),
        JobState::Completed { eval_guid } => {
            json!({"requestId": id, "status": "completed", "evalGuid": eval_guid})
        }
        JobState::Failed { message } => {
            json!({"requestId": id, "status": "failed", "message": message})
        }
    };
    json_response(StatusCode::OK, json!({"data": data}))
}

/// Finishes the scans whose time has come, adding their rows and summaries to the data.
pub(crate) fn advance(s: &mut Inner) {
    let duration = Duration::from_millis(s.config.scan_duration_ms);
    let due: Vec<String> = s
        .scans
        .iter()
        .filter(|(_, j)| matches!(j.state, JobState::Scanning) && j.started.elapsed() >= duration)
        .map(|(id, _)| id.clone())
        .collect();
    for id in due {
        let eval_guid = s.id("eval");
        let Some(job) = s.scans.get_mut(&id) else {
            continue;
        };
        if job.repository.contains("unsupported") {
            job.state = JobState::Failed {
                message: format!(
                    "Unsupported image {}/{}: no supported operating system or package manager found",
                    job.registry, job.repository
                ),
            };
            let summary = job_summary(job, "Unsupported", &[]);
            s.summaries.push(summary);
            continue;
        }
        let rows = generate_rows(job, &id, &eval_guid);
        let summary = job_summary(job, "Success", &rows);
        job.state = JobState::Completed { eval_guid };
        s.rows.extend(rows);
        s.summaries.push(summary);
    }
}

/// The image a job scans: its digest and tags (none when scanned by digest).
fn image(job: &ScanJob) -> (String, Vec<String>) {
    if job.tag.starts_with("sha256:") {
        (job.tag.clone(), vec![])
    } else {
        (
            digest_for_tag(&job.registry, &job.repository, &job.tag),
            vec![job.tag.clone()],
        )
    }
}

/// The summary an on-demand scan leaves behind.
fn job_summary(job: &ScanJob, status: &str, rows: &[Value]) -> Value {
    let (digest, tags) = image(job);
    let registry = match job.registry.as_str() {
        "index.docker.io" => "docker.io",
        other => other,
    };
    let mut summary = json!({
        "containerCount": 0,
        "digest": digest,
        "imageId": image_id_for(&digest),
        "lastScanTime": rfc3339(Utc::now()),
        "registry": registry,
        "repository": job.repository,
        "tag": tags.first().cloned().unwrap_or_default(),
        "scanStatus": status,
    });
    let refs: Vec<&Value> = rows.iter().collect();
    count_findings(&mut summary, &refs);
    summary
}

/// The rows a completed scan finds: [`generated_vuln_count`] findings, alternately fixable.
fn generate_rows(job: &ScanJob, request_id: &str, eval_guid: &str) -> Vec<Value> {
    let (digest, tags) = image(job);
    let image_id = image_id_for(&digest);
    let now = Utc::now();
    let severities = ["Critical", "High", "Medium", "Low"];
    let count = if job.repository.contains("clean") {
        0
    } else {
        generated_vuln_count(&digest)
    };
    (0..count)
        .map(|i| {
            let fixable = i % 2 == 0;
            json!({
                "evalGuid": eval_guid,
                "evalCtx": {
                    "image_info": {
                        "digest": digest,
                        "id": image_id,
                        "registry": job.registry,
                        "repo": job.repository,
                        "tags": tags,
                        "scan_created_time": now.timestamp(),
                        "status": "Success",
                        "type": "Docker",
                    },
                    "is_reeval": false,
                    "request_source": "PLATFORM_SCANNER",
                    "scan_request_props": {
                        "reqId": request_id,
                        "reqSource": "ondemand",
                        "scanCompletionUtcTime": now.timestamp(),
                        "scan_start_time": now.timestamp(),
                    },
                },
                "featureKey": {"name": format!("pkg-{i}"), "namespace": "debian:12", "version": format!("1.{i}.0")},
                "fixInfo": {
                    "compare_result": if fixable { 1 } else { 0 },
                    "fix_available": if fixable { 1 } else { 0 },
                    "fixed_version": if fixable { format!("1.{i}.1") } else { String::new() },
                },
                "imageId": image_id,
                "severity": severities[i % severities.len()],
                "startTime": rfc3339(now),
                "status": "VULNERABLE",
                "vulnId": format!("CVE-2099-{:04}", 1000 + i),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use crate::state::Config;

    fn job(repository: &str, tag: &str) -> ScanJob {
        ScanJob {
            registry: "index.docker.io".into(),
            repository: repository.into(),
            tag: tag.into(),
            started: Instant::now(),
            state: JobState::Scanning,
        }
    }

    #[test]
    fn scans_complete_fail_or_find_nothing() -> TestResult {
        let mut s = Inner::new(
            Config {
                scan_duration_ms: 0,
                ..Config::default()
            },
            vec![],
            vec![],
        );
        s.scans.insert("a".into(), job("library/nginx", "1.0"));
        s.scans.insert("b".into(), job("acme/unsupported", "1.0"));
        s.scans.insert("c".into(), job("acme/clean", "sha256:abc"));
        advance(&mut s);
        let digest = digest_for_tag("index.docker.io", "library/nginx", "1.0");
        assert_eq!(s.rows.len(), generated_vuln_count(&digest));
        assert!(
            s.rows
                .iter()
                .all(|r| r["evalCtx"]["scan_request_props"]["reqId"] == "a")
        );
        assert!(matches!(s.scans["a"].state, JobState::Completed { .. }));
        assert!(matches!(s.scans["b"].state, JobState::Failed { .. }));
        assert!(matches!(s.scans["c"].state, JobState::Completed { .. }));
        let mut statuses: Vec<String> = s
            .summaries
            .iter()
            .map(|v| format!("{} {} {}", v["repository"], v["scanStatus"], v["tag"]))
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [
                r#""acme/clean" "Success" """#,
                r#""acme/unsupported" "Unsupported" "1.0""#,
                r#""library/nginx" "Success" "1.0""#,
            ]
        );
        let clean = s.summaries.iter().find(|v| v["repository"] == "acme/clean");
        assert_eq!(clean.ok_or("missing")?["digest"], "sha256:abc");
        assert!(s.summaries.iter().all(|v| v["registry"] == "docker.io"));
        Ok(())
    }

    #[test]
    fn scans_wait_for_their_duration() -> TestResult {
        let mut s = Inner::new(Config::default(), vec![], vec![]);
        s.scans.insert("a".into(), job("library/nginx", "1.0"));
        advance(&mut s);
        assert!(matches!(s.scans["a"].state, JobState::Scanning));
        assert!(s.rows.is_empty());
        Ok(())
    }
}
