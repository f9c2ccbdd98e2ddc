//! Colours and glyphs, in one place.

use ratatui::style::{Color, Modifier, Style};

use crate::model::EntityKind;

pub fn title() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}
pub fn category() -> Style {
    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
}
pub fn count() -> Style {
    Style::new().fg(Color::DarkGray)
}
pub fn relation() -> Style {
    Style::new().fg(Color::Yellow)
}
pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}
pub fn key() -> Style {
    Style::new().fg(Color::Cyan)
}
pub fn error() -> Style {
    Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
}
pub fn ok() -> Style {
    Style::new().fg(Color::Green)
}
/// The mark on a marked entity.
pub fn marked() -> Style {
    Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD)
}

/// Characters a search matched.
pub fn matched() -> Style {
    Style::new()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
}
pub fn highlight() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}
pub fn focused_border() -> Style {
    Style::new().fg(Color::Cyan)
}
pub fn border() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// A short tag per kind family, readable without colour.
pub fn kind_icon(kind: EntityKind) -> &'static str {
    use EntityKind as K;
    match kind {
        K::AzureAccount => "[tenant]",
        K::AzureUser | K::DefenderLogonUser => "[user]",
        K::AzureUserGroup => "[group]",
        K::AzureGroupMember => "[member]",
        K::AzureServicePrincipal => "[app]",
        k if k.is_device() => "[device]",
        K::IntuneHostAgent | K::DefenderMachine => "[agent]",
        K::IntuneCompliancePolicy | K::IntuneDeviceConfiguration => "[policy]",
        K::IntuneNoncomplianceFinding | K::DefenderVulnerability => "[finding]",
        K::IntuneDetectedApplication | K::IntuneManagedApplication => "[app]",
        K::Cve => "[cve]",
        K::AzureSubscription => "[sub]",
        K::AzureResourceGroup => "[rg]",
        K::AzureRoleAssignment | K::AzureRoleDefinition => "[role]",
        _ => "[res]",
    }
}

pub fn kind_style(kind: EntityKind) -> Style {
    use EntityKind as K;
    let c = match kind {
        K::AzureUser | K::DefenderLogonUser | K::AzureGroupMember => Color::Green,
        K::AzureUserGroup => Color::LightGreen,
        k if k.is_device() => Color::Blue,
        K::IntuneNoncomplianceFinding | K::DefenderVulnerability | K::Cve => Color::Red,
        K::IntuneCompliancePolicy | K::IntuneDeviceConfiguration => Color::Magenta,
        K::AzureSubscription | K::AzureResourceGroup => Color::LightBlue,
        _ => Color::Gray,
    };
    Style::new().fg(c)
}
