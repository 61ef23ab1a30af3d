import { hex } from '../../codec/index.js';
import { bootLayout, type PhysRange } from '../boot_layout.js';
import { LOGLEVEL_ERR, LOGLEVEL_INFO, LOGLEVEL_WARNING, LOW_RESERVED_END } from '../constants.js';
import type { Kernel } from '../kernel.js';
import type { MemMap } from '../mm/mem_map.js';
import { logSymbolsOf, printk, readLogRecords } from '../printk.js';
import { consoleLoglevel, memmapText, parseKernelParams, parseMemmap, type KernelParams } from './cmdline.js';
import { consoleLine, readPstoreState, writePstoreState } from './console.js';
import {
  CONSOLE_LOGLEVEL_DEFAULT, CONSOLE_LOGLEVEL_QUIET, PSTORE_TYPE_CONSOLE, PSTORE_TYPE_DEVCOREDUMP, PSTORE_TYPE_DMESG,
} from './constants.js';
import { devcdInit } from './devcoredump.js';
import { pstoreRegister, type PstoreCompress } from './platform.js';
import { pstoreMount } from './pstorefs.js';
import { PersistentRamZone } from './ram_core.js';
import { ramoopsLayout, ramoopsParams, ramoopsRegion } from './ramoops_layout.js';
import { hasSymbol, RAMOOPS_CXT_SYMBOL, ramoopsReadRecords, ramoopsUsingLine, ramoopsWriteConsole, writeRamoops } from './ramoops.js';
import { PSTORE_STATE_CONSOLE } from './structs/pstore_state.js';

/** The command line the kernel booted with. */
export function bootCommandLine(kernel: Kernel): string {
  const raw = kernel.readBytes('boot_command_line');
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? raw.length : end).toString('latin1');
}

/**
 * The memmap=nn$ss ranges to keep out of the allocator (parse_memmap_one,
 * at boot before mem_map is set up), with the lines the kernel prints: the
 * user-defined map, or why a memmap= word was ignored.
 */
export function memmapReservations(cmdline: string, ramBytes: bigint): { ranges: PhysRange[]; lines: string[] } {
  const ranges: PhysRange[] = [];
  const lines: string[] = [];
  for (const e of parseMemmap(parseKernelParams(cmdline))) {
    if (!e.ok) { lines.push(`memmap=${e.text}: ${e.why}; ignored`); continue; }
    if (e.range.end > ramBytes) { lines.push(`${memmapText(e.range)} reaches past the end of RAM (${hex(ramBytes)}); ignored`); continue; }
    ranges.push(e.range);
    lines.push(`user: [mem ${hex16(e.range.start)}-${hex16(e.range.end - 1n)}] reserved`);
  }
  return { ranges, lines };
}

function hex16(v: bigint): string {
  return `0x${v.toString(16).padStart(16, '0')}`;
}

function boolParam(v: string | undefined): boolean {
  return v !== undefined && /^(1|y|Y|$)/.test(v);
}

function compressParam(params: KernelParams): PstoreCompress {
  const v = params.get('pstore.compress');
  return v === undefined || v === 'deflate' ? 'deflate' : 'none';
}

/**
 * Persistent RAM at boot, in initcall order: ramoops (postcore_initcall)
 * reads the ramoops.* parameters, checks that memmap= reserved its region
 * outside this kernel's memory, sets up every zone (which saves what the
 * last boot left and zaps what is invalid), registers with pstore (the
 * kmsg dumper, compression, the console, which first replays the log),
 * then pstorefs is mounted with the records read; last, ours, the
 * device-coredump frontend and the drivers that register with it.
 */
