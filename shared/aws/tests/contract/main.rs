//! Port contract suites: each contract is written once and run against the
//! embedded adapter always, and against the AWS adapter on the
//! AWS-compatible endpoint in `FANOUT_TEST_AWS_ENDPOINT` (moto's server in
//! `./scripts/test.sh`). An embedded adapter that behaves differently from
//! its AWS twin fails here.

mod bus;
mod common;
mod presence;
mod queue;
mod store;
mod stream;
