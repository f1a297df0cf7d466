//! A connection whose token has expired: its last frame says why, then it
//! is closed (on AWS through @connections DELETE; `$disconnect` then
//! cleans up its records as for any other close).

use bytes::Bytes;

use crate::ports::ConnectionRecord;
use crate::protocol::RequestError;

use super::MessageDeps;
use super::context::Reply;

pub(super) async fn close_expired(
    record: &ConnectionRecord,
    request_id: Option<&str>,
    deps: &MessageDeps,
) -> Reply {
    let frame = RequestError::token_expired(request_id.map(str::to_owned)).to_frame();
    tracing::info!(connection_id = %record.id, expired_at = record.token_expires_at,
        "closing a connection whose token expired");
    let poster = deps.poster.as_ref();
    if let Err(error) = poster.post(&record.id, &Bytes::from(frame.clone())).await {
        tracing::debug!(%error, connection_id = %record.id, "could not post the expiry frame");
    }
    match poster.delete(&record.id).await {
        Ok(()) => Reply::Closed,
        Err(error) => {
            tracing::warn!(%error, connection_id = %record.id, "could not close the expired connection");
            Reply::Frame(frame)
        }
    }
}
