//! One file per panel of the page. Each is an `impl App` block of view functions that read the
//! shown `Stage` and the page's own state and turn controls into `Msg`s; none keeps state of
//! its own.

mod client;
mod diagram;
mod events;
mod header;
mod history;
mod inspectors;
mod network;
mod ring;
mod run;

pub(super) use ring::view_legend;
