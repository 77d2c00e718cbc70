//! The ring: an SVG of what holds still (circle, tokens, cut links, nodes, the chosen key)
//! under the canvas the frame loop paints the message dots on; the legend; the hovered
//! message's tooltip.

use yew::prelude::*;

use crate::app::*;

impl App {
    /// The ring: an SVG of everything that holds still (circle, ticks, cut links, nodes, the
    /// key's marker; memoized, it changes only with the key, the receiver, node states and
    /// cuts), under a canvas the frame loop paints the message dots on.
    pub(in crate::app) fn view_ring(&self, ctx: &Context<Self>) -> Html {
        let session = &self.stage;
        let layout = &self.layout;
        let center = layout.center;
        let nodes = session.ring().node_count() as u32;
        let statuses: Vec<_> = (0..nodes).map(|node| session.status(NodeId(node))).collect();
        let stamp = fingerprint((
            self.epoch,
            self.stage.mode(),
            &self.key,
            self.receiver,
            statuses,
            session.cuts(),
            self.reduced_motion,
        ));
        let still = {
            let mut memos = self.memos.borrow_mut();
            memoized(&mut memos.ring, stamp, || self.view_ring_still(ctx))
        };
        html! {
            <div class="drawing ring-stage" ref={self.ring_stage.clone()}
                onmousemove={pointer_handler(ctx, Drawing::Ring, &self.ring_stage)}
                onmouseleave={ctx.link().callback(|_| Msg::Pointer(Drawing::Ring, None))}>
                <svg class="ring" viewBox={format!("0 0 {RING_SIZE} {RING_SIZE}")} role="img"
                    aria-label="the consistent-hash ring with messages travelling between nodes">
                    <defs>
                        <marker id="arrow-cut" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                            <path d="M0 0 L10 5 L0 10 z" fill="#D55E00" />
                        </marker>
                    </defs>
                    <Memo stamp={stamp} content={still} />
                    <text class="ring-caption" x={f(center.x)} y={f(center.y - 8.0)}>{ "SHA-1 ring" }</text>
                    <text class="ring-caption small" x={f(center.x)} y={f(center.y + 12.0)}>
                        { format!("N={} R={} W={} · {} token{} per node", session.config().replicas, session.config().read_quorum,
                            session.config().write_quorum, session.config().tokens_per_node,
                            if session.config().tokens_per_node == 1 { "" } else { "s" }) }
                    </text>
                </svg>
                <canvas class="dots" data-testid="ring-canvas" ref={self.ring_canvas.surface.node.clone()}
                    data-hovered={self.hovered.map(flight_id).unwrap_or_default()}
                    data-motion={if self.reduced_motion { "reduced" } else { "full" }}
                    aria-hidden="true"></canvas>
                // Written by the frame loop, like the clock.
                <div class="op-votes" data-testid="op-votes" ref={self.op_votes.node.clone()}
                    title="the operation in focus (click a row of the history) and its quorum votes"></div>
                { self.view_flight_tip(Drawing::Ring) }
            </div>
        }
    }

    /// The hovered message's description, next to the pointer in the drawing it is hovered in.
    pub(in crate::app) fn view_flight_tip(&self, drawing: Drawing) -> Html {
        let Some((at, pointer)) = self.hover_at else { return html! {} };
        let stage = &self.stage;
        let Some(flight) = self.hovered.and_then(|key| stage.timeline().flights().get(key)) else { return html! {} };
        if at != drawing {
            return html! {};
        }
        // Below the pointer in the drawing's upper half, above it in the lower half.
        let style = if pointer.y > pointer.height / 2.0 {
            format!("left: {:.0}px; top: {:.0}px; transform: translateY(-100%)", pointer.x + 12.0, pointer.y - 12.0)
        } else {
            format!("left: {:.0}px; top: {:.0}px", pointer.x + 12.0, pointer.y + 12.0)
        };
        html! {
            <div class="flight-tip" data-testid="flight-tip" role="tooltip" style={style}>
                { flight_title(stage, flight) }
            </div>
        }
    }

