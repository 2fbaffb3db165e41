//! Capture of a plugin's stdout/stderr: the first bytes are kept for the host log, the
//! rest is counted and dropped. Writing never fails, so a chatty plugin is neither
//! trapped nor able to fill the host's memory.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamError};

/// Most bytes one `check-write` offers; the guest writes in chunks of at most this.
const WRITE_BUDGET: usize = 64 * 1024;

#[derive(Clone)]
pub struct CappedOutput {
    kept: Arc<Mutex<Vec<u8>>>,
    dropped: Arc<AtomicUsize>,
    cap: usize,
}

impl CappedOutput {
    pub fn new(cap: usize) -> Self {
        Self { kept: Arc::default(), dropped: Arc::default(), cap }
    }

    /// What was kept since the last call, and how many bytes beyond it were dropped;
    /// starts over, so an instance that serves again gets its full allowance.
    pub fn take(&self) -> (Vec<u8>, usize) {
        let kept = std::mem::take(&mut *self.kept.lock().expect("output lock"));
        (kept, self.dropped.swap(0, Ordering::Relaxed))
    }

    fn keep(&self, bytes: &[u8]) {
        let mut kept = self.kept.lock().expect("output lock");
        let room = self.cap.saturating_sub(kept.len()).min(bytes.len());
        kept.extend_from_slice(&bytes[..room]);
        self.dropped.fetch_add(bytes.len() - room, Ordering::Relaxed);
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_BUDGET)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}
