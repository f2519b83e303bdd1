//! A TCP forwarder: lets a test make "the database" appear on a port the
//! server already points at, without touching the shared cluster.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Forwards connections from 127.0.0.1:`port` to `target` until dropped
/// (connections already made live on until either side closes).
pub struct Proxy {
    /// Where it listens.
    addr: SocketAddr,
    /// Set on drop: the accept loop ends.
    stop: Arc<AtomicBool>,
    /// See [`Proxy::set_frozen`].
    frozen: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on 127.0.0.1:`port` and forwards every connection to `target`.
    pub fn start(port: u16, target: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let frozen = Arc::new(AtomicBool::new(false));
        let freezing = Arc::clone(&frozen);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(target) else {
                    continue;
                };
                pump(&client, &upstream, &freezing);
                pump(&upstream, &client, &freezing);
            }
        });
        Ok(Proxy { addr, stop, frozen })
    }

    /// While frozen, bytes are held, not forwarded, and every socket stays
    /// open: a proxy or host that stopped answering without closing.
    pub fn set_frozen(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }
}

/// Copies `from` → `to` on a thread, holding bytes while `frozen`; closes
/// `to`'s write side at the end.
fn pump(from: &TcpStream, to: &TcpStream, frozen: &Arc<AtomicBool>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let frozen = Arc::clone(frozen);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let count = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => count,
            };
            while frozen.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if to.write_all(&buffer[..count]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}
