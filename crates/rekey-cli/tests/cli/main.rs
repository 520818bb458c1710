//! End-to-end tests of the `rekey` binary against a live rekeyd (see `helpers` for how rekeyd is
//! built and started). Each test checks output, exit code, and the state change on the server.

mod helpers;

mod access;
mod cognitive_services;
mod cosmosdb;
mod groups;
mod key_age;
mod login;
mod long_running;
mod output;
mod prompt;
mod quantum;
mod rotation;
mod seeds;
