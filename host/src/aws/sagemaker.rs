//! The SageMaker Model Registry as this product uses it: one model package group, whose
//! versioned model packages each point at a plugin in S3.
//!
//! Conventions: `InferenceSpecification.Containers[0].ModelDataUrl` is the plugin's
//! `s3://` URL; `CustomerMetadataProperties` carry `plugin-sha256` (hex, required),
//! `plugin-signature` (optional), `wit-world` and `rollout` (optional: the version's
//! rollout policy overrides, JSON); `ModelMetrics.ModelQuality.Statistics`
//! points at the held-out metrics JSON.

use aws_sdk_sagemaker::Client;
use aws_sdk_sagemaker::error::DisplayErrorContext;
use aws_sdk_sagemaker::types::{
    InferenceSpecification, MetricsSource, ModelApprovalStatus, ModelMetrics,
    ModelPackageContainerDefinition, ModelPackageSortBy, ModelPackageType, ModelQuality, SortOrder,
};
use std::collections::HashMap;

pub const SHA256_PROPERTY: &str = "plugin-sha256";
pub const SIGNATURE_PROPERTY: &str = "plugin-signature";
pub const WORLD_PROPERTY: &str = "wit-world";
pub const ROLLOUT_PROPERTY: &str = "rollout";
/// Most recent versions considered per poll: one page of `ListModelPackages`.
const PAGE_SIZE: i32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("model registry call {operation} failed: {message}")]
    Call { operation: &'static str, message: String },
    #[error("model package {0} is malformed: {1}")]
    Malformed(String, String),
    #[error("no version {1} in model package group {0}")]
    NoSuchVersion(String, u32),
}

fn call_error<E: std::error::Error>(operation: &'static str) -> impl FnOnce(E) -> RegistryError {
    move |e| RegistryError::Call { operation, message: DisplayErrorContext(e).to_string() }
}

/// One model package version, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSummary {
    pub version: u32,
    pub arn: String,
    pub status: String,
    pub created: Option<String>,
}

/// One model package version, described: where its plugin is and how to check it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VersionDetails {
    pub group: String,
    pub version: u32,
    pub arn: String,
    pub approval_status: String,
    pub artifact_url: String,
    /// Lower-case hex sha256 the plugin bytes must have.
    pub sha256: String,
    pub signature: Option<String>,
    pub world: Option<String>,
    pub metrics_url: Option<String>,
    pub description: Option<String>,
    /// Its rollout policy overrides (JSON), if it carries any.
    #[serde(default)]
    pub rollout: Option<String>,
}

/// What `publish` registers.
pub struct NewVersion<'a> {
    pub artifact_url: &'a str,
    pub sha256: &'a str,
    pub world: &'a str,
    pub signature: Option<&'a str>,
    pub metrics_url: Option<&'a str>,
    pub description: Option<&'a str>,
    pub container_image: &'a str,
    pub approve: bool,
    pub rollout: Option<&'a str>,
}

#[derive(Clone)]
pub struct ModelRegistry {
    client: Client,
    group: String,
}

