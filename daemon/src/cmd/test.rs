//! `conveyor test FILE`: runs a rule-test file offline (see
//! `docs/rule-tests.md`); exit 0 when every evaluation is as expected, 1
//! when one is not, 2 when the file or its config is broken.

use std::path::Path;
use std::process::ExitCode;

use crate::ruletest::{self, Outcome};
use crate::{EXIT_CONFIG, EXIT_FAILED};

pub fn test_command(file: &Path) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match ruletest::run(file, &mut stdout) {
        Outcome::Passed { .. } => ExitCode::SUCCESS,
        Outcome::Failed { .. } => ExitCode::from(EXIT_FAILED),
        Outcome::Invalid(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "conveyor test: {} problem(s) in {} or its config; tests not run to the end",
                problems.len(),
                file.display()
            );
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
