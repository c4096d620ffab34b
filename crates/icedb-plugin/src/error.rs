use std::fmt;

/// What went wrong in a plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginErrorKind {
    /// The component could not be read, compiled or linked, or does not
    /// export the interface asked for.
    Load,
    /// The plugin refused its settings (`configure` returned an error).
    Config,
    /// The plugin returned an error value for the batch.
    Rejected,
    /// The plugin trapped (a panic, an `unreachable`, a bad memory access).
    Trap,
    /// The call ran past its time cap and was interrupted.
    Timeout,
    /// The plugin tried to grow its memory past the cap.
    MemoryLimit,
    /// The plugin returned something that breaks the contract (wrong number
    /// of rows, an invalid partition path, a duplicate column).
    InvalidOutput,
}

impl fmt::Display for PluginErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginErrorKind::Load => "cannot load",
            PluginErrorKind::Config => "refused its settings",
            PluginErrorKind::Rejected => "rejected the batch",
            PluginErrorKind::Trap => "trapped",
            PluginErrorKind::Timeout => "timed out",
            PluginErrorKind::MemoryLimit => "exceeded its memory limit",
            PluginErrorKind::InvalidOutput => "returned invalid output",
        })
    }
}

/// A plugin failure, whatever its cause: an error value the plugin returned,
/// a trap, a time-out, a memory blow-up or output that breaks the contract.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin `{plugin}` {kind} in `{function}`{}: {message}", row_suffix(*.row))]
pub struct PluginError {
    /// The plugin's name (its file stem).
    pub plugin: String,
    /// The WIT function that was called (`format`, `partition`, ...).
    pub function: &'static str,
    pub kind: PluginErrorKind,
    pub message: String,
    /// The 0-based row of the batch at fault, when known.
    pub row: Option<u32>,
}

fn row_suffix(row: Option<u32>) -> String {
    row.map(|r| format!(" at row {r}")).unwrap_or_default()
}

impl PluginError {
    pub(crate) fn new(
        plugin: &str,
        function: &'static str,
        kind: PluginErrorKind,
        message: impl Into<String>,
    ) -> Self {
        PluginError {
            plugin: plugin.to_owned(),
            function,
            kind,
            message: message.into(),
            row: None,
        }
    }

    pub(crate) fn at_row(mut self, row: Option<u32>) -> Self {
        self.row = row;
        self
    }

    /// Whether retrying the same batch could succeed (it cannot for errors
    /// the plugin reports about its input).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self.kind,
            PluginErrorKind::Rejected | PluginErrorKind::InvalidOutput
        )
    }
}
