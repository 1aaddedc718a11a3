//! The key layout: every RocksDB key the broker writes is built here.
//!
//! Partition column families: key = base offset as 8 big-endian bytes, value = the
//! stored batch. Big-endian makes byte order equal offset order, so "the batch
//! containing offset N" is a seek-for-prev and a fetch is a forward range scan.
//!
//! Metadata column family:
//! - `t/<topic name>` → topic record (JSON)
//! - `p/<topic id><partition>` → partition metadata (log start, log end, leader epoch)
//! - `p/<topic id><partition><leader epoch>` → the first offset written in that leader
//!   epoch (the leader-epoch history; under the partition's metadata prefix, so deleting
//!   a topic deletes it too)
//! - `c/<topic id><partition>` → name of the partition's column family
//! - `s/<topic id><partition><producer id>` → idempotent producer state
//! - `g/<group id>` → consumer group metadata (JSON, see `group_store`)
//! - `o/<group id len><group id><topic len><topic><partition>` → committed offset
//! - `cluster_id`, `producer_id_block` → broker-wide values
//! - `bi/<topic id><partition><base offset>` → batch index: last offset, stored size and
//!   max timestamp of each batch (what retention decides on, without reading batches)
//! - `ti/<topic id><partition><timestamp>` → time index: base offset of the first batch
//!   whose max timestamp reached this value (the running maximum of the log, so keys
//!   and offsets grow together; see `PartitionLog::offset_for_timestamp`)
//! - `k/<topic id><partition>` → log cleaner checkpoint: the first dirty offset of a
//!   compacted partition (every batch below it has been cleaned)
//! - `a/<ACL binding (JSON)>` → empty: one key per ACL, so creating and deleting one is
//!   one put or delete (see `acl_store`)
//! - `ml/<raft index>` → an entry of the cluster metadata (controller) group's Raft log
//!   (bincode); `ms/vote`, `ms/committed`, `ms/purged`, `ms/snapshot` → that group's
//!   vote, committed log id, last purged log id and latest snapshot (see
//!   `cluster::metadata::store`)

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

/// Start of the range holding every batch key of a partition.
pub const OFFSET_KEY_MIN: &[u8] = &[];
/// End (exclusive) of the range holding every batch key of a partition.
pub const OFFSET_KEY_END: &[u8] = &[0xff; 9];

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

/// Topic id and partition of a partition metadata key.
pub fn parse_partition_meta(key: &[u8]) -> Option<(Uuid, i32)> {
    let rest = key.strip_prefix(PARTITION_META_PREFIX)?;
    if rest.len() != 20 {
        return None;
    }
    let id = Uuid::from_slice(&rest[..16]).ok()?;
    Some((id, i32::from_be_bytes(rest[16..].try_into().ok()?)))
}

/// Prefix of every partition metadata key.
pub const PARTITION_META_PREFIX: &[u8] = b"p/";

/// Prefix of spare column family names: created ahead of need and handed to new
/// partitions (see `Store::take_partition_cf`).
pub const SPARE_CF_PREFIX: &str = "s-";

/// Name of the `n`th spare column family.
pub fn spare_cf(n: u64) -> String {
    format!("{SPARE_CF_PREFIX}{n}")
}

