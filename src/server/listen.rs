//! The listening sockets, one per worker where the system allows it.
//!
//! [`bind`] opens the gateway's socket with `SO_REUSEPORT` (Linux), so each
//! worker can bind a socket of its own to the same address
//! ([`worker_sockets`]): the kernel then spreads new connections over the
//! workers' accept queues by a hash of the peer's address and port, and a
//! connection wakes only the worker it was given to. With one shared socket,
//! every worker's event loop is woken by each new connection and all but one
//! find nothing to accept.
//!
//! Where that is not possible (another system, or a listener bound without
//! `SO_REUSEPORT`, such as a test's `TcpListener::bind("127.0.0.1:0")`), the
//! workers share clones of the one socket, as they did before; a worker whose
//! own bind fails falls back to a clone too. Binding port 0 works either
//! way: the first socket picks the port, the others bind to it.
//!
//! `SO_REUSEPORT` lets another process of the same user bind the same port
//! and take a share of the connections; a process running as passgate's user
//! can read its keys anyway, so this opens no new door.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::TcpListener;

/// The accept queue's length, as `tokio::net::TcpListener::bind` sets it.
const BACKLOG: i32 = 1024;

/// How the workers share the listening address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Each worker accepts on a socket of its own (`SO_REUSEPORT`).
    OwnSockets,
    /// The workers accept on clones of one socket.
    Clones,
}

/// Bind `addr` the way passgate listens: `SO_REUSEADDR`, and `SO_REUSEPORT`
/// where the system balances connections over sockets sharing a port, so
/// that [`worker_sockets`] can give each worker its own. Port 0 picks a free
/// port (read it with `local_addr`). Falls back to a plain socket when the
/// system refuses `SO_REUSEPORT`.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match open(addr, true) {
        Ok(socket) => socket,
        Err(_) => open(addr, false)?,
    };
    TcpListener::from_std(socket)
}

/// One listening socket per worker on `first`'s address: `first` itself and,
/// when it was bound with `SO_REUSEPORT`, new sockets bound beside it;
/// otherwise (or when such a bind fails) clones of `first`.
pub fn worker_sockets(
    first: StdListener,
    workers: usize,
) -> io::Result<(Vec<StdListener>, Sharing)> {
    let mut own = reuses_port(&first);
    let addr = first.local_addr()?;
    let mut sockets = Vec::with_capacity(workers.max(1));
    for _ in 1..workers {
        let socket = match own {
            true => match open(addr, true) {
                Ok(socket) => socket,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot open a listening socket per worker; the workers share one");
                    own = false;
                    first.try_clone()?
                }
            },
            false => first.try_clone()?,
        };
        sockets.push(socket);
    }
    sockets.insert(0, first);
    let sharing = match own && workers > 1 {
        true => Sharing::OwnSockets,
        false => Sharing::Clones,
    };
    Ok((sockets, sharing))
}

/// A non-blocking listening socket on `addr`; with `reuse_port`, one that
/// others with the option may join.
fn open(addr: SocketAddr, reuse_port: bool) -> io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    if reuse_port {
        set_reuse_port(&socket)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Only Linux (and Android) balance connections over sockets sharing a
/// port; elsewhere `SO_REUSEPORT` means something else, and is not used.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_reuse_port(_: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no balancing SO_REUSEPORT on this system",
    ))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn reuses_port(socket: &StdListener) -> bool {
    SockRef::from(socket).reuse_port().unwrap_or(false)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn reuses_port(_: &StdListener) -> bool {
    false
}

/// Settings for an accepted connection: `TCP_NODELAY`, since every response
/// is written whole and must not wait for the peer's ACK of the last one.
pub fn accepted(tcp: &tokio::net::TcpStream) -> io::Result<()> {
    SockRef::from(tcp).set_tcp_nodelay(true)
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::net::TcpStream;

    use super::*;

    /// Accept on each of `sockets` until `total` connections are accepted
    /// (the last handshakes may still be landing); how many each took.
    fn accept_all(sockets: &[StdListener], total: usize) -> Vec<usize> {
        let mut counts = vec![0; sockets.len()];
        for _ in 0..500 {
            for (socket, n) in sockets.iter().zip(&mut counts) {
                loop {
                    match socket.accept() {
                        Ok(_) => *n += 1,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            }
            if counts.iter().sum::<usize>() >= total {
                return counts;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("accepted only {counts:?} of {total}");
    }

    /// Connect `n` clients to `addr` (each from its own port), keeping them open.
    fn clients(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
        (0..n)
            .map(|_| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}")))
            .collect()
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[tokio::test]
    async fn each_worker_accepts_on_its_own_socket() {
        let first = bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
            .await
            .and_then(TcpListener::into_std)
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = first.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (sockets, sharing) = worker_sockets(first, 2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sharing, Sharing::OwnSockets);
        assert_eq!(sockets.len(), 2);
        for s in &sockets {
            assert_eq!(s.local_addr().ok(), Some(addr));
        }
        // The kernel hashes each connection to one socket's queue: with 64
        // clients both queues get some (all on one has odds of 2^-63).
        // Clones of one socket share one queue, which the first socket
        // asked would empty.
        let _held = clients(addr, 64);
        let counts = accept_all(&sockets, 64);
        assert!(counts.iter().all(|n| *n > 0), "{counts:?}");
    }

    #[tokio::test]
    async fn a_listener_without_reuse_port_is_cloned() {
        let first = TcpListener::bind("127.0.0.1:0")
            .await
            .and_then(TcpListener::into_std)
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = first.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (sockets, sharing) = worker_sockets(first, 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sharing, Sharing::Clones);
        assert_eq!(sockets.len(), 3);
        let _held = clients(addr, 8);
        // One queue: any clone accepts every connection.
        assert_eq!(accept_all(&sockets[1..2], 8), [8]);
    }

    #[tokio::test]
    async fn one_worker_keeps_the_socket_it_was_given() {
        let first = bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
            .await
            .and_then(TcpListener::into_std)
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let (sockets, sharing) = worker_sockets(first, 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((sockets.len(), sharing), (1, Sharing::Clones));
    }

    #[tokio::test]
    async fn accepted_connections_do_not_wait_for_acks() {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let _client = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let (tcp, _) = listener
            .accept()
            .await
            .unwrap_or_else(|e| panic!("accept: {e}"));
        assert!(!tcp.nodelay().unwrap_or(true));
        accepted(&tcp).unwrap_or_else(|e| panic!("{e}"));
        assert!(tcp.nodelay().unwrap_or(false));
    }
}
