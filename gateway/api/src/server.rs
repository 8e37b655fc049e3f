//! The HTTP server: accepts connections and hands each to hyper with the
//! [`routes`](crate::routes) filter as its service.
//!
//! It is warp's own serving loop (HTTP/1.1 and HTTP/2, graceful shutdown),
//! written out here for one reason: hyper answers some requests itself, before
//! any router sees them — a request line over 65 534 bytes (414), headers over
//! its ~400 KiB read buffer (431), a header it cannot parse such as a negative
//! or overflowing `Content-Length` (400) — and those answers have an empty
//! body. hyper offers no hook for them, so each connection's writes pass
//! through [`JsonErrors`], which replaces such an answer with the API's JSON
//! error body. Every answer the router gives carries a `Content-Type`; an
//! answer without one can only be hyper's.
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::error::ApiError;

/// Serves `filter` on `listener` until `shutdown` completes, then waits for
/// open connections to finish their requests.
pub async fn serve(
    filter: impl warp::Filter<Extract = (warp::http::Response<bytes::Bytes>,), Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(warp::service(filter.clone()));
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let io = JsonErrors::new(TokioIo::new(stream));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(io, service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A connection whose automatic hyper error answers (see the module doc) are
/// rewritten as JSON errors; everything else passes through unchanged.
pub struct JsonErrors<T> {
    io: T,
    /// A rewritten answer still to be written, and how much of it is written.
    pending: Option<(Vec<u8>, usize)>,
}

impl<T> JsonErrors<T> {
    pub fn new(io: T) -> JsonErrors<T> {
        JsonErrors { io, pending: None }
    }
}

impl<T: Write + Unpin> JsonErrors<T> {
    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            if *written == bytes.len() {
                self.pending = None;
                break;
            }
            let n = match Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            };
            *written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: Read + Unpin> Read for JsonErrors<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for JsonErrors<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        if let Some(answer) = rewrite_automatic_error(buf) {
            this.pending = Some((answer, 0));
            // The caller's bytes are taken whole; the rewrite is written now
            // or on the next write, flush or shutdown.
            if let Poll::Ready(Err(error)) = this.poll_pending(cx) {
                return Poll::Ready(Err(error));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_pending(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_shutdown(cx),
            other => other,
        }
    }

    // Not vectored: hyper then writes each answer's head as one buffer, so an
    // automatic answer is always seen whole by `poll_write`.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// If `bytes` is an answer hyper wrote on its own (an HTTP/1 4xx head without
/// `Content-Type` and with an empty body), the JSON answer to send instead.
pub fn rewrite_automatic_error(bytes: &[u8]) -> Option<Vec<u8>> {
    // hyper's automatic answers are a status line and two or three short
    // headers; anything longer or not starting a response is passed on unread.
    if bytes.len() > 512 || !bytes.starts_with(b"HTTP/1.") {
        return None;
    }
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    if head_end + 4 != bytes.len() {
        return None;
    }
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()?
        .strip_prefix("HTTP/1.")?
        .get(2..5)?
        .parse()
        .ok()?;
    let mut empty_body = true;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => return None,
            "content-length" => empty_body = value.trim() == "0",
            "transfer-encoding" => empty_body = false,
            _ => {}
        }
    }
    if !(400..500).contains(&status) || !empty_body {
        return None;
    }
    let error = automatic_error(status);
    let body = serde_json::to_vec(&error).ok()?;
    let reason = match status {
        400 => "Bad Request",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        _ => "Client Error",
    };
    let mut answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
         x-content-type-options: nosniff\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

/// What hyper's automatic answers mean, said the API's way.
fn automatic_error(status: u16) -> ApiError {
    let (code, message) = match status {
        414 => (
            "uri_too_long",
            "the request's path and query are longer than 65534 bytes; \
             this API accepts query strings of at most 2048 bytes"
                .to_string(),
        ),
        431 => (
            "headers_too_large",
            "the request's headers are larger than this server reads (about 400 KiB); \
             send smaller headers"
                .to_string(),
        ),
        400 => (
            "bad_request",
            "the request could not be read as HTTP/1.1: a header is malformed \
             (e.g. a Content-Length that is negative, too large or not a number) \
             or the request line is; send a well-formed request"
                .to_string(),
        ),
        _ => (
            "bad_request",
            format!("the request could not be read as HTTP (status {status})"),
        ),
    };
    ApiError {
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_empty_error_answers_become_json() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 20:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(rewrite_automatic_error(hyper).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "headers_too_large");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    #[test]
    fn the_routers_own_answers_pass_unchanged() {
        for ours in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{\"error\":1}",
            b"{\"error\": \"x\"}",
        ] {
            assert!(rewrite_automatic_error(ours).is_none());
        }
    }
}
