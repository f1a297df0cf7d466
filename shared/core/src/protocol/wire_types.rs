//! The TypeScript SDK's wire types (`clients/js/src/wire.ts`), generated
//! from the Rust types clients decode with, so the two cannot drift:
//! `tests/generated.rs` fails when the committed file is not what these
//! types generate, and `FANOUT_REGENERATE=1 cargo test -p fanout-core
//! --test generated` rewrites it.

use ts_rs::TS;

use super::{ACTIONS, ErrorCode, ReceivedFrame, ReceivedPresenceNotice, ReceivedPresentUser};
use crate::auth::Right;
use crate::event::Sender;

/// Where the generated file lives, from this crate's directory.
pub const WIRE_TS_PATH: &str = "../../clients/js/src/wire.ts";

/// The whole generated file.
pub fn wire_ts() -> String {
    let cfg = ts_rs::Config::default();
    let declarations = [
        ErrorCode::decl(&cfg),
        Right::decl(&cfg),
        Sender::decl(&cfg),
        ReceivedPresentUser::decl(&cfg),
        ReceivedPresenceNotice::decl(&cfg),
        ReceivedFrame::decl(&cfg),
    ];
    let actions: Vec<String> = ACTIONS.iter().map(|a| format!("  {:?},", a.name)).collect();
    let mut out = String::from(
        "// Generated from fanout-core's protocol types (shared/core/src/protocol/wire_types.rs);\n\
         // do not edit. Regenerate: FANOUT_REGENERATE=1 cargo test -p fanout-core --test generated\n\n",
    );
    out.push_str(&format!(
        "/** Every action a client may send. */\nexport const ACTIONS = [\n{}\n] as const;\n\n\
         /** The `action` of a client frame. */\nexport type Action = (typeof ACTIONS)[number];\n",
        actions.join("\n")
    ));
    for declaration in declarations {
        out.push_str(&format!("\nexport {}\n", one_member_a_line(&declaration)));
    }
    out
}

/// A long union, one member per line (ts-rs writes it on one).
fn one_member_a_line(declaration: &str) -> String {
    if declaration.len() <= 100 || !declaration.contains(" | {") {
        return declaration.to_owned();
    }
    declaration
        .replace(" | {", "\n  | {")
        .replacen("= {", "=\n  | {", 1)
}
