/**
 * The debug vmlinux says what the code lays out: every Kerntypes structure
 * and member is in its DWARF at the same offset, with the same size and C
 * type, as drgn's type API reads it; every System.map symbol is in its
 * symbol table at the same address, every variable typed there with the
 * right size; the kernel's enums carry the header's values. A codec change
 * without a vmlinux rebuild fails here, and the rebuild is keyed so that a
 * stale vmlinux, Kerntypes or vmlinuz is replaced at the next build.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKernel, configForRam, KERNEL_STRUCTS, kernelLayout, type KernelBuildFiles, type KernelConfig } from '../../src/kernel/index.js';
import { findKernelTextElf } from '../../src/kernel/workload/elf_text.js';
import { untypedVariables } from '../../src/kernel/vmlinux/plan.js';
import { makeTempDir, MiB, removeTempDir } from '../helpers/machine.js';
import { needs, runTool, SYSTEM_PYTHON } from '../helpers/tools.js';

const SCRIPTS = path.join(path.dirname(new URL(import.meta.url).pathname), 'scripts');

interface DrgnMember { name: string; bit_offset: number; bit_field_size: number | null; size: number; type: string }
interface DrgnLayout {
  structs: Record<string, { size: number; members: DrgnMember[] } | null>;
  symbols: Record<string, { symbol: [string, number] | null; variable: [string | null, number, string] | null }>;
  enumerators: Record<string, number | null>;
}

/**
 * Enumerator values from the 5.4 headers: include/linux/page-flags.h (with
 * CONFIG_MMU, CONFIG_MEMORY_FAILURE, CONFIG_IDLE_PAGE_TRACKING on x86_64),
 * kernel/printk/printk.c enum log_flags, include/linux/pid.h enum pid_type.
 */
const ENUMERATORS: Record<string, number> = {
  PG_locked: 0, PG_referenced: 1, PG_uptodate: 2, PG_dirty: 3, PG_lru: 4, PG_active: 5, PG_workingset: 6, PG_waiters: 7,
  PG_error: 8, PG_slab: 9, PG_owner_priv_1: 10, PG_arch_1: 11, PG_reserved: 12, PG_private: 13, PG_private_2: 14,
  PG_writeback: 15, PG_head: 16, PG_mappedtodisk: 17, PG_reclaim: 18, PG_swapbacked: 19, PG_unevictable: 20,
  PG_mlocked: 21, PG_hwpoison: 22, PG_young: 23, PG_idle: 24, __NR_PAGEFLAGS: 25, PG_checked: 10, PG_swapcache: 10,
  PG_isolated: 18, LOG_NEWLINE: 2, LOG_CONT: 8, PIDTYPE_PID: 0, PIDTYPE_TGID: 1, PIDTYPE_PGID: 2, PIDTYPE_SID: 3, PIDTYPE_MAX: 4,
};

/** C type names as drgn prints them ('char [16]', 'struct list_head *') and as the codecs write them ('char[16]'). */
const normType = (t: string): string => t.replace(/\s+/g, '').replace(/^volatile/, '');

function drgnLayout(vmlinux: string, structs: string[], symbols: string[]): DrgnLayout {
  const r = runTool(SYSTEM_PYTHON, [path.join(SCRIPTS, 'drgn_layout.py'), vmlinux, structs.join(','), symbols.join(','), Object.keys(ENUMERATORS).join(',')], 300);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as DrgnLayout;
}

interface MapSymbol { address: bigint; type: string; name: string }

function readMap(file: string): MapSymbol[] {
  return fs.readFileSync(file, 'latin1').trim().split('\n').map((l) => {
    const [a, type, name] = l.split(' ');
    return { address: BigInt(`0x${a}`), type, name };
  });
}

interface KerntypesFile { release: string; structs: Array<{ name: string; size: number; fields: Array<{ name: string; offset: number; size: number; type: string; bitfields?: Array<{ name: string; bits: number }> }> }> }

