//! GCRA, the generic cell rate algorithm: the state of a key is one number,
//! the theoretical arrival time (TAT) of its next request. A request at `now`
//! is allowed when `now >= TAT - burst·interval`; then TAT moves on by one
//! interval. The Redis backend runs the same step as a Lua script
//! ([`REDIS_SCRIPT`]) on the server's clock.

use crate::{Quota, RateDecision};
use std::time::Duration;

/// One step for a key whose stored TAT is `tat` (µs). Returns the decision
/// and, when allowed, the TAT to store.
pub(crate) fn step(tat: Option<i64>, now: i64, quota: Quota) -> (RateDecision, Option<i64>) {
    let interval = quota.interval_us();
    let burst = i64::from(quota.burst.max(1));
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(interval);
    let allow_at = new_tat.saturating_sub(burst.saturating_mul(interval));
    if now < allow_at {
        let wait = u64::try_from(allow_at - now).unwrap_or(0);
        return (
            RateDecision {
                allowed: false,
                remaining: 0,
                retry_after: Duration::from_micros(wait),
            },
            None,
        );
    }
    let remaining = u32::try_from((now - allow_at) / interval).unwrap_or(u32::MAX);
    (
        RateDecision {
            allowed: true,
            remaining,
            retry_after: Duration::ZERO,
        },
        Some(new_tat),
    )
}

/// [`step`] as a Redis script over a batch of requests: KEYS[i] the limiter
/// key of request i, ARGV[2i-1] its interval in µs, ARGV[2i] its burst.
/// Returns `{allowed, remaining, retry_after_us}` for each request in turn.
/// `TIME` is the server's clock, so every API instance shares one clock; the
/// requests of a batch are decided one after the other in one atomic
/// script, exactly as if each had run alone at that instant (a key met twice
/// sees its own first step). Each distinct key is read once and written
/// once, after the last of its requests (`now` is one instant for the whole
/// script, so the TAT kept in between is the one a `GET` would return: a
/// batch of many requests from one client costs two commands, not two per
/// request). A key expires when its TAT has passed.
pub(crate) const REDIS_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local tats = {}
local changed = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tats[key]
  if tat == nil then tat = tonumber(redis.call('GET', key) or '0') end
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if now < allow_at then
    tats[key] = tat
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = allow_at - now
  else
    if not changed[key] then
      changed[#changed + 1] = key
      changed[key] = true
    end
    tats[key] = new_tat
    out[#out + 1] = 1
    out[#out + 1] = math.floor((now - allow_at) / interval)
    out[#out + 1] = 0
  end
end
for _, key in ipairs(changed) do
  local tat = tats[key]
  redis.call('SET', key, string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
end
return out
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_sustained_rate() {
        let q = Quota {
            per_second: 10.0,
            burst: 3,
        };
        let mut tat = None;
        let now = 1_000_000_000;
        for want_remaining in [2, 1, 0] {
            let (d, t) = step(tat, now, q);
            assert!(d.allowed);
            assert_eq!(d.remaining, want_remaining);
            tat = t;
        }
        let (d, t) = step(tat, now, q);
        assert!(!d.allowed);
        assert!(t.is_none());
        assert_eq!(d.retry_after, Duration::from_millis(100));
        // One interval later exactly one more request fits.
        let (d, t) = step(tat, now + 100_000, q);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(!step(t, now + 100_000, q).0.allowed);
    }

    #[test]
    fn idle_keys_refill_to_the_burst_only() {
        let q = Quota {
            per_second: 1.0,
            burst: 2,
        };
        let (_, tat) = step(None, 0, q);
        let (d, _) = step(tat, 3_600_000_000, q);
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
    }
}
