//! Pacing: every attempt of every call first takes a slot from its (api, tenant) bucket, so the
//! host stays under the API's rate limits instead of collecting 429s. Each bucket is a
//! [`window::Window`] (the budget, corrected by the API's headers) plus a
//! [`queue::FairQueue`] (waiters, round-robin between plugins).
//!
//! Waiting: a caller that finds no free slot, or others already waiting, queues. The head of the
//! line sleeps until its slot frees; the others sleep until something changes (a grant, an
//! answer, a leaver), each change waking them to re-check. A caller whose slot cannot come
//! before its delivery's deadline leaves at once with [`PaceError::Deadline`]; a caller whose
//! tenant has spent its daily quota leaves with [`PaceError::Quota`].
//!
//! Invariants: buckets are per tenant, and the map of buckets is locked only to find or create
//! one — never while waiting — so one tenant's burst or 429 storm cannot slow another tenant.
//! Locks are plain mutexes held for a few field updates, never across an await; the lock order
//! is map, then bucket. Memory is bounded by the tenants active recently: idle buckets are
//! evicted by a sweep at most every [`SWEEP_EVERY`].

mod queue;
pub mod shared;
pub mod window;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use self::{
    queue::{FairQueue, Ticket},
    window::{Feedback, Ready, Window},
};
use crate::{
    config::RateLimit,
    ids::{ApiName, PluginName, TenantId},
};

/// How often the map of buckets is swept for idle ones.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// A bucket unused this long (and holding no state) is forgotten.
const IDLE_AFTER: Duration = Duration::from_secs(600);

/// Why no slot was granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaceError {
    /// The slot would come at or after the delivery's deadline (estimated this far away).
    Deadline {
        /// Time until the estimated slot.
        retry_after: Duration,
    },
    /// The tenant's daily quota is spent until then.
    Quota {
        /// Time until the quota resets.
        retry_after: Duration,
    },
}

/// The pacer of one API: a bucket per tenant.
#[derive(Debug)]
pub struct Pacer {
    api: ApiName,
    configured: Option<RateLimit>,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    map: HashMap<TenantId, Arc<Bucket>>,
    swept_at: Instant,
}

#[derive(Debug)]
struct Bucket {
    state: Mutex<BucketState>,
    /// Woken on every change that may let a waiter through.
    changed: Notify,
}

#[derive(Debug)]
struct BucketState {
    window: Window,
    queue: FairQueue,
    next_ticket: Ticket,
}

/// A slot held by one attempt. Report the answer with [`Permit::answered`]; dropping it
/// otherwise (failure, cancellation) releases the slot as used-without-answer.
#[derive(Debug)]
pub struct Permit {
    bucket: Arc<Bucket>,
    released: bool,
    /// How long the caller waited for the slot.
    pub waited: Duration,
}

impl Pacer {
    /// A pacer for `api` with its configured limit (None: only the API's headers pace).
    pub fn new(api: ApiName, configured: Option<RateLimit>) -> Pacer {
        Pacer {
            api,
            configured,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                swept_at: Instant::now(),
            }),
        }
    }

    /// Waits for a slot for one attempt by `plugin` on behalf of `tenant`, no later than
    /// `deadline`.
    pub async fn acquire(
        &self,
        tenant: &TenantId,
        plugin: &PluginName,
        deadline: Instant,
    ) -> Result<Permit, PaceError> {
        let bucket = self.bucket(tenant);
        bucket.acquire(plugin, deadline).await
    }

    /// How long `tenant` cannot send because the API said so (daily quota spent, or a 429's
    /// wait); None when it can.
    pub fn upstream_wait(&self, tenant: &TenantId) -> Option<Duration> {
        let bucket = lock(&self.buckets).map.get(tenant).cloned()?;
        let mut state = bucket.lock();
        let now = Instant::now();
        state.window.expire(now);
        state.window.upstream_wait(now)
    }

    /// Forgets `tenant`'s bucket (e.g. on uninstall); callers holding it finish normally.
    pub fn forget(&self, tenant: &TenantId) {
        lock(&self.buckets).map.remove(tenant);
    }

    /// Buckets currently kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.buckets).map.len()
    }

    fn bucket(&self, tenant: &TenantId) -> Arc<Bucket> {
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        if now.saturating_duration_since(buckets.swept_at) >= SWEEP_EVERY {
            buckets.swept_at = now;
            // Held elsewhere (a waiter or a permit) means in use, whatever its state says.
            buckets
                .map
                .retain(|_, bucket| Arc::strong_count(bucket) > 1 || !bucket.is_idle(now));
            metrics::gauge!("wasmhook_api_pacing_buckets", "api" => self.api.to_string())
                .set(buckets.map.len() as f64);
        }
        Arc::clone(
            buckets
                .map
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(Bucket::new(self.configured.clone(), now))),
        )
    }
}

