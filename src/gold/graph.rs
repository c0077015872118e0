//! The models' dependency graph: which gold models each one reads, the order they run in, and
//! which ones a failed model takes down with it.

use std::collections::{BTreeMap, BTreeSet};

use super::model::Model;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("gold model {model} reads gold.{missing}, which is not a model in {dir}")]
    Missing {
        model: String,
        missing: String,
        dir: String,
    },
    #[error("gold models read each other in a cycle (each feeds the next): {}", cycle.join(" → "))]
    Cycle { cycle: Vec<String> },
    #[error("no gold model {0}; `medallion gold --plan` lists them")]
    Unknown(String),
}

/// Models by name, with their gold dependencies.
#[derive(Debug)]
pub struct Graph {
    /// Model → the models it reads.
    pub upstream: BTreeMap<String, BTreeSet<String>>,
    /// Model → the models that read it.
    pub downstream: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn new(models: &[Model], dir: &str) -> Result<Graph, GraphError> {
        let names: BTreeSet<&str> = models.iter().map(|m| m.name.as_str()).collect();
        let mut upstream = BTreeMap::new();
        let mut downstream: BTreeMap<String, BTreeSet<String>> = models
            .iter()
            .map(|m| (m.name.clone(), BTreeSet::new()))
            .collect();
        for m in models {
            let mut ups = BTreeSet::new();
            for d in m.depends_on() {
                if !names.contains(d) {
                    return Err(GraphError::Missing {
                        model: m.name.clone(),
                        missing: d.to_string(),
                        dir: dir.to_string(),
                    });
                }
                ups.insert(d.to_string());
                downstream
                    .get_mut(d)
                    .expect("every model has an entry")
                    .insert(m.name.clone());
            }
            upstream.insert(m.name.clone(), ups);
        }
        let graph = Graph {
            upstream,
            downstream,
        };
        graph.levels()?;
        Ok(graph)
    }

    /// The models in waves: every model comes after all it reads; the models of one wave do
    /// not depend on each other (they may run at once). Names sorted within a wave.
    pub fn levels(&self) -> Result<Vec<Vec<String>>, GraphError> {
        let mut waiting: BTreeMap<&str, usize> = self
            .upstream
            .iter()
            .map(|(m, ups)| (m.as_str(), ups.len()))
            .collect();
        let mut levels = Vec::new();
        loop {
            let ready: Vec<String> = waiting
                .iter()
                .filter(|(_, n)| **n == 0)
                .map(|(m, _)| m.to_string())
                .collect();
            if ready.is_empty() {
                break;
            }
            for m in &ready {
                waiting.remove(m.as_str());
                for d in &self.downstream[m] {
                    *waiting.get_mut(d.as_str()).expect("a model") -= 1;
                }
            }
            levels.push(ready);
        }
        if let Some(start) = waiting.keys().next() {
            return Err(GraphError::Cycle {
                cycle: self.cycle_from(start, &waiting),
            });
        }
        Ok(levels)
    }

    /// A cycle among the models still `waiting`, starting at `start`, for the error message.
    fn cycle_from(&self, start: &str, waiting: &BTreeMap<&str, usize>) -> Vec<String> {
        let mut path: Vec<String> = vec![start.to_string()];
        loop {
            let last = path.last().expect("not empty");
            let next = self.upstream[last]
                .iter()
                .find(|u| waiting.contains_key(u.as_str()))
                .expect("a waiting model has a waiting upstream");
            if let Some(at) = path.iter().position(|p| p == next) {
                // In the direction data flows, from the first name.
                let mut cycle: Vec<String> = path[at..].to_vec();
                cycle.reverse();
                let first = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
                cycle.rotate_left(first);
                cycle.push(cycle[0].clone());
                return cycle;
            }
            path.push(next.clone());
        }
    }

    /// The models a run selects: all, or `only` (and with `downstream`, every model that reads
    /// it, directly or not).
    pub fn select(
        &self,
        only: Option<&str>,
        downstream: bool,
    ) -> Result<BTreeSet<String>, GraphError> {
        let Some(m) = only else {
            return Ok(self.upstream.keys().cloned().collect());
        };
        if !self.upstream.contains_key(m) {
            return Err(GraphError::Unknown(m.to_string()));
        }
        let mut out = BTreeSet::from([m.to_string()]);
        if downstream {
            out.extend(self.below(m));
        }
        Ok(out)
    }

    /// Every model that reads `m`, directly or not.
    pub fn below(&self, m: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![m.to_string()];
        while let Some(x) = todo.pop() {
            for d in &self.downstream[&x] {
                if out.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gold::model::{Namespaces, parse};
    use std::path::Path;

    fn models(defs: &[(&str, &str)]) -> Vec<Model> {
        let ns = Namespaces {
            bronze: "bronze".into(),
            silver: "silver".into(),
            gold: "gold".into(),
        };
        defs.iter()
            .map(|(n, sql)| parse(Path::new(&format!("{n}.sql")), sql, &ns).unwrap())
            .collect()
    }

    #[test]
    fn waves_follow_dependencies() {
        let g = Graph::new(
            &models(&[
                ("c", "SELECT * FROM gold.a JOIN gold.b ON true"),
                ("a", "SELECT * FROM silver.orders"),
                ("b", "SELECT * FROM gold.a"),
                ("d", "SELECT * FROM silver.users"),
            ]),
            "sql/gold",
        )
        .unwrap();
        assert_eq!(
            g.levels().unwrap(),
            vec![vec!["a", "d"], vec!["b"], vec!["c"]]
        );
        assert_eq!(
            g.select(Some("a"), true).unwrap(),
            BTreeSet::from(["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(g.select(Some("b"), false).unwrap().len(), 1);
        assert_eq!(g.select(None, false).unwrap().len(), 4);
        assert_eq!(
            g.select(Some("x"), false).unwrap_err(),
            GraphError::Unknown("x".into())
        );
    }

    #[test]
    fn a_cycle_or_a_missing_model_is_named() {
        let err = Graph::new(
            &models(&[
                ("a", "SELECT * FROM gold.c"),
                ("b", "SELECT * FROM gold.a"),
                ("c", "SELECT * FROM gold.b"),
                ("d", "SELECT * FROM silver.users"),
            ]),
            "sql/gold",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "gold models read each other in a cycle (each feeds the next): a → b → c → a"
        );
        let err = Graph::new(&models(&[("a", "SELECT * FROM gold.nope")]), "sql/gold").unwrap_err();
        assert_eq!(
            err.to_string(),
            "gold model a reads gold.nope, which is not a model in sql/gold"
        );
    }
}
