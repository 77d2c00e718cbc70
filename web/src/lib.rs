//! dynamo-web: the browser visualizer of a Dynamo cluster, simulated or real.
//!
//! In Simulated mode the page runs `dynamo-core`'s `Simulation` compiled to WebAssembly (the
//! same node code the native cluster runs) and draws what it does; in Live mode it attaches to
//! a real cluster of `dynamo` processes and draws the trace events they stream. Both modes feed
//! one `Timeline` (node status, the events log, messages in the air, the requests made and the
//! operation in focus), and the page shows one `Stage` at a time.
//!
//! Everything that can be plain Rust is, and is tested natively with `cargo test`: the ring
//! geometry (`layout`), trace events to animations (`flights`), the operation in focus and its
//! quorum votes (`focus`), the shared model of a run (`timeline`), the inspectors' model
//! (`inspector`), the simulation driver that advances time in bounded slices and records
//! actions (`simulated`), the live driver (`live`) and its export format (`recording`) and what the page
//! exchanges with a cluster (`pump`), shareable links (`link`), guided scenarios (`scenario`),
//! what the canvases draw and the hit-tests behind hover linking (`scene`), the words for
//! operations and events (`text`), and the render throttle and frame-cost statistics (`pace`).
//! The Yew component (`app`, a file per panel) reads the shown `Stage` and turns clicks into
//! actions; `paint` draws the moving parts on canvases every frame, outside Yew. Nothing here
//! makes a replication decision; that belongs in the core.

pub mod app;
pub mod connect;
pub mod flights;
pub mod focus;
pub mod inspector;
pub mod layout;
pub mod link;
pub mod live;
pub mod pace;
pub mod paint;
pub mod palette;
pub mod pump;
pub mod recording;
pub mod scenario;
pub mod scene;
pub mod script;
pub mod simulated;
pub mod stage;
pub mod text;
pub mod timeline;
