//! The one table of client actions: what parses each, and the text that
//! error replies, the docs and the SDK's generated types take from it.

use super::fields::{Fields, Parse};
use super::request::{
    ClientRequest, Delete, Envelope, History, Join, Leave, Ping, Presence, PresenceUpdate, Publish,
    Refresh, Signal, Update, WhoAmI,
};
use super::{ErrorCode, RequestError};

/// One client action: its `action` name, what it does, and its parser.
pub struct Action {
    pub name: &'static str,
    pub summary: &'static str,
    parse: for<'a, 'b> fn(&'a Fields<'b>) -> Result<ClientRequest, RequestError>,
}

const fn action<T: Parse + Into<ClientRequest>>(
    name: &'static str,
    summary: &'static str,
) -> Action {
    Action {
        name,
        summary,
        parse: parse_as::<T>,
    }
}

fn parse_as<T: Parse + Into<ClientRequest>>(f: &Fields<'_>) -> Result<ClientRequest, RequestError> {
    T::parse(f).map(Into::into)
}

/// Every action a client may send, in the order texts list them.
pub static ACTIONS: [Action; 12] = [
    action::<Join>(
        "join",
        "join a room: with `since`, replay what was missed; with `grant`, rights beyond the token's; with `presence`, enter its presence",
    ),
    action::<Leave>("leave", "leave a room (and its presence)"),
    action::<Publish>(
        "publish",
        "send `data` to a room's members, stored in its stream",
    ),
    action::<Signal>(
        "signal",
        "send ephemeral `data` (typing) to a room's other members",
    ),
    action::<History>(
        "history",
        "read a page of a room's stream, before or after a `seq`",
    ),
    action::<Update>(
        "update",
        "replace one of your stored messages (`seq`) with new `data`",
    ),
    action::<Delete>("delete", "delete one of your stored messages (`seq`)"),
    action::<Presence>("presence", "read a page of a room's present users"),
    action::<PresenceUpdate>("presence.update", "set your presence `state` in a room"),
    action::<Ping>("ping", "heartbeat: answered with `pong`"),
    action::<WhoAmI>(
        "whoami",
        "your connection id, tenant, user and token expiry",
    ),
    action::<Refresh>(
        "refresh",
        "move the connection to a new `token` before the current one expires",
    ),
];

/// The action names, comma-separated, `last` before the final one
/// (`", "` or `" or "`).
pub fn action_list(last: &str) -> String {
    let names: Vec<&str> = ACTIONS.iter().map(|a| a.name).collect();
    match names.split_last() {
        Some((final_name, rest)) if !rest.is_empty() => {
            format!("{}{last}{final_name}", rest.join(", "))
        }
        _ => names.join(", "),
    }
}

/// Parses one client text frame. `max_payload_bytes` bounds `data`
/// (default [`crate::limits::MAX_PAYLOAD_BYTES`]).
pub fn parse_request(body: &str, max_payload_bytes: usize) -> Result<Envelope, RequestError> {
    let expected = format!(
        r#"send a JSON object such as {{"action":"ping"}} (actions: {})"#,
        action_list(", ")
    );
    let mut fields = Fields::read(body, max_payload_bytes, &expected)?;
    let name = fields.action()?;
    let Some(action) = ACTIONS.iter().find(|a| a.name == name) else {
        return Err(fields.fail(
            ErrorCode::UnknownAction,
            format!("unknown action '{name}'; expected {}", action_list(" or ")),
        ));
    };
    fields.parse_as(action.name);
    Ok(Envelope {
        request_id: fields.request_id(),
        request: (action.parse)(&fields)?,
    })
}
