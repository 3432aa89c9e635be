//! SVG plots of a run (plotters): loss curves, before/after scores, confusion matrix. Each is drawn in memory and
//! written atomically.

use anyhow::{anyhow, Context, Result};
use metrics::ClassificationReport;
use plotters::prelude::*;
use std::path::Path;
use trainer::{Evaluation, StepRecord};

/// Draws into an SVG string with `draw`, then writes it to `path`.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    let mut svg = String::new();
    draw(SVGBackend::with_string(&mut svg, size).into_drawing_area())
        .map_err(|message| anyhow!(message))
        .with_context(|| format!("cannot draw {}", path.display()))?;
    Ok(atomic_files::write(path, svg.as_bytes())?)
}

const COLORS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40)];

/// Loss per optimizer step, one line per task (or `combined`).
pub fn loss_curves(path: &Path, steps: &[StepRecord]) -> Result<()> {
    render(path, (800, 450), |root| draw_loss(root, steps))
}

fn draw_loss(
    root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    steps: &[StepRecord],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let max_step = steps.iter().map(|s| s.global_step).max().unwrap_or(1).max(1);
    let max_loss = steps.iter().map(|s| s.loss).fold(0.0f64, f64::max).max(1e-3) * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption("Training loss", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0usize..max_step, 0.0..max_loss)
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("optimizer step").y_desc("loss").draw().map_err(|e| e.to_string())?;
    let mut tasks: Vec<String> = steps.iter().map(|s| s.phase.to_string()).collect();
    tasks.dedup();
    tasks.sort_unstable();
    tasks.dedup();
    for (i, task) in tasks.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(usize, f64)> =
            steps.iter().filter(|s| s.phase.to_string() == *task).map(|s| (s.global_step, s.loss)).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(task.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Bars of the headline scores before (when scored) and after training.
pub fn before_after(path: &Path, before: Option<&Evaluation>, after: &Evaluation) -> Result<()> {
    render(path, (800, 450), |root| draw_scores(root, before, after))
}

fn headline(evaluation: &Evaluation) -> Vec<(String, f64)> {
    let mut scores = Vec::new();
    if let Some(c) = &evaluation.classification {
        scores.push(("accuracy".to_string(), c.report.accuracy));
        scores.push(("class. macro F1".to_string(), c.report.macro_avg.f1));
    }
    if let Some(n) = &evaluation.ner {
        scores.push(("NER micro F1".to_string(), n.report.micro_avg.f1));
        scores.push(("NER macro F1".to_string(), n.report.macro_avg.f1));
    }
    scores
}

fn draw_scores(
    root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    before: Option<&Evaluation>,
    after: &Evaluation,
) -> std::result::Result<(), String> {
    let caption =
        if before.is_some() { "Scores before (light) and after (dark) training" } else { "Scores after training" };
    let after = headline(after);
    let before: Vec<Option<f64>> = match before {
        Some(before) => headline(before).into_iter().map(|(_, score)| Some(score)).collect(),
        None => vec![None; after.len()],
    };
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = before.len().max(1);
    // Names are drawn under the bars, inside the plotting area (y < 0), as plotters has no categorical axis of f64.
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(12)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n as f64, -0.1..1.05)
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().disable_x_mesh().disable_x_axis().y_desc("score").draw().map_err(|e| e.to_string())?;
    for (i, (b, (name, a))) in before.iter().zip(&after).enumerate() {
        let x = i as f64;
        let font = ("sans-serif", 14).into_font();
        if let Some(b) = b {
            chart
                .draw_series([Rectangle::new([(x + 0.1, 0.0), (x + 0.45, *b)], COLORS[0].mix(0.35).filled())])
                .map_err(|e| e.to_string())?;
            chart
                .draw_series([Text::new(format!("{b:.2}"), (x + 0.17, b + 0.04), font.clone())])
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series([Rectangle::new([(x + 0.55, 0.0), (x + 0.9, *a)], COLORS[0].filled())])
            .map_err(|e| e.to_string())?;
        chart
            .draw_series([
                Text::new(format!("{a:.2}"), (x + 0.62, a + 0.04), font.clone()),
                Text::new(name.clone(), (x + 0.2, -0.05), ("sans-serif", 16).into_font()),
            ])
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// The confusion matrix of a classification report, as a heat map with counts.
pub fn confusion_matrix(path: &Path, report: &ClassificationReport) -> Result<()> {
    render(path, (560, 520), |root| draw_confusion(root, report))
}

fn draw_confusion(
    root: DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    report: &ClassificationReport,
) -> std::result::Result<(), String> {
    let counts = &report.confusion_matrix.counts;
    let n = counts.len().max(1);
    let names: Vec<String> = report.classes.iter().map(|c| c.name.clone()).collect();
    let max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    // One extra column on the left for the true labels and one extra row on top for the predicted ones.
    let mut chart = ChartBuilder::on(&root)
        .caption("Confusion matrix (rows: true, columns: predicted)", ("sans-serif", 18))
        .margin(12)
        .build_cartesian_2d(-1.0..n as f64, 0.0..n as f64 + 0.6)
        .map_err(|e| e.to_string())?;
    let label_font = ("sans-serif", 16).into_font();
    for (i, name) in names.iter().enumerate() {
        let row_y = (n - 1 - i) as f64 + 0.5;
        chart
            .draw_series([
                Text::new(name.clone(), (-0.95, row_y), label_font.clone()),
                Text::new(name.clone(), (i as f64 + 0.2, n as f64 + 0.35), label_font.clone()),
            ])
            .map_err(|e| e.to_string())?;
    }
    for (t, row) in counts.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            let y = (n - 1 - t) as f64;
            let shade = count as f64 / max;
            chart
                .draw_series([Rectangle::new(
                    [(p as f64, y), (p as f64 + 1.0, y + 1.0)],
                    COLORS[0].mix(0.1 + 0.9 * shade).filled(),
                )])
                .map_err(|e| e.to_string())?;
            let color = if shade > 0.5 { WHITE } else { BLACK };
            chart
                .draw_series([Text::new(
                    count.to_string(),
                    (p as f64 + 0.45, y + 0.55),
                    ("sans-serif", 18).into_font().color(&color),
                )])
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::{
        accuracy_interval, classification_report, entity_counts_per_sequence, entity_report, macro_f1_interval,
        micro_f1_interval, BootstrapOptions, EntityMode, Scheme,
    };

    #[test]
    fn plots_are_written_with_their_labels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = classification_report(&[0, 1, 1, 0], &[0, 1, 0, 0], &["negative", "positive"]).expect("report");
        let gold = vec![vec!["B-LOC", "O"]];
        let mode = EntityMode::Strict(Scheme::Iob2);
        let ner = entity_report(&gold, &gold, mode).expect("ner");
        let options = BootstrapOptions::default();
        let counts = entity_counts_per_sequence(&gold, &gold, mode).expect("counts");
        let evaluation = |accuracy_report: &ClassificationReport| Evaluation {
            classification: Some(trainer::ClassificationEvaluation {
                examples: 4,
                report: accuracy_report.clone(),
                accuracy_interval: accuracy_interval(&[0, 1, 1, 0], &[0, 1, 0, 0], &options).expect("interval"),
                macro_f1_interval: macro_f1_interval(&[0, 1, 1, 0], &[0, 1, 0, 0], 2, &options).expect("interval"),
            }),
            ner: Some(trainer::NerEvaluation {
                sentences: 1,
                words: 2,
                report: ner.clone(),
                micro_f1_interval: micro_f1_interval(&counts, &options).expect("interval"),
                first_example: None,
            }),
            seconds: 0.0,
        };
        let steps: Vec<StepRecord> = (1..=5)
            .map(|i| StepRecord {
                phase: if i < 4 {
                    trainer::Phase::One(trainer::Task::Classification)
                } else {
                    trainer::Phase::One(trainer::Task::Ner)
                },
                epoch: 1,
                step: i,
                global_step: i,
                loss: 1.0 / i as f64,
                lr_factor: 1.0,
            })
            .collect();
        loss_curves(&dir.path().join("loss.svg"), &steps).expect("loss plot");
        before_after(&dir.path().join("scores.svg"), Some(&evaluation(&report)), &evaluation(&report))
            .expect("scores plot");
        before_after(&dir.path().join("after.svg"), None, &evaluation(&report)).expect("scores plot without before");
        confusion_matrix(&dir.path().join("cm.svg"), &report).expect("confusion plot");
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect("svg written");
        assert!(read("loss.svg").contains("classification") && read("loss.svg").contains("ner"));
        assert!(read("scores.svg").contains("accuracy") && read("scores.svg").contains("NER micro F1"));
        let cm = read("cm.svg");
        assert!(cm.contains("negative") && cm.contains("positive") && cm.contains("\n2\n</text>"), "{cm}");
    }
}
