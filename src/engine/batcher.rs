//! The batching decision, with no threads, clock or model: which jobs run in the next step,
//! and whether to step now or wait for a fuller batch.
//!
//! The worker ([`super::worker`]) owns the I/O (the lock, the condition variable, the model
//! call); this module owns the rules, so they are tested with explicit instants:
//! - jobs are admitted oldest first, up to `max_batch` running at once;
//! - a job that has not run yet waits at most `max_wait` after it was queued for others to
//!   join its batch; a full batch runs at once;
//! - a running job stays running window after window until it is done or cancelled, while
//!   others join and leave between steps (continuous batching at window granularity);
//! - admission is first come, first served, so no job waits behind jobs queued after it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A job in the queue or in the running set, with what the policy needs to know of it.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    /// The job's id (unique per engine).
    pub(crate) id: u64,
    /// When it was queued.
    pub(crate) enqueued: Instant,
    /// Whether it has run at least one step; started jobs never wait for a batch again.
    pub(crate) started: bool,
    /// The job itself.
    pub(crate) job: T,
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The engine is closed.
    Closed,
    /// `queued` jobs are already waiting, the most allowed.
    Full {
        /// Jobs waiting.
        queued: usize,
    },
}

/// Jobs waiting for admission, oldest first.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    waiting: VecDeque<Entry<T>>,
    capacity: usize,
    closed: bool,
}

impl<T> Queue<T> {
    /// An open queue holding at most `capacity` waiting jobs.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            waiting: VecDeque::new(),
            capacity,
            closed: false,
        }
    }

    /// Queues `job` as of `now`.
    pub(crate) fn push(&mut self, id: u64, job: T, now: Instant) -> Result<(), Refusal> {
        if self.closed {
            return Err(Refusal::Closed);
        }
        if self.waiting.len() >= self.capacity {
            return Err(Refusal::Full {
                queued: self.waiting.len(),
            });
        }
        self.waiting.push_back(Entry {
            id,
            enqueued: now,
            started: false,
            job,
        });
        Ok(())
    }

    /// Removes a waiting job; false when it is not waiting (running, done or unknown).
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|e| e.id != id);
        self.waiting.len() < before
    }

    /// Jobs waiting.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Refuses new jobs from now on; waiting ones still run.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }
}

/// What the worker does after admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Step the running set now.
    Step,
    /// Wait for more jobs until this instant, then step what is running.
    WaitUntil(Instant),
    /// Nothing runs or waits: sleep until a job is queued.
    WaitForWork,
    /// The engine is closed and every job is done: the worker exits.
    Exit,
}

/// The scheduler's limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchPolicy {
    /// Most jobs stepped in one model call (at least 1).
    pub(crate) max_batch: usize,
    /// Longest a job that has not run yet waits for a fuller batch.
    pub(crate) max_wait: Duration,
}

impl BatchPolicy {
    /// Moves jobs from the front of `queue` into `running` until the batch is full, then
    /// decides what happens next as of `now`. Returns the decision and how many jobs were
    /// admitted (they are the last ones in `running`).
    pub(crate) fn admit<T>(
        &self,
        queue: &mut Queue<T>,
        running: &mut Vec<Entry<T>>,
        now: Instant,
    ) -> (Next, usize) {
        let max_batch = self.max_batch.max(1);
        let before = running.len();
        while running.len() < max_batch {
            let Some(entry) = queue.waiting.pop_front() else {
                break;
            };
            running.push(entry);
        }
        let admitted = running.len() - before;
        (self.next(queue, running, now), admitted)
    }

    fn next<T>(&self, queue: &Queue<T>, running: &[Entry<T>], now: Instant) -> Next {
        if running.is_empty() {
            // Admission empties the queue into a non-full running set.
            return if queue.closed {
                Next::Exit
            } else {
                Next::WaitForWork
            };
        }
        if running.len() >= self.max_batch.max(1) || queue.closed {
            return Next::Step;
        }
        match self.deadline(running) {
            Some(deadline) if deadline > now => Next::WaitUntil(deadline),
            _ => Next::Step,
        }
    }

