//! The publisher's commands: `publish` a plugin version, `models list|approve|reject`,
//! and `keygen`/`sign` for plugin signatures.

mod models;
mod publish;
mod signing;

pub use models::models;
pub use publish::publish;
pub use signing::{keygen, sign};
