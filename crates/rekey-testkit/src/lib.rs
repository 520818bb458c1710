//! Starts the real `rekeyd` for tests, the one way every Rust test does it: on a free port, with a
//! fresh data directory and, per backend, SQLite in that directory or a fresh PostgreSQL database
//! ([`TestDatabase`]). Readiness comes from rekeyd's ready file (`--ready-file`), which names the URL
//! and the owner token, so no test scrapes the log.
//!
//! - [`process`]: one rekeyd process, started and waited for synchronously ([`process::Rekeyd`]), and
//!   where its binary comes from ([`process::rekeyd_bin`]).
//! - [`backend`]: which store a test runs on, the [`backend_tests!`] macro that runs a test body once
//!   per backend, and the policy that a missing PostgreSQL fails rather than skips.
//! - [`server`]: [`TestServer`], an async handle on a started node with a management API client,
//!   direct database access, restarts and further nodes on the same database.

pub mod backend;
pub mod process;
pub mod server;

pub use backend::{
    postgres_admin_url, postgres_wanted, Backend, TestDatabase, BACKENDS_VAR, POSTGRES_URL_VAR,
};
pub use process::{rekeyd_bin, Ready, Rekeyd};
pub use server::{start_nodes_at_once, TestServer};
