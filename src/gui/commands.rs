//! Every command of the viewer, in one table: its text, what it does, its keys, where it sits in
//! the menus, and whether it works while text is typed. As in rerun's `UICommand`, each column is
//! one exhaustive `match` on [`Command`], so a new command does not compile until every column
//! says something about it. The key handler ([`Command::take_pressed`]), the menus' entries and
//! shortcut texts, the buttons' tooltips and the keys window (F1) are all derived from it, so
//! they cannot disagree; tests check the README's keys table against it too. The order of
//! [`Command::ALL`] is the order of the keys window, the README and, within a menu group, the
//! menu.
//!
//! What a command does is `CamviewApp::run_command`: this module knows the keys, not the app.

use eframe::egui::{self, Key, KeyboardShortcut, Modifiers};

use super::annotate::Tool;

/// One thing the user can ask for by a key, a menu entry or a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    PreviousClass,
    NextClass,
    PreviousImage,
    NextImage,
    Fit,
    ActualPixels,
    ToggleOverlay,
    /// Every method's map of the class side by side.
    ToggleCompare,
    PreviousFrame,
    NextFrame,
    /// The display window preset at this place in the settings' list (from 0).
    WindowPreset(u8),
    ResetWindow,
    InvertWindow,
    UseTool(Tool),
    /// Flags the selected closed mark as a finding (or no longer).
    ToggleFinding,
    DeleteMark,
    /// Drops the selection and goes back to the Select tool.
    Deselect,
    Undo,
    Redo,
    OpenImage,
    OpenModel,
    SaveOverlay,
    CopyOverlay,
    /// Writes the image's findings as a mask PNG for `camview eval --masks`.
    ExportMask,
    Quit,
    ToggleKeys,
}

/// The viewer's menus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Menu {
    File,
    View,
    /// View > Window: the display window of an image with gray levels.
    Window,
    Help,
}

/// Where a command's entry is: its menu and its group there (groups are separated by a line, and
/// keep the table's order within).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MenuPlace {
    pub menu: Menu,
    pub group: u8,
}

const fn key(key: Key) -> KeyboardShortcut {
    KeyboardShortcut::new(Modifiers::NONE, key)
}

/// Ctrl (Cmd on a Mac) and a key.
const fn ctrl(key: Key) -> KeyboardShortcut {
    KeyboardShortcut::new(Modifiers::COMMAND, key)
}

const fn ctrl_shift(key: Key) -> KeyboardShortcut {
    KeyboardShortcut::new(Modifiers::COMMAND.plus(Modifiers::SHIFT), key)
}

const fn place(menu: Menu, group: u8) -> Option<MenuPlace> {
    Some(MenuPlace { menu, group })
}

impl Command {
    /// Every command, in the order the keys window and the README list them.
    pub const ALL: [Command; 37] = [
        Command::PreviousClass,
        Command::NextClass,
        Command::PreviousImage,
        Command::NextImage,
        Command::Fit,
        Command::ActualPixels,
        Command::ToggleOverlay,
        Command::ToggleCompare,
        Command::PreviousFrame,
        Command::NextFrame,
        Command::WindowPreset(0),
        Command::WindowPreset(1),
        Command::WindowPreset(2),
        Command::WindowPreset(3),
        Command::WindowPreset(4),
        Command::WindowPreset(5),
        Command::WindowPreset(6),
        Command::ResetWindow,
        Command::InvertWindow,
        Command::UseTool(Tool::Select),
        Command::UseTool(Tool::Note),
        Command::UseTool(Tool::Arrow),
        Command::UseTool(Tool::Ellipse),
        Command::UseTool(Tool::Draw),
        Command::UseTool(Tool::Region),
        Command::ToggleFinding,
        Command::DeleteMark,
        Command::Deselect,
        Command::Undo,
        Command::Redo,
        Command::OpenImage,
        Command::OpenModel,
        Command::SaveOverlay,
        Command::CopyOverlay,
        Command::ExportMask,
        Command::Quit,
        Command::ToggleKeys,
    ];

