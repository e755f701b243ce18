//! Kernel images: the release string and compressed payload of an x86 bzImage, and the
//! uncompressed ELF vmlinux extracted from it.
//!
//! Why extract: under TCG (no KVM here) the kernel's own decompressor runs emulated and costs
//! about 3.5 s per boot; QEMU boots the ELF vmlinux directly. Extraction happens once per
//! kernel and is cached; when the payload format is one we cannot decompress, the bzImage
//! boots as it is (slower, same result).

use std::io::Read;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("failed to read kernel image {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} is not an x86 bzImage (no `HdrS` boot header): pass a vmlinuz from /boot or a Debian linux-image package"
    )]
    NotBzImage { path: String },
    #[error("{path}: the boot header points outside the file (truncated image?)")]
    Truncated { path: String },
}

/// What the x86 boot protocol header (Documentation/arch/x86/boot.rst) says about an image.
#[derive(Debug, Clone)]
pub struct BzImage {
    /// The release (`6.1.0-56-amd64`), the first word of the header's kernel_version string.
    pub release: String,
    /// The compressed kernel, exactly (payload_offset/payload_length, boot protocol 2.08+).
    pub payload: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub fn read_bzimage(path: &Path) -> Result<BzImage, ImageError> {
    let shown = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| ImageError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_bzimage(&data).ok_or_else(|| {
        if data.get(0x202..0x206) == Some(b"HdrS") {
            ImageError::Truncated { path: shown }
        } else {
            ImageError::NotBzImage { path: shown }
        }
    })
}

fn parse_bzimage(data: &[u8]) -> Option<BzImage> {
    if data.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let version_at = 0x200 + usize::from(u16_at(data, 0x20e)?);
    let version = data.get(version_at..)?;
    let end = version
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(version.len());
    let release = String::from_utf8_lossy(&version[..end])
        .split_whitespace()
        .next()?
        .to_string();
    let setup_sects = match data.get(0x1f1)? {
        0 => 4,
        n => usize::from(*n),
    };
    let start = (setup_sects + 1) * 512 + u32_at(data, 0x248)? as usize;
    let len = u32_at(data, 0x24c)? as usize;
    let payload = data.get(start..start + len)?.to_vec();
    Some(BzImage { release, payload })
}

/// The ELF vmlinux inside a bzImage payload, or why not (the caller boots the bzImage then).
pub fn extract_vmlinux(payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match payload {
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            let mut d = liblzma::read::XzDecoder::new(payload);
            d.read_to_end(&mut out).map_err(|e| format!("xz: {e}"))?;
        }
        [0x1f, 0x8b, ..] => {
            let mut d = flate2::read::GzDecoder::new(payload);
            d.read_to_end(&mut out).map_err(|e| format!("gzip: {e}"))?;
        }
        // zstd (Debian's 6.12 kernels): one frame, then the kernel's 4-byte size trailer,
        // which the frame decoder never reads.
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            let mut d = ruzstd::decoding::StreamingDecoder::new(payload)
                .map_err(|e| format!("zstd: {e}"))?;
            d.read_to_end(&mut out).map_err(|e| format!("zstd: {e}"))?;
        }
        [a, b, c, d, ..] => {
            return Err(format!(
                "payload compressed with a format twlab does not decompress (magic {a:02x}{b:02x}{c:02x}{d:02x}; xz, gzip and zstd are supported)"
            ));
        }
        _ => return Err("empty payload".into()),
    }
    if out.starts_with(b"\x7fELF") {
        Ok(out)
    } else {
        Err("the decompressed payload is not an ELF file".into())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A minimal bzImage: boot header, version string, a gzip payload holding an "ELF".
    fn bzimage(payload: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 2048];
        img[0x1f1] = 1; // one setup sector: protected-mode code at (1 + 1) * 512
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let version = b"6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        img[0x300..0x300 + version.len()].copy_from_slice(version);
        img[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        img.truncate(1024 + 16);
        img.extend_from_slice(payload);
        img.extend_from_slice(b"trailing data the decompressor must not need");
        img
    }

    #[test]
    fn header_gives_release_and_exact_payload() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"\x7fELF and the rest of a kernel").unwrap();
        let payload = gz.finish().unwrap();
        let bz = parse_bzimage(&bzimage(&payload)).expect("parses");
        assert_eq!(bz.release, "6.1.0-56-amd64");
        assert_eq!(bz.payload, payload);
        let elf = extract_vmlinux(&bz.payload).expect("extracts");
        assert!(elf.starts_with(b"\x7fELF"));
    }

    #[test]
    fn not_a_bzimage_and_unknown_payloads_are_explained() {
        assert!(parse_bzimage(&[0u8; 4096]).is_none());
        // lz4 (legacy frame), which Debian does not use.
        let err = extract_vmlinux(&[0x02, 0x21, 0x4c, 0x18, 0]).unwrap_err();
        assert!(err.contains("xz, gzip and zstd are supported"), "{err}");
    }
}