    /// When a partial batch must run: `max_wait` after the oldest job that has not run yet.
    /// `None` when every running job has started (they never wait again).
    fn deadline<T>(&self, running: &[Entry<T>]) -> Option<Instant> {
        running
            .iter()
            .filter(|e| !e.started)
            .map(|e| e.enqueued + self.max_wait)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(20);

    fn policy(max_batch: usize) -> BatchPolicy {
        BatchPolicy {
            max_batch,
            max_wait: WAIT,
        }
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn ids(running: &[Entry<&str>]) -> Vec<u64> {
        running.iter().map(|e| e.id).collect()
    }

    /// One step of the running set: every job has run; `done` ones leave.
    fn step(running: &mut Vec<Entry<&str>>, done: &[u64]) {
        running.iter_mut().for_each(|e| e.started = true);
        running.retain(|e| !done.contains(&e.id));
    }

    #[test]
    fn a_lone_job_waits_max_wait_for_company_then_runs() {
        let t0 = Instant::now();
        let mut queue = Queue::new(8);
        let mut running = Vec::new();
        queue.push(1, "a", t0).unwrap();
        let (next, admitted) = policy(4).admit(&mut queue, &mut running, ms(t0, 5));
        assert_eq!((next, admitted), (Next::WaitUntil(ms(t0, 20)), 1));
        // A second job joins before the deadline; the deadline stays the oldest's.
        queue.push(2, "b", ms(t0, 10)).unwrap();
        let (next, admitted) = policy(4).admit(&mut queue, &mut running, ms(t0, 10));
        assert_eq!((next, admitted), (Next::WaitUntil(ms(t0, 20)), 1));
        let (next, _) = policy(4).admit(&mut queue, &mut running, ms(t0, 20));
        assert_eq!(next, Next::Step);
        assert_eq!(ids(&running), [1, 2]);
    }

    #[test]
    fn a_full_batch_runs_at_once_and_the_rest_wait_oldest_first() {
        let t0 = Instant::now();
        let mut queue = Queue::new(8);
        let mut running = Vec::new();
        for id in 1..=5 {
            queue.push(id, "x", ms(t0, id)).unwrap();
        }
        let (next, admitted) = policy(3).admit(&mut queue, &mut running, ms(t0, 5));
        assert_eq!((next, admitted), (Next::Step, 3));
        assert_eq!(ids(&running), [1, 2, 3]);
        assert_eq!(queue.len(), 2);
        step(&mut running, &[2]);
        let (next, admitted) = policy(3).admit(&mut queue, &mut running, ms(t0, 6));
        assert_eq!((next, admitted), (Next::Step, 1));
        assert_eq!(ids(&running), [1, 3, 4], "job 4 before job 5");
    }

    #[test]
    fn started_jobs_never_wait_but_a_newcomer_may_hold_them_up_to_max_wait() {
        let t0 = Instant::now();
        let mut queue = Queue::new(8);
        let mut running = Vec::new();
        queue.push(1, "long", t0).unwrap();
        assert_eq!(
            policy(4).admit(&mut queue, &mut running, ms(t0, 20)).0,
            Next::Step
        );
        step(&mut running, &[]);
        // Running alone and started: next window at once.
        assert_eq!(
            policy(4).admit(&mut queue, &mut running, ms(t0, 100)).0,
            Next::Step
        );
        // A short job arrives: it joins, and waits its max_wait for others.
        queue.push(2, "short", ms(t0, 100)).unwrap();
        let (next, admitted) = policy(4).admit(&mut queue, &mut running, ms(t0, 101));
        assert_eq!((next, admitted), (Next::WaitUntil(ms(t0, 120)), 1));
        assert_eq!(
            policy(4).admit(&mut queue, &mut running, ms(t0, 120)).0,
            Next::Step
        );
        // The short job is done after one window; the long one stays.
        step(&mut running, &[2]);
        assert_eq!(ids(&running), [1]);
        assert_eq!(
            policy(4).admit(&mut queue, &mut running, ms(t0, 121)).0,
            Next::Step
        );
    }

    #[test]
    fn cancelled_jobs_leave_the_queue_and_the_running_set() {
        let t0 = Instant::now();
        let mut queue = Queue::new(8);
        let mut running = Vec::new();
        for id in 1..=3 {
            queue.push(id, "x", t0).unwrap();
        }
        assert!(queue.remove(2));
        assert!(!queue.remove(2), "already gone");
        let (next, _) = policy(1).admit(&mut queue, &mut running, t0);
        assert_eq!(next, Next::Step);
        // The running job is cancelled: the worker drops it; job 3 is next.
        running.retain(|e| e.id != 1);
        assert!(!queue.remove(1), "running jobs are not in the queue");
        policy(1).admit(&mut queue, &mut running, t0);
        assert_eq!(ids(&running), [3]);
    }

    #[test]
    fn the_queue_refuses_past_capacity_and_after_close() {
        let t0 = Instant::now();
        let mut queue = Queue::new(2);
        queue.push(1, "a", t0).unwrap();
        queue.push(2, "b", t0).unwrap();
        assert_eq!(queue.push(3, "c", t0), Err(Refusal::Full { queued: 2 }));
        queue.close();
        assert_eq!(queue.push(4, "d", t0), Err(Refusal::Closed));
        // Closed: what waits still runs, without waiting for a fuller batch, then exit.
        let mut running = Vec::new();
        assert_eq!(policy(4).admit(&mut queue, &mut running, t0).0, Next::Step);
        running.clear();
        assert_eq!(policy(4).admit(&mut queue, &mut running, t0).0, Next::Exit);
    }

    #[test]
    fn an_empty_engine_sleeps_until_work_arrives() {
        let mut queue: Queue<&str> = Queue::new(2);
        let mut running = Vec::new();
        let (next, admitted) = policy(4).admit(&mut queue, &mut running, Instant::now());
        assert_eq!((next, admitted), (Next::WaitForWork, 0));
    }

    /// Three streaming sessions resubmit as soon as their job is done, with a batch of two:
    /// every session keeps getting windows (no one starves), because a resubmitted job queues
    /// behind the ones already waiting.
    #[test]
    fn sessions_that_resubmit_take_turns() {
        let t0 = Instant::now();
        let policy = policy(2);
        let mut queue = Queue::new(8);
        let mut running: Vec<Entry<&str>> = Vec::new();
        let sessions = ["a", "b", "c"];
        let mut next_id = 1;
        for (i, session) in sessions.into_iter().enumerate() {
            queue.push(next_id, session, ms(t0, i as u64)).unwrap();
            next_id += 1;
        }
        let mut served = std::collections::HashMap::new();
        for round in 0..30u64 {
            let now = ms(t0, 100 + round * 50);
            let (next, _) = policy.admit(&mut queue, &mut running, now);
            assert_eq!(next, Next::Step);
            // Every job is one window; its session resubmits at once.
            for entry in running.drain(..) {
                *served.entry(entry.job).or_insert(0) += 1;
                queue.push(next_id, entry.job, now).unwrap();
                next_id += 1;
            }
        }
        for session in sessions {
            assert_eq!(served[session], 20, "{served:?}");
        }
    }
}
