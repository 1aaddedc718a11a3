//! Topic configs: the keys Kafka defines, their defaults, and value validation.

use std::collections::BTreeMap;

use crate::error::StorageError;

/// How a config value is checked.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Long,
    Int,
    Bool,
    Ratio,
    OneOf(&'static [&'static str]),
    List(&'static [&'static str]),
}

/// Every topic config key with Kafka's default and its value kind.
const TOPIC_CONFIGS: &[(&str, &str, Kind)] = &[
    ("cleanup.policy", "delete", Kind::List(&["delete", "compact"])),
    ("compression.type", "producer", Kind::OneOf(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"])),
    ("delete.retention.ms", "86400000", Kind::Long),
    ("file.delete.delay.ms", "60000", Kind::Long),
    ("flush.messages", "9223372036854775807", Kind::Long),
    ("flush.ms", "9223372036854775807", Kind::Long),
    ("index.interval.bytes", "4096", Kind::Int),
    ("local.retention.bytes", "-2", Kind::Long),
    ("local.retention.ms", "-2", Kind::Long),
    ("max.compaction.lag.ms", "9223372036854775807", Kind::Long),
    ("max.message.bytes", "1048588", Kind::Int),
    ("message.timestamp.after.max.ms", "3600000", Kind::Long),
    ("message.timestamp.before.max.ms", "9223372036854775807", Kind::Long),
    ("message.timestamp.type", "CreateTime", Kind::OneOf(&["CreateTime", "LogAppendTime"])),
    ("min.cleanable.dirty.ratio", "0.5", Kind::Ratio),
    ("min.compaction.lag.ms", "0", Kind::Long),
    ("min.insync.replicas", "1", Kind::Int),
    ("preallocate", "false", Kind::Bool),
    ("remote.storage.enable", "false", Kind::Bool),
    ("retention.bytes", "-1", Kind::Long),
    ("retention.ms", "604800000", Kind::Long),
    ("segment.bytes", "1073741824", Kind::Int),
    ("segment.index.bytes", "10485760", Kind::Int),
    ("segment.jitter.ms", "0", Kind::Long),
    ("segment.ms", "604800000", Kind::Long),
    ("unclean.leader.election.enable", "false", Kind::Bool),
];

/// The default value of a topic config key, if the key exists.
pub fn default_of(key: &str) -> Option<&'static str> {
    TOPIC_CONFIGS.iter().find(|(k, _, _)| *k == key).map(|(_, d, _)| *d)
}

/// The DescribeConfigs type of a key (1 boolean, 2 string, 3 int, 5 long, 6 double, 7 list).
pub fn type_of(key: &str) -> i8 {
    match TOPIC_CONFIGS.iter().find(|(k, _, _)| *k == key).map(|(_, _, kind)| *kind) {
        Some(Kind::Bool) => 1,
        Some(Kind::Int) => 3,
        Some(Kind::Long) => 5,
        Some(Kind::Ratio) => 6,
        Some(Kind::List(_)) => 7,
        Some(Kind::OneOf(_)) | None => 2,
    }
}

/// True when the key holds a comma-separated list (APPEND/SUBTRACT apply to it).
pub fn is_list(key: &str) -> bool {
    matches!(TOPIC_CONFIGS.iter().find(|(k, _, _)| *k == key), Some((_, _, Kind::List(_))))
}

/// All topic config keys in name order.
pub fn keys() -> impl Iterator<Item = &'static str> {
    TOPIC_CONFIGS.iter().map(|(k, _, _)| *k)
}

/// Checks that `key` is a topic config and `value` fits it.
pub fn validate(key: &str, value: &str) -> Result<(), StorageError> {
    let Some((_, _, kind)) = TOPIC_CONFIGS.iter().find(|(k, _, _)| *k == key) else {
        return Err(StorageError::InvalidConfig(format!("unknown topic config {key}")));
    };
    let ok = match kind {
        Kind::Long => value.trim().parse::<i64>().is_ok(),
        Kind::Int => value.trim().parse::<i32>().is_ok(),
        Kind::Bool => matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false"),
        Kind::Ratio => value.trim().parse::<f64>().map(|r| (0.0..=1.0).contains(&r)).unwrap_or(false),
        Kind::OneOf(allowed) => allowed.contains(&value.trim()),
        Kind::List(allowed) => value.split(',').all(|v| allowed.contains(&v.trim())),
    };
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidConfig(format!("invalid value {value:?} for {key}")))
    }
}

/// Validates a whole set of overrides.
pub fn validate_all(configs: &BTreeMap<String, String>) -> Result<(), StorageError> {
    configs.iter().try_for_each(|(k, v)| validate(k, v))
}

