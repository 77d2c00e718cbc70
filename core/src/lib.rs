//! dynamo-core: every decision a Dynamo node makes, with no IO.
pub mod checker;
pub mod config;
pub mod history;
pub mod ring;
pub mod types;
pub mod version;
