/**
 * Constants of pstore and its ramoops backend, as Linux 6.1 defines them
 * (fs/pstore/ram.c, ram_core.c, platform.c, inode.c; include/linux/pstore.h,
 * kmsg_dump.h). Linux 6.1 is what Debian 12 ships, and its ramoops is the
 * oracle the interop test boots; where 5.4 differs (max_reason, the "ECC: "
 * prefix of the notice) the simulated kernel follows 6.1.
 *
 * Everything named DEVCD_* belongs to the device-coredump frontend of the
 * 2023 RFC ("RFC design of device coredump collection on panic in Pstore",
 * Mukesh Ojha), which never merged: its record type, file name, parameter
 * and layouts are this project's own.
 */

/** "DBGC" little-endian: persistent_ram_buffer.sig is this XOR the zone's own value. */
export const PERSISTENT_RAM_SIG = 0x43474244;

/** Head of every dmesg record in a ramoops zone: "====<sec>.<usec>-<C|D>\n". */
export const RAMOOPS_KERNMSG_HDR = '====';
/** Module default of record_size, console_size, ftrace_size and pmsg_size. */
export const MIN_MEM_SIZE = 4096;
/** ramoops_platform_data.flags for module parameters: one ftrace zone per CPU. */
export const RAMOOPS_FLAG_FTRACE_PER_CPU = 0x1;

/** persistent_ram_zone flags (fs/pstore/ram_internal.h). */
export const PRZ_FLAG_NO_LOCK = 0x1;
export const PRZ_FLAG_ZAP_OLD = 0x2;

/** Defaults of persistent_ram_init_ecc: RS over GF(2^8), poly 0x11d, 16 parity bytes per 128-byte block. */
export const ECC_BLOCK_SIZE = 128;
export const ECC_SIZE_DEFAULT = 16;
export const ECC_SYMSIZE = 8;
export const ECC_POLY = 0x11d;

/** enum kmsg_dump_reason (include/linux/kmsg_dump.h, 5.8+). */
export const KMSG_DUMP_UNDEF = 0;
export const KMSG_DUMP_PANIC = 1;
export const KMSG_DUMP_OOPS = 2;
export const KMSG_DUMP_EMERG = 3;
export const KMSG_DUMP_SHUTDOWN = 4;
export const KMSG_DUMP_MAX = 5;
export type KmsgDumpReason = typeof KMSG_DUMP_PANIC | typeof KMSG_DUMP_OOPS | typeof KMSG_DUMP_EMERG | typeof KMSG_DUMP_SHUTDOWN;

/** kmsg_dump_reason_str(). */
export function kmsgDumpReasonStr(reason: number): string {
  switch (reason) {
    case KMSG_DUMP_PANIC: return 'Panic';
    case KMSG_DUMP_OOPS: return 'Oops';
    case KMSG_DUMP_EMERG: return 'Emergency';
    case KMSG_DUMP_SHUTDOWN: return 'Shutdown';
    default: return 'Unknown';
  }
}

/** enum pstore_type_id (include/linux/pstore.h, 5.8+), and ours for device coredumps. */
export const PSTORE_TYPE_DMESG = 0;
export const PSTORE_TYPE_MCE = 1;
export const PSTORE_TYPE_CONSOLE = 2;
export const PSTORE_TYPE_FTRACE = 3;
export const PSTORE_TYPE_PMSG = 7;
/** Ours (the RFC named no type): a value far from upstream's PSTORE_TYPE_MAX. */
export const PSTORE_TYPE_DEVCOREDUMP = 0x100;

/** pstore_type_to_name() for the types ramoops produces; "devcoredump" is ours. */
export const PSTORE_TYPE_NAMES: Readonly<Record<number, string>> = {
  [PSTORE_TYPE_DMESG]: 'dmesg',
  [PSTORE_TYPE_CONSOLE]: 'console',
  [PSTORE_TYPE_FTRACE]: 'ftrace',
  [PSTORE_TYPE_PMSG]: 'pmsg',
  [PSTORE_TYPE_DEVCOREDUMP]: 'devcoredump',
};

/** psinfo->name of the ramoops backend: the middle part of every file name. */
export const RAMOOPS_BACKEND_NAME = 'ramoops';

/** pstore_mkfile(): files are read-only for everyone; a compressed record keeps this suffix. */
export const PSTORE_FILE_MODE = 0o444;
export const PSTORE_COMPRESSED_SUFFIX = '.enc.z';

/** CONFIG_PSTORE_DEFAULT_KMSG_BYTES: how much of the log one dump may take over all its parts. */
export const PSTORE_DEFAULT_KMSG_BYTES = 10240;

/**
 * crypto/deflate.c, the "deflate" pstore compresses with in 6.1: raw deflate
 * (no zlib header) with a 2 KiB window, so the kernel's inflate can read it.
 */
export const DEFLATE_DEF_WINBITS = 11;
export const DEFLATE_DEF_MEMLEVEL = 9;
export const DEFLATE_DEF_LEVEL = 6;

/** The log level of console output: lines at or above it do not reach consoles (CONSOLE_LOGLEVEL_DEFAULT). */
export const CONSOLE_LOGLEVEL_DEFAULT = 7;
export const CONSOLE_LOGLEVEL_QUIET = 4;

/** LINUX_VERSION_CODE of the simulated 5.4.0 build: the ftrace zones' signature. */
export const LINUX_VERSION_CODE = (5 << 16) | (4 << 8) | 0;

/** Bound on dmesg zones, so a tiny record_size cannot make a walk of millions of zones. */
export const RAMOOPS_MAX_DUMP_CNT = 4096;

/** Ours: the devcoredump zone's signature, "DVCD", XORed with PERSISTENT_RAM_SIG like the others. */
export const DEVCD_ZONE_SIG = 0x44435644;
/** NT_VMCOREDD, VMCOREDD_NOTE_NAME and the size of dump_name: the device dump note's, shared with /proc/vmcore. */
export { NT_VMCOREDD, VMCOREDD_NOTE_NAME, VMCOREDD_MAX_NAME_BYTES } from '../../codec/vmcoredd.js';
/** Ours: how many devices, and regions per device, the registry holds. */
export const DEVCD_MAX_DEVICES = 8;
export const DEVCD_MAX_REGIONS = 8;
/** Ours: a region is a buffer in RAM, or device registers read at the panic. */
export const DEVCD_REGION_BUFFER = 1;
export const DEVCD_REGION_REGISTERS = 2;
