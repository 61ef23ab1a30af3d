/**
 * LKCD constants, named as include/linux/dump.h names them (format v9, as in
 * the later SUSE-kernel LKCD tree; see shared/reference/lkcd-format-and-softboot.md §1).
 */
export const DUMP_MAGIC_NUMBER = 0xa8190173618f23edn;
/** Magic of a live dump, and of the soft-boot dump config block (dump_overlay.c). */
export const DUMP_MAGIC_LIVE = 0xa8190173618f23cdn;
export const DUMP_VERSION_NUMBER = 0x9;
/** Dump offset on the device: 64 KiB, "to support multiple PAGE_SIZE". */
export const DUMP_HEADER_OFFSET = 1n << 16n;
/** Size of the dump buffer; in v9 also the logical offset of the first page record (dh_dump_buffer_size). */
export const DUMP_BUFFER_SIZE = 64 * 1024;
export const DUMP_PANIC_LEN = 0x100;

export const DUMP_ASM_MAGIC_NUMBER = 0xdeaddeadn;
/** dha_version of the x86_64 arch header (include/asm-x86_64/dump.h). */
export const DUMP_ASM_VERSION_NUMBER = 0x2;
export const DUMP_MAX_NUM_CPUS = 32;

/** Dump levels (cumulative masks in dh_dump_level). */
export const DUMP_LEVEL_NONE = 0x0;
export const DUMP_LEVEL_HEADER = 0x1;
export const DUMP_LEVEL_KERN = 0x2;
export const DUMP_LEVEL_USED = 0x4;
export const DUMP_LEVEL_ALL_RAM = 0x8;
/** Masks of the filter passes (dump_methods.h: DUMP_MASK_UNUSED = DUMP_LEVEL_ALL_RAM). */
export const DUMP_MASK_HEADER = DUMP_LEVEL_HEADER;
export const DUMP_MASK_KERN = DUMP_LEVEL_KERN;
export const DUMP_MASK_USED = DUMP_LEVEL_USED;
export const DUMP_MASK_UNUSED = DUMP_LEVEL_ALL_RAM;

/** Dump flags (dh_dump_flags / DUMP_FLAGS in /etc/sysconfig/dump). */
export const DUMP_FLAGS_NONE = 0x0;
export const DUMP_FLAGS_NONDISRUPT = 0x1;
export const DUMP_FLAGS_SOFTBOOT = 0x2;
export const DUMP_FLAGS_POLL = 0x4;
export const DUMP_FLAGS_NETDUMP = 0x40000000;
export const DUMP_FLAGS_DISKDUMP = 0x80000000;
export const DUMP_FLAGS_KNOWN = DUMP_FLAGS_NONDISRUPT | DUMP_FLAGS_SOFTBOOT | DUMP_FLAGS_POLL | DUMP_FLAGS_NETDUMP | DUMP_FLAGS_DISKDUMP;

/** Page record flags (dp_flags) and dump compression (dh_dump_compress) live with the page codecs. */
export {
  DUMP_DH_RAW, DUMP_DH_COMPRESSED, DUMP_DH_END, DUMP_COMPRESS_NONE, DUMP_COMPRESS_RLE, DUMP_COMPRESS_GZIP, type DumpCompress,
} from '../codecs/constants.js';
export const DUMP_DH_FLAGS_NONE = 0x0;
/** "Dump is incomplete" (K-V8/K-V9 dump.h). Readers such as crash reject it, so it is never set on a page record. */
export const DUMP_DH_TRUNCATED = 0x8;

/**
 * Turns a configured DUMP_LEVEL into the cumulative mask stored in
 * dh_dump_level, as the DIOSDUMPLEVEL fall-through switch does.
 */
export function dumpLevelMask(level: number): number {
  if (level >= DUMP_LEVEL_ALL_RAM) return DUMP_MASK_UNUSED | DUMP_MASK_USED | DUMP_MASK_KERN | DUMP_MASK_HEADER;
  if (level >= DUMP_LEVEL_USED) return DUMP_MASK_USED | DUMP_MASK_KERN | DUMP_MASK_HEADER;
  if (level >= DUMP_LEVEL_KERN) return DUMP_MASK_KERN | DUMP_MASK_HEADER;
  if (level >= DUMP_LEVEL_HEADER) return DUMP_MASK_HEADER;
  return DUMP_LEVEL_NONE;
}

/**
 * Why a range of frames is listed beside the dump (our extension): the
 * reason code of a missing-ranges entry, in RAM (dump_missing_page.reason)
 * and in the LKCDRNGS extension after the END record. DUMP_RANGE_DUMPER
 * frames held the dumper's own data at the crash: listed so that every
 * frame is accounted for, never counted as missing.
 */
export const DUMP_RANGE_UNSPECIFIED = 0; // written before reasons were kept (LKCDMISS, old in-RAM lists)
export const DUMP_RANGE_NOFIT = 1;       // stage 1: no room left in memory
export const DUMP_RANGE_DROPPED = 2;     // stage 1: the whole pass was dropped by the plan
export const DUMP_RANGE_DAMAGED_RAM = 3; // stage 2: damaged in memory between the crash and the writeout
export const DUMP_RANGE_DEVICE = 4;      // stage 2: the dump device was too small or failed
export const DUMP_RANGE_DUMPER = 5;      // the dumper's own frames (config block, maps, bootstrap pages, buffer)

/** The reasons by name, as the index and the CLIs show them. */
export const DUMP_RANGE_NAMES = ['unspecified', 'did-not-fit', 'pass-dropped', 'damaged-in-memory', 'device', 'dumper'] as const;
export type DumpRangeReasonName = (typeof DUMP_RANGE_NAMES)[number];

/** The name of a reason code; an unknown code is 'unspecified'. */
export function dumpRangeName(reason: number): DumpRangeReasonName {
  return DUMP_RANGE_NAMES[reason] ?? 'unspecified';
}
