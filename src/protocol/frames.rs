//! Reading request frames off a socket with a broker-wide cap on the bytes
//! buffered for them (Kafka's `queued.max.request.bytes`).
//!
//! A frame is a 4-byte big-endian length and that many bytes. Before buffering
//! the body of a large frame, the reader reserves its declared length from a
//! [`FramePool`] shared by every connection; while the pool is exhausted the
//! connection stops reading (the client sees TCP backpressure, not an error).
//! The reservation travels with the frame and is released when the request is
//! done. Small frames (up to [`SMALL_FRAME_BYTES`], the size of one socket read)
//! need no reservation, so a pool held by stalled large frames cannot starve
//! heartbeats, metadata and other small requests; their memory is bounded by the
//! connection limits instead.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use futures::future::BoxFuture;
use futures::FutureExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Frames up to this size are read without a reservation from the pool; also
/// the size of one socket read while waiting for a frame's length.
pub const SMALL_FRAME_BYTES: usize = 64 * 1024;

/// The broker-wide budget of bytes buffered for large request frames.
#[derive(Clone, Debug)]
pub struct FramePool {
    semaphore: Arc<Semaphore>,
    capacity: usize,
    reserved: Gauge,
}

impl FramePool {
    /// A pool of `capacity` bytes (at least one byte, at most what a semaphore can
    /// count); `reserved` follows the bytes reserved (a metric).
    pub fn new(capacity: usize, reserved: Gauge) -> FramePool {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        FramePool { semaphore: Arc::new(Semaphore::new(capacity)), capacity, reserved }
    }

    /// The pool's size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes currently reserved by frames being read or requests being handled.
    pub fn reserved(&self) -> usize {
        self.capacity - self.semaphore.available_permits()
    }

    /// How much a frame of `len` bytes reserves: nothing for a small frame, its
    /// length otherwise, and the whole pool for a frame larger than the pool
    /// (so that it can still be read, alone).
    fn reservation_for(&self, len: usize) -> u32 {
        if len <= SMALL_FRAME_BYTES {
            0
        } else {
            len.min(self.capacity) as u32
        }
    }
}

/// Bytes a frame holds in the [`FramePool`]; released on drop.
#[derive(Debug, Default)]
pub struct Reservation(Option<(OwnedSemaphorePermit, Gauge)>);

impl Reservation {
    fn new(permit: OwnedSemaphorePermit, gauge: &Gauge) -> Reservation {
        gauge.inc_by(permit.num_permits() as i64);
        Reservation(Some((permit, gauge.clone())))
    }

    /// How many bytes this reservation holds.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |(p, _)| p.num_permits())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some((permit, gauge)) = self.0.take() {
            gauge.dec_by(permit.num_permits() as i64);
        }
    }
}

/// One request frame (without its length prefix) and its pool reservation.
#[derive(Debug)]
pub struct Frame {
    /// The frame's bytes: request header and body.
    pub bytes: BytesMut,
    /// Keep this alive as long as the request's bytes are.
    pub reservation: Reservation,
}

/// Why a connection's frames cannot be read any further.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix exceeds `max_frame_bytes` (or is negative as an i32).
    #[error("frame of {len} bytes exceeds max_frame_bytes {max}")]
    TooLarge {
        /// The declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The pool was closed (the broker is shutting down).
    #[error("request buffer pool closed")]
    PoolClosed,
}

impl From<AcquireError> for FrameError {
    fn from(_: AcquireError) -> Self {
        FrameError::PoolClosed
    }
}

enum State {
    /// Waiting for the next frame's 4-byte length.
    Length,
    /// Waiting for the pool to grant the frame's reservation; nothing is read meanwhile.
    Reserving { len: usize, grant: BoxFuture<'static, Result<OwnedSemaphorePermit, AcquireError>> },
    /// Reading the frame's `len` bytes.
    Body { len: usize, reservation: Reservation },
}

/// Reads frames from `R`; [`FrameReader::next_frame`] is cancel-safe, so it can
/// sit in a `select!` next to timers and responses without losing bytes.
pub struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
    max_frame_bytes: usize,
    pool: FramePool,
    pool_waits: Counter,
    state: State,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader refusing frames over `max_frame_bytes` and drawing large ones from
    /// `pool`; `pool_waits` counts the frames that had to wait for it.
    pub fn new(reader: R, max_frame_bytes: usize, pool: FramePool, pool_waits: Counter) -> Self {
        FrameReader {
            reader,
            buf: BytesMut::with_capacity(SMALL_FRAME_BYTES),
            max_frame_bytes,
            pool,
            pool_waits,
            state: State::Length,
        }
    }

    /// Whether bytes of an incomplete frame have been received.
    pub fn mid_frame(&self) -> bool {
        !matches!(self.state, State::Length) || !self.buf.is_empty()
    }