impl ModelRegistry {
    pub fn new(client: Client, group: impl Into<String>) -> Self {
        Self { client, group: group.into() }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// Approved versions, highest first: the most recent [`PAGE_SIZE`], one call per
    /// poll (a host needs the highest, and a few to fall back on).
    pub async fn approved_versions(&self) -> Result<Vec<VersionSummary>, RegistryError> {
        self.list(Some(ModelApprovalStatus::Approved), false).await
    }

    /// Versions in any state, highest first: all of them, a page of [`PAGE_SIZE`] per call.
    pub async fn versions(&self) -> Result<Vec<VersionSummary>, RegistryError> {
        self.list(None, true).await
    }

    async fn list(
        &self,
        status: Option<ModelApprovalStatus>,
        every_page: bool,
    ) -> Result<Vec<VersionSummary>, RegistryError> {
        let mut versions = Vec::new();
        let mut next_token = None;
        loop {
            let page = self
                .client
                .list_model_packages()
                .model_package_group_name(&self.group)
                .model_package_type(ModelPackageType::Versioned)
                .set_model_approval_status(status.clone())
                .sort_by(ModelPackageSortBy::CreationTime)
                .sort_order(SortOrder::Descending)
                .max_results(PAGE_SIZE)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(call_error("ListModelPackages"))?;
            versions.extend(page.model_package_summary_list().iter().filter_map(|s| {
                Some(VersionSummary {
                    version: u32::try_from(s.model_package_version()?).ok()?,
                    arn: s.model_package_arn()?.to_string(),
                    status: s.model_approval_status().map(|a| a.as_str().to_string()).unwrap_or_default(),
                    created: s.creation_time().map(ToString::to_string),
                })
            }));
            next_token = page.next_token().filter(|t| !t.is_empty()).map(str::to_string);
            if !every_page || next_token.is_none() {
                break;
            }
        }
        versions.sort_by_key(|v| std::cmp::Reverse(v.version));
        Ok(versions)
    }

    pub async fn describe(&self, arn: &str) -> Result<VersionDetails, RegistryError> {
        let out = self
            .client
            .describe_model_package()
            .model_package_name(arn)
            .send()
            .await
            .map_err(call_error("DescribeModelPackage"))?;
        let malformed = |why: &str| RegistryError::Malformed(arn.to_string(), why.to_string());
        let properties = out.customer_metadata_properties().cloned().unwrap_or_default();
        let artifact_url = out
            .inference_specification()
            .and_then(|spec| spec.containers().first())
            .and_then(|c| c.model_data_url())
            .ok_or_else(|| malformed("no InferenceSpecification.Containers[0].ModelDataUrl"))?;
        let sha256 = properties
            .get(SHA256_PROPERTY)
            .map(|s| s.trim().to_ascii_lowercase())
            .ok_or_else(|| malformed("no plugin-sha256 in CustomerMetadataProperties"))?;
        // It names files in the artifact cache: nothing but a digest may get there.
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed("plugin-sha256 is not 64 hexadecimal digits"));
        }
        Ok(VersionDetails {
            group: self.group.clone(),
            version: out
                .model_package_version()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| malformed("no ModelPackageVersion"))?,
            arn: arn.to_string(),
            approval_status: out.model_approval_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            artifact_url: artifact_url.to_string(),
            sha256,
            signature: properties.get(SIGNATURE_PROPERTY).cloned(),
            world: properties.get(WORLD_PROPERTY).cloned(),
            metrics_url: out
                .model_metrics()
                .and_then(|m| m.model_quality())
                .and_then(|q| q.statistics())
                .and_then(|s| s.s3_uri().map(str::to_string)),
            description: out.model_package_description().map(str::to_string),
            rollout: properties.get(ROLLOUT_PROPERTY).cloned(),
        })
    }

    /// The ARN of version `version` of the group.
    pub async fn arn_of(&self, version: u32) -> Result<String, RegistryError> {
        self.versions()
            .await?
            .into_iter()
            .find(|v| v.version == version)
            .map(|v| v.arn)
            .ok_or_else(|| RegistryError::NoSuchVersion(self.group.clone(), version))
    }

    /// Sets the approval status of `version`, keeping its metadata properties as they are.
    pub async fn set_status(&self, version: u32, status: ModelApprovalStatus) -> Result<(), RegistryError> {
        let arn = self.arn_of(version).await?;
        let current = self
            .client
            .describe_model_package()
            .model_package_name(&arn)
            .send()
            .await
            .map_err(call_error("DescribeModelPackage"))?;
        // Some registry implementations drop properties an update leaves out; resend them.
        let properties: Option<HashMap<String, String>> = current.customer_metadata_properties().cloned();
        self.client
            .update_model_package()
            .model_package_arn(&arn)
            .model_approval_status(status)
            .set_customer_metadata_properties(properties)
            .send()
            .await
            .map_err(call_error("UpdateModelPackage"))?;
        Ok(())
    }

    /// Whether the group exists.
    pub async fn group_exists(&self) -> Result<bool, RegistryError> {
        match self.client.describe_model_package_group().model_package_group_name(&self.group).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some() => Ok(false),
            Err(e) => Err(call_error("DescribeModelPackageGroup")(e)),
        }
    }

    pub async fn create_group(&self, description: &str) -> Result<(), RegistryError> {
        self.client
            .create_model_package_group()
            .model_package_group_name(&self.group)
            .model_package_group_description(description)
            .send()
            .await
            .map_err(call_error("CreateModelPackageGroup"))?;
        Ok(())
    }

    /// Registers a new version and returns its number.
    pub async fn create_version(&self, new: &NewVersion<'_>) -> Result<u32, RegistryError> {
        let container = ModelPackageContainerDefinition::builder()
            .image(new.container_image)
            .model_data_url(new.artifact_url)
            .build();
        let spec = InferenceSpecification::builder()
            .containers(container)
            .supported_content_types("application/json")
            .supported_response_mime_types("application/json")
            .build();
        let mut properties = HashMap::from([
            (SHA256_PROPERTY.to_string(), new.sha256.to_string()),
            (WORLD_PROPERTY.to_string(), new.world.to_string()),
        ]);
        if let Some(signature) = new.signature {
            properties.insert(SIGNATURE_PROPERTY.to_string(), signature.to_string());
        }
        if let Some(rollout) = new.rollout {
            properties.insert(ROLLOUT_PROPERTY.to_string(), rollout.to_string());
        }
        let metrics = new.metrics_url.map(|url| {
            let source = MetricsSource::builder().content_type("application/json").s3_uri(url).build();
            ModelMetrics::builder().model_quality(ModelQuality::builder().statistics(source).build()).build()
        });
        let status = if new.approve {
            ModelApprovalStatus::Approved
        } else {
            ModelApprovalStatus::PendingManualApproval
        };
        let created = self
            .client
            .create_model_package()
            .model_package_group_name(&self.group)
            .set_model_package_description(new.description.map(str::to_string))
            .inference_specification(spec)
            .model_approval_status(status)
            .set_customer_metadata_properties(Some(properties))
            .set_model_metrics(metrics)
            .send()
            .await
            .map_err(call_error("CreateModelPackage"))?;
        let arn = created.model_package_arn().unwrap_or_default().to_string();
        Ok(self.describe(&arn).await?.version)
    }
}
