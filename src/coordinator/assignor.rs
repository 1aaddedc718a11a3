//! Server-side assignors of KIP-848 consumer groups.
//!
//! - `uniform` (the default): spreads partitions so member counts differ by at most
//!   one among members sharing a subscription, keeping partitions where they are
//!   whenever that is balanced (few revocations per rebalance).
//! - `range`: per topic, contiguous ranges of partitions to the subscribed members in
//!   member id order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::consumer::Assignment;

/// The default assignor.
pub const UNIFORM: &str = "uniform";
/// The range assignor.
pub const RANGE: &str = "range";

/// Whether the broker has an assignor of this name.
pub fn is_supported(name: &str) -> bool {
    name == UNIFORM || name == RANGE
}

/// A member as the assignor sees it.
pub struct AssignorMember<'a> {
    /// Member id.
    pub id: &'a str,
    /// Subscribed topic ids (existing topics only).
    pub topics: BTreeSet<Uuid>,
    /// The member's previous target assignment (for stickiness).
    pub current: Option<&'a Assignment>,
}

/// Computes the target assignment of every member. `topics` maps topic id to
/// (name, partition count).
pub fn assign(assignor: &str, members: &[AssignorMember], topics: &BTreeMap<Uuid, (String, i32)>) -> HashMap<String, Assignment> {
    let owners = if assignor == RANGE { range(members, topics) } else { uniform(members, topics) };
    let mut out: HashMap<String, Assignment> = members.iter().map(|m| (m.id.to_string(), Assignment::new())).collect();
    for ((topic, partition), member) in owners {
        out.get_mut(members[member].id).expect("member").entry(topic).or_default().insert(partition);
    }
    out
}

fn range(members: &[AssignorMember], topics: &BTreeMap<Uuid, (String, i32)>) -> BTreeMap<(Uuid, i32), usize> {
    let mut owners = BTreeMap::new();
    let mut by_name: Vec<(&String, &Uuid, i32)> = topics.iter().map(|(id, (name, n))| (name, id, *n)).collect();
    by_name.sort();
    for (_, topic, partitions) in by_name {
        let mut subscribed: Vec<usize> = (0..members.len()).filter(|i| members[*i].topics.contains(topic)).collect();
        subscribed.sort_by_key(|i| members[*i].id);
        if subscribed.is_empty() {
            continue;
        }
        let (per, extra) = (partitions as usize / subscribed.len(), partitions as usize % subscribed.len());
        let mut next = 0;
        for (k, member) in subscribed.into_iter().enumerate() {
            let count = per + usize::from(k < extra);
            for p in next..next + count {
                owners.insert((*topic, p as i32), member);
            }
            next += count;
        }
    }
    owners
}

fn uniform(members: &[AssignorMember], topics: &BTreeMap<Uuid, (String, i32)>) -> BTreeMap<(Uuid, i32), usize> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by_key(|i| members[*i].id);
    let eligible: BTreeMap<Uuid, Vec<usize>> = topics
        .keys()
        .map(|t| (*t, order.iter().copied().filter(|i| members[*i].topics.contains(t)).collect()))
        .collect();
    let mut owners: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    let mut counts = vec![0usize; members.len()];
    // Keep what members had, when still valid.
    for (i, m) in members.iter().enumerate() {
        for (topic, partitions) in m.current.into_iter().flatten() {
            let Some((_, n)) = topics.get(topic) else { continue };
            if !m.topics.contains(topic) {
                continue;
            }
            for p in partitions.iter().filter(|p| **p < *n) {
                if let std::collections::btree_map::Entry::Vacant(e) = owners.entry((*topic, *p)) {
                    e.insert(i);
                    counts[i] += 1;
                }
            }
        }
    }
    // Give the rest to the least loaded eligible member.
    for (topic, (_, n)) in topics {
        let candidates = &eligible[topic];
        for p in 0..*n {
            if owners.contains_key(&(*topic, p)) || candidates.is_empty() {
                continue;
            }
            let best = *candidates.iter().min_by_key(|i| counts[**i]).expect("non-empty");
            owners.insert((*topic, p), best);
            counts[best] += 1;
        }
    }
    // Move partitions from members with at least two more than another eligible
    // member until no such move is left (each move lowers the sum of squares).
    loop {
        let mut moved = false;
        let keys: Vec<(Uuid, i32)> = owners.keys().copied().collect();
        for key in keys {
            let from = owners[&key];
            let target = eligible[&key.0].iter().copied().filter(|i| counts[*i] + 1 < counts[from]).min_by_key(|i| counts[*i]);
            if let Some(to) = target {
                owners.insert(key, to);
                counts[from] -= 1;
                counts[to] += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(|p| p.len()).sum()
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let t = topic(1);
        let topics: BTreeMap<Uuid, (String, i32)> = [(t, ("t".to_string(), 6))].into();
        let subs: BTreeSet<Uuid> = [t].into();
        let first = assign(UNIFORM, &[AssignorMember { id: "a", topics: subs.clone(), current: None }], &topics);
        assert_eq!(count(&first["a"]), 6);
        let members = [
            AssignorMember { id: "a", topics: subs.clone(), current: first.get("a") },
            AssignorMember { id: "b", topics: subs.clone(), current: None },
            AssignorMember { id: "c", topics: subs.clone(), current: None },
        ];
        let second = assign(UNIFORM, &members, &topics);
        assert_eq!([count(&second["a"]), count(&second["b"]), count(&second["c"])], [2, 2, 2]);
        let kept: BTreeSet<i32> = second["a"][&t].clone();
        assert!(kept.is_subset(&first["a"][&t]), "a keeps partitions it had");
        // c leaves: a and b keep theirs and split c's.
        let members = [
            AssignorMember { id: "a", topics: subs.clone(), current: second.get("a") },
            AssignorMember { id: "b", topics: subs, current: second.get("b") },
        ];
        let third = assign(UNIFORM, &members, &topics);
        assert_eq!([count(&third["a"]), count(&third["b"])], [3, 3]);
        assert!(second["a"][&t].is_subset(&third["a"][&t]));
        assert!(second["b"][&t].is_subset(&third["b"][&t]));
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let (t1, t2) = (topic(1), topic(2));
        let topics: BTreeMap<Uuid, (String, i32)> = [(t1, ("a".to_string(), 2)), (t2, ("b".to_string(), 4))].into();
        let members = [
            AssignorMember { id: "x", topics: [t1].into(), current: None },
            AssignorMember { id: "y", topics: [t1, t2].into(), current: None },
        ];
        let out = assign(UNIFORM, &members, &topics);
        assert!(!out["x"].contains_key(&t2), "x is not subscribed to t2");
        assert_eq!(count(&out["x"]) + count(&out["y"]), 6, "every partition assigned");
        assert_eq!(out["y"][&t2].len(), 4);
    }

    #[test]
    fn range_gives_contiguous_ranges_in_member_order() {
        let t = topic(1);
        let topics: BTreeMap<Uuid, (String, i32)> = [(t, ("t".to_string(), 5))].into();
        let members = [
            AssignorMember { id: "b", topics: [t].into(), current: None },
            AssignorMember { id: "a", topics: [t].into(), current: None },
        ];
        let out = assign(RANGE, &members, &topics);
        assert_eq!(out["a"][&t], [0, 1, 2].into());
        assert_eq!(out["b"][&t], [3, 4].into());
    }
}
