//! The webhook's YAML configuration (helios.yaml): errors are fine, panics are not. A
//! configuration that reads then decides a review (its `admission` section drives a controller
//! over the fixture scans and the default policy), so odd settings (zero or huge deadlines,
//! namespace modes, controller users) are exercised, not just parsed.
#![no_main]

use std::sync::{Arc, OnceLock};

use helios_core::admission::AdmissionController;
use helios_core::admission::config::WebhookConfig;
use helios_core::policy::{EmbeddedEvaluator, PolicyEvaluator};
use helios_core::scan::{DirSource, ScanSource};
use libfuzzer_sys::fuzz_target;

struct World {
    runtime: tokio::runtime::Runtime,
    scans: Arc<dyn ScanSource>,
    policy: Arc<dyn PolicyEvaluator>,
    review: Vec<u8>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a current-thread runtime builds"),
            scans: Arc::new(
                DirSource::open(format!("{fixtures}/admission-scans"))
                    .expect("the fixture scan directory opens"),
            ),
            policy: Arc::new(
                EmbeddedEvaluator::default_policy().expect("the default policy builds"),
            ),
            review: std::fs::read(format!(
                "{fixtures}/admission/deployment-digest-critical.json"
            ))
            .expect("the fixture review reads"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = WebhookConfig::from_yaml(text) else {
        return;
    };
    let world = world();
    let controller =
        AdmissionController::new(world.scans.clone(), world.policy.clone(), config.admission);
    let (response, _) = world
        .runtime
        .block_on(controller.review_json(&world.review))
        .expect("a fixture review is a review under any configuration");
    serde_json::from_slice::<serde_json::Value>(&response)
        .expect("the controller answers with JSON");
});
