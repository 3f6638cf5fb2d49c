//! The p90 of each stage's visits as history knew it when a visit started: the `stalled` rule
//! must never look into the future. Answered offline for every visit start at once: visits
//! (ordered by end) enter a Fenwick tree over duration ranks as a sweep over the starts passes
//! their end, and the p90 is an order-statistic descent. O((visits + starts) log visits).

use dealledger_events::Timestamp;
use dealledger_projections::{Folded, Name, Timeline, View};

/// Per stage: visit starts in order, with the p90 (µs) of the visits that ended before each.
#[derive(Debug, Default)]
pub struct StageHistory {
    answers: Vec<Vec<(Timestamp, Option<i64>)>>,
}

struct Fenwick {
    tree: Vec<u32>,
}

impl Fenwick {
    fn new(n: usize) -> Fenwick {
        Fenwick { tree: vec![0; n + 1] }
    }

    fn add(&mut self, index: usize) {
        let mut i = index + 1;
        while i < self.tree.len() {
            self.tree[i] += 1;
            i += i & i.wrapping_neg();
        }
    }

    /// The 0-based index of the k-th (1-based) smallest element.
    fn kth(&self, mut k: u32) -> usize {
        let mut pos = 0;
        let mut step = (self.tree.len()).next_power_of_two();
        while step > 0 {
            let next = pos + step;
            if next < self.tree.len() && self.tree[next] < k {
                pos = next;
                k -= self.tree[next];
            }
            step >>= 1;
        }
        pos
    }
}

impl StageHistory {
    /// Every deal's visits under `view`.
    pub fn build(timeline: &Timeline, view: View) -> StageHistory {
        let names = timeline.names.len();
        // Per stage: (end, duration) of completed visits, and visit starts.
        let mut ended: Vec<Vec<(Timestamp, i64)>> = vec![Vec::new(); names];
        let mut starts: Vec<Vec<Timestamp>> = vec![Vec::new(); names];
        let mut folded = Folded::default();
        for deal in timeline.deals() {
            if !folded.fold(&deal, view) {
                continue;
            }
            for visit in &folded.visits {
                let stage = visit.stage as usize;
                starts[stage].push(visit.start);
                if let Some(end) = visit.end {
                    ended[stage].push((end, end.0 - visit.start.0));
                }
            }
        }
        let answers =
            ended.into_iter().zip(starts).map(|(ended, starts)| Self::sweep(ended, starts)).collect();
        StageHistory { answers }
    }

    fn sweep(mut ended: Vec<(Timestamp, i64)>, mut starts: Vec<Timestamp>) -> Vec<(Timestamp, Option<i64>)> {
        ended.sort_unstable();
        starts.sort_unstable();
        starts.dedup();
        let mut durations: Vec<i64> = ended.iter().map(|e| e.1).collect();
        durations.sort_unstable();
        let mut tree = Fenwick::new(durations.len());
        let mut next = 0;
        let mut count = 0u32;
        let mut out = Vec::with_capacity(starts.len());
        for start in starts {
            // "Before the visit started": visits that ended strictly earlier.
            while next < ended.len() && ended[next].0 < start {
                // Equal durations share the first rank of their run: kth still finds the value.
                let rank = durations.partition_point(|d| *d < ended[next].1);
                tree.add(rank);
                count += 1;
                next += 1;
            }
            let p90 = (count > 0).then(|| {
                // Nearest rank: the value at rank ceil(0.9 n).
                let k = (u64::from(count) * 9).div_ceil(10) as u32;
                durations[tree.kth(k)]
            });
            out.push((start, p90));
        }
        out
    }

    /// The p90 (µs) of `stage`'s visits that ended before `start`, a visit start of the
    /// timeline this was built from.
    pub fn p90_before(&self, stage: Name, start: Timestamp) -> Option<i64> {
        let answers = self.answers.get(stage as usize)?;
        let i = answers.binary_search_by_key(&start, |a| a.0).ok()?;
        answers[i].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // The sweep equals sorting the qualifying durations for each start.
        #[test]
        fn sweep_equals_sorting(visits in proptest::collection::vec((0i64..100, 1i64..50), 0..60), starts in proptest::collection::vec(0i64..160, 1..20)) {
            let ended: Vec<(Timestamp, i64)> = visits.iter().map(|(s, d)| (Timestamp(s + d), *d)).collect();
            let starts: Vec<Timestamp> = starts.into_iter().map(Timestamp).collect();
            let got = StageHistory::sweep(ended.clone(), starts.clone());
            for (start, p90) in got {
                let mut before: Vec<i64> = ended.iter().filter(|e| e.0 < start).map(|e| e.1).collect();
                before.sort_unstable();
                let expected = (!before.is_empty()).then(|| before[(before.len() * 9).div_ceil(10) - 1]);
                prop_assert_eq!(p90, expected, "start {:?}", start);
            }
        }
    }
}
