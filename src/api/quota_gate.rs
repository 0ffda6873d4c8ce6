//! Where client quotas meet a connection: Produce is charged its request bytes, Fetch its
//! response's record bytes; the throttle goes into the response's `throttle_time_ms` and the
//! connection then stops reading for that long (KIP-219: the client is told, and held to it).

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, FetchResponse, RequestKind, ResponseKind};

use super::router::Reply;
use super::RequestContext;
use crate::broker::Broker;
use crate::quota::{QuotaCache, QuotaKind};

fn client_id(ctx: &RequestContext) -> &str {
    ctx.client_id.as_deref().unwrap_or("")
}

/// Before a fetch is served: a client that still owes time is answered at once, empty (as
/// Kafka does; it would otherwise be handed more records to pay for); otherwise its response
/// is bounded to one bucket of quota.
pub fn before_fetch(
    broker: &Broker,
    ctx: &RequestContext,
    cache: &mut QuotaCache,
    request: &mut RequestKind,
) -> Option<(ResponseKind, Duration)> {
    let RequestKind::Fetch(fetch) = request else {
        return None;
    };
    let (user, client) = (&ctx.principal.name, client_id(ctx));
    let (owed, burst) = broker
        .quotas
        .owed_with(cache, QuotaKind::Fetch, user, client)?;
    if owed.is_zero() {
        let cap = i32::try_from(burst).unwrap_or(i32::MAX).max(1);
        fetch.max_bytes = fetch.max_bytes.min(cap);
        return None;
    }
    throttled(broker, ctx, cache, QuotaKind::Fetch, owed);
    let response = FetchResponse::default().with_throttle_time_ms(millis(owed));
    Some((ResponseKind::Fetch(response), owed))
}

/// Charges a handled request to its quota and sets the response's throttle time; returns
/// how long the connection must now wait before reading on.
pub fn charge(
    broker: &Broker,
    ctx: &RequestContext,
    cache: &mut QuotaCache,
    api: ApiKey,
    request_bytes: usize,
    reply: Reply,
) -> (Reply, Duration) {
    let (kind, bytes) = match (&api, &reply) {
        (ApiKey::Produce, _) => (QuotaKind::Produce, request_bytes as u64),
        (ApiKey::Fetch, Reply::Ready(body)) => (QuotaKind::Fetch, record_bytes(body)),
        _ => return (reply, Duration::ZERO),
    };
    let throttle =
        broker
            .quotas
            .record_with(cache, kind, &ctx.principal.name, client_id(ctx), bytes);
    if throttle.is_zero() {
        return (reply, throttle);
    }
    throttled(broker, ctx, cache, kind, throttle);
    let ms = millis(throttle);
    let reply = match reply {
        Reply::Ready(mut body) => {
            set_throttle(&mut body, ms);
            Reply::Ready(body)
        }
        Reply::Deferred(response) => Reply::Deferred(Box::pin(async move {
            let mut body = response.await;
            set_throttle(&mut body, ms);
            body
        })),
        Reply::None => Reply::None,
    };
    (reply, throttle)
}

/// Every throttle is counted; the first of a connection for a quota is also logged and
/// audited (a throttled client is throttled many times a second).
fn throttled(
    broker: &Broker,
    ctx: &RequestContext,
    cache: &mut QuotaCache,
    kind: QuotaKind,
    throttle: Duration,
) {
    broker.metrics.throttled.with(&[kind.metric_label()]).inc();
    let Some(entity) = cache.first_throttle(kind) else {
        return;
    };
    tracing::info!(principal = %ctx.principal, client_id = client_id(ctx), peer = %ctx.peer, quota = kind.key(), %entity, ms = throttle.as_millis(), "connection throttled by a client quota");
    let ms = u64::try_from(throttle.as_millis()).unwrap_or(u64::MAX);
    broker.audit.record(crate::audit::Event::quota_throttled(
        &crate::audit::Origin::of_request(ctx),
        kind.key(),
        &entity,
        ms,
    ));
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

fn set_throttle(body: &mut ResponseKind, ms: i32) {
    match body {
        ResponseKind::Produce(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms),
        ResponseKind::Fetch(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms),
        _ => {}
    }
}

/// The record bytes a fetch response carries (its size but for a few bytes per partition).
fn record_bytes(body: &ResponseKind) -> u64 {
    let ResponseKind::Fetch(r) = body else {
        return 0;
    };
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.records.as_ref().map_or(0, |b| b.len() as u64))
        .sum()
}
