//! Kernel log lines written while a case ran, read from /dev/kmsg (read only; the log is the
//! host's, shared by every namespace). Opened at the start of the case and positioned at the
//! end of the log, so only later records are read. Records from cases running alongside can
//! appear too: expectations should name messages only this case can cause.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

pub struct KernelLog {
    file: File,
}

#[derive(Debug, thiserror::Error)]
#[error("failed to read the kernel log (/dev/kmsg): {0}")]
pub struct KernelLogError(std::io::Error);

impl KernelLog {
    /// Start watching: later `read_new` returns the records logged after this call.
    pub fn start() -> Result<KernelLog, KernelLogError> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .map_err(KernelLogError)?;
        file.seek(SeekFrom::End(0)).map_err(KernelLogError)?;
        Ok(KernelLog { file })
    }

    /// The message text of every record logged since `start` (or the last call).
    pub fn read_new(&mut self) -> Result<Vec<String>, KernelLogError> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            // Each read returns one record: "prio,seq,usec,flags;message\n[ continuation]".
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let first = rec.lines().next().unwrap_or_default();
                    out.push(
                        first
                            .split_once(';')
                            .map(|(_, m)| m)
                            .unwrap_or(first)
                            .to_string(),
                    );
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // A record overwritten before we read it: skip on.
                Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => continue,
                Err(e) => return Err(KernelLogError(e)),
            }
        }
        Ok(out)
    }
}
