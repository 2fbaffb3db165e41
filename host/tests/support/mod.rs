//! What the end-to-end and soak tests share: hosts in-process and as processes, the
//! moto server, the seed basket, plugins and fixtures installed in a plugin directory,
//! and the scikit-learn example's trained and exported models.

pub mod examples;
pub mod helpers;
pub mod process;
