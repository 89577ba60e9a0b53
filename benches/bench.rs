//! doorman's benchmark: how fast each stage is, relative to what matters.
//!
//! Every number is a ratio measured in one run on one machine: tract
//! against onnxruntime (single thread) on the same tensors, int8 against
//! float32, the motion gate against one detector inference, a pipeline
//! frame against the sum of its network runs. Absolute times depend on the
//! machine and its load; the ratios are what the README's targets are
//! about. Run through `benches/run`, which makes the models, the Python
//! venv with onnxruntime and the int8 variants first. Nothing here is a
//! pass/fail test: targets are printed next to the measured values.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use image::imageops::FilterType;
use image::{Rgb, RgbImage};
use tract_onnx::prelude::Tensor;

use doorman::camera::{CameraFrame, Pixels, Plane, Yuv420Layout};
use doorman::config::Config;
use doorman::detect::pyramid;
use doorman::embed::Embedding;
use doorman::frame::Frame;
use doorman::live::Loop;
use doorman::models::{verified_path, Manifest};
use doorman::motion::MotionDetector;
use doorman::net::{self, Plan};
use doorman::pipeline::Pipeline;

/// Each measurement runs at least this often and this long, after
/// `WARMUP_RUNS` untimed runs; the median is reported.
const MIN_REPS: usize = 15;
const MIN_SECONDS: f64 = 0.7;
const WARMUP_RUNS: usize = 3;
/// Frame sizes of the two camera modes the README recommends.
const FRAME_SIZES: [(u32, u32); 2] = [(640, 480), (1280, 720)];
/// Height of the demo portrait pasted into the synthetic doorway frames:
/// its face is then about 90 px wide, a visitor a metre or two away.
const PORTRAIT_HEIGHT_PX: u32 = 200;
/// Crops per batch for the "batch" rows of R-Net and O-Net.
const BATCH: usize = 16;
/// Frames of the replay folder for `doorman run`: idle ones, then a
/// visitor walking in.
const REPLAY_IDLE_FRAMES: usize = 10;
const REPLAY_VISIT_FRAMES: usize = 30;
/// Frames the motion gate is timed on (idle, then an object moving).
const MOTION_FRAMES: usize = 60;
/// How often doorman's peak memory is read while it runs.
const RSS_POLL_MS: u64 = 5;

fn main() {
    match try_main() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Where things are; every path has a default that `benches/run` fills.
struct Args {
    cache: PathBuf,
    python: PathBuf,
    faces: PathBuf,
    doorman: PathBuf,
    /// `--count FILE`: instructions instead of seconds (benches/qemu-count).
    count: Option<PathBuf>,
}

impl Args {
    fn parse() -> Result<Self> {
        let cache = std::env::var_os("DOORMAN_CACHE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/doorman")))
            .context("neither DOORMAN_CACHE nor HOME is set")?;
        let exe = std::env::current_exe()?;
        // target/release/deps/bench-HASH -> target/release/doorman
        let release = exe.parent().and_then(Path::parent).context("bench path")?;
        let mut args = Args {
            python: cache.join("venv/bin/python"),
            faces: Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/faces"),
            doorman: release.join("doorman"),
            count: None,
            cache,
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let mut value = || it.next().with_context(|| format!("{a} needs a value"));
            match a.as_str() {
                // cargo bench passes --bench to harness = false targets.
                "--bench" => {}
                "--python" => args.python = value()?.into(),
                "--faces" => args.faces = value()?.into(),
                "--doorman" => args.doorman = value()?.into(),
                "--count" => args.count = Some(value()?.into()),
                other => bail!(
                    "unknown argument {other:?} (--python, --faces, --doorman, --count)"
                ),
            }
        }
        Ok(args)
    }
}

