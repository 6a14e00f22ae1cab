//! The policy input document (contract version 1): a document that validates serialises and
//! validates again, unchanged.
#![no_main]

use helios_core::policy::PolicyInput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(input) = PolicyInput::from_json(text) {
        let again = serde_json::to_string(&input).expect("a valid input serialises");
        let back = PolicyInput::from_json(&again).expect("a serialised valid input validates");
        assert_eq!(back, input, "the input survives a round trip");
    }
});
