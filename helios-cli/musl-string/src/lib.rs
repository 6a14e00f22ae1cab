//! `memcpy`, `memmove`, `memcmp` and `bcmp` for the static musl build of `helios`.
//!
//! musl's own are short: on x86_64 `memcpy` and `memmove` copy with `rep movsq` plus a byte at a
//! time around it, and `memcmp` compares a byte at a time. That is fine for long blocks but slow
//! for the short ones a Rust program moves all the time (a B-tree node's entries, a string, a
//! policy value of 16–64 bytes), and `Value` comparisons inside the policy engine compare
//! strings with `memcmp` (docs/performance.md, "musl's string functions replaced"). glibc picks
//! tuned versions at run time; a static musl binary cannot, so `helios` links these instead:
//! overlapping 8- and 16-byte loads and stores for up to 64 bytes, a 16-byte loop above that
//! (`rep movsb` for long forward copies), and a word at a time for comparisons.
//!
//! Only the `x86_64` musl build exports them (`#[no_mangle]`); the functions themselves build
//! everywhere, so that their tests run on any host. `no_builtins` keeps the compiler from turning
//! their loops back into calls to the functions being defined.

#![no_std]
#![no_builtins]

use core::ptr::{read_unaligned, write_unaligned};

/// At or below this many bytes a copy is done with at most four loads and four stores.
const SMALL: usize = 64;

/// From this many bytes a forward copy uses `rep movsb`, fast on every x86_64 of the last decade
/// for long blocks (and slow to start for short ones).
const LONG: usize = 4096;

/// Copies `n <= SMALL` bytes, loading them all before storing any, so the two may overlap.
///
/// # Safety
/// `src` must be valid for reading and `dst` for writing `n` bytes.
#[inline(always)]
unsafe fn copy_small(dst: *mut u8, src: *const u8, n: usize) {
    unsafe {
        if n >= 32 {
            let a = read_unaligned(src.cast::<u128>());
            let b = read_unaligned(src.add(16).cast::<u128>());
            let c = read_unaligned(src.add(n - 32).cast::<u128>());
            let d = read_unaligned(src.add(n - 16).cast::<u128>());
            write_unaligned(dst.cast::<u128>(), a);
            write_unaligned(dst.add(16).cast::<u128>(), b);
            write_unaligned(dst.add(n - 32).cast::<u128>(), c);
            write_unaligned(dst.add(n - 16).cast::<u128>(), d);
        } else if n >= 16 {
            copy_ends::<u128>(dst, src, n);
        } else if n >= 8 {
            copy_ends::<u64>(dst, src, n);
        } else if n >= 4 {
            copy_ends::<u32>(dst, src, n);
        } else if n >= 2 {
            copy_ends::<u16>(dst, src, n);
        } else if n == 1 {
            *dst = *src;
        }
    }
}

/// Copies `n` bytes, `size_of::<T>() <= n <= 2 * size_of::<T>()`, as a `T` from each end (the two
/// overlapping in the middle), both loaded before either is stored.
///
/// # Safety
/// As [`copy_small`].
#[inline(always)]
unsafe fn copy_ends<T>(dst: *mut u8, src: *const u8, n: usize) {
    unsafe {
        let tail = n - size_of::<T>();
        let a = read_unaligned(src.cast::<T>());
        let b = read_unaligned(src.add(tail).cast::<T>());
        write_unaligned(dst.cast::<T>(), a);
        write_unaligned(dst.add(tail).cast::<T>(), b);
    }
}

/// Copies `n > SMALL` bytes front to back, 16 at a time; safe when `dst` is below `src` or the
/// two do not overlap (each block is loaded before any store reaches it; the last, partial one
/// is loaded first).
///
/// # Safety
/// As [`copy_small`].
unsafe fn copy_forward(dst: *mut u8, src: *const u8, n: usize) {
    unsafe {
        let last = read_unaligned(src.add(n - 16).cast::<u128>());
        let mut i = 0;
        while n - i > 16 {
            write_unaligned(
                dst.add(i).cast::<u128>(),
                read_unaligned(src.add(i).cast::<u128>()),
            );
            i += 16;
        }
        write_unaligned(dst.add(n - 16).cast::<u128>(), last);
    }
}

/// Copies `n > SMALL` bytes back to front, 16 at a time; safe when `dst` is above `src`.
///
/// # Safety
/// As [`copy_small`].
unsafe fn copy_backward(dst: *mut u8, src: *const u8, n: usize) {
    unsafe {
        let first = read_unaligned(src.cast::<u128>());
        let mut i = n;
        while i > 16 {
            i -= 16;
            write_unaligned(
                dst.add(i).cast::<u128>(),
                read_unaligned(src.add(i).cast::<u128>()),
            );
        }
        write_unaligned(dst.cast::<u128>(), first);
    }
}

/// `rep movsb`: the CPU's own copy, for long forward copies.
///
/// # Safety
/// As [`copy_small`]; `dst` below `src` or no overlap.
#[cfg(target_arch = "x86_64")]
unsafe fn copy_long(dst: *mut u8, src: *const u8, n: usize) {
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
use copy_forward as copy_long;

/// `memcpy`: `n` bytes from `src` to `dst`, front to back (so also right when `dst` is below an
/// overlapping `src`, which [`r#move`] relies on).
///
/// # Safety
/// `src` must be valid for reading and `dst` for writing `n` bytes; if they overlap, `dst` must
/// be below `src`.
#[inline]
pub unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) {
    unsafe {
        if n <= SMALL {
            copy_small(dst, src, n);
        } else if n < LONG {
            copy_forward(dst, src, n);
        } else {
            copy_long(dst, src, n);
        }
    }
}

