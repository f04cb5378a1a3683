//! Firing due timers: orchestration timers deliver `timerFired`, delayed entity signals
//! queue their operation, scheduled starts make their instance ready.

use durabletask_proto::history_event::EventType;
use durabletask_proto::*;

use super::events::{self, Nanos};
use super::hub::Hub;
use crate::records::TimerTarget;

impl Hub {
    /// Fires every timer due at `now`.
    pub fn fire_due(&mut self, now: Nanos) {
        while let Some((id, timer)) = self.timers.pop_due(now) {
            match timer.target {
                Some(TimerTarget::Orchestration(target)) => {
                    let Some(instance) = self.instances.get_mut_unsaved(&target.instance_id) else {
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
                    let Some(instance) = self.instances.get_mut(&start.instance_id) else {
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
