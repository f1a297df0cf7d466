//! Turns what the clients saw into the run's figures: latency
//! distribution, throughput, loss, duplicates, ordering and errors.

use std::collections::{BTreeMap, HashSet};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::clients::ClientLog;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>, unit_per_ms: f64) -> Self {
        let at = |q: f64| h.value_at_quantile(q) as f64 / unit_per_ms;
        Self {
            min: h.min() as f64 / unit_per_ms,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: h.max() as f64 / unit_per_ms,
        }
    }
}

#[derive(Debug)]
pub struct Deliveries {
    /// Unique (client, message) pairs received.
    pub delivered: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub lost: u64,
    /// Frames that arrived after a frame with a higher room-stream `seq`
    /// (a client restores their order from `seq`).
    pub seq_inversions: u64,
    /// `seq`s missing between the first and last one each client got
    /// (what a client would fetch with `history`; 0 when nothing is lost).
    pub seq_gaps: u64,
    /// Message frames that carried a `seq`.
    pub with_seq: u64,
    /// Publish→receive latency in µs.
    pub latency_us: Histogram<u64>,
    /// First publish to last delivery, µs.
    pub span_us: u64,
    /// Deliveries per 100 ms bucket since the first publish.
    pub per_100ms: Vec<u64>,
    pub errors: BTreeMap<String, u64>,
}

/// Analyses every client's log. `published_us[seq]` is when message `seq`
/// was published (µs since start; `None` if publishing it failed), and
/// `room_of[seq]` the room it went to.
pub fn analyse(logs: &[ClientLog], published_us: &[Option<u64>], room_of: &[usize]) -> Deliveries {
    let mut d = Deliveries {
        delivered: 0,
        duplicates: 0,
        out_of_order: 0,
        lost: 0,
        seq_inversions: 0,
        seq_gaps: 0,
        with_seq: 0,
        latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
        span_us: 0,
        per_100ms: Vec::new(),
        errors: BTreeMap::new(),
    };
    let first_publish = published_us.iter().flatten().min().copied().unwrap_or(0);
    let mut last_receive = first_publish;
    for log in logs {
        let mut seen = HashSet::new();
        let mut last_seq: Option<u32> = None;
        let (gaps, inversions, with_seq) = stream_order(&log.received);
        d.seq_gaps += gaps;
        d.seq_inversions += inversions;
        d.with_seq += with_seq;
        for &(seq, at, _) in &log.received {
            if !seen.insert(seq) {
                d.duplicates += 1;
                continue;
            }
            if last_seq.is_some_and(|last| seq < last) {
                d.out_of_order += 1;
            }
            last_seq = Some(last_seq.map_or(seq, |l| l.max(seq)));
            let Some(Some(sent)) = published_us.get(seq as usize) else {
                continue;
            };
            d.delivered += 1;
            let _ = d.latency_us.record(at.saturating_sub(*sent).max(1));
            last_receive = last_receive.max(at);
            let bucket = (at.saturating_sub(first_publish) / 100_000) as usize;
            if d.per_100ms.len() <= bucket {
                d.per_100ms.resize(bucket + 1, 0);
            }
            d.per_100ms[bucket] += 1;
        }
        let expected: u64 = room_of
            .iter()
            .zip(published_us)
            .filter(|(room, sent)| **room == log.room && sent.is_some())
            .count() as u64;
        let got = published_us
            .iter()
            .enumerate()
            .filter(|(seq, sent)| sent.is_some() && seen.contains(&(*seq as u32)))
            .count() as u64;
        d.lost += expected - got.min(expected);
        for e in &log.errors {
            *d.errors.entry(e.clone()).or_default() += 1;
        }
    }
    d.span_us = last_receive.saturating_sub(first_publish);
    d
}

/// How presence notices reached room 0's listeners.
#[derive(Debug)]
pub struct PresenceFigures {
    pub joins: u64,
    pub leaves: u64,
    /// Notices received about churners.
    pub notices: u64,
    /// (joins + leaves) × listeners in room 0.
    pub expected: u64,
    /// Action sent → notice received, µs.
    pub latency_us: Histogram<u64>,
    /// First to last notice, µs.
    pub span_us: u64,
}

/// Times every presence notice a listener of room 0 got against when its
/// churner joined or closed.
pub fn presence(logs: &[ClientLog], churn: &crate::churn::ChurnLog) -> PresenceFigures {
    let listeners = logs.iter().filter(|l| l.room == 0).count() as u64;
    let joins = churn.joined_at.len() as u64;
    let leaves = churn.left_at.len() as u64;
    let mut figures = PresenceFigures {
        joins,
        leaves,
        notices: 0,
        expected: (joins + leaves) * listeners,
        latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
        span_us: 0,
    };
    let (mut first, mut last) = (u64::MAX, 0);
    for log in logs.iter().filter(|l| l.room == 0) {
        for (joined, user, at) in &log.presence {
            let sent = if *joined {
                churn.joined_at.get(user)
            } else {
                churn.left_at.get(user)
            };
            let Some(sent) = sent else { continue };
            figures.notices += 1;
            let _ = figures.latency_us.record(at.saturating_sub(*sent).max(1));
            first = first.min(*at);
            last = last.max(*at);
        }
    }
    figures.span_us = last.saturating_sub(first.min(last));
    figures
}

/// One client's room-stream order: gaps (missing `seq`s between its
/// lowest and highest), inversions (frames after a higher `seq`), and how
/// many frames had a `seq`. Assumes one room per client, as the harness
/// runs.
fn stream_order(received: &[(u32, u64, Option<u64>)]) -> (u64, u64, u64) {
    let seqs: Vec<u64> = received.iter().filter_map(|r| r.2).collect();
    let mut highest = 0;
    let mut inversions = 0;
    for &seq in &seqs {
        if seq < highest {
            inversions += 1;
        }
        highest = highest.max(seq);
    }
    let distinct: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
    let gaps = match (distinct.first(), distinct.last()) {
        (Some(lo), Some(hi)) => (hi - lo + 1) - distinct.len() as u64,
        _ => 0,
    };
    (gaps, inversions, seqs.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_duplicates_and_order() {
        let logs = vec![
            ClientLog {
                room: 0,
                received: vec![
                    (0, 1_000, Some(1)),
                    (2, 3_000, Some(4)),
                    (0, 3_500, Some(1)),
                    (1, 4_000, Some(2)),
                ],
                errors: vec!["closed_1001".into()],
                presence: Vec::new(),
            },
            ClientLog {
                room: 1,
                received: vec![],
                errors: vec![],
                presence: Vec::new(),
            },
        ];
        // Messages 0 and 2 went to room 0, 1 to room 1 (so client 0's
        // receipt of 1 is not expected but is counted once).
        let published = vec![Some(500), Some(600), Some(700)];
        let rooms = vec![0, 1, 0];
        let d = analyse(&logs, &published, &rooms);
        assert_eq!(d.duplicates, 1);
        assert_eq!(d.out_of_order, 1);
        assert_eq!(d.lost, 1, "client 1 never got message 1");
        assert_eq!(d.errors["closed_1001"], 1);
        assert_eq!(d.latency_us.len(), 3);
        assert_eq!(d.latency_us.min(), 500);
        assert_eq!(d.with_seq, 4);
        assert_eq!(d.seq_inversions, 2, "1 and 2 arrived after 4");
        assert_eq!(d.seq_gaps, 1, "3 never arrived");
    }
}
