//! The policy input contract, version 1: what every evaluation gets as `input`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::scan::ScanReport;

/// The input contract version this build produces and accepts.
pub const INPUT_VERSION: u32 = 1;

/// One image's policy input. Serialises exactly to the contract in `docs/policies.md`:
/// snake_case keys, absent values as `null`, never missing keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyInput {
    /// Always [`INPUT_VERSION`].
    pub version: u32,
    /// Where the decision is being made.
    pub stage: Stage,
    /// The image being judged.
    pub image: ImageRef,
    /// Its scan.
    pub scan: ScanReport,
    /// The Kubernetes workload at admission; `null` in CI.
    #[serde(default)]
    pub workload: Option<Workload>,
    /// Free-form CI context (pipeline, build id, commit); `null` at admission.
    #[serde(default)]
    pub ci: Option<serde_json::Value>,
}

/// Where a decision is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Stage {
    /// In the Kubernetes API server's admission chain.
    Admission,
    /// In a CI pipeline.
    Ci,
    /// In a background audit of workloads already running (`helios audit`): `workload` is
    /// filled as at admission, with `operation` `"AUDIT"` and `user` empty.
    Audit,
}

/// The workload an image belongs to, at admission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Workload {
    /// Object kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace, `null` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Object name (may be `null` for `generateName` objects).
    pub name: Option<String>,
    /// `CREATE`, `UPDATE`, ... (`AUDIT` in a background audit)
    pub operation: String,
    /// The container that runs the image.
    pub container: Container,
    /// Object labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Object annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Who asked.
    pub user: User,
}

/// A container of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Which list it is in.
    #[serde(rename = "type")]
    pub kind: ContainerType,
}

/// Which container list of a pod spec a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContainerType {
    /// `containers`.
    Container,
    /// `initContainers`.
    Init,
    /// `ephemeralContainers`.
    Ephemeral,
}

/// The requesting user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct User {
    /// User name.
    pub username: Option<String>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl PolicyInput {
    /// The input of a CI gate: stage `ci`, no workload, the caller's CI context.
    pub fn for_ci(image: ImageRef, scan: ScanReport, ci: Option<serde_json::Value>) -> Self {
        Self::new(Stage::Ci, image, scan, None, ci)
    }

    /// The input of an admission review: stage `admission`, the container's workload, no CI
    /// context.
    pub fn for_admission(image: ImageRef, scan: ScanReport, workload: Workload) -> Self {
        Self::new(Stage::Admission, image, scan, Some(workload), None)
    }

    /// The one builder of the contract's current version.
    fn new(
        stage: Stage,
        image: ImageRef,
        scan: ScanReport,
        workload: Option<Workload>,
        ci: Option<serde_json::Value>,
    ) -> Self {
        PolicyInput {
            version: INPUT_VERSION,
            stage,
            image,
            scan,
            workload,
            ci,
        }
    }

    /// Reads and validates an input document, naming the field at fault on error.
    pub fn from_json(text: &str) -> Result<Self> {
        crate::json::from_str::<Self>(text, "policy input")?.validate()
    }

    /// Validates an input already parsed into a JSON value (what the Python and Node bindings
    /// hand over), naming the field at fault on error.
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        crate::json::from_value::<Self>(value, "policy input")?.validate()
    }

    fn validate(self) -> Result<Self> {
        if self.version != INPUT_VERSION {
            return Err(Error::invalid(
                "policy input",
                format!(
                    "version: this Helios reads input version {INPUT_VERSION}, got {}",
                    self.version
                ),
            ));
        }
        self.scan
            .check_summary()
            .map_err(|e| Error::invalid("policy input", format!("scan: {e}")))?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::ScanStatus;

    #[test]
    fn ci_and_admission_inputs_come_from_one_builder() -> Result<()> {
        let image = ImageRef::parse("registry.example/app:1")?;
        let scan = ScanReport::without_findings(ScanStatus::NotFound, "dir", None);
        let ci = PolicyInput::for_ci(
            image.clone(),
            scan.clone(),
            Some(serde_json::json!({"run": 7})),
        );
        assert_eq!((ci.version, ci.stage), (INPUT_VERSION, Stage::Ci));
        assert_eq!(ci.workload, None);

        let workload = Workload {
            kind: "Pod".into(),
            namespace: Some("shop".into()),
            name: Some("web".into()),
            operation: "CREATE".into(),
            container: Container {
                name: "app".into(),
                kind: ContainerType::Container,
            },
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            user: User::default(),
        };
        let admission = PolicyInput::for_admission(image, scan, workload.clone());
        assert_eq!(
            (admission.version, admission.stage),
            (INPUT_VERSION, Stage::Admission)
        );
        assert_eq!(admission.workload, Some(workload));
        assert_eq!(admission.ci, None);
        // What either builds is a valid input of the contract.
        let back = PolicyInput::from_value(
            serde_json::to_value(&admission).map_err(|e| Error::invalid("test", e))?,
        )?;
        assert_eq!(back, admission);
        Ok(())
    }
}
