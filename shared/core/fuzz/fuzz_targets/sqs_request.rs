//! An SQS request body sent to the local stack's SQS endpoint.
#![no_main]

use fanout_awsjson::sqs::parse_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_request(data);
});
