//! The image formats camview decodes besides DICOM (BMP, PNG, JPEG, TIFF), within a memory
//! budget.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if !camview::imaging::dicom::is_dicom(data) {
        camview_fuzz::check_image(data);
    }
});
