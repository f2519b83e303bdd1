//! The one seam that starts the server: a [`ServeConfig`] becomes listeners,
//! runtimes, pools and a shutdown signal, and [`Server::run`] serves until
//! the shutdown resolves. `main`, the benches and any in-process test start
//! the server through here and nowhere else.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};

use crate::activity;
use crate::compute::ComputePool;
use crate::config::{self, RuntimeShape, Scheduling, ServeConfig};
use crate::db::{Connector, Database, Health, PoolMode, PoolOptions, address};
use crate::handlers::State;
use crate::log;
use crate::metrics;
use crate::server::{self, HttpOptions};

/// What ends the server.
pub enum Shutdown {
    /// SIGTERM or SIGINT, caught from the start line on (the default action
    /// would end the process with 143 instead of draining).
    Signals,
    /// A future of the caller's: a bench or a test stops the server with it.
    When(Pin<Box<dyn Future<Output = ()> + Send>>),
}

/// A server whose listeners are bound, ready to [`run`](Server::run).
pub struct Server {
    config: ServeConfig,
    postgres: Connector,
    /// One listener, or one per worker (SO_REUSEPORT) in the per-core shape.
    listeners: Vec<TcpListener>,
    address: SocketAddr,
    /// Called first on every thread that serves (a bench counts their
    /// allocations with it).
    on_thread_start: Option<fn()>,
}

/// How long, once the connections are drained (or the drain timeout has
/// passed), a runtime waits for its remaining work before it is dropped.
/// Dropping a runtime would wait for ever for `spawn_blocking` work (a
/// host name still resolving); its tasks, the database connections'
/// included, are dropped, which closes their sockets.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

impl Server {
    /// Checks the configuration, sets the process up (open-file limit,
    /// access log, metrics) and binds every listener, so that a client that
    /// connects as soon as it reads the start line is served.
    pub fn bind(config: &ServeConfig) -> Result<Server, String> {
        let postgres = address::postgres_config(&config.database_url, config.pool_timeout())?;
        raise_open_file_limit();
        if config.access_log {
            log::enable_access_log();
        }
        if config.no_metrics {
            metrics::disable();
        }
        let per_core = config.runtime == RuntimeShape::PerCore;
        let first = server::bind(config.bind, per_core)
            .map_err(|error| format!("cannot listen on BIND {}: {error}", config.bind))?;
        let address = first.local_addr().map_err(|error| error.to_string())?;
        let mut listeners = vec![first];
        if per_core {
            for _ in 1..config.worker_threads() {
                listeners.push(
                    server::bind(address, true)
                        .map_err(|error| format!("cannot listen on {address}: {error}"))?,
                );
            }
        }
        Ok(Server {
            config: config.clone(),
            postgres,
            listeners,
            address,
            on_thread_start: None,
        })
    }

    /// Where the server listens (the port chosen, when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Runs `hook` first on every thread that serves requests.
    pub fn on_thread_start(mut self, hook: fn()) -> Server {
        self.on_thread_start = Some(hook);
        self
    }

