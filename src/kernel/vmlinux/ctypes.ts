/**
 * The C vocabulary of the debug vmlinux: the kernel typedefs our struct
 * codecs name in their C types, the enums the kernel declares, and the C
 * type of every variable in System.map. Offsets and sizes never come from
 * here: they come from the codecs and the layout, and the generated C
 * asserts them (_Static_assert), so a mismatch fails the build.
 */
import {
  PG_active, PG_arch_1, PG_dirty, PG_error, PG_head, PG_hwpoison, PG_locked, PG_lru, PG_mappedtodisk, PG_mlocked,
  PG_owner_priv_1, PG_private, PG_private_2, PG_reclaim, PG_referenced, PG_reserved, PG_slab, PG_swapbacked,
  PG_unevictable, PG_uptodate, PG_waiters, PG_workingset, PG_writeback, LOG_CONT, LOG_NEWLINE,
} from '../constants.js';
import { PIDTYPE_MAX, PIDTYPE_PGID, PIDTYPE_PID, PIDTYPE_SID, PIDTYPE_TGID } from '../structs/pid.js';

/** x86_64 typedefs and small kernel types (include/linux/types.h, asm-generic/int-ll64.h, atomic, spinlock, pgtable_64_types.h). */
export const C_PRELUDE = `typedef signed char s8;
typedef unsigned char u8;
typedef short s16;
typedef unsigned short u16;
typedef int s32;
typedef unsigned int u32;
typedef long long s64;
typedef unsigned long long u64;
typedef unsigned long size_t;
typedef _Bool bool;
typedef int pid_t;
typedef unsigned long pgoff_t;
typedef unsigned int gfp_t;
typedef struct { int counter; } atomic_t;
typedef struct { long counter; } atomic64_t;
typedef atomic64_t atomic_long_t;
typedef struct refcount_struct { atomic_t refs; } refcount_t;
struct kref { refcount_t refcount; };
typedef struct spinlock { unsigned int rlock; } spinlock_t;
typedef unsigned long pgdval_t;
typedef unsigned long pudval_t;
typedef unsigned long pmdval_t;
typedef struct { pgdval_t pgd; } pgd_t;
typedef struct { pudval_t pud; } pud_t;
typedef struct { pmdval_t pmd; } pmd_t;
`;

/** sizeof of each C type the prelude and the language give, on x86_64. */
export const C_BASIC_SIZES: Readonly<Record<string, number>> = {
  char: 1, 'unsigned char': 1, 'signed char': 1, short: 2, 'unsigned short': 2, int: 4, 'unsigned int': 4,
  long: 8, 'unsigned long': 8, 'long long': 8, 'unsigned long long': 8,
  bool: 1, s8: 1, u8: 1, s16: 2, u16: 2, s32: 4, u32: 4, s64: 8, u64: 8, size_t: 8, pid_t: 4, pgoff_t: 8, gfp_t: 4,
  atomic_t: 4, atomic64_t: 8, atomic_long_t: 8, refcount_t: 4, 'struct kref': 4, spinlock_t: 4,
  pgd_t: 8, pud_t: 8, pmd_t: 8,
};

export interface CEnum { name: string; values: ReadonlyArray<readonly [string, number]> }

/**
 * Enums as the kernel declares them, so debuggers know the names:
 * enum pageflags (include/linux/page-flags.h, v5.4, x86_64 with
 * CONFIG_MEMORY_FAILURE and CONFIG_IDLE_PAGE_TRACKING, as Debian builds it),
 * enum log_flags (kernel/printk/printk.c), enum pid_type (include/linux/pid.h).
 */
export const C_ENUMS: readonly CEnum[] = [
  {
    name: 'pageflags',
    values: [
      ['PG_locked', PG_locked], ['PG_referenced', PG_referenced], ['PG_uptodate', PG_uptodate], ['PG_dirty', PG_dirty],
      ['PG_lru', PG_lru], ['PG_active', PG_active], ['PG_workingset', PG_workingset], ['PG_waiters', PG_waiters],
      ['PG_error', PG_error], ['PG_slab', PG_slab], ['PG_owner_priv_1', PG_owner_priv_1], ['PG_arch_1', PG_arch_1],
      ['PG_reserved', PG_reserved], ['PG_private', PG_private], ['PG_private_2', PG_private_2],
      ['PG_writeback', PG_writeback], ['PG_head', PG_head], ['PG_mappedtodisk', PG_mappedtodisk],
      ['PG_reclaim', PG_reclaim], ['PG_swapbacked', PG_swapbacked], ['PG_unevictable', PG_unevictable],
      ['PG_mlocked', PG_mlocked], ['PG_hwpoison', PG_hwpoison], ['PG_young', PG_hwpoison + 1], ['PG_idle', PG_hwpoison + 2],
      ['__NR_PAGEFLAGS', PG_hwpoison + 3],
      ['PG_checked', PG_owner_priv_1], ['PG_swapcache', PG_owner_priv_1], ['PG_fscache', PG_private_2],
      ['PG_pinned', PG_owner_priv_1], ['PG_savepinned', PG_dirty], ['PG_foreign', PG_owner_priv_1],
      ['PG_slob_free', PG_private], ['PG_double_map', PG_private_2], ['PG_isolated', PG_reclaim],
    ],
  },
  { name: 'log_flags', values: [['LOG_NEWLINE', LOG_NEWLINE], ['LOG_CONT', LOG_CONT]] },
  {
    name: 'pid_type',
    values: [['PIDTYPE_PID', PIDTYPE_PID], ['PIDTYPE_TGID', PIDTYPE_TGID], ['PIDTYPE_PGID', PIDTYPE_PGID], ['PIDTYPE_SID', PIDTYPE_SID], ['PIDTYPE_MAX', PIDTYPE_MAX]],
  },
];

