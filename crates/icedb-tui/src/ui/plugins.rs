//! The plugins view: each plugin's counters.

use super::*;

pub(super) fn draw_plugins(frame: &mut Frame, app: &App, area: Rect) {
    if waiting(frame, app, area) {
        return;
    }
    let Some(data) = &app.data else { return };
    if data.plugins.is_empty() {
        frame.render_widget(
            Paragraph::new(
                "No WebAssembly plugins: this table uses the built-in formatter and partitioning.",
            )
            .block(Block::bordered().title(" Plugins ")),
            area,
        );
        return;
    }
    let filter = app.filter().to_lowercase();
    let rows: Vec<Row> = data
        .plugins
        .iter()
        .filter(|p| p.name.to_lowercase().contains(&filter) || p.role.contains(&filter))
        .map(|p| {
            let rate = if p.busy_ms > 0.0 {
                p.rows as f64 / (p.busy_ms / 1e3)
            } else {
                0.0
            };
            let trouble = if p.errors + p.traps > 0 {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            };
            Row::new(vec![
                Cell::from(p.role.clone()),
                Cell::from(p.name.clone()),
                Cell::from(human_count(p.calls)),
                Cell::from(human_count(p.rows)),
                Cell::from(human_count(rate as u64)),
                Cell::from(p.errors.to_string()).style(trouble),
                Cell::from(p.traps.to_string()).style(trouble),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(19),
            Constraint::Min(16),
            Constraint::Length(10),
            Constraint::Length(12),
            Constraint::Length(12),
            Constraint::Length(7),
            Constraint::Length(6),
        ],
    )
    .header(
        Row::new([
            "Role",
            "Plugin",
            "Calls",
            "Rows",
            "Rows/s busy",
            "Errors",
            "Traps",
        ])
        .style(header_style()),
    )
    .row_highlight_style(selected_style())
    .block(Block::bordered().title(" Plugins (counters since the host started) "));
    let mut state = TableState::default().with_selected(Some(app.selected[5]));
    frame.render_stateful_widget(table, area, &mut state);
}
