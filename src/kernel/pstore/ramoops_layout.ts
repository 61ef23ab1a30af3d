import { hex } from '../../codec/index.js';
import {
  DEVCD_ZONE_SIG, ECC_BLOCK_SIZE, KMSG_DUMP_OOPS, KMSG_DUMP_PANIC, LINUX_VERSION_CODE, MIN_MEM_SIZE, PRZ_FLAG_NO_LOCK,
  PRZ_FLAG_ZAP_OLD, PSTORE_TYPE_CONSOLE, PSTORE_TYPE_DEVCOREDUMP, PSTORE_TYPE_DMESG, PSTORE_TYPE_FTRACE,
  PSTORE_TYPE_PMSG, RAMOOPS_FLAG_FTRACE_PER_CPU, RAMOOPS_MAX_DUMP_CNT,
} from './constants.js';
import { kstrtoint, kstrtoull, type KernelParams } from './cmdline.js';
import { persistent_ram_buffer } from './structs/persistent_ram_buffer.js';
import type { RamoopsContext } from './structs/ramoops_context.js';

/** CPUs of the simulated machine (nr_cpu_ids): one, so one per-CPU ftrace zone. */
export const NR_CPU_IDS = 1;

/** struct ramoops_platform_data as ramoops_register_dummy() fills it from the module parameters. */
export interface RamoopsPlatformData {
  mem_address: bigint;
  mem_size: bigint;
  mem_type: number;
  record_size: bigint;
  console_size: bigint;
  ftrace_size: bigint;
  pmsg_size: bigint;
  max_reason: number;
  flags: number;
  ecc_size: number;
  /** The ramoops.ecc value as given (shown back under /sys/module/ramoops/parameters). */
  ecc_param: number;
  /** Ours: ramoops.devcoredump_size, the device-coredump zone after the region. */
  devcd_size: bigint;
}

/**
 * The ramoops.* parameters of a command line, defaulted as the module
 * defaults them (record, console, ftrace and pmsg 4096; max_reason from
 * dump_oops, else KMSG_DUMP_OOPS). Null when ramoops.mem_size is absent or
 * 0: ramoops_register_dummy() then does nothing. A value that does not
 * parse keeps its default and yields the line the kernel prints for it.
 */
export function ramoopsParams(params: KernelParams): { pdata: RamoopsPlatformData | null; errors: string[] } {
  const errors: string[] = [];
  const ulong = (name: string, def: bigint): bigint => {
    const raw = params.get(`ramoops.${name}`);
    if (raw === undefined) return def;
    const v = kstrtoull(raw);
    if (v === null) { errors.push(`Booting kernel: \`${raw}' invalid for parameter \`ramoops.${name}'`); return def; }
    return v;
  };
  const int = (name: string, def: number): number => {
    const raw = params.get(`ramoops.${name}`);
    if (raw === undefined) return def;
    const v = kstrtoint(raw);
    if (v === null) { errors.push(`Booting kernel: \`${raw}' invalid for parameter \`ramoops.${name}'`); return def; }
    return v;
  };
  const memSize = ulong('mem_size', 0n);
  const memAddress = ulong('mem_address', 0n);
  const recordSize = ulong('record_size', BigInt(MIN_MEM_SIZE));
  const consoleSize = ulong('console_size', BigInt(MIN_MEM_SIZE));
  const ftraceSize = ulong('ftrace_size', BigInt(MIN_MEM_SIZE));
  const pmsgSize = ulong('pmsg_size', BigInt(MIN_MEM_SIZE));
  const memType = int('mem_type', 0);
  const maxReasonParam = int('max_reason', -1);
  const dumpOops = int('dump_oops', -1);
  const ecc = int('ecc', 0);
  const devcdSize = ulong('devcoredump_size', 0n);
  if (memSize === 0n) return { pdata: null, errors };
  // max_reason wins over the deprecated dump_oops; neither: Oops and Panic.
  const maxReason = maxReasonParam >= 0 ? maxReasonParam : dumpOops !== -1 ? (dumpOops ? KMSG_DUMP_OOPS : KMSG_DUMP_PANIC) : KMSG_DUMP_OOPS;
  return {
    errors,
    pdata: {
      mem_address: memAddress, mem_size: memSize, mem_type: memType, record_size: recordSize, console_size: consoleSize,
      ftrace_size: ftraceSize, pmsg_size: pmsgSize, max_reason: maxReason, flags: RAMOOPS_FLAG_FTRACE_PER_CPU,
      // ramoops.ecc=1 means 16 bytes of ECC, for backwards compatibility.
      ecc_size: ecc === 1 ? 16 : ecc, ecc_param: ecc, devcd_size: devcdSize,
    },
  };
}

