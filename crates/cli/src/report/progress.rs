//! Progress bars for training (indicatif), driven by the trainer's [`Observer`] events, and an observer that hands
//! every event to several others.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;
use trainer::{EpochRecord, EpochStart, Observer, Stage, StepRecord};

/// Shows a bar per epoch with the loss and examples per second, a spinner per stage, and a line per epoch with its
/// validation scores. Hidden when `enabled` is false.
pub struct ProgressBars {
    enabled: bool,
    bar: Option<ProgressBar>,
    started: Instant,
    examples: usize,
}

impl ProgressBars {
    /// Bars on standard error, or nothing when `enabled` is false.
    pub fn new(enabled: bool) -> Self {
        Self { enabled, bar: None, started: Instant::now(), examples: 0 }
    }

    fn replace(&mut self, bar: Option<ProgressBar>) {
        if let Some(old) = self.bar.take() {
            old.finish_and_clear();
        }
        self.bar = bar;
    }

    /// A spinner with `message` until the next event.
    pub fn spinner(&mut self, message: &str) {
        if !self.enabled {
            return;
        }
        let spinner = ProgressBar::new_spinner();
        spinner.set_message(message.to_string());
        spinner.enable_steady_tick(std::time::Duration::from_millis(200));
        self.replace(Some(spinner));
    }

    /// Clears whatever is shown.
    pub fn clear(&mut self) {
        self.replace(None);
    }
}

impl Observer for ProgressBars {
    fn on_stage(&mut self, stage: Stage) {
        let message = match stage {
            Stage::CachingFeatures => "running the frozen encoder once over every example",
            Stage::EvaluatingBefore => "scoring the test sets before training",
            Stage::Validating => "scoring the validation sets",
            Stage::EvaluatingAfter => "scoring the test sets after training",
            Stage::SavingState => "saving the run's state",
        };
        self.spinner(message);
    }

    fn on_epoch_start(&mut self, start: &EpochStart) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(start.batches as u64);
        let style =
            ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{} epoch {}/{}", start.phase, start.epoch, start.epochs));
        self.started = Instant::now();
        self.examples = 0;
        self.replace(Some(bar));
    }

    fn on_batch(&mut self, loss: f64, examples: usize) {
        self.examples += examples;
        if let Some(bar) = &self.bar {
            let rate = self.examples as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("loss {loss:.4}, {rate:.1} ex/s"));
            bar.inc(1);
        }
    }

    fn on_epoch(&mut self, record: &EpochRecord) {
        self.clear();
        if !self.enabled {
            return;
        }
        eprintln!("{}", super::epoch_line(record));
    }
}

/// Hands every event to each of its observers, in order.
pub struct Fanout<'a>(pub Vec<&'a mut dyn Observer>);

impl Observer for Fanout<'_> {
    fn on_stage(&mut self, stage: Stage) {
        self.0.iter_mut().for_each(|o| o.on_stage(stage));
    }
    fn on_epoch_start(&mut self, start: &EpochStart) {
        self.0.iter_mut().for_each(|o| o.on_epoch_start(start));
    }
    fn on_batch(&mut self, loss: f64, examples: usize) {
        self.0.iter_mut().for_each(|o| o.on_batch(loss, examples));
    }
    fn on_step(&mut self, record: &StepRecord) {
        self.0.iter_mut().for_each(|o| o.on_step(record));
    }
    fn on_epoch(&mut self, record: &EpochRecord) {
        self.0.iter_mut().for_each(|o| o.on_epoch(record));
    }
}
