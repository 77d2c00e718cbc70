//! The history of the page's requests and the checker's verdict on it, memoized.

use yew::prelude::*;

use crate::app::*;

impl App {
    /// The history and verdict, re-rendered when a request, an answer on screen or the verdict
    /// changed, looked at only in its turn.
    pub(in crate::app) fn memo_history(&self, ctx: &Context<Self>) -> Html {
        if let Some(kept) = self.kept(PANEL_HISTORY, |memos| &memos.history) {
            return kept;
        }
        let stage = &self.stage;
        let shown = stage.shown();
        let requests = stage.timeline().requests();
        let rows: Vec<u8> = requests
            .iter()
            .rev()
            .take(HISTORY_ROWS)
            .map(|request| match request.answer_at(shown) {
                Answer::Waiting if request.sent_at > shown => 0,
                Answer::Waiting => 1,
                Answer::Replied { .. } => 2,
                Answer::GaveUp { .. } => 3,
            })
            .collect();
        let last = requests.last().map(|request| (request.sent_at, request.node));
        let focus = stage.timeline().focus();
        let stamp = fingerprint((
            self.epoch,
            self.stage.mode(),
            requests.len(),
            last,
            rows,
            focus,
            stage.timeline().verdict().text(),
        ));
        let content = memoized(&mut self.memos.borrow_mut().history, stamp, || self.view_history(ctx));
        html! { <Memo stamp={stamp} content={content} /> }
    }

    pub(in crate::app) fn view_history(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let session = &self.stage;
        let shown = session.shown();
        let verdict = session.timeline().verdict();
        let verdict_class = if verdict.report.is_linearizable() { "ok" } else { "bad" };
        let focus = session.timeline().focus();
        let rows = session.timeline().requests().iter().enumerate().rev().take(HISTORY_ROWS).map(|(index, request)| {
            let (answer, class) = match request.answer_at(shown) {
                Answer::Waiting if request.sent_at > shown => ("sending".to_string(), "waiting"),
                Answer::Waiting => ("waiting".to_string(), "waiting"),
                Answer::Replied { reply, at } => {
                    let class =
                        if matches!(reply, dynamo_core::message::ClientReply::Error(_)) { "failed" } else { "done" };
                    (format!("{} ({})", reply_text(reply), duration_label(at - request.sent_at)), class)
                }
                Answer::GaveUp { .. } => ("gave up".to_string(), "failed"),
            };
            // Keyed by request: a new request is one inserted row, not every row rewritten.
            html! {
                <tr key={index} class={classes!(class, (focus == Some(index)).then_some("focus"))}
                    onclick={link.callback(move |_| Msg::Focus(index))}>
                    <td class="number">{ index + 1 }</td>
                    <td class="time">{ time_label(request.sent_at) }</td>
                    <td>{ session.name(request.node) }</td>
                    <td class="op">{ op_text(&request.op) }</td>
                    <td class="answer">{ answer }</td>
                </tr>
            }
        });
        html! {
            <div class="panel history">
                <h2>{ "History" }</h2>
                <div class={classes!("verdict", verdict_class)} data-testid="verdict" title="per-key linearizability (dynamo_core::checker)">
                    { verdict.text() }
                </div>
                <div class="scroll">
                    <table data-testid="history">
                        <thead><tr><th>{ "#" }</th><th>{ "sent" }</th><th>{ "via" }</th><th>{ "operation" }</th><th>{ "answer" }</th></tr></thead>
                        <tbody>{ for rows }</tbody>
                    </table>
                </div>
            </div>
        }
    }
}
