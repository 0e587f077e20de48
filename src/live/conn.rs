//! Connections to the target, bounded in total: the TCP connector takes a
//! permit before it dials and the connection holds it until it closes, so
//! idle, busy and closing connections together never exceed the limit.
//!
//! The driver also bounds the attempts in flight by the same number (an
//! HTTP/1.1 connection carries one request at a time), and that is where a
//! wait for a connection is measured; this layer only makes the bound on
//! open sockets exact (a connection that hyper has not yet put back in its
//! pool, or is still closing, keeps its permit).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An [`HttpConnector`] that opens at most as many connections at once as
/// its semaphore has permits.
#[derive(Clone, Debug)]
pub struct Bounded {
    inner: HttpConnector,
    permits: Arc<Semaphore>,
}

impl Bounded {
    /// Wraps `inner` with a limit of `max` open connections.
    pub fn new(inner: HttpConnector, max: usize) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max)),
        }
    }
}

/// A TCP connection that gives its permit back when it is dropped.
#[derive(Debug)]
pub struct Permitted {
    io: TokioIo<TcpStream>,
    _permit: OwnedSemaphorePermit,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Bounded {
    type Response = Permitted;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Permitted, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let permits = Arc::clone(&self.permits);
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let permit = permits.acquire_owned().await?;
            let io = tower_service::Service::call(&mut inner, uri).await?;
            Ok(Permitted {
                io,
                _permit: permit,
            })
        })
    }
}

impl Connection for Permitted {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl Read for Permitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Permitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
