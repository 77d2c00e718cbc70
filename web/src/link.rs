//! Shareable links: a run's setup and its timed actions encoded in the URL fragment, and back.
//!
//! The format is `seed=7&n=3&r=2&w=2&tokens=1&eventual=0&latency=500-5000&timeout=100&log=...`
//! where `log` is a `~`-separated list of actions `code.at.args...` (`L.at.min.max` sets the latency), strings percent-encoded
//! (everything but ASCII letters, digits, `-` and `_`). Missing fields take their defaults, so
//! old links keep working when a field is added. Decoding never panics on a hostile link: it
//! returns a `LinkError`.

use std::fmt;

use dynamo_core::message::ClientOp;
use dynamo_core::sim::FaultAction;
use dynamo_core::types::{Blob, NodeId};

use crate::script::{Action, Setup, Timed};

/// Why a link could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkError {
    pub reason: String,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read the link: {}", self.reason)
    }
}

impl std::error::Error for LinkError {}

fn error(reason: impl Into<String>) -> LinkError {
    LinkError { reason: reason.into() }
}

/// Percent-encodes every byte but ASCII letters, digits, `-` and `_`.
pub fn escape(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            text.push(byte as char);
        } else {
            text.push_str(&format!("%{byte:02X}"));
        }
    }
    text
}

pub fn unescape(text: &str) -> Result<Vec<u8>, LinkError> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = tail.get(..2).ok_or_else(|| error("truncated %-escape"))?;
            let hex = std::str::from_utf8(hex).map_err(|_| error("bad %-escape"))?;
            bytes.push(u8::from_str_radix(hex, 16).map_err(|_| error(format!("bad %-escape %{hex}")))?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    Ok(bytes)
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, LinkError> {
    text.parse().map_err(|_| error(format!("{what} is not a number: {text:?}")))
}

/// Encodes a run as a URL fragment (without the `#`).
pub fn encode(setup: &Setup, log: &[Timed]) -> String {
    let mut fragment = format!(
        "seed={}&n={}&r={}&w={}&tokens={}&eventual={}&latency={}-{}&timeout={}",
        setup.seed,
        setup.replicas,
        setup.read_quorum,
        setup.write_quorum,
        setup.tokens_per_node,
        u8::from(setup.eventual),
        setup.latency_min_us,
        setup.latency_max_us,
        setup.request_timeout_ms,
    );
    if !log.is_empty() {
        let actions: Vec<String> = log.iter().map(encode_action).collect();
        fragment.push_str("&log=");
        fragment.push_str(&actions.join("~"));
    }
    fragment
}

fn encode_action(timed: &Timed) -> String {
    let at = timed.at;
    match &timed.action {
        Action::Request { node, op } => {
            let node = node.0;
            match op {
                ClientOp::Put { key, value } => {
                    format!("p.{at}.{node}.{}.{}", escape(key.as_bytes()), escape(value.as_bytes()))
                }
                ClientOp::Get { key } => format!("g.{at}.{node}.{}", escape(key.as_bytes())),
                ClientOp::Delete { key } => format!("d.{at}.{node}.{}", escape(key.as_bytes())),
                ClientOp::LocalQuery => format!("q.{at}.{node}"),
                ClientOp::GlobalQuery => format!("Q.{at}.{node}"),
                ClientOp::LocalDelete => format!("x.{at}.{node}"),
                ClientOp::GlobalDelete => format!("X.{at}.{node}"),
            }
        }
        Action::Fault(fault) => match fault {
            FaultAction::Crash(node) => format!("c.{at}.{}", node.0),
            FaultAction::Restart(node) => format!("s.{at}.{}", node.0),
            FaultAction::Wipe(node) => format!("w.{at}.{}", node.0),
            FaultAction::Cut { from, to } => format!("k.{at}.{}.{}", from.0, to.0),
            FaultAction::Heal { from, to } => format!("h.{at}.{}.{}", from.0, to.0),
            FaultAction::HealAll => format!("H.{at}"),
            FaultAction::Retire(node) => format!("r.{at}.{}", node.0),
        },
        Action::Loss { per_million } => format!("l.{at}.{per_million}"),
        Action::Latency { min_us, max_us } => format!("L.{at}.{min_us}.{max_us}"),
    }
}

/// Decodes a URL fragment (with or without the leading `#`); an empty fragment is the default
/// setup with no actions.
pub fn decode(fragment: &str) -> Result<(Setup, Vec<Timed>), LinkError> {
    let fragment = fragment.strip_prefix('#').unwrap_or(fragment);
    let mut setup = Setup::default();
    let mut log = Vec::new();
    for pair in fragment.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').ok_or_else(|| error(format!("{pair:?} has no '='")))?;
        match name {
            "seed" => setup.seed = number(value, "seed")?,
            "n" => setup.replicas = number(value, "n")?,
            "r" => setup.read_quorum = number(value, "r")?,
            "w" => setup.write_quorum = number(value, "w")?,
            "tokens" => setup.tokens_per_node = number(value, "tokens")?,
            "eventual" => setup.eventual = value == "1",
            "latency" => {
                let (low, high) = value.split_once('-').ok_or_else(|| error("latency is not low-high"))?;
                setup.latency_min_us = number(low, "latency")?;
                setup.latency_max_us = number(high, "latency")?;
            }
            "timeout" => setup.request_timeout_ms = number(value, "timeout")?,
            "log" => {
                for item in value.split('~').filter(|item| !item.is_empty()) {
                    log.push(decode_action(item)?);
                }
            }
            // Unknown fields come from newer links: ignore them rather than refuse the run.
            _ => {}
        }
    }
    if log.windows(2).any(|pair| pair[0].at > pair[1].at) {
        return Err(error("actions are not in time order"));
    }
    Ok((setup, log))
}

