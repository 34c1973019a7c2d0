//! Writes the CustomResourceDefinitions of every Serin kind as YAML.
//!
//! `cargo run -p serin-crds --bin crdgen` prints them; with `--write` it refreshes the committed copies
//! under `crds/` and `chart/crds/` (a test fails while those are stale).

use std::path::Path;

fn main() -> std::process::ExitCode {
    let write = std::env::args().any(|a| a == "--write");
    let files = serin_crds::crdgen::all_crd_files();
    if !write {
        for (_, yaml) in &files {
            print!("---\n{yaml}");
        }
        return std::process::ExitCode::SUCCESS;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["crds", "chart/crds"] {
        for (name, yaml) in &files {
            let path = root.join(dir).join(name);
            if let Err(e) = std::fs::write(&path, yaml) {
                eprintln!("crdgen: cannot write {}: {e}", path.display());
                return std::process::ExitCode::FAILURE;
            }
            println!("wrote {dir}/{name}");
        }
    }
    std::process::ExitCode::SUCCESS
}
