//! Drawing: a header with the views, the current view, a status line, and
//! popups (help, a partition's files, confirmations). Pure function of the
//! [`App`], so `TestBackend` snapshots cover every view.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState, Tabs, Wrap,
};

use crate::app::{App, Confirm, PartitionSort, View};

/// Below this the dashboard says so instead of drawing garbage.
const MIN_WIDTH: u16 = 40;
const MIN_HEIGHT: u16 = 8;

pub const KEYS: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("?", "this help (any key closes it)"),
    ("Tab, Shift-Tab", "next / previous view"),
    (
        "1-6",
        "Overview, Partitions, Merges, Queries, Commits, Plugins",
    ),
    ("j/k, ↓/↑", "move; PgDn/PgUp by 10; g/G first/last"),
    ("/", "filter the list (Enter keeps, Esc clears)"),
    ("s, S", "Partitions: sort by the next column; reverse"),
    (
        "Enter",
        "Partitions: the partition's files; Queries: edit SQL",
    ),
    ("m, M", "Merges: run a hot / cold merge round (asks first)"),
    (
        "i, e",
        "Queries: edit SQL; Enter runs it, ↑/↓ history, Esc leaves",
    ),
    ("h/l, ←/→", "Queries: scroll a wide result sideways"),
    ("f", "freeze / resume automatic refresh"),
    ("r", "refresh now"),
];

pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn human_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

fn age(now_ms: i64, ms: i64) -> String {
    if ms <= 0 {
        return "-".to_owned();
    }
    let seconds = (now_ms - ms).max(0) / 1000;
    match seconds {
        0..60 => format!("{seconds}s ago"),
        60..3600 => format!("{}m ago", seconds / 60),
        3600..86400 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86400),
    }
}

fn duration(ms: Option<f64>) -> String {
    match ms {
        None => "running".to_owned(),
        Some(ms) if ms < 1000.0 => format!("{ms:.0} ms"),
        Some(ms) => format!("{:.1} s", ms / 1000.0),
    }
}

fn selected_style() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

fn header_style() -> Style {
    Style::default()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD)
}

pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        frame.render_widget(
            Paragraph::new(format!(
                "icedb-tui needs at least {MIN_WIDTH}x{MIN_HEIGHT} (this is {}x{}); q quits",
                area.width, area.height
            ))
            .wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let [header, body, status] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, app, header);
    match app.view {
        View::Overview => draw_overview(frame, app, body),
        View::Partitions => draw_partitions(frame, app, body),
        View::Merges => draw_merges(frame, app, body),
        View::Queries => draw_queries(frame, app, body),
        View::Commits => draw_commits(frame, app, body),
        View::Plugins => draw_plugins(frame, app, body),
    }
    draw_status(frame, app, status);
    if let Some(files) = &app.files {
        draw_files(frame, app, files, body);
    }
    if let Some(Confirm::Merge(policy)) = &app.confirm {
        let popup = centered(area, 50, 5);
        frame.render_widget(Clear, popup);
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(format!("Run one {policy} merge round now?")),
                Line::from(""),
                Line::from("y / Enter: merge    any other key: cancel".dim()),
            ])
            .block(Block::bordered().title(" Merge ")),
            popup,
        );
    }
    if app.show_help {
        draw_help(frame, area);
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect) {
    let [tabs, info] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let titles: Vec<Line> = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| Line::from(format!("{} {}", i + 1, v.title())))
        .collect();
    let selected = View::ALL.iter().position(|v| *v == app.view).unwrap_or(0);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(Style::default().fg(Color::Black).bg(Color::Cyan))
            .divider("│"),
        tabs,
    );
    let mut spans = vec![
        Span::styled(" icedb ", Style::default().bold()),
        Span::raw(&app.source_label),
    ];
    if let Some(data) = &app.data {
        spans.push(Span::raw(format!("  ·  version {}", data.overview.version)));
    }
    if app.frozen {
        spans.push(Span::styled(
            "  FROZEN",
            Style::default().fg(Color::Magenta).bold(),
        ));
    }
    if app.refreshing {
        spans.push(Span::raw("  ↻").dim());
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), info);
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let line = match &app.status {
        Some((true, error)) => {
            Line::from(Span::styled(error.clone(), Style::default().fg(Color::Red)))
        }
        Some((false, message)) => Line::from(message.clone()),
        None if app.filter_editing => Line::from(format!(
            "filter: {}▏ (Enter keeps, Esc clears)",
            app.filter()
        )),
        None => Line::from(
            "? help  q quit  Tab/1-6 views  j/k move  / filter  r refresh  f freeze".dim(),
        ),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn waiting(frame: &mut Frame, app: &App, area: Rect) -> bool {
    if app.data.is_some() {
        return false;
    }
    let text = match &app.status {
        Some((true, error)) => format!("could not load the table: {error}"),
        _ => "loading…".to_owned(),
    };
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .block(Block::bordered()),
        area,
    );
    true
}

