//! The dashboard's state and what each key does. No I/O here: keys become
//! [`Action`]s the event loop runs in tasks, and their results come back
//! through the `on_*` methods, so every state is reachable in tests.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::model::{Dashboard, FileRow, PartitionRow, QueryOutcome};

/// Samples kept for the ingest-rate sparkline.
const RATE_SAMPLES: usize = 120;
const QUERY_HISTORY: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Overview,
    Partitions,
    Merges,
    Queries,
    Commits,
    Plugins,
}

impl View {
    pub const ALL: [View; 6] = [
        View::Overview,
        View::Partitions,
        View::Merges,
        View::Queries,
        View::Commits,
        View::Plugins,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Partitions => "Partitions",
            View::Merges => "Merges",
            View::Queries => "Queries",
            View::Commits => "Commits",
            View::Plugins => "Plugins",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// Columns the Partitions view sorts by (`s` cycles, `S` reverses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionSort {
    Partition,
    Files,
    Rows,
    Bytes,
    AverageFile,
    NewestWrite,
    Backlog,
}

impl PartitionSort {
    pub const ALL: [PartitionSort; 7] = [
        PartitionSort::Partition,
        PartitionSort::Files,
        PartitionSort::Rows,
        PartitionSort::Bytes,
        PartitionSort::AverageFile,
        PartitionSort::NewestWrite,
        PartitionSort::Backlog,
    ];

    pub fn title(self) -> &'static str {
        match self {
            PartitionSort::Partition => "Partition",
            PartitionSort::Files => "Files",
            PartitionSort::Rows => "Rows",
            PartitionSort::Bytes => "Bytes",
            PartitionSort::AverageFile => "Avg file",
            PartitionSort::NewestWrite => "Newest write",
            PartitionSort::Backlog => "Backlog",
        }
    }
}

/// Work the event loop should start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    Quit,
    Refresh,
    LoadFiles(String),
    RunQuery(String),
    Merge(&'static str),
}

/// A popup waiting for y/n.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    Merge(&'static str),
}

#[derive(Debug, Clone, Default)]
pub struct FilesPopup {
    pub partition: String,
    /// `None` while loading.
    pub files: Option<Vec<FileRow>>,
    pub selected: usize,
}

#[derive(Debug, Clone, Default)]
pub struct QueryState {
    pub input: String,
    /// Characters (not bytes) before the cursor.
    pub cursor: usize,
    pub editing: bool,
    pub history: Vec<String>,
    /// Position while browsing history with Up/Down.
    pub history_position: Option<usize>,
    pub running: Option<String>,
    pub result: Option<QueryOutcome>,
    pub error: Option<String>,
    /// First result row shown.
    pub scroll: usize,
    /// First result column shown (h/l scroll wide results sideways).
    pub first_column: usize,
}

pub struct App {
    pub view: View,
    pub source_label: String,
    pub data: Option<Dashboard>,
    /// The wall clock of the last refresh, for ages ("3m ago").
    pub now_ms: i64,
    /// One line at the bottom: the last error, or what just happened.
    pub status: Option<(bool, String)>,
    pub frozen: bool,
    pub show_help: bool,
    pub refreshing: bool,
    /// Rows/s between successive refreshes.
    pub ingest_rates: VecDeque<u64>,
    last_rows: Option<(i64, u64)>,
    /// Per view: selected row and filter text.
    pub selected: [usize; 6],
    pub filters: [String; 6],
    pub filter_editing: bool,
    pub partition_sort: PartitionSort,
    pub sort_descending: bool,
    pub files: Option<FilesPopup>,
    pub confirm: Option<Confirm>,
    pub query: QueryState,
}

impl App {
    pub fn new(source_label: String) -> App {
        App {
            view: View::Overview,
            source_label,
            data: None,
            now_ms: 0,
            status: None,
            frozen: false,
            show_help: false,
            refreshing: false,
            ingest_rates: VecDeque::new(),
            last_rows: None,
            selected: [0; 6],
            filters: Default::default(),
            filter_editing: false,
            partition_sort: PartitionSort::Partition,
            sort_descending: true,
            files: None,
            confirm: None,
            query: QueryState::default(),
        }
    }

    pub fn filter(&self) -> &str {
        &self.filters[self.view.index()]
    }

