//! The post loop: posts one frame to a list of connections, at most
//! `max_in_flight` at a time, each after a token from the worker's rate
//! gate and within a timeout, starting none once the deadline is near.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use super::BroadcasterDeps;
use crate::ids::ConnectionId;
use crate::ports::{ConnectionPoster, PostError};
use crate::rate::RateGate;

/// The posts of one try: what finished, and what was never started
/// because the deadline came near.
pub(super) struct Round<'a> {
    pub finished: Vec<(&'a ConnectionId, Result<(), PostError>)>,
    pub not_started: Vec<&'a ConnectionId>,
}

/// Posts `frame` to `ids`, at most `max_in_flight` at once, each after a
/// token from the worker's gate, starting none after `stop_at`.
pub(super) async fn post_round<'a>(
    ids: &[&'a ConnectionId],
    frame: &Bytes,
    stop_at: Instant,
    deps: &BroadcasterDeps,
) -> Round<'a> {
    let poster = deps.poster.as_ref();
    let gate = deps.gate.as_deref();
    let timeout = deps.settings.post_timeout;
    let limit = deps.settings.max_in_flight.max(1);
    let mut in_flight = FuturesUnordered::new();
    let mut finished = Vec::with_capacity(ids.len());
    let mut next = 0;
    let mut stopped = false;
    loop {
        let may_start = !stopped && next < ids.len() && in_flight.len() < limit;
        if !may_start && in_flight.is_empty() {
            break;
        }
        // Completions first, so in-flight posts are never starved while
        // this loop waits for a token.
        tokio::select! {
            biased;
            Some(done) = in_flight.next(), if !in_flight.is_empty() => finished.push(done),
            admitted = admit(gate, stop_at), if may_start => {
                if admitted {
                    in_flight.push(post_one(poster, ids[next], frame, timeout));
                    next += 1;
                } else {
                    stopped = true;
                }
            }
        }
    }
    Round {
        finished,
        not_started: ids[next..].to_vec(),
    }
}

/// Whether one more post may start: before `stop_at`, with a token.
async fn admit(gate: Option<&RateGate>, stop_at: Instant) -> bool {
    if Instant::now() >= stop_at {
        return false;
    }
    match gate {
        None => true,
        Some(gate) => gate.acquire_before(stop_at).await,
    }
}

async fn post_one<'a>(
    poster: &dyn ConnectionPoster,
    id: &'a ConnectionId,
    frame: &Bytes,
    timeout: Duration,
) -> (&'a ConnectionId, Result<(), PostError>) {
    let result = match tokio::time::timeout(timeout, poster.post(id, frame)).await {
        Ok(result) => result,
        Err(_) => Err(PostError::Transport(
            format!("no answer within {} ms", timeout.as_millis()).into(),
        )),
    };
    (id, result)
}

pub(super) fn error_text(result: &Result<(), PostError>) -> String {
    match result {
        Ok(()) => String::new(),
        Err(error) => error.to_string(),
    }
}