fn decode_action(item: &str) -> Result<Timed, LinkError> {
    let fields: Vec<&str> = item.split('.').collect();
    let want = |count: usize| {
        if fields.len() == count {
            Ok(())
        } else {
            Err(error(format!("action {item:?} needs {count} fields")))
        }
    };
    let at = number(fields.get(1).copied().unwrap_or_default(), "action time")?;
    let node = |index: usize| -> Result<NodeId, LinkError> { Ok(NodeId(number(fields[index], "node")?)) };
    let blob = |index: usize| -> Result<Blob, LinkError> { Ok(Blob::from(unescape(fields[index])?)) };
    let request = |node: NodeId, op: ClientOp| Action::Request { node, op };
    let action = match fields[0] {
        "p" => {
            want(5)?;
            request(node(2)?, ClientOp::Put { key: blob(3)?, value: blob(4)? })
        }
        "g" => {
            want(4)?;
            request(node(2)?, ClientOp::Get { key: blob(3)? })
        }
        "d" => {
            want(4)?;
            request(node(2)?, ClientOp::Delete { key: blob(3)? })
        }
        code @ ("q" | "Q" | "x" | "X") => {
            want(3)?;
            let op = match code {
                "q" => ClientOp::LocalQuery,
                "Q" => ClientOp::GlobalQuery,
                "x" => ClientOp::LocalDelete,
                _ => ClientOp::GlobalDelete,
            };
            request(node(2)?, op)
        }
        "c" => {
            want(3)?;
            Action::Fault(FaultAction::Crash(node(2)?))
        }
        "s" => {
            want(3)?;
            Action::Fault(FaultAction::Restart(node(2)?))
        }
        "w" => {
            want(3)?;
            Action::Fault(FaultAction::Wipe(node(2)?))
        }
        "r" => {
            want(3)?;
            Action::Fault(FaultAction::Retire(node(2)?))
        }
        "k" => {
            want(4)?;
            Action::Fault(FaultAction::Cut { from: node(2)?, to: node(3)? })
        }
        "h" => {
            want(4)?;
            Action::Fault(FaultAction::Heal { from: node(2)?, to: node(3)? })
        }
        "H" => {
            want(2)?;
            Action::Fault(FaultAction::HealAll)
        }
        "l" => {
            want(3)?;
            Action::Loss { per_million: number(fields[2], "loss")? }
        }
        "L" => {
            want(4)?;
            Action::Latency { min_us: number(fields[2], "latency")?, max_us: number(fields[3], "latency")? }
        }
        code => return Err(error(format!("unknown action {code:?}"))),
    };
    Ok(Timed { at, action })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(setup: Setup, log: Vec<Timed>) {
        let fragment = encode(&setup, &log);
        assert_eq!(decode(&format!("#{fragment}")), Ok((setup, log)), "{fragment}");
    }

    #[test]
    fn every_action_round_trips() {
        let log = vec![
            Timed { at: 0, action: Action::put(0, "apple", "red") },
            Timed { at: 10, action: Action::put(1, "k.e~y&=%#", "välue with spaces") },
            Timed { at: 20, action: Action::get(2, "apple") },
            Timed { at: 30, action: Action::delete(3, "apple") },
            Timed { at: 40, action: Action::Request { node: NodeId(4), op: ClientOp::LocalQuery } },
            Timed { at: 50, action: Action::Request { node: NodeId(4), op: ClientOp::GlobalQuery } },
            Timed { at: 55, action: Action::Request { node: NodeId(1), op: ClientOp::LocalDelete } },
            Timed { at: 56, action: Action::Request { node: NodeId(1), op: ClientOp::GlobalDelete } },
            Timed { at: 60, action: Action::Fault(FaultAction::Crash(NodeId(2))) },
            Timed { at: 70, action: Action::Fault(FaultAction::Restart(NodeId(2))) },
            Timed { at: 75, action: Action::Fault(FaultAction::Wipe(NodeId(3))) },
            Timed { at: 80, action: Action::Fault(FaultAction::Cut { from: NodeId(0), to: NodeId(1) }) },
            Timed { at: 90, action: Action::Fault(FaultAction::Heal { from: NodeId(0), to: NodeId(1) }) },
            Timed { at: 95, action: Action::Fault(FaultAction::HealAll) },
            Timed { at: 99, action: Action::Loss { per_million: 50_000 } },
            Timed { at: 120, action: Action::Latency { min_us: 2_000, max_us: 20_000 } },
        ];
        round_trip(Setup::default(), log);
        let custom = Setup {
            seed: 42,
            replicas: 3,
            read_quorum: 1,
            write_quorum: 1,
            tokens_per_node: 4,
            eventual: true,
            latency_min_us: 100,
            latency_max_us: 9_000,
            request_timeout_ms: 250,
        };
        round_trip(custom, Vec::new());
    }

    #[test]
    fn binary_values_survive() {
        let op = ClientOp::Put { key: Blob::new(&[0, 255, 46]), value: Blob::new(&[126, 37]) };
        round_trip(Setup::default(), vec![Timed { at: 1, action: Action::Request { node: NodeId(0), op } }]);
    }

    #[test]
    fn empty_and_partial_links_take_defaults() {
        assert_eq!(decode(""), Ok((Setup::default(), Vec::new())));
        let (setup, log) = decode("#seed=9&future=1").expect("unknown fields are ignored");
        assert_eq!(setup, Setup { seed: 9, ..Setup::default() });
        assert!(log.is_empty());
    }

    #[test]
    fn hostile_links_are_refused_not_panicked_on() {
        for bad in [
            "seed=x",
            "seed",
            "latency=5",
            "log=p.1.0.key",
            "log=z.1",
            "log=g.1.0.%G1",
            "log=g.1.0.%4",
            "log=g..0.k",
            "log=g.5.0.a~g.1.0.b",
            "log=c",
            "log=L.1.500",
            "log=L.1.x.900",
        ] {
            assert!(decode(bad).is_err(), "{bad} was accepted");
        }
    }
}
