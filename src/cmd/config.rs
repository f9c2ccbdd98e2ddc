//! `tenx config path`: where tenx keeps profiles, keys, colours and data;
//! `tenx config check`: whether the person's keymap.toml and theme.toml
//! can be used; `tenx config defaults`: the built-in ones, to start from.

use std::process::ExitCode;

use crate::tui::{keymap, settings, theme};

pub fn path() -> anyhow::Result<ExitCode> {
    let there = |p: &std::path::Path| {
        if p.exists() {
            ""
        } else {
            " (not there: the built-in ones are used)"
        }
    };
    let keys = settings::keymap_path()?;
    let colours = settings::theme_path()?;
    println!("config    {}", crate::config::config_dir()?.display());
    println!("keymap    {}{}", keys.display(), there(&keys));
    println!("theme     {}{}", colours.display(), there(&colours));
    println!("data      {}", crate::store::data_dir()?.display());
    Ok(ExitCode::SUCCESS)
}

pub fn check() -> anyhow::Result<ExitCode> {
    let (_, _, problems) = settings::load();
    if problems.is_empty() {
        println!("keymap.toml and theme.toml can be used (or are not there)");
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        eprintln!("tenx: {}", crate::base::text::line(p));
    }
    Ok(ExitCode::FAILURE)
}

/// A built-in file `tenx config defaults` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Builtin {
    Keymap,
    Theme,
}

pub fn defaults(which: Builtin) -> anyhow::Result<ExitCode> {
    print!(
        "{}",
        match which {
            Builtin::Keymap => keymap::DEFAULT,
            Builtin::Theme => theme::DEFAULT,
        }
    );
    Ok(ExitCode::SUCCESS)
}
