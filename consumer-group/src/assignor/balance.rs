//! Balancing shared by `cooperative-sticky` and `mephisto-standby`.
//!
//! Items (partitions or units) sit on members; an item may only sit on its eligible
//! members. [`Placement::balance`] repeatedly finds a chain of moves `s → … → t` (each hop
//! moves one item to an eligible member) with `count(s) ≥ count(t) + 2` and applies it: `s`
//! loses one item, `t` gains one, members in between keep their count. Each chain lowers
//! the sum of squared counts, so the loop ends, and it ends exactly when that sum is minimal
//! over every placement respecting eligibility (the optimality condition of a convex-cost
//! flow). In particular members eligible for the same items (same subscriptions) end within
//! one of each other, as Java's `AbstractStickyAssignor` requires.
//!
//! Cost: one edge matrix (`O(items × members)`) and a Dijkstra per overloaded member
//! (`O(members²)`) per chain; after a one-hop chain, further one-hop moves of the same cost
//! from the same member are made before recomputing, so a member holding everything sheds
//! its surplus in a few passes (100 members × 3000 partitions: ~50 ms in release).
//!
//! Among chains, the one with the smallest summed hop [`Cost`] wins (costs say what a move
//! breaks: stickiness, caught-up placement, ...). Because the optimum is global, a later
//! round that starts from a subset of an optimal placement and only has to place the rest
//! reaches the optimum again by moving only those new items, when such chains are
//! cheaper: this is what makes the cooperative follow-up round revoke nothing.

use std::cmp::Reverse;

/// The cost of moving one item, compared lexicographically; chain costs are sums.
pub(crate) type Cost = [u64; 5];

fn add(a: Cost, b: Cost) -> Cost {
    let mut out = a;
    for (o, x) in out.iter_mut().zip(b) {
        *o = o.saturating_add(x);
    }
    out
}

/// Where every item currently sits and how many items each member holds.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    /// The member holding each item, if any.
    pub holder: Vec<Option<usize>>,
    /// Number of items held by each member.
    pub counts: Vec<usize>,
}

impl Placement {
    /// An empty placement for `items` items and `members` members.
    pub fn new(items: usize, members: usize) -> Self {
        Self {
            holder: vec![None; items],
            counts: vec![0; members],
        }
    }

    /// Puts `item` on `member` (taking it from its previous holder, if any).
    pub fn put(&mut self, item: usize, member: usize) {
        if member >= self.counts.len() {
            return;
        }
        let Some(slot) = self.holder.get_mut(item) else {
            return;
        };
        if let Some(old) = slot.replace(member) {
            if let Some(c) = self.counts.get_mut(old) {
                *c = c.saturating_sub(1);
            }
        }
        self.counts[member] += 1;
    }

    /// The holder of `item`, if any.
    pub fn holder_of(&self, item: usize) -> Option<usize> {
        self.holder.get(item).copied().flatten()
    }

    /// The number of items `member` holds.
    pub fn count(&self, member: usize) -> usize {
        self.counts.get(member).copied().unwrap_or(0)
    }

    /// Gives every item without a holder to the least-loaded eligible member, in the order
    /// given; ties go to the smallest `tie_break` key, then the smallest member index.
    pub fn fill<K: Ord>(
        &mut self,
        order: &[usize],
        eligible: &[Vec<usize>],
        tie_break: impl Fn(usize, usize) -> K,
    ) {
        for &item in order {
            if self.holder_of(item).is_some() {
                continue;
            }
            let Some(candidates) = eligible.get(item) else {
                continue;
            };
            let best = candidates
                .iter()
                .copied()
                .min_by_key(|&m| (self.count(m), tie_break(item, m), m));
            if let Some(m) = best {
                self.put(item, m);
            }
        }
    }

    /// Applies cheapest improving chains until none is left (see the module docs).
    /// `cost(item, from, to)` prices one hop.
    pub fn balance(&mut self, eligible: &[Vec<usize>], cost: impl Fn(usize, usize, usize) -> Cost) {
        loop {
            let edges = self.edges(eligible, &cost);
            let Some(chain) = self.best_chain(&edges) else {
                return;
            };
            if let [(item, to)] = chain[..] {
                // A single hop: before paying for a new edge matrix, make every other
                // single hop from the same member that costs the same (also a cheapest
                // chain) while it still improves.
                if let Some(from) = self.holder_of(item) {
                    let unit_cost = cost(item, from, to);
                    self.put(item, to);
                    self.same_cost_hops(from, unit_cost, eligible, &cost);
                    continue;
                }
            }
            for (item, to) in chain {
                self.put(item, to);
            }
        }
    }