fn try_main() -> Result<()> {
    let args = Args::parse()?;
    let manifest = Manifest::builtin();
    let models = args.cache.join("models");
    let work = args.cache.join("bench");
    std::fs::create_dir_all(work.join("tensors"))?;
    let config = Config::parse("", "built-in defaults")?;

    let started = Instant::now();
    let pipeline = Pipeline::load(&models, manifest, config.detector_settings(), "float")?;
    let load_s = started.elapsed().as_secs_f64();

    let portrait = image::open(args.cache.join("demo/obama.jpg"))
        .context("opening the demo photo demo/obama.jpg (run models/fetch)")?
        .to_rgb8();
    let scenes: Vec<RgbImage> = FRAME_SIZES
        .iter()
        .map(|&(w, h)| doorway(w, h, &portrait, w / 3, h / 4))
        .collect();

    if let Some(file) = &args.count {
        return count_instructions(file, &pipeline, manifest, &models, &work, &config, &scenes);
    }

    let mut ort = Ort::start(&args.python)?;
    let mut times = Times::default();

    println!("## Networks: tract against onnxruntime (one thread)\n");
    networks(
        &pipeline, manifest, &models, &work, &scenes, &mut ort, &mut times,
    )?;

    println!("\n## Embedder int8 against float32\n");
    int8(&args, &pipeline, manifest, &models, &work, &mut ort, &times)?;

    println!("\n## Motion gate against the detector\n");
    motion(&config, &pipeline, &scenes)?;

    println!("\n## Pipeline frame with one face against the sum of its network runs\n");
    pipeline_frames(&pipeline, &scenes, &times)?;

    println!("\n## doorman run: start-up and peak memory\n");
    println!("in-process model load (detector + embedder plans): {load_s:.2} s\n");
    run_process(&args, &models, &work, &portrait)?;
    Ok(())
}

/// Median tract times by network and input shape, for the sums later.
#[derive(Default)]
struct Times {
    pnet: BTreeMap<(u32, u32), f64>,
    rnet: f64,
    onet: f64,
    embed: f64,
}

/// A 640×480 or 1280×720 doorway: a smooth wall, a door frame, and the
/// demo portrait pasted at (`x`, `y`).
fn doorway(w: u32, h: u32, portrait: &RgbImage, x: u32, y: u32) -> RgbImage {
    let mut img = RgbImage::from_fn(w, h, |px, py| {
        let v = 90 + (px * 60 / w) as u8 + (py * 40 / h) as u8;
        Rgb([v, v.saturating_sub(10), v.saturating_sub(25)])
    });
    for py in 0..h {
        for px in [w / 8, w / 8 + 1, w * 7 / 8, w * 7 / 8 + 1] {
            img.put_pixel(px, py, Rgb([40, 30, 20]));
        }
    }
    let pw = portrait.width() * PORTRAIT_HEIGHT_PX / portrait.height();
    let small = image::imageops::resize(portrait, pw, PORTRAIT_HEIGHT_PX, FilterType::Triangle);
    image::imageops::replace(&mut img, &small, x as i64, y as i64);
    img
}

/// MTCNN's input: `[1, W, H, 3]`, (v - 127.5) / 128, as the detector feeds it.
fn nwhc(img: &RgbImage, batch: usize) -> Result<Tensor> {
    let (w, h) = img.dimensions();
    let mut one = Vec::with_capacity((w * h * 3) as usize);
    for x in 0..w {
        for y in 0..h {
            one.extend(
                img.get_pixel(x, y)
                    .0
                    .map(|v| (v as f32 - 127.5) * 0.0078125),
            );
        }
    }
    let data = one.repeat(batch);
    Tensor::from_shape(&[batch, w as usize, h as usize, 3], &data)
}

/// Runs tract then onnxruntime on the same tensor and prints one row.
fn compare(
    ort: &mut Ort,
    work: &Path,
    label: &str,
    model: &Path,
    input: Tensor,
    per: usize,
) -> Result<f64> {
    let plan = net::load(model, input.shape())?;
    let outputs = net::run(&plan, input.clone())?;
    let stem = label.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let input_path = work.join(format!("tensors/{stem}-in.npy"));
    write_npy(&input_path, &input)?;
    let mut output_paths = Vec::new();
    for (i, t) in outputs.iter().enumerate() {
        let p = work.join(format!("tensors/{stem}-out{i}.npy"));
        write_npy(&p, t)?;
        output_paths.push(p);
    }
    let tract_ms = median_ms(|| net::run(&plan, input.clone()).map(drop))? / per as f64;
    let ort_ms = ort.time(model, &input_path, &output_paths)?;
    print_row(
        label,
        tract_ms,
        ort_ms.map(|(ms, diff)| (ms / per as f64, diff)),
    );
    Ok(tract_ms)
}

