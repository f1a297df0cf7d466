//! `history`: a page of the room's stream, for a connection with the
//! `history` right on it.

use crate::auth::Right;
use crate::protocol::{History, RequestError};
use crate::stream;

use super::context::{Frame, Reply};

pub(super) async fn history(frame: &Frame<'_>, request: History) -> Result<Reply, RequestError> {
    let History { room, range, limit } = request;
    frame.require_reader(&room, Right::History).await?;
    let deps = frame.deps;
    let page = stream::history(
        deps.streams.as_ref(),
        &deps.stream,
        &frame.caller.tenant,
        &room,
        range,
        limit,
    )
    .await
    .map_err(|e| frame.internal("could not read the room's history", &e))?;
    Ok(Reply::Frame(stream::history_frame(
        frame.request_id(),
        &room,
        &page,
    )))
}
