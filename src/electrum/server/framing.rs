//! Newline framing with a size limit, safe to cancel: the bytes of a line
//! read so far live in the caller's buffer, so a `select!` that drops the
//! read for a notification loses nothing.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The outcome of one read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A line, without its newline (and without a `\r` before it).
    Complete(Vec<u8>),
    /// The line is longer than allowed (the rest is not read).
    TooLong,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
}

/// Reads up to the next newline, keeping partial input in `partial`.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    partial: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    loop {
        // `fill_buf` is cancel-safe, and nothing below awaits, so a
        // cancelled call leaves `partial` and the reader consistent.
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i)),
            None => (available, None),
        };
        if partial.len() + chunk.len() > max {
            return Ok(Line::TooLong);
        }
        partial.extend_from_slice(chunk);
        let used = found.map_or(chunk.len(), |i| i + 1);
        reader.consume(used);
        if found.is_some() {
            let mut line = std::mem::take(partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Line::Complete(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut reader = tokio::io::BufReader::with_capacity(4, input);
        let mut partial = Vec::new();
        let mut out = Vec::new();
        loop {
            let line = read_line(&mut reader, &mut partial, max).await.unwrap();
            let stop = line != Line::Eof && !matches!(line, Line::Complete(_));
            let eof = line == Line::Eof;
            out.push(line);
            if stop || eof {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_across_reads() {
        assert_eq!(
            lines(b"abcdefgh\r\n\nxy\nunfinished", 100).await,
            [
                Line::Complete(b"abcdefgh".to_vec()),
                Line::Complete(vec![]),
                Line::Complete(b"xy".to_vec()),
                Line::Eof,
            ]
        );
    }

    #[tokio::test]
    async fn stops_at_the_limit() {
        assert_eq!(
            lines(b"12345\n123456\n", 5).await,
            [Line::Complete(b"12345".to_vec()), Line::TooLong]
        );
    }
}
