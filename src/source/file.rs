//! The file source: Kafka-dump JSONL, one record per line —
//! `{"topic", "partition", "offset", "timestamp", "key", "value"}` where `key` and `value` are
//! the raw strings as they were on Kafka (null for none) — plain or gzipped (detected from the
//! content, not the name). A line that is not such a record becomes [`Unreadable`] with the
//! reason, never an error that stops the run.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::{SourceError, SourceItem, SourceRecord, Unreadable};

/// Kafka headers as a dump line holds them: `[[name, value-or-null], …]`.
type DumpHeaders<'a> = Vec<(Cow<'a, str>, Option<Cow<'a, str>>)>;

/// One line of a Kafka dump as stored.
#[derive(Deserialize)]
struct DumpLine<'a> {
    #[serde(borrow)]
    topic: Cow<'a, str>,
    partition: i32,
    offset: i64,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(borrow, default)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<Cow<'a, str>>,
    /// Optional: `[[name, value-or-null], …]`.
    #[serde(borrow, default)]
    headers: Option<DumpHeaders<'a>>,
}

/// Reads a Kafka-dump file line by line.
pub struct DumpReader {
    path: PathBuf,
    name: Arc<str>,
    reader: Box<dyn BufRead + Send>,
    line: i64,
    buf: Vec<u8>,
    /// Interned topic names: most files have a handful.
    topics: Vec<Arc<str>>,
}

impl DumpReader {
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let io = |source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
        let gz = file.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn BufRead + Send> = if gz {
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::bufread::MultiGzDecoder::new(file),
            ))
        } else {
            Box::new(file)
        };
        let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        Ok(DumpReader {
            path: path.to_path_buf(),
            name: Arc::from(abs.display().to_string()),
            reader,
            line: -1,
            buf: Vec::with_capacity(4096),
            topics: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next item, `None` at the end of the file.
    pub fn next_item(&mut self) -> Result<Option<SourceItem>, SourceError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|source| SourceError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if trim_line(&self.buf).is_empty() {
                continue;
            }
            let buf = std::mem::take(&mut self.buf);
            let item = self.parse(trim_line(&buf));
            self.buf = buf;
            return Ok(Some(item));
        }
    }

    fn intern(&mut self, topic: &str) -> Arc<str> {
        if let Some(t) = self.topics.iter().find(|t| &***t == topic) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(topic);
        if self.topics.len() < 4096 {
            self.topics.push(t.clone());
        }
        t
    }

    fn parse(&mut self, line: &[u8]) -> SourceItem {
        if let Some(f) = super::dump_line::parse(line) {
            return SourceItem::Record(SourceRecord {
                topic: self.intern(f.topic),
                partition: f.partition,
                offset: f.offset,
                timestamp_ms: f.timestamp,
                key: f.key.map(String::into_bytes),
                value: f.value.map(String::into_bytes),
                headers: Vec::new(),
            });
        }
        let (file, line_no) = (self.name.clone(), self.line);
        let unreadable = |reason: String, record: Option<SourceRecord>| Unreadable {
            file,
            line: line_no,
            raw: line.to_vec(),
            reason,
            record,
        };
        match serde_json::from_slice::<DumpLine>(line) {
            Ok(d) => {
                let topic = self.intern(&d.topic);
                SourceItem::Record(SourceRecord {
                    topic,
                    partition: d.partition,
                    offset: d.offset,
                    timestamp_ms: d.timestamp,
                    key: d.key.map(|k| k.into_owned().into_bytes()),
                    value: d.value.map(|v| v.into_owned().into_bytes()),
                    headers: d
                        .headers
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k.into_owned(), v.map(|v| v.into_owned().into_bytes())))
                        .collect(),
                })
            }
            Err(e) => {
                // Invalid UTF-8 inside the record: read the coordinates from a lossy copy so the
                // dead letter keeps them, and keep the original bytes.
                if std::str::from_utf8(line).is_err() {
                    let lossy = String::from_utf8_lossy(line);
                    if let Ok(d) = serde_json::from_str::<DumpLine>(&lossy) {
                        let record = SourceRecord {
                            topic: self.intern(&d.topic),
                            partition: d.partition,
                            offset: d.offset,
                            timestamp_ms: d.timestamp,
                            key: None,
                            value: None,
                            headers: Vec::new(),
                        };
                        let at = std::str::from_utf8(line).unwrap_err().valid_up_to();
                        return SourceItem::Unreadable(unreadable(
                            format!(
                                "record is not valid UTF-8 (first bad byte at column {at} of the line)"
                            ),
                            Some(record),
                        ));
                    }
                }
                SourceItem::Unreadable(unreadable(
                    format!(
                        "not a Kafka-dump record ({{\"topic\",\"partition\",\"offset\",\"key\",\"value\"}}): {e}"
                    ),
                    None,
                ))
            }
        }
    }
}

