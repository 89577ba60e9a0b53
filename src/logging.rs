//! Where log lines go: the journal when doorman runs under systemd, stderr
//! otherwise; and how much of them.
//!
//! The logger is installed before the config is read (so config errors can
//! be logged), passing everything; the level is then a global filter set
//! from the command line and, once the config is loaded, from `[log]`.
//! `RUST_LOG` wins over both.

use log::LevelFilter;

use crate::config::LogLevel;

/// How the command line asks for detail.
#[derive(Debug, Clone, Copy)]
pub struct Verbosity {
    /// `-v` count.
    pub verbose: u8,
    /// `doorman run` reports its state changes; one-shot commands stay
    /// quiet unless asked.
    pub running: bool,
}

impl Verbosity {
    /// The level for `configured` (`[log] level`, which applies to `run`).
    pub fn level(self, configured: LogLevel) -> LevelFilter {
        let base = if self.running {
            configured.filter()
        } else {
            LevelFilter::Warn
        };
        match self.verbose {
            0 => base,
            1 => base.max(LevelFilter::Info),
            _ => base.max(LevelFilter::Debug),
        }
    }
}

/// `RUST_LOG`, when it is set to something.
fn rust_log() -> Option<String> {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Installs the journal logger when stderr is connected to the journal
/// (systemd says so in `$JOURNAL_STREAM`), else a plain stderr logger.
pub fn init(v: Verbosity) {
    let journal = systemd_journal_logger::connected_to_journal()
        && systemd_journal_logger::JournalLog::new()
            .ok()
            .is_some_and(|l| log::set_boxed_logger(Box::new(NoWireTrace(l))).is_ok());
    if !journal {
        let mut builder = env_logger::Builder::new();
        builder
            .filter_level(LevelFilter::Trace)
            // The inference library narrates every graph rewrite at debug
            // level; -vv is for doorman's own detail.
            .filter_module("tract_core", LevelFilter::Warn)
            .filter_module("tract_hir", LevelFilter::Warn)
            .filter_module("tract_onnx", LevelFilter::Warn)
            .filter_module("tract_linalg", LevelFilter::Warn)
            .format_target(false);
        if let Some(spec) = rust_log() {
            builder.parse_filters(&spec);
        }
        // Set after RUST_LOG so it cannot lift them (see `NoWireTrace`).
        for module in WIRE_MODULES {
            builder.filter_module(module, LevelFilter::Debug);
        }
        builder.init();
    }
    apply(v, LogLevel::Info);
}

/// Libraries whose trace records are the raw bytes on the wire, the
/// Vectorize token in the `Authorization` header included. Their trace
/// level never reaches a log, whatever `RUST_LOG` asks for.
const WIRE_MODULES: [&str; 3] = ["ureq", "ureq_proto", "rustls"];

fn is_wire_trace(meta: &log::Metadata) -> bool {
    meta.level() == log::Level::Trace
        && WIRE_MODULES.iter().any(|m| {
            meta.target()
                .strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// The journal logger has no per-module filter of its own.
struct NoWireTrace<L>(L);

impl<L: log::Log> log::Log for NoWireTrace<L> {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        !is_wire_trace(meta) && self.0.enabled(meta)
    }

    fn log(&self, record: &log::Record) {
        if !is_wire_trace(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Sets the level for `configured`; `RUST_LOG` overrides it.
pub fn apply(v: Verbosity, configured: LogLevel) {
    let level = match rust_log() {
        // env_logger filters per module itself; let everything through to it.
        // A plain level also works for the journal logger.
        Some(spec) => spec.trim().parse().unwrap_or(LevelFilter::Trace),
        None => v.level(configured),
    };
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_logs_at_the_configured_level_and_one_shot_commands_warn() {
        let run = Verbosity {
            verbose: 0,
            running: true,
        };
        let once = Verbosity {
            verbose: 0,
            running: false,
        };
        assert_eq!(run.level(LogLevel::Debug), LevelFilter::Debug);
        assert_eq!(run.level(LogLevel::Error), LevelFilter::Error);
        assert_eq!(once.level(LogLevel::Debug), LevelFilter::Warn);
        let vv = Verbosity {
            verbose: 2,
            running: false,
        };
        assert_eq!(vv.level(LogLevel::Info), LevelFilter::Debug);
    }

    #[test]
    fn wire_trace_is_recognised_by_module_not_by_prefix() {
        let meta = |target: &'static str, level| {
            log::Metadata::builder().target(target).level(level).build()
        };
        assert!(is_wire_trace(&meta(
            "ureq_proto::client",
            log::Level::Trace
        )));
        assert!(is_wire_trace(&meta("rustls", log::Level::Trace)));
        assert!(!is_wire_trace(&meta("ureq::unit", log::Level::Debug)));
        assert!(!is_wire_trace(&meta("ureqx", log::Level::Trace)));
        assert!(!is_wire_trace(&meta(
            "doorman::vectorize",
            log::Level::Trace
        )));
    }
}
