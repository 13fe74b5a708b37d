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
//! - live requests (a stream's interims and finals) are admitted before whole files, and when
//!   files fill the batch, the newest gives its place back to a waiting live request (it goes
//!   back to the front of the queue, its progress kept), so a live request never waits for a
//!   file to end;
//! - admission is otherwise first come, first served, so no job waits behind jobs of its kind
//!   queued after it;
//! - a worker admits at most its share of the work not started yet (waiting jobs plus those
//!   it admitted and has not stepped, over the idle workers, rounded up), leaving the rest to
//!   the other idle workers; a job no idle worker takes waits at most until one of them steps
//!   (its `max_wait`), after which fewer workers share;
//! - while live and whole-file rows are both running they share the model's time: after a
//!   step with file rows (a file's window costs many times a live request's), live rows run
//!   alone for a multiple of its time (the worker's share), so a live request waits for at
//!   most one file step and a stream's next requests rarely wait behind another, while files
//!   still progress; once live work is preferred (shutdown: live finals must make the grace
//!   period), file rows sit out every step while live rows run.

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
    /// Whether it has been admitted (and counted so) once: a file benched while live rows ran
    /// alone can step back before its first step, and must not count as admitted twice, nor
    /// as cancelled in the queue if its caller leaves while it waits there again.
    pub(crate) admitted: bool,
    /// A live stream's request, run ahead of whole files.
    pub(crate) live: bool,
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

    /// Queues `job` (`live` for a stream's request) as of `now`.
    pub(crate) fn push(
        &mut self,
        id: u64,
        job: T,
        live: bool,
        now: Instant,
    ) -> Result<(), Refusal> {
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
            admitted: false,
            live,
            job,
        });
        Ok(())
    }

    /// Removes a waiting job: `Some(admitted)` (whether it had been admitted, then stepped
    /// back for a live request), `None` when it is not waiting (running, done or unknown).
    pub(crate) fn remove(&mut self, id: u64) -> Option<bool> {
        let i = self.waiting.iter().position(|e| e.id == id)?;
        self.waiting.remove(i).map(|e| e.admitted)
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
    /// Whether live requests go ahead of whole files; off, all are first come, first served.
    pub(crate) live_priority: bool,
    /// Workers free to admit work now, this one included (at least 1): each takes its share
    /// of the waiting jobs, so a burst (a long file's chunks, streams starting together) is
    /// spread over the workers instead of filling the first one's batch while the others
    /// idle.
    pub(crate) idle_workers: usize,
}

impl BatchPolicy {
    /// Moves jobs from `queue` into `running` until the batch is full (live requests first,
    /// a file stepping back for a waiting one), then decides what happens next as of `now`.
    /// Returns the decision and how many jobs were admitted (they are the last ones in
    /// `running`; a file readmitted after stepping back is among them, `admitted`).
    pub(crate) fn admit<T>(
        &self,
        queue: &mut Queue<T>,
        running: &mut Vec<Entry<T>>,
        now: Instant,
    ) -> (Next, usize) {
        let max_batch = self.max_batch.max(1);
        // This worker's share of the work not started yet: the waiting jobs and those it has
        // admitted while it waits for company (other workers' are not known here).
        let unstarted = running.iter().filter(|e| !e.started).count();
        let share = (queue.len() + unstarted)
            .div_ceil(self.idle_workers.max(1))
            .saturating_sub(unstarted);
        let mut admitted = 0;
        while admitted < share {
            let live_waiting = self.live_priority && queue.waiting.iter().any(|e| e.live);
            if running.len() >= max_batch && live_waiting {
                // A live request waits and files fill the batch: the newest file steps back.
                let Some(file) = running.iter().rposition(|e| !e.live) else {
                    break;
                };
                queue.waiting.push_front(running.remove(file));
            }
            if running.len() >= max_batch {
                break;
            }
            let live = queue
                .waiting
                .iter()
                .position(|e| e.live)
                .filter(|_| self.live_priority);
            let Some(entry) = queue.waiting.remove(live.unwrap_or(0)) else {
                break;
            };
            running.push(entry);
            admitted += 1;
        }
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

    /// Whether the whole-file rows sit out the next step, leaving it to the live rows: only
    /// when both kinds are running, and then while files are `files_ahead` (model time spent
    /// on steps with file rows minus time on live-only steps, since both kinds began running
    /// together) or live work is preferred (shutdown).
    pub(crate) fn files_sit_out<T>(
        &self,
        running: &[Entry<T>],
        files_ahead: Duration,
        prefer_live: bool,
    ) -> bool {
        if !self.live_priority {
            return false;
        }
        let live = running.iter().any(|e| e.live);
        let files = running.iter().any(|e| !e.live);
        live && files && (!files_ahead.is_zero() || prefer_live)
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
            live_priority: true,
            idle_workers: 1,
        }
    }

