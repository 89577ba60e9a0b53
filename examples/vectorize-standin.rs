//! The Vectorize stand-in as a standalone server, for a manual demo of
//! `store = "vectorize"` without a Cloudflare account:
//!
//! ```sh
//! cargo run --example vectorize-standin -- --port 8787 --apply-delay-ms 3000
//! ```
//!
//! It listens on 127.0.0.1 only and prints the `[vectorize]` settings and
//! the token to use. Faults can be injected while it runs:
//! `curl -X POST 127.0.0.1:8787/__standin/fault -d '{"kind":"429","times":5}'`
//! (kinds: 429, 40041, 5xx, drop, slow, clear); `/__standin/flush`,
//! `/__standin/pause`, `/__standin/resume` and `/__standin/stats` control
//! and show the asynchronous writes.

#[path = "../tests/standin/mod.rs"]
mod standin;

use std::time::Duration;

use standin::{Apply, Options, Standin};

fn main() {
    let mut options = Options {
        port: 8787,
        apply: Apply::Delayed(Duration::from_secs(2)),
        ..Options::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("vectorize-standin: {name} needs a value");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--port" => options.port = parse(&value("--port")),
            "--token" => options.token = value("--token"),
            "--account" => options.account = value("--account"),
            "--apply-delay-ms" => {
                options.apply = match parse::<u64>(&value("--apply-delay-ms")) {
                    0 => Apply::Immediate,
                    ms => Apply::Delayed(Duration::from_millis(ms)),
                }
            }
            "--manual" => options.apply = Apply::Manual,
            _ => {
                eprintln!(
                    "usage: vectorize-standin [--port N] [--token T] [--account HEX32] \
                     [--apply-delay-ms MS | --manual]"
                );
                std::process::exit(2);
            }
        }
    }
    let server = Standin::start(options);
    println!(
        "Vectorize stand-in listening on 127.0.0.1:{}",
        server.port()
    );
    println!("doorman config:\n");
    println!("store = \"vectorize\"\n[vectorize]");
    println!("account_id = \"{}\"", server.account());
    println!("index = \"doorman-faces\"");
    println!("base_url = \"{}\"", server.base_url());
    println!("token_file = \"/absolute/path/to/token\"   # chmod 600");
    println!("\ntoken (write it to that file): {}", server.token());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn parse<T: std::str::FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| {
        eprintln!("vectorize-standin: {s:?} is not a valid number");
        std::process::exit(2)
    })
}