    /// Serves until `shutdown` resolves, then drains (see `server::serve`).
    /// Writes the start line on stderr once every pool is registered for
    /// `/metrics`; no pool has tried to connect before that (its tasks first
    /// run at its worker's first await), so its errors come after the line.
    pub fn run(self, shutdown: Shutdown) -> Result<(), String> {
        let config = &self.config;
        let control = runtime(RuntimeShape::PerCore, 1, None, Scheduling::Normal)?;
        let shutdown = match shutdown {
            Shutdown::Signals => {
                let _entered = control.enter();
                signals()?
            }
            Shutdown::When(future) => future,
        };
        let workers = config.worker_threads();
        // Per core: the pool size is split between the workers' pools.
        let (units, pool_size) = match config.runtime {
            RuntimeShape::Multi => (1, config.pool_size()),
            RuntimeShape::PerCore => (workers, config.pool_size().div_ceil(workers as u32).max(1)),
        };
        let pool = config.pool_options(pool_size);
        let fib: &'static ComputePool = Box::leak(Box::new(ComputePool::start(
            config::available_cores(),
            config.fib_queue(),
        )?));
        let http = HttpOptions {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_s),
            drain_timeout: Duration::from_secs(config.drain_timeout_s),
            connection_slots: Arc::new(Semaphore::new(config.max_connections as usize)),
            limits: config.connection_limits(),
        };
        // Met twice by every worker and this thread: once every pool is
        // registered, then once the start line is written.
        let started = Arc::new(Barrier::new(units + 1));
        let health = Arc::new(Health::default());
        let (stop, stopped) = watch::channel(false);
        let threads = self
            .listeners
            .into_iter()
            .enumerate()
            .map(|(index, listener)| {
                let worker = Worker {
                    runtime: runtime(
                        config.runtime,
                        workers,
                        self.on_thread_start,
                        config.scheduling,
                    )?,
                    index,
                    listener,
                    postgres: self.postgres.clone(),
                    pool: pool.clone(),
                    health: Arc::clone(&health),
                    http: http.clone(),
                    fib,
                    stopped: stopped.clone(),
                    started: Arc::clone(&started),
                };
                let on_thread_start = self.on_thread_start;
                let scheduling = config.scheduling;
                thread::Builder::new()
                    .name(format!("bakeoff-{index}"))
                    .spawn(move || {
                        if let Some(hook) = on_thread_start {
                            hook();
                        }
                        // Per core, this thread is the runtime; in the
                        // `multi` shape its workers label themselves, and
                        // set their own scheduling policy.
                        metrics::enter_runtime(worker.index);
                        set_scheduling(scheduling);
                        worker.serve()
                    })
                    .map_err(|error| format!("cannot start a worker thread: {error}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        started.wait();
        describe(config, &self.postgres, self.address, &pool, units as u32);
        started.wait();
        control.block_on(shutdown);
        // Readiness, then stop (Kubernetes' preStop, a balancer's health
        // check): told to stop, the server fails `/readyz` and keeps
        // serving for the delay, so that the balancer stops sending it
        // requests before it refuses them. Without a delay, nothing of this
        // happens: it stops accepting at once, as it always did.
        let delay = Duration::from_millis(config.shutdown_delay_ms);
        if !delay.is_zero() {
            activity::start_draining();
            eprintln!(
                "bakeoff: draining: /readyz answers 503, still serving for {} ms",
                delay.as_millis()
            );
            // The timer is made inside the runtime, which it needs.
            control.block_on(async move { tokio::time::sleep(delay).await });
        }
        eprintln!("bakeoff: shutting down, draining open connections");
        let _ = stop.send(true);
        for thread in threads {
            thread
                .join()
                .map_err(|_| "a worker thread panicked".to_owned())??;
        }
        // A computation still running finishes on its own thread, unawaited.
        fib.close();
        Ok(())
    }
}

/// One serving unit: a runtime with its listener and its pools (the whole
/// process in the `multi` shape, one core's share in `per-core`).
struct Worker {
    runtime: Runtime,
    /// The runtime's number, its label in `/metrics` (0 in the `multi` shape).
    index: usize,
    listener: TcpListener,
    postgres: Connector,
    pool: PoolOptions,
    /// The process's view of the database's reachability, shared.
    health: Arc<Health>,
    http: HttpOptions,
    fib: &'static ComputePool,
    stopped: watch::Receiver<bool>,
    started: Arc<Barrier>,
}

impl Worker {
    fn serve(self) -> Result<(), String> {
        let Worker {
            runtime,
            index: _,
            listener,
            postgres,
            pool,
            health,
            http,
            fib,
            stopped,
            started,
        } = self;
        let served = runtime.block_on(async move {
            let state: &'static State = Box::leak(Box::new(State {
                db: Database::new(postgres, &pool, &health),
                fib,
            }));
            metrics::register_pool(&state.db);
            started.wait();
            started.wait();
            // Spawned, so that in the `multi` shape the accept loop runs on
            // a worker thread and the connections it spawns start on that
            // worker's own queue.
            tokio::spawn(server::serve(listener, state, http, stopped))
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| error.to_string())
        });
        runtime.shutdown_timeout(SHUTDOWN_GRACE);
        served
    }
}

