//! The pacer on paused time, without HTTP: fairness, deadlines, tenants, leavers, eviction.

use std::sync::Arc;

use super::*;

fn pacer(requests: u32, per_secs: u64, daily: Option<u64>) -> Arc<Pacer> {
    Arc::new(Pacer::new(
        ApiName::new("hl"),
        Some(RateLimit {
            requests,
            per: Duration::from_secs(per_secs),
            daily,
        }),
    ))
}

fn ok() -> Feedback {
    Feedback {
        status: 200,
        ..Feedback::default()
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// One attempt that is answered at once; returns when it got its slot.
async fn call(
    pacer: &Pacer,
    tenant: &str,
    plugin: &str,
    deadline: Instant,
) -> Result<Instant, PaceError> {
    let permit = pacer
        .acquire(&TenantId::new(tenant), &PluginName::new(plugin), deadline)
        .await?;
    let at = Instant::now();
    permit.answered(&ok());
    Ok(at)
}

#[tokio::test(start_paused = true)]
async fn a_burst_is_spread_over_windows() {
    let p = pacer(10, 10, None);
    let t0 = Instant::now();
    let mut tasks = vec![];
    for _ in 0..30 {
        let p = Arc::clone(&p);
        tasks.push(tokio::spawn(async move { call(&p, "t", "a", far()).await }));
    }
    let mut times = vec![];
    for task in tasks {
        times.push(task.await.unwrap().unwrap() - t0);
    }
    times.sort();
    // Ten per window of 10 s, measured from the answers.
    assert!(
        times[..10].iter().all(|t| *t < Duration::from_secs(1)),
        "{times:?}"
    );
    assert!(
        times[10..20]
            .iter()
            .all(|t| *t >= Duration::from_secs(10) && *t < Duration::from_secs(11)),
        "{times:?}"
    );
    assert!(
        times[20..].iter().all(|t| *t >= Duration::from_secs(20)),
        "{times:?}"
    );
    for (i, t) in times.iter().enumerate().skip(10) {
        assert!(
            *t >= times[i - 10] + Duration::from_secs(10),
            "window broken at {i}: {times:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn plugins_of_one_tenant_share_fairly() {
    let p = pacer(1, 1, None);
    // Use the first slot so everyone below has to queue.
    call(&p, "t", "warm", far()).await.unwrap();
    let order = Arc::new(Mutex::new(vec![]));
    let mut tasks = vec![];
    for (plugin, n) in [("a", 4), ("b", 2)] {
        for i in 0..n {
            let (p, order) = (Arc::clone(&p), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                call(&p, "t", plugin, far()).await.unwrap();
                order.lock().unwrap().push(format!("{plugin}{i}"));
            }));
            // Queue in a known order.
            tokio::task::yield_now().await;
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), ["a0", "b0", "a1", "b1", "a2", "a3"]);
}

#[tokio::test(start_paused = true)]
async fn a_slot_past_the_deadline_is_refused_at_once() {
    let p = pacer(1, 10, None);
    call(&p, "t", "a", far()).await.unwrap();
    let t0 = Instant::now();
    let err = call(&p, "t", "a", t0 + Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PaceError::Deadline {
            retry_after: Duration::from_secs(10)
        }
    );
    assert_eq!(Instant::now(), t0, "no time was spent waiting");
    // Within the deadline it waits for the slot.
    let at = call(&p, "t", "a", t0 + Duration::from_secs(11))
        .await
        .unwrap();
    assert_eq!(at - t0, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn one_tenant_s_burst_does_not_slow_another() {
    let p = pacer(5, 10, None);
    let mut tasks = vec![];
    for _ in 0..50 {
        let p = Arc::clone(&p);
        tasks.push(tokio::spawn(
            async move { call(&p, "busy", "a", far()).await },
        ));
    }
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    call(&p, "calm", "a", far()).await.unwrap();
    assert_eq!(Instant::now(), t0);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_leaves_the_line() {
    let p = pacer(1, 10, None);
    call(&p, "t", "a", far()).await.unwrap();
    let t0 = Instant::now();
    let first = {
        let p = Arc::clone(&p);
        tokio::spawn(async move { call(&p, "t", "a", far()).await })
    };
    tokio::task::yield_now().await;
    first.abort();
    let at = call(&p, "t", "b", far()).await.unwrap();
    assert_eq!(at - t0, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_spent_daily_quota_is_refused_with_the_wait() {
    let p = pacer(100, 10, Some(2));
    call(&p, "t", "a", far()).await.unwrap();
    call(&p, "t", "a", far()).await.unwrap();
    let err = call(&p, "t", "a", far()).await.unwrap_err();
    let PaceError::Quota { retry_after } = err else {
        panic!("{err:?}")
    };
    assert!(
        retry_after > Duration::from_secs(23 * 3600),
        "{retry_after:?}"
    );
    assert_eq!(p.upstream_wait(&TenantId::new("t")), Some(retry_after));
    assert_eq!(p.upstream_wait(&TenantId::new("other")), None);
}

#[tokio::test(start_paused = true)]
async fn idle_buckets_are_evicted_and_busy_ones_kept() {
    let p = pacer(100, 10, None);
    for tenant in ["a", "b", "c"] {
        call(&p, tenant, "x", far()).await.unwrap();
    }
    let held = p
        .acquire(&TenantId::new("d"), &PluginName::new("x"), far())
        .await
        .unwrap();
    assert_eq!(p.len(), 4);
    tokio::time::advance(IDLE_AFTER + SWEEP_EVERY).await;
    // The sweep runs on the next lookup.
    call(&p, "e", "x", far()).await.unwrap();
    assert_eq!(p.len(), 2, "d is in use and e is new");
    drop(held);
}
