//! Images in and out of the network: decoding like PIL, resizing like PIL, preprocessing like
//! torchvision.

pub mod decode;
pub mod preprocess;
pub mod resample;

pub use decode::{ImageError, SourceImage, decode_image, open_image};
pub use preprocess::{Geometry, Intensity, NetworkInput, PreprocessError, Preprocessing, Region};

/// File extensions camview opens as images.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "bmp", "jpg", "jpeg", "tif", "tiff"];

/// The image files directly in `dir` (not its subfolders), sorted by name.
pub fn image_files(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| {
                    IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())
                })
        })
        .collect();
    files.sort();
    Ok(files)
}
