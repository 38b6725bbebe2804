//! Newline framing of a Stratum byte stream, with a maximum line length.

use std::collections::VecDeque;

/// The longest line a peer may send (a `mining.notify` with a big coinbase and a deep
/// merkle branch is a few KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// A framing failure. After [`FrameError::TooLong`] the stream cannot be resynchronised
/// safely and the session should be closed; a [`FrameError::NotUtf8`] line is dropped and
/// the stream goes on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("line longer than {max} bytes without a newline")]
    TooLong { max: usize },
    #[error("line is not UTF-8 ({len} bytes dropped)")]
    NotUtf8 { len: usize },
}

/// Splits bytes into lines: several lines per read and lines split across reads; `\r\n` and
/// `\n` both end a line; empty lines are skipped.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    max: usize,
    lines: VecDeque<Result<String, FrameError>>,
    broken: bool,
}

impl Default for LineBuffer {
    fn default() -> Self {
        LineBuffer::new(MAX_LINE)
    }
}

impl LineBuffer {
    pub fn new(max: usize) -> LineBuffer {
        LineBuffer {
            buf: Vec::new(),
            scanned: 0,
            max,
            lines: VecDeque::new(),
            broken: false,
        }
    }

    /// Takes bytes read from the peer. Once a line was too long, further bytes are ignored.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            let end = self.scanned + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.len() > self.max {
                self.fail();
                return;
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                self.lines.push_back(match std::str::from_utf8(line) {
                    Ok(s) => Ok(s.to_string()),
                    Err(_) => Err(FrameError::NotUtf8 { len: line.len() }),
                });
            }
            start = end + 1;
            self.scanned = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > self.max {
            self.fail();
        }
    }

    fn fail(&mut self) {
        self.broken = true;
        self.buf = Vec::new();
        self.scanned = 0;
        self.lines
            .push_back(Err(FrameError::TooLong { max: self.max }));
    }

    /// The next complete line (without its newline), or a framing error.
    pub fn next_line(&mut self) -> Option<Result<String, FrameError>> {
        self.lines.pop_front()
    }

    /// Bytes waiting for their newline.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Whether a line was too long; nothing more will come out.
    pub fn is_broken(&self) -> bool {
        self.broken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(buf: &mut LineBuffer) -> Vec<Result<String, FrameError>> {
        std::iter::from_fn(|| buf.next_line()).collect()
    }

    #[test]
    fn several_lines_per_read_and_lines_split_across_reads() {
        let mut b = LineBuffer::default();
        b.push(b"{\"a\":1}\n{\"b\"");
        b.push(b":2}\r\n\n  \n{\"c\":3}");
        assert_eq!(
            lines(&mut b),
            vec![Ok("{\"a\":1}".into()), Ok("{\"b\":2}".into())]
        );
        assert_eq!(b.pending(), 7);
        b.push(b"\n");
        assert_eq!(lines(&mut b), vec![Ok("{\"c\":3}".into())]);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_dropped_and_the_stream_goes_on() {
        let mut b = LineBuffer::default();
        b.push(b"\xff\xfe\n{}\n");
        assert_eq!(
            lines(&mut b),
            vec![Err(FrameError::NotUtf8 { len: 2 }), Ok("{}".into())]
        );
    }

    #[test]
    fn a_too_long_line_breaks_the_stream_even_without_a_newline() {
        let mut b = LineBuffer::new(8);
        b.push(b"123456789");
        assert_eq!(lines(&mut b), vec![Err(FrameError::TooLong { max: 8 })]);
        assert!(b.is_broken());
        b.push(b"\n{}\n");
        assert!(lines(&mut b).is_empty());

        let mut b = LineBuffer::new(8);
        b.push(b"12345678\n123456789\n");
        assert_eq!(
            lines(&mut b),
            vec![Ok("12345678".into()), Err(FrameError::TooLong { max: 8 })]
        );
    }
}
