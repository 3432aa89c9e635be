//! SVG plots of a run (plotters): loss curves, before/after scores, confusion matrix.

use crate::error::{Result, TrainError};
use crate::fit::{Evaluation, StepRecord};
use metrics::ClassificationReport;
use plotters::prelude::*;
use std::path::Path;

fn plot_error(path: &Path) -> impl FnOnce(String) -> TrainError + '_ {
    move |message| TrainError::Io { path: path.to_path_buf(), source: std::io::Error::other(message) }
}

const COLORS: [RGBColor; 4] =
    [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40)];

/// Loss per optimizer step, one line per task (or `combined`).
pub fn loss_curves(path: &Path, steps: &[StepRecord]) -> Result<()> {
    draw_loss(path, steps).map_err(plot_error(path))
}

fn draw_loss(path: &Path, steps: &[StepRecord]) -> std::result::Result<(), String> {
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
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
    let mut tasks: Vec<&str> = steps.iter().map(|s| s.task.as_str()).collect();
    tasks.dedup();
    tasks.sort_unstable();
    tasks.dedup();
    for (i, task) in tasks.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(usize, f64)> =
            steps.iter().filter(|s| s.task == *task).map(|s| (s.global_step, s.loss)).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(task.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Bars of the headline scores before and after training.
pub fn before_after(path: &Path, before: &Evaluation, after: &Evaluation) -> Result<()> {
    draw_scores(path, before, after).map_err(plot_error(path))
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

fn draw_scores(path: &Path, before: &Evaluation, after: &Evaluation) -> std::result::Result<(), String> {
    let (before, after) = (headline(before), headline(after));
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = before.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption("Scores before (light) and after (dark) training", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n as f64, 0.0..1.0)
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = before.iter().map(|(name, _)| name.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.26 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("score")
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, ((_, b), (_, a))) in before.iter().zip(&after).enumerate() {
        let x = i as f64;
        chart
            .draw_series([
                Rectangle::new([(x + 0.1, 0.0), (x + 0.45, *b)], COLORS[0].mix(0.35).filled()),
                Rectangle::new([(x + 0.55, 0.0), (x + 0.9, *a)], COLORS[0].filled()),
            ])
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// The confusion matrix of a classification report, as a heat map with counts.
pub fn confusion_matrix(path: &Path, report: &ClassificationReport) -> Result<()> {
    draw_confusion(path, report).map_err(plot_error(path))
}

fn draw_confusion(path: &Path, report: &ClassificationReport) -> std::result::Result<(), String> {
    let counts = &report.confusion_matrix.counts;
    let n = counts.len().max(1);
    let names: Vec<String> = report.classes.iter().map(|c| c.name.clone()).collect();
    let max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let root = SVGBackend::new(path, (520, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Confusion matrix (rows: true, columns: predicted)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..n as f64, 0.0..n as f64)
        .map_err(|e| e.to_string())?;
    let label = |x: &f64| {
        let i = x.floor() as usize;
        if (x - i as f64 - 0.5).abs() < 0.26 {
            names.get(i).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n * 2)
        .y_labels(n * 2)
        .x_label_formatter(&label)
        .y_label_formatter(&|y| label(&(n as f64 - y)))
        .draw()
        .map_err(|e| e.to_string())?;
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
