//! DICOM: the length walk, dicom-rs's parser, camview's pixel pipeline (native, RLE, JPEG,
//! JPEG 2000, deflate), within a memory budget; and the header read that sorts a series.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if camview::imaging::dicom::is_dicom(data) {
        let _ = camview::imaging::dicom::series_key(data);
        camview_fuzz::check_image(data);
    }
});
