//! Typed decoding of one Debezium value (a cell of an `after` image) into a [`Cell`] of its
//! stored type.
//!
//! Three outcomes besides a value: the TOAST placeholder (the merge keeps the key's previous
//! value), a value the records cannot give as a typed value (`infinity`, a `NaN` decimal, a date
//! outside 0001..9999: stored as null with a data-quality flag, never as the placeholder or a
//! meaningless number), and a value that does not fit its column's type (the row goes to
//! quarantine, never silently changed).

use base64::Engine;
use serde_json::value::RawValue;

use super::types::{Logical, Stored};

/// Debezium's placeholder for an unchanged TOASTed value it could not read.
pub const TOAST_PLACEHOLDER: &str = "__debezium_unavailable_value";
pub const TOAST_PLACEHOLDER_JSON: &str = "\"__debezium_unavailable_value\"";
/// The placeholder in a bytea column: base64 of its UTF-8 bytes.
const TOAST_PLACEHOLDER_BASE64: &str = "\"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==\"";

/// 0001-01-01 and 9999-12-31 in days since 1970-01-01.
const MIN_DAYS: i64 = -719_162;
const MAX_DAYS: i64 = 2_932_896;
/// The same range in microseconds.
const MIN_US: i64 = -62_135_596_800_000_000;
const MAX_US: i64 = 253_402_300_799_999_999;
const DAY_US: i64 = 86_400_000_000;

/// A typed value. Dates are days, times and timestamps microseconds, decimals unscaled at the
/// column's scale.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Boolean(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Decimal(i128),
    String(String),
    Binary(Vec<u8>),
    List(Vec<Cell>),
}

/// Why a value has no cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    /// The TOAST placeholder: keep the key's previous value.
    Placeholder,
    /// The records hold no typed value for it: null plus a data-quality flag with this reason.
    Unrepresentable(String),
    /// The value does not fit the column's type: the row goes to quarantine with this reason.
    Misfit(String),
}

type Decoded = Result<Cell, Issue>;

fn misfit(raw: &str, what: &str) -> Issue {
    let shown: String = raw.chars().take(80).collect();
    Issue::Misfit(format!("{shown} is not {what}"))
}

/// Decodes one JSON value (`raw`, not null) read as `logical` into a cell of type `stored`.
pub fn decode(raw: &RawValue, logical: &Logical, stored: &Stored) -> Decoded {
    let text = raw.get();
    if text == "null" {
        return Ok(Cell::Null);
    }
    if text == TOAST_PLACEHOLDER_JSON
        || (text == TOAST_PLACEHOLDER_BASE64 && matches!(logical, Logical::Bytes))
    {
        return Err(Issue::Placeholder);
    }
    if let Logical::List(inner) = logical {
        let Stored::List(inner_stored) = stored else {
            return Err(misfit(text, &format!("a {stored}")));
        };
        let items: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|_| misfit(text, "an array"))?;
        if items.len() == 1 && items[0].get() == TOAST_PLACEHOLDER_JSON {
            return Err(Issue::Placeholder);
        }
        let mut cells = Vec::with_capacity(items.len());
        for item in items {
            cells.push(decode(item, inner, inner_stored)?);
        }
        return Ok(Cell::List(cells));
    }
    let value = read(text, logical)?;
    convert(value, text, stored)
}

/// A value as read, before it is fitted to the stored type.
#[derive(Debug)]
enum Read {
    Bool(bool),
    Int(i64),
    Float(f64),
    /// An exact decimal: sign, decimal digits of the unscaled value, scale.
    Decimal(bool, String, i32),
    Text(String),
    Bytes(Vec<u8>),
    Date(i32),
    Time(i64),
    Timestamp(i64),
    Instant(i64),
}

fn parse_str(text: &str) -> Option<String> {
    serde_json::from_str::<String>(text).ok()
}

fn parse_i64(text: &str) -> Option<i64> {
    serde_json::from_str::<i64>(text).ok()
}

