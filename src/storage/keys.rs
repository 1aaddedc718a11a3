//! The key layout: every RocksDB key the broker writes is built here.
//!
//! Partition column families: key = base offset as 8 big-endian bytes, value = the
//! stored batch. Big-endian makes byte order equal offset order, so "the batch
//! containing offset N" is a seek-for-prev and a fetch is a forward range scan.
//!
//! Metadata column family:
//! - `t/<topic name>` → topic record (JSON)
//! - `p/<topic id><partition>` → partition metadata (log start, log end, leader epoch)
//! - `s/<topic id><partition><producer id>` → idempotent producer state
//! - `cluster_id`, `producer_id_block` → broker-wide values

use uuid::Uuid;

/// Prefix of partition column family names.
pub const PARTITION_CF_PREFIX: &str = "p-";

/// Column family name of a partition: topic id, never the name, so a recreated
/// topic never sees the old one's data.
pub fn partition_cf(topic_id: Uuid, partition: i32) -> String {
    format!("{PARTITION_CF_PREFIX}{}-{partition}", topic_id.simple())
}

/// Key of a batch in its partition column family.
pub fn offset_key(offset: i64) -> [u8; 8] {
    offset.to_be_bytes()
}

/// Key of a topic record.
pub fn topic(name: &str) -> Vec<u8> {
    let mut k = b"t/".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// Prefix of all topic records.
pub const TOPIC_PREFIX: &[u8] = b"t/";

/// Key of a partition's metadata.
pub fn partition_meta(topic_id: Uuid, partition: i32) -> Vec<u8> {
    let mut k = b"p/".to_vec();
    k.extend_from_slice(topic_id.as_bytes());
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// Key of one producer's state on one partition.
pub fn producer_state(topic_id: Uuid, partition: i32, producer_id: i64) -> Vec<u8> {
    let mut k = producer_state_prefix(topic_id, Some(partition));
    k.extend_from_slice(&producer_id.to_be_bytes());
    k
}

/// Prefix of the producer states of a partition, or of a whole topic.
pub fn producer_state_prefix(topic_id: Uuid, partition: Option<i32>) -> Vec<u8> {
    let mut k = b"s/".to_vec();
    k.extend_from_slice(topic_id.as_bytes());
    if let Some(p) = partition {
        k.extend_from_slice(&p.to_be_bytes());
    }
    k
}

/// Prefix of the partition metadata of a topic.
pub fn partition_meta_prefix(topic_id: Uuid) -> Vec<u8> {
    let mut k = b"p/".to_vec();
    k.extend_from_slice(topic_id.as_bytes());
    k
}

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// Key of the cluster id.
pub const CLUSTER_ID: &[u8] = b"cluster_id";
/// Key of the first producer id not yet handed out in a block.
pub const PRODUCER_ID_BLOCK: &[u8] = b"producer_id_block";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_keys_sort_by_offset() {
        assert!(offset_key(1) < offset_key(2));
        assert!(offset_key(255) < offset_key(256));
        assert!(offset_key(0) < offset_key(i64::MAX));
    }

    #[test]
    fn prefix_end_bounds_prefix() {
        assert_eq!(prefix_end(b"s/a"), b"s/b".to_vec());
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
    }
}
