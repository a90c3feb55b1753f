//! Gives glibc's freed heap back to the system after each commit of a sync.
//!
//! Why: glibc's malloc keeps memory freed inside its per-thread arenas
//! resident (it only returns the top of each), and a sync frees a row
//! group's Arrow batches and DuckDB's staging after every commit. A 5M-row
//! sync peaked at 342–364 MB that way and at 314–318 MB with a
//! `malloc_trim` after each commit, at the same speed (the README's
//! Performance section has the runs). Holding the mmap threshold at 128 KiB
//! (`MALLOC_MMAP_THRESHOLD_=131072`) goes lower, 285 MB, but a fifth slower,
//! so it is the operator's choice, not ours.

/// Returns the free pages of every arena to the system (`malloc_trim(0)`).
/// Called on the commit's own blocking thread after the commit, where a
/// few milliseconds of walking the arenas cost nothing the sync waits for.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointers and has no preconditions;
    // glibc serialises it with every other allocator call.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl, macOS) have no such call, nor glibc's habit.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn resident_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    #[test]
    fn memory_freed_inside_an_arena_goes_back_to_the_system() {
        // 64 MiB in 64 KiB chunks (below the mmap threshold, so from the
        // arena), touched, then freed below a chunk still live at the top:
        // free() alone cannot return them.
        let chunks: Vec<Vec<u8>> = (0..1024)
            .map(|_| std::hint::black_box(vec![1u8; 64 * 1024]))
            .collect();
        let guard = std::hint::black_box(vec![1u8; 1024]);
        drop(chunks);
        let before = resident_bytes();
        release_free_memory();
        let after = resident_bytes();
        drop(guard);
        assert!(
            before.saturating_sub(after) >= 32 << 20,
            "resident {before} bytes before the trim, {after} after"
        );
    }
}
