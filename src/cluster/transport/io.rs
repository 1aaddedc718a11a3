//! Socket plumbing shared by both directions: the framed reader and the coalescing writer.

use std::io;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

/// Bytes the writer gathers before a `write` (larger frames go out on their own).
const WRITE_BUFFER: usize = 64 * 1024;

/// Reads length-prefixed frames (the prefix stripped); a frame above `max_frame_bytes`
/// or a stream ending inside a frame is an error.
pub fn framed_reader<R: AsyncRead>(read: R, max_frame_bytes: usize) -> FramedRead<R, LengthDelimitedCodec> {
    let codec = LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame_bytes)
        .new_codec();
    FramedRead::new(read, codec)
}

/// The next frame of `reader`: `Ok(None)` at a clean end of stream.
pub async fn next_frame<R: AsyncRead + Unpin>(
    reader: &mut FramedRead<R, LengthDelimitedCodec>,
) -> io::Result<Option<Bytes>> {
    match reader.next().await {
        None => Ok(None),
        Some(Ok(frame)) => Ok(Some(frame.freeze())),
        Some(Err(e)) => Err(e),
    }
}

/// Writes finished frames from `frames` until the channel closes or the socket fails.
/// Whatever is queued when the writer wakes is written together: many groups' RPCs
/// leave in one `write` (frames smaller than the buffer are coalesced).
pub async fn write_frames<W: AsyncWrite + Unpin>(write: W, mut frames: mpsc::UnboundedReceiver<Bytes>) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, write);
    while let Some(frame) = frames.recv().await {
        out.write_all(&frame).await?;
        while let Ok(frame) = frames.try_recv() {
            out.write_all(&frame).await?;
        }
        out.flush().await?;
    }
    Ok(())
}
