//! How the HTTP layer's connections are made: a CONNECT proxy when the
//! environment names one, TCP, TLS with diskforge's own certificate check
//! ([`super::certs`]), and a guard that keeps a reply readable when the
//! registry answers before it has read the whole request body.
//!
//! That last case is how a registry refuses an upload midway (a token that
//! expired, a redirect, a size cap): it sends its answer and closes the
//! connection, and the next write fails with "Broken pipe" or "Connection
//! reset". The guard then stops sending (the rest of the body is dropped
//! without being read from disk, see [`Stop`]) and lets the HTTP layer read
//! the answer that is waiting in the socket, so that the user sees the
//! registry's status and message.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout,
    TcpConnector, Transport, TransportAdapter,
};

/// Set when a write failed because the peer stopped reading; cleared by
/// the HTTP layer before each request.
#[derive(Clone, Default, Debug)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub fn clear(&self) {
        self.0.store(false, Ordering::SeqCst)
    }
    fn set(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
}

/// An agent with `config` whose connections use `tls` and report a peer
/// that stopped reading to `stop`.
pub fn agent(
    config: ureq::config::Config,
    tls: Arc<rustls::ClientConfig>,
    stop: Stop,
) -> ureq::Agent {
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(TlsConnector { config: tls })
            .chain(GuardConnector { stop });
    ureq::Agent::with_parts(config, connector, DefaultResolver::default())
}

/// Wraps https connections in rustls with the given configuration.
#[derive(Debug)]
struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
}

/// A rustls error inside an I/O error becomes ureq's TLS error, so that
/// it is explained (and not retried).
fn tls_error(e: io::Error) -> ureq::Error {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match tls {
        Some(t) => ureq::Error::Rustls(t),
        None => ureq::Error::Io(e),
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = rustls::pki_types::ServerName::try_from(host)
            .map_err(|_| ureq::Error::Tls("the host is not a valid TLS server name"))?;
        let mut conn = rustls::ClientConnection::new(self.config.clone(), name)
            .map_err(ureq::Error::Rustls)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock).map_err(tls_error)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: rustls::StreamOwned::new(conn, sock),
            write_failed: false,
        })))
    }
}

/// A TLS connection.
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: rustls::StreamOwned<rustls::ClientConnection, TransportAdapter>,
    /// A write failed: reading must not try to flush TLS data first (as
    /// rustls' stream does), or the reply waiting in the socket is lost.
    write_failed: bool,
}

impl TlsTransport {
    /// Reads what the peer sent without writing anything.
    fn read_only(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.sock.set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        loop {
            match self.stream.conn.reader().read(input) {
                Ok(n) => {
                    self.buffers.input_appended(n);
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(tls_error(e)),
            }
            let n = self
                .stream
                .conn
                .read_tls(&mut self.stream.sock)
                .map_err(tls_error)?;
            if n == 0 {
                self.buffers.input_appended(0);
                return Ok(false);
            }
            self.stream
                .conn
                .process_new_packets()
                .map_err(ureq::Error::Rustls)?;
        }
    }
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        let result = self.stream.write_all(output).map_err(tls_error);
        self.write_failed |= result.is_err();
        result
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if self.write_failed {
            return self.read_only(timeout);
        }
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        match self.stream.read(input) {
            Ok(n) => {
                self.buffers.input_appended(n);
                Ok(n > 0)
            }
            // rustls flushes before it reads: a peer that stopped reading
            // (after an alert, say) fails that write; read what it sent.
            Err(e) if peer_stopped(&e) => {
                self.write_failed = true;
                self.read_only(timeout)
            }
            Err(e) => Err(tls_error(e)),
        }
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// Wraps every connection in a [`Guard`].
#[derive(Debug)]
struct GuardConnector {
    stop: Stop,
}

impl<In: Transport> Connector<In> for GuardConnector {
    type Out = Guard<In>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Guard {
            inner,
            stop: self.stop.clone(),
            closed: false,
        }))
    }
}

/// A connection whose writes, once the peer has stopped reading, are
/// dropped instead of failing, so that the reply can still be read.
#[derive(Debug)]
pub struct Guard<T> {
    inner: T,
    stop: Stop,
    /// The peer stopped reading: writes go nowhere.
    closed: bool,
}

fn peer_stopped(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

fn peer_stopped_reading(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(io) if peer_stopped(io))
}

impl<T: Transport> Transport for Guard<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if self.closed {
            return Ok(());
        }
        match self.inner.transmit_output(amount, timeout) {
            Err(e) if peer_stopped_reading(&e) => {
                self.closed = true;
                self.stop.set();
                Ok(())
            }
            other => other,
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        !self.closed && self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// A request body that stops reading its source once the peer stopped
/// reading (`stop`): the rest of the declared length is then handed over
/// without being read, and goes nowhere (see [`Guard`]).
pub struct StopAware<'a> {
    pub inner: &'a mut dyn Read,
    pub stop: Stop,
    pub left: u64,
}

impl Read for StopAware<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.is_set() {
            let n = buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            self.left -= n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}
