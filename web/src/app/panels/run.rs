//! The run panel: a simulated run's options (restarting builds a fresh cluster from the seed),
//! or the real cluster's description in Live and Replay modes; the guided scenarios.

use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::app::*;

impl App {
    pub(in crate::app) fn view_config(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let draft = &self.draft;
        let field = |label: &'static str, testid: &'static str, which: Field, value: String| {
            html! {
                <label>{ label }
                    <input data-testid={testid} type="number" min="0" value={value}
                        onchange={link.callback(move |event: Event| Msg::Draft(which, change_value(&event)))} />
                </label>
            }
        };
        html! {
            <>
                <h2>{ "Run" }<span class="hint">{ " restarting replays nothing: a fresh cluster from the seed" }</span></h2>
                <div class="row config">
                    { field("seed", "seed", Field::Seed, draft.seed.to_string()) }
                    { field("N", "config-n", Field::Replicas, draft.replicas.to_string()) }
                    { field("R", "config-r", Field::ReadQuorum, draft.read_quorum.to_string()) }
                    { field("W", "config-w", Field::WriteQuorum, draft.write_quorum.to_string()) }
                    { field("tokens", "config-tokens", Field::Tokens, draft.tokens_per_node.to_string()) }
                    { field("latency min µs", "latency-min", Field::LatencyMin, draft.latency_min_us.to_string()) }
                    { field("latency max µs", "latency-max", Field::LatencyMax, draft.latency_max_us.to_string()) }
                    { field("timeout ms", "config-timeout", Field::Timeout, draft.request_timeout_ms.to_string()) }
                    <label class="check">
                        <input type="checkbox" data-testid="config-eventual" checked={draft.eventual}
                            onchange={link.callback(|event: Event| {
                                let checked = event.target_unchecked_into::<HtmlInputElement>().checked();
                                Msg::Draft(Field::Eventual, checked.to_string())
                            })} />
                        { "eventual (allow R+W ≤ N)" }
                    </label>
                    <button data-testid="restart" onclick={link.callback(|_| Msg::Restart)}>{ "restart run" }</button>
                </div>
            </>
        }
    }

    /// Live and Replay modes' stand-in for the run options: the real cluster's description.
    pub(in crate::app) fn view_cluster(&self) -> Html {
        let (Stage::Live(session) | Stage::Replay(session)) = &self.stage else { return html! {} };
        let config = session.config();
        let rows = session.cluster().nodes.iter().enumerate().map(|(index, node)| {
            let socket = match session.socket(NodeId(index as u32)) {
                crate::live::Socket::Open => "connected",
                crate::live::Socket::Connecting => "connecting",
                crate::live::Socket::Closed => "closed",
            };
            html! {
                <tr>
                    <td>{ &node.name }</td>
                    <td>{ format!("ws://{}/client", node.ws) }</td>
                    <td>{ &node.resp }</td>
                    <td>{ if session.is_up(NodeId(index as u32)) { "running" } else { "down" } }</td>
                    if !session.is_replay() {
                        <td>{ socket }</td>
                    }
                </tr>
            }
        });
        let title = if session.is_replay() { "Recording" } else { "Live cluster" };
        let hint = if session.is_replay() {
            " an exported live run, replayed: watch only".to_string()
        } else if self.pump.token().is_some() {
            format!(" real processes; the screen is at most {} s behind them", crate::live::LAG_MAX / 1_000_000)
        } else {
            " real processes; no admin token, so faults will be refused (open the page from the supervisor)".to_string()
        };
        html! {
            <>
                <h2>{ title }<span class="hint">{ hint }</span></h2>
                <div class="note">{ format!("N={} R={} W={}, {} token(s) per node, request timeout {} ms, operation timeout {} ms",
                    config.replicas, config.read_quorum, config.write_quorum, config.tokens_per_node,
                    config.request_timeout_ms, config.operation_timeout_ms) }</div>
                <table class="store" data-testid="cluster">
                    <tbody>{ for rows }</tbody>
                </table>
            </>
        }
    }

    pub(in crate::app) fn view_scenarios(&self, ctx: &Context<Self>) -> Html {
        let buttons = Scenario::ALL.iter().map(|scenario| {
            let scenario = *scenario;
            html! {
                <button data-testid={scenario.slug()} title={scenario.description()}
                    onclick={ctx.link().callback(move |_| Msg::Scenario(scenario))}>{ scenario.title() }</button>
            }
        });
        html! {
            <div class="panel scenarios">
                <h2>{ "Guided scenarios" }<span class="hint">{ " on the chosen key; hover for what to watch" }</span></h2>
                <div class="row buttons">{ for buttons }</div>
            </div>
        }
    }
}
