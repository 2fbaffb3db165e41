//! The epoch ticker: one thread that advances the engines' epoch at a fixed period,
//! which is what turns a per-call epoch deadline into a wall-clock timeout.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::Engine;

pub struct EpochTicker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engines: Vec<Engine>, period: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("epoch-ticker".into()).spawn(move || {
            // Dropping the sender (or sending) ends the loop.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                for engine in &engines {
                    engine.increment_epoch();
                }
            }
        })?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
