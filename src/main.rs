//! The `bansuri` binary: everything is in the library; see `bansuri::cli`.

fn main() {
    std::process::exit(bansuri::cli::main());
}
