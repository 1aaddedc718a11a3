//! The global allocator: jemalloc, except that very large requests are
//! reserved with `mmap(MAP_NORESERVE)`.
//!
//! Why jemalloc: request frames and fetch buffers are often ≥128 KiB. glibc
//! either keeps such freed blocks in its heap for good (its adaptive mmap
//! threshold: 750 MB resident for 210 MB in use at 1,000 partitions) or, with a
//! fixed threshold, maps fresh zeroed pages for each one (page faults were 15%
//! of produce CPU). jemalloc reuses them and returns idle pages after a decay.
//!
//! Why: `kafka-protocol` sizes a decoded array with `Vec::with_capacity(count)`
//! straight from the wire, before reading any element. A hostile count near
//! 2^31 asks for hundreds of gigabytes; the system allocator refuses and Rust
//! aborts the whole process. Reserved-but-untouched address space costs
//! nothing, the decoder then fails at the end of the (bounded) frame, the
//! vector is dropped and the mapping released — one bad request closes one
//! connection instead of the broker.

use std::alloc::{GlobalAlloc, Layout};

use tikv_jemallocator::Jemalloc;
use std::ptr;

/// jemalloc's start-up options. A background thread purges idle dirty pages
/// after their decay time, so an idle broker gives memory back even when no
/// further allocation happens to trigger the purge.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 23] = b"background_thread:true\0";

/// Requests at least this large are mapped instead of malloc'ed.
const HUGE: usize = 1 << 30;

/// jemalloc with lazily-committed huge allocations.
pub struct BrokerAllocator;

fn page_size() -> usize {
    4096
}

unsafe fn map(size: usize) -> *mut u8 {
    let p = libc::mmap(
        ptr::null_mut(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
        0,
    );
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p as *mut u8
    }
}

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= page_size()
}

unsafe impl GlobalAlloc for BrokerAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            map(layout.size())
        } else {
            Jemalloc.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            map(layout.size()) // anonymous mappings are zero-filled
        } else {
            Jemalloc.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            libc::munmap(ptr as *mut libc::c_void, layout.size());
        } else {
            Jemalloc.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        if !is_huge(&layout) && !is_huge(&new_layout) {
            return Jemalloc.realloc(ptr, layout, new_size);
        }
        let new = self.alloc(new_layout);
        if !new.is_null() {
            ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservation_is_cheap_and_released() {
        let a = BrokerAllocator;
        let layout = Layout::from_size_align(200 << 30, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null(), "200 GiB of address space is reservable");
            *p = 7; // touching one page commits one page
            assert_eq!(*p, 7);
            a.dealloc(p, layout);
        }
    }

    #[test]
    fn small_allocations_use_jemalloc() {
        let a = BrokerAllocator;
        let layout = Layout::from_size_align(64, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            let p = a.realloc(p, layout, 128);
            a.dealloc(p, Layout::from_size_align(128, 8).unwrap());
        }
    }
}
