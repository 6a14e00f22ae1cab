//! Image references: a reference that parses prints a normalised form that parses to itself.
#![no_main]

use helios_core::image::ImageRef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(image) = ImageRef::parse(text) {
        let _ = image.candidate_digests();
        let again = ImageRef::parse(&image.reference).expect("the normalised reference parses");
        assert_eq!(again, image, "normalising is idempotent");
    }
});
