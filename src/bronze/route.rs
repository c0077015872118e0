//! Topic → bronze table routing: configured rules first (regex with capture templates), then
//! the default, the topic name made into a table name.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;

use crate::config::RouteConfig;

/// Where a topic's records land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub table: Arc<str>,
    pub keyless: bool,
}

#[derive(Debug)]
pub struct Router {
    rules: Vec<(Regex, String, bool)>,
    cache: HashMap<Arc<str>, Route>,
}

impl Router {
    /// Compiles the rules; they were validated with the configuration.
    pub fn new(routes: &[RouteConfig]) -> Self {
        let rules = routes
            .iter()
            .map(|r| {
                let re =
                    Regex::new(&format!("^(?:{})$", r.topic)).expect("validated with the config");
                (re, r.table.clone(), r.keyless)
            })
            .collect();
        Router {
            rules,
            cache: HashMap::new(),
        }
    }

    pub fn route(&mut self, topic: &Arc<str>) -> &Route {
        if !self.cache.contains_key(topic) {
            let route = self.compute(topic);
            self.cache.insert(topic.clone(), route);
        }
        &self.cache[topic]
    }

    fn compute(&self, topic: &str) -> Route {
        for (re, template, keyless) in &self.rules {
            if let Some(caps) = re.captures(topic) {
                let mut table = String::new();
                caps.expand(template, &mut table);
                return Route {
                    table: Arc::from(sanitize(&table)),
                    keyless: *keyless,
                };
            }
        }
        Route {
            table: Arc::from(sanitize(topic)),
            keyless: false,
        }
    }
}

/// A table name from any text: lowercase, every character outside `[a-z0-9_]` becomes `_`, and a
/// leading digit gets a `_` in front.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_then_default() {
        let mut r = Router::new(&[RouteConfig {
            topic: r"[^.]+\.[^.]+\.([^.]+)".into(),
            table: "$1".into(),
            keyless: false,
        }]);
        assert_eq!(
            &*r.route(&Arc::from("dbserver1.public.users")).table,
            "users"
        );
        assert_eq!(&*r.route(&Arc::from("dbserver2")).table, "dbserver2");
        assert_eq!(
            &*r.route(&Arc::from("__debezium-heartbeat.dbserver1")).table,
            "__debezium_heartbeat_dbserver1"
        );
        assert_eq!(sanitize("9Lives.X"), "_9lives_x");
    }
}
