//! The commits view: the log's newest commits.

use super::*;

pub(super) fn draw_commit_table(
    frame: &mut Frame,
    app: &App,
    area: Rect,
    title: &str,
    selectable: bool,
) {
    let Some(data) = &app.data else { return };
    let filter = if selectable {
        app.filter().to_lowercase()
    } else {
        String::new()
    };
    let rows: Vec<Row> = data
        .commits
        .iter()
        .filter(|c| {
            c.operation.name().contains(&filter) || c.writer.to_lowercase().contains(&filter)
        })
        .map(|c| {
            Row::new(vec![
                Cell::from(c.version.to_string()),
                Cell::from(timestamp(c.timestamp_ms)),
                Cell::from(c.operation.name()),
                Cell::from(format!("+{}", c.files_added)),
                Cell::from(format!("-{}", c.files_removed + c.files_purged)),
                Cell::from(human_count(c.rows_added)),
                Cell::from(human_bytes(c.bytes_added)),
                Cell::from(c.writer.chars().take(13).collect::<String>()),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(20),
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(12),
            Constraint::Length(11),
            Constraint::Min(13),
        ],
    )
    .header(
        Row::new([
            "Version",
            "Time (UTC)",
            "Operation",
            "Added",
            "Removed",
            "Rows added",
            "Bytes added",
            "Writer",
        ])
        .style(header_style()),
    )
    .row_highlight_style(if selectable {
        selected_style()
    } else {
        Style::default()
    })
    .block(Block::bordered().title(title.to_owned()));
    let mut state = TableState::default().with_selected(selectable.then_some(app.selected[4]));
    frame.render_stateful_widget(table, area, &mut state);
}

pub(super) fn draw_commits(frame: &mut Frame, app: &App, area: Rect) {
    if waiting(frame, app, area) {
        return;
    }
    let title = if app.filter().is_empty() {
        " Commits, newest first (/ filters by operation or writer) ".to_owned()
    } else {
        format!(" Commits matching \"{}\" ", app.filter())
    };
    draw_commit_table(frame, app, area, &title, true);
}
