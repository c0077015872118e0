//! Source offsets recorded in bronze snapshots: for each topic partition, the next offset after
//! the last record this table has taken from it. Stored as JSON in the snapshot summary property
//! `medallion.offsets` (`{"topic": {"0": 1234}}`), written in the same commit as the rows, so
//! the table and its offsets can never disagree.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::source::Partition;

/// Snapshot summary key of the recorded offsets.
pub const OFFSETS_PROPERTY: &str = "medallion.offsets";

/// Next offset per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermarks(pub BTreeMap<Partition, i64>);

impl Watermarks {
    pub fn get(&self, p: &Partition) -> Option<i64> {
        self.0.get(p).copied()
    }

    /// Raises the watermark of `p` to `next` (never lowers it).
    pub fn advance(&mut self, p: &Partition, next: i64) {
        match self.0.get_mut(p) {
            Some(w) if *w >= next => {}
            Some(w) => *w = next,
            None => {
                self.0.insert(p.clone(), next);
            }
        }
    }

    pub fn to_json(&self) -> String {
        let mut by_topic: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
        for (p, o) in &self.0 {
            by_topic
                .entry(&p.topic)
                .or_default()
                .insert(p.partition.to_string(), *o);
        }
        serde_json::to_string(&by_topic).expect("maps of strings and numbers serialize")
    }

    pub fn from_json(s: &str) -> Result<Self, String> {
        let by_topic: BTreeMap<String, BTreeMap<String, i64>> =
            serde_json::from_str(s).map_err(|e| format!("invalid {OFFSETS_PROPERTY}: {e}"))?;
        let mut w = Watermarks::default();
        for (topic, parts) in by_topic {
            let topic: Arc<str> = Arc::from(topic);
            for (p, o) in parts {
                let partition = p
                    .parse()
                    .map_err(|_| format!("invalid partition {p:?} in {OFFSETS_PROPERTY}"))?;
                w.0.insert(
                    Partition {
                        topic: topic.clone(),
                        partition,
                    },
                    o,
                );
            }
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_only_advances() {
        let p = |t: &str, n| Partition {
            topic: Arc::from(t),
            partition: n,
        };
        let mut w = Watermarks::default();
        w.advance(&p("a.b", 0), 10);
        w.advance(&p("a.b", 0), 5);
        w.advance(&p("a.b", 3), 1);
        w.advance(&p("file:/x y", 0), 7);
        assert_eq!(w.get(&p("a.b", 0)), Some(10));
        let s = w.to_json();
        assert_eq!(s, r#"{"a.b":{"0":10,"3":1},"file:/x y":{"0":7}}"#);
        assert_eq!(Watermarks::from_json(&s).unwrap(), w);
        assert!(Watermarks::from_json("{\"t\":{\"x\":1}}").is_err());
    }
}
