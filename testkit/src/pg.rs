//! A throwaway PostgreSQL cluster: `initdb` into a fresh directory under the
//! system temp dir, `postgres` on a free port of 127.0.0.1 (and a Unix socket
//! in that directory; `data/` is PGDATA, `postgres-PORT.log` its log),
//! stopped and removed when the test binary exits.
//!
//! initdb and postgres refuse to run as root; as root they run as the
//! `postgres` OS user, on a directory it owns.

use crate::spawn;
use std::ffi::CString;
use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster. Lives for the whole test binary (the exit hook stops it).
pub struct Cluster {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The postmaster; kept so that it is never reaped by anyone else.
    /// `None` while [`Cluster::stop`] has stopped it.
    postmaster: Option<Child>,
    /// What [`Cluster::start_again`] needs.
    home: Home,
}

/// Where a cluster lives and who runs it.
struct Home {
    /// The directory holding `initdb` and `postgres`.
    bin: PathBuf,
    /// The cluster's own directory: its log and Unix socket.
    dir: PathBuf,
    /// PGDATA, `data/` in `dir`.
    data: PathBuf,
    /// Who runs the binaries.
    run_as: Option<RunAs>,
}

/// The OS user that runs the PostgreSQL binaries: `None` when not root.
struct RunAs {
    /// Its user id.
    uid: u32,
    /// Its group id.
    gid: u32,
}

impl Cluster {
    /// initdb + start; the database `dbname` is created.
    pub fn start(dbname: &str) -> Result<Cluster, String> {
        let bin = find_bin_dir()?;
        let run_as = run_as()?;
        sweep_stale_dirs();
        let dir = std::env::temp_dir().join(format!(
            "bakeoff-test-pg-{}-{}",
            std::process::id(),
            nanos_now()
        ));
        fs::create_dir(&dir).map_err(|error| format!("create {}: {error}", dir.display()))?;
        spawn::remove_at_exit(dir.clone());
        if let Some(user) = &run_as {
            chown(&dir, user)?;
        }
        let data = dir.join("data");

        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "--locale=C.UTF-8",
                "-E",
                "UTF8",
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
            ])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        as_user(&mut initdb, &run_as);
        let out = spawn::spawn(initdb, libc::SIGKILL)
            .and_then(|initdb_child| initdb_child.wait_with_output())
            .map_err(|error| format!("run {}: {error}", bin.join("initdb").display()))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }

        // The port is free when we look; another process may take it before
        // postgres binds, so a bind failure is retried on a new port.
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            match start_postmaster(&bin, &dir, &data, port, &run_as) {
                Ok(child) => {
                    let cluster = Cluster {
                        port,
                        postmaster: Some(child),
                        home: Home {
                            bin,
                            dir,
                            data,
                            run_as,
                        },
                    };
                    cluster.create_database(dbname)?;
                    return Ok(cluster);
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// A hot standby of `primary`, streaming from it: `pg_basebackup -R`
    /// into a fresh directory, started on a port of its own. Its databases
    /// are the primary's; it answers reads, refuses writes, and
    /// `pg_is_in_recovery()` is true until [`Cluster::promote`].
    pub fn standby_of(primary: &Cluster) -> Result<Cluster, String> {
        let bin = primary.home.bin.clone();
        let run_as = run_as()?;
        let dir = std::env::temp_dir().join(format!(
            "bakeoff-test-pg-{}-{}",
            std::process::id(),
            nanos_now()
        ));
        fs::create_dir(&dir).map_err(|error| format!("create {}: {error}", dir.display()))?;
        spawn::remove_at_exit(dir.clone());
        if let Some(user) = &run_as {
            chown(&dir, user)?;
        }
        let data = dir.join("data");
        let mut backup = Command::new(bin.join("pg_basebackup"));
        backup
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
            .args(["-U", "postgres", "-D"])
            .arg(&data)
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        as_user(&mut backup, &run_as);
        let out = spawn::spawn(backup, libc::SIGKILL)
            .and_then(|child| child.wait_with_output())
            .map_err(|error| format!("run pg_basebackup: {error}"))?;
        if !out.status.success() {
            return Err(format!(
                "pg_basebackup failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            match start_postmaster(&bin, &dir, &data, port, &run_as) {
                Ok(child) => {
                    return Ok(Cluster {
                        port,
                        postmaster: Some(child),
                        home: Home {
                            bin,
                            dir,
                            data,
                            run_as,
                        },
                    });
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// Promotes a standby to a primary, and returns once it is one
    /// (`pg_promote` waits for the end of recovery).
    pub fn promote(&self) -> Result<(), String> {
        let mut client = postgres::Client::connect(&self.conn_string("postgres"), postgres::NoTls)
            .map_err(|error| format!("connect to the standby: {error}"))?;
        let promoted: bool = client
            .query_one("SELECT pg_promote(true, 30)", &[])
            .map_err(|error| format!("pg_promote: {error}"))?
            .get(0);
        match promoted {
            true => Ok(()),
            false => Err("pg_promote did not finish in 30 s".to_owned()),
        }
    }

    /// Stops the postmaster with a "fast" shutdown (SIGINT: every session is
    /// ended, then it exits) and waits, at most 30 s, until it has exited.
    /// For clusters a test owns: the shared fixture's cluster must stay up.
    pub fn stop(&mut self) {
        if let Some(child) = self.postmaster.take() {
            spawn::forget_process(child.id());
            spawn::stop_process(child.id() as i32, libc::SIGINT, Duration::from_secs(30));
        }
    }

    /// Starts the stopped postmaster again on the same port and data, and
    /// returns once it accepts connections (polled every 25 ms).
    pub fn start_again(&mut self) -> Result<(), String> {
        assert!(self.postmaster.is_none(), "the cluster is running");
        let location = &self.home;
        let child = start_postmaster(
            &location.bin,
            &location.dir,
            &location.data,
            self.port,
            &location.run_as,
        )?;
        self.postmaster = Some(child);
        Ok(())
    }

    /// libpq URL of `dbname` over TCP.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{dbname}", self.port)
    }

    /// key=value connection string for the `postgres` crate.
    pub fn conn_string(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname} connect_timeout=5",
            self.port
        )
    }

    fn create_database(&self, dbname: &str) -> Result<(), String> {
        let mut client = postgres::Client::connect(&self.conn_string("postgres"), postgres::NoTls)
            .map_err(|error| format!("connect to the new cluster: {error}"))?;
        client
            .batch_execute(&format!("CREATE DATABASE {dbname}"))
            .map_err(|error| format!("CREATE DATABASE {dbname}: {error}"))
    }
}

/// Removes the directories of earlier test runs that were killed before
/// their exit hook ran (their postgres got the parent-death signal).
fn sweep_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|dir_name| dir_name.strip_prefix("bakeoff-test-pg-"))
        else {
            continue;
        };
        let Some(owner) = rest.split('-').next().and_then(|word| word.parse().ok()) else {
            continue;
        };
        if is_alive(owner) {
            continue;
        }
        // Its postmaster may still be shutting down.
        let postmaster = fs::read_to_string(entry.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse().ok());
        if postmaster.is_some_and(is_alive) {
            continue;
        }
        let _ = fs::remove_dir_all(entry.path());
    }
}

