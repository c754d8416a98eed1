//! The windows over the main screen and the ways files come in: the save window (`save`), the
//! keys window (`keys`), the native file dialogs and the typed Open field (`open`), and the
//! preview of a drop (`drop`).

pub mod drop;
pub mod keys;
pub mod open;
pub mod save;

pub use drop::drop_preview_ui;
pub use keys::keys_window_ui;
