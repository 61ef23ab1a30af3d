/**
 * ELF64 structures used by an x86_64 kernel crash dump (/proc/vmcore style).
 *
 * Mirrors <elf.h> (Elf64_Ehdr, Elf64_Phdr, Elf64_Nhdr) and the x86_64
 * layout of the kernel's `struct elf_prstatus` (include/linux/elfcore.h,
 * with `struct user_regs_struct` from arch/x86/include/asm/user_64.h as
 * elf_gregset_t). Field names are the C names, so they can be grepped.
 */
import { defineStruct, type ValueOf } from './struct.js';
import { bytes, i32, i64, u16, u32, u64 } from './field.js';

// ---- e_ident ---------------------------------------------------------------

export const EI_NIDENT = 16 as const;
export const EI_MAG0 = 0 as const;
export const EI_MAG1 = 1 as const;
export const EI_MAG2 = 2 as const;
export const EI_MAG3 = 3 as const;
export const EI_CLASS = 4 as const;
export const EI_DATA = 5 as const;
export const EI_VERSION = 6 as const;
export const EI_OSABI = 7 as const;

export const ELFMAG0 = 0x7f as const;
export const ELFMAG1 = 0x45 as const; // 'E'
export const ELFMAG2 = 0x4c as const; // 'L'
export const ELFMAG3 = 0x46 as const; // 'F'

export const ELFCLASS64 = 2 as const;
export const ELFDATA2LSB = 1 as const;
export const EV_CURRENT = 1 as const;
export const ELFOSABI_NONE = 0 as const;

// ---- e_type / e_machine ----------------------------------------------------

export const ET_CORE = 4 as const;
export const EM_X86_64 = 62 as const;

/** e_phnum value meaning "the real count is in section 0" (not produced here). */
export const PN_XNUM = 0xffff as const;

// ---- program headers -------------------------------------------------------

export const PT_LOAD = 1 as const;
export const PT_NOTE = 4 as const;

export const PF_X = 0x1 as const;
export const PF_W = 0x2 as const;
export const PF_R = 0x4 as const;

// ---- notes -----------------------------------------------------------------

export const NT_PRSTATUS = 1 as const;
/** Owner name of the NT_PRSTATUS notes a kernel writes per CPU. */
export const CORE_NOTE_NAME = 'CORE' as const;
/** Owner name of the note carrying the VMCOREINFO text (n_type 0). */
export const VMCOREINFO_NOTE_NAME = 'VMCOREINFO' as const;
/** n_type of the VMCOREINFO note, as the kernel writes it. */
export const VMCOREINFO_NOTE_TYPE = 0 as const;
/** Note name and descriptor are each padded to this many bytes. */
export const ELF_NOTE_ALIGN = 4 as const;

/** ELF file header (Elf64_Ehdr, <elf.h>). */
export const Elf64_Ehdr = defineStruct('Elf64_Ehdr', {
  e_ident: bytes(EI_NIDENT), // magic, class, data, version, OS ABI, padding
  e_type: u16,               // ET_*
  e_machine: u16,            // EM_*
  e_version: u32,            // EV_CURRENT
  e_entry: u64,
  e_phoff: u64,              // file offset of the program header table
  e_shoff: u64,              // file offset of the section header table (0: none)
  e_flags: u32,
  e_ehsize: u16,             // sizeof(Elf64_Ehdr)
  e_phentsize: u16,          // sizeof(Elf64_Phdr)
  e_phnum: u16,
  e_shentsize: u16,
  e_shnum: u16,
  e_shstrndx: u16,
});
export type Elf64Ehdr = ValueOf<typeof Elf64_Ehdr>;

/**
 * The ELF header of an x86_64 core file (ET_CORE, little-endian, no
 * sections) with `phnum` program headers right after it: what /proc/vmcore,
 * kexec's elfcorehdr, fadump's and every exported vmcore begin with.
 */
export function encodeCoreEhdr(view: DataView, phnum: number): void {
  const e_ident = new Uint8Array(EI_NIDENT);
  e_ident.set([ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3], EI_MAG0);
  e_ident[EI_CLASS] = ELFCLASS64;
  e_ident[EI_DATA] = ELFDATA2LSB;
  e_ident[EI_VERSION] = EV_CURRENT;
  e_ident[EI_OSABI] = ELFOSABI_NONE;
  Elf64_Ehdr.encode({
    e_ident, e_type: ET_CORE, e_machine: EM_X86_64, e_version: EV_CURRENT, e_entry: 0n, e_phoff: BigInt(Elf64_Ehdr.size),
    e_shoff: 0n, e_flags: 0, e_ehsize: Elf64_Ehdr.size, e_phentsize: Elf64_Phdr.size, e_phnum: phnum,
    e_shentsize: 0, e_shnum: 0, e_shstrndx: 0,
  }, view, 0);
}

