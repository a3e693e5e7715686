//! What every rset command shares: a failure with its exit status, and output that
//! treats a closed pipe (`rset show | head`) as success.

use std::io::Write;

use serde::Serialize;

/// Why a command failed: a one-line message (printed after the command's name) and
/// the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The message, without the command's name.
    pub message: String,
    /// The exit status (2: bad arguments).
    pub code: u8,
}

impl Failure {
    /// Bad arguments or input: exit status 2.
    pub fn usage(message: impl ToString) -> Failure {
        Failure {
            message: message.to_string(),
            code: 2,
        }
    }

    /// Anything else: exit status 1.
    pub fn runtime(message: impl ToString) -> Failure {
        Failure {
            message: message.to_string(),
            code: 1,
        }
    }

    /// With this exit status.
    pub fn with_code(mut self, code: u8) -> Failure {
        self.code = code;
        self
    }

    /// Prints `command: message` to stderr and gives the exit status.
    pub fn report(&self, command: &str) -> std::process::ExitCode {
        eprintln!("{command}: {}", self.message);
        std::process::ExitCode::from(self.code)
    }
}

/// Writes to stdout; a closed pipe is not an error.
///
/// # Errors
/// Any other write error.
pub fn emit(text: &str) -> Result<(), Failure> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::runtime(format!("writing output: {e}"))),
    }
}

/// Prints `value` as pretty JSON and a newline.
///
/// # Errors
/// Encoding or writing failed.
pub fn json(value: &impl Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::runtime(format!("encoding JSON: {e}")))?;
    emit(&(text + "\n"))
}
