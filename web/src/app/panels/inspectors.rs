//! One inspector per node: its state, fail and heal, its store and the hints it holds.

use yew::prelude::*;

use crate::app::*;

impl App {
    /// The inspectors, each re-rendered only when its node's state, its liveness or its store
    /// changed; the store is read again only when it is their turn to refresh, since
    /// reading it formats every row.
    pub(in crate::app) fn view_inspectors(&self, ctx: &Context<Self>) -> Html {
        let stage = &self.stage;
        let nodes = stage.ring().node_count();
        let mut memos = self.memos.borrow_mut();
        memos.inspectors.resize_with(nodes, CachedInspector::default);
        let items = memos.inspectors.iter_mut().enumerate().map(|(index, cached)| {
            let node = NodeId(index as u32);
            let up = stage.is_up(node);
            let quick = fingerprint((self.epoch, self.stage.mode(), index, up, stage.status(node)));
            if cached.html.is_none() || cached.quick != quick || self.refresh & PANEL_INSPECTORS != 0 {
                let view = stage.node_view(node);
                if cached.html.is_none() || cached.quick != quick || cached.view.as_ref() != Some(&view) {
                    cached.serial += 1;
                    cached.html = Some(Rc::new(self.view_inspector(ctx, node, &view, up)));
                    cached.view = Some(view);
                }
                cached.quick = quick;
            }
            let content = cached.html.clone().unwrap_or_else(|| Rc::new(Html::default()));
            html! { <Memo key={index} stamp={cached.serial} content={content} /> }
        });
        html! { <>{ for items }</> }
    }

    pub(in crate::app) fn view_inspector(&self, ctx: &Context<Self>, node: NodeId, view: &NodeView, up: bool) -> Html {
        let state = if view.status.down {
            "down"
        } else if view.status.recovering {
            "recovering"
        } else {
            "up"
        };
        let (fail, heal) = match self.stage.mode() {
            Mode::Simulated => (Msg::Fault(FaultAction::Crash(node)), Msg::Fault(FaultAction::Restart(node))),
            _ => (
                Msg::Control(Control::Kill { node: view.name.clone() }),
                Msg::Control(Control::Restart { node: view.name.clone() }),
            ),
        };
        let (fail, heal) = (ctx.link().callback(move |_| fail.clone()), ctx.link().callback(move |_| heal.clone()));
        // A recording is only watched.
        let controllable = self.stage.mode() != Mode::Replay;
        let hidden = view.keys.len().saturating_sub(INSPECTOR_ROWS_MAX);
        let rows = view.keys.iter().take(INSPECTOR_ROWS_MAX).map(|row| {
            html! {
                <tr key={row.key.clone()} class={classes!((!row.home).then_some("foreign"), row.value.is_none().then_some("tombstone"))}>
                    <td class="key">{ &row.key }</td>
                    <td>{ row.value.clone().unwrap_or_else(|| "⌫ tombstone".to_string()) }</td>
                    <td title={format!("promised {}", row.promised)}>{ &row.ballot }</td>
                    <td class="clock">{ &row.clock }</td>
                </tr>
            }
        });
        let hints = view.hints.iter().take(INSPECTOR_ROWS_MAX).map(|hint| {
            html! { <li>{ format!("{} = {} for {}", hint.key, hint.value.clone().unwrap_or_else(|| "⌫".to_string()), hint.home) }</li> }
        });
        html! {
            <div class={classes!("panel", "inspector", state)} data-testid={format!("inspector-{}", view.name)}>
                <div class="inspector-head">
                    <h3>{ &view.name }</h3>
                    <span class={classes!("chip", state)} data-testid={format!("status-{}", view.name)}>{ state }</span>
                    <button data-testid={format!("fail-{}", view.name)} class="danger" disabled={!up || !controllable} onclick={fail}
                        title={if self.stage.mode() == Mode::Simulated { "crash the node" } else { "SIGKILL the node's process" }}>{ "fail" }</button>
                    <button data-testid={format!("heal-{}", view.name)} disabled={up || !controllable} onclick={heal}
                        title={if self.stage.mode() == Mode::Simulated { "restart it from its disk" } else { "restart the node's process" }}>{ "heal" }</button>
                </div>
                if view.from_disk {
                    <div class="note">{ if self.stage.mode() == Mode::Simulated { "down: showing what its disk holds" } else { "down: showing its last inspection" } }</div>
                }
                if !view.suspects.is_empty() {
                    <div class="note">{ format!("suspects {}", view.suspects.join(", ")) }</div>
                }
                <table class="store">
                    <thead><tr><th>{ "key" }</th><th>{ "value" }</th><th>{ "ballot" }</th><th>{ "clock" }</th></tr></thead>
                    <tbody>{ for rows }</tbody>
                </table>
                if hidden > 0 {
                    <div class="note">{ format!("and {hidden} more keys") }</div>
                }
                if !view.hints.is_empty() {
                    <div class="hints"><h4>{ "hints held" }</h4><ul>{ for hints }</ul></div>
                }
            </div>
        }
    }
}
