//! The legacy PyTorch container (before 1.6): a run of pickles through the pickle VM, then the
//! raw storages; then the model built from the tensors.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&0x80) {
        camview_fuzz::check_checkpoint(data);
    }
});