    pub(in crate::app) fn view_ring_still(&self, ctx: &Context<Self>) -> Html {
        let session = &self.stage;
        let layout = &self.layout;
        let ring = session.ring();
        let place = (!self.key.is_empty()).then(|| layout.place_key(ring, self.key.as_bytes()));
        let role_of = |node: NodeId| {
            place.as_ref().and_then(|place| place.roles.iter().find(|(n, _)| *n == node)).map(|(_, role)| *role)
        };
        let center = layout.center;

        // The arc from the key to the token that owns it, in the coordinator's colour.
        let key_arc = place.as_ref().map(|place| {
            let owner = ring
                .tokens()
                .iter()
                .map(|token| crate::layout::turn_of(&token.position))
                .min_by(|a, b| (a - place.turn).rem_euclid(1.0).total_cmp(&(b - place.turn).rem_euclid(1.0)))
                .unwrap_or(place.turn);
            html! { <path class="key-arc" d={layout.arc_path(layout.radius, place.turn, owner)} /> }
        });
        let ticks = layout.ticks.iter().map(|tick| {
            let role = role_of(tick.node).map_or("", |role| role.label());
            html! {
                <line class={classes!("tick", role)} x1={f(tick.inner.x)} y1={f(tick.inner.y)} x2={f(tick.outer.x)} y2={f(tick.outer.y)}>
                    <title>{ format!("token of {}", ring.name(tick.node)) }</title>
                </line>
            }
        });
        let cuts = session.cuts().into_iter().map(|(from, to)| {
            html! { <path class="cut" d={layout.message_path(from, to)} marker-end="url(#arrow-cut)" /> }
        });
        let nodes = layout.nodes.iter().map(|place| {
            let status = session.status(place.node);
            let role = role_of(place.node);
            let fallback_rank = role
                .filter(|role| *role == Role::Fallback)
                .and_then(|_| self.layout_rank(place.node))
                .map(|rank| format!(" {rank}"))
                .unwrap_or_default();
            let state = if status.down {
                "down"
            } else if status.recovering {
                "recovering"
            } else {
                "up"
            };
            let node = place.node.0;
            let select = ctx.link().callback(move |_| Msg::Receiver(node));
            let selected = self.receiver == node;
            html! {
                <g class={classes!("node", state, role.map(|role| role.label()), selected.then_some("selected"))}
                    data-testid={format!("node-{}", place.name)} data-state={state} onclick={select}>
                    <title>{ format!("{} ({state}); click to send requests here", place.name) }</title>
                    <circle class="node-body" cx={f(place.point.x)} cy={f(place.point.y)} r="21" />
                    if status.down {
                        <text class="node-mark" x={f(place.point.x)} y={f(place.point.y + 6.0)}>{ "✕" }</text>
                    }
                    <text class="node-name" x={f(place.label.x)} y={f(place.label.y - 3.0)}>{ &place.name }</text>
                    <text class="node-role" x={f(place.label.x)} y={f(place.label.y + 12.0)}>
                        { match (status.down, status.recovering) {
                            (true, _) => "down".to_string(),
                            (false, true) => "recovering".to_string(),
                            _ => role.map(|role| format!("{}{fallback_rank}", role.label())).unwrap_or_default(),
                        } }
                    </text>
                </g>
            }
        });
        let key_marker = place.as_ref().map(|place| {
            let label = crate::layout::point_on_circle(center, layout.radius - 30.0, place.turn);
            html! {
                <g class="key-marker" data-testid="key-marker">
                    <rect x={f(place.point.x - 6.0)} y={f(place.point.y - 6.0)} width="12" height="12"
                        transform={format!("rotate(45 {} {})", f(place.point.x), f(place.point.y))} />
                    <text x={f(label.x)} y={f(label.y + 4.0)}>{ &self.key }</text>
                </g>
            }
        });
        html! {
            <>
                <circle class="ring-circle" cx={f(center.x)} cy={f(center.y)} r={f(layout.radius)} />
                { for key_arc }
                { for ticks }
                { for cuts }
                { for nodes }
                { for key_marker }
            </>
        }
    }

    /// 1-based rank of `node` among the chosen key's fallbacks.
    pub(in crate::app) fn layout_rank(&self, node: NodeId) -> Option<usize> {
        let preference = self.stage.ring().preference(self.key.as_bytes());
        let homes = self.stage.ring().replicas();
        preference.iter().position(|n| *n == node).filter(|rank| *rank >= homes).map(|rank| rank - homes + 1)
    }
}

pub(in crate::app) fn view_legend() -> Html {
    let items = Family::ALL.iter().map(|family| {
        html! {
            <li><svg width="12" height="12"><circle cx="6" cy="6" r="5" fill={family.colour()} /></svg>{ family.label() }</li>
        }
    });
    html! {
        <ul class="legend" aria-label="message colours">
            { for items }
            <li class="shape"><svg width="12" height="12"><circle cx="6" cy="6" r="4" fill="none" stroke="#b8bec9" stroke-width="2" /></svg>{ "ring = reply" }</li>
            <li class="shape">{ "✕ = lost" }</li>
        </ul>
    }
}

fn flight_title(session: &Stage, flight: &Flight) -> String {
    let mut title = format!(
        "{} {} → {}, sent {}",
        kind_name(flight.kind),
        session.name(flight.key.from),
        session.name(flight.to),
        time_label(flight.sent_at)
    );
    if let Some(subject) = &flight.subject {
        title.push_str(&format!(", key {subject}"));
    }
    match flight.arrival {
        Arrival::Delivered(at) => title.push_str(&format!(", arrives {}", time_label(at))),
        Arrival::Dropped { at, reason } => title.push_str(&format!(", lost at {} ({reason:?})", time_label(at))),
        Arrival::Unknown => {}
    }
    title
}
