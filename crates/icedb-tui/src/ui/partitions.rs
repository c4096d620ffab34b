//! The partitions view and its files popup.

use super::*;

pub(super) fn draw_partitions(frame: &mut Frame, app: &App, area: Rect) {
    if waiting(frame, app, area) {
        return;
    }
    let rows = app.partitions();
    let arrow = if app.sort_descending { "▼" } else { "▲" };
    let header = Row::new(PartitionSort::ALL.iter().map(|s| {
        if *s == app.partition_sort {
            Cell::from(format!("{} {arrow}", s.title()))
        } else {
            Cell::from(s.title())
        }
    }))
    .style(header_style());
    let body: Vec<Row> = rows
        .iter()
        .map(|p| {
            Row::new(vec![
                Cell::from(p.partition.clone()),
                Cell::from(human_count(p.files)),
                Cell::from(human_count(p.rows)),
                Cell::from(human_bytes(p.bytes)),
                Cell::from(human_bytes(p.bytes.checked_div(p.files).unwrap_or(0))),
                Cell::from(age(app.now_ms, p.newest_write_ms)),
                Cell::from(if p.merge_backlog > 0 {
                    p.merge_backlog.to_string()
                } else {
                    "-".into()
                }),
            ])
        })
        .collect();
    let total = app.data.as_ref().map_or(0, |d| d.partitions.len());
    let title = if app.filter().is_empty() {
        format!(" Partitions ({total}) · s sort · Enter files ")
    } else {
        format!(
            " Partitions ({} of {total} matching \"{}\") ",
            rows.len(),
            app.filter()
        )
    };
    let table = Table::new(
        body,
        [
            Constraint::Min(20),
            Constraint::Length(8),
            Constraint::Length(12),
            Constraint::Length(11),
            Constraint::Length(11),
            Constraint::Length(14),
            Constraint::Length(10),
        ],
    )
    .header(header)
    .row_highlight_style(selected_style())
    .block(Block::bordered().title(title));
    let mut state = TableState::default().with_selected(Some(app.selected[1]));
    frame.render_stateful_widget(table, area, &mut state);
}

pub(super) fn draw_files(frame: &mut Frame, app: &App, popup: &crate::app::FilesPopup, body: Rect) {
    let area = centered(
        body,
        body.width.saturating_sub(4).max(20),
        body.height.saturating_sub(2).max(5),
    );
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(format!(" Files of {} · Esc closes ", popup.partition));
    let Some(files) = &popup.files else {
        frame.render_widget(Paragraph::new("loading…").block(block), area);
        return;
    };
    let rows: Vec<Row> = files
        .iter()
        .map(|f| {
            Row::new(vec![
                Cell::from({
                    let name = f.path.rsplit('/').next().unwrap_or(&f.path);
                    if f.inline {
                        format!("inline · {name}")
                    } else {
                        name.to_owned()
                    }
                }),
                Cell::from(human_count(f.rows)),
                Cell::from(human_bytes(f.bytes)),
                Cell::from(timestamp(f.created_ms)),
                Cell::from(age(app.now_ms, f.created_ms)),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Min(20),
            Constraint::Length(10),
            Constraint::Length(11),
            Constraint::Length(20),
            Constraint::Length(9),
        ],
    )
    .header(Row::new(["File", "Rows", "Bytes", "Written (UTC)", "Age"]).style(header_style()))
    .row_highlight_style(selected_style())
    .block(block);
    let mut state = TableState::default().with_selected(Some(popup.selected));
    frame.render_stateful_widget(table, area, &mut state);
}
