//! Compares `datasets::clean_text` with the notebook's Python `clean_text` on real reviews.
//!
//! First write the Python reference (one cleaned review per line):
//! `python crates/datasets/scripts/clean_reference.py /work/shared/data/imdb_50k.csv.gz /tmp/imdb_clean_reference.txt`
//! then run
//! `cargo run --release -p datasets --example clean_compare -- /work/shared/data/imdb_50k.csv.gz /tmp/imdb_clean_reference.txt`.
//! Prints the number of reviews, the number of mismatches and the first few mismatches.
//! With `--html` it compares `datasets::html_to_text` with the JSON lines written by
//! `clean_reference.py --get-text` (Beautiful Soup's `get_text()` alone).

use std::io::BufRead;
use std::process::ExitCode;

use datasets::{load_classification, ClassificationOptions};

/// What `clean_reference.py` writes where Beautiful Soup rejects the markup.
const REJECTED: &str = "!!REJECTED!!";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let html_only = args.iter().any(|a| a == "--html");
    args.retain(|a| a != "--html");
    let (Some(data), Some(reference)) = (args.first(), args.get(1)) else {
        eprintln!("usage: clean_compare [--html] IMDB.csv[.gz|.xlsx] REFERENCE.txt");
        return ExitCode::from(2);
    };
    let options = ClassificationOptions { clean: false, ..ClassificationOptions::default() };
    let raw = match load_classification(data, &options) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let file = match std::fs::File::open(reference) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{reference}: {e}");
            return ExitCode::from(1);
        }
    };
    let expected: Vec<String> = std::io::BufReader::new(file).lines().map_while(Result::ok).collect();
    if expected.len() != raw.examples.len() {
        eprintln!("reference has {} lines, data has {} reviews", expected.len(), raw.examples.len());
        return ExitCode::from(1);
    }
    let start = std::time::Instant::now();
    let mut mismatches = 0usize;
    for (i, (example, want)) in raw.examples.iter().zip(&expected).enumerate() {
        let (got, want) = if html_only {
            let got = datasets::html_to_text(&example.text).unwrap_or_else(|_| REJECTED.to_owned());
            let want = if want == REJECTED {
                REJECTED.to_owned()
            } else {
                serde_json::from_str::<String>(want).unwrap_or_else(|_| format!("bad JSON: {want}"))
            };
            (got, want)
        } else {
            (datasets::clean_text(&example.text), want.clone())
        };
        if got != want {
            mismatches += 1;
            if mismatches <= 5 {
                let at = got.bytes().zip(want.bytes()).take_while(|(a, b)| a == b).count();
                let lo = at.saturating_sub(60);
                println!("review {i}: first difference at byte {at}");
                println!("  rust:   {:?}", got.get(lo..(at + 60).min(got.len())));
                println!("  python: {:?}", want.get(lo..(at + 60).min(want.len())));
            }
        }
    }
    println!(
        "{{\"reviews\": {}, \"mismatches\": {}, \"clean_seconds\": {:.3}}}",
        expected.len(),
        mismatches,
        start.elapsed().as_secs_f64()
    );
    if mismatches == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