/// Key naming the column family a partition is stored in.
pub fn partition_cf_ref(topic_id: Uuid, partition: i32) -> Vec<u8> {
    let mut k = partition_cf_ref_prefix(topic_id);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// Prefix of the column family references of a topic (of all topics when `None`).
pub fn partition_cf_ref_prefix(topic_id: impl Into<Option<Uuid>>) -> Vec<u8> {
    let mut k = PARTITION_CF_REF_PREFIX.to_vec();
    if let Some(id) = topic_id.into() {
        k.extend_from_slice(id.as_bytes());
    }
    k
}

/// Prefix of every column family reference.
pub const PARTITION_CF_REF_PREFIX: &[u8] = b"c/";

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

/// Prefix of all group metadata records.
pub const GROUP_PREFIX: &[u8] = b"g/";

/// Key of a group's metadata record.
pub fn group(id: &str) -> Vec<u8> {
    let mut k = GROUP_PREFIX.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// Prefix of all committed offsets.
pub const OFFSET_PREFIX: &[u8] = b"o/";

/// Prefix of the committed offsets of one group (the id is length-prefixed, so one
/// group's prefix never covers another's).
pub fn offset_commit_prefix(group: &str) -> Vec<u8> {
    let mut k = OFFSET_PREFIX.to_vec();
    k.extend_from_slice(&(group.len() as u32).to_be_bytes());
    k.extend_from_slice(group.as_bytes());
    k
}

/// Key of one committed offset: group, topic name and partition.
pub fn offset_commit(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut k = offset_commit_prefix(group);
    k.extend_from_slice(&(topic.len() as u32).to_be_bytes());
    k.extend_from_slice(topic.as_bytes());
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// Splits an offset key into (group, topic, partition).
pub fn parse_offset_commit(key: &[u8]) -> Option<(String, String, i32)> {
    let rest = key.strip_prefix(OFFSET_PREFIX)?;
    let (group, rest) = take_prefixed(rest)?;
    let (topic, rest) = take_prefixed(rest)?;
    let partition = i32::from_be_bytes(rest.try_into().ok()?);
    Some((group, topic, partition))
}

fn take_prefixed(bytes: &[u8]) -> Option<(String, &[u8])> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let s = bytes.get(4..4 + len)?;
    Some((String::from_utf8(s.to_vec()).ok()?, &bytes[4 + len..]))
}

/// Prefix of the batch index of a partition, or of a whole topic.
pub fn batch_index_prefix(topic_id: Uuid, partition: Option<i32>) -> Vec<u8> {
    let mut k = b"bi/".to_vec();
    k.extend_from_slice(topic_id.as_bytes());
    if let Some(p) = partition {
        k.extend_from_slice(&p.to_be_bytes());
    }
    k
}

/// Key of one batch in a partition's batch index.
pub fn batch_index(topic_id: Uuid, partition: i32, base_offset: i64) -> Vec<u8> {
    let mut k = batch_index_prefix(topic_id, Some(partition));
    k.extend_from_slice(&offset_key(base_offset));
    k
}

/// Prefix of the time index of a partition, or of a whole topic.
pub fn time_index_prefix(topic_id: Uuid, partition: Option<i32>) -> Vec<u8> {
    let mut k = b"ti/".to_vec();
    k.extend_from_slice(topic_id.as_bytes());
    if let Some(p) = partition {
        k.extend_from_slice(&p.to_be_bytes());
    }
    k
}

/// Key of a time index entry: the timestamp with its sign bit flipped, big-endian, so
/// byte order is timestamp order (negative timestamps included).
pub fn time_index(topic_id: Uuid, partition: i32, timestamp: i64) -> Vec<u8> {
    let mut k = time_index_prefix(topic_id, Some(partition));
    k.extend_from_slice(&((timestamp as u64) ^ (1 << 63)).to_be_bytes());
    k
}

/// The timestamp of a time index key (None: not one).
pub fn parse_time_index(key: &[u8]) -> Option<i64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some((u64::from_be_bytes(tail) ^ (1 << 63)) as i64)
}

/// Key of the cluster id.
pub const CLUSTER_ID: &[u8] = b"cluster_id";
/// Key of the first producer id not yet handed out in a block.
pub const PRODUCER_ID_BLOCK: &[u8] = b"producer_id_block";

/// Key of a compacted partition's cleaner checkpoint (its first dirty offset,
/// 8 big-endian bytes).
pub fn cleaner_checkpoint(topic_id: Uuid, partition: i32) -> Vec<u8> {
    let mut k = cleaner_checkpoint_prefix(topic_id);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// Prefix of the cleaner checkpoints of a topic.
pub fn cleaner_checkpoint_prefix(topic_id: Uuid) -> Vec<u8> {
    let mut k = b"k/".to_vec();
    k.extend_from_slice(topic_id.as_bytes());
    k
}

/// Key of one entry of a partition's leader-epoch history: the first offset written
/// in `epoch`. It extends the partition's metadata key, so the entries sort after it
/// in epoch order (epochs are never negative) and a topic's deletion covers them.
pub fn leader_epoch_start(topic_id: Uuid, partition: i32, epoch: i32) -> Vec<u8> {
    let mut k = leader_epoch_prefix(topic_id, partition);
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

/// Prefix of a partition's leader-epoch history entries.
pub fn leader_epoch_prefix(topic_id: Uuid, partition: i32) -> Vec<u8> {
    partition_meta(topic_id, partition)
}

/// The epoch of a leader-epoch history key under `prefix` (None: another kind of key).
pub fn parse_leader_epoch_start(prefix: &[u8], key: &[u8]) -> Option<i32> {
    let rest = key.strip_prefix(prefix)?;
    Some(i32::from_be_bytes(rest.try_into().ok()?))
}

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
    fn offset_keys_round_trip_and_do_not_overlap() {
        let k = offset_commit("grp", "topic-a", 7);
        assert_eq!(parse_offset_commit(&k), Some(("grp".into(), "topic-a".into(), 7)));
        assert!(k.starts_with(&offset_commit_prefix("grp")));
        assert!(!k.starts_with(&offset_commit_prefix("gr")));
    }

    #[test]
    fn time_index_keys_sort_by_timestamp() {
        let id = Uuid::new_v4();
        let ts = [i64::MIN, -5, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for pair in ts.windows(2) {
            assert!(time_index(id, 0, pair[0]) < time_index(id, 0, pair[1]), "{pair:?}");
        }
        for t in ts {
            let k = time_index(id, 3, t);
            assert!(k.starts_with(&time_index_prefix(id, Some(3))));
            assert_eq!(parse_time_index(&k), Some(t));
        }
        assert!(batch_index(id, 1, 7).starts_with(&batch_index_prefix(id, Some(1))));
        assert!(batch_index(id, 1, 255) < batch_index(id, 1, 256));
    }

    #[test]
    fn prefix_end_bounds_prefix() {
        assert_eq!(prefix_end(b"s/a"), b"s/b".to_vec());
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
    }

    #[test]
    fn leader_epoch_keys_sort_by_epoch_and_are_not_partition_meta() {
        let id = Uuid::new_v4();
        let (a, b) = (leader_epoch_start(id, 3, 1), leader_epoch_start(id, 3, 256));
        assert!(a < b);
        assert!(a.starts_with(&partition_meta_prefix(id)), "deleted with the topic");
        assert_eq!(parse_partition_meta(&a), None, "not mistaken for partition metadata");
        assert_eq!(parse_leader_epoch_start(&leader_epoch_prefix(id, 3), &b), Some(256));
        assert_eq!(parse_leader_epoch_start(&leader_epoch_prefix(id, 3), &partition_meta(id, 3)), None);
    }
}

/// Prefix of every ACL key.
pub const ACL_PREFIX: &[u8] = b"a/";

/// Key of one ACL: its encoded binding under [`ACL_PREFIX`].
pub fn acl(encoded: &[u8]) -> Vec<u8> {
    let mut k = ACL_PREFIX.to_vec();
    k.extend_from_slice(encoded);
    k
}

/// Prefix of the cluster metadata group's Raft log entries.
pub const METADATA_LOG_PREFIX: &[u8] = b"ml/";

/// Key of the cluster metadata group's Raft log entry at `index`: big-endian, so key
/// order is log order.
pub fn metadata_log(index: u64) -> Vec<u8> {
    let mut k = METADATA_LOG_PREFIX.to_vec();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The Raft index of a metadata log key (None: another kind of key).
pub fn parse_metadata_log(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(METADATA_LOG_PREFIX)?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// Key of the cluster metadata group's vote.
pub const METADATA_VOTE: &[u8] = b"ms/vote";
/// Key of the cluster metadata group's committed log id.
pub const METADATA_COMMITTED: &[u8] = b"ms/committed";
/// Key of the cluster metadata group's last purged log id.
pub const METADATA_PURGED: &[u8] = b"ms/purged";
/// Key of the cluster metadata group's latest snapshot (meta and serialised state).
pub const METADATA_SNAPSHOT: &[u8] = b"ms/snapshot";

/// Key of this data directory's node id (4 big-endian bytes), written at first start;
/// a later start with another `node_id` is refused (see `Broker::open`).
pub const NODE_ID: &[u8] = b"node_id";
