//! 1. Exports `rset_preload_passive` from `rset-mon`'s dynamic symbol table, so that
//!    librset_preload.so (found with dlsym) leaves rset-mon alone under rset-run.
//! 2. Compiles the C programs of the `guest_preload` test (tests/c/*.c) with the
//!    system's gcc into OUT_DIR; the test embeds them. Without gcc the build goes
//!    on and the guest test says what is missing.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rustc-link-arg-bin=rset-mon=-Wl,--export-dynamic-symbol=rset_preload_passive");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let c = PathBuf::from("tests/c");
    // The LLVM OpenMP runtime (Debian 12: libomp5-14, installed by `cargo xtask`):
    // the gcc-compiled OpenMP program is linked against it too (libomp implements
    // libgomp's GOMP_* entry points), and the library travels with the test.
    let libomp = std::path::Path::new("/usr/lib/llvm-14/lib/libomp.so.5");
    println!("cargo:rerun-if-changed={}", libomp.display());
    let _ = std::fs::remove_file(out.join("libomp.so.5"));
    if std::fs::copy(libomp, out.join("libomp.so.5")).is_err() {
        println!(
            "cargo:warning={} missing (apt-get install libomp5-14); the LLVM OpenMP guest test will fail",
            libomp.display()
        );
        let _ = std::fs::write(out.join("libomp.so.5"), b"");
    }
    for name in [
        "placed", "churn", "segv", "hot", "hotspot", "omp", "omp_llvm",
    ] {
        let src = c.join(format!("{}.c", name.trim_end_matches("_llvm")));
        println!("cargo:rerun-if-changed={}", src.display());
        let exe = out.join(name);
        let _ = std::fs::remove_file(&exe);
        let ok = if name == "omp_llvm" {
            let obj = out.join("omp_llvm.o");
            let src = c.join("omp.c");
            Command::new("gcc")
                .args(["-O2", "-fopenmp", "-c"])
                .arg(&src)
                .arg("-o")
                .arg(&obj)
                .status()
                .is_ok_and(|s| s.success())
                && libomp.exists()
                && Command::new("gcc")
                    .arg(&obj)
                    .arg(libomp)
                    .args(["-pthread", "-Wl,-rpath,$ORIGIN", "-o"])
                    .arg(&exe)
                    .status()
                    .is_ok_and(|s| s.success())
        } else if name == "omp" {
            // libgomp linked statically, so the guest needs no libgomp.so: the
            // program still calls glibc's pthread_create through the PLT.
            let obj = out.join("omp.o");
            let libgomp = Command::new("gcc")
                .arg("-print-file-name=libgomp.a")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
            Command::new("gcc")
                .args(["-O2", "-fopenmp", "-c"])
                .arg(&src)
                .arg("-o")
                .arg(&obj)
                .status()
                .is_ok_and(|s| s.success())
                && libgomp.is_some_and(|lib| {
                    Command::new("gcc")
                        .arg(&obj)
                        .arg(lib)
                        .args(["-pthread", "-o"])
                        .arg(&exe)
                        .status()
                        .is_ok_and(|s| s.success())
                })
        } else {
            Command::new("gcc")
                .args(["-O2", "-pthread", "-o"])
                .arg(&exe)
                .arg(&src)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok {
            println!(
                "cargo:warning=could not compile {} with gcc; guest_preload will fail",
                src.display()
            );
            // An empty file: the test reports it.
            let _ = std::fs::write(&exe, b"");
        }
    }
}
