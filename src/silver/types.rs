//! Silver column types: how a Debezium value is read ([`Logical`]: its logical type and JSON
//! encoding) and the Iceberg type it is stored as ([`Stored`]).
//!
//! The logical type comes from the record's Connect schema when there is one, from the silver
//! table's configuration where the record cannot say it (no schema, MariaDB JSON as a plain
//! string, `decimal.handling.mode=string`), else it is inferred from the first non-null value
//! and pinned in the table's properties. The README's type table documents the mapping.

use std::fmt;

use iceberg::spec::{ListType, NestedField, PrimitiveType, Type};
use serde::{Deserialize, Serialize};

/// How a value arrives in Debezium's JSON (JsonConverter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Logical {
    Boolean,
    /// int8, int16, int32, MySQL `Year`.
    Int32,
    Int64,
    /// A JSON number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
    Float32,
    Float64,
    String,
    /// A JSON document: as a string (`io.debezium.data.Json`) or, without a schema, any value.
    Json,
    /// base64 (`bytes`, `io.debezium.data.Bits`).
    Bytes,
    /// Connect `Decimal`: base64 big-endian two's-complement unscaled integer.
    Decimal {
        scale: i32,
    },
    /// `io.debezium.data.VariableScaleDecimal`: `{"scale": s, "value": base64}`.
    VariableDecimal,
    /// A decimal as text (`decimal.handling.mode=string`) or as a JSON number (`double`).
    DecimalText,
    /// Days since 1970-01-01 (`io.debezium.time.Date`, Connect `Date`); an ISO date string too.
    Date,
    TimeMillis,
    TimeMicros,
    TimeNanos,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    /// `io.debezium.time.ZonedTimestamp`: ISO-8601 text in UTC.
    ZonedTimestamp,
    /// `io.debezium.time.ZonedTime`: `"HH:MM:SS.ffffffZ"`.
    ZonedTime,
    /// `io.debezium.time.MicroDuration`: microseconds.
    DurationMicros,
    List(Box<Logical>),
}

/// The Iceberg type a column is stored as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Decimal { precision: u32, scale: u32 },
    String,
    Binary,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    List(Box<Stored>),
}

/// Iceberg's decimal limit.
pub const MAX_DECIMAL_PRECISION: u32 = 38;

impl Stored {
    /// The Iceberg type; list elements get `next_id` and up.
    pub fn to_iceberg(&self, next_id: &mut i32) -> Type {
        use PrimitiveType as P;
        let p = match self {
            Stored::Boolean => P::Boolean,
            Stored::Int => P::Int,
            Stored::Long => P::Long,
            Stored::Float => P::Float,
            Stored::Double => P::Double,
            Stored::Decimal { precision, scale } => P::Decimal {
                precision: *precision,
                scale: *scale,
            },
            Stored::String => P::String,
            Stored::Binary => P::Binary,
            Stored::Date => P::Date,
            Stored::Time => P::Time,
            Stored::Timestamp => P::Timestamp,
            Stored::Timestamptz => P::Timestamptz,
            Stored::List(inner) => {
                let id = *next_id;
                *next_id += 1;
                let element = inner.to_iceberg(next_id);
                return Type::List(ListType::new(
                    NestedField::list_element(id, element, false).into(),
                ));
            }
        };
        Type::Primitive(p)
    }

    /// The stored type of an Iceberg type, if silver can write it.
    pub fn from_iceberg(t: &Type) -> Option<Stored> {
        use PrimitiveType as P;
        Some(match t {
            Type::Primitive(p) => match p {
                P::Boolean => Stored::Boolean,
                P::Int => Stored::Int,
                P::Long => Stored::Long,
                P::Float => Stored::Float,
                P::Double => Stored::Double,
                P::Decimal { precision, scale } => Stored::Decimal {
                    precision: *precision,
                    scale: *scale,
                },
                P::String => Stored::String,
                P::Binary => Stored::Binary,
                P::Date => Stored::Date,
                P::Time => Stored::Time,
                P::Timestamp => Stored::Timestamp,
                P::Timestamptz => Stored::Timestamptz,
                _ => return None,
            },
            Type::List(l) => {
                Stored::List(Box::new(Stored::from_iceberg(&l.element_field.field_type)?))
            }
            _ => return None,
        })
    }

    /// Whether values of `self` can be kept in a column of type `to` without change (Iceberg's
    /// allowed promotions, plus equality).
    pub fn widens_to(&self, to: &Stored) -> bool {
        match (self, to) {
            (a, b) if a == b => true,
            (Stored::Int, Stored::Long) | (Stored::Float, Stored::Double) => true,
            (
                Stored::Decimal {
                    precision: p1,
                    scale: s1,
                },
                Stored::Decimal {
                    precision: p2,
                    scale: s2,
                },
            ) => s1 == s2 && p1 <= p2,
            _ => false,
        }
    }
}

