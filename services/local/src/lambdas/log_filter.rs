//! Lambda's log-level filter, applied to a bootstrap's output as Lambda
//! applies it before CloudWatch Logs (and so before EMF metrics are
//! extracted): a JSON line's `level` decides, and a line with no level,
//! an unknown one, or no JSON at all counts as INFO.

use fanout_lambda::setup::LAMBDA_LOG_LEVELS;

/// The severity of a Lambda log level (TRACE lowest); `None` for a name
/// Lambda does not know.
fn severity(level: &str) -> Option<usize> {
    LAMBDA_LOG_LEVELS
        .iter()
        .position(|l| l.eq_ignore_ascii_case(level))
}

/// The level Lambda reads `line` as.
fn level_of(line: &str) -> usize {
    let info = severity("INFO").expect("INFO is a Lambda level");
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("level")?.as_str().and_then(severity))
        .unwrap_or(info)
}

/// Whether Lambda, filtering at `configured` (`AWS_LAMBDA_LOG_LEVEL`;
/// nothing is filtered when it is unset or unknown), keeps `line`.
pub fn lambda_keeps(configured: Option<&str>, line: &str) -> bool {
    match configured.and_then(severity) {
        Some(floor) => level_of(line) >= floor,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_without_a_level_count_as_info() {
        let emf = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[]},"Delivered":1}"#;
        assert!(lambda_keeps(Some("INFO"), emf));
        assert!(!lambda_keeps(Some("WARN"), emf));
        assert!(!lambda_keeps(Some("ERROR"), "plain text"));
        assert!(lambda_keeps(Some("DEBUG"), "plain text"));
        assert!(!lambda_keeps(Some("WARN"), r#"{"level":"shout"}"#));
    }

    #[test]
    fn a_level_at_or_above_the_configured_one_is_kept() {
        assert!(lambda_keeps(Some("WARN"), r#"{"level":"WARN","msg":"x"}"#));
        assert!(lambda_keeps(Some("warn"), r#"{"level":"error"}"#));
        assert!(!lambda_keeps(Some("ERROR"), r#"{"level":"WARN"}"#));
        assert!(lambda_keeps(Some("FATAL"), r#"{"level":"FATAL"}"#));
        assert!(lambda_keeps(None, r#"{"level":"TRACE"}"#));
    }
}
