//! The few browser calls outside Yew. Each fails soft: without a window there is no link, no
//! shortcut and no motion preference, but the page still works.

use super::*;

pub fn fragment() -> String {
    web_sys::window().and_then(|window| window.location().hash().ok()).unwrap_or_default()
}

pub fn set_fragment(fragment: &str) {
    let Some(window) = web_sys::window() else { return };
    if let Ok(history) = window.history() {
        // replaceState: the address bar follows the run without filling the back button.
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&format!("#{fragment}")));
    }
}

/// The page clock in milliseconds (`performance.now()`).
pub fn now_ms() -> f64 {
    web_sys::window().and_then(|window| window.performance()).map_or(0.0, |performance| performance.now())
}

/// The page clock in microseconds: the time base of Live mode's history.
pub fn now_us() -> Micros {
    (now_ms() * 1_000.0) as Micros
}

/// The page clock's origin in UNIX-epoch microseconds (`performance.timeOrigin`).
pub fn time_origin_us() -> Micros {
    web_sys::window()
        .and_then(|window| window.performance())
        .map_or(0, |performance| (performance.time_origin() * 1_000.0) as Micros)
}

/// The admin token the supervisor writes into the page it serves.
pub fn admin_token() -> Option<String> {
    meta("dynamo-admin-token")
}

/// The nodes' client password, which the supervisor writes into the page when it has one.
pub fn client_password() -> Option<String> {
    meta("dynamo-password")
}

fn meta(name: &str) -> Option<String> {
    let document = web_sys::window()?.document()?;
    let meta = document.query_selector(&format!("meta[name=\"{name}\"]")).ok()??;
    crate::live::token_of(meta.get_attribute("content"))
}

pub fn prefers_reduced_motion() -> bool {
    web_sys::window()
        .and_then(|window| window.match_media("(prefers-reduced-motion: reduce)").ok().flatten())
        .is_some_and(|query| query.matches())
}

/// Calls `handle` with the new value whenever the system's reduced-motion setting changes.
pub fn on_reduced_motion(handle: impl Fn(bool) + 'static) -> Option<Closure<dyn Fn(web_sys::Event)>> {
    let query = web_sys::window()?.match_media("(prefers-reduced-motion: reduce)").ok()??;
    let watched = query.clone();
    let closure = Closure::<dyn Fn(web_sys::Event)>::new(move |_| handle(watched.matches()));
    query.add_event_listener_with_callback("change", closure.as_ref().unchecked_ref()).ok()?;
    Some(closure)
}

/// Calls `handle` with the key of every key press outside text fields (space and `.` are
/// typed into the key and value fields too).
pub fn on_key(handle: impl Fn(String) + 'static) -> Option<Closure<dyn Fn(KeyboardEvent)>> {
    let document = web_sys::window()?.document()?;
    let closure = Closure::<dyn Fn(KeyboardEvent)>::new(move |event: KeyboardEvent| {
        let typing = event
            .target()
            .and_then(|target| target.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|element| matches!(element.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA"));
        if typing || event.ctrl_key() || event.meta_key() || event.alt_key() {
            return;
        }
        let key = event.key();
        if key == " " || key == "." {
            event.prevent_default();
            handle(key);
        }
    });
    document.add_event_listener_with_callback("keydown", closure.as_ref().unchecked_ref()).ok()?;
    Some(closure)
}
