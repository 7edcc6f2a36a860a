//! The byte stream a connection runs over: any [`Socket`] behind the one concrete type
//! tokio-postgres is handed, and the TCP connection made by default.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A byte stream to the server: a TCP connection, or anything else that carries the
/// protocol (a tunnel's channel).
pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Socket for T {}

/// The stream tokio-postgres is handed: any [`Socket`], behind one concrete type (a named
/// type keeps the connect futures provably `Send`, which a bare `Box<dyn Socket>` does not).
pub struct PgSocket(Box<dyn Socket>);

impl PgSocket {
    /// Wraps a stream.
    pub fn new(socket: impl Socket) -> Self {
        Self(Box::new(socket))
    }
}

impl AsyncRead for PgSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PgSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// A TCP connection to `host:port` (every address the name resolves to, in turn), without
/// Nagle's delay, with keepalives so a long sync notices a dead peer.
pub(crate) async fn tcp(host: &str, port: u16) -> io::Result<PgSocket> {
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
    socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
    Ok(PgSocket::new(stream))
}