    /// The text of its menu entry or button.
    pub fn label(self) -> &'static str {
        match self {
            Self::PreviousClass => "Previous class",
            Self::NextClass => "Next class",
            Self::PreviousImage => "Previous image",
            Self::NextImage => "Next image",
            Self::Fit => "Fit",
            Self::ActualPixels => "Actual pixels (1:1)",
            Self::ToggleOverlay => "Show the heat map",
            Self::ToggleCompare => "Compare methods",
            Self::PreviousFrame => "Previous frame",
            Self::NextFrame => "Next frame",
            Self::WindowPreset(_) => "Window preset",
            Self::ResetWindow => "Reset to the file's window",
            Self::InvertWindow => "Invert",
            Self::UseTool(tool) => tool.label(),
            Self::ToggleFinding => "Finding",
            Self::DeleteMark => "Delete",
            Self::Deselect => "Deselect",
            Self::Undo => "Undo",
            Self::Redo => "Redo",
            Self::OpenImage => "Open image…",
            Self::OpenModel => "Open model…",
            Self::SaveOverlay => "Save overlay…",
            Self::CopyOverlay => "Copy overlay",
            Self::ExportMask => "Export findings as mask",
            Self::Quit => "Quit",
            Self::ToggleKeys => "Keyboard shortcuts",
        }
    }

    /// What it does: its tooltip, and its line in the keys window and the README.
    pub fn description(self) -> &'static str {
        match self {
            Self::PreviousClass => "Previous class (by probability)",
            Self::NextClass => "Next class (by probability)",
            Self::PreviousImage => "Previous image in the folder",
            Self::NextImage => "Next image in the folder",
            Self::Fit => "Fit the image in view",
            Self::ActualPixels => "Actual pixels: one image pixel per screen pixel",
            Self::ToggleOverlay => "Show or hide the heat map",
            Self::ToggleCompare => "Show or hide every method's map of the class side by side",
            Self::PreviousFrame => "Previous frame of a multi-frame file",
            Self::NextFrame => "Next frame of a multi-frame file",
            Self::WindowPreset(0) => "Display window preset 1 (lung by default)",
            Self::WindowPreset(1) => "Display window preset 2 (mediastinum by default)",
            Self::WindowPreset(2) => "Display window preset 3 (abdomen by default)",
            Self::WindowPreset(3) => "Display window preset 4 (liver by default)",
            Self::WindowPreset(4) => "Display window preset 5 (bone by default)",
            Self::WindowPreset(5) => "Display window preset 6 (brain by default)",
            Self::WindowPreset(_) => "Display window preset 7 (stroke by default)",
            Self::ResetWindow => "Display window: back to the file's own",
            Self::InvertWindow => "Invert the displayed grey levels",
            Self::UseTool(Tool::Select) => "Select and move marks (the Select tool)",
            Self::UseTool(Tool::Note) => "Place a note (the Note tool)",
            Self::UseTool(Tool::Arrow) => "Draw an arrow (the Arrow tool)",
            Self::UseTool(Tool::Ellipse) => "Circle an area (the Ellipse tool)",
            Self::UseTool(Tool::Draw) => "Draw freehand (the Draw tool)",
            Self::UseTool(Tool::Region) => "Outline a finding corner by corner (the Region tool)",
            Self::ToggleFinding => {
                "Mark the selected closed mark as a finding (the region the map is scored against), or not"
            }
            Self::DeleteMark => "Delete the selected mark",
            Self::Deselect => "Drop the selection and go back to the Select tool",
            Self::Undo => "Undo the last change to the marks",
            Self::Redo => "Redo the change undone",
            Self::OpenImage => "Open an image",
            Self::OpenModel => "A DenseNet checkpoint: .pth, .pt, .pth.tar, .ckpt or .safetensors",
            Self::SaveOverlay => "Save the overlay with its annotations and provenance",
            Self::CopyOverlay => "Copy the overlay (as it would be saved) to the clipboard",
            Self::ExportMask => {
                "Write the image's findings as a mask PNG (masks/<image name>.png beside the image), for camview eval --masks"
            }
            Self::Quit => "Quit camview",
            Self::ToggleKeys => "Show or hide the list of keys",
        }
    }

    /// Its keys, the usual one first; any of them runs it.
    pub fn shortcuts(self) -> &'static [KeyboardShortcut] {
        match self {
            Self::PreviousClass => &const { [key(Key::ArrowUp)] },
            Self::NextClass => &const { [key(Key::ArrowDown)] },
            Self::PreviousImage => &const { [key(Key::ArrowLeft)] },
            Self::NextImage => &const { [key(Key::ArrowRight)] },
            Self::Fit => &const { [key(Key::F), key(Key::Home), key(Key::Num0), key(Key::R)] },
            Self::ActualPixels => &const { [ctrl(Key::Num1)] },
            Self::ToggleOverlay => &const { [key(Key::T)] },
            Self::ToggleCompare => &const { [key(Key::C)] },
            Self::PreviousFrame => &const { [key(Key::PageUp)] },
            Self::NextFrame => &const { [key(Key::PageDown)] },
            Self::WindowPreset(0) => &const { [key(Key::Num1)] },
            Self::WindowPreset(1) => &const { [key(Key::Num2)] },
            Self::WindowPreset(2) => &const { [key(Key::Num3)] },
            Self::WindowPreset(3) => &const { [key(Key::Num4)] },
            Self::WindowPreset(4) => &const { [key(Key::Num5)] },
            Self::WindowPreset(5) => &const { [key(Key::Num6)] },
            Self::WindowPreset(_) => &const { [key(Key::Num7)] },
            Self::ResetWindow => &const { [key(Key::W)] },
            Self::InvertWindow => &const { [key(Key::I)] },
            Self::UseTool(Tool::Select) => &const { [key(Key::V)] },
            Self::UseTool(Tool::Note) => &const { [key(Key::N)] },
            Self::UseTool(Tool::Arrow) => &const { [key(Key::A)] },
            Self::UseTool(Tool::Ellipse) => &const { [key(Key::E)] },
            Self::UseTool(Tool::Draw) => &const { [key(Key::D)] },
            Self::UseTool(Tool::Region) => &const { [key(Key::P)] },
            Self::ToggleFinding => &const { [key(Key::M)] },
            Self::DeleteMark => &const { [key(Key::Delete), key(Key::Backspace)] },
            Self::Deselect => &const { [key(Key::Escape)] },
            Self::Undo => &const { [ctrl(Key::Z)] },
            Self::Redo => &const { [ctrl_shift(Key::Z), ctrl(Key::Y)] },
            Self::OpenImage => &const { [ctrl(Key::O)] },
            Self::OpenModel => &[],
            Self::SaveOverlay => &const { [ctrl(Key::S)] },
            Self::CopyOverlay => &const { [ctrl_shift(Key::C)] },
            Self::ExportMask => &const { [ctrl(Key::M)] },
            Self::Quit => &const { [ctrl(Key::Q)] },
            Self::ToggleKeys => &const { [key(Key::F1)] },
        }
    }

    /// Where its menu entry is, if it has one.
    pub fn menu(self) -> Option<MenuPlace> {
        match self {
            Self::OpenImage | Self::OpenModel => place(Menu::File, 0),
            Self::SaveOverlay | Self::CopyOverlay | Self::ExportMask => place(Menu::File, 1),
            Self::Quit => place(Menu::File, 2),
            Self::Fit | Self::ActualPixels | Self::ToggleOverlay | Self::ToggleCompare => {
                place(Menu::View, 0)
            }
            Self::PreviousImage | Self::NextImage => place(Menu::View, 1),
            Self::PreviousFrame | Self::NextFrame => place(Menu::View, 2),
            Self::WindowPreset(_) => place(Menu::Window, 0),
            Self::ResetWindow | Self::InvertWindow => place(Menu::Window, 1),
            Self::ToggleKeys => place(Menu::Help, 0),
            Self::PreviousClass
            | Self::NextClass
            | Self::UseTool(_)
            | Self::ToggleFinding
            | Self::DeleteMark
            | Self::Deselect
            | Self::Undo
            | Self::Redo => None,
        }
    }

    /// Runs even while a text field has the keyboard or the save window is open. Only commands
    /// whose every key has Ctrl may: a plain key belongs to the text being typed.
    pub fn works_while_typing(self) -> bool {
        match self {
            Self::OpenImage
            | Self::SaveOverlay
            | Self::CopyOverlay
            | Self::ExportMask
            | Self::Quit => true,
            Self::PreviousClass
            | Self::NextClass
            | Self::PreviousImage
            | Self::NextImage
            | Self::Fit
            | Self::ActualPixels
            | Self::ToggleOverlay
            | Self::ToggleCompare
            | Self::PreviousFrame
            | Self::NextFrame
            | Self::WindowPreset(_)
            | Self::ResetWindow
            | Self::InvertWindow
            | Self::UseTool(_)
            | Self::ToggleFinding
            | Self::DeleteMark
            | Self::Deselect
            | Self::Undo
            | Self::Redo
            | Self::OpenModel
            | Self::ToggleKeys => false,
        }
    }

    /// Its keys as the menus, the keys window and the README show them: "F / Home / 0 / R".
    pub fn shortcut_text(self) -> String {
        self.shortcuts()
            .iter()
            .map(shortcut_text)
            .collect::<Vec<_>>()
            .join(" / ")
    }

    /// The tooltip of its button: what it does and its keys.
    pub fn tooltip(self) -> String {
        match self.shortcuts() {
            [] => self.description().to_string(),
            _ => format!("{} ({})", self.description(), self.shortcut_text()),
        }
    }

    /// The text of a checkbox for a command that switches something on and off: "Show the heat
    /// map (T)".
    pub fn checkbox_text(self) -> String {
        format!("{} ({})", self.label(), self.shortcut_text())
    }

    /// The commands of a menu group, in the table's order.
    pub fn in_menu(menu: Menu, group: u8) -> impl Iterator<Item = Command> {
        Self::ALL
            .into_iter()
            .filter(move |c| c.menu() == Some(MenuPlace { menu, group }))
    }

    /// The command bound to exactly this shortcut.
    pub fn for_shortcut(shortcut: &KeyboardShortcut) -> Option<Command> {
        Self::ALL
            .into_iter()
            .find(|c| c.shortcuts().contains(shortcut))
    }

    /// Takes (consumes) this frame's key presses of the commands that `may_run`, and returns the
    /// commands, in the table's order. Shortcuts with more modifiers are tried first: egui
    /// matches modifiers logically (Ctrl+Z also matches Ctrl+Shift+Z), so Redo's Ctrl+Shift+Z
    /// must be taken before Undo's Ctrl+Z can see it.
    pub fn take_pressed(ctx: &egui::Context, may_run: impl Fn(Command) -> bool) -> Vec<Command> {
        let mut bindings: Vec<(KeyboardShortcut, Command)> = Self::ALL
            .into_iter()
            .filter(|&c| may_run(c))
            .flat_map(|c| c.shortcuts().iter().map(move |&s| (s, c)))
            .collect();
        bindings.sort_by_key(|(s, _)| std::cmp::Reverse(modifier_count(s.modifiers)));
        let mut pressed: Vec<Command> = Vec::new();
        for (shortcut, command) in bindings {
            if ctx.input_mut(|i| i.consume_shortcut(&shortcut)) && !pressed.contains(&command) {
                pressed.push(command);
            }
        }
        pressed.sort_by_key(|c| Self::ALL.iter().position(|a| a == c));
        pressed
    }
}

