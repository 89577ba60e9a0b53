//! doorman: front-door face recognition for the Raspberry Pi.
//!
//! A frame goes `camera` → `motion` → `detect` → `align` → `embed` →
//! `visit` → `recognize` → `gallery`, and each closed visit becomes an
//! `events` line; `live` is the loop of `doorman run` that drives them.
//! `pipeline` strings detect, align and embed together; `models` pins the
//! networks they run; `config` is the one TOML file an owner edits;
//! `vectorize` keeps the gallery's vectors in a Cloudflare Vectorize index.
//! Around the loop, `service` talks to systemd and drives the `led`;
//! `check` and `privacy` are the owner's commands for setup and deletion.

pub mod align;
pub mod camera;
pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod detect;
pub mod embed;
pub mod eval;
pub mod events;
pub mod frame;
pub mod gallery;
pub mod led;
pub mod live;
pub mod logging;
pub mod models;
pub mod motion;
pub mod net;
pub mod pipeline;
pub mod privacy;
pub mod recognize;
pub mod service;
pub mod vectorize;
pub mod visit;
