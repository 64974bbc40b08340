//! The product tree (`cargo tree -e normal,build -p mephisto-agents`) compiles no C: no crate
//! that builds or links C code (`cc`, `cmake`, `pkg-config`, `bindgen`), and the only `-sys`
//! crate is `linux-raw-sys` (Linux's syscall numbers and structs written in Rust, no build
//! script; rustix uses it, under fjall's `tempfile`).

use std::process::Command;

/// `-sys` crates that are pure Rust (no build script, nothing linked).
const PURE_RUST_SYS: [&str; 1] = ["linux-raw-sys"];

/// Crates whose presence means C is compiled or linked.
const BUILDS_C: [&str; 5] = ["cc", "cmake", "pkg-config", "bindgen", "vcpkg"];

#[test]
fn the_product_tree_compiles_no_c() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal,build",
            "-p",
            "mephisto-agents",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("UTF-8");
    let names: std::collections::BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.contains("fjall"), "the durable store is in the tree");
    let c: Vec<&&str> = names.iter().filter(|n| BUILDS_C.contains(n)).collect();
    assert!(c.is_empty(), "crates that compile C: {c:?}");
    let sys: Vec<&&str> = names
        .iter()
        .filter(|n| n.ends_with("-sys") && !PURE_RUST_SYS.contains(n))
        .collect();
    assert!(sys.is_empty(), "-sys crates: {sys:?}");
}
