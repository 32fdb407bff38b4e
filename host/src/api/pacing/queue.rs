//! The waiting line of one pacing bucket, fair between plugins: one lane per plugin, served
//! round-robin, first come first served within a lane. A plugin firing a hundred calls at once
//! therefore delays another plugin of the same tenant by at most one of its calls per turn.
//!
//! Invariants: no lane is empty; a ticket is in at most one lane; the head (the next ticket to
//! be served) is the front ticket of the front lane.

use std::collections::VecDeque;

use crate::ids::PluginName;

/// A waiter's place in line.
pub type Ticket = u64;

/// Round-robin lanes of tickets.
#[derive(Debug, Default)]
pub struct FairQueue {
    lanes: VecDeque<Lane>,
}

#[derive(Debug)]
struct Lane {
    plugin: PluginName,
    tickets: VecDeque<Ticket>,
}

impl FairQueue {
    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    /// Queues `ticket` at the end of `plugin`'s lane (a new lane joins the round at its end).
    pub fn push(&mut self, plugin: &PluginName, ticket: Ticket) {
        match self.lanes.iter_mut().find(|l| &l.plugin == plugin) {
            Some(lane) => lane.tickets.push_back(ticket),
            None => self.lanes.push_back(Lane {
                plugin: plugin.clone(),
                tickets: VecDeque::from([ticket]),
            }),
        }
    }

    /// How many tickets will be served before `ticket` if nobody else arrives; None if it is
    /// not queued.
    pub fn ahead_of(&self, ticket: Ticket) -> Option<usize> {
        let (lane_index, depth) = self.lanes.iter().enumerate().find_map(|(i, lane)| {
            lane.tickets
                .iter()
                .position(|t| *t == ticket)
                .map(|depth| (i, depth))
        })?;
        // Before the round in which `ticket` is served (its lane's `depth`-th), every lane gives
        // up to `depth` tickets; in that round, the lanes in front give one more each.
        Some(
            self.lanes
                .iter()
                .enumerate()
                .map(|(i, lane)| {
                    let rounds = lane.tickets.len().min(depth);
                    let this_round = usize::from(i < lane_index && lane.tickets.len() > depth);
                    rounds + this_round
                })
                .sum(),
        )
    }

    /// Serves the head if it is `ticket`: its lane moves to the end of the round.
    pub fn pop_head(&mut self, ticket: Ticket) -> bool {
        let Some(front) = self.lanes.front_mut() else {
            return false;
        };
        if front.tickets.front() != Some(&ticket) {
            return false;
        }
        front.tickets.pop_front();
        if let Some(lane) = self.lanes.pop_front()
            && !lane.tickets.is_empty()
        {
            self.lanes.push_back(lane);
        }
        true
    }

    /// Removes `ticket` wherever it is (its waiter gave up).
    pub fn remove(&mut self, ticket: Ticket) {
        for i in 0..self.lanes.len() {
            if let Some(pos) = self.lanes[i].tickets.iter().position(|t| *t == ticket) {
                self.lanes[i].tickets.remove(pos);
                if self.lanes[i].tickets.is_empty() {
                    self.lanes.remove(i);
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(q: &mut FairQueue) -> Vec<Ticket> {
        let mut served = vec![];
        while let Some(head) = q.lanes.front().and_then(|l| l.tickets.front()).copied() {
            assert_eq!(q.ahead_of(head), Some(0));
            assert!(q.pop_head(head));
            served.push(head);
        }
        served
    }

    #[test]
    fn lanes_are_served_round_robin() {
        let (a, b, c) = (
            PluginName::new("a"),
            PluginName::new("b"),
            PluginName::new("c"),
        );
        let mut q = FairQueue::default();
        for t in 1..=4 {
            q.push(&a, t);
        }
        q.push(&b, 10);
        q.push(&b, 11);
        q.push(&c, 20);
        assert_eq!(q.ahead_of(1), Some(0));
        assert_eq!(q.ahead_of(10), Some(1));
        assert_eq!(q.ahead_of(20), Some(2));
        assert_eq!(q.ahead_of(2), Some(3));
        assert_eq!(q.ahead_of(11), Some(4));
        assert_eq!(q.ahead_of(4), Some(6));
        assert_eq!(q.ahead_of(99), None);
        assert_eq!(order(&mut q), vec![1, 10, 20, 2, 11, 3, 4]);
        assert!(q.is_empty());
    }

    #[test]
    fn predictions_match_the_serving_order() {
        let mut q = FairQueue::default();
        let plugins: Vec<PluginName> = (0..3).map(|i| PluginName::new(format!("p{i}"))).collect();
        let mut ticket = 0;
        for round in 0..5 {
            for (i, p) in plugins.iter().enumerate() {
                if (round + i) % 2 == 0 {
                    q.push(p, ticket);
                    ticket += 1;
                }
            }
        }
        let predicted: Vec<(Ticket, usize)> =
            (0..ticket).map(|t| (t, q.ahead_of(t).unwrap())).collect();
        let served = order(&mut q);
        for (t, ahead) in predicted {
            assert_eq!(served.iter().position(|s| *s == t), Some(ahead), "{t}");
        }
    }

    #[test]
    fn only_the_head_is_served_and_leavers_are_removed() {
        let (a, b) = (PluginName::new("a"), PluginName::new("b"));
        let mut q = FairQueue::default();
        q.push(&a, 1);
        q.push(&b, 2);
        q.push(&a, 3);
        assert!(!q.pop_head(2));
        // The lane keeps its turn when its front ticket leaves.
        q.remove(1);
        assert_eq!(q.ahead_of(3), Some(0));
        assert_eq!(q.ahead_of(2), Some(1));
        q.remove(2);
        q.remove(3);
        assert!(q.is_empty());
        q.remove(42);
    }
}
