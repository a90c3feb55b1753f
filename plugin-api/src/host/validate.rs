//! Checking a plugin file before it is mapped: is it a complete shared
//! object for this platform that exports the plugin symbols?
//!
//! `dlopen` trusts the file: it maps every segment the program headers name,
//! and touching a page past the end of a truncated file raises SIGBUS in the
//! whole process — no error, no message. So before a library is mapped its
//! bytes are parsed here (with the `object` crate, no code of the plugin
//! runs): an ELF file of this machine, class and byte order, of type
//! `ET_DYN`, whose header, program header table, every segment, the dynamic
//! section, the dynamic symbol table and (if present) the section headers
//! and sections all lie inside the file, and whose dynamic symbol table
//! defines `conveyor_plugin_abi_version`. Each failure says what is wrong in
//! words an operator can act on.
//!
//! Non-ELF platforms (macOS, Windows) get the format check only.

use object::elf;
use object::read::elf::{
    Dyn, FileHeader, GnuHashTable, HashTable, ProgramHeader, SectionHeader, Sym,
};
use object::{Endianness, ReadRef};

use crate::ffi::{ABI_VERSION_SYMBOL, INIT_SYMBOL};

/// Why the bytes cannot be handed to `dlopen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Not a loadable shared object of this platform (the text says why).
    NotLoadable(String),
    /// A well-formed library that lacks an ABI symbol.
    MissingSymbol(&'static str),
}

/// What a valid library exports, for the checks after `dlopen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exports {
    /// `conveyor_plugin_init` is defined. A library of another ABI major
    /// version may lack it, so its absence is reported only after the
    /// version check (which needs the library mapped).
    pub init: bool,
}

/// The 64- or 32-bit ELF header, as this process is.
#[cfg(target_pointer_width = "64")]
type NativeElf = elf::FileHeader64<Endianness>;
#[cfg(not(target_pointer_width = "64"))]
type NativeElf = elf::FileHeader32<Endianness>;

/// Checks `bytes` (a whole plugin file) as described in the module docs.
pub(crate) fn validate(bytes: &[u8]) -> Result<Exports, Invalid> {
    let what = identify(bytes)?;
    let ours = native_format();
    if what != ours {
        return Err(not_loadable(format!(
            "it is {}, not a shared library for this platform ({})",
            what.describe(),
            ours.describe()
        )));
    }
    match what {
        Format::Elf => check_elf::<NativeElf>(bytes),
        // Mach-O and PE: the format is this platform's; the loader checks the rest.
        Format::MachO | Format::Pe => Ok(Exports { init: true }),
    }
}

fn native_format() -> Format {
    if cfg!(windows) {
        Format::Pe
    } else if cfg!(target_vendor = "apple") {
        Format::MachO
    } else {
        Format::Elf
    }
}

/// `n` with thousands separators: `1,204,224`.
pub(crate) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn not_loadable(text: impl Into<String>) -> Invalid {
    Invalid::NotLoadable(text.into())
}

/// Offsets in `e_ident` of the class (32/64-bit) and the byte order.
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;

const TRUNCATED: &str = "the file is truncated; rebuild or re-copy it";

/// A part of the file that must end inside it.
fn inside(what: &str, start: u64, size: u64, len: u64) -> Result<(), Invalid> {
    match start.checked_add(size) {
        Some(end) if end <= len => Ok(()),
        Some(end) => Err(not_loadable(format!(
            "{what} ends at byte {} but the file has {} bytes — {TRUNCATED}",
            grouped(end),
            grouped(len)
        ))),
        None => Err(not_loadable(format!(
            "{what} has an impossible offset or size (the file is corrupt; rebuild or re-copy it)"
        ))),
    }
}

/// The object file formats told apart by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Elf,
    MachO,
    Pe,
}

impl Format {
    fn describe(self) -> &'static str {
        match self {
            Format::Elf => "an ELF file (Linux, BSD)",
            Format::MachO => "a Mach-O file (macOS)",
            Format::Pe => "a PE file (Windows)",
        }
    }
}

