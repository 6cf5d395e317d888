//! Configuration loading: a TOML document layered over marketd's defaults
//! and validated, as `--config FILE` is. Any text is a configuration or an
//! error naming the key, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = marketd::config::Config::from_toml_str(text);
});
