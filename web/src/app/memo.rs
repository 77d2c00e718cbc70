//! Memoized panels: a heavy panel is rendered once per change of what it shows (its
//! fingerprint) and handed to Yew as a `Memo`, which Yew skips while the stamp holds.

use super::*;

/// A piece of the page rendered once and shown until its `stamp` moves: Yew skips a component
/// whose props are equal, so an unchanged panel costs neither rendering nor diffing per frame.
#[derive(Properties, Clone)]
pub struct MemoProps {
    pub stamp: u64,
    pub content: Rc<Html>,
}

impl PartialEq for MemoProps {
    fn eq(&self, other: &Self) -> bool {
        self.stamp == other.stamp
    }
}

#[function_component(Memo)]
pub(super) fn memo(props: &MemoProps) -> Html {
    (*props.content).clone()
}

/// One memoized panel: the fingerprint of what it was rendered from, and the rendering.
#[derive(Default)]
pub(super) struct Cached {
    pub(super) stamp: u64,
    pub(super) html: Option<Rc<Html>>,
}

/// An inspector's cache: the node view it was rendered from.
#[derive(Default)]
pub(super) struct CachedInspector {
    pub(super) quick: u64,
    pub(super) view: Option<NodeView>,
    pub(super) serial: u64,
    pub(super) html: Option<Rc<Html>>,
}

/// The renderings reused between frames (`view` takes `&self`, hence the cell).
#[derive(Default)]
pub(super) struct Memos {
    pub(super) ring: Cached,
    pub(super) history: Cached,
    pub(super) events: Cached,
    pub(super) inspectors: Vec<CachedInspector>,
}

pub(super) fn fingerprint(value: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Returns the memoized rendering in `cached` if it was made from `stamp`, else renders anew.
pub(super) fn memoized(cached: &mut Cached, stamp: u64, render: impl FnOnce() -> Html) -> Rc<Html> {
    match &cached.html {
        Some(html) if cached.stamp == stamp => html.clone(),
        _ => {
            let html = Rc::new(render());
            cached.stamp = stamp;
            cached.html = Some(html.clone());
            html
        }
    }
}

impl App {
    /// A memoized panel as it is, when it is not `panel`'s turn to refresh.
    pub(super) fn kept(&self, panel: u32, cached: impl Fn(&Memos) -> &Cached) -> Option<Html> {
        if self.refresh & panel != 0 {
            return None;
        }
        let memos = self.memos.borrow();
        let cached = cached(&memos);
        let content = cached.html.clone()?;
        Some(html! { <Memo stamp={cached.stamp} content={content} /> })
    }
}