fn print_row(label: &str, tract_ms: f64, ort: Result<(f64, f64), String>) {
    match ort {
        Ok((ort_ms, diff)) => println!(
            "| {label} | {tract_ms:.3} | {ort_ms:.3} | {:.2}x | {diff:.1e} |",
            tract_ms / ort_ms
        ),
        Err(e) => println!("| {label} | {tract_ms:.3} | n/a | n/a | onnxruntime: {e} |"),
    }
}

fn networks(
    pipeline: &Pipeline,
    manifest: &Manifest,
    models: &Path,
    work: &Path,
    scenes: &[RgbImage],
    ort: &mut Ort,
    times: &mut Times,
) -> Result<()> {
    let det = &manifest.detector;
    let file = |net: &str| -> Result<PathBuf> { verified_path(models, det.file(net)?) };
    let settings = pipeline.detector.settings;
    println!("| network, input | tract ms | onnxruntime ms | tract/ort | max abs diff |");
    println!("|---|---:|---:|---:|---:|");
    for scene in scenes {
        let (w, h) = scene.dimensions();
        let levels = pyramid(w, h, settings.min_face_px as f32, settings.scale_factor);
        for &(_, sw, sh) in &levels {
            if times.pnet.contains_key(&(sw, sh)) {
                continue;
            }
            let level = image::imageops::resize(scene, sw, sh, FilterType::Triangle);
            let label = format!("P-Net {sw}x{sh} ({w}x{h} pyramid)");
            let ms = compare(ort, work, &label, &file("pnet")?, nwhc(&level, 1)?, 1)?;
            times.pnet.insert((sw, sh), ms);
        }
        let tract_sum: f64 = levels
            .iter()
            .map(|&(_, sw, sh)| times.pnet[&(sw, sh)])
            .sum();
        println!("| P-Net, whole {w}x{h} pyramid (tract sum) | {tract_sum:.3} | | | |");
    }
    let crop = |side| image::imageops::resize(&scenes[0], side, side, FilterType::Triangle);
    times.rnet = compare(
        ort,
        work,
        "R-Net 24x24, batch 1 (as run)",
        &file("rnet")?,
        nwhc(&crop(24), 1)?,
        1,
    )?;
    compare(
        ort,
        work,
        &format!("R-Net 24x24, batch {BATCH}, per crop"),
        &file("rnet")?,
        nwhc(&crop(24), BATCH)?,
        BATCH,
    )?;
    times.onet = compare(
        ort,
        work,
        "O-Net 48x48, batch 1 (as run)",
        &file("onet")?,
        nwhc(&crop(48), 1)?,
        1,
    )?;
    compare(
        ort,
        work,
        &format!("O-Net 48x48, batch {BATCH}, per crop"),
        &file("onet")?,
        nwhc(&crop(48), BATCH)?,
        BATCH,
    )?;

    let face = one_face(pipeline, &scenes[0])?;
    let input = pipeline.embedder.input_tensor(&face)?;
    let float = verified_path(models, manifest.embedder.variant("float")?)?;
    times.embed = compare(ort, work, "dlib ResNet 150x150 (float32)", &float, input, 1)?;
    Ok(())
}

/// The aligned crop of the one face in `scene`.
fn one_face(pipeline: &Pipeline, scene: &RgbImage) -> Result<RgbImage> {
    let faces = pipeline.faces(&Frame::from_rgb(scene.clone()))?;
    match faces.as_slice() {
        [face] => Ok(face.crop.clone()),
        other => bail!("the doorway scene shows {} faces, expected 1", other.len()),
    }
}

