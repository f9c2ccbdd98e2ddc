//! The global allocator's guard: an allocation that fails ends tenx with a
//! message that says so and exit status 1, instead of the runtime's abort
//! (SIGABRT, and a core dump where they are on). Nothing here allocates:
//! the message is composed in a fixed buffer and written with write(2).
//!
//! Fallible allocations (`try_reserve`) are not told apart from the rest:
//! tenx has none, and with memory exhausted nothing it would do next could
//! succeed either.

use std::alloc::{GlobalAlloc, Layout};

/// An allocator that never returns null.
pub struct Guarded<A>(pub A);

// SAFETY: every call is passed on to the inner allocator unchanged; only a
// null answer is turned into an exit, which upholds the contract (a
// returned pointer is always one the inner allocator gave).
unsafe impl<A: GlobalAlloc> GlobalAlloc for Guarded<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the inner allocator's.
        let p = unsafe { self.0.alloc(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if p.is_null() {
            out_of_memory(new_size);
        }
        p
    }
}

/// The message for a failed allocation of `size` bytes, in `buf`; its
/// length.
fn compose(size: usize, buf: &mut [u8; 256]) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        for &b in bytes {
            if n < buf.len() {
                buf[n] = b;
                n += 1;
            }
        }
    };
    put(b"tenx: out of memory: an allocation of ");
    let mut digits = [0u8; 20];
    let mut d = digits.len();
    let mut v = size;
    loop {
        d -= 1;
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[d..]);
    put(
        b" bytes failed. Nothing was saved; free memory (or raise `ulimit -v`) and run it again.\n",
    );
    n
}

fn out_of_memory(size: usize) -> ! {
    let mut buf = [0u8; 256];
    let n = compose(size, &mut buf);
    #[cfg(unix)]
    {
        // The explorer's terminal back first: alternate screen left, mouse
        // off, cursor shown (raw mode stays; the shell resets it).
        if crate::base::terminal::owned() {
            let restore = b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1049l\x1b[?25h\r\n";
            // SAFETY: write(2) of a static buffer to standard output.
            unsafe { libc::write(1, restore.as_ptr().cast(), restore.len()) };
        }
        // SAFETY: write(2) of a stack buffer, then _exit(2), which runs no
        // destructors or handlers that could allocate.
        unsafe {
            libc::write(2, buf.as_ptr().cast(), n);
            libc::_exit(1)
        }
    }
    #[cfg(not(unix))]
    {
        let _ = n;
        std::process::abort()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_size_without_allocating() {
        let mut buf = [0u8; 256];
        let n = compose(1_073_741_824, &mut buf);
        let text = std::str::from_utf8(&buf[..n]).expect("utf-8");
        assert!(text.starts_with("tenx: out of memory: an allocation of 1073741824 bytes failed."));
        assert!(text.ends_with('\n'));
        let n = compose(0, &mut buf);
        assert!(
            std::str::from_utf8(&buf[..n])
                .expect("utf-8")
                .contains(" 0 bytes")
        );
    }
}
