//! What on-call does with a dead-letter queue, on any [`Queue`]: look at
//! messages without consuming them, and move them back to their source
//! queue (the equivalent of SQS's `StartMessageMoveTask`, which also works
//! on the embedded queues and on AWS-compatible servers without it).

use std::collections::HashSet;
use std::time::Duration;

use fanout_core::event::EventEnvelope;
use fanout_core::limits::SQS_MAX_BATCH_ENTRIES;
use fanout_core::plan::{
    DEAD_LETTER_DETAIL, DEAD_LETTER_EVENT_ID, DEAD_LETTER_REASON, DeliveryJob,
};
use fanout_core::ports::{OutgoingMessage, Queue, QueueError, ReceivedMessage};

/// How long peeked messages are held while a peek collects them.
const PEEK_HOLD: Duration = Duration::from_secs(30);
/// How long a message being moved stays hidden in the DLQ; if the move
/// dies midway it reappears there, never lost.
const MOVE_HOLD: Duration = Duration::from_secs(60);

/// Up to `max` messages, left in the queue and visible again at once. Each
/// peek counts as a receive (as in SQS), so only peek queues without a
/// redrive policy of their own — dead-letter queues.
pub async fn peek(queue: &dyn Queue, max: usize) -> Result<Vec<ReceivedMessage>, QueueError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    while out.len() < max {
        let batch = queue
            .receive(
                (max - out.len()).min(SQS_MAX_BATCH_ENTRIES),
                Duration::ZERO,
                PEEK_HOLD,
            )
            .await?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            if seen.insert(m.message_id.clone()) {
                out.push(m);
            }
        }
    }
    for m in &out {
        queue
            .change_visibility(&m.receipt_handle, Duration::ZERO)
            .await?;
    }
    Ok(out)
}

/// Moves up to `max` messages (bodies and attributes) from `from` to `to`,
/// at most `per_second` a second when given. A message is deleted from
/// `from` only after `to` accepted it. Returns how many moved.
pub async fn redrive(
    from: &dyn Queue,
    to: &dyn Queue,
    max: usize,
    per_second: Option<u32>,
) -> Result<usize, QueueError> {
    let mut moved = 0;
    while moved < max {
        let started = tokio::time::Instant::now();
        let batch = from
            .receive(
                (max - moved).min(SQS_MAX_BATCH_ENTRIES),
                Duration::ZERO,
                MOVE_HOLD,
            )
            .await?;
        if batch.is_empty() {
            break;
        }
        let outgoing: Vec<OutgoingMessage> = batch
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut o = OutgoingMessage::new(i.to_string(), m.body.clone());
                o.attributes = m.attributes.clone();
                o
            })
            .collect();
        let failed: HashSet<String> = to
            .send_batch(&outgoing)
            .await?
            .into_iter()
            .map(|f| f.id)
            .collect();
        let done: Vec<String> = batch
            .iter()
            .enumerate()
            .filter(|(i, _)| !failed.contains(&i.to_string()))
            .map(|(_, m)| m.receipt_handle.clone())
            .collect();
        from.delete(&done).await?;
        moved += done.len();
        if !failed.is_empty() {
            return Err(QueueError::EntriesFailed {
                queue: to.name().to_string(),
                failed: failed.len(),
                total: batch.len(),
                code: "SendMessageBatch".into(),
                message: "some messages were not accepted; they stay in the dead-letter queue"
                    .into(),
            });
        }
        if let Some(rate) = per_second.filter(|r| *r > 0) {
            let budget = Duration::from_secs_f64(done.len() as f64 / f64::from(rate));
            tokio::time::sleep_until(started + budget).await;
        }
    }
    Ok(moved)
}

