//! rekey's wire types: the JSON bodies of the ARM management API, shared by the server and the CLI so
//! the two cannot drift, and each resource type's [`mapping::WireMapping`] between those bodies and the
//! domain records of `rekey-core`. Field names follow Azure's REST specifications exactly.

pub mod arm;
pub mod authorization;
pub mod cognitive_services;
pub mod cosmos_db;
pub mod event_grid;
pub mod mapping;
pub mod monitor;
pub mod oauth;
pub mod quantum;
pub mod rotation;
pub mod service;

pub use arm::{ErrorDetail, ErrorResponse, List};
pub use mapping::{mapping_for, Answer, Answers, KeyView, RenderContext, WireMapping};
