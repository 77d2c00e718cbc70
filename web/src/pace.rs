//! How often the page does its heavier work, and what a frame costs.
//!
//! A `Throttle` spaces out work that need not happen every frame (re-rendering the panels
//! while time runs); `FrameCosts` keeps the page's own work per frame, measured with the page
//! clock, for the readout next to the frame rate. Times are milliseconds of the page clock,
//! passed in, so this is plain arithmetic tested natively; it must never read a clock itself.

use std::collections::VecDeque;

/// Lets something happen at most once per `period_ms`, and at once after `force`.
#[derive(Clone, Debug)]
pub struct Throttle {
    period_ms: f64,
    last_ms: Option<f64>,
}

impl Throttle {
    pub fn new(period_ms: f64) -> Throttle {
        Throttle { period_ms, last_ms: None }
    }

    /// Whether the work is due at `now_ms`; if so, the period starts again from `now_ms`.
    pub fn ready(&mut self, now_ms: f64) -> bool {
        let due = self.last_ms.is_none_or(|last| now_ms - last >= self.period_ms || now_ms < last);
        if due {
            self.last_ms = Some(now_ms);
        }
        due
    }

    /// Makes the next `ready` true, whenever it is asked.
    pub fn force(&mut self) {
        self.last_ms = None;
    }
}

/// Which of several heavy panels a render refreshes: every one after `all` (a person used a
/// control), otherwise one per render in turn, so no single frame re-renders them all.
#[derive(Clone, Debug)]
pub struct Rotation {
    count: u32,
    next: u32,
    all: bool,
}

impl Rotation {
    pub fn new(count: u32) -> Rotation {
        Rotation { count: count.clamp(1, 32), next: 0, all: true }
    }

    /// Makes the next `take` name every panel.
    pub fn all(&mut self) {
        self.all = true;
    }

    /// The panels the coming render refreshes, one bit per panel.
    pub fn take(&mut self) -> u32 {
        if std::mem::take(&mut self.all) {
            return u32::MAX >> (32 - self.count);
        }
        let panel = 1 << self.next;
        self.next = (self.next + 1) % self.count;
        panel
    }
}

/// The newest `capacity` per-frame work times, in milliseconds.
#[derive(Clone, Debug)]
pub struct FrameCosts {
    samples: VecDeque<f64>,
    capacity: usize,
}

impl FrameCosts {
    pub fn new(capacity: usize) -> FrameCosts {
        FrameCosts { samples: VecDeque::with_capacity(capacity), capacity: capacity.max(1) }
    }

    pub fn push(&mut self, work_ms: f64) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(work_ms.max(0.0));
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The `percent` percentile (nearest rank) of the kept samples, or `None` without any.
    pub fn percentile(&self, percent: f64) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = self.samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let rank = ((percent.clamp(0.0, 100.0) / 100.0) * sorted.len() as f64).ceil() as usize;
        Some(sorted[rank.clamp(1, sorted.len()) - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_work_through_once_per_period() {
        let mut throttle = Throttle::new(250.0);
        let due: Vec<bool> = [0.0, 16.0, 249.0, 250.0, 400.0, 520.0].iter().map(|&now| throttle.ready(now)).collect();
        assert_eq!(due, [true, false, false, true, false, true]);
    }

    #[test]
    fn a_forced_throttle_is_due_at_once_and_then_waits_again() {
        let mut throttle = Throttle::new(250.0);
        assert!(throttle.ready(0.0));
        throttle.force();
        assert!(throttle.ready(10.0));
        assert!(!throttle.ready(20.0));
        assert!(throttle.ready(260.0));
    }

    #[test]
    fn a_clock_that_went_back_does_not_stall_the_throttle() {
        // A new page clock (a reload in the same object is impossible, but a bad timestamp is not).
        let mut throttle = Throttle::new(250.0);
        assert!(throttle.ready(1_000.0));
        assert!(throttle.ready(5.0));
    }

    #[test]
    fn panels_refresh_one_per_render_in_turn_or_all_at_once() {
        let mut rotation = Rotation::new(3);
        let taken: Vec<u32> = (0..5).map(|_| rotation.take()).collect();
        assert_eq!(taken, [0b111, 0b001, 0b010, 0b100, 0b001]);
        rotation.all();
        assert_eq!((rotation.take(), rotation.take()), (0b111, 0b010));
    }

    #[test]
    fn percentiles_use_the_nearest_rank_of_the_newest_samples() {
        let mut costs = FrameCosts::new(4);
        assert_eq!(costs.percentile(50.0), None);
        for work in [9.0, 1.0, 2.0, 3.0, 4.0] {
            costs.push(work);
        }
        // 9.0 was pushed out.
        assert_eq!(costs.len(), 4);
        assert_eq!(costs.percentile(50.0), Some(2.0));
        assert_eq!(costs.percentile(95.0), Some(4.0));
        assert_eq!(costs.percentile(0.0), Some(1.0));
        assert_eq!(costs.percentile(100.0), Some(4.0));
    }
}
