//! A structural check of a shared library before `dlopen`.
//!
//! A library cut short (a deployer's copy still in progress when the folder is scanned)
//! is mapped by the dynamic loader as its headers describe it: touching a page past the
//! end of the file raises SIGBUS, which kills the whole host. Checking that every
//! loadable segment and the section header table (the last thing in a linked library)
//! lie within the file turns that crash into a refusal; the file is read again once it
//! changes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// 64-bit ELF header fields (offsets from the ELF specification).
const HEADER_LEN: usize = 64;
const PROGRAM_HEADER_LEN: u64 = 56;
const PT_LOAD: u32 = 1;

/// `Ok` if `path` is a 64-bit little-endian ELF file whose headers and loadable segments
/// lie entirely within it; `Err` says what is wrong.
pub(crate) fn check_complete(path: &Path) -> Result<(), String> {
    let mut file = File::open(path).map_err(|error| format!("cannot read it: {error}"))?;
    let len = file
        .metadata()
        .map_err(|error| format!("cannot read it: {error}"))?
        .len();
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header)
        .map_err(|_| format!("it is not an ELF shared library (only {len} bytes)"))?;
    if header[..4] != *b"\x7fELF" {
        return Err("it is not an ELF shared library".to_owned());
    }
    if header[4] != 2 || header[5] != 1 {
        return Err("it is not a 64-bit little-endian ELF library".to_owned());
    }
    let program_headers = u64_at(&header, 0x20);
    let section_headers = u64_at(&header, 0x28);
    let program_count = u64::from(u16_at(&header, 0x38));
    let section_size = u64::from(u16_at(&header, 0x3A));
    let section_count = u64::from(u16_at(&header, 0x3C));
    let incomplete = |what: &str, end: Option<u64>| {
        format!(
            "it is incomplete: its {what} end at byte {} but the file has {len} bytes (still being copied? it is read again when it changes)",
            end.map_or_else(|| "(overflow)".to_owned(), |end| end.to_string())
        )
    };
    let table_end = |offset: u64, count: u64, size: u64| {
        count
            .checked_mul(size)
            .and_then(|bytes| offset.checked_add(bytes))
    };
    let sections_end = table_end(section_headers, section_count, section_size);
    if sections_end.is_none_or(|end| end > len) {
        return Err(incomplete("section headers", sections_end));
    }
    let programs_end = table_end(program_headers, program_count, PROGRAM_HEADER_LEN);
    if programs_end.is_none_or(|end| end > len) {
        return Err(incomplete("program headers", programs_end));
    }
    file.seek(SeekFrom::Start(program_headers))
        .map_err(|error| format!("cannot read it: {error}"))?;
    for _ in 0..program_count {
        let mut entry = [0u8; 56];
        file.read_exact(&mut entry)
            .map_err(|error| format!("cannot read it: {error}"))?;
        if u32_at(&entry, 0) != PT_LOAD {
            continue;
        }
        let end = u64_at(&entry, 8).checked_add(u64_at(&entry, 32));
        if end.is_none_or(|end| end > len) {
            return Err(incomplete("loadable segments", end));
        }
    }
    Ok(())
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The test binary itself is a complete 64-bit ELF file.
    fn this_binary() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn a_complete_library_passes_and_any_cut_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib.so");
        let whole = this_binary();
        std::fs::write(&path, &whole).unwrap();
        assert_eq!(check_complete(&path), Ok(()));
        for cut in [10, 64, 4096, whole.len() / 2, whole.len() - 1] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let refused = check_complete(&path).unwrap_err();
            assert!(
                refused.contains("not an ELF") || refused.contains("incomplete"),
                "{cut}: {refused}"
            );
        }
        std::fs::write(&path, b"not a library at all").unwrap();
        assert!(check_complete(&path).unwrap_err().contains("not an ELF"));
    }
}
