//! The pipe protocol between the daemon and a plugin host process: framed
//! messages, each `[kind: u8][length: u32 LE][payload]`.
//!
//! Payloads are JSON, except a batch's, which is one Arrow IPC stream
//! (schema, the batch, end marker): each batch carries its own schema
//! because the batches of one stream may differ in columns and types.
//!
//! ```text
//! daemon → host   Open {library, sha256, plugin, options, secrets, memory_limit}
//!                 Read {stream, state}      Cancel      Stop
//!                 (closing the pipe: close the instance and exit)
//! host → daemon   Opened {info, abi, streams} | Error
//!                 per read: (Batch | Checkpoint | Log)* then Done | Error
//!                 Log at any time
//! ```

use std::io::{Read, Write};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// daemon → host: JSON [`super::messages::Open`].
    Open = 1,
    /// daemon → host: JSON [`super::messages::ReadRequest`].
    Read = 2,
    /// daemon → host: the read should stop early (shutdown): the plugin's
    /// cancel flag is set.
    Cancel = 3,
    /// daemon → host: the daemon takes no more records (its sink failed):
    /// the plugin's next delivery fails.
    Stop = 4,
    /// host → daemon: JSON [`super::messages::Opened`].
    Opened = 10,
    /// host → daemon: one record batch as an Arrow IPC stream.
    Batch = 11,
    /// host → daemon: the JSON state after the batches before it.
    Checkpoint = 12,
    /// host → daemon: JSON [`super::messages::LogLine`].
    Log = 13,
    /// host → daemon: the read finished.
    Done = 14,
    /// host → daemon: JSON [`super::messages::Failure`]; ends an open or a read.
    Error = 15,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        use Kind::*;
        Some(match b {
            1 => Open,
            2 => Read,
            3 => Cancel,
            4 => Stop,
            10 => Opened,
            11 => Batch,
            12 => Checkpoint,
            13 => Log,
            14 => Done,
            15 => Error,
            _ => return None,
        })
    }
}

impl Kind {
    /// The largest payload a frame of this kind may announce. The length
    /// comes from the other process: without a cap, a broken or hostile
    /// plugin host could make the daemon allocate 4 GiB with five bytes.
    fn max_len(self) -> usize {
        match self {
            // One batch of a stream: big files arrive as several batches.
            Kind::Batch => MAX_BATCH_BYTES,
            // The plugin's options (and the secrets in them).
            Kind::Open => 16 << 20,
            _ => 1 << 20,
        }
    }
}

/// The largest batch a plugin host may send in one frame.
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// One decoded frame.
#[derive(Debug)]
pub struct Frame {
    pub kind: Kind,
    pub payload: Vec<u8>,
}

fn header(kind: Kind, len: usize) -> std::io::Result<[u8; 5]> {
    let len = u32::try_from(len).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("a {kind:?} message of {len} bytes is over the 4 GiB a frame can carry"),
        )
    })?;
    let mut h = [0u8; 5];
    h[0] = kind as u8;
    h[1..].copy_from_slice(&len.to_le_bytes());
    Ok(h)
}

fn parse_header(h: [u8; 5]) -> std::io::Result<(Kind, usize)> {
    let kind = Kind::from_byte(h[0]).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unknown frame kind {}", h[0]),
        )
    })?;
    let len = u32::from_le_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > kind.max_len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "a {kind:?} frame of {len} bytes is over the {} bytes one may carry",
                kind.max_len()
            ),
        ));
    }
    Ok((kind, len))
}

/// How much a frame's buffer starts with, whatever length it announces.
const INITIAL_CAPACITY: usize = 64 << 10;

/// The frame, if all `len` bytes arrived.
fn complete(kind: Kind, len: usize, payload: Vec<u8>) -> std::io::Result<Option<Frame>> {
    if payload.len() < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "a {kind:?} frame ended after {} of its {len} bytes",
                payload.len()
            ),
        ));
    }
    Ok(Some(Frame { kind, payload }))
}

/// Writes one frame (blocking; the host side) and flushes it.
pub fn write(w: &mut impl Write, kind: Kind, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&header(kind, payload.len())?)?;
    w.write_all(payload)?;
    w.flush()
}

/// Reads one frame (blocking); `None` at a clean end of the stream.
pub fn read(r: &mut impl Read) -> std::io::Result<Option<Frame>> {
    let mut h = [0u8; 5];
    match r.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (kind, len) = parse_header(h)?;
    // Grown as bytes arrive, so memory follows what was really sent.
    let mut payload = Vec::with_capacity(len.min(INITIAL_CAPACITY));
    r.take(len as u64).read_to_end(&mut payload)?;
    complete(kind, len, payload)
}

/// Writes one frame (async; the daemon side) and flushes it.
pub async fn write_async(
    w: &mut (impl AsyncWrite + Unpin),
    kind: Kind,
    payload: &[u8],
) -> std::io::Result<()> {
    w.write_all(&header(kind, payload.len())?).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// Reads one frame (async); `None` at a clean end of the stream.
pub async fn read_async(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<Frame>> {
    let mut h = [0u8; 5];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (kind, len) = parse_header(h)?;
    let mut payload = Vec::with_capacity(len.min(INITIAL_CAPACITY));
    r.take(len as u64).read_to_end(&mut payload).await?;
    complete(kind, len, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_announced_length_over_the_kind_s_cap_is_refused_before_allocating() {
        // Five bytes announcing a 4 GiB batch, then a 2 MiB log line.
        let mut r: &[u8] = &[11, 0xff, 0xff, 0xff, 0xff];
        let e = read_async(&mut r).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
        let mut h = vec![13u8];
        h.extend_from_slice(&(2u32 << 20).to_le_bytes());
        let e = read(&mut h.as_slice()).unwrap_err();
        assert!(e.to_string().contains("Log frame of 2097152 bytes"), "{e}");
        // A frame cut short is an error, not a shorter payload.
        let mut buf = Vec::new();
        write(&mut buf, Kind::Checkpoint, b"{\"page\":1}").unwrap();
        buf.truncate(buf.len() - 2);
        let e = read_async(&mut buf.as_slice()).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    }

    #[tokio::test]
    async fn frames_round_trip_both_ways_and_a_clean_end_is_none() {
        let mut buf = Vec::new();
        write(&mut buf, Kind::Checkpoint, br#"{"page":1}"#).unwrap();
        write(&mut buf, Kind::Done, b"").unwrap();
        assert_eq!(&buf[..5], &[12, 10, 0, 0, 0]);
        let mut r = buf.as_slice();
        let f = read_async(&mut r).await.unwrap().unwrap();
        assert_eq!(
            (f.kind, f.payload.as_slice()),
            (Kind::Checkpoint, &br#"{"page":1}"#[..])
        );
        assert_eq!(read_async(&mut r).await.unwrap().unwrap().kind, Kind::Done);
        assert!(read_async(&mut r).await.unwrap().is_none());

        let mut buf = Vec::new();
        write_async(&mut buf, Kind::Read, b"{}").await.unwrap();
        let mut r = buf.as_slice();
        assert_eq!(read(&mut r).unwrap().unwrap().kind, Kind::Read);
        assert!(read(&mut r).unwrap().is_none());
    }

    #[test]
    fn a_cut_frame_or_an_unknown_kind_is_an_error() {
        let mut buf = Vec::new();
        write(&mut buf, Kind::Batch, &[7; 100]).unwrap();
        assert!(read(&mut &buf[..50]).is_err(), "cut inside the payload");
        assert!(read(&mut &[99u8, 0, 0, 0, 0][..]).is_err(), "unknown kind");
    }
}