    /// The Partitions view's rows, filtered and sorted.
    pub fn partitions(&self) -> Vec<&PartitionRow> {
        let Some(data) = &self.data else {
            return Vec::new();
        };
        let filter = self.filters[View::Partitions.index()].to_lowercase();
        let mut rows: Vec<&PartitionRow> = data
            .partitions
            .iter()
            .filter(|p| p.partition.to_lowercase().contains(&filter))
            .collect();
        let average = |p: &PartitionRow| p.bytes.checked_div(p.files).unwrap_or(0);
        rows.sort_by(|a, b| {
            let order = match self.partition_sort {
                PartitionSort::Partition => a.partition.cmp(&b.partition),
                PartitionSort::Files => a.files.cmp(&b.files),
                PartitionSort::Rows => a.rows.cmp(&b.rows),
                PartitionSort::Bytes => a.bytes.cmp(&b.bytes),
                PartitionSort::AverageFile => average(a).cmp(&average(b)),
                PartitionSort::NewestWrite => a.newest_write_ms.cmp(&b.newest_write_ms),
                PartitionSort::Backlog => a.merge_backlog.cmp(&b.merge_backlog),
            }
            .then_with(|| a.partition.cmp(&b.partition));
            if self.sort_descending {
                order.reverse()
            } else {
                order
            }
        });
        rows
    }

    /// How many rows the current view lists (for moving the selection).
    fn row_count(&self) -> usize {
        let Some(data) = &self.data else { return 0 };
        let filter = self.filter().to_lowercase();
        match self.view {
            View::Overview => 0,
            View::Partitions => self.partitions().len(),
            View::Merges => self.merges().len(),
            View::Queries => self.query.result.as_ref().map_or(0, |r| r.rows.len()),
            View::Commits => data
                .commits
                .iter()
                .filter(|c| {
                    c.operation.name().contains(&filter)
                        || c.writer.to_lowercase().contains(&filter)
                })
                .count(),
            View::Plugins => data.plugins.len(),
        }
    }

    /// Merge entries of the activity log, filtered.
    pub fn merges(&self) -> Vec<&crate::model::ActivityRow> {
        let filter = self.filters[View::Merges.index()].to_lowercase();
        self.data
            .iter()
            .flat_map(|d| d.activity.iter())
            .filter(|a| a.kind == crate::model::ActivityKind::Merge)
            .filter(|a| {
                a.label.to_lowercase().contains(&filter) || a.status.name().contains(&filter)
            })
            .collect()
    }

    pub fn on_dashboard(&mut self, dashboard: Result<Dashboard, String>, now_ms: i64) {
        self.refreshing = false;
        match dashboard {
            Ok(dashboard) => {
                if let Some((then_ms, rows)) = self.last_rows
                    && now_ms > then_ms
                {
                    let added = dashboard.overview.summary.rows.saturating_sub(rows);
                    let rate = added as f64 / ((now_ms - then_ms) as f64 / 1e3);
                    if self.ingest_rates.len() == RATE_SAMPLES {
                        self.ingest_rates.pop_front();
                    }
                    self.ingest_rates.push_back(rate as u64);
                }
                self.last_rows = Some((now_ms, dashboard.overview.summary.rows));
                self.now_ms = now_ms;
                self.data = Some(dashboard);
                if matches!(self.status, Some((true, _))) {
                    self.status = None;
                }
                self.clamp_selection();
            }
            Err(error) => self.status = Some((true, format!("refresh failed: {error}"))),
        }
    }

    pub fn on_files(&mut self, partition: String, files: Result<Vec<FileRow>, String>) {
        match files {
            Ok(files) => {
                if let Some(popup) = &mut self.files
                    && popup.partition == partition
                {
                    popup.files = Some(files);
                }
            }
            Err(error) => {
                self.files = None;
                self.status = Some((true, format!("files of {partition}: {error}")));
            }
        }
    }

    pub fn on_query(&mut self, outcome: Result<QueryOutcome, String>) {
        self.query.running = None;
        self.query.scroll = 0;
        self.query.first_column = 0;
        self.selected[View::Queries.index()] = 0;
        match outcome {
            Ok(outcome) => {
                self.query.error = None;
                self.query.result = Some(outcome);
            }
            Err(error) => self.query.error = Some(error),
        }
    }

    pub fn on_merge(&mut self, outcome: Result<String, String>) {
        self.status = Some(match outcome {
            Ok(summary) => (false, summary),
            Err(error) => (true, format!("merge failed: {error}")),
        });
    }

    fn clamp_selection(&mut self) {
        let count = self.row_count();
        let selected = &mut self.selected[self.view.index()];
        *selected = (*selected).min(count.saturating_sub(1));
    }

