//! The events log, memoized.

use yew::prelude::*;

use crate::app::*;

impl App {
    /// The events log, re-rendered when a line was added, looked at only in its turn.
    pub(in crate::app) fn memo_events(&self) -> Html {
        if let Some(kept) = self.kept(PANEL_EVENTS, |memos| &memos.events) {
            return kept;
        }
        let log = self.stage.timeline().lines();
        let newest = log.back().map(|line| (line.at, line.node, line.text.len()));
        let oldest = log.front().map(|line| line.at);
        let stamp = fingerprint((self.epoch, self.stage.mode(), log.len(), newest, oldest));
        let content = memoized(&mut self.memos.borrow_mut().events, stamp, || self.view_events());
        html! { <Memo stamp={stamp} content={content} /> }
    }

    pub(in crate::app) fn view_events(&self) -> Html {
        let session = &self.stage;
        let lines = session.timeline().lines().iter().rev().take(LOG_LINES_SHOWN).map(|line| {
            let tone = match line.tone {
                Tone::Client => "client",
                Tone::Fault => "fault",
                Tone::Recovery => "recovery",
                Tone::Hint => "hint",
                Tone::Repair => "repair",
                Tone::Detail => "detail",
            };
            html! {
                <li class={tone}>
                    <span class="time">{ time_label(line.at) }</span>
                    <span class="who">{ session.name(line.node) }</span>
                    <span class="what">{ &line.text }</span>
                </li>
            }
        });
        html! { <ol class="events" data-testid="events">{ for lines }</ol> }
    }
}
