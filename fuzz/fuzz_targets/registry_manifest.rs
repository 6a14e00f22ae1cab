//! The registry manifest parser: an image index body (OCI index or Docker manifest list) and the
//! platform picked from it, as the tag resolver reads what a registry answers; and platform
//! strings (`os/architecture[/variant]`, the `registry.platform` setting).
#![no_main]

use helios_core::registry::{Platform, is_sha256_digest, select_platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let platform: Platform = match pick % 3 {
        0 => Platform::default(),
        1 => "linux/arm64/v8".parse().expect("a valid platform"),
        _ => "windows/amd64".parse().expect("a valid platform"),
    };
    if let Ok(digest) = select_platform(body, &platform, "registry.example.com/app:1") {
        assert!(is_sha256_digest(&digest), "picked {digest:?}, not a sha256 digest");
    }
    // The same bytes as a platform string: one that parses prints itself back.
    if let Ok(text) = std::str::from_utf8(body)
        && let Ok(p) = text.parse::<Platform>()
    {
        assert_eq!(p.to_string().parse::<Platform>().ok(), Some(p));
    }
});
