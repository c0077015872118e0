//! A fast path for parsing one Kafka-dump line.
//!
//! The dump format stores each record's key and value as JSON strings, so the Debezium JSON
//! inside has an escaped quote every few bytes; serde_json's general string parser pays a
//! per-escape cost that made unescaping the largest single cost of file ingestion. This parser
//! handles the common shape — an object with `topic`, `partition`, `offset`, `timestamp`, `key`,
//! `value` whose values are strings, integers or null — in one pass with a byte loop, and
//! returns `None` for anything else (other keys, headers, duplicate keys, unusual numbers,
//! control characters, trailing bytes), which the caller then parses with serde_json. So it can
//! only be faster, never more permissive: every line it accepts, serde_json accepts alike.

/// The fields of a dump line. `key`/`value` are the unescaped strings, `None` for JSON null.
#[derive(Debug, PartialEq, Eq)]
pub struct Fields<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<String>,
    pub value: Option<String>,
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn null(&mut self) -> Option<()> {
        self.ws();
        self.b[self.i..].starts_with(b"null").then(|| self.i += 4)
    }

    /// A string without escapes, borrowed (keys, topic).
    fn plain_str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b'"' => {
                    let s = std::str::from_utf8(&self.b[start..self.i]).ok()?;
                    self.i += 1;
                    return Some(s);
                }
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        None
    }

    /// A string with escapes, unescaped into a new `String`.
    ///
    /// Debezium JSON stored as a string has an escaped quote every few bytes, so the runs
    /// between escapes are short: copy eight bytes at a time unconditionally and find the first
    /// quote, backslash or control character among them with word arithmetic.
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let b = self.b;
        let mut i = self.i;
        // Unescaping never lengthens, so the rest of the line (+ 8 bytes of slack for the
        // word-sized copies) always fits.
        let mut out = vec![0u8; b.len() - i + 8];
        let mut j = 0;
        loop {
            while let Some(chunk) = b.get(i..i + 8) {
                let chunk: [u8; 8] = chunk.try_into().expect("8 bytes");
                out[j..j + 8].copy_from_slice(&chunk);
                let m = special(u64::from_le_bytes(chunk));
                if m == 0 {
                    i += 8;
                    j += 8;
                } else {
                    let k = (m.trailing_zeros() / 8) as usize;
                    i += k;
                    j += k;
                    break;
                }
            }
            match *b.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    out.truncate(j);
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    let e = *b.get(i + 1)?;
                    i += 2;
                    let mut put = |c: u8| {
                        out[j] = c;
                        j += 1;
                    };
                    match e {
                        b'"' => put(b'"'),
                        b'\\' => put(b'\\'),
                        b'/' => put(b'/'),
                        b'b' => put(8),
                        b'f' => put(12),
                        b'n' => put(b'\n'),
                        b'r' => put(b'\r'),
                        b't' => put(b'\t'),
                        b'u' => {
                            let hi = hex4(b.get(i..i + 4)?)?;
                            i += 4;
                            let c = if (0xD800..0xDC00).contains(&hi) {
                                // A surrogate pair must follow.
                                if b.get(i..i + 2)? != b"\\u" {
                                    return None;
                                }
                                let lo = hex4(b.get(i + 2..i + 6)?)?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                i += 6;
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                            } else {
                                char::from_u32(hi)?
                            };
                            let mut buf = [0u8; 4];
                            for &c in c.encode_utf8(&mut buf).as_bytes() {
                                put(c);
                            }
                        }
                        _ => return None,
                    }
                }
                // A raw control character is invalid JSON: leave it to serde_json's error.
                0..=0x1f => return None,
                // Fewer than eight bytes left: one at a time.
                c => {
                    out[j] = c;
                    i += 1;
                    j += 1;
                }
            }
        }
    }

    /// An integer in plain JSON form (no leading zeros, fraction or exponent).
    fn int(&mut self) -> Option<i64> {
        self.ws();
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        let n = self.i - digits;
        if n == 0 || n > 18 || (n > 1 && self.b[digits] == b'0') {
            return None;
        }
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        std::str::from_utf8(&self.b[start..self.i])
            .ok()?
            .parse()
            .ok()
    }

    fn opt_string(&mut self) -> Option<Option<String>> {
        if self.peek()? == b'n' {
            self.null().map(|_| None)
        } else {
            self.string().map(Some)
        }
    }
}

/// A mask with the high bit set in the lowest byte of `x` that is a quote, a backslash or a
/// control character (and possibly in higher bytes: only the lowest set bit is exact).
fn special(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * n as u64) & !v & HIGHS;
    below(x ^ (ONES * b'"' as u64), 1) | below(x ^ (ONES * b'\\' as u64), 1) | below(x, 0x20)
}