fn read(text: &str, logical: &Logical) -> Result<Read, Issue> {
    Ok(match logical {
        Logical::Boolean => {
            Read::Bool(serde_json::from_str::<bool>(text).map_err(|_| misfit(text, "a boolean"))?)
        }
        Logical::Int32 | Logical::Int64 | Logical::DurationMicros => {
            Read::Int(parse_i64(text).ok_or_else(|| misfit(text, "an integer"))?)
        }
        Logical::Float32 | Logical::Float64 => match parse_str(text).as_deref() {
            Some("NaN") => Read::Float(f64::NAN),
            Some("Infinity") => Read::Float(f64::INFINITY),
            Some("-Infinity") => Read::Float(f64::NEG_INFINITY),
            Some(_) => return Err(misfit(text, "a number")),
            None => Read::Float(
                serde_json::from_str::<f64>(text).map_err(|_| misfit(text, "a number"))?,
            ),
        },
        Logical::String => Read::Text(parse_str(text).ok_or_else(|| misfit(text, "a string"))?),
        Logical::Json => match parse_str(text) {
            Some(doc) => Read::Text(doc),
            // Without a schema a JSON column may hold the document itself.
            None => Read::Text(text.to_string()),
        },
        Logical::Bytes => {
            let s = parse_str(text).ok_or_else(|| misfit(text, "base64 bytes"))?;
            Read::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .map_err(|_| misfit(text, "base64 bytes"))?,
            )
        }
        Logical::Decimal { scale } => {
            let s = parse_str(text).ok_or_else(|| misfit(text, "a base64 decimal"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|_| misfit(text, "a base64 decimal"))?;
            let (neg, digits) = twos_complement_to_decimal(&bytes);
            Read::Decimal(neg, digits, *scale)
        }
        Logical::VariableDecimal => {
            #[derive(serde::Deserialize)]
            struct Vsd {
                scale: i32,
                value: String,
            }
            let v: Vsd = serde_json::from_str(text)
                .map_err(|_| misfit(text, "a variable-scale decimal {scale, value}"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.value.as_bytes())
                .map_err(|_| misfit(text, "a variable-scale decimal {scale, value}"))?;
            let (neg, digits) = twos_complement_to_decimal(&bytes);
            Read::Decimal(neg, digits, v.scale)
        }
        Logical::DecimalText => {
            let s = match parse_str(text) {
                Some(s) => s,
                None if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                    text.to_string()
                }
                None => return Err(misfit(text, "a decimal")),
            };
            match parse_decimal_text(&s) {
                Some((neg, digits, scale)) => Read::Decimal(neg, digits, scale),
                None if ["nan", "infinity", "-infinity", "+infinity"]
                    .contains(&s.to_ascii_lowercase().as_str()) =>
                {
                    return Err(Issue::Unrepresentable(format!(
                        "numeric '{s}' has no decimal value"
                    )));
                }
                None => return Err(misfit(text, "a decimal")),
            }
        }
        Logical::Date => {
            let days = match parse_i64(text) {
                Some(d) => d,
                None => {
                    let s = parse_str(text).ok_or_else(|| misfit(text, "a date"))?;
                    let d = chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                        .map_err(|_| misfit(text, "a date"))?;
                    d.signed_duration_since(chrono::NaiveDate::default())
                        .num_days()
                }
            };
            if !(MIN_DAYS..=MAX_DAYS).contains(&days) {
                return Err(Issue::Unrepresentable(format!(
                    "date {days} days is outside 0001-01-01..9999-12-31"
                )));
            }
            Read::Date(days as i32)
        }
        Logical::TimeMillis | Logical::TimeMicros | Logical::TimeNanos => {
            let v = parse_i64(text).ok_or_else(|| misfit(text, "a time"))?;
            let us = match logical {
                Logical::TimeMillis => v.saturating_mul(1000),
                Logical::TimeNanos => v.div_euclid(1000),
                _ => v,
            };
            if !(0..=DAY_US).contains(&us) {
                return Err(Issue::Unrepresentable(format!(
                    "time {us} µs is outside 00:00..24:00"
                )));
            }
            Read::Time(us)
        }
        Logical::TimestampMillis | Logical::TimestampMicros | Logical::TimestampNanos => {
            let v = match parse_i64(text) {
                Some(v) => v,
                None => {
                    let s = parse_str(text).ok_or_else(|| misfit(text, "a timestamp"))?;
                    let t = chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f")
                        .or_else(|_| {
                            chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f")
                        })
                        .map_err(|_| misfit(text, "a timestamp"))?;
                    let us = t.and_utc().timestamp_micros();
                    return Ok(Read::Timestamp(us));
                }
            };
            let us = match logical {
                Logical::TimestampMillis => v.checked_mul(1000),
                Logical::TimestampNanos => Some(v.div_euclid(1000)),
                _ => Some(v),
            };
            match us {
                Some(us) if (MIN_US..=MAX_US).contains(&us) => Read::Timestamp(us),
                _ => {
                    return Err(Issue::Unrepresentable(format!(
                        "timestamp {v} is outside 0001-01-01..9999-12-31"
                    )));
                }
            }
        }
        Logical::ZonedTimestamp => {
            let s = parse_str(text).ok_or_else(|| misfit(text, "a zoned timestamp"))?;
            if s.eq_ignore_ascii_case("infinity") || s.eq_ignore_ascii_case("-infinity") {
                return Err(Issue::Unrepresentable(format!(
                    "timestamptz '{s}' is not an instant"
                )));
            }
            let t = chrono::DateTime::parse_from_rfc3339(&s)
                .map_err(|_| misfit(text, "an ISO-8601 timestamp with a zone"))?;
            let us = t.timestamp_micros();
            if !(MIN_US..=MAX_US).contains(&us) {
                return Err(Issue::Unrepresentable(format!(
                    "timestamptz '{s}' is outside 0001-01-01..9999-12-31"
                )));
            }
            Read::Instant(us)
        }
        Logical::ZonedTime => {
            let s = parse_str(text).ok_or_else(|| misfit(text, "a zoned time"))?;
            Read::Text(normalize_zoned_time(&s).ok_or_else(|| misfit(text, "a time in UTC"))?)
        }
        Logical::List(_) => unreachable!("lists are decoded element by element"),
    })
}

