//! AWS: clients from the standard configuration chain (region and credentials from the
//! environment, profile, or IRSA web identity in a pod; `AWS_ENDPOINT_URL` to point the
//! same binary at another endpoint, such as a local test server), the SageMaker Model
//! Registry's conventions (`sagemaker`) and the S3 object store (`s3`).

pub mod s3;
pub mod sagemaker;

use std::time::Duration;

/// AWS settings beyond the standard chain.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsArgs {
    /// Address S3 buckets by path (`endpoint/bucket/key`) rather than by virtual host,
    /// as local S3-compatible endpoints need.
    #[arg(long, env = "S3_FORCE_PATH_STYLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub s3_force_path_style: bool,

    /// Bound on one AWS call, retries included, in seconds; a registry that does not
    /// answer in time counts as down.
    #[arg(long, env = "AWS_OPERATION_TIMEOUT_SECS", default_value_t = 20)]
    pub aws_operation_timeout_secs: u64,
}

/// Connection attempts give up quickly: an unreachable endpoint is an outage to ride
/// out on the cached version, not something to wait for.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The SDK's standard configuration chain, with the host's HTTP client: hyper with
/// rustls on ring (the one TLS stack in the build; see the workspace manifest).
pub fn sdk_config() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let client =
        aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(client)
}

#[derive(Clone)]
pub struct AwsClients {
    pub sagemaker: aws_sdk_sagemaker::Client,
    pub s3: aws_sdk_s3::Client,
}

impl AwsClients {
    pub async fn from_env(args: &AwsArgs) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_timeout(Duration::from_secs(args.aws_operation_timeout_secs))
            .build();
        let shared = sdk_config().timeout_config(timeouts).load().await;
        Self::from_config(&shared, args.s3_force_path_style)
    }

    pub fn from_config(shared: &aws_config::SdkConfig, s3_force_path_style: bool) -> Self {
        let s3_config =
            aws_sdk_s3::config::Builder::from(shared).force_path_style(s3_force_path_style).build();
        Self {
            sagemaker: aws_sdk_sagemaker::Client::new(shared),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
        }
    }
}
