//! Heap allocations per request, per endpoint, counted by a global
//! allocator on the server's own threads only.
//!
//! `cargo bench --bench allocations` starts a throwaway PostgreSQL (the
//! integration tests' fixture), runs the real server in this process on a
//! runtime whose worker threads are counted, sends requests from the main
//! thread (not counted) over one keep-alive connection, and prints a table of
//! allocations and bytes per request. Counts, not times: the numbers are the
//! same on a busy machine.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use bakeoff::config::Cli;
use bakeoff::startup::{Server, Shutdown};
use clap::Parser;
use testkit::Kit;
use testkit::http::Conn;

/// The integration tests' kit, bound to the binary (for `bakeoff seed`).
static KIT: Kit = Kit::new(env!("CARGO_BIN_EXE_bakeoff"));

/// Counts allocations made on threads that asked to be counted.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are atomics and the thread-local is const-initialised, so
// counting itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds GlobalAlloc's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; the caller upholds GlobalAlloc's contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds GlobalAlloc's contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: forwarded unchanged; the caller upholds GlobalAlloc's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count(size: usize) {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUESTS: u64 = 2000;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too,
    // and then a short pass proves it works.
    let requests = if std::env::args().any(|arg| arg == "--bench") {
        REQUESTS
    } else {
        50
    };
    let fixture = KIT.fixture();
    for mode in ["exclusive", "shared"] {
        let address = start_server(&fixture.database_url, mode);
        println!(
            "\n{mode} pool: allocations per request on the server's threads ({requests} requests each)\n"
        );
        println!("| request | allocations | bytes |");
        println!("| --- | ---: | ---: |");
        let mut connection = Conn::connect(address);
        for target in [
            "/version",
            "/types",
            "/contacts/42",
            "/contacts/fetch?limit=10",
            "/contacts/fetch?limit=100",
            "/contacts/for?limit=10",
            "/contacts/for?limit=100",
            "/contacts/fetch?limit=10&starts=m",
            "/fibonacci/10",
            "/nope",
            "/contacts/fetch?limit=0",
        ] {
            for _ in 0..50 {
                connection.get(target);
            }
            let (allocations, bytes) = (
                ALLOCATIONS.load(Ordering::SeqCst),
                BYTES.load(Ordering::SeqCst),
            );
            for _ in 0..requests {
                let response = connection.get(target);
                assert!(response.status < 500, "{target}: {}", response.status);
            }
            let allocations = ALLOCATIONS.load(Ordering::SeqCst) - allocations;
            let bytes = BYTES.load(Ordering::SeqCst) - bytes;
            println!(
                "| `{target}` | {:.2} | {} |",
                allocations as f64 / requests as f64,
                bytes / requests
            );
        }
    }
}

/// Runs the real server (through `startup`, as `main` does) on a free
/// port, with its serving threads counted; it serves until the bench exits.
fn start_server(database_url: &str, mode: &str) -> std::net::SocketAddr {
    let cli = Cli::try_parse_from([
        "bakeoff",
        "--bind",
        "127.0.0.1:0",
        "--database-url",
        database_url,
        "--runtime",
        "multi",
        "--worker-threads",
        "2",
        "--pool-size",
        "2",
        "--pool-mode",
        mode,
        "--drain-timeout-s",
        "1",
    ])
    .expect("the bench's server settings parse");
    let server = Server::bind(&cli.serve)
        .expect("the bench's server binds")
        .on_thread_start(|| COUNTED.with(|counted| counted.set(true)));
    let address = server.local_addr();
    std::thread::spawn(move || server.run(Shutdown::When(Box::pin(std::future::pending()))));
    address
}
