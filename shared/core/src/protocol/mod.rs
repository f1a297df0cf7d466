//! The client protocol: JSON text frames between clients and the gateway.
//!
//! Client → server: the actions of [`ACTIONS`], each with an optional
//! `requestId` that every reply echoes. Each action is its own type in
//! `request`, parsed from the shared field cursor (`fields`).
//! Server → client ([`ServerFrame`]): `ack`, `joined`, `history`,
//! `presence`, `pong`, `whoami`, `refreshed` and `error` replies;
//! `message`, `message.updated`, `message.deleted`, `replay`, `signal` and
//! presence frames. Clients decode them as [`ReceivedFrame`], from which
//! the TypeScript SDK's types are generated (`wire_types`).
//!
//! Order: events stored in a room's stream carry a per-room `seq`,
//! strictly increasing with no gaps. Delivery is at-least-once and posts
//! run in parallel, so frames may arrive twice or out of order; a client
//! restores the order, drops duplicates and detects a gap from `seq`
//! alone (and fills a gap with `history`). Parsing never panics: every bad
//! input becomes a [`RequestError`] carrying one of the closed set of
//! [`ErrorCode`]s.

mod actions;
mod data;
mod error;
mod error_code;
mod fields;
mod frames;
mod received;
mod request;
pub mod wire_types;

pub use actions::{ACTIONS, Action, action_list, parse_request};
pub use data::{DataError, check_data, check_payload_size};
pub use error::RequestError;
pub use error_code::ErrorCode;
pub use frames::{PresenceFrame, PresentUser, ServerFrame};
pub use received::{ReceivedFrame, ReceivedPresenceNotice, ReceivedPresentUser};
pub use request::{
    ClientRequest, Delete, Envelope, History, HistoryRange, Join, Leave, Ping, Presence,
    PresenceUpdate, Publish, Refresh, Signal, Update, WhoAmI,
};

/// The close code of a connection closed because its token expired
/// (locally; on AWS, API Gateway closes it after the `token_expired`
/// error frame).
pub const TOKEN_EXPIRED_CLOSE_CODE: u16 = 4001;

/// Longest `requestId` echoed back.
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// Deepest nesting of arrays and objects a `data` payload may have. Every
/// hop (detail, EventBridge envelope, SQS) wraps it in a few more levels,
/// and JSON parsers along the way stop at 128.
pub const MAX_DATA_DEPTH: usize = 64;

/// Largest presence `state`, serialized: it travels in every presence
/// notice and page.
pub const MAX_PRESENCE_STATE_BYTES: usize = 1024;

