//! An overlay's JSON sidecar (its provenance), which `batch --resume` reads back to tell a
//! finished image (`Provenance::from_json`): whatever it accepts is written back and read
//! again to the same record, and it refuses only what serde reads into a record that does
//! not survive that (a number beyond f32's range read as infinity, written as null).
#![no_main]
use camview::export::Provenance;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(record) = serde_json::from_slice::<Provenance>(data) else {
        return;
    };
    let json = serde_json::to_vec(&record).expect("a record read is written back");
    let again = serde_json::from_slice::<Provenance>(&json);
    match Provenance::from_json(data) {
        Some(accepted) => {
            assert_eq!(accepted, record);
            let again = again.expect("an accepted record is read again");
            assert_eq!(serde_json::to_vec(&again).ok(), Some(json));
        }
        None => assert!(
            !again.is_ok_and(|again| again == record),
            "a record that reads back the same was refused"
        ),
    }
});
