//! Images in and out of the network: decoding like PIL, resizing like PIL, preprocessing like
//! torchvision.

pub mod decode;
pub mod preprocess;
pub mod resample;

pub use decode::{ImageError, SourceImage, decode_image, open_image};
pub use preprocess::{Geometry, NetworkInput, PreprocessError, Preprocessing, Region};