/// Longest token accepted in `refresh` or as a `grant` (far above any
/// real JWT; bounds what one frame makes the verifier parse).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    #[test]
    fn null_is_data_too() {
        let envelope =
            parse_request(r#"{"action":"publish","room":"lobby","data":null}"#, 1024).unwrap();
        match envelope.request {
            ClientRequest::Publish(Publish { data, .. }) => assert_eq!(data.get(), "null"),
            other => panic!("{other:?}"),
        }
        assert!(parse_request(r#"{"action":"publish","room":"lobby"}"#, 1024).is_err());
    }
    use crate::limits::MAX_PAYLOAD_BYTES;

    fn parse(body: &str) -> Result<Envelope, RequestError> {
        parse_request(body, MAX_PAYLOAD_BYTES)
    }

    #[test]
    fn parses_every_action() {
        let e = parse(r#"{"action":"join","room":"lobby","requestId":"r1"}"#).unwrap();
        assert_eq!(e.request_id.as_deref(), Some("r1"));
        assert!(
            matches!(e.request, ClientRequest::Join(Join { ref room, grant: None, since: None, presence: None }) if room.as_str() == "lobby")
        );
        let e = parse(r#"{"action":"join","room":"lobby","grant":"g.h.s"}"#).unwrap();
        assert!(
            matches!(e.request, ClientRequest::Join(Join { grant: Some(ref g), .. }) if g == "g.h.s")
        );
        let e = parse(r#"{"action":"refresh","token":"a.b.c"}"#).unwrap();
        assert!(
            matches!(e.request, ClientRequest::Refresh(Refresh { ref token }) if token == "a.b.c")
        );
        assert!(parse(r#"{"action":"refresh"}"#).is_err());
        assert!(parse(r#"{"action":"refresh","token":7}"#).is_err());
        assert!(parse(r#"{"action":"join","room":"lobby","grant":""}"#).is_err());
        let e = parse(r#"{"action":"leave","room":"lobby"}"#).unwrap();
        assert!(matches!(e.request, ClientRequest::Leave(_)));
        assert_eq!(e.request_id, None);
        let e = parse(r#"{"action":"ping","requestId":"r4"}"#).unwrap();
        assert!(matches!(e.request, ClientRequest::Ping(_)));
        let e =
            parse(r#"{"action":"publish","room":"lobby","data":{"text":"hi"},"requestId":"r3"}"#)
                .unwrap();
        match e.request {
            ClientRequest::Publish(Publish { room, data }) => {
                assert_eq!(room.as_str(), "lobby");
                assert_eq!(data.get(), r#"{"text":"hi"}"#);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn each_bad_input_gets_its_code_and_keeps_the_request_id() {
        let cases: &[(&str, ErrorCode, Option<&str>)] = &[
            ("not json", ErrorCode::BadRequest, None),
            ("[1,2]", ErrorCode::BadRequest, None),
            (r#"{"requestId":"a"}"#, ErrorCode::BadRequest, Some("a")),
            (
                r#"{"action":7,"requestId":"b"}"#,
                ErrorCode::BadRequest,
                Some("b"),
            ),
            (
                r#"{"action":"dance","requestId":"c"}"#,
                ErrorCode::UnknownAction,
                Some("c"),
            ),
            (
                r#"{"action":"join","requestId":"d"}"#,
                ErrorCode::BadRequest,
                Some("d"),
            ),
            (
                r#"{"action":"join","room":"a#b","requestId":"e"}"#,
                ErrorCode::BadRequest,
                Some("e"),
            ),
            (r#"{"action":"join","room":5}"#, ErrorCode::BadRequest, None),
            (
                r#"{"action":"publish","room":"x","requestId":"f"}"#,
                ErrorCode::BadRequest,
                Some("f"),
            ),
            (
                r#"{"action":"ping","requestId":5}"#,
                ErrorCode::BadRequest,
                None,
            ),
        ];
        for (body, code, rid) in cases {
            let err = parse(body).expect_err(body);
            assert_eq!(err.code, *code, "{body}");
            assert_eq!(err.request_id.as_deref(), *rid, "{body}");
        }
    }

    #[test]
    fn oversized_payload_is_payload_too_large() {
        let big = format!(
            r#"{{"action":"publish","room":"x","data":"{}","requestId":"g"}}"#,
            "a".repeat(200)
        );
        let err = parse_request(&big, 100).unwrap_err();
        assert_eq!(err.code, ErrorCode::PayloadTooLarge);
        assert_eq!(err.request_id.as_deref(), Some("g"));
        assert!(parse_request(&big, 300).is_ok());
    }

    #[test]
    fn frames_serialize_as_documented() {
        assert_eq!(
            ServerFrame::Ack {
                request_id: Some("r1")
            }
            .to_json(),
            r#"{"type":"ack","requestId":"r1"}"#
        );
        assert_eq!(
            ServerFrame::Pong { request_id: None }.to_json(),
            r#"{"type":"pong"}"#
        );
        let err = RequestError::new(
            Some("r3".into()),
            ErrorCode::NotMember,
            "join room 'lobby' before publishing to it",
        );
        assert_eq!(
            err.to_frame(),
            r#"{"type":"error","requestId":"r3","code":"not_member","message":"join room 'lobby' before publishing to it"}"#
        );
        let data = RawValue::from_string(r#"{"text":"hi"}"#.into()).unwrap();
        let frame = ServerFrame::Message {
            id: "e1",
            room: Some("lobby"),
            seq: None,
            from: None,
            data: Some(&data),
            sent_at: "2026-11-22T09:00:00.000Z",
            updated_at: None,
            deleted: false,
        }
        .to_json();
        assert_eq!(
            frame,
            r#"{"type":"message","id":"e1","room":"lobby","data":{"text":"hi"},"sentAt":"2026-11-22T09:00:00.000Z"}"#
        );
        let back: ReceivedFrame = serde_json::from_str(&frame).unwrap();
        assert!(matches!(back, ReceivedFrame::Message { ref id, .. } if id == "e1"));
    }

    #[test]
    fn error_codes_are_snake_case() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
    }
}
