//! The client panel: key, value, receiver, the requests, the last answer, and (simulated runs)
//! the workload generator.

use yew::prelude::*;

use crate::app::*;

impl App {
    pub(in crate::app) fn view_client(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let key = Blob::from(self.key.as_str());
        let value = Blob::from(self.value.as_str());
        let put = {
            let (key, value) = (key.clone(), value.clone());
            link.callback(move |_| Msg::Request(ClientOp::Put { key: key.clone(), value: value.clone() }))
        };
        let get = {
            let key = key.clone();
            link.callback(move |_| Msg::Request(ClientOp::Get { key: key.clone() }))
        };
        let delete = link.callback(move |_| Msg::Request(ClientOp::Delete { key: key.clone() }));
        let stage = &self.stage;
        // A recording takes no requests.
        let watching = self.stage.mode() == Mode::Replay;
        let latest = stage.timeline().requests().last();
        let (result, result_class) = match latest {
            None => ("no request yet".to_string(), "idle"),
            Some(request) => {
                let via = stage.name(request.node);
                match request.answer_at(stage.shown()) {
                    Answer::Waiting => (format!("{} via {via}: waiting…", op_text(&request.op)), "waiting"),
                    Answer::Replied { reply, .. } => {
                        let class = if matches!(reply, dynamo_core::message::ClientReply::Error(_)) {
                            "failed"
                        } else {
                            "done"
                        };
                        (format!("{} via {via}: {}", op_text(&request.op), reply_text(reply)), class)
                    }
                    Answer::GaveUp { .. } => {
                        (format!("{} via {via}: no answer, the client gave up", op_text(&request.op)), "failed")
                    }
                }
            }
        };
        html! {
            <div class="panel client">
                <h2>{ "Client" }</h2>
                <div class="row">
                    <label>{ "key" }<input data-testid="key" value={self.key.clone()}
                        oninput={link.callback(|event: InputEvent| Msg::Key(input_value(&event)))} /></label>
                    <label>{ "value" }<input data-testid="value" value={self.value.clone()}
                        oninput={link.callback(|event: InputEvent| Msg::Value(input_value(&event)))} /></label>
                    <label>{ "via" }
                        <select data-testid="receiver" onchange={link.callback(|event: Event| Msg::Receiver(select_value(&event).parse().unwrap_or(0)))}>
                            { for self.node_options(self.receiver) }
                        </select>
                    </label>
                </div>
                <div class="row buttons">
                    <button data-testid="put" disabled={watching} onclick={put}>{ "put" }</button>
                    <button data-testid="get" disabled={watching} onclick={get}>{ "get" }</button>
                    <button data-testid="delete" disabled={watching} onclick={delete}>{ "delete" }</button>
                    <button data-testid="local-query" disabled={watching} title="every pair stored on the receiving node"
                        onclick={link.callback(|_| Msg::Request(ClientOp::LocalQuery))}>{ "@" }</button>
                    <button data-testid="global-query" disabled={watching} title="every pair in the store"
                        onclick={link.callback(|_| Msg::Request(ClientOp::GlobalQuery))}>{ "*" }</button>
                    <button data-testid="burst" class="quiet" disabled={watching} title={format!("{BURST_WRITES} writes at once, to every node")}
                        onclick={link.callback(|_| Msg::Burst)}>{ "burst" }</button>
                </div>
                <div class={classes!("result", result_class)} data-testid="result" aria-live="polite">{ result }</div>
                if self.stage.mode() == Mode::Simulated {
                    { self.view_workload(ctx) }
                }
            </div>
        }
    }

    /// The workload generator: random gets and puts at a rate, over a few keys, each logged
    /// like a request sent by hand.
    pub(in crate::app) fn view_workload(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let running = self.simulated().workload().is_some();
        let field = |label: &'static str, testid: &'static str, which: WorkloadField, value: u32, max: u32| {
            html! {
                <label>{ label }<input type="number" data-testid={testid} min="0" max={max.to_string()} value={value.to_string()}
                    onchange={link.callback(move |event: Event| Msg::WorkloadField(which, change_value(&event)))} /></label>
            }
        };
        let settings = self.workload;
        html! {
            <div class="row workload">
                { field("ops/s", "workload-rate", WorkloadField::Rate, settings.rate_per_second, WORKLOAD_RATE_MAX) }
                { field("keys", "workload-keys", WorkloadField::Keys, settings.keys, 1_000) }
                { field("reads %", "workload-reads", WorkloadField::Reads, settings.reads_percent, 100) }
                <button data-testid="workload" class={classes!(running.then_some("active"))} aria-pressed={running.to_string()}
                    title="random gets and puts on keys w0, w1, ... at this rate (per simulated second), from the run's seed"
                    onclick={link.callback(|_| Msg::Workload)}>{ if running { "stop workload" } else { "start workload" } }</button>
            </div>
        }
    }

    pub(in crate::app) fn node_options(&self, selected: u32) -> impl Iterator<Item = Html> + '_ {
        self.stage.ring().names().iter().enumerate().map(move |(index, name)| {
            html! { <option value={index.to_string()} selected={index as u32 == selected}>{ name }</option> }
        })
    }
}
