//! Loading ONNX networks into optimised tract plans.
//!
//! Every network doorman runs goes through here, so that input facts are
//! pinned before optimisation (tract plans are much faster with known shapes)
//! and load errors name the file.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tract_onnx::prelude::*;

/// An optimised, runnable tract model.
pub type Plan = Arc<TypedSimplePlan>;

/// Loads `path`, pins input 0 to the f32 `shape` and optimises it. (A plan
/// for a fixed shape runs several times faster in tract than one with
/// symbolic dimensions, and builds in milliseconds.)
pub fn load(path: &Path, shape: &[usize]) -> Result<Plan> {
    let what = || format!("loading network {}", path.display());
    // Quantised files carry value-info for a symbolic batch that will not
    // unify with a fixed shape; the graph itself is enough.
    let mut model = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .model_for_path(path)
        .with_context(what)?;
    model
        .set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))
        .with_context(what)?;
    let plan = model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .with_context(what)?;
    Ok(plan)
}

/// Runs `plan` on one f32 tensor and returns every output as f32 tensors.
pub fn run(plan: &Plan, input: Tensor) -> Result<TVec<Tensor>> {
    let outputs = plan.run(tvec!(input.into()))?;
    Ok(outputs.into_iter().map(|v| v.into_tensor()).collect())
}

/// The values of an f32 output tensor.
pub fn floats(t: &Tensor) -> Result<&[f32]> {
    t.try_as_plain_ram()?.as_slice::<f32>()
}
