import { DumpError, hex, InternalError } from '../src/codec/index.js';
import { PAGE_SIZE } from '../src/machine/index.js';
import {
  forEachPageTypeRaw, formatDmesg, listTasks, page, PAGE_TYPES, SCAN_BATCH, taskStateName, type LogRecord, type PageType,
} from '../src/kernel/index.js';
import { kernelViewOf, type KernelView, type ProbedDump } from '../src/dump/index.js';
import type { SymbolTable } from './symbols.js';

export interface DumpFacts {
  log: LogRecord[] | null;
  logError?: string;
  pageTypes: Record<PageType, number> | null;
  pageTypesError?: string;
  tasks: ReturnType<typeof listTasks> | null;
  tasksError?: string;
  callSite: string;
}

const message = (e: unknown): string => (e as Error).message;

/**
 * What can be read out of a saved dump through its page tables: log, tasks,
 * mem_map, with the System.map kept beside it, or (`syms` null) with what
 * the dump's own VMCOREINFO note names. What cannot be read says why.
 */
export function readDumpFacts(dump: ProbedDump, syms: SymbolTable | null): DumpFacts {
  const ip = dump.attrs['crash.regs'].ip;
  let view: KernelView;
  try {
    view = kernelViewOf(dump, syms?.byName ?? null);
  } catch (e) {
    if (!(e instanceof DumpError) || e.code === 'INTERNAL') throw e;
    const why = syms ? message(e) : `no System.map, and ${message(e)}`;
    return { log: null, logError: why, pageTypes: null, pageTypesError: why, tasks: null, tasksError: why, callSite: syms?.symbolize(ip) ?? hex(ip) };
  }
  const mem = view.memory;
  const facts: DumpFacts = { log: null, pageTypes: null, tasks: null, callSite: syms ? syms.symbolize(ip) : view.symbolize(ip) };
  try { facts.log = view.log(); } catch (e) { facts.logError = message(e); }
  try {
    if (view.initTask === null) throw new Error(`${view.source} does not name init_task`);
    facts.tasks = listTasks(mem, view.initTask);
  } catch (e) { facts.tasksError = message(e); }
  try {
    const memMapSym = view.memMap;
    const maxPfnSym = view.maxPfn;
    if (memMapSym === null || maxPfnSym === null) throw new Error(`${view.source} does not name both mem_map and max_pfn`);
    const rd64 = (va: bigint): bigint => Buffer.from(mem.read('virt', va, 8)).readBigUInt64LE(0);
    const memMap = rd64(memMapSym);
    const maxPfn = rd64(maxPfnSym);
    const counts = Object.fromEntries(PAGE_TYPES.map((t) => [t, 0])) as Record<PageType, number>;
    // One buffer for every batch of struct pages (a new one each is 64 bytes a frame of garbage).
    const batch = new Uint8Array(SCAN_BATCH * page.size);
    forEachPageTypeRaw((pfn, count) => {
      if (count > SCAN_BATCH) throw new InternalError(`forEachPageTypeRaw asked for ${count} struct pages, more than ${SCAN_BATCH}`);
      const out = batch.subarray(0, count * page.size);
      mem.readInto('virt', memMap + pfn * BigInt(page.size), out);
      return out;
    }, 0n, maxPfn, (_p, t) => { counts[t]++; });
    facts.pageTypes = counts;
  } catch (e) { facts.pageTypesError = message(e); }
  return facts;
}

