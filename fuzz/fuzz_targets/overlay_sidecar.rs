//! An overlay's JSON sidecar (its provenance), which `batch --resume` reads back to tell a
//! finished image: whatever is read is written back and read again to the same record.
#![no_main]
use camview::export::Provenance;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(record) = serde_json::from_slice::<Provenance>(data) else {
        return;
    };
    let json = serde_json::to_vec(&record).expect("a record read is written back");
    let again: Provenance = serde_json::from_slice(&json).expect("and read again");
    assert_eq!(serde_json::to_vec(&again).ok(), Some(json));
});
