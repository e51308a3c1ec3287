//! CPU-heavy request work (parsing, verifying and matching large bodies) and blocking file reads
//! (`file:` secrets) kept off the async workers that accept connections and answer `/healthz`.
//!
//! Small bodies are handled inline: moving them to another thread would cost more than the work.
//! Past [`INLINE_BYTES`], the work runs on the blocking pool, at most one job per core at a time,
//! so expensive publishes queue behind each other and delay only themselves, while the runtime's
//! workers stay free for everyone else.

use tokio::sync::Semaphore;

/// Bodies up to this size are parsed and matched where they arrive.
pub(crate) const INLINE_BYTES: usize = 64 * 1024;

pub(crate) struct CpuPool {
    /// One per core: more heavy jobs at once would only take turns on the same cores.
    permits: Semaphore,
}

impl CpuPool {
    pub(crate) fn new() -> CpuPool {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        CpuPool {
            permits: Semaphore::new(cores),
        }
    }

    /// Runs `work`, which is about `bytes` of input: inline when small, else on the blocking pool
    /// (waiting for a core's turn). A panic in `work` is resumed here, as if it ran inline.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        bytes: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        if bytes <= INLINE_BYTES {
            return work();
        }
        let _turn = self.permits.acquire().await;
        blocking(work).await
    }
}

/// Runs `work` on the blocking pool: for work that waits on the file system. A panic in `work`
/// is resumed here, as if it ran inline (a bug is not the caller's bad input).
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}
