//! Drawing: a header with the views, the current view, a status line, and
//! popups (help, a partition's files, confirmations). Pure function of the
//! [`App`], so `TestBackend` snapshots cover every view. One file per view
//! (ratatui's demo2 layout), styles in `theme`, number and time text in
//! `format`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState, Tabs, Wrap,
};

use crate::app::{App, Confirm, PartitionSort, View};

mod commits;
mod format;
mod help;
mod merges;
mod overview;
mod partitions;
mod plugins;
mod queries;
#[cfg(test)]
mod tests;
mod theme;

use format::{age, duration, timestamp};
pub use format::{human_bytes, human_count};
use theme::{header_style, selected_style};

use commits::{draw_commit_table, draw_commits};
use help::draw_help;
use merges::draw_merges;
use overview::draw_overview;
use partitions::{draw_files, draw_partitions};
use plugins::draw_plugins;
use queries::draw_queries;

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
        spans.push(Span::raw(format!(
            "  ·  version {}",
            data.overview.summary.version
        )));
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
