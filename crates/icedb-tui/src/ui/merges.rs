//! The merges view: running and recent merge rounds.

use super::*;
use crate::model::ActivityStatus;

pub(super) fn draw_merges(frame: &mut Frame, app: &App, area: Rect) {
    if waiting(frame, app, area) {
        return;
    }
    let Some(data) = &app.data else { return };
    let [backlog, list] = Layout::vertical([Constraint::Length(3), Constraint::Min(3)]).areas(area);
    let mut spans = vec![Span::styled("waiting to merge: ", Style::default().dim())];
    for (policy, files) in &data.backlog {
        spans.push(Span::raw(format!("{policy} policy {files} files   ")));
    }
    spans.push(Span::styled(
        "m hot merge · M cold merge",
        Style::default().dim(),
    ));
    frame.render_widget(
        Paragraph::new(Line::from(spans)).block(Block::bordered().title(" Backlog ")),
        backlog,
    );
    let merges = app.merges();
    let rows: Vec<Row> = merges
        .iter()
        .map(|m| {
            let status_style = match m.status.name() {
                "error" => Style::default().fg(Color::Red),
                "conflict" => Style::default().fg(Color::Yellow),
                "running" => Style::default().fg(Color::Cyan),
                _ => Style::default(),
            };
            let files = if m.status == ActivityStatus::Running {
                "-".to_owned()
            } else {
                format!("{} → {}", m.figure("files_in"), m.figure("files_out"))
            };
            let bytes = if m.status == ActivityStatus::Running {
                "-".to_owned()
            } else {
                format!(
                    "{} → {}",
                    human_bytes(m.figure("bytes_in")),
                    human_bytes(m.figure("bytes_out"))
                )
            };
            Row::new(vec![
                Cell::from(m.status.name()).style(status_style),
                Cell::from(timestamp(m.started_ms)),
                Cell::from(m.label.clone()),
                Cell::from(m.figure("jobs").to_string()),
                Cell::from(files),
                Cell::from(bytes),
                Cell::from(duration(m.duration_ms)),
                Cell::from(m.figure("conflicts").to_string()),
                Cell::from(m.error.clone().unwrap_or_default()),
            ])
        })
        .collect();
    let title = if app.filter().is_empty() {
        format!(" Merges: running and recent ({}) ", merges.len())
    } else {
        format!(" Merges matching \"{}\" ({}) ", app.filter(), merges.len())
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(9),
            Constraint::Length(20),
            Constraint::Length(12),
            Constraint::Length(5),
            Constraint::Length(11),
            Constraint::Length(23),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new([
            "Status",
            "Started (UTC)",
            "Policy",
            "Jobs",
            "Files",
            "Bytes",
            "Took",
            "Conflicts",
            "Error",
        ])
        .style(header_style()),
    )
    .row_highlight_style(selected_style())
    .block(Block::bordered().title(title));
    let mut state = TableState::default().with_selected(Some(app.selected[2]));
    frame.render_stateful_widget(table, list, &mut state);
}
