//! A throwaway PgBouncer in front of the test cluster: its own directory
//! under the system temp dir (`pgbouncer.ini`, `userlist.txt`,
//! `pgbouncer.log`), listening on a free port of 127.0.0.1 only, stopped and
//! removed on drop (or when the test binary exits).
//!
//! PgBouncer refuses to run as root; as root it runs as the `postgres` OS
//! user, like the cluster. The binary is `$PGBOUNCER`, else `pgbouncer` from
//! `/usr/sbin` or `PATH` (Debian's package: `apt-get install -y pgbouncer`).

use crate::spawn;
use std::ffi::CString;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `pool_mode` of PgBouncer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// A server connection per client connection, for the client's lifetime.
    Session,
    /// A server connection per transaction (a statement outside a
    /// transaction block is one): client connections share few server ones.
    Transaction,
}

impl PoolMode {
    fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

/// What a test chooses of the configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `pool_mode`.
    pub pool_mode: PoolMode,
    /// Server connections per (database, user) pair.
    pub default_pool_size: u32,
    /// `max_client_conn`: client connections PgBouncer accepts.
    pub max_client_conn: u32,
    /// Startup parameters PgBouncer accepts and drops instead of refusing
    /// the client, e.g. `options` (which PgBouncer cannot pass on).
    pub ignore_startup_parameters: Vec<String>,
    /// Login roles besides `postgres` (auth_type=trust: no passwords, but
    /// every user must be listed in the auth_file).
    pub extra_users: Vec<String>,
}

impl Config {
    /// `pool_mode` and `default_pool_size` as given; 200 client connections, nothing ignored, no extra users.
    pub fn new(pool_mode: PoolMode, default_pool_size: u32) -> Config {
        Config {
            pool_mode,
            default_pool_size,
            max_client_conn: 200,
            ignore_startup_parameters: Vec::new(),
            extra_users: Vec::new(),
        }
    }
}

/// A running PgBouncer.
pub struct PgBouncer {
    /// Where clients connect: 127.0.0.1:`port`.
    pub port: u16,
    /// The PgBouncer process; taken by `drop`.
    child: Option<Child>,
    /// Its directory: configuration, user list, log.
    dir: PathBuf,
}