fn int8(
    args: &Args,
    pipeline: &Pipeline,
    manifest: &Manifest,
    models: &Path,
    work: &Path,
    ort: &mut Ort,
    times: &Times,
) -> Result<()> {
    let crops = face_crops(pipeline, &args.faces)?;
    println!(
        "{} face crops from {} (the best face of each labelled photo)\n",
        crops.len(),
        args.faces.display()
    );
    let shape = [1, 3, 150, 150];
    let float = net::load(
        &verified_path(models, manifest.embedder.variant("float")?)?,
        &shape,
    )?;
    let inputs: Vec<Tensor> = crops
        .iter()
        .map(|c| pipeline.embedder.input_tensor(c))
        .collect::<Result<_>>()?;
    let reference: Vec<Embedding> = inputs
        .iter()
        .map(|x| embed(&float, x))
        .collect::<Result<_>>()?;

    println!("| variant | size MB | tract ms | float/int8 speed in tract | onnxruntime ms | cosine to float: min | mean |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for path in int8_variants(work)? {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let size = std::fs::metadata(&path)?.len() as f64 / 1e6;
        let plan = match net::load(&path, &shape) {
            Ok(p) => p,
            Err(e) => {
                println!("| {name} | {size:.1} | tract cannot load it: {e:#} | | | | |");
                continue;
            }
        };
        let tract_ms = median_ms(|| net::run(&plan, inputs[0].clone()).map(drop))?;
        let input_path = work.join("tensors/embed-int8-in.npy");
        write_npy(&input_path, &inputs[0])?;
        let ort_ms = match ort.time(&path, &input_path, &[])? {
            Ok((ms, _)) => format!("{ms:.3}"),
            Err(e) => format!("n/a ({e})"),
        };
        let mut cosines = Vec::new();
        for (x, r) in inputs.iter().zip(&reference) {
            cosines.push(embed(&plan, x)?.cosine(r) as f64);
        }
        let min = cosines.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = cosines.iter().sum::<f64>() / cosines.len().max(1) as f64;
        println!(
            "| {name} | {size:.1} | {tract_ms:.3} | {:.2}x | {ort_ms} | {min:.4} | {mean:.4} |",
            times.embed / tract_ms
        );
    }
    println!(
        "\nfloat32 in tract: {:.3} ms per face (the reference above)",
        times.embed
    );
    repro(&work.join("int8/repro"))
}

/// The quantized embedder files that `benches/int8-variants` made, by name.
fn int8_variants(work: &Path) -> Result<Vec<PathBuf>> {
    let mut variants: Vec<PathBuf> = std::fs::read_dir(work.join("int8"))
        .context("reading the int8 variants (benches/int8-variants makes them)")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    variants.sort();
    Ok(variants)
}

/// The smallest case: one 3×3 convolution, float32 against QOperator int8,
/// with the ops tract's optimiser turned each into.
fn repro(dir: &Path) -> Result<()> {
    println!("\nSmallest reproduction, one 3x3 convolution 64->64 on 1x64x36x36:\n");
    println!("| file | tract ms | ops in tract's optimised plan (output type) |");
    println!("|---|---:|---|");
    let shape = [1, 64, 36, 36];
    let input = Tensor::from_shape(&shape, &vec![0.5f32; shape.iter().product()])?;
    for name in ["conv3x3-float.onnx", "conv3x3-qop-s8s8-sym.onnx"] {
        let plan = net::load(&dir.join(name), &shape)?;
        let ms = median_ms(|| net::run(&plan, input.clone()).map(drop))?;
        let ops: Vec<String> = plan
            .model()
            .nodes()
            .iter()
            .map(|n| {
                let dt = n
                    .outputs
                    .first()
                    .map(|o| format!("{:?}", o.fact.datum_type));
                format!("{} ({})", n.op().name(), dt.unwrap_or_default())
            })
            .collect();
        println!("| {name} | {ms:.3} | {} |", ops.join(", "));
    }
    Ok(())
}

fn embed(plan: &Plan, input: &Tensor) -> Result<Embedding> {
    let out = net::run(plan, input.clone())?;
    Embedding::normalised(net::floats(out.first().context("no output")?)?)
}

/// The best face's crop of every photo listed in `identities.csv`.
fn face_crops(pipeline: &Pipeline, faces: &Path) -> Result<Vec<RgbImage>> {
    let csv = faces.join("identities.csv");
    let text = std::fs::read_to_string(&csv)
        .with_context(|| format!("reading {} (the shared test photos)", csv.display()))?;
    let mut crops = Vec::new();
    for line in text.lines().skip(1) {
        let Some(image) = line.split(',').next().filter(|s| !s.is_empty()) else {
            continue;
        };
        let frame =
            Frame::open(&faces.join(image), 1280).map_err(|e| anyhow::anyhow!("{image}: {e}"))?;
        if let Some(face) = pipeline.faces(&frame)?.into_iter().next() {
            crops.push(face.crop);
        }
    }
    if crops.is_empty() {
        bail!("no face found in the photos listed in {}", csv.display());
    }
    Ok(crops)
}