/// Says what the file is when it is not an object file at all.
fn identify(bytes: &[u8]) -> Result<Format, Invalid> {
    const HINT: &str = "a plugin is a compiled shared library (`lib<name>.so`, see PLUGINS.md)";
    if bytes.is_empty() {
        return Err(not_loadable(
            "the file is empty (0 bytes) — it was not copied or built completely; rebuild or re-copy it",
        ));
    }
    if bytes.starts_with(b"\x7fELF") {
        return Ok(Format::Elf);
    }
    let head = &bytes[..bytes.len().min(4)];
    let mach_o: [[u8; 4]; 4] = [
        [0xfe, 0xed, 0xfa, 0xce],
        [0xce, 0xfa, 0xed, 0xfe],
        [0xfe, 0xed, 0xfa, 0xcf],
        [0xcf, 0xfa, 0xed, 0xfe],
    ];
    if mach_o.iter().any(|m| head == m) {
        return Ok(Format::MachO);
    }
    if bytes.starts_with(b"MZ") {
        return Ok(Format::Pe);
    }
    if b"\x7fELF".starts_with(bytes) {
        return Err(not_loadable(format!(
            "the file has only {} byte(s) of an ELF header — {TRUNCATED}",
            bytes.len()
        )));
    }
    let sample = &bytes[..bytes.len().min(512)];
    let text = match std::str::from_utf8(sample) {
        Ok(s) => !s.chars().any(|c| c.is_control() && !c.is_whitespace()),
        // The sample may end in the middle of a multi-byte character.
        Err(e) if e.error_len().is_none() => sample[..e.valid_up_to()]
            .iter()
            .all(|b| !b.is_ascii_control() || b.is_ascii_whitespace()),
        Err(_) => false,
    };
    if text {
        let start: String = String::from_utf8_lossy(&bytes[..bytes.len().min(24)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        return Err(not_loadable(format!(
            "it is a text file (it starts with \"{}\"), not a compiled library; {HINT}",
            start.trim_end()
        )));
    }
    let magic: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    Err(not_loadable(format!(
        "it is not an ELF shared object (it starts with bytes {}); {HINT}",
        magic.join(" ")
    )))
}

/// The ELF machine this process runs on, and its name.
fn host_machine() -> (Option<elf::Machine>, &'static str) {
    let m = match std::env::consts::ARCH {
        "x86_64" => Some(elf::EM_X86_64),
        "x86" => Some(elf::EM_386),
        "aarch64" => Some(elf::EM_AARCH64),
        "arm" => Some(elf::EM_ARM),
        "riscv64" | "riscv32" => Some(elf::EM_RISCV),
        "powerpc64" => Some(elf::EM_PPC64),
        "powerpc" => Some(elf::EM_PPC),
        "s390x" => Some(elf::EM_S390),
        "loongarch64" => Some(elf::EM_LOONGARCH),
        "mips" | "mips64" => Some(elf::EM_MIPS),
        "sparc64" => Some(elf::EM_SPARCV9),
        _ => None,
    };
    (m, std::env::consts::ARCH)
}

fn machine_name(m: elf::Machine) -> String {
    let name = match m {
        elf::EM_X86_64 => "x86_64",
        elf::EM_386 => "x86 (32-bit)",
        elf::EM_AARCH64 => "aarch64",
        elf::EM_ARM => "arm (32-bit)",
        elf::EM_RISCV => "riscv",
        elf::EM_PPC64 => "powerpc64",
        elf::EM_PPC => "powerpc",
        elf::EM_S390 => "s390x",
        elf::EM_LOONGARCH => "loongarch64",
        elf::EM_MIPS => "mips",
        elf::EM_SPARCV9 => "sparc64",
        _ => return format!("ELF machine {}", m.0),
    };
    name.to_string()
}

fn segment_kind(t: elf::ProgramType) -> String {
    match t {
        elf::PT_LOAD => "PT_LOAD".into(),
        elf::PT_DYNAMIC => "PT_DYNAMIC".into(),
        elf::PT_INTERP => "PT_INTERP".into(),
        elf::PT_NOTE => "PT_NOTE".into(),
        elf::PT_TLS => "PT_TLS".into(),
        elf::PT_GNU_EH_FRAME => "PT_GNU_EH_FRAME".into(),
        elf::PT_GNU_RELRO => "PT_GNU_RELRO".into(),
        t => format!("type {:#x}", t.0),
    }
}

/// Everything the module docs promise, for one ELF class.
fn check_elf<Elf: FileHeader<Endian = Endianness>>(bytes: &[u8]) -> Result<Exports, Invalid> {
    let len = bytes.len() as u64;
    let header_size = std::mem::size_of::<Elf>() as u64;
    let (want_class, class_name) = if Elf::is_type_64_sized() {
        (elf::ELFCLASS64, "64-bit")
    } else {
        (elf::ELFCLASS32, "32-bit")
    };
    if let Some(class) = bytes.get(EI_CLASS).map(|c| elf::FileClass(*c)) {
        if class != want_class {
            let theirs = match class {
                elf::ELFCLASS32 => "32-bit",
                elf::ELFCLASS64 => "64-bit",
                _ => "of an unknown ELF class",
            };
            return Err(not_loadable(format!(
                "it is a {theirs} library; this conveyor is {class_name} — rebuild the plugin for this platform"
            )));
        }
    }
    if let Some(data) = bytes.get(EI_DATA).map(|d| elf::DataEncoding(*d)) {
        let ours = if cfg!(target_endian = "little") {
            elf::ELFDATA2LSB
        } else {
            elf::ELFDATA2MSB
        };
        if data != ours {
            return Err(not_loadable(format!(
                "its byte order ({}) is not this machine's — rebuild the plugin for this platform",
                if data == elf::ELFDATA2MSB {
                    "big-endian"
                } else {
                    "unknown"
                }
            )));
        }
    }
    if len < header_size {
        return Err(not_loadable(format!(
            "the ELF header needs {header_size} bytes but the file has {} — {TRUNCATED}",
            grouped(len)
        )));
    }
    let header = Elf::parse(bytes)
        .map_err(|e| not_loadable(format!("its ELF header is malformed ({e})")))?;
    let endian = header
        .endian()
        .map_err(|e| not_loadable(format!("its ELF header is malformed ({e})")))?;

    let machine = header.e_machine(endian);
    let (host, host_name) = host_machine();
    if host.is_some_and(|h| h != machine) {
        return Err(not_loadable(format!(
            "it is built for {}; this conveyor runs on {host_name} — rebuild the plugin for this platform",
            machine_name(machine)
        )));
    }
    match header.e_type(endian) {
        elf::ET_DYN => {}
        elf::ET_EXEC => {
            return Err(not_loadable(
                "it is an executable, not a shared library (build the plugin with crate-type = [\"cdylib\"])",
            ))
        }
        elf::ET_REL => {
            return Err(not_loadable(
                "it is an object file (.o), not a linked shared library (build the plugin with crate-type = [\"cdylib\"])",
            ))
        }
        elf::ET_CORE => return Err(not_loadable("it is a core dump, not a shared library")),
        t => {
            return Err(not_loadable(format!(
                "its ELF type is {:#x}, not a shared library (ET_DYN)",
                t.0
            )))
        }
    }

    let segments = check_segments(header, endian, bytes)?;
    let exports_from_sections = check_sections(header, endian, bytes)?;
    let dynamic = segments
        .iter()
        .find(|p| p.p_type(endian) == elf::PT_DYNAMIC)
        .ok_or_else(|| {
            not_loadable("it has no dynamic section (PT_DYNAMIC): it is not a shared library that exports symbols")
        })?;
    let entries: &[Elf::Dyn] = dynamic
        .dynamic(endian, bytes)
        .map_err(|e| not_loadable(format!("its dynamic section is malformed ({e})")))?
        .unwrap_or(&[]);
    let symbols = match dynamic_symbols::<Elf>(segments, entries, endian, bytes)? {
        Some(names) => names,
        // No hash table to size the symbol table by: the section headers
        // are the only other way to find it.
        None => exports_from_sections
            .ok_or_else(|| not_loadable("it has no dynamic symbol table: it exports nothing"))?,
    };
    if !symbols.version {
        return Err(Invalid::MissingSymbol(ABI_VERSION_SYMBOL));
    }
    Ok(Exports { init: symbols.init })
}

/// The program header table and every segment lie inside the file.
fn check_segments<'a, Elf: FileHeader<Endian = Endianness>>(
    header: &Elf,
    endian: Endianness,
    bytes: &'a [u8],
) -> Result<&'a [Elf::ProgramHeader], Invalid> {
    let len = bytes.len() as u64;
    let phoff: u64 = header.e_phoff(endian).into();
    let phnum = u64::from(header.e_phnum(endian));
    if phoff == 0 || phnum == 0 {
        return Err(not_loadable(
            "it has no program headers: there is nothing a loader could map",
        ));
    }
    let entsize = u64::from(header.e_phentsize(endian));
    if entsize != std::mem::size_of::<Elf::ProgramHeader>() as u64 {
        return Err(not_loadable(format!(
            "its program headers have an impossible size ({entsize} bytes each; the file is corrupt)"
        )));
    }
    inside("the program header table", phoff, phnum * entsize, len)?;
    let segments = header
        .program_headers(endian, bytes)
        .map_err(|e| not_loadable(format!("its program headers are malformed ({e})")))?;
    for (i, p) in segments.iter().enumerate() {
        let (offset, size): (u64, u64) = (p.p_offset(endian).into(), p.p_filesz(endian).into());
        if size == 0 {
            continue;
        }
        let what = format!("segment {i} ({})", segment_kind(p.p_type(endian)));
        inside(&what, offset, size, len)?;
    }
    if !segments.iter().any(|p| p.p_type(endian) == elf::PT_LOAD) {
        return Err(not_loadable(
            "it has no loadable segment (PT_LOAD): there is nothing a loader could map",
        ));
    }
    Ok(segments)
}

