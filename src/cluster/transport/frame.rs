//! Frames of the internal listener.
//!
//! On the socket every frame is a 4-byte big-endian length followed by that many bytes:
//!
//! ```text
//! offset  size  field
//! 0       1     version (1)
//! 1       1     flags: bit 0 set = response
//! 2       1     kind (RpcKind)
//! 3       1     status (Status; 0 in requests)
//! 4       8     correlation id (big-endian), chosen by the requester, echoed in the response
//! 12      1     group tag: 0 none (ping, app-level), 1 metadata, 2 partition
//! 13      20    partition groups only: topic id (16 bytes), partition (i32 big-endian)
//! ..            body: bincode (serde) of the RPC's request or answer
//! ```
//!
//! A frame is built in one buffer (length, header and body together), so the writer task
//! only concatenates finished frames.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::cluster::GroupId;

/// The only frame version so far.
pub const FRAME_VERSION: u8 = 1;
/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;
/// Bytes of a header without a partition group id.
const FIXED_HEADER_BYTES: usize = 13;

/// What a frame asks for (requests) or answers (responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RpcKind {
    /// openraft `AppendEntries` of one group.
    AppendEntries = 1,
    /// openraft `Vote` of one group.
    Vote = 2,
    /// openraft `InstallSnapshot` (one chunk) of one group.
    InstallSnapshot = 3,
    /// Liveness ping between brokers; the answer carries the responder's node id.
    Ping = 4,
    /// A group-less application request (register broker, forward a proposal, …) for the
    /// application handler; the body's meaning is the application's.
    App = 5,
}

impl RpcKind {
    fn from_u8(v: u8) -> Option<RpcKind> {
        Some(match v {
            1 => RpcKind::AppendEntries,
            2 => RpcKind::Vote,
            3 => RpcKind::InstallSnapshot,
            4 => RpcKind::Ping,
            5 => RpcKind::App,
            _ => return None,
        })
    }

    /// Whether requests of this kind are addressed to a Raft group.
    pub fn is_raft(self) -> bool {
        matches!(self, RpcKind::AppendEntries | RpcKind::Vote | RpcKind::InstallSnapshot)
    }
}

/// Outcome carried by a response frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// The body is the handler's answer.
    Ok = 0,
    /// The responder has no replica of the frame's group.
    UnknownGroup = 1,
    /// The responder has no handler for this kind (no application handler registered).
    NoHandler = 2,
    /// The handler failed; the body is a UTF-8 message.
    Failed = 3,
}

impl Status {
    fn from_u8(v: u8) -> Option<Status> {
        Some(match v {
            0 => Status::Ok,
            1 => Status::UnknownGroup,
            2 => Status::NoHandler,
            3 => Status::Failed,
            _ => return None,
        })
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// A response (else a request).
    pub response: bool,
    /// The RPC.
    pub kind: RpcKind,
    /// The outcome (responses).
    pub status: Status,
    /// Matches a response to its request on the requester's connection.
    pub correlation_id: u64,
    /// The Raft group, for group RPCs.
    pub group: Option<GroupId>,
}

impl Header {
    /// A request header.
    pub fn request(kind: RpcKind, correlation_id: u64, group: Option<GroupId>) -> Header {
        Header { response: false, kind, status: Status::Ok, correlation_id, group }
    }

    /// The header answering `self` with `status`.
    pub fn answer(&self, status: Status) -> Header {
        Header { response: true, status, ..*self }
    }

    fn encoded_len(&self) -> usize {
        FIXED_HEADER_BYTES + if matches!(self.group, Some(GroupId::Partition { .. })) { 20 } else { 0 }
    }

    fn put(&self, buf: &mut BytesMut) {
        buf.put_u8(FRAME_VERSION);
        buf.put_u8(u8::from(self.response));
        buf.put_u8(self.kind as u8);
        buf.put_u8(self.status as u8);
        buf.put_u64(self.correlation_id);
        match self.group {
            None => buf.put_u8(0),
            Some(GroupId::Metadata) => buf.put_u8(1),
            Some(GroupId::Partition { topic_id, partition }) => {
                buf.put_u8(2);
                buf.put_slice(topic_id.as_bytes());
                buf.put_i32(partition);
            }
        }
    }
}

/// Why a frame could not be decoded (the connection it came on is closed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than its header says.
    #[error("frame truncated: {0} bytes")]
    Truncated(usize),
    /// A version this broker does not speak.
    #[error("unknown frame version {0}")]
    Version(u8),
    /// Unknown flag bits.
    #[error("unknown flags {0:#x}")]
    Flags(u8),
    /// Unknown RPC kind.
    #[error("unknown rpc kind {0}")]
    Kind(u8),
    /// Unknown status.
    #[error("unknown status {0}")]
    Status(u8),
    /// Unknown group tag.
    #[error("unknown group tag {0}")]
    GroupTag(u8),
    /// A Raft RPC without a group, or another RPC with one.
    #[error("{0:?} with a wrong group")]
    Group(RpcKind),
}

