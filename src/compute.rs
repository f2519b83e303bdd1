//! The CPU-bound endpoint's pool: `/fibonacci` computes on threads of its
//! own, one per core, never on a thread that serves sockets, and at most
//! `admitted` computations wait or run at once (past that, 503 at once
//! instead of a pile-up).
//!
//! Why threads of our own, pulling from one queue, and not tokio's blocking
//! pool (what this was until 2026-12-07): there, each computation was a
//! `spawn_blocking` under a semaphore of one permit per core. A finished
//! computation released its permit, which woke the next request's runtime,
//! which then woke a blocking thread to compute: two wake-ups (about 60 µs
//! each on this VM) between one computation and the next on each core,
//! while nothing ran there. `fib25` kept the server at 1.45–1.51 of the 2
//! cores. Here a worker that finishes takes the next computation from the
//! queue at once; the wake-up that tells a request its answer is ready runs
//! beside the next computation instead of before it (docs/PERFORMANCE.md,
//! "The compute pool").

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::error::ApiError;

/// `workers` threads computing, and the admission limit.
pub struct ComputePool {
    shared: Arc<Shared>,
    /// One permit per computation waiting or running.
    admitted: Arc<Semaphore>,
}

/// What the workers and the requests share.
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the pool closes.
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// No more jobs: the workers exit once the queue is empty.
    closed: bool,
}

/// One computation and where its answer goes.
struct Job {
    n: u32,
    answer: oneshot::Sender<u64>,
    /// Held until the job is done or skipped, so that a request whose
    /// client left still counts against the limit while its job waits.
    _admitted: OwnedSemaphorePermit,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A worker never panics holding the lock (it only moves jobs), so a
        // poisoned queue is still a consistent one.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ComputePool {
    /// Starts `workers` threads (at least one); `admitted` computations (at
    /// least `workers`) may wait or run at once.
    pub fn start(workers: usize, admitted: usize) -> Result<ComputePool, String> {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        for index in 0..workers {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("bakeoff-compute-{index}"))
                .spawn(move || work(&shared))
                .map_err(|error| format!("cannot start a compute thread: {error}"))?;
        }
        Ok(ComputePool {
            shared,
            admitted: Arc::new(Semaphore::new(admitted.max(workers))),
        })
    }

    /// fib(`n`), computed on a worker. `Unavailable` when `admitted`
    /// computations are already waiting or running, or the pool is closed.
    pub async fn fib(&self, n: u32) -> Result<u64, ApiError> {
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| ApiError::Unavailable)?;
        let (answer, answered) = oneshot::channel();
        {
            let mut queue = self.shared.lock();
            if queue.closed {
                return Err(ApiError::Unavailable);
            }
            queue.jobs.push_back(Job {
                n,
                answer,
                _admitted: admitted,
            });
        }
        self.shared.ready.notify_one();
        answered.await.map_err(|_| ApiError::Internal)
    }

    /// Lets the workers exit once the queued jobs are done; later requests
    /// get `Unavailable`.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// A worker: the next job as soon as the last one is done, asleep only
/// while the queue is empty.
fn work(shared: &Shared) {
    loop {
        let job = {
            let mut queue = shared.lock();
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                if queue.closed {
                    return;
                }
                queue = shared
                    .ready
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        // The request was dropped (its client left): nothing to compute for.
        if job.answer.is_closed() {
            continue;
        }
        let _ = job.answer.send(fib(job.n));
    }
}

/// fib(0) = fib(1) = 1, fib(n) = fib(n-1) + fib(n-2), by the naive
/// recursion: this is the study's CPU-bound workload, not a puzzle to
/// optimise away.
pub fn fib(n: u32) -> u64 {
    if n < 2 { 1 } else { fib(n - 1) + fib(n - 2) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fib_follows_the_contract_definition() {
        let expected = [1, 1, 2, 3, 5, 8, 13, 21, 34, 55];
        for (n, value) in expected.iter().enumerate() {
            assert_eq!(fib(n as u32), *value);
        }
        assert_eq!(fib(25), 121393);
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn many_requests_each_get_their_own_answer() {
        let pool = ComputePool::start(2, 64).expect("a pool");
        let answers = runtime().block_on(async {
            let requests = (0..40u32).map(|n| pool.fib(n % 20));
            futures_util::future::join_all(requests).await
        });
        for (n, answer) in (0..40u32).zip(answers) {
            assert_eq!(answer, Ok(fib(n % 20)), "n = {}", n % 20);
        }
        pool.close();
    }

    #[test]
    fn past_the_admission_limit_the_answer_is_unavailable_at_once() {
        // One worker busy with a long computation, one admitted in all:
        // the second request must not wait for it.
        let pool = ComputePool::start(1, 1).expect("a pool");
        let answers = runtime().block_on(async {
            let busy = pool.fib(32);
            let refused = pool.fib(1);
            futures_util::future::join(busy, refused).await
        });
        assert_eq!(answers, (Ok(fib(32)), Err(ApiError::Unavailable)));
        pool.close();
    }

    #[test]
    fn a_closed_pool_answers_unavailable() {
        let pool = ComputePool::start(1, 4).expect("a pool");
        pool.close();
        let answer = runtime().block_on(pool.fib(3));
        assert_eq!(answer, Err(ApiError::Unavailable));
    }
}
