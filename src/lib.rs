//! camview: see why an image classifier decided what it did.
//!
//! The data flow (see ARCHITECTURE.md): a checkpoint is read safely (`checkpoint`) into a
//! validated DenseNet (`network`); an image is decoded and preprocessed like PIL + torchvision
//! (`imaging`); one forward pass gives an `explain::Analysis` holding every class's activation
//! map; maps are coloured and blended (`render`) and written with their provenance (`export`).
//! The command line (`cli`) and the viewer are thin layers over these.

pub mod checkpoint;
pub mod cli;
pub mod demo;
pub mod explain;
pub mod export;
pub mod gui;
pub mod imaging;
pub mod network;
pub mod render;
pub mod synth;
pub mod train;

/// mimalloc instead of the system allocator: candle allocates and frees many large tensors per
/// forward pass, and glibc returns them to the kernel each time (measured: a third of a training
/// step's time was spent in the kernel; 17% faster overall with mimalloc-like reuse).
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