fn modifier_count(m: Modifiers) -> usize {
    [m.alt, m.ctrl || m.command || m.mac_cmd, m.shift]
        .into_iter()
        .filter(|&on| on)
        .count()
}

/// A shortcut as text, the same on every platform (the README and the tests read it): "Ctrl+O",
/// "Ctrl+Shift+Z", "Page Up".
pub fn shortcut_text(shortcut: &KeyboardShortcut) -> String {
    let m = shortcut.modifiers;
    let mut text = String::new();
    for (on, name) in [
        (m.ctrl || m.command || m.mac_cmd, "Ctrl+"),
        (m.alt, "Alt+"),
        (m.shift, "Shift+"),
    ] {
        if on {
            text.push_str(name);
        }
    }
    text.push_str(match shortcut.logical_key {
        Key::PageUp => "Page Up",
        Key::PageDown => "Page Down",
        other => other.name(),
    });
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_shortcut_runs_two_commands() {
        let mut seen: Vec<(KeyboardShortcut, Command)> = Vec::new();
        for command in Command::ALL {
            for &shortcut in command.shortcuts() {
                if let Some((_, other)) = seen.iter().find(|(s, _)| *s == shortcut) {
                    panic!(
                        "{} is bound to both {other:?} and {command:?}",
                        shortcut_text(&shortcut)
                    );
                }
                seen.push((shortcut, command));
            }
        }
    }

    #[test]
    fn only_ctrl_shortcuts_work_while_typing() {
        for command in Command::ALL.into_iter().filter(|c| c.works_while_typing()) {
            for s in command.shortcuts() {
                assert!(
                    !s.conflicts_with_text_editing(),
                    "{command:?} runs while typing but {} is a key of the text",
                    shortcut_text(s)
                );
            }
        }
    }

    #[test]
    fn a_command_without_keys_is_in_a_menu() {
        for command in Command::ALL {
            assert!(
                !command.shortcuts().is_empty() || command.menu().is_some(),
                "{command:?} has neither a key nor a menu entry: nothing can run it"
            );
        }
    }

    #[test]
    fn every_command_is_listed_once() {
        for (i, command) in Command::ALL.iter().enumerate() {
            assert!(
                !Command::ALL[..i].contains(command),
                "{command:?} is listed twice"
            );
        }
        for tool in Tool::ALL {
            assert!(Command::ALL.contains(&Command::UseTool(tool)), "{tool:?}");
        }
    }

    /// What the key handler takes from one frame in which `shortcut` was pressed.
    fn pressed_in_one_frame(shortcut: KeyboardShortcut) -> Vec<Command> {
        let ctx = egui::Context::default();
        let mut input = egui::RawInput::default();
        for pressed in [true, false] {
            input.events.push(egui::Event::Key {
                key: shortcut.logical_key,
                physical_key: None,
                pressed,
                repeat: false,
                modifiers: shortcut.modifiers,
            });
        }
        let mut taken = Vec::new();
        ctx.run_pass(input, |ctx| taken = Command::take_pressed(ctx, |_| true))
            .drop_without_applying_deltas();
        taken
    }

    #[test]
    fn every_shortcut_runs_its_command_and_no_other() {
        for command in Command::ALL {
            for &shortcut in command.shortcuts() {
                assert_eq!(
                    pressed_in_one_frame(shortcut),
                    [command],
                    "{}",
                    shortcut_text(&shortcut)
                );
            }
        }
    }

    #[test]
    fn shortcuts_read_as_the_keys_are_named() {
        assert_eq!(Command::Redo.shortcut_text(), "Ctrl+Shift+Z / Ctrl+Y");
        assert_eq!(Command::PreviousImage.shortcut_text(), "Left");
        assert_eq!(Command::NextFrame.shortcut_text(), "Page Down");
        assert_eq!(Command::WindowPreset(0).shortcut_text(), "1");
        assert_eq!(Command::ActualPixels.shortcut_text(), "Ctrl+1");
        assert_eq!(Command::Fit.shortcut_text(), "F / Home / 0 / R");
        assert_eq!(
            Command::ToggleOverlay.checkbox_text(),
            "Show the heat map (T)"
        );
        assert_eq!(
            Command::for_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::Y)),
            Some(Command::Redo)
        );
        assert_eq!(Command::for_shortcut(&key(Key::X)), None);
    }

    #[test]
    fn menu_groups_keep_the_table_order() {
        let file: Vec<Command> = Command::in_menu(Menu::File, 0).collect();
        assert_eq!(file, [Command::OpenImage, Command::OpenModel]);
        let view: Vec<Command> = Command::in_menu(Menu::View, 0).collect();
        assert_eq!(
            view,
            [
                Command::Fit,
                Command::ActualPixels,
                Command::ToggleOverlay,
                Command::ToggleCompare
            ]
        );
        let saving: Vec<Command> = Command::in_menu(Menu::File, 1).collect();
        assert_eq!(
            saving,
            [
                Command::SaveOverlay,
                Command::CopyOverlay,
                Command::ExportMask
            ]
        );
    }
}
