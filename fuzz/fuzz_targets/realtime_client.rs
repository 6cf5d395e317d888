//! The realtime WebSocket's client message parser: any text a client sends
//! is a message or a refusal with a code, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketd_api::realtime::protocol;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(refusal) = protocol::parse(text) {
        assert!(!refusal.code.is_empty() && !refusal.detail.is_empty());
    }
});
