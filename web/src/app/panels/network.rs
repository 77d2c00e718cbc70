//! The network panel: one-way cuts and heals; in a simulated run, loss and latency.

use yew::prelude::*;

use crate::app::*;

impl App {
    pub(in crate::app) fn view_network(&self, ctx: &Context<Self>) -> Html {
        let link = ctx.link();
        let (from, to) = (NodeId(self.cut_from), NodeId(self.cut_to));
        let simulated = self.stage.mode() == Mode::Simulated;
        let names = self.stage.ring().names();
        let (from_name, to_name) = (names[from.index()].clone(), names[to.index()].clone());
        let (cut, heal, heal_all) = if simulated {
            (
                Msg::Fault(FaultAction::Cut { from, to }),
                Msg::Fault(FaultAction::Heal { from, to }),
                Msg::Fault(FaultAction::HealAll),
            )
        } else {
            (
                Msg::Control(Control::Cut { from: from_name.clone(), to: to_name.clone() }),
                Msg::Control(Control::Heal { from: from_name, to: to_name }),
                Msg::Control(Control::HealAll),
            )
        };
        let controllable = self.stage.mode() != Mode::Replay;
        let cut_one = link.callback(move |_| cut.clone());
        let heal_one = link.callback(move |_| heal.clone());
        let heal_every = link.callback(move |_| heal_all.clone());
        let on_loss = link.callback(|event: InputEvent| {
            let percent: f64 = input_value(&event).parse().unwrap_or(0.0);
            Msg::Loss((percent * 10_000.0).round() as u32)
        });
        let on_latency = link.callback(|event: InputEvent| Msg::Latency(input_value(&event).parse().unwrap_or(5)));
        let stage = &self.stage;
        let cuts: Vec<String> =
            stage.cuts().into_iter().map(|(from, to)| format!("{} → {}", stage.name(from), stage.name(to))).collect();
        html! {
            <>
                <h2>{ "Network" }</h2>
                <div class="row">
                    <label>{ "from" }<select data-testid="cut-from" onchange={link.callback(|event: Event| Msg::CutFrom(select_value(&event).parse().unwrap_or(0)))}>
                        { for self.node_options(self.cut_from) }</select></label>
                    <label>{ "to" }<select data-testid="cut-to" onchange={link.callback(|event: Event| Msg::CutTo(select_value(&event).parse().unwrap_or(1)))}>
                        { for self.node_options(self.cut_to) }</select></label>
                    <button data-testid="cut" disabled={from == to || !controllable} onclick={cut_one}>{ "cut one way" }</button>
                    <button data-testid="heal-link" disabled={!controllable} onclick={heal_one}>{ "heal" }</button>
                    <button data-testid="heal-all" disabled={!controllable} onclick={heal_every}>{ "heal all" }</button>
                </div>
                <div class="row">
                    if simulated {
                        <label class="wide">{ "message loss " }
                            <input type="range" data-testid="loss" min="0" max="30" step="1"
                                value={format!("{:.0}", self.simulated().loss_per_million() as f64 / 10_000.0)} oninput={on_loss} />
                            <span data-testid="loss-label">{ format!("{:.0}%", self.simulated().loss_per_million() as f64 / 10_000.0) }</span>
                        </label>
                        <label class="wide">{ "latency " }
                            <input type="range" data-testid="latency" min="1" max={LATENCY_SLIDER_MAX_MS.to_string()} step="1"
                                value={(self.simulated().latency().1 / 1_000).max(1).to_string()} oninput={on_latency} />
                            <span data-testid="latency-label">{ format!("{}–{}", duration_label(self.simulated().latency().0), duration_label(self.simulated().latency().1)) }</span>
                        </label>
                        <span class="note" data-testid="lost" title="messages the network lost to this setting, up to the time on screen">
                            { format!("{} lost", self.simulated().timeline().lost()) }</span>
                    }
                    <span class="note">{ if cuts.is_empty() { "no cut links".to_string() } else { format!("cut: {}", cuts.join(", ")) } }</span>
                </div>
            </>
        }
    }
}
