//! The process's memory at `/metrics`: its resident bytes, and the
//! allocator's own statistics when it keeps any (jemalloc).

use std::fmt::Write;

/// The memory gauges, read when rendered (nothing is counted for them).
pub(super) fn render_memory(out: &mut String) {
    if let Some(resident) = resident_bytes() {
        let _ = writeln!(
            out,
            "# HELP bakeoff_resident_bytes Resident memory of the process.\n# TYPE bakeoff_resident_bytes gauge\nbakeoff_resident_bytes {resident}"
        );
    }
    for (name, help, value) in allocator_statistics() {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
}

/// Resident set size from `/proc/self/statm` (pages × page size).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page_size).ok()?)
}

/// jemalloc's own view of its heap, when it is the allocator.
#[cfg(feature = "jemalloc")]
fn allocator_statistics() -> Vec<(&'static str, &'static str, u64)> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc caches its statistics; advancing the epoch refreshes them.
    if epoch::advance().is_err() {
        return Vec::new();
    }
    let mut statistics = Vec::new();
    if let Ok(allocated) = stats::allocated::read() {
        statistics.push((
            "bakeoff_allocator_allocated_bytes",
            "Bytes the application has allocated (jemalloc).",
            allocated as u64,
        ));
    }
    if let Ok(resident) = stats::resident::read() {
        statistics.push((
            "bakeoff_allocator_resident_bytes",
            "Bytes in physically resident pages mapped by the allocator (jemalloc).",
            resident as u64,
        ));
    }
    statistics
}

/// mimalloc and the system allocator keep no statistics we can read
/// cheaply; the process's resident bytes stand for them.
#[cfg(not(feature = "jemalloc"))]
fn allocator_statistics() -> Vec<(&'static str, &'static str, u64)> {
    Vec::new()
}
