//! What `okr-webhooks replay` shows: progress on stderr, the summary on stdout.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use okr_consumers::replay::checkpoint::CheckpointFile;
use okr_consumers::replay::{Plan, Progress, Summary};
use okr_core::routing::Consumer;

/// Progress on stderr: a bar (objects, with the rate and an ETA) on a terminal, a line
/// every 5 s otherwise.
pub(super) struct Display {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last: Instant,
}

impl Display {
    pub(super) fn new(name: &str) -> Self {
        let bar = io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} objects, {msg}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-");
            bar.set_style(style);
            bar.set_prefix(name.to_owned());
            bar
        });
        Display {
            name: name.to_owned(),
            bar,
            started: Instant::now(),
            last: Instant::now(),
        }
    }

    pub(super) fn show(&mut self, progress: Progress) {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = progress.sent as f64 / elapsed;
        match &self.bar {
            Some(bar) => {
                bar.set_length(progress.objects as u64);
                bar.set_position(progress.done as u64);
                bar.set_message(format!("{} events, {rate:.0}/s", progress.sent));
            }
            None if self.last.elapsed() >= Duration::from_secs(5) => {
                self.last = Instant::now();
                let left = progress.objects.saturating_sub(progress.done);
                let eta = elapsed / progress.done.max(1) as f64 * left as f64;
                let _ = writeln!(
                    io::stderr(),
                    "{}: {} events, {rate:.0}/s, {}/{} objects, ETA {eta:.0} s",
                    self.name,
                    progress.sent,
                    progress.done,
                    progress.objects
                );
            }
            None => {}
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What it came to, on stdout.
pub(super) fn report(
    plan: &Plan,
    summary: &Summary,
    dry_run: bool,
    checkpoint: &CheckpointFile,
) -> Result<()> {
    let mut out = io::stdout().lock();
    let targets: Vec<&str> = plan.targets.iter().map(|t| t.as_str()).collect();
    let to = targets.join(", ");
    if dry_run {
        estimate(&mut out, plan, summary, &to)?;
    } else {
        writeln!(
            out,
            "replay {}: sent {} event(s) to {to} ({} selected, {} copies skipped, {} for none of them)",
            plan.name, summary.sent, summary.selected, summary.copies, summary.not_routed
        )?;
        if summary.already_queued > 0 {
            writeln!(
                out,
                "  {} message(s) were queued by this replay before and are not queued again",
                summary.already_queued
            )?;
        }
        writeln!(out, "  checkpoint: {}", checkpoint.path().display())?;
    }
    if summary.bad_lines > 0 {
        writeln!(out, "{} line(s) are not events:", summary.bad_lines)?;
        for (key, line) in &summary.bad_places {
            match line {
                0 => writeln!(
                    out,
                    "  {key}: its gzip stream breaks (the lines before were taken)"
                )?,
                line => writeln!(out, "  {key} line {line}")?,
            }
        }
    }
    Ok(())
}

/// A dry run's estimate: what would go out, what Slack has, by day, source and type.
fn estimate(out: &mut impl Write, plan: &Plan, summary: &Summary, to: &str) -> Result<()> {
    writeln!(
        out,
        "dry run of {}: would send {} event(s) to {to}",
        plan.name, summary.sent
    )?;
    writeln!(
        out,
        "  {} object(s) in the window, {} event(s) selected, {} copies, {} for none of {to}",
        summary.objects, summary.selected, summary.copies, summary.not_routed
    )?;
    if plan.targets.contains(&Consumer::Slack) {
        let skipped = match (plan.queue_urls.is_empty(), plan.force) {
            (false, _) => "not counted (the notifier's records are in DynamoDB)".to_owned(),
            (true, true) => format!(
                "{} (under this replay's name: the notifier skips them)",
                summary.already_posted
            ),
            (true, false) => format!(
                "{} (posted already: the notifier skips them)",
                summary.already_posted
            ),
        };
        writeln!(out, "  already posted to Slack: {skipped}")?;
    }
    writeln!(
        out,
        "  day         source       type                              events"
    )?;
    for ((day, source, event_type), count) in &summary.by_day {
        writeln!(out, "  {day:<11} {source:<12} {event_type:<33} {count}")?;
    }
    Ok(())
}
