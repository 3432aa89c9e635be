//! Loads a data file and prints what the loader made of it.
//!
//! `cargo run --release -p datasets --example inspect -- classification FILE [rotten-tomatoes|notebook]`
//! `cargo run --release -p datasets --example inspect -- ner FILE`
//!
//! Without a layout name, the classification file is read as the user's own (`text`/`label` columns, else
//! `review`/`sentiment`; the classes derived from the labels).

use std::process::ExitCode;

use datasets::{load_classification, load_ner, ClassificationOptions, NerOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match (args.first().map(String::as_str), args.get(1)) {
        (Some("classification"), Some(path)) => {
            let options = match args.get(2).map(String::as_str) {
                Some("rotten-tomatoes") => ClassificationOptions::rotten_tomatoes(),
                Some("notebook") => ClassificationOptions::notebook(),
                _ => ClassificationOptions::default(),
            };
            load_classification(path, &options).map(|data| {
                println!("rows read: {}", data.rows_read);
                println!(
                    "examples: {} per class {:?} {:?}",
                    data.examples.len(),
                    data.label_names,
                    data.class_counts()
                );
                println!("{}", data.dropped);
                if let Some(first) = data.examples.first() {
                    println!("first: {:?} -> {}", first.text.chars().take(100).collect::<String>(), first.label);
                }
            })
        }
        (Some("ner"), Some(path)) => load_ner(path, &NerOptions::default()).map(|data| {
            println!("token rows read: {}", data.tokens_read);
            println!("sentences: {}, tokens: {}", data.sentences.len(), data.token_count());
            println!("tags ({}): {:?}", data.labels.len(), data.labels.tags());
            println!("{}", data.dropped_tokens);
            println!("{}", data.dropped_sentences);
            println!("IOB1 tags converted to IOB2: {}", data.iob1_tags_converted);
            if let Some(first) = data.sentences.first() {
                let tags: Vec<&str> = first.tags.iter().filter_map(|&t| data.labels.tag(t)).collect();
                println!("first ({}): {:?} {:?}", first.id, first.words, tags);
            }
        }),
        _ => {
            eprintln!("usage: inspect classification FILE [rotten-tomatoes|notebook] | inspect ner FILE");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
