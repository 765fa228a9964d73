//! The shim's executable: `berth-shim SPEC_JSON`, started by the engine for each container
//! (see berth_engine::shim).

use std::ffi::OsString;

fn main() {
    berth_runtime::name_service::use_builtin_sources();
    let argv: Vec<OsString> = std::env::args_os().collect();
    // A container's init that re-executed itself from the read-only copy of this binary.
    if argv.get(1).is_some_and(|a| a == berth_runtime::RESUME_ARG) {
        let memfd = argv.get(2).and_then(|a| a.to_str()).unwrap_or_default();
        berth_runtime::resume_init(memfd);
    }
    // The container's init is cloned from this process: it must run from a read-only copy
    // of its binary, so the container cannot overwrite it (as runc's CVE-2019-5736).
    if let Err(e) = berth_runtime::exe_guard::ensure_readonly_exe(&argv) {
        println!(
            "{}",
            serde_json::json!({"failed": {"error": e.to_string()}})
        );
        std::process::exit(1);
    }
    let Some(spec) = argv.get(1).and_then(|a| a.to_str()) else {
        eprintln!("usage: berth-shim SPEC_JSON (started by the berth engine)");
        std::process::exit(2);
    };
    berth_engine::shim::main(spec)
}
