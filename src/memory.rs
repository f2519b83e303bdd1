//! Gives memory back to the system after a wave of connections closes.
//!
//! Thousands of idle connections take tens of MB (hyper's buffers); when they
//! close, mimalloc keeps the freed pages in the thread's heap for reuse, so
//! the process's resident size stays at its peak. When a thread's last
//! connection of a large wave closes, `mi_collect` returns that thread's
//! free pages. Counted per thread: in the per-core runtime (the default) a
//! connection lives and dies on one thread; in the work-stealing one the
//! count is approximate, which only makes a collection rarer or earlier.

use std::cell::Cell;

/// A wave this large (connections open at once on one thread) is worth a
/// collection when it has drained. Below it, the heap's free pages are what
/// a steady load reuses anyway.
const WAVE: u32 = 256;

thread_local! {
    /// Connections open on this thread, and the most since the last collection.
    static OPEN: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
}

/// A connection started on this thread.
#[inline]
pub fn connection_opened() {
    OPEN.with(|open| {
        let (now, peak) = open.get();
        open.set((now + 1, peak.max(now + 1)));
    });
}

/// A connection ended on this thread.
#[inline]
pub fn connection_closed() {
    OPEN.with(|open| {
        let (now, peak) = open.get();
        let now = now.saturating_sub(1);
        if now == 0 && peak >= WAVE {
            open.set((0, 0));
            collect();
        } else {
            open.set((now, peak));
        }
    });
}

#[cold]
fn collect() {
    #[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
    // SAFETY: mi_collect only walks and frees the calling thread's own heap.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