    fn switch(&mut self, view: View) {
        self.view = view;
        self.filter_editing = false;
        self.clamp_selection();
    }

    fn move_selection(&mut self, delta: isize) {
        let count = self.row_count();
        let selected = &mut self.selected[self.view.index()];
        let moved = (*selected as isize + delta).clamp(0, count.saturating_sub(1) as isize);
        *selected = moved as usize;
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if self.show_help {
            // Any key closes the help.
            self.show_help = false;
            return Action::None;
        }
        if let Some(Confirm::Merge(policy)) = self.confirm.clone() {
            self.confirm = None;
            return match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    self.status = Some((false, format!("{policy} merge running…")));
                    Action::Merge(policy)
                }
                _ => Action::None,
            };
        }
        if self.files.is_some() {
            return self.on_files_key(key);
        }
        if self.filter_editing {
            let filter = &mut self.filters[self.view.index()];
            match key.code {
                KeyCode::Esc => {
                    filter.clear();
                    self.filter_editing = false;
                }
                KeyCode::Enter => self.filter_editing = false,
                KeyCode::Backspace => {
                    filter.pop();
                }
                KeyCode::Char(c) => filter.push(c),
                _ => {}
            }
            self.clamp_selection();
            return Action::None;
        }
        if self.view == View::Queries && self.query.editing {
            return self.on_query_key(key);
        }
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.show_help = true,
            KeyCode::Tab => self.switch(View::ALL[(self.view.index() + 1) % View::ALL.len()]),
            KeyCode::BackTab => {
                self.switch(View::ALL[(self.view.index() + View::ALL.len() - 1) % View::ALL.len()])
            }
            KeyCode::Char(c @ '1'..='6') => self.switch(View::ALL[c as usize - '1' as usize]),
            KeyCode::Char('j') | KeyCode::Down => self.move_selection(1),
            KeyCode::Char('k') | KeyCode::Up => self.move_selection(-1),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::Char('g') | KeyCode::Home => self.move_selection(isize::MIN / 2),
            KeyCode::Char('G') | KeyCode::End => self.move_selection(isize::MAX / 2),
            KeyCode::Char('f') => {
                self.frozen = !self.frozen;
                self.status = Some((
                    false,
                    if self.frozen {
                        "frozen: automatic refresh paused (f resumes, r refreshes once)".to_owned()
                    } else {
                        "refreshing again".to_owned()
                    },
                ));
            }
            KeyCode::Char('r') => return Action::Refresh,
            KeyCode::Char('/')
                if matches!(
                    self.view,
                    View::Partitions | View::Merges | View::Commits | View::Plugins
                ) =>
            {
                self.filter_editing = true;
            }
            KeyCode::Char('s') if self.view == View::Partitions => {
                let next = PartitionSort::ALL
                    .iter()
                    .position(|s| *s == self.partition_sort)
                    .map_or(0, |i| (i + 1) % PartitionSort::ALL.len());
                self.partition_sort = PartitionSort::ALL[next];
            }
            KeyCode::Char('S') if self.view == View::Partitions => {
                self.sort_descending = !self.sort_descending;
            }
            KeyCode::Enter if self.view == View::Partitions => {
                let selected = self.selected[View::Partitions.index()];
                if let Some(partition) =
                    self.partitions().get(selected).map(|p| p.partition.clone())
                {
                    self.files = Some(FilesPopup {
                        partition: partition.clone(),
                        files: None,
                        selected: 0,
                    });
                    return Action::LoadFiles(partition);
                }
            }
            KeyCode::Char('m') if self.view == View::Merges => {
                self.confirm = Some(Confirm::Merge("hot"));
            }
            KeyCode::Char('M') if self.view == View::Merges => {
                self.confirm = Some(Confirm::Merge("cold"));
            }
            KeyCode::Enter | KeyCode::Char('i') | KeyCode::Char('e')
                if self.view == View::Queries =>
            {
                self.query.editing = true;
            }
            KeyCode::Char('l') | KeyCode::Right if self.view == View::Queries => {
                let columns = self.query.result.as_ref().map_or(0, |r| r.columns.len());
                self.query.first_column =
                    (self.query.first_column + 1).min(columns.saturating_sub(1));
            }
            KeyCode::Char('h') | KeyCode::Left if self.view == View::Queries => {
                self.query.first_column = self.query.first_column.saturating_sub(1);
            }
            _ => {}
        }
        Action::None
    }

    fn on_files_key(&mut self, key: KeyEvent) -> Action {
        let Some(popup) = &mut self.files else {
            return Action::None;
        };
        let count = popup.files.as_ref().map_or(0, Vec::len);
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter => self.files = None,
            KeyCode::Char('j') | KeyCode::Down => {
                popup.selected = (popup.selected + 1).min(count.saturating_sub(1));
            }
            KeyCode::Char('k') | KeyCode::Up => popup.selected = popup.selected.saturating_sub(1),
            _ => {}
        }
        Action::None
    }

    fn on_query_key(&mut self, key: KeyEvent) -> Action {
        let query = &mut self.query;
        let byte_at = |text: &str, chars: usize| {
            text.char_indices()
                .nth(chars)
                .map_or(text.len(), |(i, _)| i)
        };
        match key.code {
            KeyCode::Esc => query.editing = false,
            KeyCode::Enter => {
                let sql = query.input.trim().to_owned();
                if sql.is_empty() || query.running.is_some() {
                    return Action::None;
                }
                if query.history.last() != Some(&sql) {
                    query.history.push(sql.clone());
                    if query.history.len() > QUERY_HISTORY {
                        query.history.remove(0);
                    }
                }
                query.history_position = None;
                query.running = Some(sql.clone());
                query.editing = false;
                return Action::RunQuery(sql);
            }
            KeyCode::Up if !query.history.is_empty() => {
                let position = query
                    .history_position
                    .map_or(query.history.len() - 1, |p| p.saturating_sub(1));
                query.history_position = Some(position);
                query.input = query.history[position].clone();
                query.cursor = query.input.chars().count();
            }
            KeyCode::Down => match query.history_position {
                Some(p) if p + 1 < query.history.len() => {
                    query.history_position = Some(p + 1);
                    query.input = query.history[p + 1].clone();
                    query.cursor = query.input.chars().count();
                }
                Some(_) => {
                    query.history_position = None;
                    query.input.clear();
                    query.cursor = 0;
                }
                None => {}
            },
            KeyCode::Left => query.cursor = query.cursor.saturating_sub(1),
            KeyCode::Right => query.cursor = (query.cursor + 1).min(query.input.chars().count()),
            KeyCode::Home => query.cursor = 0,
            KeyCode::End => query.cursor = query.input.chars().count(),
            KeyCode::Backspace if query.cursor > 0 => {
                let at = byte_at(&query.input, query.cursor - 1);
                query.input.remove(at);
                query.cursor -= 1;
            }
            KeyCode::Delete if query.cursor < query.input.chars().count() => {
                let at = byte_at(&query.input, query.cursor);
                query.input.remove(at);
            }
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                query.input.clear();
                query.cursor = 0;
            }
            KeyCode::Char(c) => {
                let at = byte_at(&query.input, query.cursor);
                query.input.insert(at, c);
                query.cursor += 1;
            }
            _ => {}
        }
        Action::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn quitting_switching_and_query_editing() {
        let mut app = App::new("test".into());
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Quit);
        assert_eq!(
            app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Action::Quit
        );
        app.on_key(key(KeyCode::Char('4')));
        assert_eq!(app.view, View::Queries);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.view, View::Commits);
        app.on_key(key(KeyCode::BackTab));
        app.on_key(key(KeyCode::Char('i')));
        for c in "SELECT 1".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        // `q` is text while editing, not quit.
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::None);
        app.on_key(key(KeyCode::Backspace));
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Action::RunQuery("SELECT 1".into())
        );
        assert!(!app.query.editing);
        app.on_query(Err("boom".into()));
        app.on_key(key(KeyCode::Enter));
        app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        app.on_key(key(KeyCode::Up));
        assert_eq!(
            app.query.input, "SELECT 1",
            "history recalls the last query"
        );
    }

    #[test]
    fn merge_needs_confirmation() {
        let mut app = App::new("test".into());
        app.on_key(key(KeyCode::Char('3')));
        assert_eq!(app.on_key(key(KeyCode::Char('m'))), Action::None);
        assert_eq!(app.confirm, Some(Confirm::Merge("hot")));
        assert_eq!(app.on_key(key(KeyCode::Char('n'))), Action::None);
        assert_eq!(app.confirm, None);
        app.on_key(key(KeyCode::Char('M')));
        assert_eq!(app.on_key(key(KeyCode::Char('y'))), Action::Merge("cold"));
    }
}
