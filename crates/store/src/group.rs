//! Group commit: many callers' writes in one transaction ([`crate::Db::write`]).
//!
//! Callers queue a closure; one writer on tokio's blocking pool takes the
//! queue in batches, runs each closure in its own savepoint inside one
//! write transaction (`BEGIN IMMEDIATE` on SQLite), commits once, and only
//! then acknowledges every caller of the batch with its result. A closure
//! that fails is rolled back to its savepoint alone and answered at once;
//! a failed commit fails every caller of the batch. So an acknowledged
//! write is committed, as with one transaction per caller, while the cost
//! of a commit (and of a trip through the pool) is shared by the batch.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::db::{ConnectionManager, DbConnection, WaitObserver};
use crate::error::StoreError;

type Tm = <DbConnection as Connection>::TransactionManager;

/// Called once the batch holding a successful write has committed (`Ok`)
/// or failed to (`Err`).
type Ack = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// One queued write.
trait Job: Send {
    /// Runs the write (inside its savepoint). `Some(ack)` when it
    /// succeeded and waits for the commit; `None` when it failed and its
    /// caller was already told.
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Option<Ack>;
    /// Tells the caller the write did not happen.
    fn fail(self: Box<Self>, error: StoreError);
}

/// A caller's closure, where to answer, and what it holds while queued.
struct Pending<F, T, E> {
    f: F,
    tx: oneshot::Sender<Result<T, E>>,
    span: tracing::Span,
    queued: Instant,
    observer: Option<WaitObserver>,
    _slot: OwnedSemaphorePermit,
}

impl<F, T, E> Job for Pending<F, T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Option<Ack> {
        let Pending {
            f,
            tx,
            span,
            queued,
            observer,
            _slot,
        } = *self;
        let _span = span.enter();
        if let Some(observe) = &observer {
            observe(queued.elapsed());
        }
        match f(conn) {
            Ok(value) => Some(Box::new(move |committed: Result<(), StoreError>| {
                let _ = tx.send(committed.map(|()| value).map_err(E::from));
                drop(_slot);
            })),
            Err(e) => {
                let _ = tx.send(Err(e));
                None
            }
        }
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.tx.send(Err(E::from(error)));
    }
}

struct Queue {
    jobs: VecDeque<Box<dyn Job>>,
    /// Whether a writer is draining the queue.
    running: bool,
}

/// The group-commit writer of one [`crate::Db`].
pub(crate) struct GroupWriter {
    queue: Mutex<Queue>,
    /// One permit per write that may be queued or in flight: a burst
    /// beyond it waits (then times out with `PoolTimeout`).
    slots: Arc<Semaphore>,
    /// Most writes in one transaction.
    max_batch: usize,
}

impl std::fmt::Debug for GroupWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWriter")
            .field("max_batch", &self.max_batch)
            .field("free_slots", &self.slots.available_permits())
            .finish()
    }
}

impl GroupWriter {
    /// A writer taking at most `max_batch` writes per transaction and
    /// queueing at most `max_queued`.
    pub(crate) fn new(max_batch: usize, max_queued: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                running: false,
            }),
            slots: Arc::new(Semaphore::new(max_queued.max(1))),
            max_batch: max_batch.max(1),
        }
    }

    /// Queues `f` and waits for its result, given after the commit of the
    /// batch it ran in.
    pub(crate) async fn write<T, E, F>(
        self: &Arc<Self>,
        pool: &r2d2::Pool<ConnectionManager>,
        timeout: Duration,
        observer: Option<WaitObserver>,
        f: F,
    ) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let queued = Instant::now();
        let slot = tokio::time::timeout(timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| E::from(StoreError::PoolTimeout(timeout)))?
            .map_err(|e| E::from(StoreError::Task(e.to_string())))?;
        let (tx, rx) = oneshot::channel();
        let job = Box::new(Pending {
            f,
            tx,
            span: tracing::Span::current(),
            queued,
            observer,
            _slot: slot,
        });
        let start = {
            let mut queue = self.lock();
            queue.jobs.push_back(job);
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            let writer = self.clone();
            let pool = pool.clone();
            // Not awaited: the writer answers through each job's channel.
            drop(tokio::task::spawn_blocking(move || writer.drain(&pool)));
        }
        rx.await.map_err(|_| {
            E::from(StoreError::Task(
                "the write was lost (the writer stopped)".into(),
            ))
        })?
    }

    /// The queue. Nothing panics while holding it, so a poisoned lock
    /// (impossible in practice) is used as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs batches until the queue is empty.
    fn drain(&self, pool: &r2d2::Pool<ConnectionManager>) {
        let mut conn = None;
        loop {
            let batch: Vec<Box<dyn Job>> = {
                let mut queue = self.lock();
                if queue.jobs.is_empty() {
                    queue.running = false;
                    return;
                }
                let n = queue.jobs.len().min(self.max_batch);
                queue.jobs.drain(..n).collect()
            };
            if conn.is_none() {
                match pool.get() {
                    Ok(c) => conn = Some(c),
                    Err(_) => {
                        let timeout = pool.connection_timeout();
                        for job in batch {
                            job.fail(StoreError::PoolTimeout(timeout));
                        }
                        continue;
                    }
                }
            }
            if let Some(c) = conn.as_mut()
                && !run_batch(c, batch)
            {
                // The connection's transaction state is unknown: drop it.
                conn = None;
            }
        }
    }
}

/// One transaction for `batch`; false when the connection should not be reused.
fn run_batch(conn: &mut DbConnection, batch: Vec<Box<dyn Job>>) -> bool {
    let begun = match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Pg(c) => AnsiTransactionManager::begin_transaction(c),
    };
    if let Err(e) = begun {
        for job in batch {
            job.fail(copy_error(&e));
        }
        return false;
    }
    let mut acks: Vec<Ack> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let mut healthy = true;
    for job in jobs.by_ref() {
        if let Err(e) = Tm::begin_transaction(conn) {
            job.fail(StoreError::Query(e));
            healthy = false;
            break;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| job.run(conn)));
        let ended = match outcome {
            Ok(Some(ack)) => match Tm::commit_transaction(conn) {
                Ok(()) => {
                    acks.push(ack);
                    Ok(())
                }
                Err(e) => {
                    ack(Err(StoreError::Query(e)));
                    Tm::rollback_transaction(conn)
                }
            },
            // Failed (its caller has its error) or panicked (its caller
            // sees the channel closed): undo its part only.
            Ok(None) | Err(_) => Tm::rollback_transaction(conn),
        };
        if ended.is_err() {
            healthy = false;
            break;
        }
    }
    let failed = if healthy {
        Tm::commit_transaction(conn).err()
    } else {
        Some(diesel::result::Error::BrokenTransactionManager)
    };
    if failed.is_some() {
        let _ = Tm::rollback_transaction(conn);
    }
    for job in jobs {
        job.fail(StoreError::Task(
            "the batch it was queued in failed; nothing was written".into(),
        ));
    }
    for ack in acks {
        ack(match &failed {
            None => Ok(()),
            Some(e) => Err(copy_error(e)),
        });
    }
    healthy && failed.is_none()
}

/// The same failure for another caller of the batch: a database error
/// keeps its kind and message (so "database is locked" still reads as
/// busy), anything else becomes a task failure with its text.
fn copy_error(e: &diesel::result::Error) -> StoreError {
    match e {
        diesel::result::Error::DatabaseError(kind, info) => StoreError::Query(
            diesel::result::Error::DatabaseError(*kind, Box::new(info.message().to_owned())),
        ),
        other => StoreError::Task(format!("the write transaction failed: {other}")),
    }
}