/// A runtime of the given shape: work-stealing over `workers` threads, or
/// one thread (per-core, and the control runtime that waits for signals).
/// `scheduling` applies to the `multi` shape's workers (a per-core runtime
/// runs on the thread that made it, which sets its own).
fn runtime(
    shape: RuntimeShape,
    workers: usize,
    hook: Option<fn()>,
    scheduling: Scheduling,
) -> Result<Runtime, String> {
    let mut builder = match shape {
        RuntimeShape::Multi => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(workers);
            // Every thread of the one runtime counts as runtime 0 in
            // `/metrics` (each in its own shard still).
            builder.on_thread_start(move || {
                if let Some(hook) = hook {
                    hook();
                }
                metrics::enter_runtime(0);
                set_scheduling(scheduling);
            });
            builder
        }
        RuntimeShape::PerCore => {
            let mut builder = tokio::runtime::Builder::new_current_thread();
            if let Some(hook) = hook {
                builder.on_thread_start(hook);
            }
            builder
        }
    };
    builder
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))
}

/// SIGTERM or SIGINT, caught from now on. Must be called inside the runtime
/// that will wait for them.
fn signals() -> Result<Pin<Box<dyn Future<Output = ()> + Send>>, String> {
    let install =
        |kind| signal(kind).map_err(|error| format!("cannot install signal handlers: {error}"));
    let (mut terminate, mut interrupt) = (
        install(SignalKind::terminate())?,
        install(SignalKind::interrupt())?,
    );
    Ok(Box::pin(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    }))
}

/// The start line: where the server listens and what it serves with (the
/// database's host, never its password).
fn describe(
    config: &ServeConfig,
    postgres: &Connector,
    address: SocketAddr,
    pool: &PoolOptions,
    units: u32,
) {
    let shape = match config.runtime {
        RuntimeShape::Multi => "multi",
        RuntimeShape::PerCore => "per-core",
    };
    let mode = match config.pool_mode {
        PoolMode::Shared => "shared",
        PoolMode::Exclusive => "exclusive",
    };
    let per_call = match pool.per_call_plans_size() * units {
        0 => String::new(),
        n => format!(" + {n} planned per call"),
    };
    eprintln!(
        "bakeoff {} listening on http://{address} (database {}, runtime {shape}, {} workers, pool {} {mode}{per_call})",
        env!("CARGO_PKG_VERSION"),
        address::describe_database(postgres),
        config.worker_threads(),
        pool.size * units,
    );
}

/// Puts the calling thread under `scheduling`.
///
/// Why `SCHED_BATCH` by default: on a machine the server shares with
/// PostgreSQL (and, in the benchmarks, the load generator), a serving
/// thread woken by every PostgreSQL answer or client request preempted the
/// thread running on its CPU at once: a PostgreSQL backend in the middle of
/// a pipelined batch, which then went on after the server had taken one
/// answer. Every stage then moved one request per wake-up, and a run could
/// settle in that state for its whole length: the unstable cost per request
/// of issue #22 (docs/PERFORMANCE.md: server CPU 18–44 µs per
/// `contact_random` request from run to run, PostgreSQL preempted up to 1.2
/// times per request). A `SCHED_BATCH` thread that wakes does not preempt
/// the running one (Linux's fair scheduler leaves wake-up preemption to
/// `SCHED_NORMAL` threads): the backend finishes its batch, and the server
/// takes it whole at its next turn, by the next tick at the latest. Any
/// thread may lower itself to it without privileges; a refusal (a sandbox
/// that forbids the call) is logged and changes nothing else.
fn set_scheduling(scheduling: Scheduling) {
    if scheduling == Scheduling::Normal {
        return;
    }
    let parameters = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on the calling thread (pid 0) only reads
    // the parameters given.
    let status = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &parameters) };
    if status != 0 {
        static LAST_LOGGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if log::once_a_second(&LAST_LOGGED) {
            eprintln!(
                "bakeoff: cannot set SCHED_BATCH ({}); serving with the normal policy",
                std::io::Error::last_os_error()
            );
        }
    }
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
