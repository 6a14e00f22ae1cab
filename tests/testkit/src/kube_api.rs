//! The API server's REST API as the test's administrator, as kubectl speaks it: the one client
//! the control-plane tests set their scene with.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::kube::{ADMIN_TOKEN, ControlPlane};

/// A client of one [`ControlPlane`], trusting its serving certificate, with the admin token.
#[derive(Debug, Clone)]
pub struct KubeApi {
    http: reqwest::Client,
    base: String,
}

/// One answer: the status, the body (JSON, else the text as a string) and `Warning` headers.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
    /// The `Warning` headers (admission webhooks' warnings arrive here).
    pub warnings: Vec<String>,
}

impl ControlPlane {
    /// A client of this API server, once `/readyz` answers (or an error with its log).
    pub async fn api(&self) -> Result<KubeApi, String> {
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(60));
        for cert in reqwest::Certificate::from_pem_bundle(&self.ca_pem()?)
            .map_err(|e| format!("the API server's certificate: {e}"))?
        {
            http = http.add_root_certificate(cert);
        }
        let api = KubeApi {
            http: http.build().map_err(|e| format!("HTTP client: {e}"))?,
            base: self.url(),
        };
        let started = Instant::now();
        loop {
            self.check_running()?;
            if let Ok(answer) = api.get("/readyz").await
                && answer.status == 200
            {
                return Ok(api);
            }
            if started.elapsed() > Duration::from_secs(180) {
                return Err(format!("kube-apiserver not ready:\n{}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl KubeApi {
    /// Sends `method path` with an optional JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let warnings = response
            .headers()
            .get_all("warning")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            body,
            warnings,
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Answer, String> {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// `POST collection` with `object`, whatever the answer.
    pub async fn create(&self, collection: &str, object: &Value) -> Result<Answer, String> {
        self.send(reqwest::Method::POST, collection, Some(object))
            .await
    }

    /// `POST collection` with `object`, which must be created (201); its stored form.
    pub async fn create_ok(&self, collection: &str, object: &Value) -> Result<Value, String> {
        let answer = self.create(collection, object).await?;
        if answer.status != 201 {
            return Err(format!(
                "POST {collection}: {} {}",
                answer.status, answer.body
            ));
        }
        Ok(answer.body)
    }

    /// `DELETE path`, which must succeed (200).
    pub async fn delete_ok(&self, path: &str) -> Result<(), String> {
        let answer = self.send(reqwest::Method::DELETE, path, None).await?;
        if answer.status != 200 {
            return Err(format!("DELETE {path}: {} {}", answer.status, answer.body));
        }
        Ok(())
    }

    /// The collection a manifest is created in, found through the API server's discovery (as
    /// kubectl does), e.g. `/apis/apps/v1/namespaces/helios-system/deployments`.
    pub async fn collection_of(&self, object: &Value) -> Result<String, String> {
        let api_version = object["apiVersion"]
            .as_str()
            .ok_or("manifest without apiVersion")?;
        let kind = object["kind"].as_str().ok_or("manifest without kind")?;
        let group_path = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        let discovery = self.get(&group_path).await?;
        let resource = discovery.body["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["kind"] == kind && !r["name"].as_str().unwrap_or("/").contains('/'))
            .ok_or_else(|| format!("the API server does not serve {api_version} {kind}"))?;
        let name = resource["name"].as_str().unwrap_or_default();
        Ok(
            match (
                resource["namespaced"].as_bool(),
                object["metadata"]["namespace"].as_str(),
            ) {
                (Some(true), Some(ns)) => format!("{group_path}/namespaces/{ns}/{name}"),
                (Some(true), None) => format!("{group_path}/namespaces/default/{name}"),
                _ => format!("{group_path}/{name}"),
            },
        )
    }

    /// Creates the namespace `name`.
    pub async fn namespace(&self, name: &str) -> Result<(), String> {
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        self.create_ok("/api/v1/namespaces", &object)
            .await
            .map(drop)
    }

    /// Waits until `path` answers 200 (a new CRD is served a moment after it is created).
    pub async fn wait_served(&self, path: &str) -> Result<(), String> {
        let started = Instant::now();
        while self.get(path).await?.status != 200 {
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("{path} never served"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }
}

/// cert-manager's `Issuer` or `Certificate` as a bare CustomResourceDefinition (any content), so
/// the manifests that use them can be created; their content is cert-manager's to validate.
pub fn cert_manager_crd(kind: &str, plural: &str) -> Value {
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.cert-manager.io")},
        "spec": {
            "group": "cert-manager.io", "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}
