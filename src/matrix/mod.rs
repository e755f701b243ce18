//! `twlab matrix`: the same cases on several kernels (the host's and Debian kernels booted
//! under QEMU), side by side.

mod columns;
mod guest;
mod image;
mod initramfs;
mod kernel;
mod table;

pub use columns::{Column, MatrixOptions, guest_column, host_column};
pub use kernel::default_cache;
pub use table::{FORMAT, Matrix, MatrixKind};
