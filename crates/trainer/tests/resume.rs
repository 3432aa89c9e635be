//! A run stopped part-way and resumed from its saved state ends with the weights of a run that was never
//! interrupted: for each task alone and both together, stopped inside an epoch and between epochs, with dropout,
//! validation and early stopping on. Resuming with other settings or data is refused, naming what changed.

mod common;

use common::{classification_data, max_difference, ner_data, tiny_model, weights};

use heads::FreezeStrategy;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use trainer::{
    Fingerprint, Mode, Observer, OptimizerKind, ResumeState, RunControl, Schedule, Session, StepRecord, Task, TaskData,
    TrainConfig, TrainError, TrainOutcome,
};

/// libtorch's random generator is global to the process: the tests take turns.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Asks for a stop at a given optimizer step, or at the end of a given epoch.
struct StopAt<'a> {
    flag: &'a AtomicBool,
    step: Option<usize>,
    epoch: Option<usize>,
    epochs_seen: usize,
}

impl Observer for StopAt<'_> {
    fn on_step(&mut self, record: &StepRecord) {
        if Some(record.global_step) == self.step {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
    fn on_epoch(&mut self, _record: &trainer::EpochRecord) {
        self.epochs_seen += 1;
        if Some(self.epochs_seen) == self.epoch {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

fn config(mode: Mode) -> TrainConfig {
    TrainConfig {
        mode,
        epochs: 3,
        batch_size: 4,
        learning_rate: 2e-3,
        encoder_learning_rate: Some(5e-4),
        optimizer: OptimizerKind::AdamW { weight_decay: 0.01 },
        schedule: Schedule::LinearWarmupDecay { warmup_ratio: 0.2 },
        max_grad_norm: Some(1.0),
        gradient_accumulation: 2,
        patience: Some(1),
        ..TrainConfig::default()
    }
}

/// Trains `data` from a fresh model (seed `init`) under `control`.
fn train(
    data: TaskData<'_>,
    mode: Mode,
    init: i64,
    observer: &mut dyn Observer,
    control: &RunControl<'_>,
) -> (trainer::Result<TrainOutcome>, Vec<(String, tch::Tensor)>) {
    let model = tiny_model(0.1, init);
    let session = Session::new(&model, data, FreezeStrategy::All, config(mode)).expect("a valid session");
    let mut session = session;
    let outcome = session.train(observer, control);
    (outcome, weights(&model))
}

struct Quiet;
impl Observer for Quiet {}

/// Trains once without a stop, then stops at `stop` and resumes (from a model initialised differently, which the
/// state must overwrite); returns the largest weight difference and both outcomes.
fn stop_and_resume(
    data: TaskData<'_>,
    mode: Mode,
    stop: (Option<usize>, Option<usize>),
    dir: &Path,
) -> (f64, TrainOutcome, TrainOutcome) {
    let (whole, reference) = train(data, mode, 1, &mut Quiet, &RunControl::default());
    let whole = whole.expect("the uninterrupted run");

    let flag = AtomicBool::new(false);
    let state_dir = dir.join("state");
    let control = RunControl { save_state_to: Some(&state_dir), stop: Some(&flag), ..RunControl::default() };
    let mut stopper = StopAt { flag: &flag, step: stop.0, epoch: stop.1, epochs_seen: 0 };
    let (stopped, _) = train(data, mode, 1, &mut stopper, &control);
    match stopped {
        Err(TrainError::Stopped { state: Some(saved), .. }) => assert_eq!(saved, state_dir),
        Err(other) => panic!("expected a stop, got {other}"),
        Ok(_) => panic!("the run did not stop at {stop:?}"),
    }

    let state = ResumeState::read(&state_dir).expect("the saved state reads back");
    let control = RunControl { save_state_to: Some(&state_dir), resume_from: Some(&state), ..RunControl::default() };
    let (resumed, weights) = train(data, mode, 99, &mut Quiet, &control);
    let resumed = resumed.expect("the resumed run");
    (max_difference(&reference, &weights), whole, resumed)
}

fn assert_same_run(whole: &TrainOutcome, resumed: &TrainOutcome, what: &str) {
    assert_eq!(whole.epochs.len(), resumed.epochs.len(), "{what}: epochs");
    for (a, b) in whole.epochs.iter().zip(&resumed.epochs) {
        assert_eq!((a.phase, a.epoch, a.batches, a.examples), (b.phase, b.epoch, b.batches, b.examples), "{what}");
        assert!((a.mean_loss - b.mean_loss).abs() < 1e-6, "{what}: epoch loss {} vs {}", a.mean_loss, b.mean_loss);
    }
    let kept = |o: &TrainOutcome| o.phases.iter().map(|p| (p.phase, p.kept_epoch, p.epochs_run)).collect::<Vec<_>>();
    assert_eq!(kept(whole), kept(resumed), "{what}: kept epochs");
    for task in Task::ALL {
        let before = |o: &TrainOutcome| o.before.as_ref().and_then(|b| b.metric(task));
        assert_eq!(before(whole), before(resumed), "{what}: scores before");
        assert_eq!(whole.after.metric(task), resumed.after.metric(task), "{what}: scores after");
    }
    assert!(resumed.resumed_from.is_some(), "{what}");
}

/// The data with a validation split (patience needs one).
fn with_validation(mut data: datasets::PreparedDataset) -> datasets::PreparedDataset {
    data.hold_out_validation(0.2, 3).expect("a validation split");
    data
}

#[test]
fn each_task_alone_resumes_to_the_same_weights_from_inside_an_epoch_and_between_epochs() {
    let _rng = serial();
    let classification = with_validation(classification_data(48));
    let ner = with_validation(ner_data(40));
    for (name, data) in [
        ("classification", TaskData::new().with(Task::Classification, &classification)),
        ("ner", TaskData::new().with(Task::Ner, &ner)),
    ] {
        for stop in [(Some(3), None), (None, Some(1))] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (difference, whole, resumed) = stop_and_resume(data, Mode::Separate, stop, dir.path());
            assert!(difference <= 1e-6, "{name}, stopped at {stop:?}: weights differ by {difference}");
            assert_same_run(&whole, &resumed, name);
        }
    }
}

#[test]
fn both_tasks_resume_to_the_same_weights_in_either_mode() {
    let _rng = serial();
    let classification = with_validation(classification_data(48));
    let ner = with_validation(ner_data(40));
    let data = TaskData::new().with(Task::Classification, &classification).with(Task::Ner, &ner);
    // Combined mode inside an epoch; separate mode inside the second task's phase, and at the first phase's end.
    for (mode, stop) in
        [(Mode::Combined, (Some(4), None)), (Mode::Separate, (Some(9), None)), (Mode::Separate, (None, Some(2)))]
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let (difference, whole, resumed) = stop_and_resume(data, mode, stop, dir.path());
        assert!(difference <= 1e-6, "{mode:?}, stopped at {stop:?}: weights differ by {difference}");
        assert_same_run(&whole, &resumed, &format!("{mode:?}"));
    }
}

#[test]
fn resuming_with_other_settings_or_data_is_refused_naming_what_changed() {
    let _rng = serial();
    let classification = with_validation(classification_data(48));
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("state");
    let data = TaskData::new().with(Task::Classification, &classification);
    let flag = AtomicBool::new(false);
    let mut settings = Fingerprint::new();
    settings.insert("model", "tiny");
    let control = RunControl {
        save_state_to: Some(&state_dir),
        stop: Some(&flag),
        fingerprint: settings,
        ..RunControl::default()
    };
    let mut stopper = StopAt { flag: &flag, step: Some(2), epoch: None, epochs_seen: 0 };
    let (stopped, _) = train(data, Mode::Separate, 1, &mut stopper, &control);
    assert!(matches!(stopped, Err(TrainError::Stopped { .. })));
    let state = ResumeState::read(&state_dir).expect("state");

    let resume = |data: TaskData<'_>, config: TrainConfig, model_name: &str| {
        let model = tiny_model(0.1, 1);
        let mut settings = Fingerprint::new();
        settings.insert("model", model_name);
        let control = RunControl { resume_from: Some(&state), fingerprint: settings, ..RunControl::default() };
        Session::new(&model, data, FreezeStrategy::All, config).expect("session").train(&mut Quiet, &control)
    };
    let changed = |result: trainer::Result<TrainOutcome>| match result {
        Err(error @ TrainError::ResumeMismatch { .. }) => error.to_string(),
        Err(other) => panic!("expected a mismatch, got {other}"),
        Ok(_) => panic!("resumed despite a change"),
    };
    let message = changed(resume(data, TrainConfig { learning_rate: 1e-3, ..config(Mode::Separate) }, "tiny"));
    assert!(message.contains("`train.learning_rate`") && message.contains("0.002"), "{message}");
    let message = changed(resume(data, config(Mode::Separate), "other"));
    assert!(message.contains("`model`"), "{message}");
    let mut other = classification.clone();
    other.sample_train(0.5, 1, 1).expect("sample");
    let message = changed(resume(TaskData::new().with(Task::Classification, &other), config(Mode::Separate), "tiny"));
    assert!(message.contains("`data.classification.training`"), "{message}");
    // The unchanged run resumes.
    assert!(resume(data, config(Mode::Separate), "tiny").is_ok());
    assert!(ResumeState::read(dir.path()).is_err(), "a directory without a state is not one");
}
