//! AdmissionReview bytes → the admission controller, end to end in process: the scan files of
//! tests/fixtures/admission-scans and the embedded default policy, in each mode. The controller
//! may reject the body (not a review) but must never panic, and whatever it answers must be JSON.
#![no_main]

use std::sync::{Arc, OnceLock};

use helios_core::admission::{AdmissionController, ControllerConfig, Mode};
use helios_core::policy::EmbeddedEvaluator;
use helios_core::scan::DirSource;
use libfuzzer_sys::fuzz_target;

struct World {
    runtime: tokio::runtime::Runtime,
    controllers: Vec<AdmissionController>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/admission-scans"
        );
        let scans = Arc::new(DirSource::open(dir).expect("the fixture scan directory opens"));
        let policy =
            Arc::new(EmbeddedEvaluator::default_policy().expect("the default policy builds"));
        let controllers = [Mode::Enforce, Mode::Warn, Mode::Audit]
            .into_iter()
            .map(|mode| {
                let config = ControllerConfig {
                    mode,
                    ..ControllerConfig::default()
                };
                AdmissionController::new(scans.clone(), policy.clone(), config)
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime builds");
        World {
            runtime,
            controllers,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let world = world();
    let controller = &world.controllers[usize::from(pick) % world.controllers.len()];
    if let Ok((response, _outcome)) = world.runtime.block_on(controller.review_json(body)) {
        serde_json::from_slice::<serde_json::Value>(&response)
            .expect("the controller answers with JSON");
    }
});