fn age(sent_at_ms: i64, now_ms: i64) -> String {
    let secs = ((now_ms - sent_at_ms) / 1000).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// What one dead-lettered message is, for on-call (`fanout dlq show`,
/// the local dashboard): its id, age, why it failed and what it held.
pub fn describe(m: &ReceivedMessage, now_ms: i64) -> String {
    let mut lines = vec![format!(
        "message {}  age {}  received {} times",
        m.message_id,
        age(m.sent_at_ms, now_ms),
        m.receive_count
    )];
    // Dead-lettered at once because retrying cannot fix it.
    let refused = m.attributes.get(DEAD_LETTER_REASON).map(|reason| {
        format!(
            "  reason     {reason}: {} (dead-lettered at once: retrying cannot fix it; fix the publisher)",
            m.attributes
                .get(DEAD_LETTER_DETAIL)
                .map(String::as_str)
                .unwrap_or("")
        )
    });
    if let Some(line) = &refused {
        lines.push(line.clone());
    }
    if refused.is_some() && serde_json::from_str::<EventEnvelope>(&m.body).is_err() {
        if let Some(event_id) = m.attributes.get(DEAD_LETTER_EVENT_ID) {
            lines.push(format!("  event      {event_id}"));
        }
        let mut body: String = m.body.chars().take(200).collect();
        if m.body.len() > 200 {
            body.push('…');
        }
        lines.push(format!("  body       {body}"));
    } else if let Ok(job) = serde_json::from_str::<DeliveryJob>(&m.body) {
        lines.push(format!("  event      {}", job.event_id));
        match &job.dead_letter {
            Some(d) => {
                // As the message itself spells it (`retries_exhausted`).
                let reason = serde_json::to_value(d.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                lines.push(format!("  reason     {reason} ({}): {}", d.code, d.detail));
                lines.push(format!("  attempts   {}  dead-lettered at {}", d.attempts, d.at));
            }
            None => lines.push(format!(
                "  reason     the job failed {} receives (crash or timeout; see the broadcaster's logs)",
                m.receive_count
            )),
        }
        let shown: Vec<&str> = job.connections.iter().take(5).map(|c| c.as_str()).collect();
        lines.push(format!(
            "  failed     {} connection(s): {}{}",
            job.connections.len(),
            shown.join(", "),
            if job.connections.len() > 5 {
                ", …"
            } else {
                ""
            }
        ));
    } else if let Ok(event) = serde_json::from_str::<EventEnvelope>(&m.body) {
        lines.push(format!(
            "  event      {}  ({} from {})",
            event.id, event.detail_type, event.source
        ));
        match (
            m.attributes.get("ERROR_CODE"),
            m.attributes.get("ERROR_MESSAGE"),
        ) {
            _ if refused.is_some() => {}
            (Some(code), message) => lines.push(format!(
                "  reason     the rule could not deliver it: {code}: {}",
                message.map(String::as_str).unwrap_or("")
            )),
            _ => lines.push(format!(
                "  reason     planning failed {} times (see the planner's logs for this event id)",
                m.receive_count
            )),
        }
    } else {
        let mut body: String = m.body.chars().take(200).collect();
        if m.body.len() > 200 {
            body.push('…');
        }
        lines.push(format!("  body       {body}"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str, attributes: &[(&str, &str)]) -> ReceivedMessage {
        ReceivedMessage {
            message_id: "m1".into(),
            receipt_handle: "r".into(),
            body: body.into(),
            receive_count: 1,
            sent_at_ms: 0,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn records_dead_lettered_at_once_show_their_reason_and_event() {
        let text = describe(
            &message(
                "not json",
                &[
                    (DEAD_LETTER_REASON, "unreadable_job"),
                    (DEAD_LETTER_DETAIL, "expected value at line 1"),
                ],
            ),
            0,
        );
        assert!(text.contains("unreadable_job: expected value"), "{text}");
        assert!(text.contains("body       not json"), "{text}");

        let envelope = r#"{"version":"0","id":"ev-1","detail-type":"fanout.broadcast","source":"acme.orders","time":"2026-11-23T00:00:00Z","region":"us-east-1","resources":[],"detail":{"tenant":"acme","target":{}}}"#;
        let text = describe(
            &message(
                envelope,
                &[
                    (DEAD_LETTER_REASON, "bad_detail"),
                    (DEAD_LETTER_EVENT_ID, "ev-1"),
                ],
            ),
            0,
        );
        assert!(text.contains("event      ev-1"), "{text}");
        assert!(text.contains("bad_detail"), "{text}");
        assert!(!text.contains("planning failed"), "{text}");
        assert_eq!(text.matches("ev-1").count(), 1, "{text}");
    }
}
