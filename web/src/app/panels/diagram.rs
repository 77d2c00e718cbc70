//! The space-time diagram: lanes, names and the time axis in SVG, under the canvas the frame
//! loop paints the message lines on.

use yew::prelude::*;

use crate::app::*;

impl App {
    /// The space-time diagram: lanes, names and the time axis in SVG (re-rendered with the
    /// page), the message lines on a canvas the frame loop paints.
    pub(in crate::app) fn view_diagram(&self, ctx: &Context<Self>) -> Html {
        let session = &self.stage;
        let geometry = DiagramGeometry::new(
            DIAGRAM_WIDTH,
            DIAGRAM_HEIGHT,
            session.ring().node_count(),
            session.shown(),
            session.latency_max(),
        );
        let lanes = (0..geometry.nodes as u32).map(NodeId).map(|node| {
            let status = session.status(node);
            let class = if status.down {
                "lane down"
            } else if status.recovering {
                "lane recovering"
            } else {
                "lane"
            };
            let x = geometry.lane(node);
            html! {
                <g>
                    <line class={class} x1={f(x)} y1={f(geometry.top)} x2={f(x)} y2={f(geometry.bottom)} />
                    <text class="lane-name" x={f(x)} y="14">{ session.name(node) }</text>
                </g>
            }
        });
        html! {
            <div class="drawing diagram-stage" ref={self.diagram_stage.clone()}
                onmousemove={pointer_handler(ctx, Drawing::Diagram, &self.diagram_stage)}
                onmouseleave={ctx.link().callback(|_| Msg::Pointer(Drawing::Diagram, None))}>
                <svg class="diagram" data-testid="diagram" viewBox={format!("0 0 {DIAGRAM_WIDTH} {DIAGRAM_HEIGHT}")}>
                    { for lanes }
                    <text class="axis" x="4" y={f(geometry.top + 4.0)}>{ format!("-{}", duration_label(geometry.window)) }</text>
                    <text class="axis" x="4" y={f(geometry.bottom)}>{ "now" }</text>
                </svg>
                <canvas class="lines" data-testid="diagram-canvas" ref={self.diagram_canvas.surface.node.clone()}
                    data-hovered={self.hovered.map(flight_id).unwrap_or_default()} aria-hidden="true"></canvas>
                { self.view_flight_tip(Drawing::Diagram) }
            </div>
        }
    }
}