const tools = needs('gcc', 'python3:drgn', 'readelf');
const CONFIGS: Array<[string, KernelConfig]> = [['64M build', configForRam(64n * MiB)], ['16M lowmem build', configForRam(16n * MiB)]];

let tmp = '';
const built = new Map<string, KernelBuildFiles>();

describe.skipIf(tools.skip)(`the vmlinux DWARF against Kerntypes and System.map${tools.reason}`, () => {
  beforeAll(() => {
    tmp = makeTempDir('vmlinux-layout');
    for (const [what, config] of CONFIGS) {
      const boot = path.join(tmp, config.release);
      fs.mkdirSync(boot);
      built.set(what, buildKernel(boot, config, () => findKernelTextElf()));
    }
  });
  afterAll(() => { if (tmp) removeTempDir(tmp); });

  it.each(CONFIGS)('%s: every Kerntypes struct and field is in the DWARF at its offset, with its size and C type; bitfields bit by bit', (what) => {
    const files = built.get(what)!;
    const kerntypes = JSON.parse(fs.readFileSync(files.kerntypes, 'utf8')) as KerntypesFile;
    // Kerntypes is the codecs' layout: the file the build wrote and the codecs agree.
    expect(kerntypes.structs.map((s) => [s.name, s.size, s.fields.map((f) => [f.name, f.offset, f.size])]))
      .toEqual(KERNEL_STRUCTS.map((s) => [s.name, s.size, s.fields.map((f) => [f.name, f.offset, f.size])]));
    const dwarf = drgnLayout(files.vmlinux, kerntypes.structs.map((s) => s.name), []);
    const problems: string[] = [];
    for (const s of kerntypes.structs) {
      const d = dwarf.structs[s.name];
      if (!d) { problems.push(`struct ${s.name} is not in the DWARF`); continue; }
      if (d.size !== s.size) problems.push(`struct ${s.name}: DWARF size ${d.size}, Kerntypes ${s.size}`);
      const want: DrgnMember[] = [];
      for (const f of s.fields) {
        if (f.bitfields) {
          let bit = f.offset * 8;
          for (const b of f.bitfields) {
            want.push({ name: b.name, bit_offset: bit, bit_field_size: b.bits, size: f.size, type: f.type });
            bit += b.bits;
          }
        } else {
          want.push({ name: f.name, bit_offset: f.offset * 8, bit_field_size: null, size: f.size, type: f.type });
        }
      }
      const got = d.members.map((m) => ({ ...m, type: normType(m.type) }));
      const exp = want.map((m) => ({ ...m, type: normType(m.type) }));
      if (JSON.stringify(got) !== JSON.stringify(exp)) problems.push(`struct ${s.name}:\n  DWARF     ${JSON.stringify(got)}\n  Kerntypes ${JSON.stringify(exp)}`);
    }
    expect(problems).toEqual([]);
    // Non-vacuous: pointers are typed as pointers, the printk_log bitfields are there.
    const task = dwarf.structs.task_struct!.members;
    expect(task.find((m) => m.name === 'real_parent')!.type).toBe('struct task_struct *');
    expect(dwarf.structs.printk_log!.members.slice(-2)).toEqual([
      { name: 'flags', bit_offset: 120, bit_field_size: 5, size: 1, type: 'u8' },
      { name: 'level', bit_offset: 125, bit_field_size: 3, size: 1, type: 'u8' },
    ]);
  });

  it.each(CONFIGS)('%s: every System.map symbol is at its address; every data symbol a variable of its size (or a linker alias of one); the enums', (what, config) => {
    const files = built.get(what)!;
    const map = readMap(files.systemMap);
    // System.map has no sizes: the layout that places each variable in RAM gives them.
    const sizes = new Map(kernelLayout(config).symbols.map((x) => [x.name, x.size]));
    const dwarf = drgnLayout(files.vmlinux, [], map.map((s) => s.name));
    const problems: string[] = [];
    for (const s of map) {
      const d = dwarf.symbols[s.name];
      if (!d.symbol) { problems.push(`${s.name}: not in the ELF symbol table`); continue; }
      if (BigInt(d.symbol[0]) !== s.address) problems.push(`${s.name}: ELF symbol at ${d.symbol[0]}, System.map 0x${s.address.toString(16)}`);
    }
    for (const s of map) {
      const d = dwarf.symbols[s.name];
      const size = sizes.get(s.name) ?? 0n;
      if (size === 0n || !/^[DdBbRr]$/.test(s.type)) continue;
      if (d.variable) {
        if (d.variable[0] === null || BigInt(d.variable[0]) !== s.address) problems.push(`${s.name}: DWARF variable at ${d.variable[0]}, System.map 0x${s.address.toString(16)}`);
        if (BigInt(d.variable[1]) !== size) problems.push(`${s.name}: sizeof ${d.variable[1]}, symbol size ${size}`);
      } else {
        const aliasOf = map.find((o) => o !== s && o.address === s.address && dwarf.symbols[o.name].variable);
        if (!aliasOf) problems.push(`${s.name}: no DWARF variable, and no variable at its address`);
      }
    }
    expect(problems).toEqual([]);
    // Every variable has its C type, not the bytes a variable missing from VARIABLE_TYPES gets.
    expect(untypedVariables(kernelLayout(config))).toEqual([]);
    for (const [name, value] of Object.entries(ENUMERATORS)) expect(dwarf.enumerators[name], name).toBe(value);
    // The types a debugger reaches drgn's helpers through.
    const t = (n: string): string => dwarf.symbols[n].variable![2];
    expect([t('log_buf'), t('log_first_idx'), t('log_first_seq'), t('mem_map'), t('init_task'), t('init_pid_ns'), t('jiffies'), t('_totalram_pages')])
      .toEqual(['char *', 'u32', 'u64', 'struct page *', 'struct task_struct', 'struct pid_namespace', 'volatile unsigned long', 'atomic_long_t']);
    expect(dwarf.symbols.jiffies_64.symbol![0]).toBe(dwarf.symbols.jiffies.symbol![0]);
  });

  it('the two builds have different build IDs; building again keeps every file; a stale vmlinux, Kerntypes or vmlinuz is rebuilt', () => {
    const [big, small] = CONFIGS.map(([what]) => built.get(what)!);
    const idOf = (f: string): string => /Build ID: ([0-9a-f]{40})/.exec(runTool('readelf', ['-n', f]).stdout)![1];
    expect(idOf(big.vmlinux)).not.toBe(idOf(small.vmlinux));
    expect(idOf(big.vmlinux)).toBe(idOf(big.vmlinuz));

    const [, config] = CONFIGS[0];
    const boot = path.dirname(big.vmlinux);
    const stamp = (): string[] => [big.vmlinuz, big.systemMap, big.kerntypes, big.vmlinux].map((f) => `${fs.statSync(f).ino}:${fs.statSync(f).mtimeMs}`);
    const before = stamp();
    buildKernel(boot, config, () => findKernelTextElf());
    expect(stamp()).toEqual(before);

    // Another build's vmlinux in its place (a vmlinux left from an older code base): replaced.
    fs.copyFileSync(small.vmlinux, big.vmlinux);
    buildKernel(boot, config, () => findKernelTextElf());
    expect(idOf(big.vmlinux)).toBe(idOf(big.vmlinuz));

    // A vmlinuz whose build ID is not this code's (its kernel text changed): everything is written again.
    const id = idOf(big.vmlinuz);
    const source = findKernelTextElf();
    const other = { text: source.text.slice(1), rodata: source.rodata };
    buildKernel(boot, config, () => other);
    expect(idOf(big.vmlinuz)).not.toBe(id);
    expect(idOf(big.vmlinux)).toBe(idOf(big.vmlinuz));
    buildKernel(boot, config, () => findKernelTextElf());
    expect(idOf(big.vmlinuz)).toBe(id);
    expect(idOf(big.vmlinux)).toBe(id);
  });
});
