//! From the events of a run to one outcome per key: the row it now has (or that it was
//! deleted), decoded to typed cells.
//!
//! Events are applied per key in source order ([`super::changes::Order`]); events before a
//! truncate are gone. A TOAST placeholder keeps the value the key had before; it is left
//! pending here and resolved once the state scan says which of the run's versions silver
//! already has: from the key's previous version in the run that silver does not have yet, else
//! from the row in silver, else it is lost (null plus a data-quality flag). A field absent from an image (written before an
//! `ALTER TABLE … ADD COLUMN`) gets the column's default. A value that does not fit its column
//! sends the event to quarantine; the key keeps its previous state.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::changes::{Changes, Event, KeyEvents};
use super::columns::{ColumnError, Columns, Evolution, object_fields};
use super::decode::{Cell, Issue, TOAST_PLACEHOLDER_JSON, decode};
use super::types::{ConnectSchema, DecimalHandling};
use crate::config::{NewColumns, SilverTableConfig};
use crate::source::debezium::Op;

/// A parsed `after` image, or why it could not be parsed.
type Image<'a> = Result<Vec<(Cow<'a, str>, &'a RawValue)>, String>;

/// A data-quality note on one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DqIssue {
    pub column: String,
    pub reason: String,
    pub raw: Option<String>,
}

/// The state a key ends the run in.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub key_text: Arc<str>,
    /// Typed key values, in the key's column order.
    pub key: Vec<Cell>,
    /// The last event applied (without its raw value): its position and op go in the row.
    pub event: Event,
    /// `None`: the key was deleted (a tombstone row records the delete position).
    pub row: Option<NewRow>,
    /// The key's versions before this one, in source order, where the run read them (a table
    /// that keeps its history, or a TOAST placeholder to resolve).
    pub earlier: Vec<Version>,
}

/// A version of a key: the event that made it, and the row it gave (`None`: a delete).
#[derive(Debug, Clone)]
pub struct Version {
    pub event: Event,
    pub row: Option<NewRow>,
}

#[derive(Debug, Clone)]
pub struct NewRow {
    /// One per column; `None`: a TOAST placeholder, whose value is the key's previous one.
    pub cells: Vec<Option<Cell>>,
    pub issues: Vec<DqIssue>,
}

impl NewRow {
    pub fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        self.cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_none())
            .map(|(i, _)| i)
    }
}

/// Built-in checks (no configuration): a change that fails one goes to quarantine.
pub const CHECK_KEY_NOT_NULL: &str = "_key_not_null";
pub const CHECK_FITS_TYPE: &str = "_fits_type";
pub const CHECK_DECODES: &str = "_decodes";
pub const BUILTIN_CHECKS: [&str; 3] = [CHECK_KEY_NOT_NULL, CHECK_FITS_TYPE, CHECK_DECODES];

/// An event held back, with the reason.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub key_text: Arc<str>,
    pub event: Event,
    pub reason: String,
    /// The checks it failed: a built-in one, or the names of expectations.
    pub checks: Vec<String>,
    /// The decoded row as JSON, when it was decoded (an expectation held it back).
    pub row: Option<String>,
}

