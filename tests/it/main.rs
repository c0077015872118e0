//! Integration tests: one binary, one module per capability. Every test runs against real
//! parts (the embedded sqlite catalog and a warehouse folder, or S3 and Glue servers; PyIceberg
//! as an independent reader) and fails loudly when something it needs is missing.

mod athena;
mod bad_input;
mod broker;
mod cli;
mod commits;
mod crash;
mod failures;
mod fixtures;
mod glue;
mod gold;
mod history;
mod kafka;
mod maintain;
mod pyiceberg;
mod quality;
mod query;
mod replay;
mod scenarios;
mod silver;
mod support;
mod watchdog;
