//! Topics as the domain offers them: lookup by name or id, auto-creation,
//! administration, and the partitions inside them.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::{Broker, BrokerError, Partition};
use crate::error::StorageError;
use crate::storage::Topic;

/// How a request names a topic: by name, or (newer versions) by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicRef<'a> {
    /// By name.
    Name(&'a str),
    /// By topic id.
    Id(Uuid),
}

impl Broker {
    /// The topic, or the "unknown" error that fits how it was named.
    pub fn topic(&self, topic: TopicRef<'_>) -> Result<Arc<Topic>, BrokerError> {
        match topic {
            TopicRef::Name(name) => self.topics.get(name).ok_or(BrokerError::UnknownTopicOrPartition),
            TopicRef::Id(id) => self.topics.get_by_id(id).ok_or(BrokerError::UnknownTopicId),
        }
    }

    /// The topic, created with the default partition count if it is missing and
    /// `auto_create` (and the broker's `auto_create_topics`) allow it.
    pub fn topic_or_create(&self, name: &str, auto_create: bool) -> Result<Arc<Topic>, BrokerError> {
        match self.topics.get(name) {
            Some(topic) => Ok(topic),
            None if auto_create && self.config.auto_create_topics => {
                Ok(self.topics.get_or_create(name, self.config.num_partitions)?)
            }
            None => Err(BrokerError::UnknownTopicOrPartition),
        }
    }

    /// Every topic, sorted by name.
    pub fn all_topics(&self) -> Vec<Arc<Topic>> {
        self.topics.all()
    }

    /// One partition of a topic.
    pub fn partition(&self, topic: &Arc<Topic>, index: i32) -> Result<Partition, BrokerError> {
        let log = topic.partition(index).ok_or(BrokerError::UnknownTopicOrPartition)?;
        self.check_leader(topic, index)?;
        Ok(Partition::new(topic.clone(), log.clone(), self.store.clone(), self.metrics.clone()))
    }

    /// Every partition of a topic, in index order.
    pub fn partitions(&self, topic: &Arc<Topic>) -> Vec<Partition> {
        topic
            .partitions
            .iter()
            .map(|log| Partition::new(topic.clone(), log.clone(), self.store.clone(), self.metrics.clone()))
            .collect()
    }

    /// Checks a topic creation without doing it.
    pub fn validate_create_topic(&self, name: &str, partitions: i32, configs: &BTreeMap<String, String>) -> Result<(), BrokerError> {
        Ok(self.topics.validate_create(name, partitions, configs)?)
    }

    /// Creates a topic.
    pub fn create_topic(&self, name: &str, partitions: i32, configs: BTreeMap<String, String>) -> Result<Arc<Topic>, BrokerError> {
        Ok(self.topics.create(name, partitions, configs)?)
    }

    /// Deletes a topic with its data and the committed offsets of it.
    pub fn delete_topic(&self, topic: TopicRef<'_>) -> Result<Arc<Topic>, BrokerError> {
        let name = self.topic(topic)?.name.clone();
        let deleted = self.topics.delete(&name)?;
        self.groups.topic_deleted(&deleted.name);
        Ok(deleted)
    }

    /// Refuses (POLICY_VIOLATION) when `adding` more partitions would pass `max_partitions`.
    pub fn check_partition_capacity(&self, adding: usize) -> Result<(), BrokerError> {
        Ok(self.topics.check_capacity(adding)?)
    }

    /// Grows a topic to `count` partitions.
    pub fn add_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<(), BrokerError> {
        Ok(self.topics.add_partitions(name, count, validate_only)?)
    }

    /// Replaces a topic's config overrides.
    pub fn alter_topic_configs(&self, name: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), BrokerError> {
        Ok(self.topics.alter_configs(name, configs, validate_only)?)
    }

    /// The topic lookup the group coordinator checks commits against.
    pub fn topic_lookup(&self) -> &crate::storage::TopicStore {
        &self.topics
    }

    /// Renders the Prometheus text exposition.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(&self.store, &self.topics, &self.groups)
    }
}

/// Partitions one admin request may still create (`max_partitions_per_request`).
pub struct PartitionBudget {
    /// Partitions created (or validated) so far by the request.
    pub used: usize,
    max: usize,
    api: &'static str,
}

impl PartitionBudget {
    /// A budget of `max` partitions for one request of `api`.
    pub fn new(max: usize, api: &'static str) -> Self {
        PartitionBudget { used: 0, max, api }
    }

    /// Refuses `adding` more partitions (INVALID_PARTITIONS) past the per-request limit.
    pub fn check(&self, adding: i32) -> Result<(), BrokerError> {
        let total = self.used.saturating_add(adding.max(0) as usize);
        if total > self.max {
            return Err(StorageError::InvalidPartitions(format!(
                "{} would create {total} partitions in one request, more than max_partitions_per_request ({})",
                self.api, self.max
            ))
            .into());
        }
        Ok(())
    }
}