impl Quarantined {
    fn builtin(key_text: &Arc<str>, event: &Event, check: &str, reason: String) -> Quarantined {
        Quarantined {
            key_text: key_text.clone(),
            event: event.clone(),
            reason,
            checks: vec![check.to_string()],
            row: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Plan {
    pub outcomes: Vec<Outcome>,
    pub quarantined: Vec<Quarantined>,
    pub evolution: Evolution,
    /// Events dropped because a truncate later in the run removed them.
    pub truncated: u64,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow, default)]
    after: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StructSchema {
    #[serde(default)]
    fields: Vec<ConnectSchema>,
}

/// The `after` image of a value, as ordered fields.
fn after_image(value: &str, has_schema: bool) -> Result<Vec<(Cow<'_, str>, &RawValue)>, String> {
    let payload = if has_schema {
        let env: Envelope = serde_json::from_str(value).map_err(|e| format!("value: {e}"))?;
        env.payload.map(|p| p.get()).unwrap_or("null")
    } else {
        value
    };
    let p: Payload = serde_json::from_str(payload).map_err(|e| format!("payload: {e}"))?;
    match p.after {
        Some(a) if a.get() != "null" => object_fields(a.get()),
        _ => Err("a change without an `after` image".into()),
    }
}

/// The `after` fields of a value schema.
pub fn after_fields(value: &str) -> Result<Vec<ConnectSchema>, String> {
    let env: Envelope = serde_json::from_str(value).map_err(|e| format!("value: {e}"))?;
    let Some(schema) = env.schema else {
        return Ok(Vec::new());
    };
    let s: StructSchema =
        serde_json::from_str(schema.get()).map_err(|e| format!("value schema: {e}"))?;
    for f in s.fields {
        if f.field.as_deref() == Some("after") {
            return Ok(f.fields.unwrap_or_default());
        }
    }
    Err("the value schema has no `after` field".into())
}

/// The key's field names, in order: from the key schema, or the payload.
fn key_names(key_text: &str, payload: &str) -> Result<Vec<String>, String> {
    if key_text.starts_with("{\"schema\"") {
        let env: Envelope = serde_json::from_str(key_text).map_err(|e| format!("key: {e}"))?;
        if let Some(s) = env.schema {
            let s: StructSchema =
                serde_json::from_str(s.get()).map_err(|e| format!("key schema: {e}"))?;
            let names: Vec<String> = s.fields.into_iter().filter_map(|f| f.field).collect();
            if !names.is_empty() {
                return Ok(names);
            }
        }
    }
    Ok(object_fields(payload)?
        .into_iter()
        .map(|(k, _)| k.into_owned())
        .collect())
}

/// Decides every key's outcome, and the versions before it where the run has them. `columns`
/// grows with the run's schema.
pub fn plan(
    changes: &Changes,
    columns: &mut Columns,
    config: Option<&SilverTableConfig>,
    decimals: DecimalHandling,
    has_rows: bool,
) -> Result<Plan, MergeError> {
    let mut plan = Plan::default();
    let truncate = changes.truncate;
    let live = |e: &Event| truncate.is_none_or(|t| e.order > t);

    // 1. Columns from the newest value schema.
    if let Some((_, value)) = &changes.newest_schema {
        let fields = after_fields(value).map_err(MergeError::Schema)?;
        columns
            .apply_schema(&fields, config, decimals, has_rows, &mut plan.evolution)
            .map_err(MergeError::Columns)?;
    }

    let t0 = std::time::Instant::now();
    // 2. Keys newest first, so schema-less columns are learned in the order of the newest
    //    image. Images are parsed where they are used and not kept: a run's images together
    //    would take as much memory as its raw values.
    let mut keys: Vec<(&str, &KeyEvents)> =
        changes.keys.iter().map(|(k, v)| (k.as_ref(), v)).collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.1.latest().order));
    let t1 = t0.elapsed();
    if changes.newest_schema.is_none() {
        let seen = in_parallel(&keys, |part| {
            let mut seen = Seen::default();
            for (_, k) in part {
                for e in k.events.iter().rev() {
                    if let Some(Ok(img)) = image(e, live(e)) {
                        seen.image(img);
                    }
                }
            }
            seen
        })
        .into_iter()
        .reduce(Seen::then)
        .unwrap_or_default();
        learn(
            columns,
            seen,
            config,
            decimals,
            has_rows,
            &mut plan.evolution,
        )?;
    }

    let t2 = t0.elapsed();
    // 3. The key columns.
    if let Some((payload, k)) = keys.first() {
        let names = key_names(&k.key, payload).map_err(MergeError::Schema)?;
        for n in &names {
            if columns.index(n).is_none() {
                // Seen only in keys (deletes): learn it from a key value.
                let fields = object_fields(payload).map_err(MergeError::Schema)?;
                if let Some((_, raw)) = fields.iter().find(|(f, _)| f == n) {
                    let image = [(Cow::Borrowed(n.as_str()), *raw)];
                    columns
                        .learn(&image, config, decimals, has_rows, &mut plan.evolution)
                        .map_err(MergeError::Columns)?;
                }
            }
        }
        columns.set_key(&names).map_err(MergeError::Columns)?;
    }
    let key_idx = columns.key_indices();
    let defaults = columns.defaults();

