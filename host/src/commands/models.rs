//! `predict-host models list|approve N|reject N`: the rest of a version's life cycle.

use crate::aws::AwsClients;
use crate::aws::sagemaker::ModelRegistry;
use crate::config::{ModelsAction, ModelsArgs};
use aws_sdk_sagemaker::types::ModelApprovalStatus;

pub async fn models(args: ModelsArgs) -> anyhow::Result<()> {
    let aws = AwsClients::from_env(&args.aws).await;
    let registry = ModelRegistry::new(aws.sagemaker, &args.group.group);
    let (version, status) = match args.action {
        ModelsAction::List => {
            println!("{:<8} {:<22} {:<22} ARN", "VERSION", "STATUS", "CREATED");
            for v in registry.versions().await? {
                println!("{:<8} {:<22} {:<22} {}", v.version, v.status, v.created.unwrap_or_default(), v.arn);
            }
            return Ok(());
        }
        ModelsAction::Approve { version } => (version, ModelApprovalStatus::Approved),
        ModelsAction::Reject { version } => (version, ModelApprovalStatus::Rejected),
    };
    registry.set_status(version, status.clone()).await?;
    println!("{} version {version}: {}", registry.group(), status.as_str());
    Ok(())
}