impl PgBouncer {
    /// Starts PgBouncer in front of `127.0.0.1:upstream_port`, serving the
    /// database `dbname` under the same name, and returns once it accepts
    /// connections.
    pub fn start(upstream_port: u16, dbname: &str, config: &Config) -> Result<PgBouncer, String> {
        let bin = find_binary()?;
        let run_as = run_as()?;
        let dir = std::env::temp_dir().join(format!(
            "bakeoff-test-pgbouncer-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos())
        ));
        fs::create_dir(&dir).map_err(|error| format!("create {}: {error}", dir.display()))?;
        spawn::remove_at_exit(dir.clone());
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|error| format!("chown {} to postgres: {error}", dir.display()))?;
        }

        let mut users = vec!["postgres".to_string()];
        users.extend(config.extra_users.iter().cloned());
        let userlist: String = users
            .iter()
            .map(|user| format!("\"{user}\" \"\"\n"))
            .collect();
        write(&dir.join("userlist.txt"), &userlist)?;

        // The port is free when we look; another process may take it before
        // PgBouncer binds, so a failed start is retried on a new port.
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = crate::pg::free_port();
            let ini = ini(&dir, upstream_port, dbname, port, config);
            write(&dir.join("pgbouncer.ini"), &ini)?;
            match launch(&bin, &dir, port, run_as) {
                Ok(child) => {
                    return Ok(PgBouncer {
                        port,
                        child: Some(child),
                        dir,
                    });
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// The URL of `dbname` through PgBouncer, as `user`.
    pub fn url(&self, user: &str, dbname: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{dbname}", self.port)
    }

    /// Runs `command` (e.g. `SHOW POOLS`) on the admin console and returns
    /// its rows as (column, value) pairs.
    pub fn admin(&self, command: &str) -> Result<Vec<Vec<(String, String)>>, String> {
        let conn = format!(
            "host=127.0.0.1 port={} user=postgres dbname=pgbouncer connect_timeout=5",
            self.port
        );
        let mut client = postgres::Client::connect(&conn, postgres::NoTls)
            .map_err(|error| format!("connect to the PgBouncer admin console: {error}"))?;
        let messages = client
            .simple_query(command)
            .map_err(|error| format!("{command} on the admin console: {error}"))?;
        Ok(messages
            .into_iter()
            .filter_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => Some(
                    row.columns()
                        .iter()
                        .enumerate()
                        .map(|(index, column)| {
                            (
                                column.name().to_string(),
                                row.get(index).unwrap_or("").to_string(),
                            )
                        })
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            spawn::forget_process(child.id());
            // SIGTERM: PgBouncer's immediate shutdown.
            spawn::stop_process(child.id() as i32, libc::SIGTERM, Duration::from_secs(5));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn ini(dir: &Path, upstream_port: u16, dbname: &str, port: u16, config: &Config) -> String {
    format!(
        "[databases]\n\
         {dbname} = host=127.0.0.1 port={upstream_port} dbname={dbname}\n\
         \n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {dir}/userlist.txt\n\
         admin_users = postgres\n\
         pool_mode = {mode}\n\
         default_pool_size = {pool}\n\
         max_client_conn = {max_client}\n\
         ignore_startup_parameters = {ignore}\n\
         logfile = {dir}/pgbouncer.log\n",
        dir = dir.display(),
        mode = config.pool_mode.as_str(),
        pool = config.default_pool_size,
        max_client = config.max_client_conn,
        ignore = config.ignore_startup_parameters.join(","),
    )
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|error| format!("write {}: {error}", path.display()))
}

fn launch(bin: &Path, dir: &Path, port: u16, run_as: Option<(u32, u32)>) -> Result<Child, String> {
    let mut cmd = Command::new(bin);
    cmd.arg(dir.join("pgbouncer.ini"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
    let mut child = spawn::spawn(cmd, libc::SIGTERM)
        .map_err(|error| format!("start {}: {error}", bin.display()))?;
    spawn::stop_at_exit(child.id(), libc::SIGTERM, Duration::from_secs(5));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            spawn::forget_process(child.id());
            let log = fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
            return Err(format!(
                "pgbouncer exited ({status}) while starting:\n{log}"
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            spawn::forget_process(child.id());
            spawn::stop_process(child.id() as i32, libc::SIGKILL, Duration::from_secs(5));
            let log = fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
            return Err(format!("pgbouncer did not listen within 20 s:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `$PGBOUNCER`, else `/usr/sbin/pgbouncer` (Debian), else `pgbouncer` on `PATH`.
fn find_binary() -> Result<PathBuf, String> {
    const INSTALL: &str = "install it with `apt-get install -y pgbouncer` \
                           (or set PGBOUNCER=/path/to/pgbouncer)";
    if let Some(path) = std::env::var_os("PGBOUNCER") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "PGBOUNCER={} is not a file: {INSTALL}",
                path.display()
            ))
        };
    }
    let mut candidates = vec![PathBuf::from("/usr/sbin/pgbouncer")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("pgbouncer")));
    }
    candidates
        .into_iter()
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!("pgbouncer not found: {INSTALL}"))
}

/// The `postgres` OS user's (uid, gid) when running as root: PgBouncer
/// refuses root.
fn run_as() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("postgres").unwrap();
    // SAFETY: getpwnam returns a pointer to static storage or null; read
    // at once, before any other call could overwrite it.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(
            "running as root, and pgbouncer refuses root, but there is no `postgres` \
             OS user to run it as: install PostgreSQL (`apt-get install postgresql`)"
                .into(),
        );
    }
    // SAFETY: pw is non-null and points to a valid passwd.
    Ok(Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) }))
}