/// A camera's luma planes: a still scene with sensor noise, and from the
/// middle on a dark box crossing it.
fn luma_frames(w: u32, h: u32) -> Vec<Vec<u8>> {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 5) as u8
    };
    (0..MOTION_FRAMES)
        .map(|i| {
            let mut y = vec![0u8; (w * h) as usize];
            for py in 0..h {
                for px in 0..w {
                    y[(py * w + px) as usize] = 80 + (px * 80 / w) as u8 + noise();
                }
            }
            if i >= MOTION_FRAMES / 2 {
                let x0 = (i - MOTION_FRAMES / 2) as u32 * w / MOTION_FRAMES as u32;
                for py in h / 4..h * 3 / 4 {
                    for px in x0..(x0 + w / 6).min(w) {
                        y[(py * w + px) as usize] = 20;
                    }
                }
            }
            y
        })
        .collect()
}

fn motion(config: &Config, pipeline: &Pipeline, scenes: &[RgbImage]) -> Result<()> {
    println!("| frame | motion ms/frame (idle) | with motion | detector ms (whole frame, one face) | motion/detector |");
    println!("|---|---:|---:|---:|---:|");
    for scene in scenes {
        let (w, h) = scene.dimensions();
        let frames = luma_frames(w, h);
        let mut gate = MotionDetector::new(&config.motion);
        let mut idle = Vec::new();
        let mut moving = Vec::new();
        // Five passes over the sequence: enough samples for a median.
        for _ in 0..5 {
            for (i, y) in frames.iter().enumerate() {
                let plane = Plane {
                    data: std::borrow::Cow::Borrowed(y),
                    width: w,
                    height: h,
                    stride: w as usize,
                    step: 1,
                };
                let t = Instant::now();
                let m = gate.detect(&plane);
                let ms = t.elapsed().as_secs_f64() * 1e3;
                if i >= MOTION_FRAMES / 2 && m.any() {
                    moving.push(ms);
                } else if i > 0 && i < MOTION_FRAMES / 2 {
                    idle.push(ms);
                }
            }
        }
        let frame = Frame::from_rgb(scene.clone());
        let detector_ms = median_ms(|| pipeline.detector.detect(&frame.rgb).map(drop))?;
        let idle_ms = median(&mut idle);
        let moving_ms = median(&mut moving);
        println!(
            "| {w}x{h} | {idle_ms:.3} | {moving_ms:.3} | {detector_ms:.1} | {:.2} % |",
            100.0 * moving_ms.max(idle_ms) / detector_ms
        );
    }

    // No inference while idle: the live loop on still camera frames.
    let (w, h) = FRAME_SIZES[0];
    let layout = Yuv420Layout::padded(w, h, 64);
    let mut lp = Loop::new(config, pipeline);
    let frames = luma_frames(w, h);
    let start = SystemTime::now();
    for (i, y) in frames.iter().take(MOTION_FRAMES / 2).enumerate() {
        let mut data = vec![128u8; layout.frame_len()];
        for row in 0..h as usize {
            let src = &y[row * w as usize..(row + 1) * w as usize];
            data[row * layout.y_stride..row * layout.y_stride + w as usize].copy_from_slice(src);
        }
        lp.frame(&CameraFrame {
            captured_at: start + Duration::from_millis(200 * i as u64),
            width: w,
            height: h,
            pixels: Pixels::Yuv420 { data, layout },
        });
    }
    let c = lp.counters();
    println!(
        "\nidle doorstep, {} camera frames through the live loop: {} with motion, {} detector runs",
        c.frames_read, c.motion_frames, c.detector_runs
    );
    Ok(())
}

