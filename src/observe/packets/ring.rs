//! The tap's receive ring (PACKET_RX_RING, TPACKET_V2): the kernel copies each frame's first
//! bytes into a slot of a memory-mapped ring in the softirq that saw it, and frees its
//! reference to the packet there and then.
//!
//! Why not recvmsg: without a ring, AF_PACKET queues a clone of every frame on the socket
//! until the reader reads it, and a clone shares the data with the skb TCP holds. TCP does not
//! coalesce a shared segment into its receive queue (skb_try_coalesce refuses a cloned skb),
//! so a tapped receiver's buffer filled with more, smaller skbs than an untapped one's, and a
//! linger-0 abort mid-upload delivered 119288 bytes instead of 127480. With the ring, TCP's
//! skbs are never cloned for the tap and a tapped run judges as an untapped one.

use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::errno::Errno;
use nix::libc;

/// Slot bytes: the kernel puts the frame at offset 66 (TPACKET2_HDRLEN aligned, less the
/// Ethernet header), so 512 keeps 446 bytes of each frame, every header of a TCP/IP frame.
pub const FRAME_SIZE: usize = 512;
/// One block: 128 slots (a block must be a multiple of the page size and hold whole slots).
const BLOCK_SIZE: usize = 64 * 1024;
/// 64 blocks, 8192 slots, 4 MiB per tap: a full-rate burst of small segments fits while the
/// reader sleeps in poll.
const BLOCKS: usize = 64;

/// One frame in the ring, borrowed until [`Ring::release`].
pub struct RingFrame<'a> {
    /// The bytes copied (at most the slot's room).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub wire_len: usize,
    pub pkttype: u8,
    pub hatype: u16,
    /// The kernel's stamp (the skb's, else the real-time clock when the frame was copied).
    pub stamp: std::time::Duration,
}

/// A mapped RX ring on an AF_PACKET socket.
pub struct Ring {
    base: NonNull<u8>,
    len: usize,
    slots: usize,
    next: usize,
}

// SAFETY: the mapping is owned by this value; the kernel is the only other party and it
// hands slots over through their status word.
unsafe impl Send for Ring {}

impl Ring {
    /// Switches `fd` to TPACKET_V2 and maps a ring on it. Must come before bind, so that no
    /// frame is queued the old way.
    pub fn map(fd: &OwnedFd) -> Result<Ring, (&'static str, Errno)> {
        let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        setsockopt_raw(fd, libc::PACKET_VERSION, &version).map_err(|e| ("PACKET_VERSION", e))?;
        let req = libc::tpacket_req {
            tp_block_size: BLOCK_SIZE as libc::c_uint,
            tp_block_nr: BLOCKS as libc::c_uint,
            tp_frame_size: FRAME_SIZE as libc::c_uint,
            tp_frame_nr: (BLOCK_SIZE / FRAME_SIZE * BLOCKS) as libc::c_uint,
        };
        setsockopt_raw(fd, libc::PACKET_RX_RING, &req).map_err(|e| ("PACKET_RX_RING", e))?;
        let len = BLOCK_SIZE * BLOCKS;
        // SAFETY: a fresh shared mapping of the socket's ring, of the size the kernel made.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(("mmap of PACKET_RX_RING", Errno::last()));
        }
        let base =
            NonNull::new(ptr.cast::<u8>()).ok_or(("mmap of PACKET_RX_RING", Errno::EFAULT))?;
        Ok(Ring {
            base,
            len,
            slots: BLOCK_SIZE / FRAME_SIZE * BLOCKS,
            next: 0,
        })
    }

    fn slot(&self, i: usize) -> *mut u8 {
        // Slots never straddle blocks (BLOCK_SIZE is a multiple of FRAME_SIZE), so slot i is
        // at i * FRAME_SIZE.
        // SAFETY: i < slots, so the offset is inside the mapping.
        unsafe { self.base.as_ptr().add(i * FRAME_SIZE) }
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: tp_status is the first, 4-aligned u32 of a 16-aligned slot inside the
        // mapping; the kernel and this reader exchange the slot through it.
        unsafe { &*self.slot(i).cast::<AtomicU32>() }
    }

    /// The next frame the kernel has filled, in ring order, or `None` when the next slot is
    /// still the kernel's.
    pub fn next(&self) -> Option<RingFrame<'_>> {
        let i = self.next;
        if self.status(i).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return None;
        }
        let slot = self.slot(i);
        // SAFETY: the slot is the reader's (TP_STATUS_USER) until release; the header is
        // plain data at its start, and sockaddr_ll follows at TPACKET_ALIGN(header).
        let (hdr, sll) = unsafe {
            let hdr = std::ptr::read(slot.cast::<libc::tpacket2_hdr>());
            let at = std::mem::size_of::<libc::tpacket2_hdr>().next_multiple_of(16);
            let sll = std::ptr::read_unaligned(slot.add(at).cast::<libc::sockaddr_ll>());
            (hdr, sll)
        };
        let mac = usize::from(hdr.tp_mac);
        let copied = (hdr.tp_snaplen as usize).min(FRAME_SIZE.saturating_sub(mac));
        // SAFETY: tp_mac + tp_snaplen lies inside the slot (the kernel cut the copy to it);
        // the min above keeps it so even if it did not.
        let data = unsafe { std::slice::from_raw_parts(slot.add(mac), copied) };
        Some(RingFrame {
            data,
            wire_len: hdr.tp_len as usize,
            pkttype: sll.sll_pkttype,
            hatype: sll.sll_hatype,
            stamp: std::time::Duration::new(u64::from(hdr.tp_sec), hdr.tp_nsec),
        })
    }

    /// Hands the frame [`Ring::next`] returned back to the kernel and moves on.
    pub fn release(&mut self) {
        self.status(self.next)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.next = (self.next + 1) % self.slots;
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; no RingFrame outlives &self.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

fn setsockopt_raw<T>(fd: &OwnedFd, name: libc::c_int, value: &T) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe `value`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    Errno::result(rc).map(drop)
}
