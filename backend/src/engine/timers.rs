//! Durable timers: orchestration timers, delayed entity signals and scheduled starts.
//!
//! Each is a record with a due time; a min-heap orders them and the engine sleeps until
//! the earliest. Heap entries are not removed when a timer is cancelled: a popped entry
//! whose record is gone (or has another due time) is skipped.

use std::cmp::Reverse;

use durabletask_proto::history_event::EventType;
use durabletask_proto::*;

use super::events::{self, Nanos};
use super::hub::Hub;
use crate::records::{TimerRecord, TimerTarget};

impl Hub {
    pub(super) fn add_timer(&mut self, due: Nanos, target: TimerTarget) -> u64 {
        let id = self.next_timer_id;
        self.next_timer_id += 1;
        self.timers.insert(
            id,
            TimerRecord {
                due,
                target: Some(target),
            },
        );
        self.timer_heap.push(Reverse((due, id)));
        self.dirty.timers.insert(id);
        id
    }

    pub(super) fn remove_timer(&mut self, id: u64) {
        if self.timers.remove(&id).is_some() {
            self.dirty.timers.insert(id);
        }
    }

    /// The earliest due time of a live timer.
    pub fn next_due(&mut self) -> Option<Nanos> {
        while let Some(&Reverse((due, id))) = self.timer_heap.peek() {
            if self.timers.get(&id).is_some_and(|timer| timer.due == due) {
                return Some(due);
            }
            self.timer_heap.pop();
        }
        None
    }

    /// Fires every timer due at `now`.
    pub fn fire_due(&mut self, now: Nanos) {
        while let Some(due) = self.next_due() {
            if due > now {
                break;
            }
            let Some(Reverse((_, id))) = self.timer_heap.pop() else {
                break;
            };
            let Some(timer) = self.timers.remove(&id) else {
                continue;
            };
            self.dirty.timers.insert(id);
            match timer.target {
                Some(TimerTarget::Orchestration(target)) => {
                    let Some(instance) = self.instances.get_mut(&target.instance_id) else {
                        continue;
                    };
                    instance.timers.remove(&id);
                    if instance.record.generation != target.generation || instance.is_terminal() {
                        continue;
                    }
                    let fired = events::event(
                        -1,
                        EventType::TimerFired(TimerFiredEvent {
                            fire_at: target.fire_at,
                            timer_id: target.timer_id,
                        }),
                    );
                    self.push_event(&target.instance_id, fired);
                }
                Some(TimerTarget::EntitySignal(signal)) => {
                    if let Some(event) = signal.event {
                        self.queue_operation(&signal.entity_id, event);
                    }
                }
                Some(TimerTarget::ScheduledStart(start)) => {
                    let Some(instance) = self.instance_mut(&start.instance_id) else {
                        continue;
                    };
                    instance.timers.remove(&id);
                    if instance.record.generation == start.generation {
                        instance.record.not_before = None;
                    }
                    self.wake(&start.instance_id);
                }
                None => {}
            }
        }
    }
}