fn trim_line(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && (b[end - 1] == b'\n' || b[end - 1] == b'\r') {
        end -= 1;
    }
    &b[..end]
}

/// Writes records as Kafka-dump JSONL, the format [`DumpReader`] reads.
pub fn write_record<W: std::io::Write + ?Sized>(
    out: &mut W,
    r: &SourceRecord,
) -> std::io::Result<()> {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        topic: &'a str,
        partition: i32,
        offset: i64,
        timestamp: Option<i64>,
        key: Option<&'a str>,
        value: Option<&'a str>,
    }
    fn as_str(b: &Option<Vec<u8>>) -> std::io::Result<Option<&str>> {
        b.as_deref()
            .map(std::str::from_utf8)
            .transpose()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
    let line = Line {
        topic: &r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp_ms,
        key: as_str(&r.key)?,
        value: as_str(&r.value)?,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(path: &Path) -> Vec<SourceItem> {
        let mut r = DumpReader::open(path).unwrap();
        let mut v = Vec::new();
        while let Some(i) = r.next_item().unwrap() {
            v.push(i);
        }
        v
    }

    #[test]
    fn reads_plain_and_gzipped_alike() {
        let dir = tempfile::tempdir().unwrap();
        let text = "{\"topic\":\"a.b.c\",\"partition\":0,\"offset\":7,\"timestamp\":1,\"key\":\"{\\\"id\\\":1}\",\"value\":null}\n\n";
        let plain = dir.path().join("x.jsonl");
        std::fs::write(&plain, text).unwrap();
        let gz = dir.path().join("x.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), Default::default());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
        let a = read_all(&plain);
        let b = read_all(&gz);
        assert_eq!(a.len(), 1);
        assert_eq!(a, b);
        let SourceItem::Record(r) = &a[0] else {
            panic!()
        };
        assert_eq!(r.key.as_deref(), Some(&b"{\"id\":1}"[..]));
        assert_eq!(r.value, None);
        assert_eq!(r.offset, 7);
    }

    #[test]
    fn broken_lines_are_unreadable_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.jsonl");
        let mut bytes = b"{\"topic\":\"t\",\"partition\":0,\"offset\":1,\"key\":null,\"value\":\"{\\\"a\\\":\xff}\"}\n".to_vec();
        bytes.extend_from_slice(b"{\"topic\": \"t\", \"partit\n");
        std::fs::write(&p, &bytes).unwrap();
        let items = read_all(&p);
        assert_eq!(items.len(), 2);
        let SourceItem::Unreadable(u) = &items[0] else {
            panic!()
        };
        assert!(u.reason.contains("UTF-8"), "{}", u.reason);
        assert_eq!(u.record.as_ref().unwrap().offset, 1);
        let SourceItem::Unreadable(u) = &items[1] else {
            panic!()
        };
        assert_eq!(u.line, 1);
        assert!(u.record.is_none());
        assert!(u.position().0.topic.starts_with("file:"));
    }
}
