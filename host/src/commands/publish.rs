//! `predict-host publish`: validate a plugin locally (packaging an ONNX model first),
//! upload it (and its metrics) to S3, and register it as a new version of the model
//! package group.

use super::package::{is_onnx, package_model};
use super::validate;
use crate::artifact::sha256_hex;
use crate::aws::AwsClients;
use crate::aws::s3::{ObjectStore, S3Url};
use crate::aws::sagemaker::{ModelRegistry, NewVersion};
use crate::config::PublishArgs;
use crate::rollout::policy::RolloutPolicy;
use anyhow::{Context, bail};
use serde_json::json;

pub async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    // The same checks a host makes before serving: compile, world, info(), sample.
    let (bytes, model) = if is_onnx(&args.plugin) {
        package_model(&args.plugin, args.manifest.as_deref()).await?
    } else {
        if args.manifest.is_some() {
            bail!("--manifest goes with an ONNX model (.onnx); {} is a plugin", args.plugin.display());
        }
        let bytes =
            std::fs::read(&args.plugin).with_context(|| format!("reading {}", args.plugin.display()))?;
        let model = validate(&args.plugin, bytes.clone())
            .await
            .with_context(|| format!("refusing to publish {}", args.plugin.display()))?;
        (bytes, model)
    };
    let sha256 = sha256_hex(&bytes);
    let signature = match &args.sign_key {
        Some(path) => Some(super::signing::read_signer(path)?.sign(&sha256)),
        None => None,
    };
    let metrics = match &args.metrics {
        Some(path) => {
            let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_slice::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            Some(text)
        }
        None => None,
    };

    let rollout = args.rollout.as_deref().map(rollout_policy).transpose()?;

    let aws = AwsClients::from_env(&args.aws).await;
    let registry = ModelRegistry::new(aws.sagemaker, &args.group.group);
    let store = ObjectStore::new(aws.s3);
    if !registry.group_exists().await? {
        if !args.create_group {
            bail!(
                "model package group {} does not exist (pass --create-group to create it)",
                args.group.group
            );
        }
        registry.create_group(&format!("{} plugin versions", model.info.name)).await?;
    }
    if !store.bucket_exists(&args.bucket).await {
        if !args.create_bucket {
            bail!(
                "bucket {} does not exist or is not reachable (pass --create-bucket to create it)",
                args.bucket
            );
        }
        store.create_bucket(&args.bucket).await?;
    }

    // Content-addressed keys: publishing the same bytes twice writes the same objects.
    let base = format!("{}{}", args.prefix, args.group.group);
    let plugin_url = S3Url { bucket: args.bucket.clone(), key: format!("{base}/plugins/{sha256}.wasm") };
    store.put(&plugin_url, bytes, "application/wasm").await?;
    let metrics_url = match metrics {
        Some(text) => {
            let url = S3Url {
                bucket: args.bucket.clone(),
                key: format!("{base}/metrics/{}.json", sha256_hex(&text)),
            };
            store.put(&url, text, "application/json").await?;
            Some(url.to_string())
        }
        None => None,
    };

    let description =
        args.description.clone().unwrap_or_else(|| format!("{} {}", model.info.name, model.info.version));
    let version = registry
        .create_version(&NewVersion {
            artifact_url: &plugin_url.to_string(),
            sha256: &sha256,
            world: model.plugin.world(),
            signature: signature.as_deref(),
            metrics_url: metrics_url.as_deref(),
            description: Some(&description),
            container_image: &args.container_image,
            approve: args.approve,
            rollout: rollout.as_deref(),
        })
        .await?;
    let status = if args.approve { "Approved" } else { "PendingManualApproval" };
    let summary = json!({
        "group": args.group.group, "version": version, "approval_status": status,
        "artifact_url": plugin_url.to_string(), "sha256": sha256, "metrics_url": metrics_url,
        "signed": signature.is_some(), "rollout": rollout,
        "model": model.info.name, "plugin_version": model.info.version,
    });
    println!("{summary}");
    Ok(())
}

/// `--rollout`: the policy overrides (inline JSON, or a file holding them), checked as a
/// host will check them, and written compactly.
fn rollout_policy(setting: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(setting);
    let text = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    } else {
        setting.to_string()
    };
    let compact = serde_json::from_str::<serde_json::Value>(&text)
        .map(|json| json.to_string())
        .unwrap_or_else(|_| text.trim().to_string());
    RolloutPolicy::DEFAULT.with_overrides(Some(&compact)).map_err(|e| anyhow::anyhow!("--rollout: {e}"))?;
    Ok(compact)
}