/**
 * The C type of each variable of the simulated kernel, by System.map name.
 * `T[]` is an array sized by the symbol (its System.map size divided by
 * sizeof(T)). Types follow the 5.4 declarations where our variable is the
 * kernel's (log_buf is `char *`, log_first_idx `u32`, mem_map `struct
 * page *`); where ours differs, the type says what is really there
 * (vmcoreinfo_data is an array here, the *_cachep caches are the struct
 * itself).
 */
export const VARIABLE_TYPES: Readonly<Record<string, string>> = {
  lkcd_kernel_header: 'const struct lkcd_kernel_header',
  kallsyms_table: 'const struct kallsyms_entry[]',
  linux_banner: 'const char[]',
  task_state_array: 'const char *const[]',
  init_uts_ns: 'struct uts_namespace',
  log_buf: 'char *',
  log_buf_len: 'u32',
  log_first_idx: 'u32',
  log_next_idx: 'u32',
  clear_idx: 'u32',
  log_first_seq: 'u64',
  log_next_seq: 'u64',
  clear_seq: 'u64',
  mem_map: 'struct page *',
  max_pfn: 'unsigned long',
  _totalram_pages: 'atomic_long_t',
  contig_page_data: 'struct pglist_data',
  vmcoreinfo_data: 'unsigned char[]',
  vmcoreinfo_size: 'size_t',
  boot_command_line: 'char[]',
  saved_command_line: 'char *',
  init_task: 'struct task_struct',
  nr_threads: 'int',
  last_pid: 'int',
  task_struct_cachep: 'struct kmem_cache',
  sim_clock_ns: 'u64',
  sim_boot_time: 'u64',
  sim_workload: 'struct sim_workload',
  dump_config: 'struct dump_config',
  kexec_image: 'struct kimage *',
  crashdump_addr: 'unsigned long',
  panic_cpu: 'atomic_t',
  crash_regs: 'struct pt_regs',
  jiffies: 'volatile unsigned long',
  init_pid_ns: 'struct pid_namespace',
  init_struct_pid: 'struct pid',
  pid_cachep: 'struct kmem_cache',
  radix_tree_node_cachep: 'struct kmem_cache',
  modules: 'struct list_head',
  oops_cxt: 'struct ramoops_context',
  e820_table: 'struct e820_table',
  phys_base: 'unsigned long',
  min_low_pfn: 'unsigned long',
  initrd_start: 'unsigned long',
  initrd_end: 'unsigned long',
  crashk_res: 'struct resource',
  kexec_crash_image: 'struct kimage *',
  crash_notes: 'u32 *',
  crash_notes_buf: 'u32[]',
  vmcoreinfo_note: 'u32[]',
  elfcorehdr_addr: 'unsigned long long',
  elfcorehdr_size: 'unsigned long long',
  elfcorebuf: 'char *',
  elfcorebuf_sz: 'size_t',
  elfnotes_buf: 'char *',
  elfnotes_sz: 'size_t',
  elfnotes_orig_sz: 'size_t',
  vmcoredd_orig_sz: 'size_t',
  vmcore_size: 'u64',
  vmcore_list: 'struct list_head',
  fw_dump: 'struct fw_dump',
  fdm: 'struct fadump_mem_struct',
  fdm_active: 'struct fadump_mem_struct',
  crashing_cpu: 'int',
  vmcoredd_list: 'struct list_head',
  vmcoredd_disabled: 'bool',
  vmcoredd_disabled_warned: 'bool',
  vmalloc_next: 'unsigned long',
  pstore_state: 'struct pstore_state',
  devcd_state: 'struct devcd_state',
  init_top_pgt: 'pgd_t[]',
  level3_kernel_pgt: 'pud_t[]',
  level2_kernel_pgt: 'pmd_t[]',
  level3_direct_map_pgt: 'pud_t[]',
  __log_buf: 'char[]',
};
