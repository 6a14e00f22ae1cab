//! The Rust side of `scripts/bench/bindings.sh`: the per-call time of the Rust call the Python
//! and Node bindings are compared with (issue 10).
//!
//! ```text
//! cargo bench -p helios-core --bench bindings -- ITERATIONS INPUT.json...
//! ```
//!
//! "The Rust call on the same input" is [`EmbeddedEvaluator::evaluate_sync`] on a
//! [`PolicyInput`] read once from the file (`PolicyInput::from_json`), with one evaluator built
//! once (the shipped default policy; the engine as `HELIOS_ENGINE` says): what a Rust program
//! that holds the input pays per decision. A binding receives the input as a native object on
//! every call, so its per-call time also includes reading that object into the core's types and
//! the decision back into native objects: that conversion is what the comparison measures.
//!
//! That input's scan is converted into the engine's value on the first call and shared by the
//! later ones (as the webhook shares a cached scan's), so the reference is the evaluation alone.
//! A second figure times the same call on a new `PolicyInput` each time (read from the file
//! before the clock starts), which converts the scan again: the Rust call on an input it has not
//! seen before.
//!
//! A third figure is the async call, [`PolicyEvaluator::evaluate`] awaited on a multi-threaded
//! tokio runtime, on the input read once: what a Rust service pays per decision, the evaluation
//! on tokio's blocking pool (the caller's thread stays free) and the hop there and back. Node's
//! `evaluate` (a Promise, the evaluation on the libuv pool) is the same kind of call.
//!
//! For each file: ITERATIONS / 10 + 2 warm-up calls, then ITERATIONS timed calls of each kind;
//! prints one line `FILE MEDIAN_NS MEDIAN_NEW_INPUT_NS MEDIAN_ASYNC_NS` (medians of the per-call
//! times). Under `cargo test --all-targets` (no `--bench` flag) it only checks that the evaluator
//! decides on a small input.

use std::time::{Duration, Instant};

use helios_core::policy::{EmbeddedEvaluator, PolicyEvaluator, PolicyInput};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let evaluator = EmbeddedEvaluator::builder()
        .time_limit(Duration::from_secs(30))
        .build()?;
    let Some((iterations, files)) = args.split_first().filter(|_| bench_mode) else {
        // `cargo test --all-targets`, or no arguments: prove the bench decides, cheaply.
        let text = r#"{"version": 1, "stage": "ci",
            "image": {"reference": "registry.example.com/app:1", "registry": "registry.example.com",
                      "repository": "app", "tag": "1", "digest": null},
            "scan": {"status": "completed", "source": "file", "id": "t", "scanned_at": null,
                     "error": null, "vulnerabilities": [{"id": "CVE-1", "severity": "critical",
                        "status": "vulnerable", "package": {"name": "p", "version": "1", "namespace": null},
                        "fix": {"available": true, "version": "2"}}],
                     "summary": {"critical": 1, "high": 0, "medium": 0, "low": 0, "info": 0,
                                 "unknown": 0, "total": 1, "fixable": 1}},
            "workload": null, "ci": null}"#;
        let decision = evaluator.evaluate_sync(&PolicyInput::from_json(text)?)?;
        assert!(!decision.allowed);
        println!("bench bindings: test mode, embedded decides; scripts/bench/bindings.sh measures");
        return Ok(());
    };
    let iterations: usize = iterations.parse()?;
    eprintln!(
        "bench bindings: engine {} ({})",
        evaluator.engine(),
        evaluator.engine_reason()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for file in files {
        let text = std::fs::read_to_string(file)?;
        let input = PolicyInput::from_json(&text)?;
        for _ in 0..iterations / 10 + 2 {
            std::hint::black_box(evaluator.evaluate_sync(&input)?);
        }
        let mut once = Vec::with_capacity(iterations);
        let mut new = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = Instant::now();
            std::hint::black_box(evaluator.evaluate_sync(&input)?);
            once.push(started.elapsed());
            let fresh = PolicyInput::from_json(&text)?;
            let started = Instant::now();
            std::hint::black_box(evaluator.evaluate_sync(&fresh)?);
            new.push(started.elapsed());
        }
        let asynchronous = runtime.block_on(async {
            for _ in 0..iterations / 10 + 2 {
                std::hint::black_box(evaluator.evaluate(&input).await?);
            }
            let mut times = Vec::with_capacity(iterations);
            for _ in 0..iterations {
                let started = Instant::now();
                std::hint::black_box(evaluator.evaluate(&input).await?);
                times.push(started.elapsed());
            }
            Ok::<_, helios_core::Error>(times)
        })?;
        println!(
            "{file} {} {} {}",
            median(once),
            median(new),
            median(asynchronous)
        );
    }
    Ok(())
}

/// The median of `times`, in nanoseconds.
fn median(mut times: Vec<Duration>) -> u128 {
    times.sort_unstable();
    times.get(times.len() / 2).map_or(0, Duration::as_nanos)
}
