//! Prints one generated benchmark model (`flowtime::model::generate`) to stdout, so that
//! instruction counts of the command line (`valgrind --tool=callgrind flowtime validate FILE`)
//! are measured on exactly the text the benches use.
//!
//! `cargo run --release --example bench_model -- chain 2000 288 > chain.yaml`
//! `cargo run --release --example bench_model -- topology 300 288 > topology.yaml`

use std::io::Write;
use std::process::ExitCode;

use flowtime::model::generate;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [shape, n, bins] => {
            n.parse::<usize>().ok().zip(bins.parse::<usize>().ok()).map(|(n, b)| (shape.as_str(), n, b))
        }
        _ => None,
    };
    let text = match parsed {
        Some(("chain", n, bins)) if n >= 3 && bins >= 1 => generate::chain(n, bins),
        Some(("topology", n, bins)) if n >= 1 && bins >= 1 => generate::topology(n, bins),
        _ => {
            eprintln!("usage: bench_model chain|topology <nodes or services> <bins>  (chain needs at least 3 nodes)");
            return ExitCode::from(2);
        }
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}