/// `HH:MM:SS[.f]Z` → `HH:MM:SS.ffffffZ`.
fn normalize_zoned_time(s: &str) -> Option<String> {
    let body = s.strip_suffix('Z')?;
    let (hms, frac) = match body.split_once('.') {
        Some((a, b)) => (a, b),
        None => (body, ""),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 9
    {
        return None;
    }
    let mut f: String = frac.chars().take(6).collect();
    while f.len() < 6 {
        f.push('0');
    }
    Some(format!("{hms}.{f}Z"))
}

/// Fits a read value to the column's stored type, exactly or not at all.
fn convert(value: Read, text: &str, stored: &Stored) -> Decoded {
    let want = |what: &str| Err(misfit(text, what));
    Ok(match (stored, value) {
        (Stored::Boolean, Read::Bool(b)) => Cell::Boolean(b),
        (Stored::Int, Read::Int(i)) => match i32::try_from(i) {
            Ok(i) => Cell::Int(i),
            Err(_) => return want("within int (32-bit) range"),
        },
        (Stored::Long, Read::Int(i)) => Cell::Long(i),
        (Stored::Float, Read::Float(f)) => Cell::Float(f as f32),
        (Stored::Float, Read::Int(i)) if i.unsigned_abs() <= 1 << 24 => Cell::Float(i as f32),
        (Stored::Double, Read::Float(f)) => Cell::Double(f),
        (Stored::Double, Read::Int(i)) if i.unsigned_abs() <= 1 << 53 => Cell::Double(i as f64),
        (Stored::Decimal { precision, scale }, Read::Decimal(neg, digits, s)) => {
            match rescale(neg, &digits, s, *scale as i32, *precision) {
                Some(v) => Cell::Decimal(v),
                None => return want(&format!("a decimal({precision},{scale}) without rounding")),
            }
        }
        (Stored::String, Read::Decimal(neg, digits, s)) => {
            Cell::String(plain_decimal(neg, &digits, s))
        }
        (Stored::String, Read::Text(s)) => Cell::String(s),
        (Stored::Binary, Read::Bytes(b)) => Cell::Binary(b),
        (Stored::Date, Read::Date(d)) => Cell::Int(d),
        (Stored::Time, Read::Time(t)) if t < DAY_US => Cell::Long(t),
        (Stored::Time, Read::Time(_)) => {
            return Err(Issue::Unrepresentable(
                "time 24:00:00 does not fit Iceberg's time type (store the column as text to keep it)"
                    .into(),
            ));
        }
        (Stored::String, Read::Time(t)) => Cell::String(format_time(t)),
        (Stored::Timestamp, Read::Timestamp(t)) => Cell::Long(t),
        (Stored::Timestamptz, Read::Instant(t)) => Cell::Long(t),
        (Stored::Long, Read::Time(t)) => Cell::Long(t),
        (stored, _) => return want(&format!("a {stored}")),
    })
}

/// `HH:MM:SS.ffffff` (24:00:00.000000 included).
pub fn format_time(us: i64) -> String {
    let (h, rest) = (us / 3_600_000_000, us % 3_600_000_000);
    let (m, rest) = (rest / 60_000_000, rest % 60_000_000);
    let (s, f) = (rest / 1_000_000, rest % 1_000_000);
    format!("{h:02}:{m:02}:{s:02}.{f:06}")
}

/// Big-endian two's complement → (negative, decimal digits of the magnitude).
pub fn twos_complement_to_decimal(bytes: &[u8]) -> (bool, String) {
    if bytes.is_empty() {
        return (false, "0".into());
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut mag: Vec<u8> = bytes.to_vec();
    if negative {
        // Magnitude = two's complement negation: invert and add one.
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
    }
    if mag.len() <= 16 {
        let mut buf = [0u8; 16];
        buf[16 - mag.len()..].copy_from_slice(&mag);
        return (negative, u128::from_be_bytes(buf).to_string());
    }
    // Longer than 128 bits: repeated division by 10^9 over base-256 digits.
    let mut chunks = Vec::new();
    let mut num = mag;
    while num.iter().any(|&b| b != 0) {
        let mut rem: u64 = 0;
        for b in num.iter_mut() {
            let cur = (rem << 8) | *b as u64;
            *b = (cur / 1_000_000_000) as u8;
            rem = cur % 1_000_000_000;
        }
        chunks.push(rem as u32);
        while num.first() == Some(&0) && num.len() > 1 {
            num.remove(0);
        }
    }
    let mut s = String::new();
    for (i, c) in chunks.iter().rev().enumerate() {
        if i == 0 {
            s.push_str(&c.to_string());
        } else {
            s.push_str(&format!("{c:09}"));
        }
    }
    if s.is_empty() {
        s.push('0');
    }
    (negative, s)
}

/// `-12.340` → (true, "12340", 3); plain notation only, optional exponent.
fn parse_decimal_text(s: &str) -> Option<(bool, String, i32)> {
    let s = s.trim();
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((a, b)) => (a, b),
        None => (mantissa, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut digits = format!("{int}{frac}");
    let trimmed = digits.trim_start_matches('0');
    digits = if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.to_string()
    };
    Some((neg, digits, frac.len() as i32 - exp))
}

/// The unscaled value at `to` scale, if exact and within `precision` digits.
fn rescale(neg: bool, digits: &str, from: i32, to: i32, precision: u32) -> Option<i128> {
    let mut d = digits.trim_start_matches('0').to_string();
    if to >= from {
        if d.is_empty() {
            return Some(0);
        }
        d.extend(std::iter::repeat_n('0', (to - from) as usize));
    } else {
        let cut = (from - to) as usize;
        let keep = d.len().saturating_sub(cut);
        if d[keep..].bytes().any(|b| b != b'0') {
            return None;
        }
        d.truncate(keep);
    }
    let d = d.trim_start_matches('0');
    if d.len() > precision as usize {
        return None;
    }
    if d.is_empty() {
        return Some(0);
    }
    let v: i128 = d.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// Exact plain notation: digits `12345`, scale 3 → `12.345`; scale -2 → `1234500`.
pub fn plain_decimal(neg: bool, digits: &str, scale: i32) -> String {
    let digits = match digits.trim_start_matches('0') {
        "" => "0",
        d => d,
    };
    let mut s = String::new();
    if neg && digits != "0" {
        s.push('-');
    }
    if scale <= 0 {
        s.push_str(digits);
        if digits != "0" {
            s.extend(std::iter::repeat_n('0', (-scale) as usize));
        }
        return s;
    }
    let scale = scale as usize;
    if digits.len() > scale {
        let (i, f) = digits.split_at(digits.len() - scale);
        s.push_str(i);
        s.push('.');
        s.push_str(f);
    } else {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', scale - digits.len()));
        s.push_str(digits);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(json: &str, l: Logical, s: Stored) -> Decoded {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        decode(&raw, &l, &s)
    }

    #[test]
    fn decimals() {
        // 9999999999999999999999999999.9999999999 (numeric(38,10) maximum), from the fixture.
        let c = dec(
            "\"SztMqFqGxHoJiiI//////w==\"",
            Logical::Decimal { scale: 10 },
            Stored::Decimal {
                precision: 38,
                scale: 10,
            },
        )
        .unwrap();
        assert_eq!(c, Cell::Decimal(99999999999999999999999999999999999999));
        // 1234.56 as money, precise.
        assert_eq!(
            dec(
                "\"AeJA\"",
                Logical::Decimal { scale: 2 },
                Stored::Decimal {
                    precision: 38,
                    scale: 2
                }
            )
            .unwrap(),
            Cell::Decimal(123456)
        );
        // A variable-scale decimal wider than 128 bits stays exact as text.
        let c = dec(
            r#"{"scale":9,"value":"FZ/+byL9XMQsUk32/V4o0OTYXxU="}"#,
            Logical::VariableDecimal,
            Stored::String,
        )
        .unwrap();
        assert_eq!(
            c,
            Cell::String("123456789012345678901234567890123456789.123456789".into())
        );
        assert_eq!(
            dec(
                "\"-0.000000000000000000000000000001\"",
                Logical::DecimalText,
                Stored::String
            )
            .unwrap(),
            Cell::String("-0.000000000000000000000000000001".into())
        );
        assert_eq!(
            dec("\"NAN\"", Logical::DecimalText, Stored::String),
            Err(Issue::Unrepresentable(
                "numeric 'NAN' has no decimal value".into()
            ))
        );
        assert!(matches!(
            dec(
                "\"1.005\"",
                Logical::DecimalText,
                Stored::Decimal {
                    precision: 10,
                    scale: 2
                }
            ),
            Err(Issue::Misfit(_))
        ));
        assert_eq!(
            dec(
                "\"1.50\"",
                Logical::DecimalText,
                Stored::Decimal {
                    precision: 10,
                    scale: 2
                }
            ),
            Ok(Cell::Decimal(150))
        );
        // Negative, two's complement: -1 is 0xff.
        assert_eq!(twos_complement_to_decimal(&[0xff]), (true, "1".into()));
        assert_eq!(
            twos_complement_to_decimal(&[0xff, 0x00]),
            (true, "256".into())
        );
    }

    #[test]
    fn times_and_specials() {
        assert_eq!(
            dec("86400000000", Logical::TimeMicros, Stored::String),
            Ok(Cell::String("24:00:00.000000".into()))
        );
        assert!(matches!(
            dec("86400000000", Logical::TimeMicros, Stored::Time),
            Err(Issue::Unrepresentable(_))
        ));
        assert_eq!(
            dec("49530123456", Logical::TimeMicros, Stored::Time),
            Ok(Cell::Long(49_530_123_456))
        );
        assert!(matches!(
            dec("-622191234", Logical::Date, Stored::Date),
            Err(Issue::Unrepresentable(_))
        ));
        assert!(matches!(
            dec(
                "9223372036825200000",
                Logical::TimestampMicros,
                Stored::Timestamp
            ),
            Err(Issue::Unrepresentable(_))
        ));
        assert!(matches!(
            dec(
                "\"-infinity\"",
                Logical::ZonedTimestamp,
                Stored::Timestamptz
            ),
            Err(Issue::Unrepresentable(_))
        ));
        assert_eq!(
            dec(
                "\"1969-12-31T23:59:59.999999Z\"",
                Logical::ZonedTimestamp,
                Stored::Timestamptz
            ),
            Ok(Cell::Long(-1))
        );
        assert_eq!(
            dec("\"10:00:00Z\"", Logical::ZonedTime, Stored::String),
            Ok(Cell::String("10:00:00.000000Z".into()))
        );
        assert_eq!(
            dec("\"NaN\"", Logical::Float64, Stored::Double)
                .map(|c| matches!(c, Cell::Double(f) if f.is_nan())),
            Ok(true)
        );
    }

    #[test]
    fn placeholders_and_misfits() {
        assert_eq!(
            dec(
                "\"__debezium_unavailable_value\"",
                Logical::String,
                Stored::String
            ),
            Err(Issue::Placeholder)
        );
        assert_eq!(
            dec(
                "[\"__debezium_unavailable_value\"]",
                Logical::List(Box::new(Logical::String)),
                Stored::List(Box::new(Stored::String))
            ),
            Err(Issue::Placeholder)
        );
        assert!(matches!(
            dec("\"abc\"", Logical::Int64, Stored::Long),
            Err(Issue::Misfit(_))
        ));
        assert!(matches!(
            dec("1.5", Logical::Int64, Stored::Long),
            Err(Issue::Misfit(_))
        ));
        assert!(matches!(
            dec("3000000000", Logical::Int32, Stored::Int),
            Err(Issue::Misfit(_))
        ));
        assert_eq!(
            dec(
                "[1,null,3]",
                Logical::List(Box::new(Logical::Int32)),
                Stored::List(Box::new(Stored::Int))
            ),
            Ok(Cell::List(vec![Cell::Int(1), Cell::Null, Cell::Int(3)]))
        );
    }

    #[test]
    fn plain_notation() {
        assert_eq!(plain_decimal(false, "1", 1), "0.1");
        assert_eq!(plain_decimal(true, "12345", 3), "-12.345");
        assert_eq!(plain_decimal(false, "12", -2), "1200");
        assert_eq!(plain_decimal(true, "0", 2), "0.00");
    }
}