    // 4. Decode and apply each key's events, on every core.
    for part in in_parallel(&keys, |part| {
        decide(part, columns, &key_idx, &defaults, &live)
    }) {
        plan.outcomes.extend(part.outcomes);
        plan.quarantined.extend(part.quarantined);
        plan.truncated += part.truncated;
    }
    tracing::debug!(
        learn = ?(t2 - t1),
        decide = ?(t0.elapsed() - t2),
        rss_mib = crate::metrics::resident_mib(),
        "plan"
    );
    Ok(plan)
}

/// Runs `f` over `items` split in one part per core, and gives the parts' results in order.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let cores = super::cores();
    if cores < 2 || items.len() < 4096 {
        return vec![f(items)];
    }
    let size = items.len().div_ceil(cores);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(size).map(|part| s.spawn(|| f(part))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a planning thread panicked"))
            .collect()
    })
}

/// An event's parsed `after` image; `None`: it has none (a delete, or removed by a truncate).
fn image(e: &Event, live: bool) -> Option<Image<'_>> {
    match (&e.value, e.op) {
        (Some(v), Op::Create | Op::Read | Op::Update) if live => Some(after_image(v, e.has_schema)),
        _ => None,
    }
}

/// Each key's outcome: applies its events in order. Every version is kept (a key has more
/// than one event only where they all matter): TOAST placeholders are resolved once the state
/// scan says which versions silver already has (a replay of an older event must not lend its
/// value to a newer one).
fn decide(
    keys: &[(&str, &KeyEvents)],
    columns: &Columns,
    key_idx: &[usize],
    defaults: &[Result<Cell, String>],
    live: &(impl Fn(&Event) -> bool + Sync),
) -> Plan {
    let mut plan = Plan::default();
    // The event without its raw value (decoded now).
    let bare = |e: &Event| Event {
        value: None,
        ..e.clone()
    };
    for (payload, k) in keys {
        let key = match decode_key(payload, columns, key_idx) {
            Ok(key) => key,
            Err((check, reason)) => {
                plan.quarantined
                    .push(Quarantined::builtin(&k.key, k.latest(), check, reason));
                continue;
            }
        };
        // The latest version, and those before it (no allocation for a key with one event).
        let mut last: Option<Version> = None;
        let mut earlier: Vec<Version> = Vec::new();
        let mut push = |v: Version| {
            if let Some(before) = last.replace(v) {
                earlier.push(before);
            }
        };
        for e in &k.events {
            if !live(e) {
                plan.truncated += 1;
                continue;
            }
            let quarantine = |check, reason| Quarantined::builtin(&k.key, e, check, reason);
            match e.op {
                Op::Delete => push(Version {
                    event: bare(e),
                    row: None,
                }),
                Op::Truncate => unreachable!("truncates are not key events"),
                Op::Create | Op::Read | Op::Update => {
                    let image = match image(e, true) {
                        Some(Ok(image)) => image,
                        Some(Err(reason)) => {
                            plan.quarantined.push(quarantine(CHECK_DECODES, reason));
                            continue;
                        }
                        None => {
                            plan.quarantined
                                .push(quarantine(CHECK_DECODES, "a change without a value".into()));
                            continue;
                        }
                    };
                    match decode_row(&image, columns, defaults) {
                        Ok(row) => push(Version {
                            event: bare(e),
                            row: Some(row),
                        }),
                        Err(reason) => plan.quarantined.push(quarantine(CHECK_FITS_TYPE, reason)),
                    }
                }
            }
        }
        // The last version is the outcome itself.
        let Some(last) = last else { continue };
        plan.outcomes.push(Outcome {
            key_text: k.key.clone(),
            key,
            event: last.event,
            row: last.row,
            earlier,
        });
    }
    plan
}

