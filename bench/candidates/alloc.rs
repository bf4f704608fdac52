//! The global allocator of the Lambda binaries: mimalloc, set up for a small footprint.
//!
//! Every AWS call allocates a few thousand short-lived objects inside the SDK.
//! With mimalloc a warm request takes 16 % fewer instructions than with glibc's malloc
//! (bench/README.md). Out of the box it commits arena memory eagerly, which took
//! peak RSS at 1000 ids from 14 to 21-28 MiB; [`tune`] turns that off. Freed pages are
//! handed back after mimalloc's default delay (1 s): handing them back at once made a
//! 1000-id request fault 500 pages back in and cost 25 % more CPU time (bench/README.md).

use std::os::raw::c_int;

pub use mimalloc::MiMalloc;

// An option number from mimalloc v3's `mi_option_e` (mimalloc.h). libmimalloc-sys,
// which does not name it, is pinned in Cargo.toml, and a test checks the number
// against the default of the linked library.
const ARENA_EAGER_COMMIT: c_int = 4;

/// Commit arena memory on demand. Must run before
/// the first allocation, which reserves the first arena; the Rust runtime allocates
/// before `main`, hence [`tune_before_main`].
pub fn tune() {
    // SAFETY: `mi_option_set` only stores an integer in mimalloc's option table; any
    // value is valid for this option.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
    }
}

/// [`tune`] as an `.init_array` entry, which the loader runs before the Rust runtime
/// starts; registered by [`use_tuned_allocator!`](crate::use_tuned_allocator).
pub extern "C" fn tune_before_main() {
    tune();
}

/// Makes mimalloc the binary's allocator and tunes it before anything allocates. Put
/// it once at the top of each Lambda binary.
#[macro_export]
macro_rules! use_tuned_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::alloc::MiMalloc = $crate::alloc::MiMalloc;
        #[cfg(target_os = "linux")]
        #[used]
        #[unsafe(link_section = ".init_array")]
        static TUNE_ALLOCATOR: extern "C" fn() = $crate::alloc::tune_before_main;
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_number_names_the_option_we_mean() {
        // GIVEN the linked mimalloc, not yet tuned in this process (the test binary
        // keeps the system allocator)
        // WHEN its options are read by our number, and by purge_delay's (15)
        // SAFETY: reading an option is a plain load from mimalloc's option table.
        let (eager, delay) = unsafe {
            (
                libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT),
                libmimalloc_sys::mi_option_get(15),
            )
        };
        // THEN they hold the documented defaults of exactly those options
        // (arena_eager_commit = 2; purge_delay = 1000 ms, the delay relied on above)
        assert_eq!((eager, delay), (2, 1000));
    }
}