/// Which ABI symbols a symbol table defines.
#[derive(Debug, Default, Clone, Copy)]
struct Found {
    version: bool,
    init: bool,
}

/// A defined, exported function called `name`?
fn is_export<S: Sym<Endian = Endianness>>(s: &S, endian: Endianness) -> bool {
    !s.is_undefined(endian)
        && matches!(s.st_bind(), elf::STB_GLOBAL | elf::STB_WEAK)
        && matches!(s.st_type(), elf::STT_FUNC | elf::STT_GNU_IFUNC)
}

fn note(found: &mut Found, name: &[u8]) {
    if name == ABI_VERSION_SYMBOL.as_bytes() {
        found.version = true;
    } else if name == INIT_SYMBOL.as_bytes() {
        found.init = true;
    }
}

/// Section headers, when the file has them: the table and every section
/// with contents inside the file. Returns the ABI symbols `.dynsym` defines
/// (`None` without section headers or `.dynsym`).
fn check_sections<Elf: FileHeader<Endian = Endianness>>(
    header: &Elf,
    endian: Endianness,
    bytes: &[u8],
) -> Result<Option<Found>, Invalid> {
    let len = bytes.len() as u64;
    let shoff: u64 = header.e_shoff(endian).into();
    if shoff == 0 {
        return Ok(None);
    }
    let entsize = u64::from(header.e_shentsize(endian));
    if entsize != std::mem::size_of::<Elf::SectionHeader>() as u64 {
        return Err(not_loadable(format!(
            "its section headers have an impossible size ({entsize} bytes each; the file is corrupt)"
        )));
    }
    // `e_shnum` 0 with a table means the count is in section 0 (huge files).
    let shnum = match u64::from(header.e_shnum(endian)) {
        0 => 1,
        n => n,
    };
    inside("the section header table", shoff, shnum * entsize, len)?;
    let sections = header
        .sections(endian, bytes)
        .map_err(|e| not_loadable(format!("its section headers are malformed ({e})")))?;
    for (i, s) in sections.iter().enumerate() {
        if s.sh_type(endian) == elf::SHT_NOBITS {
            continue;
        }
        let (offset, size): (u64, u64) = (s.sh_offset(endian).into(), s.sh_size(endian).into());
        if size == 0 {
            continue;
        }
        let name = sections
            .section_name(endian, s)
            .ok()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .filter(|n| !n.is_empty())
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        inside(&format!("section {i}{name}"), offset, size, len)?;
    }
    let table = sections
        .symbols(endian, bytes, elf::SHT_DYNSYM)
        .map_err(|e| not_loadable(format!("its dynamic symbol table is malformed ({e})")))?;
    if table.is_empty() {
        return Ok(None);
    }
    let mut found = Found::default();
    for s in table.iter().skip(1) {
        if is_export(s, endian) {
            if let Ok(name) = table.symbol_name(endian, s) {
                note(&mut found, name);
            }
        }
    }
    Ok(Some(found))
}