/// Splits a frame (without its length prefix) into header and body; the body shares the
/// frame's buffer.
pub fn decode(mut frame: Bytes) -> Result<(Header, Bytes), FrameError> {
    let len = frame.len();
    if len < FIXED_HEADER_BYTES {
        return Err(FrameError::Truncated(len));
    }
    let version = frame.get_u8();
    if version != FRAME_VERSION {
        return Err(FrameError::Version(version));
    }
    let flags = frame.get_u8();
    if flags > 1 {
        return Err(FrameError::Flags(flags));
    }
    let kind = frame.get_u8();
    let kind = RpcKind::from_u8(kind).ok_or(FrameError::Kind(kind))?;
    let status = frame.get_u8();
    let status = Status::from_u8(status).ok_or(FrameError::Status(status))?;
    let correlation_id = frame.get_u64();
    let group = match frame.get_u8() {
        0 => None,
        1 => Some(GroupId::Metadata),
        2 => {
            if frame.remaining() < 20 {
                return Err(FrameError::Truncated(len));
            }
            let mut id = [0u8; 16];
            frame.copy_to_slice(&mut id);
            Some(GroupId::Partition { topic_id: Uuid::from_bytes(id), partition: frame.get_i32() })
        }
        tag => return Err(FrameError::GroupTag(tag)),
    };
    if kind.is_raft() != group.is_some() {
        return Err(FrameError::Group(kind));
    }
    Ok((Header { response: flags == 1, kind, status, correlation_id, group }, frame))
}

/// A whole frame (length prefix, header, `body`), ready for the socket.
pub fn encode_raw(header: &Header, body: &[u8]) -> Bytes {
    let mut buf = start(header, body.len());
    buf.put_slice(body);
    finish(buf)
}

/// A whole frame whose body is `value` in bincode, serialised straight into the frame.
pub fn encode<T: serde::Serialize + ?Sized>(header: &Header, value: &T) -> Result<Bytes, bincode::Error> {
    let size = bincode::serialized_size(value)? as usize;
    let mut buf = start(header, size);
    bincode::serialize_into((&mut buf).writer(), value)?;
    Ok(finish(buf))
}

fn start(header: &Header, body_len: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(LENGTH_BYTES + header.encoded_len() + body_len);
    buf.put_u32(0); // patched by `finish`
    header.put(&mut buf);
    buf
}

fn finish(mut buf: BytesMut) -> Bytes {
    let len = (buf.len() - LENGTH_BYTES) as u32;
    buf[..LENGTH_BYTES].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_for_every_group_shape() {
        let groups = [
            (RpcKind::Ping, None),
            (RpcKind::Vote, Some(GroupId::Metadata)),
            (RpcKind::AppendEntries, Some(GroupId::Partition { topic_id: Uuid::from_u128(7), partition: -3 })),
        ];
        for (kind, group) in groups {
            let h = Header::request(kind, 0x0102_0304_0506_0708, group);
            let frame = encode_raw(&h, b"body");
            let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
            assert_eq!(len, frame.len() - 4);
            let (back, body) = decode(frame.slice(4..)).unwrap();
            assert_eq!(back, h);
            assert_eq!(&body[..], b"body");
            let answer = h.answer(Status::UnknownGroup);
            let (back, _) = decode(encode_raw(&answer, b"").slice(4..)).unwrap();
            assert_eq!((back.response, back.status, back.correlation_id), (true, Status::UnknownGroup, h.correlation_id));
        }
    }

    #[test]
    fn bincode_bodies_are_written_in_place() {
        let h = Header::request(RpcKind::App, 9, None);
        let frame = encode(&h, &(5u64, Bytes::from_static(b"abc"))).unwrap();
        let (_, body) = decode(frame.slice(4..)).unwrap();
        let (n, b): (u64, Bytes) = bincode::deserialize(&body).unwrap();
        assert_eq!((n, &b[..]), (5, &b"abc"[..]));
    }

    #[test]
    fn bad_headers_are_errors_not_panics() {
        let good = encode_raw(&Header::request(RpcKind::Vote, 1, Some(GroupId::Metadata)), b"").slice(4..);
        assert_eq!(decode(good.slice(..5)), Err(FrameError::Truncated(5)));
        let mut bad = good.to_vec();
        bad[0] = 9;
        assert_eq!(decode(Bytes::from(bad)), Err(FrameError::Version(9)));
        let mut bad = good.to_vec();
        bad[2] = 77;
        assert_eq!(decode(Bytes::from(bad)), Err(FrameError::Kind(77)));
        let mut bad = good.to_vec();
        bad[12] = 0;
        assert_eq!(decode(Bytes::from(bad)), Err(FrameError::Group(RpcKind::Vote)));
        let mut bad = good.to_vec();
        bad[12] = 2; // partition tag without the 20 bytes
        assert_eq!(decode(Bytes::from(bad)), Err(FrameError::Truncated(13)));
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = decode(Bytes::from(junk));
        }
    }
}