export function pstoreInit(kernel: Kernel, memmap: MemMap, reserved: readonly PhysRange[]): void {
  if (!hasSymbol(kernel, RAMOOPS_CXT_SYMBOL) || !readPstoreState(kernel)) return;
  const params = parseKernelParams(bootCommandLine(kernel));
  const { pdata, errors } = ramoopsParams(params);
  for (const e of errors) printk(kernel, e, LOGLEVEL_WARNING);
  if (!pdata) return;
  printk(kernel, 'ramoops: using module parameters', LOGLEVEL_INFO);
  const layout = ramoopsLayout(pdata);
  if (!layout.ok) {
    for (const e of layout.errors) printk(kernel, e, LOGLEVEL_ERR);
    return;
  }
  const region = ramoopsRegion(layout.cxt);
  const fail = (why: string): void => { printk(kernel, `ramoops: ${why}; ramoops disabled`, LOGLEVEL_ERR); };
  if (region.end > kernel.ram.size) return fail(`region ${hex(region.start)}-${hex(region.end - 1n)} reaches past the end of RAM`);
  // Without memmap= the allocator would hand the region out: the records would be overwritten.
  if (!covered(region, reserved)) {
    return fail(`region ${hex(region.start)}-${hex(region.end - 1n)} is not reserved (add ${memmapText(region)} to the command line)`);
  }
  const b = bootLayout(kernel.ram.size, { release: kernel.release, physicalStart: kernel.header.physical_start });
  const own: PhysRange[] = [{ start: 0n, end: LOW_RESERVED_END }, { start: b.imageStart, end: b.earlyEnd }];
  const clash = own.find((r) => region.start < r.end && region.end > r.start);
  if (clash) return fail(`region ${hex(region.start)}-${hex(region.end - 1n)} overlaps this kernel's own memory ${hex(clash.start)}-${hex(clash.end - 1n)}`);

  const zones: PersistentRamZone[] = [];
  for (const z of layout.zones) {
    const prz = PersistentRamZone.attach(kernel.ram, z, pdata.ecc_size);
    if (!(prz instanceof PersistentRamZone)) {
      printk(kernel, prz.error, LOGLEVEL_ERR);
      printk(kernel, `ramoops: ECC failed ${z.label}`, LOGLEVEL_WARNING);
      return;
    }
    zones.push(prz);
  }
  const saved = zones.map((zone) => {
    const r = zone.postInit();
    for (const l of zone.log) printk(kernel, l, LOGLEVEL_INFO);
    return { zone, old: r.state === 'saved' ? r.old : new Uint8Array(0) };
  });
  const cxt = { ...layout.cxt, dump_write_cnt: 0, probed: 1 };
  writeRamoops(kernel, cxt);
  const records = ramoopsReadRecords(cxt, saved);

  const dmesgZone = zones.find((z) => z.zone.type === PSTORE_TYPE_DMESG);
  const consoleZone = zones.find((z) => z.zone.type === PSTORE_TYPE_CONSOLE);
  const loglevel = consoleLoglevel(params, CONSOLE_LOGLEVEL_DEFAULT, CONSOLE_LOGLEVEL_QUIET);
  const compress = compressParam(params);
  const wanted = params.get('pstore.compress');
  if (wanted !== undefined && wanted !== 'deflate' && wanted !== 'none') {
    printk(kernel, `pstore: compression '${wanted}' is not built into this kernel; records are stored uncompressed`, LOGLEVEL_WARNING);
  }
  pstoreRegister(kernel, {
    compress, bufsize: dmesgZone?.bufferSize ?? 0, dmesg: !!dmesgZone, consoleLoglevel: loglevel,
    alwaysKmsgDump: boolParam(params.get('printk.always_kmsg_dump')),
    // register_console(CON_PRINTBUFFER): the console first receives every line logged so far.
    registerConsole: consoleZone ? () => {
      for (const r of readLogRecords(kernel.mem, logSymbolsOf(kernel))) {
        if (r.level < loglevel) ramoopsWriteConsole(kernel, cxt, Buffer.from(consoleLine(r.ts_nsec, r.text), 'latin1'));
      }
      const s = readPstoreState(kernel)!;
      writePstoreState(kernel, { ...s, flags: s.flags | PSTORE_STATE_CONSOLE });
    } : undefined,
  });
  printk(kernel, ramoopsUsingLine(cxt), LOGLEVEL_INFO);
  pstoreMount(kernel, records);
  // The drivers register their state with the frontend when they probe (src/kernel/drivers).
  if (zones.some((z) => z.zone.type === PSTORE_TYPE_DEVCOREDUMP)) devcdInit(kernel, memmap);
}

/** Whether [start, end) lies inside the union of `ranges`. */
function covered(r: PhysRange, ranges: readonly PhysRange[]): boolean {
  const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  let at = r.start;
  for (const x of sorted) {
    if (x.start > at) break;
    if (x.end > at) at = x.end;
    if (at >= r.end) return true;
  }
  return at >= r.end;
}
