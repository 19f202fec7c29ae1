//! HTTP integration tests: one binary, one file per area.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod support;

mod bad_input;
mod computations;
mod db;
mod files;
mod links;
mod migrate;
mod nodes;
mod passwords;
mod queries;
mod rate_limits;
mod records;
mod sessions;
mod sign_in;
mod sign_up;
mod site;
mod storage_lists;
mod storage_transfers;
mod timeouts;
mod transport;