/// `memmove`: `n` bytes from `src` to `dst`, which may overlap.
///
/// # Safety
/// `src` must be valid for reading and `dst` for writing `n` bytes.
#[inline]
pub unsafe fn r#move(dst: *mut u8, src: *const u8, n: usize) {
    unsafe {
        // `dst` above an overlapping `src` (and too long to load whole first): back to front.
        if n > SMALL && (dst as usize).wrapping_sub(src as usize) < n {
            copy_backward(dst, src, n);
        } else {
            copy(dst, src, n);
        }
    }
}

/// `memcmp`: the difference of the first differing bytes (as unsigned), or 0.
///
/// # Safety
/// `a` and `b` must be valid for reading `n` bytes.
#[inline]
pub unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    /// The first differing bytes of two different words, little-endian: the lowest set bit of
    /// their difference.
    fn first_difference(x: u64, y: u64) -> i32 {
        let shift = (x ^ y).trailing_zeros() & !7;
        i32::from((x >> shift) as u8) - i32::from((y >> shift) as u8)
    }
    unsafe {
        if n < 8 {
            for i in 0..n {
                let (x, y) = (*a.add(i), *b.add(i));
                if x != y {
                    return i32::from(x) - i32::from(y);
                }
            }
            return 0;
        }
        let mut i = 0;
        while n - i > 8 {
            let x = u64::from_le(read_unaligned(a.add(i).cast::<u64>()));
            let y = u64::from_le(read_unaligned(b.add(i).cast::<u64>()));
            if x != y {
                return first_difference(x, y);
            }
            i += 8;
        }
        // The last word, overlapping the one before: its bytes before `n - 8` are equal.
        let x = u64::from_le(read_unaligned(a.add(n - 8).cast::<u64>()));
        let y = u64::from_le(read_unaligned(b.add(n - 8).cast::<u64>()));
        if x != y { first_difference(x, y) } else { 0 }
    }
}

/// The C symbols, in the static musl build of `helios` only.
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
mod exported {
    /// C `memcpy`.
    ///
    /// # Safety
    /// As [`super::copy`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        unsafe { super::copy(dst, src, n) };
        dst
    }

    /// C `memmove`.
    ///
    /// # Safety
    /// As [`super::r#move`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        unsafe { super::r#move(dst, src, n) };
        dst
    }

    /// C `memcmp`.
    ///
    /// # Safety
    /// As [`super::compare`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        unsafe { super::compare(a, b, n) }
    }

    /// C `bcmp`: zero when equal.
    ///
    /// # Safety
    /// As [`super::compare`].
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        unsafe { super::compare(a, b, n) }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    /// Sizes around every boundary of the code (the small cases, 64, the loops' 16-byte steps,
    /// `rep movsb` from 4,096) and beyond.
    fn sizes() -> impl Iterator<Item = usize> {
        (0..=300).chain([1000, 4095, 4096, 4097, 5000, 10_007])
    }

    /// Bytes that differ from place to place (a repeating pattern would hide a misplaced block).
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ seed)
            .collect()
    }

    #[test]
    fn copy_copies_every_size_at_every_alignment() {
        for n in sizes() {
            for (src_at, dst_at) in [(0, 0), (1, 0), (0, 3), (7, 9), (15, 1)] {
                let src = pattern(n + 16, 1);
                let mut dst = pattern(n + 32, 2);
                let mut expected = dst.clone();
                expected[dst_at..dst_at + n].copy_from_slice(&src[src_at..src_at + n]);
                unsafe { super::copy(dst.as_mut_ptr().add(dst_at), src.as_ptr().add(src_at), n) };
                assert_eq!(dst, expected, "n {n}, src at {src_at}, dst at {dst_at}");
            }
        }
    }

    #[test]
    fn move_moves_every_size_over_every_overlap() {
        for n in sizes() {
            // From far below to far above, through every overlap near the block.
            let shifts = (-70_isize..=70).chain([-(n as isize) - 1, n as isize + 1]);
            for shift in shifts {
                let base = n + 80;
                let mut buf = pattern(n + 2 * base, 3);
                let src = base;
                let dst = (base as isize + shift) as usize;
                let mut expected = buf.clone();
                expected.copy_within(src..src + n, dst);
                unsafe {
                    let p = buf.as_mut_ptr();
                    super::r#move(p.add(dst), p.add(src), n);
                }
                assert_eq!(buf, expected, "n {n}, shift {shift}");
            }
        }
    }

    #[test]
    fn compare_orders_as_unsigned_bytes() {
        let sign = |x: i32| x.signum();
        for n in sizes() {
            let a = pattern(n, 4);
            assert_eq!(
                unsafe { super::compare(a.as_ptr(), a.clone().as_ptr(), n) },
                0
            );
            // A difference at every place (at most 300 of them), both ways, with high bytes.
            for at in (0..n).take(300) {
                for (x, y) in [(0x00_u8, 0x01_u8), (0x7f, 0x80), (0xfe, 0xff), (0x01, 0xff)] {
                    let (mut l, mut r) = (a.clone(), a.clone());
                    l[at] = x;
                    r[at] = y;
                    // A later difference the other way must not count.
                    if at + 1 < n {
                        l[n - 1] = 0xff;
                        r[n - 1] = 0x00;
                    }
                    let got = unsafe { super::compare(l.as_ptr(), r.as_ptr(), n) };
                    assert_eq!(sign(got), -1, "n {n}, at {at}, {x:#x} < {y:#x}");
                    assert_eq!(i32::from(x) - i32::from(y), got, "n {n}, at {at}");
                    let got = unsafe { super::compare(r.as_ptr(), l.as_ptr(), n) };
                    assert_eq!(sign(got), 1, "n {n}, at {at}");
                }
            }
        }
    }
}
