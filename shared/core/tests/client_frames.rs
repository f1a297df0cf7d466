//! Every client frame of `fixtures/client_frames.txt` through the parser:
//! what it parsed to, or the exact error frame the client is answered
//! with. The snapshot was recorded with the parser the protocol had before
//! it became one parser per action, so a change here is a wire change.

use fanout_core::protocol::{Envelope, RequestError, parse_request};

/// Small enough that the corpus has a payload over it.
const MAX_PAYLOAD_BYTES: usize = 256;

fn render(outcome: Result<Envelope, RequestError>) -> String {
    match outcome {
        Ok(envelope) => format!(
            "ok requestId={:?} {:?}",
            envelope.request_id, envelope.request
        ),
        Err(error) => format!("error {}", error.to_frame()),
    }
}

#[test]
fn every_recorded_frame_parses_as_recorded() {
    let corpus = include_str!("fixtures/client_frames.txt");
    let mut rendered = String::new();
    for line in corpus.lines().filter(|l| !l.starts_with('#')) {
        let outcome = parse_request(line, MAX_PAYLOAD_BYTES);
        rendered.push_str(&format!("{line}\n  => {}\n", render(outcome)));
    }
    insta::assert_snapshot!(rendered);
}
