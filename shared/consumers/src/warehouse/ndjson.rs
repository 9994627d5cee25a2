//! Events as gzip NDJSON, one line each.

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

use serde::Serialize;

/// Events encoded as gzip NDJSON, one line each, compressed as they arrive so memory
/// holds only the compressed bytes.
pub struct NdjsonGz {
    encoder: GzEncoder<Vec<u8>>,
    /// One line, serialized whole before it is compressed: the compressor gets one
    /// write per event instead of one per JSON token.
    line: Vec<u8>,
    lines: usize,
}

impl Default for NdjsonGz {
    fn default() -> Self {
        NdjsonGz {
            encoder: GzEncoder::new(Vec::new(), Compression::default()),
            line: Vec::with_capacity(4096),
            lines: 0,
        }
    }
}

impl NdjsonGz {
    /// Append one event (or another row) as one line.
    pub fn push<T: Serialize>(&mut self, row: &T) -> io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, row)?;
        self.line.push(b'\n');
        self.encoder.write_all(&self.line)?;
        self.lines += 1;
        Ok(())
    }

    /// How many events were pushed.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// The complete gzip stream.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        self.encoder.finish()
    }
}
