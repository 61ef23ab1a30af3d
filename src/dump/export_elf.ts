/**
 * Converts a saved dump into an ELF vmcore shaped like a kdump kernel's
 * /proc/vmcore, so crash, makedumpfile, vmcore-dmesg and gdb can read it
 * (layout: shared/reference/vmcore-real-clients.md §2 and §7):
 *
 *   phdr[0]   PT_NOTE: the device dumps the dump carries ("LINUX" NT_VMCOREDD, first, as /proc/vmcore
 *             places them), "CORE" NT_PRSTATUS of the dumping CPU, then "VMCOREINFO"
 *   PT_LOADs  the kernel-text mapping [_text, _end), paddr = vaddr - __START_KERNEL_map, one per
 *             run of pages the dump holds
 *   PT_LOADs  the direct map, vaddr PAGE_OFFSET + paddr, one per run of pages the dump holds
 *
 * A page the dump does not hold is in no PT_LOAD (a hole between loads, as
 * makedumpfile's ELF output leaves excluded pages out), so a reader faults
 * on it instead of reading zeros that were never in RAM.
 */
import { CorruptDumpError, DumpError, encodeVmcoreddNote, FaultError, hex, InternalError, vmcoredd_header, wrapError } from '../codec/index.js';
import { GarbageBound, PAGE_SHIFT } from '../machine/index.js';
import { PN_XNUM } from '../codec/elf.js';
import { PAGE_OFFSET, __START_KERNEL_map } from '../kernel/constants.js';
import type { PtRegs } from '../kernel/structs/pt_regs.js';
import { task_struct } from '../kernel/structs/task_struct.js';
import type { UserRegName } from '../codec/elf.js';
import { writeVmcore, type PrStatus, type VmcoreLoad, type VmcoreResult } from './elf/vmcore_writer.js';
import type { DumpMemory } from './dump_memory.js';
import { kernelViewOf, type KernelView } from './kernel_view.js';
import type { ProbedDump } from './formats/types.js';

/** pt_regs member -> user_regs_struct member (the NT_PRSTATUS register set). */
const PT_REGS_TO_USER_REGS: { readonly [K in keyof PtRegs]: UserRegName } = {
  r15: 'r15', r14: 'r14', r13: 'r13', r12: 'r12', bp: 'rbp', bx: 'rbx', r11: 'r11', r10: 'r10', r9: 'r9', r8: 'r8',
  ax: 'rax', cx: 'rcx', dx: 'rdx', si: 'rsi', di: 'rdi', orig_ax: 'orig_rax', ip: 'rip', cs: 'cs', flags: 'eflags',
  sp: 'rsp', ss: 'ss',
};

export interface ExportElfResult extends VmcoreResult {
  /** The PT_LOADs written, in program header order. */
  loads: VmcoreLoad[];
  /** Highest PFN in the dump. */
  maxPfn: bigint;
  /** Frames of RAM the dump does not hold: left out of every PT_LOAD. */
  holePages: bigint;
  /** Frames of RAM: dh_memory_size, or max PFN + 1 when the dump does not say. */
  framesOfRam: bigint;
}

/**
 * The runs [start, end) of consecutive PFNs the dump holds, in PFN order.
 * A first pass finds how many and the highest; then one bit per frame up
 * to it (the pages need no sort), or a sorted array of the PFNs when
 * that is smaller (a few pages far apart).
 */
function presentRuns(dump: ProbedDump): { runs: Array<[number, number]>; maxPfn: number } {
  let count = 0;
  let max = -1;
  for (const pfn of dump.pages()) {
    count++;
    const p = Number(pfn);
    if (p > max) max = p;
  }
  if (count === 0) throw new CorruptDumpError('the dump holds no pages to export', {});
  const runs: Array<[number, number]> = [];
  const extend = (pfn: number): void => {
    const last = runs[runs.length - 1];
    if (last && last[1] === pfn) last[1] = pfn + 1;
    else runs.push([pfn, pfn + 1]);
  };
  const changed = (): InternalError => new InternalError('the dump\'s pages changed while they were listed');
  if (max < 2 ** 32 && (max + 1) / 8 <= count * 4) {
    const bits = new Uint8Array(Math.floor(max / 8) + 1);
    for (const pfn of dump.pages()) {
      const p = Number(pfn);
      if (p > max) throw changed();
      bits[p >>> 3] |= 1 << (p & 7);
    }
    for (let byte = 0; byte < bits.length; byte++) {
      const b = bits[byte];
      if (b === 0) continue;
      for (let bit = 0; bit < 8; bit++) if (b & (1 << bit)) extend(byte * 8 + bit);
    }
    return { runs, maxPfn: max };
  }
  const all = new Float64Array(count);
  let filled = 0;
  for (const pfn of dump.pages()) {
    if (filled === count) throw changed();
    all[filled++] = Number(pfn);
  }
  if (filled !== count) throw changed();
  for (const p of all.sort()) extend(p);
  return { runs, maxPfn: max };
}

export { readVmcoreinfoText } from './kernel_view.js';

/**
 * pid of the task that dumped, for NT_PRSTATUS. The pid is cosmetic there
 * (gdb shows it as the LWP), so a task_struct the dump does not hold gives
 * pid 0 rather than failing the export.
 */
