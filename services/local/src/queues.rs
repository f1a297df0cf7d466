//! The stack's queues by name, as the SQS endpoint, the dashboard and the
//! redrive tasks find them, with each source queue's redrive policy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use fanout_core::ports::Queue;

/// The stack's queues by name, and which dead-letter queue each source
/// queue redrives to (its RedrivePolicy).
pub struct QueueDirectory {
    queues: Vec<Arc<dyn Queue>>,
    /// Source queue name → (dead-letter queue name, maxReceiveCount).
    redrive: HashMap<String, (String, u32)>,
    /// Names of the dead-letter queues (redrive targets, and the bus's
    /// and sweeper's, which a rule or a mapping writes to).
    dead_letter: HashSet<String>,
}

impl QueueDirectory {
    pub fn new(
        queues: Vec<Arc<dyn Queue>>,
        dead_letter_queues: Vec<Arc<dyn Queue>>,
        redrive: &[(&str, &str, u32)],
    ) -> Self {
        Self {
            dead_letter: dead_letter_queues
                .iter()
                .map(|q| q.name().to_string())
                .collect(),
            queues: queues.into_iter().chain(dead_letter_queues).collect(),
            redrive: redrive
                .iter()
                .map(|(source, dlq, max)| (source.to_string(), (dlq.to_string(), *max)))
                .collect(),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.queues.iter().map(|q| q.name())
    }

    pub fn all(&self) -> &[Arc<dyn Queue>] {
        &self.queues
    }

    pub fn is_dead_letter_queue(&self, name: &str) -> bool {
        self.dead_letter.contains(name)
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<dyn Queue>> {
        self.queues.iter().find(|q| q.name() == name)
    }

    /// The queue whose redrive policy targets `dead_letter_queue`.
    pub fn dead_letters_into(&self, dead_letter_queue: &str) -> Option<&Arc<dyn Queue>> {
        let (source, _) = self
            .redrive
            .iter()
            .find(|(_, (dlq, _))| dlq == dead_letter_queue)?;
        self.by_name(source)
    }

    /// The queue `source` dead-letters to, and after how many receives.
    pub fn redrive_of(&self, source: &str) -> Option<(&Arc<dyn Queue>, u32)> {
        let (dlq, max) = self.redrive.get(source)?;
        Some((self.by_name(dlq)?, *max))
    }
}
