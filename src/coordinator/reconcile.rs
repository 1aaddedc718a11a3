//! Moves a KIP-848 member from its current assignment towards its target, one safe
//! step at a time (Kafka's CurrentAssignmentBuilder):
//!
//! - partitions the member must give up are revoked first, at its current epoch
//!   (UnrevokedPartitions) until the member stops reporting them;
//! - then the member moves to the target epoch and gets the target partitions that
//!   are free; a partition still owned by another member (assigned to it or pending
//!   its revocation) is withheld (UnreleasedPartitions) until that owner lets go.

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

use super::consumer::{Assignment, ConsumerMember, MemberState};

/// Owner epoch of every partition some member owns or still has to revoke.
pub type PartitionEpochs = HashMap<(Uuid, i32), i32>;

/// The next state of `member` towards `target` at `target_epoch`. `owned` is what the
/// member reported in this heartbeat (None: unchanged since the last one).
pub fn reconcile(
    member: &ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&[(Uuid, Vec<i32>)]>,
    epochs: &PartitionEpochs,
) -> ConsumerMember {
    match member.state {
        MemberState::Stable if member.epoch == target_epoch => member.clone(),
        MemberState::Stable | MemberState::UnreleasedPartitions => {
            next_assignment(member, member.epoch, target_epoch, target, owned, epochs)
        }
        MemberState::UnrevokedPartitions => {
            if owns_any(owned, &member.pending_revocation) {
                return member.clone();
            }
            next_assignment(member, member.epoch + 1, target_epoch, target, owned, epochs)
        }
    }
}

/// Whether the reported partitions include any of `partitions` (unknown counts as yes).
fn owns_any(owned: Option<&[(Uuid, Vec<i32>)]>, partitions: &Assignment) -> bool {
    let Some(owned) = owned else { return true };
    owned.iter().any(|(topic, ps)| partitions.get(topic).is_some_and(|set| ps.iter().any(|p| set.contains(p))))
}

fn next_assignment(
    member: &ConsumerMember,
    member_epoch: i32,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&[(Uuid, Vec<i32>)]>,
    epochs: &PartitionEpochs,
) -> ConsumerMember {
    let mut assigned = Assignment::new();
    let mut revoke = Assignment::new();
    let mut pending = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<Uuid> = target.keys().chain(member.assigned.keys()).copied().collect();
    let empty = BTreeSet::new();
    for topic in topics {
        let wanted = target.get(&topic).unwrap_or(&empty);
        let current = member.assigned.get(&topic).unwrap_or(&empty);
        let keep: BTreeSet<i32> = current.intersection(wanted).copied().collect();
        let gone: BTreeSet<i32> = current.difference(&keep).copied().collect();
        let mut new: BTreeSet<i32> = wanted.difference(&keep).copied().collect();
        let before = new.len();
        new.retain(|p| !epochs.contains_key(&(topic, *p)));
        unreleased |= new.len() != before;
        if !keep.is_empty() {
            assigned.insert(topic, keep);
        }
        if !gone.is_empty() {
            revoke.insert(topic, gone);
        }
        if !new.is_empty() {
            pending.insert(topic, new);
        }
    }
    let mut next = member.clone();
    next.pending_revocation = Assignment::new();
    if !revoke.is_empty() && owns_any(owned, &revoke) {
        // Revoke first, staying at the current epoch.
        next.state = MemberState::UnrevokedPartitions;
        set_epoch(&mut next, member_epoch);
        next.assigned = assigned;
        next.pending_revocation = revoke;
        return next;
    }
    for (topic, partitions) in pending {
        assigned.entry(topic).or_default().extend(partitions);
    }
    next.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
    set_epoch(&mut next, target_epoch);
    next.assigned = assigned;
    next
}

fn set_epoch(member: &mut ConsumerMember, epoch: i32) {
    if member.epoch != epoch {
        member.previous_epoch = member.epoch;
        member.epoch = epoch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Uuid {
        Uuid::from_u128(7)
    }

    fn parts(ps: &[i32]) -> Assignment {
        [(t(), ps.iter().copied().collect())].into()
    }

    fn member(epoch: i32, assigned: &[i32]) -> ConsumerMember {
        ConsumerMember { id: "m".into(), epoch, assigned: parts(assigned), ..Default::default() }
    }

    #[test]
    fn revokes_before_taking_new_partitions() {
        let m = member(3, &[0, 1, 2]);
        let owned = vec![(t(), vec![0, 1, 2])];
        let step = reconcile(&m, 4, &parts(&[0]), Some(&owned), &PartitionEpochs::new());
        assert_eq!((step.state, step.epoch), (MemberState::UnrevokedPartitions, 3));
        assert_eq!(step.assigned, parts(&[0]));
        assert_eq!(step.pending_revocation, parts(&[1, 2]));
        // Still reporting a revoked partition: no progress.
        let again = reconcile(&step, 4, &parts(&[0]), Some(&owned), &PartitionEpochs::new());
        assert_eq!(again.state, MemberState::UnrevokedPartitions);
        // Revoked: moves to the target epoch.
        let done = reconcile(&step, 4, &parts(&[0]), Some(&[(t(), vec![0])]), &PartitionEpochs::new());
        assert_eq!((done.state, done.epoch, done.previous_epoch), (MemberState::Stable, 4, 3));
        assert!(done.pending_revocation.is_empty());
    }

    #[test]
    fn partitions_of_other_owners_wait_until_released() {
        let m = member(2, &[0]);
        let owned = vec![(t(), vec![0])];
        let busy: PartitionEpochs = [((t(), 1), 2)].into();
        let step = reconcile(&m, 3, &parts(&[0, 1]), Some(&owned), &busy);
        assert_eq!((step.state, step.epoch), (MemberState::UnreleasedPartitions, 3));
        assert_eq!(step.assigned, parts(&[0]), "partition 1 is withheld");
        let free = reconcile(&step, 3, &parts(&[0, 1]), Some(&owned), &PartitionEpochs::new());
        assert_eq!((free.state, free.assigned), (MemberState::Stable, parts(&[0, 1])));
    }
}
