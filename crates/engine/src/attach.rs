//! Attaching to a container's or an exec's stdio, as Docker's attach endpoints see it: the
//! one-line request a client sends to the shim's attach socket, and the framing of output
//! on a connection without a terminal (an 8-byte header per chunk: the stream, then the
//! payload's length, big-endian), which is what Docker's hijacked attach stream carries.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::logs::Stream;

/// The header's length, before each payload.
pub const HEADER: usize = 8;

/// What an attach asks for, in Docker's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachOptions {
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub stderr: bool,
    /// Replay the log first (framed like live output).
    #[serde(default)]
    pub logs: bool,
    /// Stay for live output; without it only the log is replayed.
    #[serde(default)]
    pub stream: bool,
}

impl AttachOptions {
    /// Whether output of `stream` goes to this client.
    pub fn wants(&self, stream: Stream) -> bool {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }
}

/// A terminal's size, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub height: u16,
    pub width: u16,
}

/// The first line a client sends on the attach socket: a resize, or an attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Request {
    Resize { resize: Size },
    Attach(AttachOptions),
}

/// A live attachment, past the handshake. Reading gives the output, framed by [`frame`]
/// unless `tty` (then raw); writing feeds the container's stdin when it was asked for and
/// the container keeps stdin open. Reading ends when the output does.
#[derive(Debug)]
pub struct Attachment {
    pub stream: tokio::net::UnixStream,
    pub tty: bool,
}

/// One chunk of output as a framed message: header then payload.
pub fn frame(stream: Stream, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + bytes.len());
    out.extend_from_slice(&header(stream, bytes.len()));
    out.extend_from_slice(bytes);
    out
}

/// The header for a payload of `len` bytes (longer payloads are split by the caller).
pub fn header(stream: Stream, len: usize) -> [u8; HEADER] {
    let kind = match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    };
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [kind, 0, 0, 0, len[0], len[1], len[2], len[3]]
}

/// Splits framed output back into chunks, whatever the pieces it arrives in.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole chunk, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<(Stream, Vec<u8>)>> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let stream = match self.buf[0] {
            1 => Stream::Stdout,
            2 => Stream::Stderr,
            other => {
                return Err(Error::Invalid(format!(
                    "not an attach stream: a frame for stream {other} (expected 1 or 2)"
                )))
            }
        };
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
        let end = HEADER + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let payload = self.buf[HEADER..end].to_vec();
        self.buf.drain(..end);
        Ok(Some((stream, payload)))
    }

    /// Bytes received that do not make a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_stream_and_a_big_endian_length() {
        let f = frame(Stream::Stderr, b"hello");
        assert_eq!(&f[..8], &[2, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(&f[8..], b"hello");
        let big = header(Stream::Stdout, 0x0102_0304);
        assert_eq!(big, [1, 0, 0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_decoder_takes_frames_in_any_pieces() {
        let mut bytes = frame(Stream::Stdout, b"out\n");
        bytes.extend(frame(Stream::Stderr, b""));
        bytes.extend(frame(Stream::Stderr, b"err\n"));
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in bytes {
            d.push(&[b]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, b"out\n".to_vec()),
                (Stream::Stderr, Vec::new()),
                (Stream::Stderr, b"err\n".to_vec()),
            ]
        );
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn the_decoder_refuses_unknown_streams() {
        let mut d = Decoder::new();
        d.push(&[7, 0, 0, 0, 0, 0, 0, 1, b'x']);
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn requests_are_one_json_object() {
        let attach: Request = serde_json::from_str(r#"{"stdin":true,"stdout":true}"#).unwrap();
        assert_eq!(
            attach,
            Request::Attach(AttachOptions {
                stdin: true,
                stdout: true,
                ..Default::default()
            })
        );
        let resize: Request =
            serde_json::from_str(r#"{"resize":{"height":40,"width":120}}"#).unwrap();
        assert_eq!(
            resize,
            Request::Resize {
                resize: Size {
                    height: 40,
                    width: 120
                }
            }
        );
    }
}