/// What the images of a run show of schema-less columns: field names in the order first seen,
/// and per name the first value that tells its type.
#[derive(Default)]
struct Seen<'a> {
    names: Vec<Cow<'a, str>>,
    known: HashSet<Cow<'a, str>>,
    firsts: HashMap<Cow<'a, str>, &'a RawValue>,
}

impl<'a> Seen<'a> {
    /// An empty list says less about its type than a non-empty one.
    fn weak(raw: &RawValue) -> bool {
        raw.get() == "[]"
    }

    fn offer(&mut self, name: Cow<'a, str>, raw: &'a RawValue) {
        if raw.get() == "null" || raw.get() == TOAST_PLACEHOLDER_JSON {
            return;
        }
        match self.firsts.get_mut(&name) {
            Some(f) if Self::weak(f) && !Self::weak(raw) => *f = raw,
            Some(_) => {}
            None => {
                self.firsts.insert(name, raw);
            }
        }
    }

    fn name(&mut self, n: Cow<'a, str>) {
        if !self.known.contains(n.as_ref()) {
            self.known.insert(n.clone());
            self.names.push(n);
        }
    }

    fn image(&mut self, image: Vec<(Cow<'a, str>, &'a RawValue)>) {
        for (n, raw) in image {
            self.name(n.clone());
            self.offer(n, raw);
        }
    }