/// The file offset of virtual address `addr`, and the bytes from there to
/// the end of the segment holding it.
fn at_address<'a, P: ProgramHeader<Endian = Endianness>>(
    segments: &[P],
    endian: Endianness,
    bytes: &'a [u8],
    addr: u64,
) -> Option<&'a [u8]> {
    segments
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD)
        .find_map(|p| {
            let (vaddr, offset, size): (u64, u64, u64) = (
                p.p_vaddr(endian).into(),
                p.p_offset(endian).into(),
                p.p_filesz(endian).into(),
            );
            let rel = addr.checked_sub(vaddr).filter(|r| *r < size)?;
            bytes
                .read_bytes_at(offset.checked_add(rel)?, size - rel)
                .ok()
        })
}

/// The ABI symbols the dynamic symbol table defines, found the way the
/// dynamic loader finds it (through the dynamic section, which is what
/// `dlsym` uses even in a file without section headers). `None` when the
/// file has no hash table to size the symbol table by.
fn dynamic_symbols<Elf: FileHeader<Endian = Endianness>>(
    segments: &[Elf::ProgramHeader],
    entries: &[Elf::Dyn],
    endian: Endianness,
    bytes: &[u8],
) -> Result<Option<Found>, Invalid> {
    let (mut symtab, mut strtab, mut strsz, mut hash, mut gnu_hash) =
        (None, None, None, None, None);
    for d in entries {
        let val: u64 = d.d_val(endian).into();
        match d.d_tag(endian) {
            elf::DT_NULL => break,
            elf::DT_SYMTAB => symtab = Some(val),
            elf::DT_STRTAB => strtab = Some(val),
            elf::DT_STRSZ => strsz = Some(val),
            elf::DT_HASH => hash = Some(val),
            elf::DT_GNU_HASH => gnu_hash = Some(val),
            _ => {}
        }
    }
    let outside = |what: &str| {
        not_loadable(format!(
            "its dynamic section points {what} outside the file's loadable segments (the file is corrupt; rebuild or re-copy it)"
        ))
    };
    let (Some(symtab), Some(strtab)) = (symtab, strtab) else {
        return Ok(None);
    };
    let count = if let Some(addr) = gnu_hash {
        let data = at_address(segments, endian, bytes, addr)
            .ok_or_else(|| outside("the GNU hash table"))?;
        let table = GnuHashTable::<Elf>::parse(endian, data)
            .map_err(|e| not_loadable(format!("its GNU hash table is malformed ({e})")))?;
        // An empty table (no exported symbol at all) has no length.
        table.symbol_table_length(endian).unwrap_or(0)
    } else if let Some(addr) = hash {
        let data =
            at_address(segments, endian, bytes, addr).ok_or_else(|| outside("the hash table"))?;
        HashTable::<Elf>::parse(endian, data)
            .map_err(|e| not_loadable(format!("its hash table is malformed ({e})")))?
            .symbol_table_length()
    } else {
        return Ok(None);
    };
    let syms_data =
        at_address(segments, endian, bytes, symtab).ok_or_else(|| outside("the symbol table"))?;
    let syms: &[Elf::Sym] = syms_data
        .read_slice_at(0, count as usize)
        .map_err(|()| not_loadable(format!("its dynamic symbol table ({count} symbols) runs past the end of its segment — {TRUNCATED}")))?;
    let strings =
        at_address(segments, endian, bytes, strtab).ok_or_else(|| outside("the string table"))?;
    let strings = match strsz {
        Some(n) if (n as usize) <= strings.len() => &strings[..n as usize],
        Some(_) => {
            return Err(not_loadable(format!(
                "its dynamic string table runs past the end of its segment — {TRUNCATED}"
            )))
        }
        None => strings,
    };
    let mut found = Found::default();
    for s in syms.iter().skip(1) {
        if !is_export(s, endian) {
            continue;
        }
        let start = s.st_name(endian) as usize;
        let Some(rest) = strings.get(start..) else {
            continue;
        };
        let name = rest.split(|b| *b == 0).next().unwrap_or_default();
        note(&mut found, name);
    }
    Ok(Some(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary's own image stands in for a shared object's layout
    /// where a real plugin is not at hand; real plugins are covered by
    /// `tests/e2e/plugins.rs`.
    fn message(bytes: &[u8]) -> String {
        match validate(bytes) {
            Err(Invalid::NotLoadable(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_204_224), "1,204,224");
    }

    #[test]
    fn empty_text_and_foreign_files_say_what_they_are() {
        assert!(message(b"").contains("the file is empty (0 bytes)"));
        let m = message(b"hello, I am a README\n");
        assert!(
            m.contains("it is a text file (it starts with \"hello, I am a README\")"),
            "{m}"
        );
        assert!(message(b"\x7fEL").contains("only 3 byte(s) of an ELF header"));
        let m = message(&[0u8, 1, 2, 3, 4, 5]);
        assert!(m.contains("it starts with bytes 00 01 02 03"), "{m}");
    }

    #[cfg(all(
        target_os = "linux",
        target_pointer_width = "64",
        target_endian = "little"
    ))]
    #[test]
    fn a_header_of_another_class_or_machine_is_named() {
        // An ELF header of this class: magic, class, data, version.
        let mut h = vec![0u8; 64];
        h[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1]);
        h[16] = 3; // ET_DYN
        let other = if std::env::consts::ARCH == "aarch64" {
            62u16
        } else {
            183
        };
        h[18..20].copy_from_slice(&other.to_le_bytes());
        let m = message(&h);
        assert!(
            m.contains("it is built for") && m.contains("rebuild the plugin for this platform"),
            "{m}"
        );
        let mut h32 = h.clone();
        h32[4] = 1;
        assert!(message(&h32).contains("it is a 32-bit library; this conveyor is 64-bit"));
        let m = message(&h[..40]);
        assert!(
            m.contains("the ELF header needs 64 bytes but the file has 40"),
            "{m}"
        );
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn an_executable_is_not_a_library_and_cuts_are_located() {
        // This test binary: a real ELF file of this platform (a PIE, which
        // is ET_DYN too, or ET_EXEC).
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let mut exec = exe.clone();
        exec[16..18].copy_from_slice(&2u16.to_ne_bytes());
        assert!(message(&exec).contains("it is an executable, not a shared library"));
        let mut dyn_ = exe.clone();
        dyn_[16..18].copy_from_slice(&3u16.to_ne_bytes());
        for cut in [4_096usize, 100_000, dyn_.len() - 1] {
            let m = message(&dyn_[..cut]);
            assert!(
                m.contains(&format!(
                    "but the file has {} bytes — the file is truncated; rebuild or re-copy it",
                    grouped(cut as u64)
                )),
                "cut at {cut}: {m}"
            );
        }
        // Whole, it is a valid shared object that simply is not a plugin.
        assert_eq!(
            validate(&dyn_),
            Err(Invalid::MissingSymbol(ABI_VERSION_SYMBOL))
        );
    }
}
