//! Bus envelopes as a Kafka consumer reads them, JSON or the binary tick
//! layout: any bytes are an envelope or a refusal, never a panic, and a tick
//! read from either comes back unchanged from the binary layout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketd_model::{Codec, Envelope, Event};

fuzz_target!(|data: &[u8]| {
    let Ok(env) = Envelope::decode(data) else {
        return;
    };
    if let Event::Tick(_) = env.event {
        let mut bytes = Vec::new();
        env.encode(Codec::Binary, &mut bytes).unwrap();
        assert_eq!(Envelope::decode(&bytes).unwrap(), env);
    }
});
