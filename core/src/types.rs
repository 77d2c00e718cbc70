//! Small shared vocabulary: time, identifiers and byte strings.
//!
//! Everything here crosses the wire or the disk, so sizes are fixed-width integers (`u64`,
//! `u32`), never `usize`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Time in microseconds since an arbitrary origin chosen by the driver. The core never reads a
/// clock: every time-dependent call takes `now: Micros`.
pub type Micros = u64;

/// Milliseconds to microseconds.
pub const fn ms(milliseconds: u64) -> Micros {
    milliseconds * 1_000
}

/// A node's index in the cluster configuration (0-based, stable for the cluster's life).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Bits of a node-minted id (message, transaction, client) that hold the node's incarnation,
/// above everything else. A node's incarnation is durable state of the core (`Node::start`
/// bumps it and persists the bump before any message leaves), so no id of one life of a node is
/// handed out again in a later one, whatever the wall clock says.
pub const INCARNATION_BITS: u32 = 24;

/// The last incarnation a node may reach: the all-ones value is reserved for the ids of the
/// core's own repair writes. A node that has restarted this often refuses to start.
pub const INCARNATION_MAX: u64 = (1 << INCARNATION_BITS) - 2;

/// The first message or transaction id of `incarnation`: the incarnation in the top bits, a
/// counter below.
pub const fn incarnation_base(incarnation: u64) -> u64 {
    incarnation << (64 - INCARNATION_BITS)
}

/// A client session. Each client numbers its requests with increasing sequence numbers and
/// keeps at most one request outstanding, which makes `(client, seq)` a unique request id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u64);

/// The identity of one client request, the same on every retry of that request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId {
    pub client: ClientId,
    pub seq: u64,
}

/// An immutable, cheaply cloned byte string used for keys and values.
///
/// Serialized as a JSON string when it is valid UTF-8 (the common case, and what the visualizer
/// shows), otherwise as an array of bytes, so no value is ever altered on the way through.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Blob(Arc<[u8]>);

impl Blob {
    pub fn new(bytes: &[u8]) -> Blob {
        Blob(Arc::from(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes as text, replacing invalid UTF-8; for display only.
    pub fn to_text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl std::borrow::Borrow<[u8]> for Blob {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for Blob {
    fn from(text: &str) -> Blob {
        Blob::new(text.as_bytes())
    }
}

impl From<String> for Blob {
    fn from(text: String) -> Blob {
        Blob::new(text.as_bytes())
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Blob {
        Blob(Arc::from(bytes))
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) => write!(f, "{text:?}"),
            Err(_) => write!(f, "{:?}", &self.0[..]),
        }
    }
}

impl fmt::Display for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return serializer.serialize_bytes(&self.0);
        }
        match std::str::from_utf8(&self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => serializer.collect_seq(self.0.iter()),
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Blob, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a byte array")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Blob, E> {
                Ok(Blob::from(text))
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Blob, E> {
                Ok(Blob::new(bytes))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob::from(bytes))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(byte) = seq.next_element::<u8>()? {
                    bytes.push(byte);
                }
                Ok(Blob::from(bytes))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Visit)
        } else {
            deserializer.deserialize_bytes(Visit)
        }
    }
}

/// A small deterministic pseudo-random generator (SplitMix64). The core takes randomness as a
/// seed parameter, so a run is reproduced exactly from its seed; no OS randomness is used.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "Rng::below needs a positive bound");
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// A uniform value in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.below(high - low + 1)
    }

    /// True with probability `per_million / 1_000_000`.
    pub fn chance(&mut self, per_million: u32) -> bool {
        per_million > 0 && self.below(1_000_000) < per_million as u64
    }

    /// A new generator whose stream is independent of this one's continuation.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64() ^ 0xD1B5_4A32_D192_ED03)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_round_trips_text_and_bytes() {
        let text = Blob::from("héllo");
        let json = serde_json::to_string(&text).unwrap();
        assert_eq!(json, "\"héllo\"");
        assert_eq!(serde_json::from_str::<Blob>(&json).unwrap(), text);
        let bytes = Blob::new(&[0xff, 0x00, 0x41]);
        let json = serde_json::to_string(&bytes).unwrap();
        assert_eq!(json, "[255,0,65]");
        assert_eq!(serde_json::from_str::<Blob>(&json).unwrap(), bytes);
    }

    #[test]
    fn rng_is_deterministic_and_bounded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