fn pipeline_frames(pipeline: &Pipeline, scenes: &[RgbImage], times: &Times) -> Result<()> {
    println!("| frame | pipeline ms | P-Net levels | R-Net runs | O-Net runs | faces | sum of network runs ms | pipeline/sum |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for scene in scenes {
        let (w, h) = scene.dimensions();
        let frame = Frame::from_rgb(scene.clone());
        let before = pipeline.detector.runs();
        let faces = pipeline.faces(&frame)?.len();
        let after = pipeline.detector.runs();
        let settings = pipeline.detector.settings;
        let levels = pyramid(w, h, settings.min_face_px as f32, settings.scale_factor);
        if after.pnet - before.pnet != levels.len() as u64 {
            bail!(
                "the detector ran P-Net {} times on {w}x{h}, the pyramid has {} levels",
                after.pnet - before.pnet,
                levels.len()
            );
        }
        let pnet: f64 = levels
            .iter()
            .map(|&(_, sw, sh)| times.pnet.get(&(sw, sh)).copied().unwrap_or(f64::NAN))
            .sum();
        let rnet = after.rnet - before.rnet;
        let onet = after.onet - before.onet;
        let sum =
            pnet + rnet as f64 * times.rnet + onet as f64 * times.onet + faces as f64 * times.embed;
        let ms = median_ms(|| pipeline.faces(&frame).map(drop))?;
        println!(
            "| {w}x{h} | {ms:.1} | {} | {rnet} | {onet} | {faces} | {sum:.1} | {:.2}x |",
            levels.len(),
            ms / sum
        );
    }
    Ok(())
}

