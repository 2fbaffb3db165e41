//! The publisher's commands: `new-plugin` to start a plugin crate, `package` an ONNX
//! model as a plugin, `publish` a plugin version, `models list|approve|reject`, and
//! `keygen`/`sign` for plugin signatures.

mod models;
mod new_plugin;
mod package;
mod publish;
mod signing;

pub use models::models;
pub use new_plugin::{WIT_BINDGEN_VERSION, new_plugin};
pub use package::package;
pub use publish::publish;
pub use signing::{keygen, sign};

use crate::artifact::{Artifact, Origin};
use crate::loader;
use crate::model::LoadedModel;
use crate::runtime::{Compiler, Runtime, SandboxLimits};
use std::path::Path;
use std::time::Duration;

/// Limits for the local check: as strict as serving, but with a generous deadline, since
/// a publisher's machine may be busy.
const VALIDATION_LIMITS: SandboxLimits = SandboxLimits::DEFAULT
    .with_call_timeout(Duration::from_secs(2))
    .with_concurrent_calls(1)
    .with_calls_per_instance(1);

/// Makes the checks a host makes before serving the plugin `bytes` (read from `path`):
/// compile, world and imports, `info()`, its own sample. The error is the
/// [`loader::LoadFailure`].
async fn validate(path: &Path, bytes: Vec<u8>) -> anyhow::Result<LoadedModel> {
    let runtime = Runtime::new(VALIDATION_LIMITS, None)?;
    let candidate =
        Artifact::new("candidate".into(), Origin::PluginDir { path: path.to_path_buf() }, bytes, None);
    let checked =
        tokio::task::spawn_blocking(move || loader::load(&runtime, candidate, Compiler::Cranelift)).await?;
    Ok(checked?)
}
