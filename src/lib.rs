//! camview: see why an image classifier decided what it did.
//!
//! The engine (see ARCHITECTURE.md): a checkpoint is read safely (`checkpoint`) into a
//! validated DenseNet (`network`); an image is decoded and preprocessed like PIL + torchvision
//! (`imaging`); one analysis path (`explain::explain_image`) gives an `explain::Analysis`
//! holding every class's map by the chosen method; maps are coloured and composed (`render`)
//! and written with their provenance (`export`). The engine depends on neither the command line
//! nor the GUI: `cargo build --lib --no-default-features` builds it alone.
//!
//! Around it: `model_request` (which model, with which overrides, the demo model included),
//! `demo` (the embedded demo model and scans), `training` (the demo model's tooling), and the
//! two front ends, `cli` (feature `cli`) and `gui` (feature `gui`).

pub mod checkpoint;
#[cfg(feature = "cli")]
pub mod cli;
pub mod demo;
pub mod explain;
pub mod export;
#[cfg(feature = "gui")]
pub mod gui;
pub mod imaging;
pub mod model_request;
pub mod network;
pub mod render;
pub mod training;

/// mimalloc instead of the system allocator (feature `mimalloc`, on by default; a program that
/// uses the engine as a library turns it off and chooses its own): candle allocates and frees
/// many large tensors per forward pass, and glibc returns them to the kernel each time
/// (measured: a third of a training step's time was spent in the kernel; 17% faster overall
/// with mimalloc's reuse).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An I/O error in words for a person: what happened, without Rust's error codes.
pub fn describe_io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "no such file or folder".to_string(),
        K::PermissionDenied => "permission denied".to_string(),
        K::IsADirectory => "it is a folder, not a file".to_string(),
        K::StorageFull => "the disk is full".to_string(),
        K::ReadOnlyFilesystem => "the file system is read-only".to_string(),
        _ => e.to_string(),
    }
}
