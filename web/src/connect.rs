//! The browser side of Live mode: WebSockets to the nodes, HTTP to the supervisor, and the
//! export's download and file input. Nothing here interprets what it carries (that is
//! `live`'s job, tested natively); it moves text between the browser and an `Inbox` that the
//! page drains once per animation frame, so a burst of trace events costs one render, not one
//! per event.
//!
//! Every socket has a generation: events of a socket that was replaced are ignored, so a late
//! `close` of an old socket cannot mark a reconnected node down.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};
use yew::platform::spawn_local;

use crate::recording::Recording;
use dynamo_core::api::{ClusterInfo, Control};

/// How long to wait before dialing a node whose socket closed (a killed node comes back).
pub const RECONNECT_MS: f64 = 500.0;

/// Something that happened in the browser, waiting for the next frame.
pub enum Incoming {
    Opened { node: usize, generation: u32 },
    Text { node: usize, generation: u32, text: String },
    Closed { node: usize, generation: u32 },
    Cluster(Result<ClusterInfo, String>),
    Controlled(Control, Result<(), String>),
    Trace(Result<Recording, String>),
}

pub type Inbox = Rc<RefCell<Vec<Incoming>>>;

/// One open (or opening) socket and the handlers that must live as long as it.
struct Link {
    socket: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Detach first: the closures are about to be freed.
        self.socket.set_onopen(None);
        self.socket.set_onmessage(None);
        self.socket.set_onclose(None);
        let _ = self.socket.close();
    }
}

/// The page's sockets to every node's JSON API, redialed with a fixed backoff.
pub struct Sockets {
    urls: Vec<String>,
    links: Vec<Option<Link>>,
    generation: Vec<u32>,
    /// Page time (ms) at which a node without a socket is dialed.
    retry_at: Vec<f64>,
    inbox: Inbox,
}

impl Sockets {
    pub fn new(urls: Vec<String>, inbox: Inbox) -> Sockets {
        let nodes = urls.len();
        Sockets {
            urls,
            links: (0..nodes).map(|_| None).collect(),
            generation: vec![0; nodes],
            retry_at: vec![0.0; nodes],
            inbox,
        }
    }

    /// Dials every node without a socket whose retry time has come; returns those nodes.
    pub fn tend(&mut self, now_ms: f64) -> Vec<usize> {
        let due: Vec<usize> =
            (0..self.urls.len()).filter(|node| self.links[*node].is_none() && self.retry_at[*node] <= now_ms).collect();
        for node in &due {
            self.dial(*node, now_ms);
        }
        due
    }

    fn dial(&mut self, node: usize, now_ms: f64) {
        self.generation[node] += 1;
        let generation = self.generation[node];
        let Ok(socket) = WebSocket::new(&self.urls[node]) else {
            self.retry_at[node] = now_ms + RECONNECT_MS;
            return;
        };
        let inbox = self.inbox.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            inbox.borrow_mut().push(Incoming::Opened { node, generation });
        });
        let inbox = self.inbox.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(text) = event.data().as_string() {
                inbox.borrow_mut().push(Incoming::Text { node, generation, text });
            }
        });
        let inbox = self.inbox.clone();
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
            inbox.borrow_mut().push(Incoming::Closed { node, generation });
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        self.links[node] = Some(Link { socket, _on_open: on_open, _on_message: on_message, _on_close: on_close });
    }

    /// Whether an event of `generation` is about `node`'s current socket.
    pub fn is_current(&self, node: usize, generation: u32) -> bool {
        self.generation.get(node) == Some(&generation)
    }

    /// `node`'s socket closed: it is dialed again after `RECONNECT_MS`.
    pub fn closed(&mut self, node: usize, now_ms: f64) {
        self.links[node] = None;
        self.retry_at[node] = now_ms + RECONNECT_MS;
    }

    /// Dial `node` at the next frame if it has no socket (it was just restarted).
    pub fn hurry(&mut self, node: usize) {
        self.retry_at[node] = 0.0;
    }

    pub fn send(&self, node: usize, text: &str) -> bool {
        self.links[node].as_ref().is_some_and(|link| link.socket.send_with_str(text).is_ok())
    }
}

/// One same-origin HTTP exchange: the status and the body's text; `body` is sent as JSON. Plain
/// `fetch` through web-sys: an HTTP client crate would add weight to the `.wasm` for two calls.
async fn exchange(method: &str, url: &str, body: Option<String>, token: Option<&str>) -> Result<(u16, String), String> {
    let failed = |error: JsValue| format!("{method} {url} failed: {error:?}");
    let window = web_sys::window().ok_or("no window")?;
    let headers = web_sys::Headers::new().map_err(failed)?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(body) = &body {
        headers.set("Content-Type", "application/json").map_err(failed)?;
        init.set_body(&JsValue::from_str(body));
    }
    if let Some(token) = token {
        headers.set("X-Dynamo-Token", token).map_err(failed)?;
    }
    init.set_headers(&headers);
    let request = web_sys::Request::new_with_str_and_init(url, &init).map_err(failed)?;
    let response: web_sys::Response =
        JsFuture::from(window.fetch_with_request(&request)).await.map_err(failed)?.dyn_into().map_err(failed)?;
    let text = JsFuture::from(response.text().map_err(failed)?).await.map_err(failed)?;
    Ok((response.status(), text.as_string().unwrap_or_default()))
}

/// Asks the supervisor for the cluster (`GET /api/cluster`, same origin); the answer lands in
/// the inbox.
pub fn fetch_cluster(inbox: Inbox) {
    spawn_local(async move {
        let result = match exchange("GET", "/api/cluster", None, None).await {
            Ok((200, text)) => ClusterInfo::parse(&text),
            Ok((status, _)) => Err(format!("/api/cluster answered {status}")),
            Err(error) => Err(error),
        };
        inbox.borrow_mut().push(Incoming::Cluster(result));
    });
}

/// Asks the supervisor to carry out `control` (`POST /api/control` with the admin token).
pub fn send_control(inbox: Inbox, token: Option<String>, control: Control) {
    spawn_local(async move {
        let result = match exchange("POST", "/api/control", Some(control.to_json()), token.as_deref()).await {
            Ok((200, _)) => Ok(()),
            Ok((status, detail)) => {
                let hint = if status == 401 {
                    " (this page has no valid admin token: open it from the supervisor)"
                } else {
                    ""
                };
                Err(format!("the supervisor refused {}: {status} {detail}{hint}", control.to_json()))
            }
            Err(error) => Err(error),
        };
        inbox.borrow_mut().push(Incoming::Controlled(control, result));
    });
}

/// Reads a recording chosen in the "open trace" input.
pub fn read_trace(inbox: Inbox, file: web_sys::File) {
    spawn_local(async move {
        let result = match JsFuture::from(file.text()).await {
            Ok(text) => Recording::decode(&text.as_string().unwrap_or_default()),
            Err(error) => Err(format!("cannot read {}: {error:?}", file.name())),
        };
        inbox.borrow_mut().push(Incoming::Trace(result));
    });
}

/// Offers `text` as a file download named `name`.
pub fn download(name: &str, text: &str) -> Result<(), JsValue> {
    let document = web_sys::window().and_then(|window| window.document()).ok_or("no document")?;
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/json");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    let anchor: web_sys::HtmlAnchorElement = document.create_element("a")?.dyn_into()?;
    anchor.set_href(&url);
    anchor.set_download(name);
    anchor.click();
    // The object URL is not revoked: the download reads it after this returns, and one blob per
    // export click is a negligible leak.
    Ok(())
}
