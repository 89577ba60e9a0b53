//! The command line: what the owner types.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// doorman: who came to the front door.
///
/// Exit codes: 0 done; 1 some inputs could not be used (each is named on
/// stderr); 2 doorman could not do the job (bad config, missing models,
/// store failure, bad usage).
#[derive(Debug, Parser)]
#[command(name = "doorman", version, about, long_about = None)]
pub struct Cli {
    /// The TOML config file [default: /etc/doorman/doorman.toml if present,
    /// else built-in defaults].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Machine-readable output: one JSON object per line.
    #[arg(long, global = true)]
    pub json: bool,

    /// More log detail on stderr (-v: info, -vv: debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add a named person from photos that each show their face.
    Enroll {
        /// The person's name, as doorman will report it.
        #[arg(long)]
        name: String,
        /// With several faces in a photo, take the largest instead of failing.
        #[arg(long)]
        largest: bool,
        /// Photos of the person (several make recognition more reliable).
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
    },
    /// Say who is in each photo.
    Identify {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
    },
    /// Watch the camera and record one event per visit, until stopped
    /// (SIGTERM or Ctrl-C; a replay stops at its end).
    Run {
        /// Replay this folder of frames, or this `.yuv` (raw YUV420) or
        /// `.mjpeg` stream file, instead of the configured camera.
        #[arg(long, value_name = "PATH")]
        replay: Option<PathBuf>,
    },
    /// List the gallery's visitors with their visit counts.
    Visitors,
    /// Measure recognition on labelled photos (a CSV of `image,identity`
    /// rows, paths relative to the CSV): ROC AUC, equal error rate, errors
    /// at the configured threshold, rank-1 identification.
    Eval {
        #[arg(value_name = "LABELS.csv")]
        labels: PathBuf,
    },
    /// Name a visitor (an anonymous one, or rename a named one).
    Label {
        /// The visitor's id (visitor-0007) or current name.
        #[arg(value_name = "ID")]
        who: String,
        /// The name doorman will report from now on.
        name: String,
    },
    /// Delete a person: their face embeddings, their visits and their
    /// lines in the events file.
    Forget {
        /// The visitor's id (visitor-0007) or name.
        #[arg(
            value_name = "ID-or-NAME",
            required_unless_present = "expired",
            conflicts_with = "expired"
        )]
        who: Option<String>,
        /// Instead: delete the anonymous visitors not seen for
        /// `recognize.retention_days` (the service does this hourly).
        #[arg(long)]
        expired: bool,
    },
    /// Delete every visitor, face embedding, visit and event.
    Wipe {
        /// Do not ask for confirmation on stdin.
        #[arg(long)]
        yes: bool,
    },
    /// Check the config, the model files, the camera, the store and the LED;
    /// one line each, and a failing exit status if any is broken.
    Check,
    /// Manage the Cloudflare Vectorize index (`store = "vectorize"`).
    Index {
        #[command(subcommand)]
        action: IndexAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum IndexAction {
    /// Create the index (the embedder's dimension, cosine metric) and the
    /// metadata indexes doorman filters on; an existing matching index is
    /// accepted.
    Create,
    /// Show the index: dimensions, vectors, pending writes, outbox.
    Info,
}
