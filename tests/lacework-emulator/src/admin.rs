//! The admin API under `/__admin/` for the Python and Node suites (see the crate README):
//! counters, faults, reset, token expiry, configuration, and adding rows and summaries.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth;
use crate::faults::Fault;
use crate::fixtures;
use crate::http::{LwError, json_response, lw_error};
use crate::state::{Shared, lock};

/// The admin routes; any other `/__admin/…` call, or another method, is 404
/// "Unknown admin endpoint".
pub(crate) fn router() -> Router<Shared> {
    let admin = |route: MethodRouter<Shared>| route.head(unknown).fallback(unknown);
    Router::new()
        .route("/__admin/counters", admin(get(counters)))
        .route("/__admin/config", admin(get(config).post(configure)))
        .route("/__admin/reset", admin(post(reset)))
        .route("/__admin/expire-tokens", admin(post(expire_tokens)))
        .route(
            "/__admin/faults",
            admin(post(add_faults).delete(clear_faults)),
        )
        .route("/__admin/rows", admin(post(add_rows)))
        .route("/__admin/summaries", admin(post(add_summaries)))
        .route("/__admin/", any(unknown))
        .route("/__admin/{*rest}", any(unknown))
}

async fn unknown() -> Response {
    lw_error(StatusCode::NOT_FOUND, "Unknown admin endpoint")
}

/// `GET /__admin/counters`.
async fn counters(State(shared): State<Shared>) -> Response {
    json_response(StatusCode::OK, json!(lock(&shared).counters))
}

/// `GET /__admin/config`.
async fn config(State(shared): State<Shared>) -> Response {
    json_response(StatusCode::OK, json!(lock(&shared).config))
}

/// Partial [`crate::Config`] for `POST /__admin/config`.
#[derive(Debug, Default, Deserialize)]
struct ConfigPatch {
    page_size: Option<usize>,
    scan_duration_ms: Option<u64>,
    token_ttl_cap_secs: Option<f64>,
    rate_limit: Option<u32>,
    registries: Option<Vec<String>>,
}

/// `POST /__admin/config`: changes the fields given; answers the configuration.
async fn configure(State(shared): State<Shared>, body: Bytes) -> Response {
    let patch = match serde_json::from_slice::<ConfigPatch>(&body) {
        Ok(p) => p,
        Err(e) => return lw_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let mut s = lock(&shared);
    if let Some(v) = patch.page_size {
        s.config.page_size = v.max(1);
    }
    if let Some(v) = patch.scan_duration_ms {
        s.config.scan_duration_ms = v;
    }
    if patch.token_ttl_cap_secs.is_some() {
        s.config.token_ttl_cap_secs = patch.token_ttl_cap_secs;
    }
    if let Some(v) = patch.rate_limit {
        s.config.rate_limit = v;
    }
    if let Some(v) = patch.registries {
        s.config.registries = v;
    }
    json_response(StatusCode::OK, json!(s.config))
}

/// `POST /__admin/reset`.
async fn reset(State(shared): State<Shared>) -> Response {
    lock(&shared).reset();
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /__admin/expire-tokens`.
async fn expire_tokens(State(shared): State<Shared>) -> Response {
    auth::expire_tokens(&mut lock(&shared));
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /__admin/faults`: one fault or a list.
async fn add_faults(State(shared): State<Shared>, body: Bytes) -> Response {
    let faults = serde_json::from_slice::<Value>(&body).and_then(|v| match v {
        Value::Array(_) => serde_json::from_value::<Vec<Fault>>(v),
        v => serde_json::from_value::<Fault>(v).map(|f| vec![f]),
    });
    match faults {
        Ok(faults) => {
            lock(&shared).faults.extend(faults);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => lw_error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// `DELETE /__admin/faults`.
async fn clear_faults(State(shared): State<Shared>) -> Response {
    lock(&shared).faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

/// The entries of an admin upload, `{"data": [...]}` or an array; the 400 names `what`.
fn upload(body: &[u8], what: &str) -> Result<Vec<Value>, LwError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ (Value::Array(_) | Value::Object(_))) => fixtures::entries(v)
            .ok_or_else(|| LwError::bad_request(format!("expected {{\"data\": [{what}]}}"))),
        _ => Err(LwError::bad_request(format!("expected {what}"))),
    }
}

/// `POST /__admin/rows`.
async fn add_rows(State(shared): State<Shared>, body: Bytes) -> Response {
    match upload(&body, "rows") {
        Ok(rows) => {
            let n = rows.len();
            lock(&shared).add_rows(rows);
            json_response(StatusCode::OK, json!({"added": n}))
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /__admin/summaries`.
async fn add_summaries(State(shared): State<Shared>, body: Bytes) -> Response {
    match upload(&body, "summaries") {
        Ok(summaries) => {
            let n = summaries.len();
            lock(&shared).add_summaries(summaries);
            json_response(StatusCode::OK, json!({"added": n}))
        }
        Err(e) => e.into_response(),
    }
}
