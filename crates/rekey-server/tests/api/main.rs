//! End-to-end tests of rekeyd's management API: each starts the real binary (see `helpers`).

mod helpers;

mod access;
mod dataplane;
mod durability;
mod errors;
mod keys;
mod nodes;
mod openapi;
mod other_types;
mod secrets;
