//! Where tract spends a run of each default vision model, per kind of op: time and heap
//! allocations, with tract's own `run_plan_with_eval` and a counting allocator. The figures in
//! docs/performance.md ("What tract's time is made of") come from it:
//!
//! ```sh
//! cargo build --release -p emotiond-models --example tract_profile
//! taskset -c 0 target/release/examples/tract_profile [RUNS]
//! ```
//!
//! The model files and input shapes are those of the built-in packages (the tract rewrites).

use emotiond_models::builtin;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;
use tract_tflite::prelude::*;

/// Counts allocations (alloc and realloc) of the whole process: this tool is single-threaded.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARMUP: usize = 10;

fn main() -> TractResult<()> {
    let runs: usize = match std::env::args().nth(1) {
        None => 100,
        Some(a) => a
            .parse()
            .map_err(|_| tract_tflite::internal::format_err!("RUNS must be a number, got {a:?}"))?,
    };
    for name in [builtin::DEFAULT_DETECTOR, builtin::DEFAULT_EXPRESSION] {
        let pkg = builtin::load(name)
            .ok_or_else(|| tract_tflite::internal::format_err!("no built-in package {name}"))?
            .map_err(|e| tract_tflite::internal::format_err!("{name}: {e}"))?;
        let model = tract_tflite::tflite().model_for_read(&mut &pkg.model[..])?;
        let plan = Arc::new(model.into_optimized()?.into_runnable()?);
        let shape = &pkg.manifest.input.shape;
        let input = Tensor::from_shape(shape, &vec![0.25f32; pkg.manifest.input.len()])?;
        // op name -> (ms, nodes, allocations) summed over the counted runs
        let mut per_op: BTreeMap<String, (f64, usize, u64)> = BTreeMap::new();
        let mut whole = Vec::with_capacity(runs);
        for r in 0..WARMUP + runs {
            let mut state = SimpleState::new(plan.clone())?;
            let t = Instant::now();
            state.run_plan_with_eval(tvec!(input.clone().into_tvalue()), |s, st, node, i| {
                let (t, a) = (Instant::now(), ALLOCS.load(Relaxed));
                let out = tract_tflite::internal::tract_core::plan::eval(s, st, node, i);
                if r >= WARMUP {
                    // Read before the bookkeeping below, which allocates itself.
                    let (ms, allocs) = (t.elapsed().as_secs_f64() * 1e3, ALLOCS.load(Relaxed) - a);
                    let e = per_op.entry(node.op().name().to_string()).or_default();
                    e.0 += ms;
                    e.1 += 1;
                    e.2 += allocs;
                }
                out
            })?;
            if r >= WARMUP {
                whole.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        let before = ALLOCS.load(Relaxed);
        plan.run(tvec!(input.clone().into_tvalue()))?;
        let per_run_allocs = ALLOCS.load(Relaxed) - before;
        let total: f64 = per_op.values().map(|v| v.0).sum();
        println!(
            "{name}: {:.3} ms per run (ops only: {:.3}), {per_run_allocs} allocations per run \
             (plan.run), {runs} runs",
            whole.iter().sum::<f64>() / runs as f64,
            total / runs as f64
        );
        let mut ops: Vec<_> = per_op.into_iter().collect();
        ops.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        for (op, (ms, nodes, allocs)) in ops {
            println!(
                "  {op:<24} {:>8.3} ms/run {:>5.1} %  nodes {:>3}  allocations/run {:>5}",
                ms / runs as f64,
                100.0 * ms / total,
                nodes / runs,
                allocs / runs as u64
            );
        }
    }
    Ok(())
}