    /// This, then what a later part of the run saw: as if seen in one sequence.
    fn then(mut self, later: Seen<'a>) -> Seen<'a> {
        for n in later.names {
            self.name(n);
        }
        for (n, raw) in later.firsts {
            self.offer(n, raw);
        }
        self
    }
}

/// Learns schema-less columns: names in the order of the newest image, types from the first
/// non-null value of each, newest first.
fn learn(
    columns: &mut Columns,
    seen: Seen<'_>,
    config: Option<&SilverTableConfig>,
    decimals: DecimalHandling,
    has_rows: bool,
    evolution: &mut Evolution,
) -> Result<(), MergeError> {
    // The first run with row images learns every column (a first run of only deletes learns
    // just the key); later ones add new fields as the config allows, and always the fields
    // the config types.
    let pinned = columns
        .columns
        .iter()
        .any(|c| !columns.key.contains(&c.name));
    let policy = config.map(|c| c.new_columns).unwrap_or_default();
    for n in &seen.names {
        if columns.index(n).is_some() {
            continue;
        }
        let declared = config.is_some_and(|c| c.columns.contains_key(n.as_ref()));
        if pinned && !declared {
            match policy {
                NewColumns::Add => {}
                NewColumns::Ignore => continue,
                NewColumns::Fail => {
                    return Err(MergeError::Schema(format!(
                        "the records have a field `{n}` that is not a column (new_columns = \"fail\"); add it to the source's expected schema and set new_columns = \"add\", or \"ignore\" to leave it out of silver"
                    )));
                }
            }
        }
        let configured = config.is_some_and(|c| {
            c.columns
                .get(n.as_ref())
                .and_then(|c| c.type_name())
                .is_some()
        });
        let raw = match seen.firsts.get(n) {
            Some(r) => *r,
            None if configured => {
                let null: &RawValue = serde_json::from_str("null").expect("static");
                null
            }
            None => continue,
        };
        let image = [(Cow::Borrowed(n.as_ref()), raw)];
        columns
            .learn(&image, config, decimals, has_rows, evolution)
            .map_err(MergeError::Columns)?;
    }
    Ok(())
}

/// The typed key, or the built-in check it fails and why.
fn decode_key(
    payload: &str,
    columns: &Columns,
    key_idx: &[usize],
) -> Result<Vec<Cell>, (&'static str, String)> {
    let fields = object_fields(payload).map_err(|e| (CHECK_DECODES, format!("key: {e}")))?;
    let mut out = Vec::with_capacity(key_idx.len());
    for &i in key_idx {
        let c = &columns.columns[i];
        let raw = fields
            .iter()
            .find(|(n, _)| n == &c.name)
            .map(|(_, r)| *r)
            .ok_or_else(|| (CHECK_DECODES, format!("key has no field {}", c.name)))?;
        match decode(raw, &c.logical, &c.stored) {
            Ok(Cell::Null) => {
                return Err((CHECK_KEY_NOT_NULL, format!("key column {} is null", c.name)));
            }
            Ok(cell) => out.push(cell),
            Err(Issue::Misfit(r)) | Err(Issue::Unrepresentable(r)) => {
                return Err((CHECK_FITS_TYPE, format!("key column {}: {r}", c.name)));
            }
            Err(Issue::Placeholder) => {
                return Err((
                    CHECK_DECODES,
                    format!("key column {} is a TOAST placeholder", c.name),
                ));
            }
        }
    }
    Ok(out)
}

/// Decodes one image into a row; a TOAST placeholder is left pending (`None`).
fn decode_row(
    image: &[(Cow<'_, str>, &RawValue)],
    columns: &Columns,
    defaults: &[Result<Cell, String>],
) -> Result<NewRow, String> {
    let mut cells = Vec::with_capacity(columns.columns.len());
    let mut issues = Vec::new();
    let mut hint = 0;
    for (ci, c) in columns.columns.iter().enumerate() {
        // Images usually list fields in column order: look there first.
        let raw = if image.get(hint).is_some_and(|(n, _)| n == &c.name) {
            hint += 1;
            Some(image[hint - 1].1)
        } else {
            image.iter().position(|(n, _)| n == &c.name).map(|p| {
                hint = p + 1;
                image[p].1
            })
        };
        let decoded = match raw {
            Some(raw) => decode(raw, &c.logical, &c.stored).map_err(|i| (i, raw.get())),
            None => defaults[ci].clone().map_err(|r| (Issue::Misfit(r), "")),
        };
        match decoded {
            Ok(cell) => cells.push(Some(cell)),
            Err((Issue::Placeholder, _)) => cells.push(None),
            Err((Issue::Unrepresentable(reason), raw)) => {
                cells.push(Some(Cell::Null));
                issues.push(DqIssue {
                    column: c.name.clone(),
                    reason,
                    raw: Some(raw.to_string()),
                });
            }
            Err((Issue::Misfit(reason), _)) => {
                return Err(format!("column {} ({}): {reason}", c.name, c.stored));
            }
        }
    }
    Ok(NewRow { cells, issues })
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{0}")]
    Schema(String),
    #[error(transparent)]
    Columns(#[from] ColumnError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen<'a>(images: &[&'a str]) -> Seen<'a> {
        let mut s = Seen::default();
        for i in images {
            s.image(object_fields(i).unwrap());
        }
        s
    }

    fn shown(s: &Seen<'_>) -> Vec<(String, Option<String>)> {
        s.names
            .iter()
            .map(|n| (n.to_string(), s.firsts.get(n).map(|r| r.get().to_string())))
            .collect()
    }

    #[test]
    fn seen_in_parts_is_seen_in_one_sequence() {
        let images = [
            r#"{"id":1,"tags":[],"note":null}"#,
            r#"{"id":2,"tags":[],"note":"__debezium_unavailable_value"}"#,
            r#"{"id":3,"tags":["a"],"extra":1.5}"#,
            r#"{"id":4,"tags":["b"],"note":"x","late":null}"#,
        ];
        let whole = shown(&seen(&images));
        assert_eq!(
            whole,
            vec![
                ("id".into(), Some("1".into())),
                ("tags".into(), Some(r#"["a"]"#.into())),
                ("note".into(), Some(r#""x""#.into())),
                ("extra".into(), Some("1.5".into())),
                ("late".into(), None),
            ]
        );
        for cut in 0..=images.len() {
            let (a, b) = images.split_at(cut);
            assert_eq!(shown(&seen(a).then(seen(b))), whole, "split at {cut}");
        }
    }
}