    #[test]
    fn idle_workers_share_a_burst_and_a_lone_job_still_goes_to_one() {
        let t0 = Instant::now();
        let mut queue = Queue::new(16);
        for id in 1..=7 {
            queue.push(id, "chunk", false, t0).unwrap();
        }
        let two_idle = BatchPolicy {
            idle_workers: 2,
            ..policy(8)
        };
        let (mut first, mut second) = (Vec::new(), Vec::new());
        let (_, admitted) = two_idle.admit(&mut queue, &mut first, t0);
        assert_eq!(admitted, 4, "7 jobs over 2 idle workers: 4 here");
        // The first worker is stepping now; the second is the only idle one.
        let one_idle = BatchPolicy {
            idle_workers: 1,
            ..policy(8)
        };
        let (_, admitted) = one_idle.admit(&mut queue, &mut second, t0);
        assert_eq!((admitted, ids(&second)), (3, vec![5, 6, 7]));
        // One job arrives while both are idle again: the one that looks first takes it, and a
        // second arrival goes to the other while the first waits for company.
        step(&mut first, &[1, 2, 3, 4]);
        step(&mut second, &[5, 6, 7]);
        queue.push(8, "lone", false, t0).unwrap();
        assert_eq!(two_idle.admit(&mut queue, &mut first, t0).1, 1);
        queue.push(9, "next", false, t0).unwrap();
        assert_eq!(two_idle.admit(&mut queue, &mut first, t0).1, 0);
        assert_eq!(two_idle.admit(&mut queue, &mut second, t0).1, 1);
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn ids(running: &[Entry<&str>]) -> Vec<u64> {
        running.iter().map(|e| e.id).collect()
    }

    /// One step of the running set: every job has run; `done` ones leave.
    fn step(running: &mut Vec<Entry<&str>>, done: &[u64]) {
        running.iter_mut().for_each(|e| {
            e.started = true;
            e.admitted = true;
        });
        running.retain(|e| !done.contains(&e.id));
    }

    #[test]
    fn a_lone_job_waits_max_wait_for_company_then_runs() {
        let t0 = Instant::now();
        let mut queue = Queue::new(8);
        let mut running = Vec::new();
        queue.push(1, "a", false, t0).unwrap();
        let (next, admitted) = policy(4).admit(&mut queue, &mut running, ms(t0, 5));
        assert_eq!((next, admitted), (Next::WaitUntil(ms(t0, 20)), 1));
        // A second job joins before the deadline; the deadline stays the oldest's.
        queue.push(2, "b", false, ms(t0, 10)).unwrap();
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
            queue.push(id, "x", false, ms(t0, id)).unwrap();
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
        queue.push(1, "long", false, t0).unwrap();
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
        queue.push(2, "short", false, ms(t0, 100)).unwrap();
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
            queue.push(id, "x", false, t0).unwrap();
        }
        assert_eq!(queue.remove(2), Some(false));
        assert_eq!(queue.remove(2), None, "already gone");
        let (next, _) = policy(1).admit(&mut queue, &mut running, t0);
        assert_eq!(next, Next::Step);
        // The running job is cancelled: the worker drops it; job 3 is next.
        running.retain(|e| e.id != 1);
        assert_eq!(queue.remove(1), None, "running jobs are not in the queue");
        policy(1).admit(&mut queue, &mut running, t0);
        assert_eq!(ids(&running), [3]);
    }

