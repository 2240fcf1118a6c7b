//! The event history: a JetStream stream per collective, `MCO_EVENTS_<collective>`, keeping
//! every event published on `<collective>.event.>` for a bounded age and size, so that
//! `mco events --since 10m` starts in the past. The newest events push out the oldest.
//!
//! Nobody may purge it or delete from it through the API (the same reason as the direct
//! queue: a publish acknowledgement sent to `$JS.API.STREAM.PURGE.<s>` reads as a purge).
//!
//! Not for: publishing events (mcod does) or reading them (the client does).

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use serde::{Deserialize, Serialize};

use crate::{QueueError, QueueStorage};

/// The `[events]` history settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHistorySettings {
    /// How long events are kept, seconds (default 7 days).
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u64,
    /// Most bytes kept per collective (default 256 MiB); the oldest go first.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: i64,
    /// Where the broker keeps them.
    #[serde(default)]
    pub storage: QueueStorage,
}

fn default_max_age() -> u64 {
    7 * 86_400
}

fn default_max_bytes() -> i64 {
    256 * 1024 * 1024
}

impl Default for EventHistorySettings {
    fn default() -> Self {
        EventHistorySettings {
            max_age_seconds: default_max_age(),
            max_bytes: default_max_bytes(),
            storage: QueueStorage::default(),
        }
    }
}

impl EventHistorySettings {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_age_seconds == 0 {
            return Err("max_age_seconds must be at least 1".into());
        }
        if self.max_bytes < 1024 * 1024 {
            return Err("max_bytes must be at least 1 MiB".into());
        }
        Ok(())
    }

    /// The stream these settings describe for `collective`.
    pub fn stream_config(&self, collective: &str) -> stream::Config {
        stream::Config {
            name: events_stream_name(collective),
            description: Some(format!("mco events in collective {collective}")),
            subjects: vec![mco_spec::subjects::all_events(collective)],
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            max_age: Duration::from_secs(self.max_age_seconds),
            max_bytes: self.max_bytes,
            storage: match self.storage {
                QueueStorage::File => StorageType::File,
                QueueStorage::Memory => StorageType::Memory,
            },
            deny_purge: true,
            deny_delete: true,
            max_message_size: i32::try_from(mco_spec::MAX_MESSAGE_BYTES).unwrap_or(i32::MAX),
            ..stream::Config::default()
        }
    }
}

/// `MCO_EVENTS_<collective>`.
pub fn events_stream_name(collective: &str) -> String {
    format!("MCO_EVENTS_{collective}")
}

/// Gets `collective`'s event stream, creating it with `settings` when there is none (a
/// race with another node is harmless). An existing stream is used as it is: its limits
/// are the administrator's (`mco broker setup`).
pub async fn ensure_events_stream(
    js: &jetstream::Context,
    collective: &str,
    settings: &EventHistorySettings,
) -> Result<stream::Stream, QueueError> {
    let name = events_stream_name(collective);
    if let Ok(existing) = js.get_stream(&name).await {
        return Ok(existing);
    }
    match js.create_stream(settings.stream_config(collective)).await {
        Ok(created) => {
            tracing::info!("created stream {name}");
            Ok(created)
        }
        Err(create_error) => crate::existing_after_failed_create(js, &name, create_error).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_is_bounded_and_cannot_be_purged() {
        let settings = EventHistorySettings::default();
        assert!(settings.validate().is_ok());
        let config = settings.stream_config("mco");
        assert_eq!(config.name, "MCO_EVENTS_mco");
        assert_eq!(config.subjects, ["mco.event.>"]);
        assert_eq!(config.discard, DiscardPolicy::Old);
        assert!(config.deny_purge && config.deny_delete);
        assert_eq!(config.max_age, Duration::from_secs(7 * 86_400));
        let tiny = EventHistorySettings {
            max_bytes: 10,
            ..settings.clone()
        };
        assert!(tiny.validate().unwrap_err().contains("max_bytes"));
        let ageless = EventHistorySettings {
            max_age_seconds: 0,
            ..settings
        };
        assert!(ageless.validate().unwrap_err().contains("max_age_seconds"));
    }
}