function roundDownPow2(v: bigint): bigint {
  if (v === 0n) return 0n;
  let p = 1n;
  while (p * 2n <= v) p *= 2n;
  return p;
}

/** One persistent_ram_zone: where it is, its signature, flags and type, and its label. */
export interface RamoopsZone {
  type: number;
  /** Record id of the zone: its index among the zones of its type. */
  index: number;
  paddr: bigint;
  size: number;
  /** The value the header's sig holds XOR PERSISTENT_RAM_SIG. */
  sig: number;
  flags: number;
  label: string;
}

/** Where ramoops_probe() put the zones, or the lines it printed when it refused. */
export type RamoopsLayout =
  | { ok: true; cxt: Omit<RamoopsContext, 'dump_write_cnt' | 'probed'>; zones: RamoopsZone[] }
  | { ok: false; errors: string[] };

/**
 * ramoops_probe(): rounds record, console, ftrace and pmsg sizes down to
 * powers of two, then lays the zones out from mem_address in order: the
 * dmesg zones ((mem_size - console - ftrace - pmsg) / record_size of them,
 * each an equal share of that space), the console zone, the ftrace zone(s)
 * (one per CPU with the module parameters), the pmsg zone. Ours: the
 * devcoredump zone follows the region, so a kernel that knows nothing of
 * it lays out every upstream zone at the same place.
 */
export function ramoopsLayout(p: RamoopsPlatformData): RamoopsLayout {
  const dev = 'ramoops ramoops';
  if (p.mem_size === 0n || (p.record_size === 0n && p.console_size === 0n && p.ftrace_size === 0n && p.pmsg_size === 0n)) {
    return { ok: false, errors: ['ramoops: The memory size and the record/console size must be non-zero'] };
  }
  const record = roundDownPow2(p.record_size);
  const consoleSz = roundDownPow2(p.console_size);
  const ftrace = roundDownPow2(p.ftrace_size);
  const pmsg = roundDownPow2(p.pmsg_size);
  const size = p.mem_size;
  const zones: RamoopsZone[] = [];
  let paddr = p.mem_address;
  const fits = (name: string, sz: bigint): string | null => (paddr + sz - p.mem_address > size
    ? `${dev}: no room for ${name} mem region (${hex(sz)}@${hex(paddr)}) in (${hex(size)}@${hex(p.mem_address)})` : null);
  const minZone = BigInt(persistent_ram_buffer.size) + 1n;

  // ramoops_init_przs("dmesg", ...): size_t arithmetic, so a negative remainder is "no room".
  const dumpMemSz = size - consoleSz - ftrace - pmsg;
  let maxDumpCnt = 0;
  if (record !== 0n) {
    if (dumpMemSz <= 0n) {
      return { ok: false, errors: [`${dev}: no room for dmesg mem region (${hex(BigInt.asUintN(64, dumpMemSz))}@${hex(paddr)}) in (${hex(size)}@${hex(p.mem_address)})`] };
    }
    const cnt = dumpMemSz / record;
    if (cnt === 0n) return { ok: false, errors: [`${dev}: dmesg record count == 0 (${dumpMemSz} / ${record})`] };
    if (cnt > BigInt(RAMOOPS_MAX_DUMP_CNT)) return { ok: false, errors: [`${dev}: ${cnt} dmesg zones exceed the ${RAMOOPS_MAX_DUMP_CNT} this kernel supports`] };
    const zoneSz = dumpMemSz / cnt;
    if (zoneSz < minZone) return { ok: false, errors: [`${dev}: dmesg zone size ${zoneSz} cannot hold a persistent_ram_buffer`] };
    const room = fits('dmesg', dumpMemSz);
    if (room) return { ok: false, errors: [room] };
    maxDumpCnt = Number(cnt);
    for (let i = 0; i < maxDumpCnt; i++) {
      zones.push({ type: PSTORE_TYPE_DMESG, index: i, paddr, size: Number(zoneSz), sig: 0, flags: 0, label: maxDumpCnt === 1 ? 'ramoops:dmesg' : `ramoops:dmesg(${i}/${maxDumpCnt - 1})` });
      paddr += zoneSz;
    }
  }
  // ramoops_init_prz(): a single zone, its old contents zapped once saved.
  const single = (name: string, type: number, sz: bigint): string | null => {
    if (sz === 0n) return null;
    const room = fits(name, sz);
    if (room) return room;
    if (sz < minZone) return `${dev}: ${name} zone size ${sz} cannot hold a persistent_ram_buffer`;
    zones.push({ type, index: 0, paddr, size: Number(sz), sig: 0, flags: PRZ_FLAG_ZAP_OLD, label: `ramoops:${name}` });
    paddr += sz;
    return null;
  };
  const e1 = single('console', PSTORE_TYPE_CONSOLE, consoleSz);
  if (e1) return { ok: false, errors: [e1] };
  // ramoops_init_przs("ftrace", ..., -1, &max_ftrace_cnt, LINUX_VERSION_CODE, ...): split per CPU.
  const perCpu = (p.flags & RAMOOPS_FLAG_FTRACE_PER_CPU) !== 0;
  let maxFtraceCnt = perCpu ? NR_CPU_IDS : 1;
  if (ftrace !== 0n) {
    const room = fits('ftrace', ftrace);
    if (room) return { ok: false, errors: [room] };
    const zoneSz = ftrace / BigInt(maxFtraceCnt);
    if (zoneSz < minZone) return { ok: false, errors: [`${dev}: ftrace zone size ${zoneSz} cannot hold a persistent_ram_buffer`] };
    for (let i = 0; i < maxFtraceCnt; i++) {
      zones.push({ type: PSTORE_TYPE_FTRACE, index: i, paddr, size: Number(zoneSz), sig: LINUX_VERSION_CODE, flags: perCpu ? PRZ_FLAG_NO_LOCK : 0, label: maxFtraceCnt === 1 ? 'ramoops:ftrace' : `ramoops:ftrace(${i}/${maxFtraceCnt - 1})` });
      paddr += zoneSz;
    }
  } else {
    maxFtraceCnt = 0;
  }
  const e2 = single('pmsg', PSTORE_TYPE_PMSG, pmsg);
  if (e2) return { ok: false, errors: [e2] };
  if (p.devcd_size !== 0n) {
    if (p.devcd_size < minZone) return { ok: false, errors: [`${dev}: devcoredump zone size ${p.devcd_size} cannot hold a persistent_ram_buffer`] };
    zones.push({ type: PSTORE_TYPE_DEVCOREDUMP, index: 0, paddr: p.mem_address + size, size: Number(p.devcd_size), sig: DEVCD_ZONE_SIG, flags: 0, label: 'ramoops:devcoredump' });
  }
  return {
    ok: true,
    zones,
    cxt: {
      phys_addr: p.mem_address, size, record_size: record, console_size: consoleSz, ftrace_size: ftrace, pmsg_size: pmsg,
      devcd_size: p.devcd_size, flags: p.flags, ecc_size: p.ecc_size, memtype: p.mem_type, max_reason: p.max_reason,
      max_dump_cnt: maxDumpCnt, max_ftrace_cnt: maxFtraceCnt,
    },
  };
}

