//! The recent messages of one (channel, key), kept for clients that resume
//! with `since`: at most a configured number, none older than a configured
//! age.

use super::channel::Update;
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct History {
    /// (arrival at the hub in ns, the update), oldest first, consecutive seqs.
    entries: VecDeque<(i64, Arc<Update>)>,
}

/// What a client resuming after `since` gets.
#[derive(Debug, PartialEq)]
pub(crate) enum Resume {
    /// Every message after `since`, none missing (possibly none at all).
    Complete(Vec<Arc<Update>>),
    /// The history no longer holds `from..=to`; what it holds after them
    /// follows (for a conflating channel only the latest).
    Gap {
        from: u64,
        to: u64,
        held: Vec<Arc<Update>>,
    },
}

impl History {
    pub(crate) fn new() -> Self {
        History {
            entries: VecDeque::new(),
        }
    }

    pub(crate) fn push(
        &mut self,
        now_ns: i64,
        update: Arc<Update>,
        max_len: usize,
        max_age_ns: i64,
    ) {
        self.entries.push_back((now_ns, update));
        while self.entries.len() > max_len.max(1) {
            self.entries.pop_front();
        }
        self.expire(now_ns, max_age_ns);
    }

    /// Drops entries older than `max_age_ns`, but always keeps the newest:
    /// it is the key's latest state.
    pub(crate) fn expire(&mut self, now_ns: i64, max_age_ns: i64) {
        while self.entries.len() > 1
            && self
                .entries
                .front()
                .is_some_and(|(at, _)| now_ns.saturating_sub(*at) > max_age_ns)
        {
            self.entries.pop_front();
        }
    }

    pub(crate) fn latest(&self) -> Option<&Arc<Update>> {
        self.entries.back().map(|(_, u)| u)
    }

    /// The messages after `since`, given that the key's last seq is `last`.
    pub(crate) fn since(&self, since: u64, last: u64) -> Resume {
        let after = |from: u64| -> Vec<Arc<Update>> {
            self.entries
                .iter()
                .filter(|(_, u)| u.seq > from)
                .map(|(_, u)| u.clone())
                .collect()
        };
        if since >= last {
            // Up to date; or ahead of this hub (numbered by an instance that
            // restarted since): nothing can be replayed.
            return if since == last {
                Resume::Complete(Vec::new())
            } else {
                Resume::Gap {
                    from: last + 1,
                    to: since,
                    held: self.latest().cloned().into_iter().collect(),
                }
            };
        }
        let oldest = self.entries.front().map_or(last + 1, |(_, u)| u.seq);
        if since + 1 >= oldest {
            Resume::Complete(after(since))
        } else {
            Resume::Gap {
                from: since + 1,
                to: oldest - 1,
                held: after(since),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::Channel;

    fn update(seq: u64) -> Arc<Update> {
        Arc::new(Update {
            channel: Channel::Ticks,
            key: "AAPL".into(),
            symbol: "AAPL".into(),
            interval: None,
            seq,
            produced_at: 0,
            frame: bytes::Bytes::new(),
        })
    }

    fn seqs(xs: &[Arc<Update>]) -> Vec<u64> {
        xs.iter().map(|u| u.seq).collect()
    }

    #[test]
    fn resuming_replays_what_is_held_and_names_what_is_not() {
        let mut h = History::new();
        for seq in 1..=10 {
            h.push(seq as i64, update(seq), 4, i64::MAX);
        }
        // Holds 7..=10.
        match h.since(8, 10) {
            Resume::Complete(xs) => assert_eq!(seqs(&xs), [9, 10]),
            other => panic!("{other:?}"),
        }
        match h.since(6, 10) {
            Resume::Complete(xs) => assert_eq!(seqs(&xs), [7, 8, 9, 10]),
            other => panic!("{other:?}"),
        }
        match h.since(2, 10) {
            Resume::Gap { from, to, held } => {
                assert_eq!((from, to), (3, 6));
                assert_eq!(seqs(&held), [7, 8, 9, 10]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h.since(10, 10), Resume::Complete(Vec::new()));
        match h.since(15, 10) {
            Resume::Gap { from, to, held } => {
                assert_eq!((from, to), (11, 15));
                assert_eq!(seqs(&held), [10]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn old_entries_expire_but_the_latest_stays() {
        let mut h = History::new();
        for seq in 1..=5 {
            h.push(seq as i64 * 1_000, update(seq), 100, 2_500);
        }
        // At 5_000 with an age of 2_500: 3, 4 and 5 are held.
        match h.since(0, 5) {
            Resume::Gap { from, to, held } => {
                assert_eq!((from, to), (1, 2));
                assert_eq!(seqs(&held), [3, 4, 5]);
            }
            other => panic!("{other:?}"),
        }
        h.expire(1_000_000, 2_500);
        assert_eq!(h.latest().map(|u| u.seq), Some(5));
    }
}