fn draw_overview(frame: &mut Frame, app: &App, area: Rect) {
    if waiting(frame, app, area) {
        return;
    }
    let Some(data) = &app.data else { return };
    let o = &data.overview;
    let [top, commits] = Layout::vertical([Constraint::Length(15), Constraint::Min(3)]).areas(area);
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
        field("table", o.table.clone()),
        field("root", o.root.clone()),
        field("version", o.version.to_string()),
        field("rows", human_count(o.rows)),
        field("files", human_count(o.files)),
        field("bytes", human_bytes(o.bytes)),
        field(
            "avg file",
            human_bytes(o.bytes.checked_div(o.files).unwrap_or(0)),
        ),
        field("partitions", o.partitions.to_string()),
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

fn draw_partitions(frame: &mut Frame, app: &App, area: Rect) {
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

fn draw_files(frame: &mut Frame, app: &App, popup: &crate::app::FilesPopup, body: Rect) {
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
                Cell::from(f.path.rsplit('/').next().unwrap_or(&f.path).to_owned()),
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

fn draw_merges(frame: &mut Frame, app: &App, area: Rect) {
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
            let status_style = match m.status.as_str() {
                "error" => Style::default().fg(Color::Red),
                "conflict" => Style::default().fg(Color::Yellow),
                "running" => Style::default().fg(Color::Cyan),
                _ => Style::default(),
            };
            let files = if m.status == "running" {
                "-".to_owned()
            } else {
                format!("{} → {}", m.figure("files_in"), m.figure("files_out"))
            };
            let bytes = if m.status == "running" {
                "-".to_owned()
            } else {
                format!(
                    "{} → {}",
                    human_bytes(m.figure("bytes_in")),
                    human_bytes(m.figure("bytes_out"))
                )
            };
            Row::new(vec![
                Cell::from(m.status.clone()).style(status_style),
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

fn draw_queries(frame: &mut Frame, app: &App, area: Rect) {
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
        .filter(|a| a.kind == "query")
        .take(5)
        .map(|a| {
            Row::new(vec![
                Cell::from(timestamp(a.started_ms)),
                Cell::from(duration(a.duration_ms)),
                Cell::from(a.status.clone()),
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

fn draw_commit_table(frame: &mut Frame, app: &App, area: Rect, title: &str, selectable: bool) {
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

fn draw_commits(frame: &mut Frame, app: &App, area: Rect) {
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

fn draw_plugins(frame: &mut Frame, app: &App, area: Rect) {
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

fn draw_help(frame: &mut Frame, area: Rect) {
    let height = KEYS.len() as u16 + 2;
    let popup = centered(area, 78, height);
    frame.render_widget(Clear, popup);
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {key:<15}"),
                    Style::default().fg(Color::Cyan).bold(),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Keys ")),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Action;
    use crate::model::{
        ActivityRow, CommitSummary, Dashboard, FileRow, Overview, PartitionRow, PluginRow,
        QueryOutcome,
    };
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// 2026-11-29T12:00:00Z
    const NOW: i64 = 1_795_953_600_000;

    fn fixture() -> Dashboard {
        let partitions = (1..=5)
            .map(|d| PartitionRow {
                partition: format!("y=2026/m=11/d={d:02}"),
                files: 6 - d as u64,
                rows: 10_000 * d as u64,
                bytes: 300_000 * d as u64,
                newest_write_ms: NOW - (6 - d as i64) * 3_600_000,
                merge_backlog: if d % 2 == 0 { 6 - d as usize } else { 0 },
            })
            .collect::<Vec<_>>();
        let commits = (1..=4)
            .rev()
            .map(|v| CommitSummary {
                version: v,
                id: format!("id-{v}"),
                timestamp_ms: NOW - (5 - v as i64) * 60_000,
                writer: "0193a1b2-host-a".into(),
                operation: if v == 4 {
                    icedb::Operation::Merge
                } else {
                    icedb::Operation::Insert
                },
                files_added: if v == 4 { 1 } else { 5 },
                files_removed: if v == 4 { 3 } else { 0 },
                files_purged: 0,
                rows_added: if v == 4 { 30_000 } else { 50_000 },
                bytes_added: 1_500_000,
            })
            .collect();
        let activity = vec![
            ActivityRow {
                kind: "merge".into(),
                table: "events".into(),
                label: "hot policy".into(),
                started_ms: NOW - 5_000,
                duration_ms: None,
                status: "running".into(),
                ..Default::default()
            },
            ActivityRow {
                kind: "merge".into(),
                table: "events".into(),
                label: "cold policy".into(),
                started_ms: NOW - 65_000,
                duration_ms: Some(812.0),
                status: "conflict".into(),
                error: None,
                detail: serde_json::json!({"jobs": 2, "files_in": 3, "files_out": 1, "bytes_in": 900_000, "bytes_out": 850_000, "conflicts": 1}),
            },
            ActivityRow {
                kind: "query".into(),
                table: "events".into(),
                label: "SELECT count(*) FROM events".into(),
                started_ms: NOW - 30_000,
                duration_ms: Some(12.0),
                status: "ok".into(),
                ..Default::default()
            },
        ];
        Dashboard {
            overview: Overview {
                table: "events".into(),
                root: "s3://lake/events".into(),
                version: 4,
                files: 15,
                rows: 150_000,
                bytes: 4_500_000,
                partitions: 5,
                tombstones: 3,
                ..Overview::default()
            }
            .with_definition(&serde_json::json!({
                "sort_order": ["event", "ts"],
                "partitioning": {"kind": "time", "field": "ts", "granularity": "day"},
                "format": {"kind": "plugin", "name": "flatten-json.wasm", "sha256": "3f1c9a0b7d2e4f6a8b0c"},
            })),
            partitions,
            commits,
            activity,
            backlog: vec![("hot".into(), 4), ("cold".into(), 6)],
            plugins: vec![
                PluginRow {
                    role: "format-row".into(),
                    name: "flatten-json".into(),
                    calls: 120,
                    rows: 150_000,
                    errors: 0,
                    traps: 0,
                    busy_ms: 250.0,
                },
                PluginRow {
                    role: "partition-strategy".into(),
                    name: "partition-by-day".into(),
                    calls: 120,
                    rows: 150_000,
                    errors: 2,
                    traps: 1,
                    busy_ms: 60.0,
                },
            ],
        }
    }

    fn app() -> App {
        let mut app = App::new("host http://127.0.0.1:8080 · table events".into());
        let mut first = fixture();
        first.overview.rows = 100_000;
        app.on_dashboard(Ok(first), NOW - 10_000);
        app.on_dashboard(Ok(fixture()), NOW);
        app
    }

    fn key(app: &mut App, code: KeyCode) -> Action {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn render(app: &App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, app)).unwrap();
        terminal.backend().to_string()
    }

    #[test]
    fn overview() {
        let app = app();
        assert_eq!(app.ingest_rates.back(), Some(&5_000), "50 000 rows in 10 s");
        insta::assert_snapshot!(render(&app, 100, 30));
    }

    #[test]
    fn partitions_sorted_and_filtered() {
        let mut app = app();
        key(&mut app, KeyCode::Char('2'));
        key(&mut app, KeyCode::Char('s')); // by files
        key(&mut app, KeyCode::Char('j'));
        insta::assert_snapshot!("partitions_by_files", render(&app, 100, 14));
        key(&mut app, KeyCode::Char('/'));
        for c in "d=0".chars().chain("4".chars()) {
            key(&mut app, KeyCode::Char(c));
        }
        key(&mut app, KeyCode::Enter);
        assert_eq!(app.partitions().len(), 1);
        insta::assert_snapshot!("partitions_filtered", render(&app, 100, 10));
        assert_eq!(
            key(&mut app, KeyCode::Enter),
            Action::LoadFiles("y=2026/m=11/d=04".into())
        );
        app.on_files(
            "y=2026/m=11/d=04".into(),
            Ok(vec![FileRow {
                path: "data/y=2026/m=11/d=04/0193-a.parquet".into(),
                bytes: 600_000,
                rows: 20_000,
                created_ms: NOW - 7_200_000,
            }]),
        );
        insta::assert_snapshot!("partition_files", render(&app, 100, 12));
    }

    #[test]
    fn merges_with_confirmation() {
        let mut app = app();
        key(&mut app, KeyCode::Char('3'));
        insta::assert_snapshot!("merges", render(&app, 120, 12));
        key(&mut app, KeyCode::Char('m'));
        insta::assert_snapshot!("merge_confirmation", render(&app, 120, 12));
    }

    #[test]
    fn queries() {
        let mut app = app();
        key(&mut app, KeyCode::Char('4'));
        key(&mut app, KeyCode::Char('i'));
        for c in "SELECT d, count(*) AS n FROM events GROUP BY d".chars() {
            key(&mut app, KeyCode::Char(c));
        }
        let action = key(&mut app, KeyCode::Enter);
        assert!(matches!(action, Action::RunQuery(_)));
        app.on_query(Ok(QueryOutcome {
            sql: "SELECT d, count(*) AS n FROM events GROUP BY d".into(),
            columns: vec!["d".into(), "n".into()],
            rows: vec![
                vec!["01".into(), "10000".into()],
                vec!["02".into(), "20000".into()],
            ],
            elapsed_ms: 12.5,
            version: 4,
            files_scanned: 15,
            files_pruned: 0,
        }));
        insta::assert_snapshot!(render(&app, 100, 20));
        key(&mut app, KeyCode::Char('l'));
        key(&mut app, KeyCode::Char('l'));
        assert_eq!(app.query.first_column, 1, "stops at the last column");
        insta::assert_snapshot!("queries_scrolled_right", render(&app, 100, 20));
    }

    /// The cells come from a real Arrow result as DuckDB returns it
    /// (timestamps labelled `Etc/UTC`, nulls, lists), through the same
    /// rendering as the CLI and the API.
    #[test]
    fn query_results_of_every_type() {
        use std::sync::Arc;

        use arrow::array::{
            ArrayRef, Int64Array, ListArray, RecordBatch, TimestampMicrosecondArray,
        };
        use arrow::datatypes::Int64Type;

        let ts: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![Some(1_792_065_600_000_000), None])
                .with_timezone("Etc/UTC"),
        );
        let n: ArrayRef = Arc::new(Int64Array::from(vec![Some(42), None]));
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
        ]));
        let batch = RecordBatch::try_from_iter([("ts", ts), ("n", n), ("list", list)]).unwrap();
        let mut app = app();
        key(&mut app, KeyCode::Char('4'));
        app.on_query(Ok(QueryOutcome {
            sql: "SELECT ts, n, list FROM events".into(),
            columns: vec!["ts".into(), "n".into(), "list".into()],
            rows: icedb::output::text_cells(&[batch], "NULL").unwrap(),
            elapsed_ms: 3.0,
            version: 2,
            files_scanned: 1,
            files_pruned: 0,
        }));
        let screen = render(&app, 100, 22);
        assert!(screen.contains("2026-10-15T12:00:00Z"), "{screen}");
        insta::assert_snapshot!("query_types", screen);
    }

    #[test]
    fn commits_and_plugins() {
        let mut app = app();
        key(&mut app, KeyCode::Char('5'));
        insta::assert_snapshot!("commits", render(&app, 100, 10));
        key(&mut app, KeyCode::Char('6'));
        insta::assert_snapshot!("plugins", render(&app, 100, 8));
    }

    #[test]
    fn help_tiny_terminal_and_errors() {
        let mut app = app();
        key(&mut app, KeyCode::Char('?'));
        insta::assert_snapshot!("help", render(&app, 100, 20));
        key(&mut app, KeyCode::Char('x'));
        assert!(!app.show_help);
        insta::assert_snapshot!("tiny", render(&app, 30, 5));
        app.on_dashboard(
            Err("reaching http://127.0.0.1:8080: connection refused".into()),
            NOW,
        );
        insta::assert_snapshot!("refresh_error", render(&app, 100, 8));
    }
}