impl fmt::Display for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stored::Boolean => f.write_str("boolean"),
            Stored::Int => f.write_str("int"),
            Stored::Long => f.write_str("long"),
            Stored::Float => f.write_str("float"),
            Stored::Double => f.write_str("double"),
            Stored::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            Stored::String => f.write_str("string"),
            Stored::Binary => f.write_str("binary"),
            Stored::Date => f.write_str("date"),
            Stored::Time => f.write_str("time"),
            Stored::Timestamp => f.write_str("timestamp"),
            Stored::Timestamptz => f.write_str("timestamptz"),
            Stored::List(e) => write!(f, "list<{e}>"),
        }
    }
}

/// A column type named in the configuration (`[silver.tables.T.columns]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfiguredType {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    /// `decimal(p,s)`.
    Decimal {
        precision: u32,
        scale: u32,
    },
    /// `decimal`: any scale, stored as exact text.
    VariableDecimal,
    String,
    Json,
    Uuid,
    Binary,
    Date,
    Time,
    Timestamp,
    Timestamptz,
}

/// How schema-less decimals are encoded: Debezium's `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DecimalHandling {
    #[default]
    Precise,
    String,
    Double,
}

impl ConfiguredType {
    pub const NAMES: &'static str = "boolean, int, long, float, double, decimal(P,S), decimal, string, json, uuid, binary, date, time, timestamp, timestamptz";

    pub fn parse(s: &str) -> Result<ConfiguredType, String> {
        let t = s.trim().to_ascii_lowercase().replace(' ', "");
        Ok(match t.as_str() {
            "boolean" | "bool" => ConfiguredType::Boolean,
            "int" | "integer" | "int32" => ConfiguredType::Int,
            "long" | "bigint" | "int64" => ConfiguredType::Long,
            "float" | "real" | "float32" => ConfiguredType::Float,
            "double" | "float64" => ConfiguredType::Double,
            "decimal" | "numeric" => ConfiguredType::VariableDecimal,
            "string" | "text" => ConfiguredType::String,
            "json" | "jsonb" => ConfiguredType::Json,
            "uuid" => ConfiguredType::Uuid,
            "binary" | "bytes" => ConfiguredType::Binary,
            "date" => ConfiguredType::Date,
            "time" => ConfiguredType::Time,
            "timestamp" => ConfiguredType::Timestamp,
            "timestamptz" => ConfiguredType::Timestamptz,
            _ => {
                let inner = t
                    .strip_prefix("decimal(")
                    .or_else(|| t.strip_prefix("numeric("))
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| {
                        format!("'{s}' is not a column type; use one of {}", Self::NAMES)
                    })?;
                let (p, sc) = inner
                    .split_once(',')
                    .ok_or_else(|| format!("'{s}': write decimal(PRECISION,SCALE)"))?;
                let precision: u32 = p
                    .parse()
                    .map_err(|_| format!("'{s}': precision '{p}' is not a number"))?;
                let scale: u32 = sc
                    .parse()
                    .map_err(|_| format!("'{s}': scale '{sc}' is not a number"))?;
                if precision == 0 || precision > MAX_DECIMAL_PRECISION || scale > precision {
                    return Err(format!(
                        "'{s}': need 1 <= precision <= {MAX_DECIMAL_PRECISION} and scale <= precision (use `decimal` for wider values: stored as exact text)"
                    ));
                }
                ConfiguredType::Decimal { precision, scale }
            }
        })
    }

    /// The stored type.
    pub fn stored(&self) -> Stored {
        match self {
            ConfiguredType::Boolean => Stored::Boolean,
            ConfiguredType::Int => Stored::Int,
            ConfiguredType::Long => Stored::Long,
            ConfiguredType::Float => Stored::Float,
            ConfiguredType::Double => Stored::Double,
            ConfiguredType::Decimal { precision, scale } => Stored::Decimal {
                precision: *precision,
                scale: *scale,
            },
            ConfiguredType::VariableDecimal
            | ConfiguredType::String
            | ConfiguredType::Json
            | ConfiguredType::Uuid => Stored::String,
            ConfiguredType::Binary => Stored::Binary,
            ConfiguredType::Date => Stored::Date,
            ConfiguredType::Time => Stored::Time,
            ConfiguredType::Timestamp => Stored::Timestamp,
            ConfiguredType::Timestamptz => Stored::Timestamptz,
        }
    }

    /// How the value is read, given what the record's schema says (if anything). A schema's
    /// specific logical type wins; a plain string, number or bytes is read as configured.
    pub fn logical(&self, from_schema: Option<&Logical>, decimals: DecimalHandling) -> Logical {
        let plain_schema = matches!(
            from_schema,
            None | Some(Logical::String)
                | Some(Logical::Bytes)
                | Some(Logical::Int32)
                | Some(Logical::Int64)
                | Some(Logical::Float64)
                | Some(Logical::Float32)
        );
        if !plain_schema && let Some(l) = from_schema {
            return l.clone();
        }
        let decimal = |scale: Option<u32>| match (from_schema, decimals, scale) {
            (Some(Logical::String) | Some(Logical::Float64) | Some(Logical::Float32), _, _) => {
                Logical::DecimalText
            }
            (Some(Logical::Bytes), _, Some(s)) => Logical::Decimal { scale: s as i32 },
            (None, DecimalHandling::Precise, Some(s)) => Logical::Decimal { scale: s as i32 },
            (None, DecimalHandling::Precise, None) => Logical::VariableDecimal,
            _ => Logical::DecimalText,
        };
        match self {
            ConfiguredType::Boolean => Logical::Boolean,
            ConfiguredType::Int => Logical::Int32,
            ConfiguredType::Long => Logical::Int64,
            ConfiguredType::Float => Logical::Float32,
            ConfiguredType::Double => Logical::Float64,
            ConfiguredType::Decimal { scale, .. } => decimal(Some(*scale)),
            ConfiguredType::VariableDecimal => decimal(None),
            ConfiguredType::String | ConfiguredType::Uuid => Logical::String,
            ConfiguredType::Json => Logical::Json,
            ConfiguredType::Binary => Logical::Bytes,
            ConfiguredType::Date => Logical::Date,
            ConfiguredType::Time => Logical::TimeMicros,
            ConfiguredType::Timestamp => Logical::TimestampMicros,
            ConfiguredType::Timestamptz => Logical::ZonedTimestamp,
        }
    }
}

