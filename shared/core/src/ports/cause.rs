//! What an adapter's failure came from: the SDK's (or the transport's)
//! error, kept whole, or a message where there is no error to keep.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// The cause of a port error. Its text is the whole chain (`outer: inner:
/// …`), so a log line of the port error says everything; the error itself
/// stays reachable ([`Cause::downcast_ref`]) for whoever must tell SDK
/// errors apart. Cloning shares it.
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync + 'static>);

impl Cause {
    pub fn new<E: Error + Send + Sync + 'static>(error: E) -> Self {
        Self(Arc::new(error))
    }

    /// The error it holds, when it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }
}

/// A cause with no error behind it: what the adapter found wrong.
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Self::new(Message(message))
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        Self::from(message.to_owned())
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// The chain is already in the text; the held error is reached by
/// downcasting, not through `source`.
impl Error for Cause {}

/// Two causes are the same when they say the same.
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("dispatch failure")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_text_is_the_chain_and_the_error_stays_reachable() {
        let cause = Cause::new(Outer(std::io::Error::other("connection reset")));
        assert_eq!(cause.to_string(), "dispatch failure: connection reset");
        assert!(cause.downcast_ref::<Outer>().is_some());
        assert_eq!(Cause::from("throttled").to_string(), "throttled");
    }
}