function currentPid(mem: DumpMemory, task: bigint): number {
  if (task === 0n) return 0;
  try {
    return Buffer.from(mem.read('virt', task + BigInt(task_struct.offsetOf.pid), 4)).readInt32LE(0);
  } catch (e) {
    if (e instanceof FaultError) return 0;
    throw e;
  }
}

/**
 * Writes `dump` to `out` as an ELF vmcore (atomically, see writeVmcore).
 * `symbols` is the dump's KernelView, or a System.map (readSystemMap) to
 * make one: it gives _text, _end, the page tables and the VMCOREINFO text
 * (the dump's own note when it carries one). A view from VMCOREINFO alone
 * knows no [_text, _end): the export then has only the direct map.
 *
 * Only pages the dump holds are in a PT_LOAD: each run of consecutive
 * present pages is one load, in the kernel-text mapping (where it overlaps
 * [_text, _end)) and in the direct map.
 */
export function exportDumpAsElf(
  dump: ProbedDump,
  symbols: ReadonlyMap<string, bigint> | KernelView,
  out: string,
  onProgress?: (doneBytes: bigint, totalBytes: bigint) => void,
): ExportElfResult {
  const view = symbols instanceof Map ? kernelViewOf(dump, symbols) : symbols as KernelView;
  const pageSize = dump.attrs['arch.page_size'];
  const pageSizeN = BigInt(pageSize);

  const present = presentRuns(dump);
  const runs = present.runs;
  const maxPfn = BigInt(present.maxPfn);
  // Listing the pages walked the dump: what only the walk needed (an LKCD dump's checksum records,
  // 12 bytes a page) is garbage in the old generation. Freed now, before the notes and the data are made.
  new GarbageBound(1, 'full').note(1);

  const mem = view.memory;
  let vmcoreinfo: string;
  try {
    vmcoreinfo = view.vmcoreinfo();
  } catch (e) {
    throw wrapError('reading VMCOREINFO from the dump', e);
  }

  const regs: PrStatus['regs'] = {};
  const ptRegs = dump.attrs['crash.regs'];
  for (const [name, user] of Object.entries(PT_REGS_TO_USER_REGS) as Array<[keyof PtRegs, UserRegName]>) {
    regs[user] = ptRegs[name];
  }
  const prstatus: PrStatus[] = [{ pid: currentPid(mem, dump.attrs['crash.current_task']), regs }];

  const loads: VmcoreLoad[] = [];
  const text = view.text;
  if (text && text.start < __START_KERNEL_map) {
    throw new CorruptDumpError(`_text ${hex(text.start)} is not a kernel-text address`, { struct: 'System.map', field: '_text' });
  }
  if (text && text.end > text.start) {
    const textStart = text.start - __START_KERNEL_map;
    const textEnd = text.end - __START_KERNEL_map;
    for (const [s, e] of runs) {
      const lo = BigInt(s) * pageSizeN > textStart ? BigInt(s) * pageSizeN : textStart;
      const hi = BigInt(e) * pageSizeN < textEnd ? BigInt(e) * pageSizeN : textEnd;
      if (lo < hi) loads.push({ vaddr: __START_KERNEL_map + lo, paddr: lo, size: hi - lo });
    }
  }
  for (const [s, e] of runs) {
    loads.push({ vaddr: PAGE_OFFSET + BigInt(s) * pageSizeN, paddr: BigInt(s) * pageSizeN, size: BigInt(e - s) * pageSizeN });
  }
  if (loads.length + 1 >= PN_XNUM) {
    throw new DumpError('UNSUPPORTED',
      `the dump's pages form ${runs.length} runs, ${loads.length} PT_LOADs with the kernel text: an ELF file holds at most ${PN_XNUM - 2}`);
  }

  // One page buffer for every read, when the dump can read into it.
  const page = new Uint8Array(pageSize);
  const readPage = dump.readPageInto ? (pfn: bigint) => dump.readPageInto!(pfn, page) : (pfn: bigint) => dump.readPage(pfn);
  const readPhys = (paddr: bigint, buf: Uint8Array): void => {
    let done = 0;
    while (done < buf.length) {
      const pa = paddr + BigInt(done);
      const pfn = pa >> BigInt(PAGE_SHIFT);
      const off = Number(pa % pageSizeN);
      const n = Math.min(pageSize - off, buf.length - done);
      // Every byte of a load is in a page the dump holds: readPage faults otherwise.
      buf.set(readPage(pfn).subarray(off, off + n), done);
      done += n;
    }
  };

  // Each device dump as the note /proc/vmcore showed: its header, its data (a whole number of pages with the header).
  const deviceDumps = (dump.deviceDumps?.() ?? []).map((d) => encodeVmcoreddNote(d.name, d.data(), vmcoredd_header.size + d.size));
  const result = writeVmcore(out, { loads, vmcoreinfo, prstatus, deviceDumps, readPhys, onProgress });
  const memory = dump.attrs['dump.memory_pages'];
  const framesOfRam = memory > maxPfn ? memory : maxPfn + 1n;
  // Pages held below framesOfRam: each run's part under it.
  let held = 0n;
  for (const [s, e] of runs) if (BigInt(s) < framesOfRam) held += (BigInt(e) < framesOfRam ? BigInt(e) : framesOfRam) - BigInt(s);
  return { ...result, loads, maxPfn, holePages: framesOfRam - held, framesOfRam };
}
