//! What other languages and pages take from the protocol's Rust types:
//! the TypeScript SDK's generated wire types, and the README's protocol
//! tables. Reading and writing those files happens here, in a test, not
//! in the library.

use std::path::Path;

use fanout_core::protocol::wire_types::{WIRE_TS_PATH, wire_ts};
use fanout_core::protocol::{ACTIONS, ErrorCode, action_list};

#[test]
fn the_committed_typescript_is_what_the_rust_types_generate() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(WIRE_TS_PATH);
    let generated = wire_ts();
    if std::env::var_os("FANOUT_REGENERATE").is_some() {
        std::fs::write(&path, &generated).expect("write wire.ts");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: the Rust wire types changed. Regenerate it with\n  \
         FANOUT_REGENERATE=1 cargo test -p fanout-core --test generated\n\
         and rebuild the SDK.",
        path.display()
    );
}

/// The README's protocol tables are written by hand; they must name what
/// the table of actions and the error codes hold.
#[test]
fn the_readme_names_every_action_and_error_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    for action in &ACTIONS {
        assert!(
            readme.contains(&format!(r#"`{{"action":"{}""#, action.name)),
            "the README's client protocol table has no row sending '{}'",
            action.name
        );
    }
    assert!(
        readme.contains(&format!("`action` is not {}", action_list(" or "))),
        "the README's unknown_action row must list: {}",
        action_list(" or ")
    );
    for code in ErrorCode::ALL {
        assert!(
            readme.contains(&format!("| `{}` |", code.as_str())),
            "the README's error table has no row for {}",
            code.as_str()
        );
    }
}
