//! Entity scoring throughput: 50,000 sentences of 25 tags, scored in strict
//! IOB2 and default mode; prints one JSON line with the median of 5 runs.
//!
//! Run: `cargo bench -p metrics --bench entity_scoring`

use std::hint::black_box;
use std::time::Instant;

use metrics::{entity_report, EntityMode, Scheme};

const SENTENCES: usize = 50_000;
const TAGS_PER_SENTENCE: usize = 25;
const RUNS: usize = 5;
const ENTITY_TYPES: [&str; 4] = ["PER", "ORG", "LOC", "MISC"];

/// SplitMix64: a tiny deterministic generator, enough for synthetic tags.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Tag vocabulary: `O`, then `B-T`, `I-T` for each type.
fn vocabulary() -> Vec<String> {
    let mut tags = vec!["O".to_owned()];
    for t in ENTITY_TYPES {
        tags.push(format!("B-{t}"));
        tags.push(format!("I-{t}"));
    }
    tags
}

/// Well-formed IOB2 gold sentences and predictions with ~10% of tags replaced at random.
fn generate(vocab: &[String]) -> (Vec<Vec<&str>>, Vec<Vec<&str>>) {
    let mut rng = SplitMix64(0x5EED_2024);
    let mut y_true = Vec::with_capacity(SENTENCES);
    let mut y_pred = Vec::with_capacity(SENTENCES);
    for _ in 0..SENTENCES {
        let mut gold: Vec<&str> = Vec::with_capacity(TAGS_PER_SENTENCE);
        let mut current_type: Option<usize> = None;
        for _ in 0..TAGS_PER_SENTENCE {
            let roll = rng.below(10);
            let tag = match (roll, current_type) {
                (0..=5, _) => {
                    current_type = None;
                    0
                }
                (6..=7, Some(t)) => 2 + 2 * t,
                _ => {
                    let t = rng.below(ENTITY_TYPES.len());
                    current_type = Some(t);
                    1 + 2 * t
                }
            };
            gold.push(vocab[tag].as_str());
        }
        let pred = gold
            .iter()
            .map(|&tag| if rng.below(10) == 0 { vocab[rng.below(vocab.len())].as_str() } else { tag })
            .collect();
        y_true.push(gold);
        y_pred.push(pred);
    }
    (y_true, y_pred)
}

fn median_seconds(y_true: &[Vec<&str>], y_pred: &[Vec<&str>], mode: EntityMode) -> f64 {
    let score = || match entity_report(black_box(y_true), black_box(y_pred), mode) {
        Ok(report) => black_box(report),
        Err(error) => panic!("benchmark input must be valid: {error}"),
    };
    score(); // warm-up
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            score();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[RUNS / 2]
}

fn main() {
    let vocab = vocabulary();
    let (y_true, y_pred) = generate(&vocab);
    let strict = median_seconds(&y_true, &y_pred, EntityMode::Strict(Scheme::Iob2));
    let default = median_seconds(&y_true, &y_pred, EntityMode::Default);
    println!(
        "{{\"bench\":\"metrics.entity_scoring\",\"sentences\":{SENTENCES},\"tags_per_sentence\":{TAGS_PER_SENTENCE},\"strict_iob2_median_s\":{strict:.6},\"default_median_s\":{default:.6},\"runs\":{RUNS}}}"
    );
}
