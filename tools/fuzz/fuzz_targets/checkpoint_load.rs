//! Any byte string fed to the checkpoint reader must give Ok or Err — never a panic, a hang or
//! an unbounded allocation. Seed corpus: the files in tests/fixtures/biggan-deep-tiny-128/.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = intervene::checkpoint::load_bytes(data, std::path::Path::new("fuzz-input"));
});