/// Runs the `doorman` binary on a replay folder: wall time of a one-frame
/// replay (start-up to first frame, and exit) and peak RSS on a visit.
fn run_process(args: &Args, models: &Path, work: &Path, portrait: &RgbImage) -> Result<()> {
    if !args.doorman.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release` (benches/run does)",
            args.doorman.display()
        );
    }
    let (w, h) = FRAME_SIZES[0];
    let one = work.join("replay-1");
    let visit = work.join("replay-visit");
    for dir in [&one, &visit] {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
    }
    doorway(w, h, portrait, w / 3, h / 4).save(one.join("frame-000.png"))?;
    for i in 0..REPLAY_IDLE_FRAMES + REPLAY_VISIT_FRAMES {
        let scene = if i < REPLAY_IDLE_FRAMES {
            doorway(
                w,
                h,
                &RgbImage::from_pixel(1, PORTRAIT_HEIGHT_PX, Rgb([0, 0, 0])),
                0,
                0,
            )
        } else {
            let step = (i - REPLAY_IDLE_FRAMES) as u32;
            doorway(w, h, portrait, w / 5 + step * 4, h / 4)
        };
        scene.save(visit.join(format!("frame-{i:03}.png")))?;
    }
    let state = work.join("run-state");
    let _ = std::fs::remove_dir_all(&state);
    let config = |name: &str, extra: &str| -> Result<PathBuf> {
        let path = work.join(name);
        std::fs::write(
            &path,
            format!(
                "state_dir = {:?}\n[models]\ndir = {:?}\n[camera]\nsource = \"files\"\n\
                 replay_fps = 0.0\n{extra}",
                state.display().to_string(),
                models.display().to_string()
            ),
        )?;
        Ok(path)
    };
    // With the gate on, a first frame only starts the background; with it
    // off, the detector runs on it: start-up plus one whole pipeline frame.
    let gated = config("run.toml", "")?;
    let ungated = config("run-no-motion.toml", "[motion]\nenabled = false\n")?;

    println!("| replay | frames | wall s | peak RSS MB |");
    println!("|---|---:|---:|---:|");
    let runs = [
        (
            "one frame, motion gate on (start-up to first frame)",
            &gated,
            &one,
            1,
        ),
        (
            "one frame, gate off (start-up + one detector frame)",
            &ungated,
            &one,
            1,
        ),
        (
            "a visit, motion gate on",
            &gated,
            &visit,
            REPLAY_IDLE_FRAMES + REPLAY_VISIT_FRAMES,
        ),
    ];
    for (what, config, dir, frames) in runs {
        let (wall, rss_kb) = run_measured(&args.doorman, config, dir)?;
        println!(
            "| {what} | {frames} | {wall:.2} | {:.1} |",
            rss_kb as f64 / 1024.0
        );
    }
    Ok(())
}

/// Wall time and peak resident set (kB) of `doorman run --replay dir`.
///
/// The peak is VmHWM from /proc, polled while doorman runs: the rusage of
/// a child is useless here, because a process spawned from this (large)
/// bench inherits the bench's high-water mark across exec.
fn run_measured(doorman: &Path, config: &Path, dir: &Path) -> Result<(f64, u64)> {
    let started = Instant::now();
    let mut child = Command::new(doorman)
        .arg("--config")
        .arg(config)
        .arg("run")
        .arg("--replay")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", doorman.display()))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        std::thread::sleep(Duration::from_millis(RSS_POLL_MS));
    };
    let wall = started.elapsed().as_secs_f64();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    if !status.success() {
        bail!(
            "doorman run --replay {} failed ({status}): {stderr}",
            dir.display()
        );
    }
    Ok((wall, peak_kb))
}

/// The Python side: `benches/ort_bench.py` in the models venv, kept running
/// so that each network is timed in both runtimes one after the other.
struct Ort {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Ort {
    fn start(python: &Path) -> Result<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ort_bench.py");
        let mut child = Command::new(python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!("starting {} (benches/run makes the venv)", python.display())
            })?;
        let stdin = child.stdin.take().context("python stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("python stdout")?);
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// onnxruntime's median ms and its largest difference from tract's
    /// outputs, or why it could not run the model.
    fn time(
        &mut self,
        model: &Path,
        input: &Path,
        outputs: &[PathBuf],
    ) -> Result<std::result::Result<(f64, f64), String>> {
        let request = serde_json::json!({
            "model": model,
            "input": input,
            "outputs": outputs,
            "min_reps": MIN_REPS,
            "min_s": MIN_SECONDS,
        });
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!(
                "benches/ort_bench.py ended early: {:?}",
                self.child.try_wait()
            );
        }
        let reply: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("benches/ort_bench.py answered {line:?}"))?;
        if let Some(e) = reply.get("error") {
            return Ok(Err(e.as_str().unwrap_or_default().to_string()));
        }
        let get = |k: &str| reply.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        Ok(Ok((get("median_ms"), get("max_abs_diff"))))
    }
}

/// Reads the guest's instruction count from `benches/insn-count.c`: the
/// plugin rewrites `file` whenever the guest calls getppid(2), which
/// nothing else in this program does.
struct Counter {
    file: PathBuf,
    /// Instructions spent between two marks around nothing: the marker
    /// itself and reading the file back.
    overhead: u64,
}

impl Counter {
    fn new(file: &Path) -> Result<Self> {
        let mut c = Counter {
            file: file.to_path_buf(),
            overhead: 0,
        };
        c.overhead = c.count(|| Ok(()))?;
        Ok(c)
    }

    fn mark(&self) -> Result<u64> {
        let _marker = std::os::unix::process::parent_id();
        let text = std::fs::read_to_string(&self.file).with_context(|| {
            format!(
                "reading the instruction count from {} (is this running under \
                 qemu with benches/insn-count.c loaded? benches/qemu-count does that)",
                self.file.display()
            )
        })?;
        text.trim()
            .parse()
            .with_context(|| format!("{}: not a count: {text:?}", self.file.display()))
    }

    /// Instructions of one call of `f`, after one untimed call (which
    /// builds plans and buffers on first use).
    fn count(&self, mut f: impl FnMut() -> Result<()>) -> Result<u64> {
        f()?;
        let before = self.mark()?;
        f()?;
        let after = self.mark()?;
        Ok((after - before).saturating_sub(self.overhead))
    }
}

/// `--count FILE`: each stage once, in instructions executed. Run under
/// qemu-user with the counting plugin (benches/qemu-count), where time
/// means nothing but instruction counts are the same from run to run.
fn count_instructions(
    file: &Path,
    pipeline: &Pipeline,
    manifest: &Manifest,
    models: &Path,
    work: &Path,
    config: &Config,
    scenes: &[RgbImage],
) -> Result<()> {
    let counter = Counter::new(file)?;
    let m = |n: u64| n as f64 / 1e6;
    let det = &manifest.detector;
    let settings = pipeline.detector.settings;
    let run = |plan: &Plan, input: &Tensor| net::run(plan, input.clone()).map(drop);
    println!("| stage | million instructions |");
    println!("|---|---:|");

    let crop = |side| image::imageops::resize(&scenes[0], side, side, FilterType::Triangle);
    let mut per_net = BTreeMap::new();
    for (net, side) in [("rnet", 24), ("onet", 48)] {
        let input = nwhc(&crop(side), 1)?;
        let plan = net::load(&verified_path(models, det.file(net)?)?, input.shape())?;
        let n = counter.count(|| run(&plan, &input))?;
        println!("| {net} {side}x{side}, batch 1 | {:.1} |", m(n));
        per_net.insert(net, n);
    }
    let face = one_face(pipeline, &scenes[0])?;
    let input = pipeline.embedder.input_tensor(&face)?;
    let float = verified_path(models, manifest.embedder.variant("float")?)?;
    let plan = net::load(&float, input.shape())?;
    let embed = counter.count(|| run(&plan, &input))?;
    println!("| dlib ResNet 150x150 (float32) | {:.1} |", m(embed));
    for path in int8_variants(work)? {
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let plan = net::load(&path, input.shape())?;
        let n = counter.count(|| run(&plan, &input))?;
        println!(
            "| dlib ResNet 150x150, int8 {name} (float/int8 {:.2}x) | {:.1} |",
            embed as f64 / n as f64,
            m(n)
        );
    }

    let pnet_file = verified_path(models, det.file("pnet")?)?;
    for scene in scenes {
        let (w, h) = scene.dimensions();
        let mut pnet = 0;
        let levels = pyramid(w, h, settings.min_face_px as f32, settings.scale_factor);
        for &(_, sw, sh) in &levels {
            let input = nwhc(&image::imageops::resize(scene, sw, sh, FilterType::Triangle), 1)?;
            let plan = net::load(&pnet_file, input.shape())?;
            pnet += counter.count(|| run(&plan, &input))?;
        }
        println!("| P-Net, {w}x{h} pyramid ({} levels) | {:.1} |", levels.len(), m(pnet));

        let mut gate = MotionDetector::new(&config.motion);
        let still = &luma_frames(w, h)[0];
        let plane = Plane {
            data: std::borrow::Cow::Borrowed(still.as_slice()),
            width: w,
            height: h,
            stride: w as usize,
            step: 1,
        };
        let motion = counter.count(|| {
            gate.detect(&plane);
            Ok(())
        })?;

        let frame = Frame::from_rgb(scene.clone());
        let detector = counter.count(|| pipeline.detector.detect(&frame.rgb).map(drop))?;
        let before = pipeline.detector.runs();
        let whole = counter.count(|| pipeline.faces(&frame).map(drop))?;
        let after = pipeline.detector.runs();
        // count() runs the frame twice; the second run's networks are half.
        let rnet = (after.rnet - before.rnet) / 2;
        let onet = (after.onet - before.onet) / 2;
        let faces = pipeline.faces(&frame)?.len() as u64;
        let sum = pnet + rnet * per_net["rnet"] + onet * per_net["onet"] + faces * embed;
        println!("| motion gate, {w}x{h} frame | {:.2} |", m(motion));
        println!("| detector, {w}x{h} frame with one face | {:.1} |", m(detector));
        println!(
            "| pipeline, {w}x{h} frame with one face ({rnet} R-Net, {onet} O-Net, {faces} embedding) | {:.1} |",
            m(whole)
        );
        println!(
            "| ratios at {w}x{h}: motion/detector {:.2} %, pipeline/sum of network runs {:.2}x | |",
            100.0 * motion as f64 / detector as f64,
            whole as f64 / sum as f64
        );
    }
    Ok(())
}

fn median_ms(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..WARMUP_RUNS {
        f()?;
    }
    let mut times = Vec::new();
    let started = Instant::now();
    while times.len() < MIN_REPS || started.elapsed().as_secs_f64() < MIN_SECONDS {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(&mut times))
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Writes an f32 tensor as a NumPy `.npy` file (format version 1.0).
fn write_npy(path: &Path, t: &Tensor) -> Result<()> {
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + newline, padded to 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in net::floats(t)? {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
