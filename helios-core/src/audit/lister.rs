//! Lists the workloads of every inspected kind through the API server, with kube-rs.
//!
//! Objects are read as untyped JSON ([`kube::api::DynamicObject`]) so the image extraction is
//! exactly admission's ([`crate::admission::images::extract`]), whatever API version the
//! cluster serves. Lists are paginated (`limit` + `continue`), so a large cluster is never read
//! in one response, and excluded namespaces are filtered by the API server (field selector).

use std::collections::BTreeSet;
use std::path::Path;

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::admission::GroupVersionKind;
use crate::audit::WorkloadObject;
use crate::error::{Error, Result};

/// Objects per list page: small enough for bounded memory per response, large enough that a
/// cluster of a few thousand workloads takes a handful of round trips.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// One kind the audit lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditedKind {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// API version listed.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Resource (plural) name, as in RBAC rules.
    pub plural: &'static str,
}

/// Every kind admission inspects, in the version a current cluster serves. Pods, ReplicaSets
/// and Jobs are listed too: bare ones are audited, those made by a listed parent are skipped.
pub const AUDITED_KINDS: [AuditedKind; 9] = [
    kind("apps", "Deployment", "deployments"),
    kind("apps", "StatefulSet", "statefulsets"),
    kind("apps", "DaemonSet", "daemonsets"),
    kind("apps", "ReplicaSet", "replicasets"),
    kind("batch", "CronJob", "cronjobs"),
    kind("batch", "Job", "jobs"),
    kind("", "ReplicationController", "replicationcontrollers"),
    kind("", "PodTemplate", "podtemplates"),
    kind("", "Pod", "pods"),
];

const fn kind(group: &'static str, kind: &'static str, plural: &'static str) -> AuditedKind {
    AuditedKind {
        group,
        version: "v1",
        kind,
        plural,
    }
}

impl AuditedKind {
    fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.into(),
            version: self.version.into(),
            api_version: if self.group.is_empty() {
                self.version.into()
            } else {
                format!("{}/{}", self.group, self.version)
            },
            kind: self.kind.into(),
            plural: self.plural.into(),
        }
    }
}

/// Lists workloads through the API server. Cheap to clone.
#[derive(Clone)]
pub struct Lister {
    client: Client,
    page_size: u32,
}

impl std::fmt::Debug for Lister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lister")
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl Lister {
    /// A lister over a kube-rs client.
    pub fn new(client: Client) -> Self {
        Lister {
            client,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Objects per list page (at least 1).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// The client as kubectl would configure it: `KUBECONFIG` / `~/.kube/config`, else the
    /// in-cluster service account.
    pub async fn infer() -> Result<Self> {
        let config = Config::infer().await.map_err(|e| {
            Error::invalid(
                "kubernetes client configuration",
                format!("{e} (set KUBECONFIG or run in a pod with a service account)"),
            )
        })?;
        Self::from_config(config)
    }

    /// The client of a kubeconfig file, with an optional context.
    pub async fn from_kubeconfig(path: &Path, context: Option<&str>) -> Result<Self> {
        let what = format!("kubeconfig {}", path.display());
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::invalid(&what, e))?;
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..KubeConfigOptions::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| Error::invalid(&what, e))?;
        Self::from_config(config)
    }

    fn from_config(config: Config) -> Result<Self> {
        let client = Client::try_from(config).map_err(|e| kube_error("kubernetes client", e))?;
        Ok(Self::new(client))
    }

    /// The kube-rs client (for [`crate::audit::policy_report`]).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every object of every [`AUDITED_KINDS`] kind outside `excluded` namespaces.
    pub async fn list(&self, excluded: &BTreeSet<String>) -> Result<Vec<WorkloadObject>> {
        let mut objects = Vec::new();
        for kind in AUDITED_KINDS {
            self.list_kind(kind, excluded, &mut objects).await?;
        }
        Ok(objects)
    }

    async fn list_kind(
        &self,
        kind: AuditedKind,
        excluded: &BTreeSet<String>,
        out: &mut Vec<WorkloadObject>,
    ) -> Result<()> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &kind.api_resource());
        let selector = excluded
            .iter()
            .map(|ns| format!("metadata.namespace!={ns}"))
            .collect::<Vec<_>>()
            .join(",");
        let gvk = GroupVersionKind {
            group: kind.group.into(),
            version: kind.version.into(),
            kind: kind.kind.into(),
        };
        let mut token: Option<String> = None;
        loop {
            let mut params = ListParams::default().limit(self.page_size);
            if !selector.is_empty() {
                params = params.fields(&selector);
            }
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let page = api
                .list(&params)
                .await
                .map_err(|e| kube_error(&format!("listing {}", kind.plural), e))?;
            for item in page.items {
                let object = serde_json::to_value(&item)
                    .map_err(|e| Error::invalid(format!("{} object", kind.kind), e))?;
                out.push(WorkloadObject {
                    gvk: gvk.clone(),
                    object,
                });
            }
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(());
            }
        }
    }
}

/// Maps a kube-rs error to Helios's: 401/403 are credentials (or RBAC), other API errors the
/// server's own, transport errors unavailability. kube-rs messages carry no credentials.
pub(crate) fn kube_error(what: &str, e: kube::Error) -> Error {
    let service = format!("the Kubernetes API server ({what})");
    match e {
        kube::Error::Api(status) if matches!(status.code, 401 | 403) => Error::Auth {
            service,
            reason: status.message.clone(),
        },
        kube::Error::Api(status) => Error::remote(
            service,
            Some(status.reason.clone()).filter(|r| !r.is_empty()),
            format!("{} (HTTP {})", status.message, status.code),
        ),
        kube::Error::InferConfig(e) => Error::invalid("kubernetes client configuration", e),
        other => Error::unavailable(service, other.to_string()),
    }
}
