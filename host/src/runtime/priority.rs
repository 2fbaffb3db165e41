//! Compiling and proving a new version runs at a lower CPU priority than serving: a
//! swap's compile (tens to hundreds of milliseconds of CPU, more for a large plugin)
//! then takes what requests leave over rather than competing with them as an equal.
//! Recompiling a version that already serves (`tier_up`) waits for idle CPU: nothing
//! waits on it.

/// The nice value of loading and compiling threads (serving threads keep 0).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`BACKGROUND_NICE`], for good: an
/// unprivileged thread cannot raise it again, so only threads made for background work
/// call this. Best effort: where it fails, the work runs at normal priority.
pub fn lower_this_thread() {
    // SAFETY: setpriority has no memory effects. On Linux the nice value is per thread,
    // and `who = 0` names the calling thread.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE) };
}

/// Makes the calling thread run only when the CPU would otherwise idle (`SCHED_IDLE`),
/// for good. Best effort, like [`lower_this_thread`], which it falls back to.
pub fn idle_this_thread() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param` only; pid 0 names the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
        lower_this_thread();
    }
}

/// A pool of compile threads (one per core) that run only on idle CPU: wasmtime
/// compiles on the rayon pool it is called from.
pub fn idle_compile_pool() -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("compile-idle-{i}"))
        .start_handler(|_| idle_this_thread())
        .build()
}

/// Makes the threads wasmtime compiles on (rayon's global pool) background threads.
/// Only the first call in a process takes effect; the pool is made before any compile.
pub fn compile_in_background() {
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("compile-{i}"))
        .start_handler(|_| lower_this_thread())
        .build_global();
}

/// Runs `work` on a thread of its own at background priority, inside the current tokio
/// runtime (so it may `block_on` plugin calls), and waits for its result.
pub async fn run_in_background<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let runtime = tokio::runtime::Handle::current();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            lower_this_thread();
            let _inside = runtime.enter();
            let _ = done.send(work());
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    result.await.map_err(|_| "panicked".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn background_work_runs_at_background_priority_and_serving_threads_do_not() {
        // SAFETY: getpriority only reads the calling thread's nice value.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(run_in_background("test-load", nice).await.expect("thread"), BACKGROUND_NICE);
        assert_eq!(nice(), 0, "the caller's own thread is left alone");
    }

    #[test]
    fn idle_compile_threads_run_under_sched_idle() {
        // SAFETY: sched_getscheduler only reads the calling thread's policy.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let pool = idle_compile_pool().expect("pool");
        assert_eq!(pool.install(policy), libc::SCHED_IDLE);
        assert_eq!(policy(), libc::SCHED_OTHER, "the caller's own thread is left alone");
    }
}