    /// The next frame; `Ok(None)` when the client closed the connection between
    /// frames. A close in the middle of a frame is an `UnexpectedEof` error.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            match &mut self.state {
                State::Length => {
                    if self.buf.len() >= 4 {
                        let len = u64::from(self.buf.get_u32());
                        if len > self.max_frame_bytes as u64 {
                            return Err(FrameError::TooLarge { len, max: self.max_frame_bytes });
                        }
                        let len = len as usize;
                        let want = self.pool.reservation_for(len);
                        self.state = if want == 0 {
                            State::Body { len, reservation: Reservation::default() }
                        } else {
                            match self.pool.semaphore.clone().try_acquire_many_owned(want) {
                                Ok(permit) => State::Body { len, reservation: Reservation::new(permit, &self.pool.reserved) },
                                Err(TryAcquireError::NoPermits) => {
                                    self.pool_waits.inc();
                                    tracing::debug!(frame_bytes = len, "request buffer pool exhausted; waiting before reading");
                                    let grant = self.pool.semaphore.clone().acquire_many_owned(want).boxed();
                                    State::Reserving { len, grant }
                                }
                                Err(TryAcquireError::Closed) => return Err(FrameError::PoolClosed),
                            }
                        };
                        continue;
                    }
                    if self.buf.capacity() - self.buf.len() < 4 {
                        self.buf.reserve(SMALL_FRAME_BYTES);
                    }
                }
                State::Reserving { len, grant } => {
                    let permit = grant.await?;
                    let len = *len;
                    self.state = State::Body { len, reservation: Reservation::new(permit, &self.pool.reserved) };
                    continue;
                }
                State::Body { len, reservation } => {
                    if self.buf.len() >= *len {
                        let bytes = self.buf.split_to(*len);
                        let reservation = std::mem::take(reservation);
                        self.state = State::Length;
                        return Ok(Some(Frame { bytes, reservation }));
                    }
                    // Room for exactly this frame (plus whatever the allocator rounds to).
                    self.buf.reserve(*len - self.buf.len());
                }
            }
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return if self.mid_frame() {
                    Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()))
                } else {
                    Ok(None)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[tokio::test]
    async fn reads_pipelined_frames_and_a_clean_eof() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let pool = FramePool::new(1 << 20, Gauge::default());
        let mut reader = FrameReader::new(server, 1 << 20, pool.clone(), Counter::default());
        let big = vec![7u8; 200_000];
        let mut bytes = framed(b"one");
        bytes.extend(framed(&big));
        bytes.extend(framed(b""));
        client.write_all(&bytes).await.unwrap();
        drop(client);
        assert_eq!(&reader.next_frame().await.unwrap().unwrap().bytes[..], b"one");
        let frame = reader.next_frame().await.unwrap().unwrap();
        assert_eq!(&frame.bytes[..], &big[..]);
        assert_eq!(frame.reservation.bytes(), big.len());
        assert_eq!(pool.reserved(), big.len());
        drop(frame);
        assert_eq!(pool.reserved(), 0);
        assert_eq!(&reader.next_frame().await.unwrap().unwrap().bytes[..], b"");
        assert!(reader.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_and_truncated_frames_are_errors() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(server, 1024, FramePool::new(1 << 20, Gauge::default()), Counter::default());
        client.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
        assert!(matches!(reader.next_frame().await, Err(FrameError::TooLarge { len: 0xffff_ffff, max: 1024 })));

        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(server, 1024, FramePool::new(1 << 20, Gauge::default()), Counter::default());
        client.write_all(&[0, 0, 0, 10, 1, 2]).await.unwrap();
        drop(client);
        assert!(matches!(reader.next_frame().await, Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof));
    }

    #[tokio::test]
    async fn an_exhausted_pool_holds_large_frames_back_until_released() {
        let pool = FramePool::new(300_000, Gauge::default());
        let waits = Counter::default();
        let (mut a, server_a) = tokio::io::duplex(1 << 20);
        let (mut b, server_b) = tokio::io::duplex(1 << 20);
        let mut reader_a = FrameReader::new(server_a, 1 << 20, pool.clone(), waits.clone());
        let mut reader_b = FrameReader::new(server_b, 1 << 20, pool.clone(), waits.clone());
        a.write_all(&framed(&vec![1u8; 200_000])).await.unwrap();
        b.write_all(&framed(&vec![2u8; 200_000])).await.unwrap();
        b.write_all(&framed(b"small")).await.unwrap();
        let first = reader_a.next_frame().await.unwrap().unwrap();
        // B's large frame cannot be reserved while A's is held.
        let pending = tokio::time::timeout(std::time::Duration::from_millis(50), reader_b.next_frame()).await;
        assert!(pending.is_err(), "B read a frame the pool had no room for");
        assert_eq!(waits.get(), 1);
        drop(first);
        let second = reader_b.next_frame().await.unwrap().unwrap();
        assert_eq!(second.bytes.len(), 200_000);
        assert!(second.bytes.iter().all(|&x| x == 2));
        assert_eq!(&reader_b.next_frame().await.unwrap().unwrap().bytes[..], b"small");
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_pool_takes_all_of_it() {
        let pool = FramePool::new(100_000, Gauge::default());
        let (mut a, server) = tokio::io::duplex(1 << 20);
        let mut reader = FrameReader::new(server, 1 << 20, pool.clone(), Counter::default());
        a.write_all(&framed(&vec![3u8; 500_000])).await.unwrap();
        let frame = reader.next_frame().await.unwrap().unwrap();
        assert_eq!(frame.bytes.len(), 500_000);
        assert_eq!(pool.reserved(), 100_000);
    }
}