/// A field schema of a Connect struct (`{"type", "optional", "name", "parameters", "default",
/// "field", "items", "fields"}`).
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectSchema {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub parameters: Option<std::collections::HashMap<String, String>>,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub items: Option<Box<ConnectSchema>>,
    #[serde(default)]
    pub fields: Option<Vec<ConnectSchema>>,
}

impl ConnectSchema {
    /// The logical type and the closest stored type of a Connect field.
    pub fn types(&self) -> Result<(Logical, Stored), String> {
        let param = |k: &str| self.parameters.as_ref().and_then(|p| p.get(k));
        if let Some(name) = &self.name {
            let t = match name.as_str() {
                "org.apache.kafka.connect.data.Decimal" => {
                    let scale: i32 =
                        param("scale").and_then(|s| s.parse().ok()).ok_or_else(|| {
                            format!("Decimal field without a scale parameter: {self:?}")
                        })?;
                    let precision: Option<u32> =
                        param("connect.decimal.precision").and_then(|p| p.parse().ok());
                    let stored = match precision {
                        _ if scale < 0 || scale as u32 > MAX_DECIMAL_PRECISION => Stored::String,
                        Some(p) if p > MAX_DECIMAL_PRECISION => Stored::String,
                        Some(p) => Stored::Decimal {
                            precision: p.max(scale as u32),
                            scale: scale as u32,
                        },
                        None => Stored::Decimal {
                            precision: MAX_DECIMAL_PRECISION,
                            scale: scale as u32,
                        },
                    };
                    Some((Logical::Decimal { scale }, stored))
                }
                "io.debezium.data.VariableScaleDecimal" => {
                    Some((Logical::VariableDecimal, Stored::String))
                }
                "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date" => {
                    Some((Logical::Date, Stored::Date))
                }
                // Times are stored as text `HH:MM:SS.ffffff`: Iceberg's time cannot hold
                // PostgreSQL's 24:00:00 and Athena cannot read Iceberg time columns. Configure
                // `type = "time"` for Iceberg time.
                "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time" => {
                    Some((Logical::TimeMillis, Stored::String))
                }
                "io.debezium.time.MicroTime" => Some((Logical::TimeMicros, Stored::String)),
                "io.debezium.time.NanoTime" => Some((Logical::TimeNanos, Stored::String)),
                "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp" => {
                    Some((Logical::TimestampMillis, Stored::Timestamp))
                }
                "io.debezium.time.MicroTimestamp" => {
                    Some((Logical::TimestampMicros, Stored::Timestamp))
                }
                "io.debezium.time.NanoTimestamp" => {
                    Some((Logical::TimestampNanos, Stored::Timestamp))
                }
                "io.debezium.time.ZonedTimestamp" => {
                    Some((Logical::ZonedTimestamp, Stored::Timestamptz))
                }
                "io.debezium.time.ZonedTime" => Some((Logical::ZonedTime, Stored::String)),
                "io.debezium.time.MicroDuration" => Some((Logical::DurationMicros, Stored::Long)),
                "io.debezium.data.Json" => Some((Logical::Json, Stored::String)),
                "io.debezium.data.Bits" if self.kind == "bytes" => {
                    Some((Logical::Bytes, Stored::Binary))
                }
                // Uuid, Enum, EnumSet, Interval (string mode), Xml, Ltree, geometry as text...:
                // the primitive type below says it.
                _ => None,
            };
            if let Some(t) = t {
                return Ok(t);
            }
        }
        Ok(match self.kind.as_str() {
            "boolean" => (Logical::Boolean, Stored::Boolean),
            "int8" | "int16" | "int32" => (Logical::Int32, Stored::Int),
            "int64" => (Logical::Int64, Stored::Long),
            "float" | "float32" => (Logical::Float32, Stored::Float),
            "double" | "float64" => (Logical::Float64, Stored::Double),
            "string" => (Logical::String, Stored::String),
            "bytes" => (Logical::Bytes, Stored::Binary),
            "array" => {
                let items = self
                    .items
                    .as_ref()
                    .ok_or_else(|| "array field without items".to_string())?;
                let (l, s) = items.types()?;
                (Logical::List(Box::new(l)), Stored::List(Box::new(s)))
            }
            // Structs and maps (e.g. geometry) are kept as JSON text.
            "struct" | "map" => (Logical::Json, Stored::String),
            other => return Err(format!("unknown Connect type '{other}'")),
        })
    }
}

