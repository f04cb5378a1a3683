//! Writing to stdout and stderr without panicking: a closed pipe is an ordinary outcome
//! for a command-line tool (`client list | head -n1`). The host's other commands print
//! through these too.

/// The exit code when stdout was closed before the result was written (`client list | head
/// -n1`): 128 + SIGPIPE, what shells report for a writer killed by a broken pipe.
pub const EXIT_BROKEN_PIPE: i32 = 141;

/// The exit code of errors (a gRPC or usage error, and a result that could not be written).
pub(super) const EXIT_ERROR: i32 = 2;

/// Writes `text` to stdout and flushes it. A closed stdout (EPIPE) or any other write error is
/// returned instead of panicking as `println!` would.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// The exit code after writing the result to stdout failed: [`EXIT_BROKEN_PIPE`], quietly,
/// when the reader closed the pipe (it did not want more: not an error to report), else
/// `otherwise`, with the reason on stderr (a full disk must not pass for a closed pipe).
pub fn write_failure_code(error: &std::io::Error, otherwise: i32) -> i32 {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        EXIT_BROKEN_PIPE
    } else {
        print_stderr(&format!(
            "error: cannot write the result to stdout: {error}"
        ));
        otherwise
    }
}

/// Writes one line to stderr; a closed stderr is ignored (there is nowhere left to say it).
pub fn print_stderr(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_exits_141_and_other_write_errors_keep_their_own_code() {
        let closed = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(write_failure_code(&closed, 2), EXIT_BROKEN_PIPE);
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(write_failure_code(&full, 2), 2);
    }
}
