//! doorman: front-door face recognition for the Raspberry Pi.
//!
//! A frame goes `camera` → `detect` → `align` → `embed` → `visit` →
//! `recognize` → `gallery`, and each closed visit becomes an `events` line.
//! `pipeline` strings detect, align and embed together; `models` pins the
//! networks they run; `config` is the one TOML file an owner edits;
//! `vectorize` keeps the gallery's vectors in a Cloudflare Vectorize index.

pub mod align;
pub mod camera;
pub mod cli;
pub mod commands;
pub mod config;
pub mod detect;
pub mod embed;
pub mod events;
pub mod frame;
pub mod gallery;
pub mod models;
pub mod net;
pub mod pipeline;
pub mod recognize;
pub mod vectorize;
pub mod visit;