impl Bucket {
    fn new(configured: Option<RateLimit>, now: Instant) -> Bucket {
        Bucket {
            state: Mutex::new(BucketState {
                window: Window::new(configured, now),
                queue: FairQueue::default(),
                next_ticket: 0,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BucketState> {
        lock(&self.state)
    }

    fn is_idle(&self, now: Instant) -> bool {
        let mut state = self.lock();
        state.window.expire(now);
        state.queue.is_empty() && state.window.is_idle(now, IDLE_AFTER)
    }

    async fn acquire(
        self: Arc<Self>,
        plugin: &PluginName,
        deadline: Instant,
    ) -> Result<Permit, PaceError> {
        let started = Instant::now();
        let ticket = {
            let mut state = self.lock();
            state.window.expire(started);
            match state.window.ready(started) {
                Ready::Quota(until) => {
                    return Err(PaceError::Quota {
                        retry_after: until.saturating_duration_since(started),
                    });
                }
                Ready::Now if state.queue.is_empty() && started < deadline => {
                    state.window.take(started);
                    drop(state);
                    return Ok(Permit::new(self, Duration::ZERO));
                }
                _ => {}
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.queue.push(plugin, ticket);
            ticket
        };
        let mut place = Place {
            bucket: &self,
            ticket,
            queued: true,
        };
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read, so a change made after the read still wakes
            // this waiter.
            changed.as_mut().enable();
            let wake_at = {
                let mut state = self.lock();
                let now = Instant::now();
                state.window.expire(now);
                let ready = state.window.ready(now);
                if let Ready::Quota(until) = ready {
                    drop(state);
                    return Err(PaceError::Quota {
                        retry_after: until.saturating_duration_since(now),
                    });
                }
                let ahead = state.queue.ahead_of(ticket).unwrap_or(0);
                if ahead == 0 && ready == Ready::Now && now < deadline {
                    state.queue.pop_head(ticket);
                    state.window.take(now);
                    place.queued = false;
                    drop(state);
                    // The next in line may be able to go too.
                    self.changed.notify_waiters();
                    return Ok(Permit::new(Arc::clone(&self), now - started));
                }
                let eta = state.window.eta(now, ahead);
                if eta >= deadline || now >= deadline {
                    drop(state);
                    return Err(PaceError::Deadline {
                        retry_after: eta.saturating_duration_since(now),
                    });
                }
                match (ahead, ready) {
                    (0, Ready::At(at)) => at.min(deadline),
                    _ => deadline,
                }
            };
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }
}

/// A queued waiter; leaving the line (any early return, or the call being cancelled) removes
/// its ticket and wakes the others, whose position just improved.
struct Place<'a> {
    bucket: &'a Bucket,
    ticket: Ticket,
    queued: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if self.queued {
            self.bucket.lock().queue.remove(self.ticket);
            self.bucket.changed.notify_waiters();
        }
    }
}

impl Permit {
    fn new(bucket: Arc<Bucket>, waited: Duration) -> Permit {
        Permit {
            bucket,
            released: false,
            waited,
        }
    }

    /// The attempt got an answer: release the slot and learn from its headers.
    pub fn answered(mut self, feedback: &Feedback) {
        self.release(Some(feedback));
    }

    fn release(&mut self, feedback: Option<&Feedback>) {
        if self.released {
            return;
        }
        self.released = true;
        self.bucket.lock().window.release(Instant::now(), feedback);
        self.bucket.changed.notify_waiters();
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release(None);
    }
}

/// The state behind these locks stays consistent between statements (plain counters and
/// queues), so a panic elsewhere does not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
