//! The dashboard's styles, in one place.

use ratatui::style::{Color, Modifier, Style};

pub(super) fn selected_style() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

pub(super) fn header_style() -> Style {
    Style::default()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD)
}
