//! `twlab matrix`: the same cases on several kernels (the host's and Debian kernels booted
//! under QEMU), side by side.

mod columns;
mod guest;
mod image;
mod initramfs;
mod kernel;
mod merge;
mod table;
mod watch;

pub use columns::{Column, MatrixOptions, guest_column, host_column};
pub use kernel::default_cache;
pub use merge::{MergeError, Merged, merge, merge_files, parse_shard, read_shard};
pub use table::{FORMAT, Matrix, MatrixKind, column_link};
