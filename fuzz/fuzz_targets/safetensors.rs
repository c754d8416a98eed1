//! safetensors: the JSON header, the offsets, the dtypes; then the model built from them.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if !data.starts_with(b"PK") && data.first() != Some(&0x80) {
        camview_fuzz::check_checkpoint(data);
    }
});
