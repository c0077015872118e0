//! A silver table's columns: the source table's columns (key first in the key's order is not
//! required: the source order is kept), each with how it is read, how it is stored and its
//! default, then medallion's own columns (`_op`, the source position, `_updated_at`, the Kafka
//! coordinates, `_dq_issues`).
//!
//! The decoding of each column is pinned in the table's properties (`medallion.columns`), so a
//! later run reads schema-less values exactly as the first one did. Columns are added (never
//! removed) as the source schema grows; Iceberg's widening promotions are applied.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use iceberg::spec::{NestedField, PrimitiveType, Schema, StructType, Type};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::decode::{Cell, decode};
use super::types::{ConfiguredType, ConnectSchema, DecimalHandling, Logical, Stored, infer};
use crate::config::SilverTableConfig;

pub const COLUMNS_PROPERTY: &str = "medallion.columns";
pub const KEY_PROPERTY: &str = "medallion.key";
pub const SOURCE_PROPERTY: &str = "medallion.source";
/// The ids of the history table's own columns (`valid_from`, …), reserved in the silver table's
/// id space so that no silver column ever takes one.
pub const HISTORY_IDS_PROPERTY: &str = "medallion.history_ids";

/// Which source position columns a table has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Postgres,
    Mysql,
    Other,
}

impl SourceKind {
    pub fn from_connector(c: Option<&str>) -> SourceKind {
        match c {
            Some("postgresql") => SourceKind::Postgres,
            Some("mysql") | Some("mariadb") => SourceKind::Mysql,
            _ => SourceKind::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Postgres => "postgres",
            SourceKind::Mysql => "mysql",
            SourceKind::Other => "other",
        }
    }
}

/// medallion's columns after the source's.
pub const META_OP: &str = "_op";
pub const META_LSN: &str = "_source_lsn";
pub const META_BINLOG_FILE: &str = "_binlog_file";
pub const META_BINLOG_POS: &str = "_binlog_pos";
pub const META_BINLOG_ROW: &str = "_binlog_row";
pub const META_UPDATED_AT: &str = "_updated_at";
pub const META_PARTITION: &str = "_kafka_partition";
pub const META_OFFSET: &str = "_kafka_offset";
pub const META_ISSUES: &str = "_dq_issues";
/// The names of the `warn` expectations the row failed.
pub const META_FAILED: &str = "_dq_failed";
/// No `warn` expectation failed and no cell was flagged.
pub const META_OK: &str = "_dq_ok";
/// medallion's columns that say how far a row's key history goes.
pub const POSITION_COLUMNS: [&str; 8] = [
    META_OP,
    META_LSN,
    META_BINLOG_FILE,
    META_BINLOG_POS,
    META_BINLOG_ROW,
    META_UPDATED_AT,
    META_PARTITION,
    META_OFFSET,
];

/// One of medallion's columns (a source column may start with `_` too).
pub fn is_meta(name: &str) -> bool {
    POSITION_COLUMNS.contains(&name) || [META_ISSUES, META_FAILED, META_OK].contains(&name)
}

/// One source column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(skip)]
    pub id: i32,
    pub logical: Logical,
    #[serde(skip, default = "placeholder_stored")]
    pub stored: Stored,
    /// The default as Debezium sends it (decoded like a value); fills an absent field.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// The Iceberg type as the table has it (keeps nested ids).
    #[serde(skip)]
    pub iceberg: Option<Type>,
}

fn placeholder_stored() -> Stored {
    Stored::String
}

/// The columns of one silver table.
#[derive(Debug, Clone)]
pub struct Columns {
    pub source: SourceKind,
    pub columns: Vec<Column>,
    /// Names of the key columns, in the key's order.
    pub key: Vec<String>,
    /// Ids of medallion's own columns, by name.
    pub meta_ids: HashMap<String, i32>,
    /// Ids of the history table's own columns, by name (see [`HISTORY_IDS_PROPERTY`]).
    pub history_ids: BTreeMap<String, i32>,
    pub last_id: i32,
}