    /// Moves items from `from` to members holding at least two fewer, fewest first, as long
    /// as an item moves there for exactly `unit_cost` (smallest item first).
    fn same_cost_hops(
        &mut self,
        from: usize,
        unit_cost: Cost,
        eligible: &[Vec<usize>],
        cost: &impl Fn(usize, usize, usize) -> Cost,
    ) {
        loop {
            let mut targets: Vec<usize> = (0..self.counts.len()).filter(|&t| t != from).collect();
            targets.sort_by_key(|&t| (self.counts[t], t));
            let mut moved = false;
            for t in targets {
                if self.count(t) + 2 > self.count(from) {
                    break;
                }
                let item = (0..self.holder.len()).find(|&i| {
                    self.holder_of(i) == Some(from)
                        && eligible.get(i).is_some_and(|e| e.binary_search(&t).is_ok())
                        && cost(i, from, t) == unit_cost
                });
                if let Some(i) = item {
                    self.put(i, t);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// `edges[x][y]`: the cheapest item on `x` that `y` may hold, with its cost.
    fn edges(
        &self,
        eligible: &[Vec<usize>],
        cost: &impl Fn(usize, usize, usize) -> Cost,
    ) -> Vec<Vec<Option<(Cost, usize)>>> {
        let n = self.counts.len();
        let mut edges = vec![vec![None; n]; n];
        for (item, candidates) in eligible.iter().enumerate() {
            let Some(from) = self.holder_of(item) else {
                continue;
            };
            for &to in candidates {
                if to == from || to >= n {
                    continue;
                }
                let c = cost(item, from, to);
                let slot = &mut edges[from][to];
                if slot.is_none_or(|(best, _)| c < best) {
                    *slot = Some((c, item));
                }
            }
        }
        edges
    }

    /// The cheapest improving chain as `(item, to)` hops, if any: cost, then the largest
    /// gap, then the smallest source and target index.
    fn best_chain(&self, edges: &[Vec<Option<(Cost, usize)>>]) -> Option<Vec<(usize, usize)>> {
        let n = self.counts.len();
        let min = self.counts.iter().copied().min()?;
        let mut best: Option<(Cost, Reverse<usize>, usize, usize)> = None;
        for s in 0..n {
            if self.counts[s] < min + 2 {
                continue;
            }
            let (dist, _) = shortest_paths(edges, s);
            for (t, d) in dist.into_iter().enumerate() {
                let Some(d) = d else {
                    continue;
                };
                if t == s || self.counts[t] + 2 > self.counts[s] {
                    continue;
                }
                let key = (d, Reverse(self.counts[s] - self.counts[t]), s, t);
                if best.as_ref().is_none_or(|b| key < *b) {
                    best = Some(key);
                }
            }
        }
        let (_, _, s, t) = best?;
        let (_, prev) = shortest_paths(edges, s);
        // Walk back from t to s.
        let mut hops = Vec::new();
        let mut at = t;
        while at != s {
            let from = prev.get(at).copied().flatten()?;
            let (_, item) = edges[from][at]?;
            hops.push((item, at));
            at = from;
            if hops.len() > n {
                return None;
            }
        }
        hops.reverse();
        Some(hops)
    }
}

/// Dijkstra over the member graph from `s` (dense, `O(n²)`); ties go to smaller indices.
fn shortest_paths(
    edges: &[Vec<Option<(Cost, usize)>>],
    s: usize,
) -> (Vec<Option<Cost>>, Vec<Option<usize>>) {
    let n = edges.len();
    let mut dist: Vec<Option<Cost>> = vec![None; n];
    let mut prev: Vec<Option<usize>> = vec![None; n];
    let mut done = vec![false; n];
    dist[s] = Some([0; 5]);
    loop {
        let next = (0..n)
            .filter(|&x| !done[x])
            .filter_map(|x| dist[x].map(|d| (d, x)))
            .min();
        let Some((d, x)) = next else {
            break;
        };
        done[x] = true;
        for y in 0..n {
            let Some((c, _)) = edges[x][y] else {
                continue;
            };
            if done[y] {
                continue;
            }
            let nd = add(d, c);
            if dist[y].is_none_or(|old| nd < old) {
                dist[y] = Some(nd);
                prev[y] = Some(x);
            }
        }
    }
    (dist, prev)
}

#[cfg(test)]
mod tests {
    use super::Placement;

    #[test]
    fn balances_same_eligibility_within_one() {
        let mut p = Placement::new(7, 3);
        for item in 0..7 {
            p.put(item, 0);
        }
        let eligible = vec![vec![0, 1, 2]; 7];
        p.balance(&eligible, |_, _, _| [0, 0, 0, 0, 1]);
        let mut counts = p.counts.clone();
        counts.sort_unstable();
        assert_eq!(counts, vec![2, 2, 3]);
    }

    #[test]
    fn respects_eligibility() {
        let mut p = Placement::new(4, 2);
        for item in 0..4 {
            p.put(item, 0);
        }
        // Only item 3 may move to member 1.
        let eligible = vec![vec![0], vec![0], vec![0], vec![0, 1]];
        p.balance(&eligible, |_, _, _| [0, 0, 0, 0, 1]);
        assert_eq!(p.counts, vec![3, 1]);
        assert_eq!(p.holder_of(3), Some(1));
    }

    #[test]
    fn uses_chains_single_moves_cannot_find() {
        // Member 0 holds items only member 2 may take; member 2 holds items member 1 may
        // take. Counts (3, 1, 2): no single move helps, the chain 0 → 2 → 1 does.
        let mut p = Placement::new(6, 3);
        for item in 0..3 {
            p.put(item, 0);
        }
        p.put(3, 1);
        p.put(4, 2);
        p.put(5, 2);
        let mut eligible = vec![vec![0, 2]; 3];
        eligible.push(vec![1]);
        eligible.extend([vec![1, 2], vec![1, 2]]);
        p.balance(&eligible, |_, _, _| [0, 0, 0, 0, 1]);
        assert_eq!(p.counts, vec![2, 2, 2]);
    }

    #[test]
    fn fill_picks_least_loaded() {
        let mut p = Placement::new(4, 2);
        p.put(0, 0);
        let eligible = vec![vec![0, 1]; 4];
        p.fill(&[0, 1, 2, 3], &eligible, |_, m| m);
        assert_eq!(p.counts, vec![2, 2]);
    }
}
