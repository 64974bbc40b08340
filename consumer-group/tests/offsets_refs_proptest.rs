//! Property test of a partition window with offsets shared by several consumers, holds,
//! abandoned offsets and gaps moved over by `advance_to`, against a simple model: the
//! committable offset is the smallest delivered offset not finished (a consumer or a hold
//! left, or abandoned), else the end; it never goes backwards; a repeated ack of one consumer
//! changes nothing; `in_processing` counts the offsets with a consumer or a hold left.

use std::collections::BTreeMap;

use mephisto_consumer_group::offsets::{PartitionWindow, TrackError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Deliver { gap: u8, consumers: u8 },
    Ack { pick: usize, consumer: u8 },
    Hold { pick: usize },
    Release { pick: usize },
    Abandon { pick: usize, consumer: u8 },
    Advance { by: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop_oneof![5 => Just(0u8), 1 => 1u8..6], 1u8..4)
            .prop_map(|(gap, consumers)| Op::Deliver { gap, consumers }),
        8 => (any::<usize>(), 0u8..4).prop_map(|(pick, consumer)| Op::Ack { pick, consumer }),
        1 => any::<usize>().prop_map(|pick| Op::Hold { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        1 => (any::<usize>(), 0u8..4).prop_map(|(pick, consumer)| Op::Abandon { pick, consumer }),
        1 => (0u8..4).prop_map(|by| Op::Advance { by }),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    pending: u32,
    holds: u32,
    abandoned: bool,
}

impl Slot {
    fn busy(&self) -> bool {
        self.pending != 0 || self.holds != 0
    }
}

struct Model {
    next: i64,
    delivered: BTreeMap<i64, Slot>,
}

impl Model {
    fn committable(&self) -> i64 {
        self.delivered
            .iter()
            .find(|(_, s)| s.busy() || s.abandoned)
            .map_or(self.next, |(o, _)| *o)
    }
    fn live(&self) -> Vec<i64> {
        let c = self.committable();
        self.delivered.range(c..).map(|(o, _)| *o).collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn shared_window_matches_the_model(
        start in 0i64..1_000_000,
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let capacity = 64;
        let mut w = PartitionWindow::new(start, capacity);
        let mut m = Model { next: start, delivered: BTreeMap::new() };
        let mut last = w.committable();
        for op in ops {
            let live = m.live();
            match op {
                Op::Deliver { gap, consumers } => {
                    let o = m.next + i64::from(gap);
                    match w.delivered_with(o, u32::from(consumers)) {
                        Ok(()) => {
                            let pending = (1u32 << consumers) - 1;
                            m.delivered.insert(o, Slot { pending, holds: 0, abandoned: false });
                            m.next = o + 1;
                        }
                        Err(TrackError::WindowFull { .. }) => {
                            prop_assert_eq!(live.len(), capacity);
                        }
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Advance { by } => {
                    m.next += i64::from(by);
                    w.advance_to(m.next);
                }
                _ if live.is_empty() => {}
                Op::Ack { pick, consumer } | Op::Abandon { pick, consumer } => {
                    let o = live[pick % live.len()];
                    let slot = m.delivered.get_mut(&o).expect("live offsets are delivered");
                    let bit = 1u32 << consumer;
                    let new = slot.pending & bit != 0;
                    let got = match op {
                        Op::Ack { .. } => w.acked_by(o, consumer),
                        _ => {
                            if new {
                                slot.abandoned = true;
                            }
                            w.abandon_by(o, consumer)
                        }
                    };
                    prop_assert_eq!(got, Ok(new));
                    slot.pending &= !bit;
                }
                Op::Hold { pick } => {
                    let o = live[pick % live.len()];
                    let slot = m.delivered.get_mut(&o).expect("live offsets are delivered");
                    let new = slot.busy();
                    prop_assert_eq!(w.hold(o), Ok(new));
                    if new {
                        slot.holds += 1;
                    }
                }
                Op::Release { pick } => {
                    let o = live[pick % live.len()];
                    let slot = m.delivered.get_mut(&o).expect("live offsets are delivered");
                    let new = slot.holds > 0;
                    prop_assert_eq!(w.release(o), Ok(new));
                    if new {
                        slot.holds -= 1;
                    }
                }
            }
            let c = w.committable();
            prop_assert_eq!(c, m.committable());
            prop_assert!(c >= last, "went backwards: {} -> {}", last, c);
            last = c;
            prop_assert_eq!(
                w.in_processing(),
                m.delivered.range(c..).filter(|(_, s)| s.busy()).count()
            );
            // Finished offsets behind the committable one are gone.
            m.delivered.retain(|o, _| *o >= c);
            prop_assert_eq!(w.len(), m.delivered.len());
        }
    }
}
