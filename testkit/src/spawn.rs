//! Child processes that cannot outlive the test binary.
//!
//! Two mechanisms, because each covers a hole in the other:
//!
//! * `PR_SET_PDEATHSIG`: the kernel signals the child when its parent dies,
//!   even by SIGKILL. The "parent" is the *thread* that forked, not the
//!   process, so every child is spawned from one thread that never exits
//!   (libtest runs each test on a thread that ends with the test).
//! * An `atexit` hook: a `static` is never dropped, so the shared cluster and
//!   server would otherwise survive a normal exit, including the
//!   `exit(101)` libtest does when a test failed. The hook stops every
//!   registered child (and removes registered directories), in the reverse
//!   order of registration: servers before the cluster they use.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

/// What the exit hook must clean up, in registration order.
enum Resource {
    /// A child to stop: its pid, the signal asking it to stop, and how long
    /// to wait before SIGKILL.
    Process {
        pid: i32,
        signal: i32,
        grace: Duration,
    },
    /// A directory to remove.
    Dir(PathBuf),
}

static RESOURCES: Mutex<Vec<Resource>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

type Request = (Command, Sender<io::Result<Child>>);
static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();

/// Spawns `cmd` from the never-ending spawner thread, with `death_signal`
/// delivered to the child if this process dies.
pub fn spawn(mut cmd: Command, death_signal: i32) -> io::Result<Child> {
    let parent = std::process::id() as i32;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe calls (prctl, getppid). std applies `uid`/`gid`
    // before running it, which matters: a credential change clears the
    // parent-death signal.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // The test process died before the prctl took effect.
                return Err(io::Error::other("parent already exited"));
            }
            Ok(())
        });
    }
    let sender = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Request>();
            std::thread::Builder::new()
                .name("child-spawner".into())
                .spawn(move || {
                    // The sender lives in a static, so this loop never ends
                    // and the thread never exits.
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("start the child-spawner thread");
            Mutex::new(tx)
        })
        .lock()
        .unwrap_or_else(|error| error.into_inner())
        .clone();
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("child-spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("child-spawner thread is gone"))?
}

fn install_hook() {
    HOOK.call_once(|| {
        // SAFETY: registering a plain `extern "C" fn` without arguments.
        let rc = unsafe { libc::atexit(cleanup_at_exit) };
        assert_eq!(rc, 0, "atexit failed");
    });
}

/// Stops `pid` (with `signal`, then SIGKILL after `grace`) when the test
/// binary exits, unless [`forget_process`] was called first.
pub fn stop_at_exit(pid: u32, signal: i32, grace: Duration) {
    install_hook();
    lock_resources().push(Resource::Process {
        pid: pid as i32,
        signal,
        grace,
    });
}

/// Removes a registration made by [`stop_at_exit`]: the caller has stopped
/// and reaped the process itself.
pub fn forget_process(pid: u32) {
    lock_resources().retain(|resource| !matches!(resource, Resource::Process { pid: registered, .. } if *registered == pid as i32));
}

/// Removes `dir` (recursively) when the test binary exits.
pub fn remove_at_exit(dir: PathBuf) {
    install_hook();
    lock_resources().push(Resource::Dir(dir));
}

fn lock_resources() -> std::sync::MutexGuard<'static, Vec<Resource>> {
    RESOURCES.lock().unwrap_or_else(|error| error.into_inner())
}

extern "C" fn cleanup_at_exit() {
    // A panic must not unwind into libc.
    let _ = std::panic::catch_unwind(|| {
        let resources = std::mem::take(&mut *lock_resources());
        for resource in resources.into_iter().rev() {
            match resource {
                Resource::Process { pid, signal, grace } => stop_process(pid, signal, grace),
                Resource::Dir(dir) => {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    });
}

/// Sends `signal`, waits up to `grace` for the exit, then SIGKILLs. Reaps.
pub fn stop_process(pid: i32, signal: i32, grace: Duration) {
    // SAFETY: plain syscalls on a pid this process spawned and has not reaped.
    unsafe {
        if libc::kill(pid, signal) != 0 {
            // Already reaped or gone.
            libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
            return;
        }
        let deadline = Instant::now() + grace;
        loop {
            let mut status = 0;
            let reaped = libc::waitpid(pid, &mut status, libc::WNOHANG);
            if reaped == pid || reaped < 0 {
                return;
            }
            if Instant::now() >= deadline {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
