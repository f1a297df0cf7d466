//! The broadcaster's outcome classifier: what one @connections post's
//! result means for delivery. Pure, so every answer API Gateway can give is
//! table-tested.

use crate::ports::PostError;

/// What to do about one connection after a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the frame is on its way to the client.
    Delivered,
    /// 410: the connection no longer exists; delete its records.
    Gone,
    /// Worth trying again later (throttling, server errors, timeouts).
    Retryable(RetryReason),
    /// Trying again cannot help; the post goes to the dead-letter queue.
    Permanent(PermanentReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryReason {
    /// 429 / LimitExceededException: the account budget is spent, or the
    /// client's buffer is full.
    Throttled,
    /// 5xx from API Gateway.
    ServerError,
    /// No answer: timeout, refused or reset connection.
    Transport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermanentReason {
    /// 413: the frame is larger than API Gateway posts.
    PayloadTooLarge,
    /// 403: IAM or endpoint misconfiguration. On-call must see this.
    Forbidden,
    /// Any other 4xx (or an unexpected status).
    ClientError,
}

impl RetryReason {
    /// Stable code, used in metrics, logs and dead-letter records.
    pub fn code(self) -> &'static str {
        match self {
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::Transport => "transport",
        }
    }
}

impl PermanentReason {
    /// Stable code, used in metrics, logs and dead-letter records.
    pub fn code(self) -> &'static str {
        match self {
            Self::PayloadTooLarge => "payload_too_large",
            Self::Forbidden => "forbidden",
            Self::ClientError => "client_error",
        }
    }

    /// Whether this points at the deployment rather than at one message.
    pub fn is_misconfiguration(self) -> bool {
        matches!(self, Self::Forbidden)
    }
}

/// Classifies one post's result.
pub fn classify(result: &Result<(), PostError>) -> Outcome {
    let error = match result {
        Ok(()) => return Outcome::Delivered,
        Err(error) => error,
    };
    match error {
        PostError::Gone => Outcome::Gone,
        PostError::Throttled(_) => Outcome::Retryable(RetryReason::Throttled),
        PostError::Transport(_) => Outcome::Retryable(RetryReason::Transport),
        PostError::PayloadTooLarge => Outcome::Permanent(PermanentReason::PayloadTooLarge),
        PostError::Forbidden(_) => Outcome::Permanent(PermanentReason::Forbidden),
        PostError::Http { status, .. } => classify_status(*status),
    }
}

/// Classifies an HTTP status that came without a recognised error type.
fn classify_status(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        410 => Outcome::Gone,
        // 408 Request Timeout is a timeout like any other.
        408 => Outcome::Retryable(RetryReason::Transport),
        429 => Outcome::Retryable(RetryReason::Throttled),
        413 => Outcome::Permanent(PermanentReason::PayloadTooLarge),
        403 => Outcome::Permanent(PermanentReason::Forbidden),
        500..=599 => Outcome::Retryable(RetryReason::ServerError),
        _ => Outcome::Permanent(PermanentReason::ClientError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;
    use PermanentReason::*;
    use RetryReason::*;

    fn http(status: u16) -> Result<(), PostError> {
        Err(PostError::Http {
            status,
            message: String::new().into(),
        })
    }

    #[test]
    fn every_answer_has_its_outcome() {
        let table: Vec<(Result<(), PostError>, Outcome)> = vec![
            (Ok(()), Delivered),
            (Err(PostError::Gone), Gone),
            (http(410), Gone),
            (
                Err(PostError::Throttled("LimitExceededException".into())),
                Retryable(Throttled),
            ),
            (http(429), Retryable(Throttled)),
            (http(500), Retryable(ServerError)),
            (http(502), Retryable(ServerError)),
            (http(503), Retryable(ServerError)),
            (http(504), Retryable(ServerError)),
            (http(408), Retryable(Transport)),
            (
                Err(PostError::Transport("operation timed out".into())),
                Retryable(Transport),
            ),
            (
                Err(PostError::Transport("connection refused".into())),
                Retryable(Transport),
            ),
            (Err(PostError::PayloadTooLarge), Permanent(PayloadTooLarge)),
            (http(413), Permanent(PayloadTooLarge)),
            (
                Err(PostError::Forbidden("ForbiddenException".into())),
                Permanent(Forbidden),
            ),
            (http(403), Permanent(Forbidden)),
            (http(400), Permanent(ClientError)),
            (http(404), Permanent(ClientError)),
            (http(301), Permanent(ClientError)),
            (http(204), Delivered),
        ];
        for (result, expected) in table {
            assert_eq!(classify(&result), expected, "{result:?}");
        }
    }

    #[test]
    fn only_forbidden_is_a_misconfiguration() {
        assert!(Forbidden.is_misconfiguration());
        assert!(!PayloadTooLarge.is_misconfiguration());
        assert!(!ClientError.is_misconfiguration());
    }

    #[test]
    fn codes_are_distinct() {
        let codes = [
            Throttled.code(),
            ServerError.code(),
            Transport.code(),
            PayloadTooLarge.code(),
            Forbidden.code(),
            ClientError.code(),
        ];
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len());
    }
}