    #[test]
    fn the_queue_refuses_past_capacity_and_after_close() {
        let t0 = Instant::now();
        let mut queue = Queue::new(2);
        queue.push(1, "a", false, t0).unwrap();
        queue.push(2, "b", false, t0).unwrap();
        assert_eq!(
            queue.push(3, "c", false, t0),
            Err(Refusal::Full { queued: 2 })
        );
        queue.close();
        assert_eq!(queue.push(4, "d", false, t0), Err(Refusal::Closed));
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
            queue
                .push(next_id, session, false, ms(t0, i as u64))
                .unwrap();
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
                queue.push(next_id, entry.job, false, now).unwrap();
                next_id += 1;
            }
        }
        for session in sessions {
            assert_eq!(served[session], 20, "{served:?}");
        }
    }

    fn entries(running: &[Entry<&str>]) -> Vec<(u64, bool)> {
        running.iter().map(|e| (e.id, e.live)).collect()
    }

    #[test]
    fn live_requests_go_first_and_a_file_steps_back_for_one_keeping_its_progress() {
        let t0 = Instant::now();
        let mut queue = Queue::new(8);
        let mut running = Vec::new();
        for id in 1..=3 {
            queue.push(id, "file", false, t0).unwrap();
        }
        queue.push(4, "live", true, ms(t0, 1)).unwrap();
        // Queued after the files, the live request is admitted first.
        let (next, admitted) = policy(2).admit(&mut queue, &mut running, ms(t0, 30));
        assert_eq!((next, admitted), (Next::Step, 2));
        assert_eq!(entries(&running), [(4, true), (1, false)]);
        step(&mut running, &[4]);
        let (next, admitted) = policy(2).admit(&mut queue, &mut running, ms(t0, 31));
        assert_eq!((next, admitted), (Next::Step, 1));
        assert_eq!(entries(&running), [(1, false), (2, false)]);
        step(&mut running, &[]);
        // Files fill the batch; a live request arrives: the newest file steps back to the
        // front of the queue, and comes back, started, once the live request is served.
        queue.push(5, "live", true, ms(t0, 40)).unwrap();
        let (next, admitted) = policy(2).admit(&mut queue, &mut running, ms(t0, 40));
        assert_eq!(
            (next, admitted),
            (Next::Step, 1),
            "a full batch runs at once"
        );
        assert_eq!(entries(&running), [(1, false), (5, true)]);
        assert_eq!(
            queue.waiting.front().map(|e| (e.id, e.started)),
            Some((2, true))
        );
        step(&mut running, &[5]);
        policy(2).admit(&mut queue, &mut running, ms(t0, 61));
        assert_eq!(
            entries(&running),
            [(1, false), (2, false)],
            "file 2 before file 3"
        );
        // A file that stepped back and is cancelled in the queue was running.
        queue.push(6, "live", true, ms(t0, 70)).unwrap();
        policy(2).admit(&mut queue, &mut running, ms(t0, 70));
        assert_eq!(queue.remove(2), Some(true));
    }

    #[test]
    fn a_file_that_steps_back_before_its_first_step_still_counts_as_admitted() {
        let t0 = Instant::now();
        let mut queue = Queue::new(8);
        let mut running = Vec::new();
        queue.push(1, "file", false, t0).unwrap();
        queue.push(2, "file", false, t0).unwrap();
        policy(2).admit(&mut queue, &mut running, ms(t0, 20));
        // The worker counted both; neither has stepped (benched while live rows ran alone).
        running.iter_mut().for_each(|e| e.admitted = true);
        queue.push(3, "live", true, ms(t0, 21)).unwrap();
        policy(2).admit(&mut queue, &mut running, ms(t0, 21));
        assert_eq!(entries(&running), [(1, false), (3, true)]);
        // File 2's caller leaves while it waits again: it was admitted, not merely queued.
        assert_eq!(queue.remove(2), Some(true));
    }

    #[test]
    fn files_sit_out_while_ahead_of_live_rows_and_every_step_when_live_is_preferred() {
        let t0 = Instant::now();
        let mut queue = Queue::new(8);
        let mut running = Vec::new();
        queue.push(1, "file", false, t0).unwrap();
        queue.push(2, "live", true, t0).unwrap();
        policy(4).admit(&mut queue, &mut running, ms(t0, 20));
        let sits_out = |running: &[Entry<&str>], files_ran_last, prefer_live| {
            policy(4).files_sit_out(running, files_ran_last, prefer_live)
        };
        let ahead = Duration::from_millis(300);
        assert!(
            !sits_out(&running, Duration::ZERO, false),
            "files are not ahead: they run now"
        );
        assert!(
            sits_out(&running, ahead, false),
            "files are ahead: live rows run alone"
        );
        assert!(
            sits_out(&running, Duration::ZERO, true),
            "shutdown: live rows always run alone"
        );
        running.retain(|e| !e.live);
        assert!(!sits_out(&running, ahead, true), "files alone always run");
    }

    #[test]
    fn without_live_priority_every_job_is_first_come_first_served() {
        let t0 = Instant::now();
        let fifo = BatchPolicy {
            live_priority: false,
            ..policy(1)
        };
        let mut queue = Queue::new(8);
        let mut running = Vec::new();
        queue.push(1, "file", false, t0).unwrap();
        queue.push(2, "live", true, t0).unwrap();
        fifo.admit(&mut queue, &mut running, t0);
        step(&mut running, &[]);
        fifo.admit(&mut queue, &mut running, t0);
        assert_eq!(entries(&running), [(1, false)], "the live request waits");
        running.push(queue.waiting.pop_front().unwrap());
        assert!(!fifo.files_sit_out(&running, Duration::from_secs(1), true));
    }
}
