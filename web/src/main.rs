//! The page's entry point: mounts the Yew app on the document body. Only meaningful in a
//! browser; a native build just says so.

#[cfg(target_arch = "wasm32")]
fn main() {
    yew::Renderer::<dynamo_web::app::App>::new().render();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("dynamo-web runs in a browser: build it with `trunk build` (see docs/visualizer.md)");
}