fn is_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) == 0 };
    exists || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn nanos_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0)
}

/// Starts postgres and waits until it accepts a connection.
fn start_postmaster(
    bin: &Path,
    dir: &Path,
    data: &Path,
    port: u16,
    run_as: &Option<RunAs>,
) -> Result<Child, String> {
    let log_path = dir.join(format!("postgres-{port}.log"));
    let log = fs::File::create(&log_path).map_err(|error| format!("create log: {error}"))?;
    let log2 = log
        .try_clone()
        .map_err(|error| format!("clone log fd: {error}"))?;
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            // A throwaway cluster needs no durability: faster seeding.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    as_user(&mut cmd, run_as);
    // SIGINT is PostgreSQL's "fast shutdown": sessions are ended, then exit.
    let mut child = spawn::spawn(cmd, libc::SIGINT)
        .map_err(|error| format!("start {}: {error}", bin.join("postgres").display()))?;
    spawn::stop_at_exit(child.id(), libc::SIGINT, Duration::from_secs(10));

    let conn =
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=2");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            spawn::forget_process(child.id());
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("postgres exited ({status}) while starting:\n{log}"));
        }
        if postgres::Client::connect(&conn, postgres::NoTls).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            spawn::forget_process(child.id());
            spawn::stop_process(child.id() as i32, libc::SIGQUIT, Duration::from_secs(5));
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "postgres did not accept connections in 60 s:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A TCP port of 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn as_user(cmd: &mut Command, run_as: &Option<RunAs>) {
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
}

fn run_as() -> Result<Option<RunAs>, String> {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("postgres").unwrap();
    // SAFETY: getpwnam returns a pointer to static storage or null; read
    // immediately, before any other call could overwrite it.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(
            "running as root, and initdb/postgres refuse root, but there is no \
                    `postgres` OS user to run them as: install PostgreSQL \
                    (`apt-get install postgresql`) or run the tests as a non-root user"
                .into(),
        );
    }
    // SAFETY: pw is non-null and points to a valid passwd.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

fn chown(path: &Path, user: &RunAs) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
        .map_err(|error| format!("chown {} to postgres: {error}", path.display()))
}

/// The directory holding `initdb` and `postgres`: `$PG_BIN`, else
/// `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`, else
/// the directory of `initdb` on `PATH`.
fn find_bin_dir() -> Result<PathBuf, String> {
    let has_binaries = |candidate: &Path| {
        candidate.join("initdb").is_file() && candidate.join("postgres").is_file()
    };
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_binaries(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "PG_BIN={} holds no initdb and postgres binaries: point it at the \
                 directory that does (e.g. /usr/lib/postgresql/15/bin), or unset it \
                 and install PostgreSQL (`apt-get install postgresql`)",
                dir.display()
            ))
        };
    }
    let mut candidates = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        candidates.push(PathBuf::from(
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        ));
    }
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev().map(|(_, bin_dir)| bin_dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|candidate| has_binaries(candidate))
        .ok_or_else(|| {
            "PostgreSQL server binaries (initdb, postgres) not found: install them \
         (`apt-get install postgresql`), or set PG_BIN to the directory that holds \
         initdb and postgres (e.g. PG_BIN=/usr/lib/postgresql/15/bin)"
                .to_string()
        })
}
