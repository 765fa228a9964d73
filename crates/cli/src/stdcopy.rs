//! Docker's multiplexed stream (attach, logs and exec without a tty): frames of an 8-byte header,
//! byte 0 the stream (0 stdin, 1 stdout, 2 stderr, 3 the daemon's system error), bytes 4..8 the
//! payload's length big-endian, then the payload.

/// Which stream a frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdin,
    Stdout,
    Stderr,
    /// The daemon reports an error in the stream itself.
    System,
}

/// Reassembles frames from chunks as they arrive.
#[derive(Default)]
pub struct Demuxer {
    buf: Vec<u8>,
}

const HEADER: usize = 8;

impl Demuxer {
    /// Adds a chunk and returns every frame now complete.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<(Stream, Vec<u8>)>, String> {
        self.buf.extend_from_slice(chunk);
        let mut frames = Vec::new();
        while self.buf.len() >= HEADER {
            let stream = match self.buf[0] {
                0 => Stream::Stdin,
                1 => Stream::Stdout,
                2 => Stream::Stderr,
                3 => Stream::System,
                b => {
                    return Err(format!(
                        "malformed stream from the daemon (stream byte {b})"
                    ))
                }
            };
            let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
            let end = HEADER + len as usize;
            if self.buf.len() < end {
                break;
            }
            let payload = self.buf[HEADER..end].to_vec();
            self.buf.drain(..end);
            frames.push((stream, payload));
        }
        Ok(frames)
    }

    /// Bytes of an incomplete frame left at the end of the stream.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn whole_frames() {
        let mut d = Demuxer::default();
        let mut bytes = frame(1, b"out\n");
        bytes.extend(frame(2, b"err\n"));
        let frames = d.push(&bytes).unwrap();
        assert_eq!(
            frames,
            vec![
                (Stream::Stdout, b"out\n".to_vec()),
                (Stream::Stderr, b"err\n".to_vec())
            ]
        );
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn frames_split_anywhere() {
        let mut bytes = frame(1, b"hello");
        bytes.extend(frame(2, b""));
        bytes.extend(frame(1, &[b'x'; 300]));
        for cut in 0..bytes.len() {
            let mut d = Demuxer::default();
            let mut frames = d.push(&bytes[..cut]).unwrap();
            frames.extend(d.push(&bytes[cut..]).unwrap());
            assert_eq!(frames.len(), 3, "cut at {cut}");
            assert_eq!(frames[0], (Stream::Stdout, b"hello".to_vec()));
            assert_eq!(frames[1], (Stream::Stderr, Vec::new()));
            assert_eq!(frames[2].1.len(), 300);
        }
    }

    #[test]
    fn bad_stream_byte_is_an_error() {
        let mut d = Demuxer::default();
        assert!(d.push(&frame(9, b"x")).is_err());
        let mut d = Demuxer::default();
        assert_eq!(d.push(&[1, 0, 0]).unwrap(), vec![]);
        assert_eq!(d.pending(), 3);
    }
}
