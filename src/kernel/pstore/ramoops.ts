import { hex, InternalError } from '../../codec/index.js';
import type { Kernel } from '../kernel.js';
import {
  PSTORE_TYPE_CONSOLE, PSTORE_TYPE_DEVCOREDUMP, PSTORE_TYPE_DMESG, PSTORE_TYPE_FTRACE, PSTORE_TYPE_PMSG,
  RAMOOPS_KERNMSG_HDR,
} from './constants.js';
import { PersistentRamZone } from './ram_core.js';
import { zonesOfContext, type RamoopsZone } from './ramoops_layout.js';
import { ramoops_context, type RamoopsContext } from './structs/ramoops_context.js';

/** The kernel variable holding the running backend (fs/pstore/ram.c's oops_cxt). */
export const RAMOOPS_CXT_SYMBOL = 'oops_cxt';

/** Whether this kernel build has a symbol (builds from before pstore lack them). */
export function hasSymbol(kernel: Kernel, name: string): boolean {
  return kernel.symbols.some((s) => s.name === name);
}

/** The registered ramoops backend of the running kernel, or null when there is none. */
export function readRamoops(kernel: Kernel): RamoopsContext | null {
  if (!hasSymbol(kernel, RAMOOPS_CXT_SYMBOL)) return null;
  const cxt = kernel.readStruct(ramoops_context, RAMOOPS_CXT_SYMBOL);
  return cxt.probed ? cxt : null;
}

export function writeRamoops(kernel: Kernel, cxt: RamoopsContext): void {
  kernel.writeStruct(ramoops_context, RAMOOPS_CXT_SYMBOL, cxt);
}

/** A zone of the running backend, attached (its ECC set up; the backend probed it, so it fits). */
export function attachZone(kernel: Kernel, cxt: RamoopsContext, zone: RamoopsZone): PersistentRamZone {
  const z = PersistentRamZone.attach(kernel.ram, zone, cxt.ecc_size);
  // ramoops_probe() attached every zone with these sizes: failing now is a bug, not bad input.
  if (!(z instanceof PersistentRamZone)) throw new InternalError(`ramoops zone ${zone.label}: ${z.error}`);
  return z;
}

export function findZone(cxt: RamoopsContext, type: number, index: number): RamoopsZone | null {
  return zonesOfContext(cxt).find((z) => z.type === type && z.index === index) ?? null;
}

/** Every frame the region covers: never a destination of the dump driver, never free. */
export function ramoopsFrames(kernel: Kernel): bigint[] {
  const cxt = readRamoops(kernel);
  if (!cxt) return [];
  const first = cxt.phys_addr >> 12n;
  const end = (cxt.phys_addr + cxt.size + cxt.devcd_size + 4095n) >> 12n;
  const frames: bigint[] = [];
  for (let pfn = first; pfn < end; pfn++) frames.push(pfn);
  return frames;
}

/** A record as ramoops_pstore_read() hands it to the pstore core. */
export interface RamoopsRecord {
  type: number;
  id: number;
  timeSec: bigint;
  timeNsec: number;
  compressed: boolean;
  /** The record, after the ramoops header. */
  data: Uint8Array;
  /** persistent_ram_ecc_string(): appended to the file. */
  eccNotice: string;
}

/**
 * ramoops_read_kmsg_hdr(): the "====sec.usec-C|D\n" header (or the older
 * "====sec.usec\n"), as sscanf reads it: the whitespace after it is part of
 * the header. Null when the data has no valid header.
 */
export function readKmsgHeader(data: Uint8Array): { length: number; sec: bigint; nsec: number; compressed: boolean } | null {
  const text = Buffer.from(data.subarray(0, 64)).toString('latin1');
  const ws = '[ \\t\\n\\v\\f\\r]*';
  const num = `${ws}([+-]?\\d+)`;
  let m = new RegExp(`^${RAMOOPS_KERNMSG_HDR}${num}\\.${num}-([\\s\\S])${ws}`).exec(text);
  if (m) return { length: m[0].length, sec: BigInt(m[1]), nsec: Number((BigInt(m[2]) * 1000n) % 1_000_000_000n), compressed: m[3] === 'C' };
  m = new RegExp(`^${RAMOOPS_KERNMSG_HDR}${num}\\.${num}${ws}`).exec(text);
  if (m) return { length: m[0].length, sec: BigInt(m[1]), nsec: Number((BigInt(m[2]) * 1000n) % 1_000_000_000n), compressed: false };
  return null;
}

/** ramoops_write_kmsg_hdr(): the header of a dmesg (and, ours, a devcoredump) record. */
export function kmsgHeader(sec: bigint, nsec: number, compressed: boolean): Buffer {
  return Buffer.from(`${RAMOOPS_KERNMSG_HDR}${sec}.${String(Math.floor(nsec / 1000)).padStart(6, '0')}-${compressed ? 'C' : 'D'}\n`, 'latin1');
}

/**
 * ramoops_pstore_read(), over the zones' saved contents at boot: every dmesg
 * zone that holds a record with a valid header (one without is zapped), the
 * console, pmsg and ftrace zones, then ours, the devcoredump zone. Each
 * record carries its zone's ECC notice.
 */
