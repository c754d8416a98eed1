//! The PyTorch zip container (`torch.save` since 1.6): the zip reader, `data.pkl` through the
//! pickle VM, the storages; then the model built from the tensors.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"PK") {
        camview_fuzz::check_checkpoint(data);
    }
});
