//! The dependency rules of the design, checked by reading the source:
//! `policy/` imports neither `sim/`, `live/`, `world/` nor `report/`;
//! `world/` knows nothing of policies nor of the simulator; `sim/` and
//! `policy/` never touch tokio or the wall clock; nothing draws unseeded
//! randomness; `mock-provider` never uses `policy`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn check(dir: &str, forbidden: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join(dir), &mut files);
    assert!(!files.is_empty(), "{dir} has no sources");
    let mut bad = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    bad.push(format!(
                        "{}:{}: `{word}` in: {}",
                        f.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "dependency rule broken:\n{}",
        bad.join("\n")
    );
}

const CLOCKS: [&str; 4] = ["tokio", "Instant", "SystemTime", "std::time"];
const ENTROPY: [&str; 4] = ["thread_rng", "rand::random", "OsRng", "from_entropy"];

#[test]
fn policy_sees_outcomes_never_the_world() {
    check(
        "src/policy",
        &[
            "crate::sim",
            "crate::live",
            "crate::world",
            "crate::report",
            "crate::scenario",
        ],
    );
    check("src/policy", &CLOCKS);
}

#[test]
fn world_knows_nothing_of_policies_or_the_simulator() {
    check(
        "src/world",
        &[
            "crate::policy",
            "crate::sim",
            "crate::live",
            "crate::report",
        ],
    );
    check("src/world", &CLOCKS);
}

#[test]
fn the_simulator_reads_no_clock() {
    check("src/sim", &CLOCKS);
}

#[test]
fn nothing_draws_unseeded_randomness() {
    check("src", &ENTROPY);
}

#[test]
fn mock_provider_never_uses_the_core() {
    check(
        "mock-provider/src",
        &["stormglass::policy", "stormglass::sim"],
    );
}