export function ramoopsReadRecords(cxt: RamoopsContext, saved: ReadonlyArray<{ zone: PersistentRamZone; old: Uint8Array }>): RamoopsRecord[] {
  const out: RamoopsRecord[] = [];
  const of = (type: number): Array<{ zone: PersistentRamZone; old: Uint8Array }> =>
    saved.filter((s) => s.zone.zone.type === type && s.old.length > 0).sort((a, b) => a.zone.zone.index - b.zone.zone.index);
  const withHeader = (type: number): void => {
    for (const { zone, old } of of(type)) {
      const hdr = readKmsgHeader(old);
      if (!hdr) {
        zone.zap();
        continue;
      }
      out.push({ type, id: zone.zone.index, timeSec: hdr.sec, timeNsec: hdr.nsec, compressed: hdr.compressed, data: old.subarray(hdr.length), eccNotice: zone.eccString() });
    }
  };
  withHeader(PSTORE_TYPE_DMESG);
  for (const type of [PSTORE_TYPE_CONSOLE, PSTORE_TYPE_PMSG]) {
    for (const { zone, old } of of(type)) out.push({ type, id: 0, timeSec: 0n, timeNsec: 0, compressed: false, data: old, eccNotice: zone.eccString() });
  }
  // With one ftrace zone per CPU the records are combined into one, id 0.
  const ftrace = of(PSTORE_TYPE_FTRACE);
  if (ftrace.length) {
    const corrected = ftrace.reduce((a, f) => a + f.zone.correctedBytes, 0);
    const bad = ftrace.reduce((a, f) => a + f.zone.badBlocks, 0);
    const notice = cxt.ecc_size === 0 ? '' : corrected || bad ? `\nECC: ${corrected} Corrected bytes, ${bad} unrecoverable blocks\n` : '\nECC: No errors detected\n';
    out.push({ type: PSTORE_TYPE_FTRACE, id: 0, timeSec: 0n, timeNsec: 0, compressed: false, data: Buffer.concat(ftrace.map((f) => f.old)), eccNotice: notice });
  }
  withHeader(PSTORE_TYPE_DEVCOREDUMP);
  return out;
}

/**
 * ramoops_pstore_write() for a dmesg record: only part 1 of a dump is
 * kept; the next zone in turn is zapped and gets the header and as much of
 * the record as fits; the write counter moves on, round-robin.
 */
export function ramoopsWriteDmesg(kernel: Kernel, rec: { part: number; timeSec: bigint; timeNsec: number; compressed: boolean; data: Uint8Array }): { zone: number } | { error: string } {
  const cxt = readRamoops(kernel);
  if (!cxt || cxt.max_dump_cnt === 0) return { error: 'ENOSPC' };
  if (rec.part !== 1) return { error: 'ENOSPC' };
  const index = cxt.dump_write_cnt % cxt.max_dump_cnt;
  const zone = findZone(cxt, PSTORE_TYPE_DMESG, index);
  if (!zone) return { error: 'ENOSPC' };
  const prz = attachZone(kernel, cxt, zone);
  prz.zap();
  const hdr = kmsgHeader(rec.timeSec, rec.timeNsec, rec.compressed);
  prz.write(hdr);
  // A record longer than the zone is cut, compressed or not (the reader then cannot inflate it).
  const room = prz.bufferSize - hdr.length;
  prz.write(rec.data.length > room ? rec.data.subarray(0, room) : rec.data);
  writeRamoops(kernel, { ...cxt, dump_write_cnt: (index + 1) % cxt.max_dump_cnt });
  return { zone: index };
}

/** ramoops_pstore_write() for console output: appended to the console ring. */
export function ramoopsWriteConsole(kernel: Kernel, cxt: RamoopsContext, bytes: Uint8Array): void {
  const zone = findZone(cxt, PSTORE_TYPE_CONSOLE, 0);
  if (zone) attachZone(kernel, cxt, zone).write(bytes);
}

/** Ours: the devcoredump record, one per panic: the zone is zapped, then gets the header and the ELF file. */
export function ramoopsWriteDevcd(kernel: Kernel, rec: { timeSec: bigint; timeNsec: number; data: Uint8Array }): boolean {
  const cxt = readRamoops(kernel);
  const zone = cxt && findZone(cxt, PSTORE_TYPE_DEVCOREDUMP, 0);
  if (!cxt || !zone) return false;
  const prz = attachZone(kernel, cxt, zone);
  prz.zap();
  prz.write(kmsgHeader(rec.timeSec, rec.timeNsec, false));
  prz.write(rec.data);
  return true;
}

/** Bytes a devcoredump record may hold once its header is written. */
export function devcdRoom(kernel: Kernel, headerBytes: number): number {
  const cxt = readRamoops(kernel);
  const zone = cxt && findZone(cxt, PSTORE_TYPE_DEVCOREDUMP, 0);
  if (!cxt || !zone) return 0;
  return Math.max(0, attachZone(kernel, cxt, zone).bufferSize - headerBytes);
}

/** ramoops_pstore_erase(): the record's zone is zapped. */
export function ramoopsErase(kernel: Kernel, type: number, id: number): void {
  const cxt = readRamoops(kernel);
  if (!cxt) return;
  // Erasing the combined per-CPU ftrace record empties its zone id.
  const zone = findZone(cxt, type, id);
  if (zone) attachZone(kernel, cxt, zone).zap();
}

/** "using 0x%lx@0x%llx, ecc: %d", the line ramoops_probe() ends with. */
export function ramoopsUsingLine(cxt: Pick<RamoopsContext, 'size' | 'phys_addr' | 'ecc_size'>): string {
  return `ramoops: using ${hex(cxt.size)}@${hex(cxt.phys_addr)}, ecc: ${cxt.ecc_size}`;
}
