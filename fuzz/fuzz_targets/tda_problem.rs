//! The TDA request parser (marketd-engine `tda::problem`): a JSON body of
//! POST /tda/vietoris-rips, /tda/summaries, /tda/distance or /jobs, checked
//! under the default limits. The first byte picks the route's default kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketd_engine::tda::TdaConfig;
use marketd_engine::tda::problem::Problem;

const KINDS: [&str; 3] = ["vietoris-rips", "summaries", "distance"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let cfg = TdaConfig::default();
    if let Ok(problem) = Problem::parse(&body, KINDS[pick as usize % KINDS.len()], &cfg) {
        let _ = problem.kind();
        let _ = problem.upload_id();
    }
});
