//! Replica assignment: Kafka's rack-unaware placement
//! (`AdminUtils.assignReplicasToBrokersRackUnaware`, which KRaft's `StripedReplicaPlacer`
//! keeps for clusters without racks), pure and deterministic given its [`Placement`].
//!
//! Partition `p`'s first replica (its preferred leader) is broker `(p + start) % n`, so
//! leaders go round-robin over the brokers; the followers follow it at a distance
//! `1 + (shift + j) % (n - 1)`, and the shift grows by one after every `n` partitions so
//! that a broker's followers are not always the same brokers.

use super::MetadataError;
use crate::cluster::NodeId;

/// Where the round robin starts. Kafka picks both at random per topic; the controller
/// picks them before proposing (the command carries the result, so applying it on every
/// broker gives the same assignment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    /// Index (into the sorted brokers) of partition 0's leader (taken modulo their number).
    pub start_index: usize,
    /// Initial follower shift (taken modulo the number of brokers).
    pub replica_shift: usize,
}

impl Placement {
    /// A placement derived from a random value (for instance the new topic id's bits).
    pub fn from_seed(seed: u64) -> Placement {
        Placement { start_index: (seed & 0xffff_ffff) as usize, replica_shift: (seed >> 32) as usize }
    }
}

/// Replica lists of partitions `first_partition .. first_partition + partitions`, each of
/// `replication_factor` distinct brokers from `brokers` (ascending ids; duplicates are
/// ignored). More replicas than brokers (or fewer than one) is refused.
pub fn assign_replicas(
    brokers: &[NodeId],
    partitions: usize,
    replication_factor: i32,
    first_partition: usize,
    placement: Placement,
) -> Result<Vec<Vec<NodeId>>, MetadataError> {
    let mut brokers = brokers.to_vec();
    brokers.sort_unstable();
    brokers.dedup();
    let n = brokers.len();
    let rf = match usize::try_from(replication_factor) {
        Ok(rf) if rf >= 1 && rf <= n => rf,
        _ => return Err(MetadataError::InvalidReplicationFactor { requested: replication_factor, live: n }),
    };
    let start = placement.start_index % n;
    let mut shift = placement.replica_shift % n;
    let mut out = Vec::with_capacity(partitions);
    for p in first_partition..first_partition + partitions {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = Vec::with_capacity(rf);
        replicas.push(brokers[first]);
        for j in 0..rf - 1 {
            // rf ≥ 2 here, so n ≥ 2.
            let distance = 1 + (shift + j) % (n - 1);
            replicas.push(brokers[(first + distance) % n]);
        }
        out.push(replicas);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn counts(a: &[Vec<NodeId>]) -> (BTreeMap<NodeId, usize>, BTreeMap<NodeId, usize>) {
        let (mut leads, mut hosts) = (BTreeMap::new(), BTreeMap::new());
        for replicas in a {
            *leads.entry(replicas[0]).or_default() += 1;
            for b in replicas {
                *hosts.entry(*b).or_default() += 1;
            }
        }
        (leads, hosts)
    }

    #[test]
    fn three_brokers_six_partitions_rf3_spread_evenly_for_every_placement() {
        for start_index in 0..3 {
            for replica_shift in 0..3 {
                let placement = Placement { start_index, replica_shift };
                let a = assign_replicas(&[1, 2, 3], 6, 3, 0, placement).unwrap();
                assert_eq!(a.len(), 6);
                let (leads, hosts) = counts(&a);
                assert_eq!(leads, BTreeMap::from([(1, 2), (2, 2), (3, 2)]), "{placement:?}: {a:?}");
                assert_eq!(hosts, BTreeMap::from([(1, 6), (2, 6), (3, 6)]), "{placement:?}: {a:?}");
                for r in &a {
                    assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3, "distinct replicas: {r:?}");
                }
                // Leaders round robin from the start index.
                let leaders: Vec<NodeId> = a.iter().map(|r| r[0]).collect();
                let expected: Vec<NodeId> = (0..6).map(|p| [1, 2, 3][(p + start_index) % 3]).collect();
                assert_eq!(leaders, expected);
            }
        }
    }

    #[test]
    fn replication_factor_beyond_live_brokers_is_refused() {
        let err = assign_replicas(&[1, 2, 3], 6, 4, 0, Placement::default()).unwrap_err();
        assert_eq!(err, MetadataError::InvalidReplicationFactor { requested: 4, live: 3 });
        assert!(assign_replicas(&[1, 2, 3], 1, 0, 0, Placement::default()).is_err());
        assert!(assign_replicas(&[1, 2, 3], 1, -1, 0, Placement::default()).is_err());
        assert!(assign_replicas(&[], 1, 1, 0, Placement::default()).is_err());
        assert_eq!(assign_replicas(&[7], 2, 1, 0, Placement::from_seed(u64::MAX)).unwrap(), vec![vec![7], vec![7]]);
    }

    /// The example in Kafka's `AdminUtils` documentation: 5 brokers, 10 partitions, 3
    /// replicas, start index 0, shift 0.
    #[test]
    fn matches_kafkas_documented_layout() {
        let a = assign_replicas(&[0, 1, 2, 3, 4], 10, 3, 0, Placement::default()).unwrap();
        let expected: Vec<Vec<NodeId>> = vec![
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 0],
            vec![4, 0, 1],
            vec![0, 2, 3],
            vec![1, 3, 4],
            vec![2, 4, 0],
            vec![3, 0, 1],
            vec![4, 1, 2],
        ];
        assert_eq!(a, expected);
        let (leads, hosts) = counts(&a);
        assert!(leads.values().all(|&n| n == 2) && hosts.values().all(|&n| n == 6));
    }

    #[test]
    fn growing_continues_the_striping() {
        let all = assign_replicas(&[0, 1, 2, 3, 4], 10, 3, 0, Placement::default()).unwrap();
        let more = assign_replicas(&[0, 1, 2, 3, 4], 4, 3, 10, Placement::default()).unwrap();
        let leaders: Vec<NodeId> = more.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![0, 1, 2, 3]);
        assert_eq!(more[0], vec![0, 2, 3], "partition 10 shifts like partition 5 did");
        assert_ne!(more, all[..4].to_vec());
    }

    #[test]
    fn unsorted_or_repeated_brokers_are_normalised() {
        let a = assign_replicas(&[3, 1, 2, 1], 3, 2, 0, Placement::default()).unwrap();
        assert_eq!(a, vec![vec![1, 2], vec![2, 3], vec![3, 1]]);
    }
}
