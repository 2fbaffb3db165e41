//! Operator commands to the running source: check now, pin a version, follow again,
//! roll back, list what is available.
//!
//! Commands travel over a channel into the source's own task, so they never race its
//! polling or watching: each one runs between two reconciliations. A pin is held in the
//! slot; while it is set, sources leave the serving version alone, so a newer approval
//! or a new file does not replace it until `unpin`.

use crate::slot::ServingSlot;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// Commands waiting for the source beyond this are refused as busy.
const QUEUE: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no version {0} is available from the source")]
    NoSuchVersion(String),
    #[error("version {version} cannot serve: {reason}")]
    Refused { version: String, reason: String },
    #[error("there is no previous version loaded to roll back to")]
    NoPrevious,
    #[error("the model source cannot be reached: {0}")]
    Unavailable(String),
}

/// A version a source could serve.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AvailableVersion {
    pub version: String,
    /// Where it is.
    pub location: VersionLocation,
    /// `sha256:<hex>`, when known without a download.
    pub digest: Option<String>,
    /// Registry approval status, for registry versions.
    pub approval_status: Option<String>,
    /// Whether its bytes are on local disk (cache or plugin directory) or built in.
    pub local: bool,
    pub signed: bool,
}

/// Where an available version's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VersionLocation {
    /// In the model registry (approved), to be downloaded.
    Registry,
    /// In the local cache of registry versions.
    Cache,
    /// A file in the watched plugin directory.
    PluginDir,
    /// The plugin compiled into this binary.
    Bundled,
}

pub enum Command {
    Reload(oneshot::Sender<()>),
    Pin(String, oneshot::Sender<Result<(), ControlError>>),
    Unpin(oneshot::Sender<()>),
    Rollback(oneshot::Sender<Result<String, ControlError>>),
    Available(oneshot::Sender<Vec<AvailableVersion>>),
}

/// What each source does for the commands; the rest is common to all of them.
pub(crate) trait Controlled {
    /// Brings the serving version in line with the source (a no-op while pinned).
    async fn reconcile(&mut self);
    /// Loads `version` from the source and swaps it in.
    async fn load_version(&mut self, version: &str) -> Result<(), ControlError>;
    async fn available(&mut self) -> Vec<AvailableVersion>;
}

/// Carries out `command` against `source`.
pub(crate) async fn handle<S: Controlled>(source: &mut S, slot: &ServingSlot, command: Command) {
    match command {
        Command::Reload(done) => {
            source.reconcile().await;
            let _ = done.send(());
        }
        Command::Pin(version, done) => {
            let _ = done.send(pin(source, slot, version).await);
        }
        Command::Unpin(done) => {
            slot.set_pinned(None);
            source.reconcile().await;
            let _ = done.send(());
        }
        Command::Rollback(done) => {
            let outcome = slot.restore_previous().ok_or(ControlError::NoPrevious);
            if let Ok(version) = &outcome {
                slot.set_pinned(Some(version.clone()));
            }
            let _ = done.send(outcome);
        }
        Command::Available(done) => {
            let _ = done.send(source.available().await);
        }
    }
}

async fn pin<S: Controlled>(source: &mut S, slot: &ServingSlot, version: String) -> Result<(), ControlError> {
    let serving = slot.current().map(|m| m.version.clone());
    let previous = slot.previous().map(|m| m.version.clone());
    if serving.as_deref() != Some(version.as_str()) {
        if previous.as_deref() == Some(version.as_str()) {
            slot.restore_previous();
        } else {
            source.load_version(&version).await?;
        }
    }
    slot.set_pinned(Some(version));
    Ok(())
}

/// The API's end of the command channel.
#[derive(Clone)]
pub struct SourceHandle(mpsc::Sender<Command>);

/// Creates the channel: the handle for the API, the receiver for the source task.
pub fn channel() -> (SourceHandle, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (SourceHandle(tx), rx)
}

impl SourceHandle {
    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, ControlError> {
        let (tx, rx) = oneshot::channel();
        let unavailable = || ControlError::Unavailable("the source task is not running".into());
        self.0.try_send(command(tx)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                ControlError::Unavailable("too many commands queued".into())
            }
            mpsc::error::TrySendError::Closed(_) => unavailable(),
        })?;
        rx.await.map_err(|_| unavailable())
    }

    pub async fn reload(&self) -> Result<(), ControlError> {
        self.ask(Command::Reload).await
    }

    pub async fn pin(&self, version: String) -> Result<(), ControlError> {
        self.ask(|done| Command::Pin(version, done)).await?
    }

    pub async fn unpin(&self) -> Result<(), ControlError> {
        self.ask(Command::Unpin).await
    }

    pub async fn rollback(&self) -> Result<String, ControlError> {
        self.ask(Command::Rollback).await?
    }

    pub async fn available(&self) -> Result<Vec<AvailableVersion>, ControlError> {
        self.ask(Command::Available).await
    }
}