fn hex4(h: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(h).ok()?;
    if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Parses a line of the common shape; `None` means "use the general parser".
pub fn parse(line: &[u8]) -> Option<Fields<'_>> {
    // UTF-8 is checked per string (`plain_str`, `string`); the bytes between strings are checked
    // one by one as JSON punctuation, digits and `null`.
    let mut c = Cursor { b: line, i: 0 };
    c.eat(b'{')?;
    let (mut topic, mut partition, mut offset) = (None, None, None);
    let (mut timestamp, mut key, mut value) = (None, None, None);
    loop {
        let k = c.plain_str()?;
        c.eat(b':')?;
        let dup = match k {
            "topic" => topic.replace(c.plain_str()?).is_some(),
            "partition" => partition.replace(i32::try_from(c.int()?).ok()?).is_some(),
            "offset" => offset.replace(c.int()?).is_some(),
            "timestamp" => {
                let t = if c.peek()? == b'n' {
                    c.null().map(|_| None)?
                } else {
                    Some(c.int()?)
                };
                timestamp.replace(t).is_some()
            }
            "key" => key.replace(c.opt_string()?).is_some(),
            "value" => value.replace(c.opt_string()?).is_some(),
            _ => return None,
        };
        if dup {
            return None;
        }
        match c.peek()? {
            b',' => c.i += 1,
            b'}' => {
                c.i += 1;
                break;
            }
            _ => return None,
        }
    }
    c.ws();
    if c.i != line.len() {
        return None;
    }
    Some(Fields {
        topic: topic?,
        partition: partition?,
        offset: offset?,
        timestamp: timestamp.flatten(),
        key: key.flatten(),
        value: value.flatten(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Reference {
        topic: String,
        partition: i32,
        offset: i64,
        #[serde(default)]
        timestamp: Option<i64>,
        #[serde(default)]
        key: Option<String>,
        #[serde(default)]
        value: Option<String>,
    }

    fn agrees(line: &str) {
        let fast = parse(line.as_bytes());
        let reference = serde_json::from_str::<Reference>(line);
        if let Some(f) = fast {
            let r = reference
                .unwrap_or_else(|e| panic!("fast path accepted what serde rejects ({e}): {line}"));
            assert_eq!(f.topic, r.topic);
            assert_eq!(
                (f.partition, f.offset, f.timestamp),
                (r.partition, r.offset, r.timestamp)
            );
            assert_eq!(f.key, r.key);
            assert_eq!(f.value, r.value);
        }
    }

    #[test]
    fn the_common_shape_takes_the_fast_path() {
        let line = r#"{"topic": "a.b.c", "partition": 0, "offset": 12, "timestamp": 1795258938636, "key": "{\"id\":1}", "value": "{\"s\":\"caf\u00e9 \ud83d\ude00\\n\"}"}"#;
        let f = parse(line.as_bytes()).expect("fast path");
        assert_eq!(f.key.as_deref(), Some(r#"{"id":1}"#));
        assert_eq!(f.value.as_deref(), Some("{\"s\":\"café 😀\\n\"}"));
        agrees(line);
    }

    #[test]
    fn anything_unusual_falls_back() {
        for line in [
            r#"{"topic":"t","partition":0,"offset":1,"key":null,"value":null,"headers":[]}"#,
            r#"{"topic":"t","partition":0,"offset":1,"offset":2}"#,
            r#"{"topic":"t","partition":0,"offset":01}"#,
            r#"{"topic":"t","partition":0,"offset":1.0}"#,
            r#"{"topic":"t","partition":0,"offset":1} x"#,
            r#"{"topic":"t","partition":0,"offset":1,"value":"a	b"}"#,
            "{\"topic\":\"t\",\"partition\":0,\"offset\":1,\"value\":\"0123456789abc\u{1}0123456789\"}",
            r#"{"topic":"t","partition":0,"offset":1,"value":"\ud800"}"#,
            r#"{"topic":"t","partition":0,"offset":1,"value":"\x"}"#,
            r#"{"topic":"t","partition":0}"#,
            r#"{"topic":"t","partition":99999999999,"offset":1}"#,
        ] {
            assert!(parse(line.as_bytes()).is_none(), "{line}");
        }
    }

    proptest! {
        #[test]
        fn never_disagrees_with_serde(
            topic in "[a-z.]{1,12}",
            partition in any::<i32>(),
            offset in any::<i64>(),
            ts in proptest::option::of(any::<i64>()),
            key in proptest::option::of(any::<String>()),
            value in proptest::option::of(any::<String>()),
            spaces in proptest::bool::ANY,
        ) {
            let sep = if spaces { ", " } else { "," };
            let line = format!(
                "{{\"topic\":\"{topic}\"{sep}\"partition\":{partition}{sep}\"offset\":{offset}{sep}\"timestamp\":{}{sep}\"key\":{}{sep}\"value\":{}}}",
                ts.map_or("null".into(), |t| t.to_string()),
                serde_json::to_string(&key).unwrap(),
                serde_json::to_string(&value).unwrap(),
            );
            agrees(&line);
            // Well-formed lines of this shape always take the fast path, unless a number is too
            // long for its quick check.
            if offset.unsigned_abs() < 10u64.pow(18) && ts.is_none_or(|t| t.unsigned_abs() < 10u64.pow(18)) {
                prop_assert!(parse(line.as_bytes()).is_some(), "{}", line);
            }
        }

        #[test]
        fn escape_heavy_strings_round_trip(
            key in "[\"\\\\a-z0-9é😀/\u{1}\n]{0,40}",
            value in "[\"\\\\a-z0-9é😀/\u{1}\n]{0,300}",
        ) {
            let line = format!(
                "{{\"topic\":\"t\",\"partition\":0,\"offset\":1,\"key\":{},\"value\":{}}}",
                serde_json::to_string(&key).unwrap(),
                serde_json::to_string(&value).unwrap(),
            );
            let f = parse(line.as_bytes()).expect("fast path");
            prop_assert_eq!(f.key.as_deref(), Some(key.as_str()));
            prop_assert_eq!(f.value.as_deref(), Some(value.as_str()));
        }

        #[test]
        fn arbitrary_bytes_never_disagree(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(s) = std::str::from_utf8(&bytes) {
                agrees(s);
            } else {
                prop_assert!(parse(&bytes).is_none());
            }
        }
    }
}
