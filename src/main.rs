//! `bakeoff`: reads the configuration, sets the allocator, builds the
//! runtime shape asked for, and serves until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use bakeoff::config::{self, Cli, Command, RuntimeShape, ServeConfig};
use bakeoff::db::{Db, PoolMode, PoolOptions};
use bakeoff::handlers::FibPool;
use bakeoff::metrics;
use bakeoff::server::{self, HttpOptions, State};
use clap::Parser;
use clap::error::ErrorKind;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Semaphore, watch};

// mimalloc: fast thread-local free lists suit a server whose every request
// allocates and frees a few buffers on one thread. jemalloc is the
// alternative, compared by `./scripts/run.sh --allocators`.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => match error.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => error.exit(),
            _ => return fail(first_line(&error.to_string())),
        },
    };
    let result = match cli.command {
        Some(Command::Seed(seed)) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the runtime: {error}"))
            .and_then(|runtime| runtime.block_on(bakeoff::seed::run(&seed))),
        Some(Command::Serve(serve)) => run_server(&serve),
        None => run_server(&cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

/// One line on stderr, exit code 2.
fn fail(message: &str) -> ExitCode {
    eprintln!("bakeoff: {message}");
    ExitCode::from(2)
}

/// clap's first line, without its `error: ` prefix (the rest is usage).
fn first_line(message: &str) -> &str {
    let line = message.lines().next().unwrap_or(message);
    line.strip_prefix("error: ").unwrap_or(line)
}

fn run_server(config: &ServeConfig) -> Result<(), String> {
    let postgres = config::postgres_config(&config.database_url, config.pool_timeout())?;
    raise_open_file_limit();
    if config.access_log {
        server::enable_access_log();
    }
    if config.no_metrics {
        metrics::disable();
    }
    let workers = config.worker_threads();
    let http = HttpOptions {
        header_read_timeout: Duration::from_secs(config.header_read_timeout_s),
        drain_timeout: Duration::from_secs(config.drain_timeout_s),
        connection_slots: Arc::new(Semaphore::new(config.max_connections as usize)),
    };
    let fib: &'static FibPool = Box::leak(Box::new(FibPool::new(
        config::available_cores(),
        config.fib_queue(),
    )));
    let pool_size = config.pool_size();
    let describe = |address: SocketAddr, shape: &str, pool: u32, per_call_plans: u32| {
        eprintln!(
            "bakeoff {} listening on http://{address} (database {}, runtime {shape}, {workers} workers, pool {pool} {mode}{per_call})",
            env!("CARGO_PKG_VERSION"),
            config::describe_database(&postgres),
            mode = match config.pool_mode {
                PoolMode::Shared => "shared",
                PoolMode::Exclusive => "exclusive",
            },
            per_call = match per_call_plans {
                0 => String::new(),
                n => format!(" + {n} planned per call"),
            },
        );
    };

    match config.runtime {
        RuntimeShape::Multi => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .map_err(|error| format!("cannot start the runtime: {error}"))?;
            let listener = server::bind(config.bind, false)
                .map_err(|error| format!("cannot listen on BIND {}: {error}", config.bind))?;
            let address = listener.local_addr().map_err(|error| error.to_string())?;
            let pool = PoolOptions {
                size: pool_size,
                checkout_timeout: config.pool_timeout(),
                mode: config.pool_mode,
                statements: config.statements,
                statement_timeout: Duration::from_millis(config.statement_timeout_ms),
            };
            let signals = {
                let _runtime = runtime.enter();
                Signals::install()?
            };
            // The start line first: the pool starts connecting at once, and
            // its errors must not come before the line that says where we are.
            describe(address, "multi", pool_size, pool.per_call_plans_size());
            let served = runtime.block_on(async {
                let state: &'static State = Box::leak(Box::new(State {
                    db: Db::new(postgres.clone(), &pool),
                    fib,
                }));
                metrics::register_pool(&state.db);
                let (stop, stopped) = watch::channel(false);
                tokio::spawn(stop_on_signal(signals, stop));
                runtime_serve(listener, state, http, stopped).await
            });
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
            served
        }
        RuntimeShape::PerCore => {
            // Bind every listener before announcing the address, so that a
            // client that connects as soon as it reads the log line is served.
            let first = server::bind(config.bind, true)
                .map_err(|error| format!("cannot listen on BIND {}: {error}", config.bind))?;
            let address = first.local_addr().map_err(|error| error.to_string())?;
            let mut listeners = vec![first];
            for _ in 1..workers {
                listeners.push(
                    server::bind(address, true)
                        .map_err(|error| format!("cannot listen on {address}: {error}"))?,
                );
            }
            let pool = PoolOptions {
                size: pool_size.div_ceil(workers as u32).max(1),
                checkout_timeout: config.pool_timeout(),
                mode: config.pool_mode,
                statements: config.statements,
                statement_timeout: Duration::from_millis(config.statement_timeout_ms),
            };
            let signal_runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| format!("cannot start the runtime: {error}"))?;
            let signals = {
                let _runtime = signal_runtime.enter();
                Signals::install()?
            };
            let runtimes = (0..workers)
                .map(|_| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|error| format!("cannot start the runtime: {error}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // Met twice by every worker and this thread: once every pool is
            // registered for `/metrics`, so that the first scrape after the
            // start line counts them all; then once the line is written. No
            // pool has tried to connect before that (its tasks first run at
            // the worker's first await), so its errors come after the line.
            let started = Arc::new(Barrier::new(workers + 1));
            let (stop, stopped) = watch::channel(false);
            let threads: Vec<_> = listeners
                .into_iter()
                .zip(runtimes)
                .enumerate()
                .map(|(index, (listener, runtime))| {
                    let (postgres, pool, http, stopped, started) = (
                        postgres.clone(),
                        pool.clone(),
                        http.clone(),
                        stopped.clone(),
                        Arc::clone(&started),
                    );
                    thread::Builder::new()
                        .name(format!("bakeoff-{index}"))
                        .spawn(move || -> Result<(), String> {
                            let served = runtime.block_on(async {
                                let state: &'static State = Box::leak(Box::new(State {
                                    db: Db::new(postgres, &pool),
                                    fib,
                                }));
                                metrics::register_pool(&state.db);
                                started.wait();
                                started.wait();
                                server::serve(listener, state, http, stopped)
                                    .await
                                    .map_err(|error| error.to_string())
                            });
                            runtime.shutdown_timeout(SHUTDOWN_GRACE);
                            served
                        })
                        .map_err(|error| format!("cannot start a worker thread: {error}"))
                })
                .collect::<Result<_, _>>()?;
            started.wait();
            describe(
                address,
                "per-core",
                pool.size * workers as u32,
                pool.per_call_plans_size() * workers as u32,
            );
            started.wait();
            signal_runtime.block_on(stop_on_signal(signals, stop));
            for thread in threads {
                thread
                    .join()
                    .map_err(|_| "a worker thread panicked".to_owned())??;
            }
            Ok(())
        }
    }
}

