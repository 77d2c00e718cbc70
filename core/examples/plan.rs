//! How much a membership change moves, against the ideal share.
//!
//! cargo run --release -p dynamo-core --example plan -- [--keys K] [--nodes N]
//!
//! For a cluster of N nodes (5 by default, named as the seed names them: 5554, 5556, ...) and
//! 1, 4, 16, 64 and 256 tokens per node, plans a join of one more node and a leave of one, and
//! counts over K sample keys ("key0", "key1", ...) how many keys change homes and how many home
//! copies move. A join moves at best 1 / (N + 1) of the copies (the new node's share), a leave
//! 1 / N (the leaving node's share).

use dynamo_core::layout::{Change, Layout, Plan};
use dynamo_core::types::NodeId;

fn main() {
    let (mut keys, mut nodes) = (100_000u32, 5usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|value| value.parse::<u64>().ok());
        match (arg.as_str(), value) {
            ("--keys", Some(value)) if value > 0 => keys = value as u32,
            ("--nodes", Some(value)) if (3..63).contains(&value) => nodes = value as usize,
            _ => {
                eprintln!("usage: plan [--keys K (at least 1)] [--nodes N (3 to 62)]");
                std::process::exit(2);
            }
        }
    }
    let names: Vec<String> = (0..nodes).map(|index| (5554 + 2 * index).to_string()).collect();
    let newcomer = (5554 + 2 * nodes).to_string();
    println!("{nodes} nodes, N = 3, {keys} sample keys");
    println!("| tokens per node | change | keys that change homes | copies moved | ideal | moved / ideal |");
    println!("|---|---|---|---|---|---|");
    for tokens in [1, 4, 16, 64, 256] {
        let layout = Layout::bootstrap(1, &names, tokens, 3);
        let join = layout.plan(&[Change::Join { name: newcomer.clone() }], 2, 2, NodeId(0)).expect("a join plans");
        let leave = layout.plan(&[Change::Leave { name: names[0].clone() }], 2, 2, NodeId(0)).expect("a leave plans");
        for (label, plan, ideal) in [
            (format!("join {newcomer}"), &join, 1.0 / (nodes + 1) as f64),
            (format!("leave {}", names[0]), &leave, 1.0 / nodes as f64),
        ] {
            let (changed, copies) = moved(plan, keys);
            println!("| {tokens} | {label} | {:.3} | {copies:.3} | {ideal:.3} | {:.2} |", changed, copies / ideal);
        }
    }
}

/// The share of sample keys whose home set changes, and of home copies that move.
fn moved(plan: &Plan, keys: u32) -> (f64, f64) {
    let keys: Vec<String> = (0..keys).map(|key| format!("key{key}")).collect();
    let moved = plan.moved(keys.iter().map(|key| key.as_bytes()));
    (moved.key_share(), moved.copy_share(plan.next.replicas()))
}