/** Program header (Elf64_Phdr, <elf.h>). */
export const Elf64_Phdr = defineStruct('Elf64_Phdr', {
  p_type: u32,   // PT_*
  p_flags: u32,  // PF_* bits
  p_offset: u64, // file offset of the segment's bytes
  p_vaddr: u64,
  p_paddr: u64,
  p_filesz: u64,
  p_memsz: u64,
  p_align: u64,
});
export type Elf64Phdr = ValueOf<typeof Elf64_Phdr>;

/** Note header (Elf64_Nhdr, <elf.h>); name and desc follow, each 4-byte padded. */
export const Elf64_Nhdr = defineStruct('Elf64_Nhdr', {
  n_namesz: u32, // length of the name including its NUL
  n_descsz: u32, // length of the descriptor, without padding
  n_type: u32,
});
export type Elf64Nhdr = ValueOf<typeof Elf64_Nhdr>;

/** struct elf_siginfo (include/uapi/linux/elfcore.h). */
export const elf_siginfo = defineStruct('elf_siginfo', {
  si_signo: i32,
  si_code: i32,
  si_errno: i32,
});

/** struct __kernel_old_timeval on x86_64 (glibc: struct timeval). */
export const timeval = defineStruct('timeval', {
  tv_sec: i64,
  tv_usec: i64,
});

/**
 * struct user_regs_struct (arch/x86/include/asm/user_64.h): the x86_64
 * elf_gregset_t, 27 unsigned longs in this order.
 */
export const user_regs_struct = defineStruct('user_regs_struct', {
  r15: u64,
  r14: u64,
  r13: u64,
  r12: u64,
  rbp: u64,
  rbx: u64,
  r11: u64,
  r10: u64,
  r9: u64,
  r8: u64,
  rax: u64,
  rcx: u64,
  rdx: u64,
  rsi: u64,
  rdi: u64,
  orig_rax: u64,
  rip: u64,
  cs: u64,
  eflags: u64,
  rsp: u64,
  ss: u64,
  fs_base: u64,
  gs_base: u64,
  ds: u64,
  es: u64,
  fs: u64,
  gs: u64,
});
export type UserRegsStruct = ValueOf<typeof user_regs_struct>;
/** Name of one register in user_regs_struct. */
export type UserRegName = keyof UserRegsStruct;

/**
 * struct elf_prstatus for x86_64 (include/linux/elfcore.h), the descriptor
 * of an NT_PRSTATUS note. The C compiler's implicit padding is spelled out.
 */
export const elf_prstatus = defineStruct('elf_prstatus', {
  pr_info: elf_siginfo,    // info associated with the signal
  pr_cursig: u16,          // current signal (short)
  _pad: u16,               // aligns pr_sigpend to 8
  pr_sigpend: u64,         // set of pending signals
  pr_sighold: u64,         // set of held signals
  pr_pid: i32,
  pr_ppid: i32,
  pr_pgrp: i32,
  pr_sid: i32,
  pr_utime: timeval,       // user time
  pr_stime: timeval,       // system time
  pr_cutime: timeval,      // cumulative user time
  pr_cstime: timeval,      // cumulative system time
  pr_reg: user_regs_struct, // general purpose registers (elf_gregset_t)
  pr_fpvalid: i32,         // true if math co-processor being used
  _pad2: u32,              // tail padding to the struct's 8-byte alignment
});
export type ElfPrstatus = ValueOf<typeof elf_prstatus>;

/** Elf64_Shdr (<elf.h>): one entry of the section header table. */
export const Elf64_Shdr = defineStruct('Elf64_Shdr', {
  sh_name: u32,
  sh_type: u32,
  sh_flags: u64,
  sh_addr: u64,
  sh_offset: u64,
  sh_size: u64,
  sh_link: u32,
  sh_info: u32,
  sh_addralign: u64,
  sh_entsize: u64,
});

export type Elf64Shdr = ValueOf<typeof Elf64_Shdr>;

export const SHT_PROGBITS = 1 as const;
export const SHT_NOBITS = 8 as const;
/** e_shstrndx value meaning "the index is in sh_link of section 0". */
export const SHN_XINDEX = 0xffff as const;
export const SHN_UNDEF = 0 as const;

/** NT_GNU_BUILD_ID (<elf.h>): a note named "GNU" whose descriptor is the build ID. */
export const NT_GNU_BUILD_ID = 3 as const;
export const GNU_NOTE_NAME = 'GNU' as const;
