/**
 * Linux x86_64 constants as a 5.4 kernel defines them (4-level paging,
 * FLATMEM mem_map, no KASLR: phys_base 0).
 */
export const __START_KERNEL_map = 0xffffffff80000000n;
/** Direct map base with 4-level paging (arch/x86/include/asm/page_64_types.h, v4.20+). */
export const PAGE_OFFSET = 0xffff888000000000n;
/** CONFIG_PHYSICAL_START of the standard build: the kernel image lives at 16 MiB. */
export const LOAD_PHYSICAL_ADDR = 0x1000000n;
/**
 * CONFIG_PHYSICAL_START of the "lowmem" build used for machines under
 * 64 MiB, where 16 MiB would not leave room (2 MiB: the pre-2.6.31 default).
 */
export const LOWMEM_PHYSICAL_START = 0x200000n;
export const LOWMEM_LIMIT = 64n << 20n;
/** The first megabyte (real-mode IVT, BIOS data, EBDA, VGA, option ROMs) is never handed out. */
export const LOW_RESERVED_END = 0x100000n;

export const MAX_ORDER = 11;
export const THREAD_SIZE_ORDER = 2;
export const TASK_COMM_LEN = 16;
export const COMMAND_LINE_SIZE = 2048;
export const VMCOREINFO_BYTES = 4096;
export const __NEW_UTS_LEN = 64;

/** Page flag bit numbers (include/linux/page-flags.h, v5.4). */
export const PG_locked = 0;
export const PG_referenced = 1;
export const PG_uptodate = 2;
export const PG_dirty = 3;
export const PG_lru = 4;
export const PG_active = 5;
export const PG_workingset = 6;
export const PG_waiters = 7;
export const PG_error = 8;
export const PG_slab = 9;
export const PG_owner_priv_1 = 10;
export const PG_arch_1 = 11;
export const PG_reserved = 12;
export const PG_private = 13;
export const PG_private_2 = 14;
export const PG_writeback = 15;
export const PG_head = 16;
export const PG_mappedtodisk = 17;
export const PG_reclaim = 18;
export const PG_swapbacked = 19;
export const PG_unevictable = 20;
export const PG_mlocked = 21;
export const PG_swapcache = PG_owner_priv_1;
export const PG_hwpoison = 22;

export function pageFlag(bit: number): bigint {
  return 1n << BigInt(bit);
}

/** Low bit of page->mapping marks an anon_vma, not an address_space (include/linux/page-flags.h). */
export const PAGE_MAPPING_ANON = 0x1n;
/** page_type of a free buddy head: ~PG_buddy with PG_buddy = 0x80 (v4.18+). */
export const PAGE_BUDDY_MAPCOUNT_VALUE = -129;
export const PAGE_OFFLINE_MAPCOUNT_VALUE = -257;
/** _mapcount of a page nobody maps. */
export const PAGE_MAPCOUNT_NONE = -1;

/** CONFIG_HZ of Debian's x86_64 kernels: jiffies advance 250 times a second. */
export const HZ = 250n;
/** INITIAL_JIFFIES (include/linux/jiffies.h): (unsigned long)(unsigned int)(-300 * HZ): the low 32 bits wrap 5 minutes after boot. */
export const INITIAL_JIFFIES = BigInt.asUintN(32, -300n * HZ);

/** Task states (include/linux/sched.h). */
export const TASK_RUNNING = 0x0000n;
export const TASK_INTERRUPTIBLE = 0x0001n;
export const TASK_UNINTERRUPTIBLE = 0x0002n;
export const TASK_DEAD = 0x0080n;
export const PF_KTHREAD = 0x00200000;

/** Log levels (include/linux/kern_levels.h). */
export const LOGLEVEL_EMERG = 0;
export const LOGLEVEL_ALERT = 1;
export const LOGLEVEL_CRIT = 2;
export const LOGLEVEL_ERR = 3;
export const LOGLEVEL_WARNING = 4;
export const LOGLEVEL_NOTICE = 5;
export const LOGLEVEL_INFO = 6;
/** printk_log flags: enum log_flags (kernel/printk/printk.c, 4.x..5.9). */
export const LOG_NEWLINE = 2;
export const LOG_CONT = 8;
/** printk_log records are 8-byte aligned (__alignof__(struct printk_log)). */
export const LOG_ALIGN = 8;

export const KERNEL_RELEASE = '5.4.0-lkcd';
export const KERNEL_RELEASE_LOWMEM = '5.4.0-lkcd-lowmem';

/** The simulated machine has one CPU (NR_CPUS of its build). */
export const NR_CPUS = 1;

/** x86_64 crashkernel placement (arch/x86/kernel/setup.c, v5.4): 16 MiB alignment, below 4 GiB first. */
export const CRASH_ALIGN = 16n << 20n;
export const CRASH_ADDR_LOW_MAX = 4n << 30n;
export const CRASH_ADDR_HIGH_MAX = 64n << 40n;

/** kimage types (include/linux/kexec.h). */
export const KEXEC_TYPE_DEFAULT = 0;
export const KEXEC_TYPE_CRASH = 1;

/** elfcorehdr_addr when no elfcorehdr= was given, and after vmcore_init consumed it (include/linux/crash_dump.h). */
export const ELFCORE_ADDR_MAX = 0xffffffffffffffffn;
export const ELFCORE_ADDR_ERR = 0xfffffffffffffffen;

/** The sentinel LKCD's setup.c used for "no crashdump= given" (crashdump_addr). */
export const CRASHDUMP_ADDR_NONE = 0xdeadbeefn;
