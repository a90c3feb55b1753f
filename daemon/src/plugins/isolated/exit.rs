//! Turning how a plugin host process ended into a message an operator can
//! act on: the signal by name, a hit memory limit, the plugin's last words.

use std::process::ExitStatus;

/// The conventional name of signal `n` (the numbers POSIX systems share,
/// and Linux's for the rest).
pub fn signal_name(n: i32) -> Option<&'static str> {
    Some(match n {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        #[cfg(target_os = "linux")]
        7 => "SIGBUS",
        #[cfg(target_os = "linux")]
        31 => "SIGSYS",
        #[cfg(not(target_os = "linux"))]
        10 => "SIGBUS",
        _ => return None,
    })
}

/// `2147483648` → `2 GiB`, `536870912` → `512 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if v.fract() == 0.0 {
                format!("{v} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{n} bytes")
}

/// Words an allocator prints when it cannot get memory (Rust's
/// `handle_alloc_error`, C++'s `std::bad_alloc`, glibc's malloc).
fn out_of_memory(last_words: &[String]) -> bool {
    last_words.iter().any(|l| {
        (l.contains("memory allocation of") && l.contains("failed"))
            || l.contains("bad_alloc")
            || l.contains("Cannot allocate memory")
            || l.contains("out of memory")
    })
}

/// Why the host process of plugin `plugin` ended while the daemon was
/// waiting for it, e.g. "plugin `x` crashed: killed by signal 11 (SIGSEGV)".
/// `last_words` are its last lines on stderr, already scrubbed.
pub fn describe(
    plugin: &str,
    status: ExitStatus,
    memory_limit: u64,
    last_words: &[String],
) -> String {
    let how = match (signal_of(status), status.code()) {
        (Some(sig), _) => match signal_name(sig) {
            Some(name) => format!("killed by signal {sig} ({name})"),
            None => format!("killed by signal {sig}"),
        },
        (None, Some(code)) => format!("exited with status {code}"),
        (None, None) => format!("ended ({status})"),
    };
    let mut text = if out_of_memory(last_words) {
        format!(
            "plugin `{plugin}` ran out of memory: it hit its memory_limit of {} and was stopped ({how}); \
             raise the source's memory_limit if it really needs more",
            human_bytes(memory_limit)
        )
    } else if status.success() {
        format!("plugin `{plugin}` exited in the middle of its work (status 0)")
    } else if signal_of(status).is_some() {
        format!("plugin `{plugin}` crashed: {how}")
    } else {
        format!("plugin `{plugin}` {how} in the middle of its work")
    };
    // The allocator's complaint if that was it, else the last line that is
    // not part of a backtrace.
    let telling = last_words
        .iter()
        .rev()
        .find(|l| out_of_memory(std::slice::from_ref(l)))
        .or_else(|| last_words.iter().rev().find(|l| !backtrace_noise(l)));
    if let Some(last) = telling {
        let mut last = last.trim().to_string();
        if last.len() > 300 {
            let mut cut = 300;
            while !last.is_char_boundary(cut) {
                cut -= 1;
            }
            last.truncate(cut);
            last.push('…');
        }
        text.push_str(&format!(" — its last words on stderr: {last}"));
    }
    text
}

/// Lines of a Rust backtrace and its footnote, which say nothing alone.
fn backtrace_noise(line: &str) -> bool {
    line.starts_with(char::is_whitespace)
        || line.starts_with("stack backtrace")
        || line.starts_with("note: ")
        || line
            .split_once(": ")
            .is_some_and(|(n, _)| n.trim().parse::<u32>().is_ok())
}

#[cfg(unix)]
fn signal_of(status: ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&status)
}

#[cfg(not(unix))]
fn signal_of(_: ExitStatus) -> Option<i32> {
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn signals_exits_and_memory_limits_are_named() {
        let segv = ExitStatus::from_raw(11);
        assert_eq!(
            describe("x", segv, 1 << 30, &[]),
            "plugin `x` crashed: killed by signal 11 (SIGSEGV)"
        );
        let abort = ExitStatus::from_raw(6);
        let words = [
            "memory allocation of 16777216 bytes failed".to_string(),
            "stack backtrace:".into(),
            "   0: std::backtrace".into(),
            "note: Some details are omitted".into(),
        ];
        let oom = describe("x", abort, 512 << 20, &words);
        assert!(
            oom.starts_with("plugin `x` ran out of memory: it hit its memory_limit of 512 MiB and was stopped (killed by signal 6 (SIGABRT))"),
            "{oom}"
        );
        assert!(
            oom.ends_with("its last words on stderr: memory allocation of 16777216 bytes failed"),
            "{oom}"
        );
        let exit3 = ExitStatus::from_raw(3 << 8);
        assert_eq!(
            describe("x", exit3, 1, &[]),
            "plugin `x` exited with status 3 in the middle of its work"
        );
        assert_eq!(human_bytes(4 << 30), "4 GiB");
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
    }
}