/// How long, once the connections are drained (or the drain timeout has
/// passed), the runtime waits for its remaining work before the process
/// exits. Dropping a runtime would wait for ever for `spawn_blocking` work (a
/// `/fibonacci` still computing after the drain timeout); its tasks, the
/// database connections' included, are dropped, which closes their sockets.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Runs the accept loop as a task on a worker thread, so connections it
/// spawns start on that worker's own queue.
async fn runtime_serve(
    listener: std::net::TcpListener,
    state: &'static State,
    http: HttpOptions,
    stopped: watch::Receiver<bool>,
) -> Result<(), String> {
    tokio::spawn(server::serve(listener, state, http, stopped))
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| error.to_string())
}

/// SIGTERM and SIGINT, caught from now on. Installed before the start line
/// is written, so a signal sent as soon as it is read is never missed (the
/// default action would end the process with 143 instead of draining).
/// Must be called inside the runtime that will wait for them.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        let install =
            |kind| signal(kind).map_err(|error| format!("cannot install signal handlers: {error}"));
        Ok(Signals {
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
        })
    }
}

/// Waits for SIGTERM or SIGINT, then tells every accept loop to stop.
async fn stop_on_signal(mut signals: Signals, stop: watch::Sender<bool>) {
    tokio::select! {
        _ = signals.terminate.recv() => {}
        _ = signals.interrupt.recv() => {}
    }
    eprintln!("bakeoff: shutting down, draining open connections");
    let _ = stop.send(true);
}

/// Thousands of keep-alive connections need thousands of descriptors: lift
/// the soft limit to the hard one, as servers like nginx let you do.
fn raise_open_file_limit() {
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