/// A topic's configs as the broker acts on them, parsed once when the topic is
/// created, loaded or altered (never from strings on the produce path).
#[derive(Debug, Clone, PartialEq)]
pub struct TopicPolicy {
    /// Largest record batch accepted (`max.message.bytes`).
    pub max_message_bytes: usize,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub compact: bool,
    /// `cleanup.policy` includes `delete`: retention applies.
    pub delete: bool,
    /// `message.timestamp.type` is `LogAppendTime`: the broker stamps batches.
    pub log_append_time: bool,
    /// `retention.ms` (-1: forever).
    pub retention_ms: i64,
    /// `retention.bytes` (-1: unbounded).
    pub retention_bytes: i64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `segment.bytes`: retention deletes whole virtual segments of at most this many bytes.
    pub segment_bytes: i64,
    /// `segment.ms`: a virtual segment spans at most this much time (batch max timestamps).
    pub segment_ms: i64,
    /// `retention.ms` is set on the topic; otherwise the broker's `log_retention_ms` applies.
    pub retention_ms_set: bool,
    /// `retention.bytes` is set on the topic; otherwise the broker's `log_retention_bytes` applies.
    pub retention_bytes_set: bool,
    /// `min.cleanable.dirty.ratio` when the topic overrides it (else the broker's
    /// `log_cleaner_min_cleanable_ratio` applies).
    pub min_cleanable_dirty_ratio: Option<f64>,
    /// `min.compaction.lag.ms` when overridden (else `log_cleaner_min_compaction_lag_ms`).
    pub min_compaction_lag_ms: Option<i64>,
    /// `max.compaction.lag.ms` when overridden (else `log_cleaner_max_compaction_lag_ms`).
    pub max_compaction_lag_ms: Option<i64>,
    /// `delete.retention.ms` when overridden (else `log_cleaner_delete_retention_ms`).
    pub delete_retention_ms: Option<i64>,
}

impl TopicPolicy {
    /// The policy of a topic with these overrides (Kafka's defaults for the rest).
    /// Values were validated when they were set; an unparsable one falls back to the default.
    pub fn from_configs(configs: &BTreeMap<String, String>) -> TopicPolicy {
        fn get<T: std::str::FromStr>(configs: &BTreeMap<String, String>, key: &str) -> T {
            configs
                .get(key)
                .and_then(|v| v.trim().parse().ok())
                .or_else(|| default_of(key).and_then(|d| d.parse().ok()))
                .expect("every policy key has a parsable default")
        }
        let cleanup = configs.get("cleanup.policy").map(String::as_str).or_else(|| default_of("cleanup.policy")).unwrap_or("delete");
        let has = |p: &str| cleanup.split(',').any(|c| c.trim() == p);
        TopicPolicy {
            max_message_bytes: get::<i32>(configs, "max.message.bytes").max(0) as usize,
            compact: has("compact"),
            delete: has("delete"),
            log_append_time: configs.get("message.timestamp.type").map(|v| v.trim()) == Some("LogAppendTime"),
            retention_ms: get(configs, "retention.ms"),
            retention_bytes: get(configs, "retention.bytes"),
            min_insync_replicas: get(configs, "min.insync.replicas"),
            segment_bytes: get::<i32>(configs, "segment.bytes") as i64,
            segment_ms: get(configs, "segment.ms"),
            retention_ms_set: configs.get("retention.ms").is_some_and(|v| v.trim().parse::<i64>().is_ok()),
            retention_bytes_set: configs.get("retention.bytes").is_some_and(|v| v.trim().parse::<i64>().is_ok()),
            min_cleanable_dirty_ratio: configs.get("min.cleanable.dirty.ratio").and_then(|v| v.trim().parse().ok()),
            min_compaction_lag_ms: configs.get("min.compaction.lag.ms").and_then(|v| v.trim().parse().ok()),
            max_compaction_lag_ms: configs.get("max.compaction.lag.ms").and_then(|v| v.trim().parse().ok()),
            delete_retention_ms: configs.get("delete.retention.ms").and_then(|v| v.trim().parse().ok()),
        }
    }

    /// The `(retention.ms, retention.bytes)` that apply: the topic's overrides, else the
    /// broker's defaults (`log_retention_ms`, `log_retention_bytes`).
    pub fn retention(&self, broker_ms: i64, broker_bytes: i64) -> (i64, i64) {
        (
            if self.retention_ms_set { self.retention_ms } else { broker_ms },
            if self.retention_bytes_set { self.retention_bytes } else { broker_bytes },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_parsed_from_overrides_and_defaults() {
        let default = TopicPolicy::from_configs(&BTreeMap::new());
        assert_eq!(default.max_message_bytes, 1_048_588);
        assert!(default.delete && !default.compact && !default.log_append_time);
        assert_eq!(default.retention_ms, 604_800_000);
        let configs: BTreeMap<String, String> = [
            ("cleanup.policy", "compact, delete"),
            ("max.message.bytes", "1000"),
            ("message.timestamp.type", "LogAppendTime"),
            ("retention.bytes", "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let policy = TopicPolicy::from_configs(&configs);
        assert!(policy.compact && policy.delete && policy.log_append_time);
        assert_eq!((policy.max_message_bytes, policy.retention_bytes), (1000, 5));
        assert_eq!(policy.retention(60_000, 77), (60_000, 5), "retention.ms from the broker, bytes from the topic");
        assert_eq!(default.retention(60_000, 77), (60_000, 77));
        assert_eq!((default.segment_bytes, default.segment_ms), (1_073_741_824, 604_800_000));
    }

    #[test]
    fn defaults_validate() {
        for (k, d, _) in TOPIC_CONFIGS {
            validate(k, d).unwrap();
        }
    }

    #[test]
    fn bad_keys_and_values_fail() {
        assert!(validate("no.such.key", "1").is_err());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
    }
}
