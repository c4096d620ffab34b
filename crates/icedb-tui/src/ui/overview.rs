//! The overview view: the table's totals, definition and merge backlog.

use super::*;

pub(super) fn draw_overview(frame: &mut Frame, app: &App, area: Rect) {
    if waiting(frame, app, area) {
        return;
    }
    let Some(data) = &app.data else { return };
    let (o, totals) = (&data.overview, &data.overview.summary);
    let [top, commits] = Layout::vertical([Constraint::Length(16), Constraint::Min(3)]).areas(area);
    let [stats, rate] =
        Layout::horizontal([Constraint::Length(62), Constraint::Min(10)]).areas(top);
    let backlog: Vec<String> = data
        .backlog
        .iter()
        .map(|(policy, files)| format!("{policy} {files}"))
        .collect();
    let field = |name: &str, value: String| {
        Line::from(vec![
            Span::styled(format!("{name:<14}"), Style::default().dim()),
            Span::raw(value),
        ])
    };
    let lines = vec![
        field("table", totals.name.clone()),
        field("root", totals.root.clone()),
        field("version", totals.version.to_string()),
        field("rows", human_count(totals.rows)),
        field("files", human_count(totals.files)),
        field(
            "inline",
            if totals.inline.files == 0 {
                "-".into()
            } else {
                format!(
                    "{} rows in {} parts, {} (until merged)",
                    human_count(totals.inline.rows),
                    human_count(totals.inline.files),
                    human_bytes(totals.inline.bytes)
                )
            },
        ),
        field("bytes", human_bytes(totals.bytes)),
        field(
            "avg file",
            human_bytes(totals.bytes.checked_div(totals.files).unwrap_or(0)),
        ),
        field("partitions", totals.partitions.to_string()),
        field("tombstones", o.tombstones.to_string()),
        field("sort order", o.sort_order.clone()),
        field("partitions by", o.partitioning.clone()),
        field("format", o.format.clone()),
        field(
            "merge queue",
            if backlog.is_empty() {
                "-".into()
            } else {
                format!("{} files", backlog.join(", "))
            },
        ),
    ];
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Table ")),
        stats,
    );
    let rates: Vec<u64> = app.ingest_rates.iter().copied().collect();
    let latest = rates.last().copied().unwrap_or(0);
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!(" Ingest: {} rows/s ", human_count(latest))))
            .data(&rates)
            .style(Style::default().fg(Color::Green)),
        rate,
    );
    draw_commit_table(frame, app, commits, " Latest commits ", false);
}