/// The logical and stored type of a schema-less value seen for the first time, or `None` for a
/// JSON null (the column waits for a value that says more).
pub fn infer(raw: &str) -> Option<(Logical, Stored)> {
    let t = raw.trim_start();
    Some(match t.as_bytes().first()? {
        b'n' => return None,
        b't' | b'f' => (Logical::Boolean, Stored::Boolean),
        b'"' => (Logical::String, Stored::String),
        b'{' => (Logical::Json, Stored::String),
        b'[' => {
            // A list of the first non-null element's type; of strings when nothing says more.
            let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(t).ok()?;
            let (l, s) = items
                .iter()
                .find_map(|i| infer(i.get()))
                .unwrap_or((Logical::String, Stored::String));
            (Logical::List(Box::new(l)), Stored::List(Box::new(s)))
        }
        _ if t.contains(['.', 'e', 'E']) => (Logical::Float64, Stored::Double),
        _ => (Logical::Int64, Stored::Long),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_types() {
        assert_eq!(
            ConfiguredType::parse("decimal(10, 2)").unwrap(),
            ConfiguredType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert!(ConfiguredType::parse("decimal(40,2)").is_err());
        assert!(ConfiguredType::parse("varchar").is_err());
        let dec = ConfiguredType::parse("decimal(10,2)").unwrap();
        assert_eq!(
            dec.logical(None, DecimalHandling::Precise),
            Logical::Decimal { scale: 2 }
        );
        assert_eq!(
            dec.logical(Some(&Logical::String), DecimalHandling::Precise),
            Logical::DecimalText
        );
        assert_eq!(
            ConfiguredType::Json.logical(Some(&Logical::String), DecimalHandling::Precise),
            Logical::Json
        );
        // A specific logical type in the schema wins over the configuration.
        assert_eq!(
            ConfiguredType::Timestamp
                .logical(Some(&Logical::TimestampMillis), DecimalHandling::Precise),
            Logical::TimestampMillis
        );
    }

    #[test]
    fn connect_types() {
        let f: ConnectSchema = serde_json::from_str(
            r#"{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"10","connect.decimal.precision":"38"},"field":"c"}"#,
        )
        .unwrap();
        assert_eq!(
            f.types().unwrap(),
            (
                Logical::Decimal { scale: 10 },
                Stored::Decimal {
                    precision: 38,
                    scale: 10
                }
            )
        );
        let f: ConnectSchema = serde_json::from_str(
            r#"{"type":"array","optional":true,"items":{"type":"int32","optional":true},"field":"a"}"#,
        )
        .unwrap();
        assert_eq!(
            f.types().unwrap(),
            (
                Logical::List(Box::new(Logical::Int32)),
                Stored::List(Box::new(Stored::Int))
            )
        );
    }

    #[test]
    fn inference() {
        assert_eq!(infer("12").unwrap().1, Stored::Long);
        assert_eq!(infer("1.5").unwrap().1, Stored::Double);
        assert_eq!(infer("\"x\"").unwrap().1, Stored::String);
        assert_eq!(infer("{\"a\":1}").unwrap().0, Logical::Json);
        assert_eq!(
            infer("[null, 2]").unwrap().1,
            Stored::List(Box::new(Stored::Long))
        );
        assert_eq!(
            infer("[]").unwrap().1,
            Stored::List(Box::new(Stored::String))
        );
        assert!(infer("null").is_none());
    }
}
