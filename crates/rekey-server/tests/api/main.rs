//! End-to-end tests of rekeyd's management API: each starts the real binary (see `helpers`).

mod helpers;
// Each test body runs once per backend; `crate::backend_tests!` in every module.
use rekey_testkit::backend_tests;

mod access;
mod connections;
mod dataplane;
mod durability;
mod errors;
mod events;
mod gateway;
mod hostile_input;
mod keys;
mod limits;
mod metrics;
mod nodes;
mod oauth;
mod openapi;
mod other_types;
mod ready_file;
mod rotation;
mod secrets;
mod security_access;
mod security_connections;
mod security_dataplane;
mod web;
