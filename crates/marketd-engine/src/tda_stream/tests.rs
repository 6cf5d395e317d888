//! Window assembly, alignment and the alarm state machine.

use super::alarm::{Alarm, AlarmParams, History};
use super::window::{Assembler, log_returns, point_cloud};

const SEC: i64 = 1_000_000_000;

#[test]
fn windows_need_every_symbol_and_align_on_the_step_grid() {
    // 2 symbols, 1 s bars, windows of 3 bars every 2 bars.
    let mut a = Assembler::new(2, SEC, 3, 2);
    let mut ends = Vec::new();
    for t in 10..20i64 {
        ends.extend(a.push(0, t * SEC, 100.0 + t as f64).iter().map(|w| w.end() / SEC));
        // Symbol 1 has no bar at 13: that step is skipped.
        if t != 13 {
            ends.extend(a.push(1, t * SEC, 50.0 + t as f64).iter().map(|w| w.end() / SEC));
        }
    }
    // Complete steps 10 11 12 14 15 ...; windows end on even starts once 3
    // complete steps exist: 12 (10,11,12), 14 (11,12,14), 16, 18.
    assert_eq!(ends, [12, 14, 16, 18]);
    assert_eq!(a.skipped, 1);
}

#[test]
fn a_step_is_sealed_only_when_every_symbol_has_moved_past_it() {
    let mut a = Assembler::new(2, SEC, 3, 1);
    for t in 0..3 {
        assert!(a.push(0, t * SEC, 10.0).is_empty(), "symbol 1 has not reported");
    }
    assert!(a.push(1, 0, 5.0).is_empty());
    assert!(a.push(1, SEC, 5.0).is_empty());
    let w = a.push(1, 2 * SEC, 5.5);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].starts, [0, SEC, 2 * SEC]);
    assert_eq!(w[0].closes[2], [10.0, 5.5]);
    // A redelivered bar of a sealed step changes nothing.
    assert!(a.push(1, 2 * SEC, 99.0).is_empty());
    assert!(a.push(0, 2 * SEC, 99.0).is_empty());
    // Symbol 1 jumps ahead: step 3 is sealed without it (skipped).
    assert!(a.push(1, 4 * SEC, 6.0).is_empty());
    assert_eq!(a.skipped, 0, "step 3 is not sealed before symbol 0 reaches it");
    assert!(a.push(0, 3 * SEC, 10.0).is_empty());
    assert_eq!(a.skipped, 1, "both reached 3, symbol 1 has no bar there");
    let w = a.push(0, 4 * SEC, 11.0);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].starts, [SEC, 2 * SEC, 4 * SEC]);
}

#[test]
fn returns_and_embedding() {
    let mut a = Assembler::new(1, SEC, 5, 1);
    let closes = [100.0, 110.0, 99.0, 99.0, 108.9];
    let mut w = Vec::new();
    for (t, c) in closes.iter().enumerate() {
        w.extend(a.push(0, t as i64 * SEC, *c));
    }
    let r = log_returns(&w[0]);
    let expect = [1.1f64.ln(), 0.9f64.ln(), 0.0, 1.1f64.ln()];
    for (x, e) in r.iter().zip(expect) {
        assert!((x[0] - e).abs() < 1e-12);
    }
    let (n, dim, coords) = point_cloud(&r, Some((2, 2)));
    assert_eq!((n, dim), (2, 2));
    assert_eq!(coords, [expect[0] as f32, 0.0, expect[1] as f32, expect[3] as f32]);
    let (n, dim, _) = point_cloud(&r, None);
    assert_eq!((n, dim), (4, 1));
}

#[test]
fn robust_zscore_uses_median_and_mad() {
    let mut h = History::new(5, 3);
    h.push(1.0);
    h.push(2.0);
    assert_eq!(h.zscore(10.0), None, "too little history");
    h.push(3.0);
    // median 2, MAD 1 → scale 1.4826.
    let z = h.zscore(5.0).unwrap();
    assert!((z - 3.0 / 1.4826).abs() < 1e-12, "{z}");
    for x in [4.0, 5.0, 6.0] {
        h.push(x);
    }
    assert_eq!(h.len(), 5, "only the newest 5 are kept");
    // 2..6: median 4, MAD 1.
    assert!((h.zscore(4.0).unwrap()).abs() < 1e-12);
    let mut flat = History::new(5, 3);
    for _ in 0..4 {
        flat.push(1.0);
    }
    assert_eq!(flat.zscore(2.0), None, "no spread, no z-score");
}

fn params() -> AlarmParams {
    AlarmParams {
        threshold: 3.0,
        hysteresis: 1.5,
        cooldown: 3,
    }
}

#[test]
fn alarm_threshold_hysteresis_and_cooldown() {
    let mut a = Alarm::new(params());
    let seq = [
        (Some(2.9), (false, false)),
        (None, (false, false)),
        (Some(3.0), (true, true)),
        (Some(2.0), (true, false)), // above hysteresis: stays on
        (Some(1.4), (false, false)), // clears
        (Some(5.0), (false, false)), // 3rd window after the raise: cooling down
        (Some(5.0), (true, true)),  // 4th: raised again
        (None, (true, false)),
        (Some(1.49), (false, false)),
    ];
    for (i, (z, expect)) in seq.into_iter().enumerate() {
        assert_eq!(a.step(z), expect, "window {i}");
    }
}

#[test]
fn alarm_restores_from_stored_windows() {
    // Raised two windows ago and still on.
    let a = Alarm::restore(params(), &[(false, false), (true, true), (true, false), (true, false)]);
    assert!(a.on);
    assert_eq!(a.since_raise, Some(2));
    let mut b = a;
    assert_eq!(b.step(Some(1.0)), (false, false));
    assert_eq!(b.step(Some(9.0)), (true, true), "4 windows after the raise");
    let c = Alarm::restore(params(), &[]);
    assert!(!c.on);
    assert_eq!(c.since_raise, None);
}
