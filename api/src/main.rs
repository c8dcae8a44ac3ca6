//! The `varsel` binary. All wiring lives in `varsel_api`.

fn main() -> std::process::ExitCode {
    varsel_api::cli::main()
}
