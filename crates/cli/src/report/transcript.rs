//! What a command shows as it goes, kept once: every heading, line and block goes to the terminal and into a
//! Markdown report, so the two never drift apart.

use std::fmt::Write as _;

/// The terminal output of a command and the Markdown report of the same text.
#[derive(Debug)]
pub struct Transcript {
    report: String,
    /// Whether the pieces go to the terminal too (not on the other ranks of a data-parallel run).
    shown: bool,
}

impl Transcript {
    /// A transcript whose report starts with the title `title`, shown on the terminal as it goes.
    pub fn new(title: &str) -> Self {
        Self { report: format!("# {title}\n\n"), shown: true }
    }

    /// The same, kept in the report only.
    pub fn unshown(title: &str) -> Self {
        Self { shown: false, ..Self::new(title) }
    }

    fn show(&self, text: &str) {
        if self.shown {
            println!("{text}");
        }
    }

    /// A section heading: `== title ==` on the terminal, `## title` in the report.
    pub fn heading(&mut self, title: &str) {
        self.show(&format!("\n== {title} =="));
        let _ = writeln!(self.report, "## {title}\n");
    }

    /// A paragraph.
    pub fn line(&mut self, text: &str) {
        self.show(text);
        let _ = writeln!(self.report, "{text}\n");
    }

    /// Preformatted text (tables, configurations, scores): as is on the terminal, fenced in the report.
    pub fn block(&mut self, text: &str) {
        let text = text.trim_end_matches('\n');
        self.show(text);
        let _ = writeln!(self.report, "```\n{text}\n```\n");
    }

    /// The report so far.
    pub fn report(&self) -> &str {
        &self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_holds_every_piece_in_order_with_blocks_fenced() {
        let mut transcript = Transcript::new("Run");
        transcript.heading("Task 1");
        transcript.line("Model `m`:");
        transcript.block("hidden 384\nlayers 6\n\n");
        assert_eq!(transcript.report(), "# Run\n\n## Task 1\n\nModel `m`:\n\n```\nhidden 384\nlayers 6\n```\n\n");
    }
}
