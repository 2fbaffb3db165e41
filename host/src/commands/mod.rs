//! The registry life-cycle commands: `publish` a plugin version, and `models
//! list|approve|reject`.

mod models;
mod publish;

pub use models::models;
pub use publish::publish;
