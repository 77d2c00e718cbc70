//! dynamo-web: the browser visualizer of a Dynamo cluster, simulated or real.
//!
//! In Simulated mode the page runs `dynamo-core`'s `Simulation` compiled to WebAssembly (the
//! same node code the native cluster runs) and draws what it does; in Live mode it attaches to
//! a real cluster of `dynamo` processes and draws the trace events they stream. Everything that
//! can be plain Rust is: the ring geometry (`layout`), the mapping from trace events to
//! animations (`flights`), the operation in focus and its quorum votes (`focus`), the
//! simulation driver that advances time in bounded slices and records actions (`session`), the live driver with its history bookkeeping and export format
//! (`live`), shareable links (`link`), guided scenarios (`scenario`), what the canvases draw and
//! the hit-tests behind hover linking (`scene`), and the render throttle and frame-cost
//! statistics (`pace`) are tested natively with `cargo test`. The Yew components (`app`) stay
//! thin: they read a `Stage` (either driver) and turn clicks into actions; `paint` draws the
//! moving parts on canvases every frame, outside Yew. Nothing here makes a replication decision; that belongs in the core.

pub mod app;
pub mod connect;
pub mod flights;
pub mod focus;
pub mod layout;
pub mod link;
pub mod live;
pub mod pace;
pub mod paint;
pub mod palette;
pub mod scenario;
pub mod scene;
pub mod script;
pub mod session;
pub mod stage;
pub mod text;
