//! The config loader and validator, as a file, `PUT /config` or the cluster's translation feeds
//! them: any text is accepted or refused with an error, never a panic. An accepted config must
//! survive the trip through JSON (what a controller sends) unchanged, and compiling its route
//! table (what the store does next) must not panic either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serin_meshproxy::config::parse_config;
use serin_meshproxy::store::ConfigStore;

fuzz_target!(|text: &str| {
    let Ok(config) = parse_config("fuzz input", text) else { return };
    let json = serde_json::to_string(&config).expect("an accepted config serializes");
    let again = parse_config("fuzz input as JSON", &json)
        .unwrap_or_else(|error| panic!("an accepted config is refused as JSON: {error}\n{json}"));
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&config).unwrap(),
        "the config changed on its trip through JSON"
    );
    // The store may still refuse it (a backendRef to a port its Service lacks), but must not panic.
    let _ = ConfigStore::new(config);
});