const REG_ORDER = ['ip', 'sp', 'flags', 'ax', 'bx', 'cx', 'dx', 'si', 'di', 'bp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'cs', 'ss', 'orig_ax'] as const;

/** What the crashed kernel's panic() logged ("Kernel panic - not syncing: MSG"), the newest; null when the log has none. */
export function panicFromLog(log: readonly LogRecord[] | null): string | null {
  if (!log) return null;
  for (let i = log.length - 1; i >= 0; i--) {
    const m = /^Kernel panic - not syncing: (.*)$/.exec(log[i].text);
    if (m) return m[1];
  }
  return null;
}

export interface AnalysisFigures {
  pages: number; compressed: number; storedBytes: number; missingPages: number;
  /** Pages dump.N holds that fail their checks (they read as not present). */
  damagedPages?: number;
  state?: 'complete' | 'truncated' | 'damaged';
  checksum?: 'verified' | 'failed' | 'unverified';
  /** The panic string when the dump's header has none (kdump, ELF: taken from the log). */
  panic?: string;
}

/** The lcrash-style report written to analysis.N and printed by `lkcd analyze N`. */
export function analysisText(n: number, dump: ProbedDump, facts: DumpFacts, fig: AnalysisFigures, lastLines = 20): string {
  const a = dump.attrs;
  const out: string[] = [];
  const when = new Date(Number(a['crash.time']) * 1000).toUTCString();
  out.push(`lkcd analysis of dump ${n}`, '');
  out.push(`    panic string: ${a['crash.panic_string'] || fig.panic || ''}`);
  out.push(`            time: ${when} (${a['crash.time']})`);
  out.push(`            host: ${a['linux.uts.nodename']}`);
  out.push(`         release: ${a['linux.uts.release']} ${a['linux.uts.version']} ${a['linux.uts.machine']}`);
  out.push(`    current task: ${hex(a['crash.current_task'])}`);
  out.push(`       call site: ${facts.callSite}`);
  out.push('', 'registers of the dumping CPU:');
  const regs = a['crash.regs'] as unknown as Record<string, bigint>;
  for (let i = 0; i < REG_ORDER.length; i += 3) {
    out.push('  ' + REG_ORDER.slice(i, i + 3).map((r) => `${r.toUpperCase().padStart(7)}: ${regs[r].toString(16).padStart(16, '0')}`).join('  '));
  }
  out.push('', 'tasks:');
  if (facts.tasks) {
    out.push('     PID  ST  TASK                COMM');
    for (const t of facts.tasks) out.push(`  ${String(t.pid).padStart(6)}  ${taskStateName(t.state)}  ${hex(t.address).padEnd(18)}  ${t.mm === 0n ? `[${t.comm}]` : t.comm}`);
  } else out.push(`  (task list unreadable: ${facts.tasksError})`);
  out.push('', 'memory by page type (from mem_map in the dump):');
  if (facts.pageTypes) {
    const total = Object.values(facts.pageTypes).reduce((x, y) => x + y, 0);
    for (const t of PAGE_TYPES) out.push(`  ${t.padEnd(9)} ${String(facts.pageTypes[t]).padStart(10)}  ${((facts.pageTypes[t] * 100) / Math.max(total, 1)).toFixed(1).padStart(5)}%`);
  } else out.push(`  (mem_map unreadable: ${facts.pageTypesError})`);
  const raw = fig.pages * PAGE_SIZE;
  out.push('', 'dump:');
  out.push(`  level 0x${a['dump.level'].toString(16)}, compression ${a['dump.compression']}, flags 0x${a['dump.flags'].toString(16)}`);
  out.push(`  ${fig.pages} pages (${fig.compressed} compressed, ${fig.pages - fig.compressed} raw), ${raw} bytes of memory in ${fig.storedBytes} bytes: ratio ${(raw / Math.max(fig.storedBytes, 1)).toFixed(2)}`);
  if (fig.state === 'damaged') out.push(`  DAMAGED: ${fig.damagedPages ?? 0} pages damaged${fig.missingPages > 0 ? `, ${fig.missingPages} pages missing` : ''}`);
  else out.push(a['dump.truncated'] || fig.missingPages > 0 ? `  TRUNCATED: ${fig.missingPages} pages missing` : '  complete');
  if (fig.checksum) out.push(`  checksums: ${fig.checksum === 'unverified' ? 'none in the dump (unverified)' : fig.checksum}`);
  out.push('', `last ${lastLines} log lines:`);
  if (facts.log) out.push(...formatDmesg(facts.log.slice(-lastLines)).trimEnd().split('\n').map((l) => `  ${l}`));
  else out.push(`  (log unreadable: ${facts.logError})`);
  return out.join('\n') + '\n';
}

/**
 * `lkcd analyze N --json`: the same report as data, under lkcd show --json's field names
 * (n, panic_string, time_sec, host, release, pages, pages_compressed, stored_bytes, state, checksum);
 * addresses and registers as 0x strings, counts as numbers.
 */
export function analysisJson(n: number, dump: ProbedDump, facts: DumpFacts, fig: AnalysisFigures, lastLines = 20): Record<string, unknown> {
  const a = dump.attrs;
  const regs = a['crash.regs'] as unknown as Record<string, bigint>;
  return {
    n,
    panic_string: a['crash.panic_string'] || fig.panic || '',
    time_sec: Number(a['crash.time']),
    host: a['linux.uts.nodename'],
    release: a['linux.uts.release'],
    version: a['linux.uts.version'],
    machine: a['linux.uts.machine'],
    current_task: hex(a['crash.current_task']),
    call_site: facts.callSite,
    regs: Object.fromEntries(REG_ORDER.map((r) => [r, hex(regs[r])])),
    tasks: facts.tasks ? facts.tasks.map((t) => ({ pid: t.pid, state: taskStateName(t.state), address: hex(t.address), comm: t.comm, kernel_thread: t.mm === 0n })) : null,
    tasks_error: facts.tasks ? null : facts.tasksError ?? null,
    page_types: facts.pageTypes,
    page_types_error: facts.pageTypes ? null : facts.pageTypesError ?? null,
    level: Number(a['dump.level']),
    compression: a['dump.compression'],
    flags: hex(a['dump.flags']),
    pages: fig.pages,
    pages_compressed: fig.compressed,
    raw_bytes: fig.pages * PAGE_SIZE,
    stored_bytes: fig.storedBytes,
    missing_pages: fig.missingPages,
    damaged_pages: fig.damagedPages ?? 0,
    state: fig.state ?? (a['dump.truncated'] || fig.missingPages > 0 ? 'truncated' : 'complete'),
    checksum: fig.checksum ?? null,
    log: facts.log ? facts.log.slice(-lastLines).map((l) => ({ seq: Number(l.seq), ts_nsec: Number(l.ts_nsec), level: l.level, text: l.text })) : null,
    log_error: facts.log ? null : facts.logError ?? null,
  };
}