/// What a run changed in the columns.
#[derive(Debug, Default)]
pub struct Evolution {
    /// Columns added by this run with a non-null default: rows already in the table must be
    /// rewritten with it.
    pub filled: Vec<String>,
    pub added: Vec<String>,
    pub widened: Vec<String>,
}

impl Evolution {
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.widened.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ColumnError {
    #[error("column {column} changed type from {from} to {to}, which Iceberg cannot widen")]
    Incompatible {
        column: String,
        from: Stored,
        to: Stored,
    },
    #[error("{0}")]
    Schema(String),
}

impl Columns {
    /// The columns of an existing table, from its schema and properties.
    pub fn from_table(
        schema: &Schema,
        props: &HashMap<String, String>,
        last_column_id: i32,
    ) -> Result<Columns, ColumnError> {
        let pinned: Vec<Column> = props
            .get(COLUMNS_PROPERTY)
            .map(|s| serde_json::from_str(s))
            .transpose()
            .map_err(|e| ColumnError::Schema(format!("{COLUMNS_PROPERTY} is unreadable: {e}")))?
            .unwrap_or_default();
        let key: Vec<String> = props
            .get(KEY_PROPERTY)
            .map(|s| serde_json::from_str(s))
            .transpose()
            .map_err(|e| ColumnError::Schema(format!("{KEY_PROPERTY} is unreadable: {e}")))?
            .unwrap_or_default();
        let history_ids: BTreeMap<String, i32> = props
            .get(HISTORY_IDS_PROPERTY)
            .map(|s| serde_json::from_str(s))
            .transpose()
            .map_err(|e| ColumnError::Schema(format!("{HISTORY_IDS_PROPERTY} is unreadable: {e}")))?
            .unwrap_or_default();
        let source = props
            .get(SOURCE_PROPERTY)
            .and_then(|s| serde_json::from_value(serde_json::Value::String(s.clone())).ok())
            .unwrap_or(SourceKind::Other);
        let mut columns = Vec::new();
        let mut meta_ids = HashMap::new();
        for f in schema.as_struct().fields() {
            if is_meta(&f.name) {
                meta_ids.insert(f.name.clone(), f.id);
                continue;
            }
            let stored = Stored::from_iceberg(&f.field_type).ok_or_else(|| {
                ColumnError::Schema(format!(
                    "column {} has type {}, which silver does not write",
                    f.name, f.field_type
                ))
            })?;
            let pin = pinned.iter().find(|c| c.name == f.name).ok_or_else(|| {
                ColumnError::Schema(format!(
                    "column {} is not in {COLUMNS_PROPERTY}: was the table changed by another tool?",
                    f.name
                ))
            })?;
            columns.push(Column {
                name: f.name.clone(),
                id: f.id,
                logical: pin.logical.clone(),
                stored,
                default: pin.default.clone(),
                iceberg: Some(f.field_type.as_ref().clone()),
            });
        }
        Ok(Columns {
            source,
            columns,
            key,
            meta_ids,
            last_id: schema
                .highest_field_id()
                .max(last_column_id)
                .max(history_ids.values().copied().max().unwrap_or(0)),
            history_ids,
        })
    }

    /// The columns of an existing silver table.
    pub fn of_table(table: &crate::lake::LakeTable) -> Result<Columns, ColumnError> {
        let m = table.metadata();
        Columns::from_table(m.current_schema(), m.properties(), m.last_column_id())
    }

    /// No columns yet: a table about to be created.
    pub fn new(source: SourceKind) -> Columns {
        Columns {
            source,
            columns: Vec::new(),
            key: Vec::new(),
            meta_ids: HashMap::new(),
            history_ids: BTreeMap::new(),
            last_id: 0,
        }
    }

    /// Takes the id a history table already gives one of its own columns: it stays reserved.
    pub fn reserve_history_id(&mut self, name: &str, id: i32) {
        self.history_ids.insert(name.to_string(), id);
        self.last_id = self.last_id.max(id);
    }

