//! Basalt: a self-hosted server speaking the REST protocol of the `altogic` client.
//!
//! Module map (dependencies point down):
//! - [`cli`], [`app`]: the command line; building and running the server.
//! - [`http`]: transport only: router, layers, extractors, one file per area, the error edge.
//! - [`auth`]: accounts, passwords, sessions, emailed links.
//! - [`profile`]: the `users` model of the database API.
//! - [`records`]: objects of the models declared in the configuration.
//! - [`expr`]: the filter language (parser, reference evaluator), shared by records and store.
//! - [`files`]: uploads, the blob store, what public paths serve.
//! - [`mail`]: templates, transports, the background sender of the outbox.
//! - [`limits`]: rate limits.
//! - [`keys`]: client keys.
//! - [`store`]: the `Store` trait and its SQLite backend.
//! - [`config`], [`clock`], [`state`]: configuration, injected time, shared handles.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod expr;
pub mod files;
pub mod http;
pub mod keys;
pub mod limits;
pub mod mail;
pub mod profile;
pub mod records;
pub mod state;
pub mod store;
