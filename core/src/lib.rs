//! dynamo-core: every decision a Dynamo node makes, with no IO.
pub mod api;
pub mod checker;
pub mod client;
pub mod config;
pub mod history;
pub mod layout;
pub mod membership;
pub mod message;
pub mod node;
pub mod ring;
pub mod sim;
pub mod store;
pub mod trace;
pub mod types;
pub mod version;