/** The zones of a running backend, from its context (the same computation ramoops_probe made). */
export function zonesOfContext(cxt: RamoopsContext): RamoopsZone[] {
  const l = ramoopsLayout({
    mem_address: cxt.phys_addr, mem_size: cxt.size, mem_type: cxt.memtype, record_size: cxt.record_size,
    console_size: cxt.console_size, ftrace_size: cxt.ftrace_size, pmsg_size: cxt.pmsg_size, max_reason: cxt.max_reason,
    flags: cxt.flags, ecc_size: cxt.ecc_size, ecc_param: cxt.ecc_size, devcd_size: cxt.devcd_size,
  });
  return l.ok ? l.zones : [];
}

/** The physical range of the whole region: the ramoops zones and, ours, the devcoredump zone after them. */
export function ramoopsRegion(cxt: Pick<RamoopsContext, 'phys_addr' | 'size' | 'devcd_size'>): { start: bigint; end: bigint } {
  return { start: cxt.phys_addr, end: cxt.phys_addr + cxt.size + cxt.devcd_size };
}

/** Data bytes of a zone once its header and (with ECC) its parity are taken out (persistent_ram_init_ecc). */
export function zoneBufferSize(zoneSize: number, eccSize: number): { bufferSize: number; eccBlocks: number } | null {
  const raw = zoneSize - persistent_ram_buffer.size;
  if (eccSize === 0) return { bufferSize: raw, eccBlocks: 0 };
  const eccBlocks = Math.ceil((raw - eccSize) / (ECC_BLOCK_SIZE + eccSize));
  const total = (eccBlocks + 1) * eccSize;
  if (total >= raw) return null;
  return { bufferSize: raw - total, eccBlocks };
}
