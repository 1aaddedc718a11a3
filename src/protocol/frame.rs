//! Response frames that carry record batches without copying them: the encoded
//! response is a list of segments, and the stored batches a fetch returns are
//! segments of their own (reference-counted `Bytes`), written with one vectored
//! write after the bytes the encoder produced around them.

use std::io::IoSlice;
use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Record data at least this long is passed by reference instead of copied.
const ZERO_COPY_MIN: usize = 4096;

/// An encoded response frame: contiguous, or segments to write in order.
#[derive(Debug)]
pub enum Frame {
    /// One buffer.
    Contiguous(BytesMut),
    /// Several buffers, written back to back.
    Segments(Vec<Bytes>),
}

impl Frame {
    /// Total length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Frame::Contiguous(b) => b.len(),
            Frame::Segments(s) => s.iter().map(Bytes::len).sum(),
        }
    }

    /// True when the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame as one buffer (copies segments; for tests and small frames).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Frame::Contiguous(b) => Bytes::copy_from_slice(b),
            Frame::Segments(s) => {
                let mut all = BytesMut::with_capacity(self.len());
                s.iter().for_each(|b| all.extend_from_slice(b));
                all.freeze()
            }
        }
    }

    /// Writes the whole frame, with vectored writes for segments.
    pub async fn write_to<W: AsyncWrite + Unpin>(&self, writer: &mut W) -> std::io::Result<()> {
        match self {
            Frame::Contiguous(b) => writer.write_all(b).await,
            Frame::Segments(segments) => {
                let mut index = 0;
                let mut offset = 0;
                while index < segments.len() {
                    let slices: Vec<IoSlice<'_>> = std::iter::once(&segments[index][offset..])
                        .chain(segments[index + 1..].iter().map(|s| &s[..]))
                        .take(64)
                        .map(IoSlice::new)
                        .collect();
                    let mut written = writer.write_vectored(&slices).await?;
                    if written == 0 {
                        return Err(std::io::ErrorKind::WriteZero.into());
                    }
                    while index < segments.len() && written >= segments[index].len() - offset {
                        written -= segments[index].len() - offset;
                        index += 1;
                        offset = 0;
                    }
                    offset += written;
                }
                Ok(())
            }
        }
    }
}

/// An encoder buffer that keeps registered `Bytes` (record batches) as their own
/// segments instead of copying them: when the encoder writes a slice that *is*
/// one of them (same address and length), the buffer takes a reference.
///
/// Gaps (back-patched lengths) must lie in the bytes written after the last
/// segment; the messages this is used for (Fetch) write none.
pub struct SegmentedBuf {
    segments: Vec<Bytes>,
    current: BytesMut,
    base: usize,
    shared: Vec<Bytes>,
}

impl SegmentedBuf {
    /// A buffer that passes these `Bytes` by reference when they are written.
    pub fn new(shared: Vec<Bytes>, capacity: usize) -> SegmentedBuf {
        let shared = shared.into_iter().filter(|b| b.len() >= ZERO_COPY_MIN).collect();
        SegmentedBuf { segments: Vec::new(), current: BytesMut::with_capacity(capacity), base: 0, shared }
    }

    /// The bytes written so far, as a frame.
    pub fn into_frame(mut self) -> Frame {
        if self.segments.is_empty() {
            return Frame::Contiguous(self.current);
        }
        if !self.current.is_empty() {
            self.segments.push(self.current.freeze());
        }
        Frame::Segments(self.segments)
    }

    fn take_shared(&mut self, src: &[u8]) -> Option<Bytes> {
        let position = self.shared.iter().position(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())?;
        Some(self.shared.swap_remove(position))
    }

    /// Overwrites the first bytes of the frame (the length prefix).
    pub fn patch_front(&mut self, bytes: &[u8]) {
        match self.segments.first_mut() {
            Some(first) => {
                let mut patched = BytesMut::from(&first[..]);
                patched[..bytes.len()].copy_from_slice(bytes);
                *first = patched.freeze();
            }
            None => self.current[..bytes.len()].copy_from_slice(bytes),
        }
    }
}

// SAFETY: every method delegates to the current `BytesMut`, whose own `BufMut`
// implementation upholds the contract.
unsafe impl BufMut for SegmentedBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut`, which is the
        // current buffer's.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= ZERO_COPY_MIN {
            if let Some(shared) = self.take_shared(src) {
                let done = std::mem::take(&mut self.current);
                self.base += done.len() + shared.len();
                if !done.is_empty() {
                    self.segments.push(done.freeze());
                }
                self.segments.push(shared);
                return;
            }
        }
        self.current.extend_from_slice(src);
    }
}

impl ByteBufMut for SegmentedBuf {
    fn offset(&self) -> usize {
        self.base + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        assert!(offset >= self.base, "seek before the last shared segment");
        self.current.resize(offset - self.base, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        assert!(r.start >= self.base, "gap before the last shared segment");
        &mut self.current[r.start - self.base..r.end - self.base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shared_bytes_are_segments_and_the_frame_is_unchanged() {
        let records = Bytes::from(vec![7u8; 10_000]);
        let small = Bytes::from_static(b"tiny");
        let mut buf = SegmentedBuf::new(vec![records.clone(), small.clone()], 64);
        buf.put_slice(b"head");
        buf.put_slice(&records);
        buf.put_slice(&small);
        buf.put_slice(b"tail");
        let frame = buf.into_frame();
        let Frame::Segments(segments) = &frame else { panic!("expected segments") };
        assert_eq!(segments.len(), 3);
        assert_eq!(segments[1].as_ptr(), records.as_ptr(), "records are shared, not copied");
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&records);
        expected.extend_from_slice(b"tinytail");
        assert_eq!(frame.to_bytes(), expected);
        let mut written = Vec::new();
        frame.write_to(&mut written).await.unwrap();
        assert_eq!(written, expected);
    }

    #[test]
    fn copies_of_equal_bytes_are_not_mistaken_for_shared_ones() {
        let records = Bytes::from(vec![1u8; 5000]);
        let copy = records.to_vec();
        let mut buf = SegmentedBuf::new(vec![records], 0);
        buf.put_slice(&copy);
        assert!(matches!(buf.into_frame(), Frame::Contiguous(b) if b.len() == 5000));
    }
}