    /// The id of a history table's own column, reserved now if it has none yet (after
    /// [`Columns::schema`], so that it comes after every silver column).
    pub fn history_id(&mut self, name: &str) -> i32 {
        if let Some(id) = self.history_ids.get(name) {
            return *id;
        }
        let id = self.next_id();
        self.history_ids.insert(name.to_string(), id);
        id
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn key_indices(&self) -> Vec<usize> {
        self.key
            .iter()
            .map(|k| self.index(k).expect("key columns are columns"))
            .collect()
    }

    fn next_id(&mut self) -> i32 {
        self.last_id += 1;
        self.last_id
    }

    /// Adds or updates a column; returns whether the schema changed.
    fn upsert(
        &mut self,
        name: &str,
        logical: Logical,
        stored: Stored,
        default: Option<serde_json::Value>,
        evolution: &mut Evolution,
        has_rows: bool,
    ) -> Result<(), ColumnError> {
        if let Some(i) = self.index(name) {
            let c = &mut self.columns[i];
            if c.stored != stored {
                if c.stored.widens_to(&stored) {
                    evolution.widened.push(name.to_string());
                    c.stored = stored;
                } else if stored.widens_to(&c.stored) {
                    // Narrower values still fit the wider column.
                } else {
                    return Err(ColumnError::Incompatible {
                        column: name.to_string(),
                        from: c.stored.clone(),
                        to: stored,
                    });
                }
            }
            c.logical = logical;
            if default.is_some() {
                c.default = default;
            }
            return Ok(());
        }
        let id = self.next_id();
        if has_rows && default.as_ref().is_some_and(|d| !d.is_null()) {
            evolution.filled.push(name.to_string());
        }
        evolution.added.push(name.to_string());
        self.columns.push(Column {
            name: name.to_string(),
            id,
            logical,
            stored,
            default,
            iceberg: None,
        });
        Ok(())
    }

    /// Takes in the newest value schema's `after` fields (with schemas): types from the schema,
    /// refined by configuration; defaults from the schema.
    pub fn apply_schema(
        &mut self,
        fields: &[ConnectSchema],
        config: Option<&SilverTableConfig>,
        decimals: DecimalHandling,
        has_rows: bool,
        evolution: &mut Evolution,
    ) -> Result<(), ColumnError> {
        for f in fields {
            let name = f
                .field
                .clone()
                .ok_or_else(|| ColumnError::Schema("a field without a name".into()))?;
            let (mut logical, mut stored) = f
                .types()
                .map_err(|e| ColumnError::Schema(format!("column {name}: {e}")))?;
            let cfg = config.and_then(|c| c.columns.get(&name));
            if let Some(ty) = cfg.and_then(|c| c.type_name()) {
                let t = ConfiguredType::parse(ty).map_err(ColumnError::Schema)?;
                logical = t.logical(Some(&logical), decimals);
                stored = t.stored();
            }
            let default = f
                .default
                .clone()
                .or_else(|| cfg.and_then(|c| c.default_json()));
            self.upsert(&name, logical, stored, default, evolution, has_rows)?;
        }
        Ok(())
    }

    /// Learns schema-less columns from row images: configured types first, else inferred from
    /// the first non-null value. Columns seen only as null wait.
    pub fn learn(
        &mut self,
        image: &[(Cow<'_, str>, &RawValue)],
        config: Option<&SilverTableConfig>,
        decimals: DecimalHandling,
        has_rows: bool,
        evolution: &mut Evolution,
    ) -> Result<(), ColumnError> {
        for (name, raw) in image {
            if self.index(name).is_some() {
                continue;
            }
            let cfg = config.and_then(|c| c.columns.get(name.as_ref()));
            let default = cfg.and_then(|c| c.default_json());
            let types = match cfg.and_then(|c| c.type_name()) {
                Some(ty) => {
                    let t = ConfiguredType::parse(ty).map_err(ColumnError::Schema)?;
                    Some((t.logical(None, decimals), t.stored()))
                }
                None => infer(raw.get()),
            };
            if let Some((logical, stored)) = types {
                self.upsert(name, logical, stored, default, evolution, has_rows)?;
            }
        }
        Ok(())
    }

    /// Sets the key columns (once), learning any the images did not show.
    pub fn set_key(&mut self, names: &[String]) -> Result<(), ColumnError> {
        if self.key.is_empty() {
            self.key = names.to_vec();
        } else if self.key != names {
            return Err(ColumnError::Schema(format!(
                "the primary key changed from ({}) to ({}); silver keeps one key per table: rebuild it",
                self.key.join(", "),
                names.join(", ")
            )));
        }
        for k in names {
            if self.index(k).is_none() {
                return Err(ColumnError::Schema(format!(
                    "key column {k} has no type yet (no row image showed it); configure it in silver.tables"
                )));
            }
        }
        Ok(())
    }

    /// The Iceberg schema: source columns, then medallion's. Ids of new columns are assigned
    /// here, above every id the table used.
    pub fn schema(&mut self) -> Result<Schema, ColumnError> {
        let mut fields: Vec<NestedField> = Vec::new();
        let mut next = self.last_id + 1;
        for c in &mut self.columns {
            let ty = match &c.iceberg {
                Some(t) if Stored::from_iceberg(t).as_ref() == Some(&c.stored) => t.clone(),
                _ => c.stored.to_iceberg(&mut next),
            };
            c.iceberg = Some(ty.clone());
            let f = if self.key.contains(&c.name) {
                NestedField::required(c.id, &c.name, ty)
            } else {
                NestedField::optional(c.id, &c.name, ty)
            };
            fields.push(f);
        }
        let mut meta: Vec<(&str, Type)> = vec![(META_OP, p(PrimitiveType::String))];
        match self.source {
            SourceKind::Postgres => meta.push((META_LSN, p(PrimitiveType::Long))),
            SourceKind::Mysql => {
                meta.push((META_BINLOG_FILE, p(PrimitiveType::String)));
                meta.push((META_BINLOG_POS, p(PrimitiveType::Long)));
                meta.push((META_BINLOG_ROW, p(PrimitiveType::Int)));
            }
            SourceKind::Other => {}
        }
        meta.push((META_UPDATED_AT, p(PrimitiveType::Timestamptz)));
        meta.push((META_PARTITION, p(PrimitiveType::Int)));
        meta.push((META_OFFSET, p(PrimitiveType::Long)));
        // Existing ids are kept; new ones come after every id the table used (`width`: the
        // column's own id and its nested ones).
        let mut meta_id = |name: &str, width: i32| match self.meta_ids.get(name) {
            Some(id) => *id,
            None => {
                let id = next;
                next += width;
                self.meta_ids.insert(name.to_string(), id);
                id
            }
        };
        for (name, ty) in meta {
            fields.push(NestedField::optional(meta_id(name, 1), name, ty));
        }
        // _dq_issues: list<struct<column, reason, raw>>
        let issues_id = meta_id(META_ISSUES, 5);
        let element = Type::Struct(StructType::new(vec![
            NestedField::required(issues_id + 2, "column", p(PrimitiveType::String)).into(),
            NestedField::required(issues_id + 3, "reason", p(PrimitiveType::String)).into(),
            NestedField::optional(issues_id + 4, "raw", p(PrimitiveType::String)).into(),
        ]));
        fields.push(NestedField::optional(
            issues_id,
            META_ISSUES,
            Type::List(iceberg::spec::ListType::new(
                NestedField::list_element(issues_id + 1, element, true).into(),
            )),
        ));
        // _dq_failed: list<string>
        let failed_id = meta_id(META_FAILED, 2);
        fields.push(NestedField::optional(
            failed_id,
            META_FAILED,
            Type::List(iceberg::spec::ListType::new(
                NestedField::list_element(failed_id + 1, p(PrimitiveType::String), true).into(),
            )),
        ));
        let ok_id = meta_id(META_OK, 1);
        fields.push(NestedField::optional(
            ok_id,
            META_OK,
            p(PrimitiveType::Boolean),
        ));
        self.last_id = self.last_id.max(next - 1);
        let key_ids: Vec<i32> = self
            .key
            .iter()
            .filter_map(|k| self.columns.iter().find(|c| &c.name == k).map(|c| c.id))
            .collect();
        Schema::builder()
            .with_fields(fields.into_iter().map(Arc::new))
            .with_identifier_field_ids(key_ids)
            .build()
            .map_err(|e| ColumnError::Schema(format!("cannot build the schema: {e}")))
    }

    /// Each column's default, decoded like a value: `Ok(Null)` where there is none, `Err` with
    /// the reason where the default does not fit the column.
    pub fn defaults(&self) -> Vec<Result<Cell, String>> {
        self.columns
            .iter()
            .map(|c| match &c.default {
                Some(d) if !d.is_null() => {
                    let text = d.to_string();
                    let misfit = || {
                        format!(
                            "column {}: the default {text} does not fit {}",
                            c.name, c.stored
                        )
                    };
                    let raw = RawValue::from_string(text.clone()).map_err(|_| misfit())?;
                    decode(&raw, &c.logical, &c.stored).map_err(|_| misfit())
                }
                _ => Ok(Cell::Null),
            })
            .collect()
    }

    /// The table properties that pin the decoding.
    pub fn properties(&self) -> HashMap<String, String> {
        let mut p = HashMap::from([
            (
                COLUMNS_PROPERTY.to_string(),
                serde_json::to_string(&self.columns).expect("columns serialize"),
            ),
            (
                KEY_PROPERTY.to_string(),
                serde_json::to_string(&self.key).expect("key serializes"),
            ),
            (
                SOURCE_PROPERTY.to_string(),
                self.source.as_str().to_string(),
            ),
            ("medallion.layer".to_string(), "silver".to_string()),
        ]);
        if !self.history_ids.is_empty() {
            p.insert(
                HISTORY_IDS_PROPERTY.to_string(),
                serde_json::to_string(&self.history_ids).expect("ids serialize"),
            );
        }
        p
    }
}

fn p(t: PrimitiveType) -> Type {
    Type::Primitive(t)
}

/// The fields of a JSON object in order, values unparsed.
pub fn object_fields(text: &str) -> Result<Vec<(Cow<'_, str>, &RawValue)>, String> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = m.next_entry::<Key<'de>, &'de RawValue>()? {
                out.push((k.0, v));
            }
            Ok(out)
        }
    }
    #[derive(Deserialize)]
    struct Key<'a>(#[serde(borrow)] Cow<'a, str>);
    use serde::Deserializer;
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(V).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_fields_keep_order() {
        let f = object_fields(r#"{"b":1,"a":"x","c":null}"#).unwrap();
        let names: Vec<&str> = f.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert_eq!(f[1].1.get(), "\"x\"");
    }

    #[test]
    fn schema_round_trip() {
        let mut cols = Columns::new(SourceKind::Postgres);
        let mut ev = Evolution::default();
        let fields: Vec<ConnectSchema> = serde_json::from_str(
            r#"[{"type":"int32","optional":false,"field":"id"},{"type":"string","optional":true,"field":"name"},{"type":"int32","optional":true,"default":0,"field":"points"}]"#,
        )
        .unwrap();
        cols.apply_schema(&fields, None, DecimalHandling::Precise, false, &mut ev)
            .unwrap();
        cols.set_key(&["id".to_string()]).unwrap();
        let schema = cols.schema().unwrap();
        let back = Columns::from_table(&schema, &cols.properties(), 0).unwrap();
        assert_eq!(back.columns, cols.columns);
        assert_eq!(back.key, ["id"]);
        assert_eq!(back.meta_ids, cols.meta_ids);
        // A later int64 for points widens it; a string does not fit.
        let mut cols = back;
        let mut ev = Evolution::default();
        let wider: Vec<ConnectSchema> =
            serde_json::from_str(r#"[{"type":"int64","optional":true,"field":"points"},{"type":"boolean","optional":true,"default":false,"field":"vip"}]"#)
                .unwrap();
        cols.apply_schema(&wider, None, DecimalHandling::Precise, true, &mut ev)
            .unwrap();
        assert_eq!(ev.widened, ["points"]);
        assert_eq!(ev.filled, ["vip"]);
        let s2 = cols.schema().unwrap();
        assert!(s2.highest_field_id() > schema.highest_field_id());
        let bad: Vec<ConnectSchema> =
            serde_json::from_str(r#"[{"type":"string","optional":true,"field":"points"}]"#)
                .unwrap();
        assert!(
            cols.apply_schema(&bad, None, DecimalHandling::Precise, true, &mut ev)
                .is_err()
        );
    }
}
