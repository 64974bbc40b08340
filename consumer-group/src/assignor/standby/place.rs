//! Active placement for `mephisto-standby`: sticky, balanced, caught-up members first, and
//! KIP-441 warm-ups within a budget.

use super::model::Model;
use crate::assignor::balance::Placement;

/// Where the actives go, and which units run away from their intended owner.
pub(super) struct Actives {
    /// The member running each unit (before the cooperative rule withholds moved units).
    pub placement: Placement,
    /// For a unit kept on a caught-up member beyond balance: the intended (lagging) owner,
    /// which gets a warm-up replica.
    pub warmup: Vec<Option<usize>>,
}

/// Places every unit (see the phases in the module documentation of `standby`).
pub(super) fn place_actives(model: &Model<'_>, max_warmups: usize) -> Actives {
    let units = model.units.len();
    let mut placement = Placement::new(units, model.members.len());

    // 1. Sticky: the intended owner of a unit being warmed up (so that phase 5 sees the
    //    same situation as when it created the warm-up), else the previous owner, else the
    //    member the unit was promised to last round.
    for u in 0..units {
        let sticky = model.warmup_claim[u]
            .or(model.prev_owner[u])
            .or(model.pending_claim[u]);
        if let Some(m) = sticky {
            placement.put(u, m);
        }
    }
    // 2. Fill: units with the fewest caught-up candidates first, to the least-loaded
    //    member, preferring caught-up members with the smallest lag among equals.
    let mut order: Vec<usize> = (0..units).collect();
    order.sort_by_key(|&u| (caught_up_candidates(model, u), u));
    placement.fill(&order, &model.eligible, |u, m| {
        (!model.caught_up[u][m], model.lag[u][m])
    });
    // 3. Balance wins over stickiness. A chain's cost counts, in this order: units put on
    //    lagging members, units taken from their previous owner, units taken from the
    //    member they were promised to, hops not towards a unit's warm-up member, lag.
    placement.balance(&model.eligible, |u, from, to| {
        [
            u64::from(!model.caught_up[u][to]),
            u64::from(model.prev_owner[u] == Some(from)),
            u64::from(model.pending_claim[u] == Some(from)),
            u64::from(!model.prev_warmup[u][to]),
            model.lag[u][to],
        ]
    });
    // 4. Caught-up members win where balance allows.
    prefer_caught_up(model, &mut placement);
    // 5. Warm-ups.
    let warmup = warm_up(model, &mut placement, max_warmups);
    Actives { placement, warmup }
}

fn caught_up_candidates(model: &Model<'_>, u: usize) -> usize {
    model.eligible[u]
        .iter()
        .filter(|&&m| model.caught_up[u][m])
        .count()
}

/// Whether moving one unit from `from` to `to` keeps both members' classes (same
/// subscriptions) within one.
fn move_keeps_balance(model: &Model<'_>, placement: &Placement, from: usize, to: usize) -> bool {
    let count_after = |m: usize| {
        let c = placement.count(m);
        if m == from {
            c.saturating_sub(1)
        } else if m == to {
            c + 1
        } else {
            c
        }
    };
    [model.class_of[from], model.class_of[to]]
        .into_iter()
        .all(|class| {
            let counts = (0..model.members.len())
                .filter(|&m| model.class_of[m] == class)
                .map(count_after);
            let (lo, hi) = counts.fold((usize::MAX, 0), |(lo, hi), c| (lo.min(c), hi.max(c)));
            hi <= lo.saturating_add(1)
        })
}

/// Phase 4: while a unit sits on a lagging member and a caught-up eligible member could take
/// it without breaking balance, move it (or swap it with a unit the lagging member can run
/// at least as well). Each step lowers the number of units on lagging members, so it ends.
fn prefer_caught_up(model: &Model<'_>, placement: &mut Placement) {
    loop {
        let mut changed = false;
        for u in 0..model.units.len() {
            let Some(m) = placement.holder_of(u) else {
                continue;
            };
            if model.caught_up[u][m] {
                continue;
            }
            let direct = model.eligible[u]
                .iter()
                .copied()
                .filter(|&c| c != m && model.caught_up[u][c])
                .filter(|&c| placement.count(c) < placement.count(m))
                .filter(|&c| move_keeps_balance(model, placement, m, c))
                .min_by_key(|&c| (model.lag[u][c], placement.count(c), c));
            if let Some(c) = direct {
                placement.put(u, c);
                changed = true;
                continue;
            }
            if let Some((c, v)) = best_swap(model, placement, u, m) {
                placement.put(u, c);
                placement.put(v, m);
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

/// A unit `v` on a caught-up candidate `c` of `u` that the lagging holder `m` of `u` can run:
/// swapping must lower the number of lagging placements (a `v` running on `c` may only go
/// to an `m` caught up on it). Swaps keeping `v` with its previous owner are preferred.
fn best_swap(
    model: &Model<'_>,
    placement: &Placement,
    u: usize,
    m: usize,
) -> Option<(usize, usize)> {
    (0..model.units.len())
        .filter(|&v| v != u && model.is_eligible[v][m])
        .filter_map(|v| placement.holder_of(v).map(|c| (c, v)))
        .filter(|&(c, v)| {
            c != m
                && model.is_eligible[u][c]
                && model.caught_up[u][c]
                && (!model.caught_up[v][c] || model.caught_up[v][m])
        })
        .min_by_key(|&(c, v)| {
            (
                model.prev_owner[v] == Some(c),
                model.lag[u][c],
                !model.caught_up[v][m],
                model.lag[v][m],
                c,
                v,
            )
        })
}

/// Phase 5 (KIP-441): a unit whose balanced owner is lagging runs on a caught-up member
/// instead (its previous owner if possible, so nothing moves), and the intended owner gets
/// a warm-up replica; at most `budget` such units per rebalance, those with a caught-up
/// previous owner first, then those with the fewest caught-up candidates.
fn warm_up(model: &Model<'_>, placement: &mut Placement, budget: usize) -> Vec<Option<usize>> {
    let mut warmup = vec![None; model.units.len()];
    let mut candidates: Vec<(usize, usize)> = (0..model.units.len())
        .filter_map(|u| placement.holder_of(u).map(|m| (u, m)))
        .filter(|&(u, m)| {
            !model.caught_up[u][m]
                && model.eligible[u]
                    .iter()
                    .any(|&c| c != m && model.caught_up[u][c])
        })
        .collect();
    candidates.sort_by_key(|&(u, m)| {
        let sticky = model.prev_owner[u].is_some_and(|p| p != m);
        (!sticky, caught_up_candidates(model, u), u)
    });
    for (u, m) in candidates.into_iter().take(budget) {
        let keeper = model.prev_owner[u]
            .filter(|&p| p != m && model.caught_up[u][p])
            .or_else(|| {
                model.eligible[u]
                    .iter()
                    .copied()
                    .filter(|&c| c != m && model.caught_up[u][c])
                    .min_by_key(|&c| (model.lag[u][c], placement.count(c), c))
            });
        if let Some(c) = keeper {
            placement.put(u, c);
            warmup[u] = Some(m);
        }
    }
    warmup
}
