//! The queries view: the SQL editor, the result and recent queries.

use super::*;

pub(super) fn draw_queries(frame: &mut Frame, app: &App, area: Rect) {
    let query = &app.query;
    let [input, info, results, recent] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(7),
    ])
    .areas(area);
    let input_block = Block::bordered().title(if query.editing {
        " SQL (Enter runs · ↑/↓ history · Esc stops editing) "
    } else {
        " SQL (Enter or i to edit) "
    });
    let input_block = if query.editing {
        input_block.border_style(Style::default().fg(Color::Cyan))
    } else {
        input_block
    };
    frame.render_widget(
        Paragraph::new(query.input.as_str()).block(input_block),
        input,
    );
    if query.editing {
        let before: String = query.input.chars().take(query.cursor).collect();
        let x = input.x
            + 1
            + (ratatui::text::Line::from(before).width() as u16).min(input.width.saturating_sub(3));
        frame.set_cursor_position((x, input.y + 1));
    }
    let info_line = if let Some(sql) = &query.running {
        Line::from(format!("running: {sql}").cyan())
    } else if let Some(error) = &query.error {
        Line::from(Span::styled(error.clone(), Style::default().fg(Color::Red)))
    } else if let Some(result) = &query.result {
        Line::from(format!(
            "{} rows in {:.1} ms · version {} · {} files scanned, {} pruned",
            human_count(result.rows.len() as u64),
            result.elapsed_ms,
            result.version,
            result.files_scanned,
            result.files_pruned
        ))
    } else {
        Line::from(
            "the table is a view named after it; Hive partition columns (y, m, d, ...) are columns"
                .dim(),
        )
    };
    frame.render_widget(Paragraph::new(info_line), info);
    match &query.result {
        Some(result) => {
            let first = query
                .first_column
                .min(result.columns.len().saturating_sub(1));
            let widths: Vec<Constraint> = result
                .columns
                .iter()
                .enumerate()
                .skip(first)
                .map(|(i, name)| {
                    let widest = result
                        .rows
                        .iter()
                        .take(200)
                        .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                        .max()
                        .unwrap_or(0)
                        .max(name.chars().count());
                    Constraint::Length(widest.min(40) as u16)
                })
                .collect();
            let rows: Vec<Row> = result
                .rows
                .iter()
                .map(|r| Row::new(r.iter().skip(first).cloned()))
                .collect();
            let title = if first > 0 {
                format!(
                    " Result (j/k scroll · h/l columns · from column {} of {}) ",
                    first + 1,
                    result.columns.len()
                )
            } else {
                " Result (j/k scroll · h/l columns) ".to_owned()
            };
            let table = Table::new(rows, widths)
                .header(Row::new(result.columns.iter().skip(first).cloned()).style(header_style()))
                .row_highlight_style(selected_style())
                .block(Block::bordered().title(title));
            let mut state = TableState::default().with_selected(Some(app.selected[3]));
            frame.render_stateful_widget(table, results, &mut state);
        }
        None => frame.render_widget(Block::bordered().title(" Result "), results),
    }
    let queries: Vec<Row> = app
        .data
        .iter()
        .flat_map(|d| d.activity.iter())
        .filter(|a| a.kind == crate::model::ActivityKind::Query)
        .take(5)
        .map(|a| {
            Row::new(vec![
                Cell::from(timestamp(a.started_ms)),
                Cell::from(duration(a.duration_ms)),
                Cell::from(a.status.name()),
                Cell::from(a.label.replace('\n', " ")),
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(
            queries,
            [
                Constraint::Length(20),
                Constraint::Length(9),
                Constraint::Length(8),
                Constraint::Min(10),
            ],
        )
        .block(Block::bordered().title(" Recent queries ")),
        recent,
    );
}
