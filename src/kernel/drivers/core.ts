/**
 * The PCI driver core of the simulated kernel: at device_initcall time
 * each function on the bus is matched, in bus order, with the driver whose
 * id table names it, and probed. A driver's probe in a crash recovery
 * kernel first adds its device dump (vmcore_add_device_dump), then
 * initialises the device; a dump that fails is logged and the probe goes
 * on, and a device that fails to initialise keeps the dump already taken.
 */
import { PAGE_SIZE_N, type DeviceClock, type PciBus, type PciDevice } from '../../machine/index.js';
import { LOGLEVEL_INFO, LOGLEVEL_WARNING } from '../constants.js';
import { crashRecoveryDesign, type CrashRecoveryDesign } from '../crash_recovery.js';
import type { Kernel } from '../kernel.js';
import type { BuddyAllocator } from '../mm/buddy.js';
import { advanceClock, printk } from '../printk.js';
import { devcdRegister, readDevcdState, type RegisterReader } from '../pstore/devcoredump.js';
import { DEVCD_STATE_ENABLED } from '../pstore/structs/devcd.js';
import { vmcoreAddDeviceDump, type VmcoreddData } from '../vmcore/vmcoredd.js';

/** What a probe may use: the kernel, its allocator, the bus, and whether this boot recovers a crash. */
export interface ProbeContext {
  kernel: Kernel;
  buddy: BuddyAllocator;
  bus: PciBus;
  recovery: CrashRecoveryDesign | null;
  /** The device dump the probe running now added (or failed to), for the probe's report. */
  dumped: { name: string; status: number } | null;
}

export interface PciDriver {
  /** The driver's name (what dev_printk and the dump names start with). */
  readonly name: string;
  readonly ids: ReadonlyArray<{ vendor: number; device: number }>;
  /** Binds the device; returns 0 or the negative errno its probe failed with. */
  probe(ctx: ProbeContext, dev: PciDevice): number;
}

/** What probing did, for the boot's caller and the tests. */
export interface ProbeResult {
  bdf: string;
  driver: string | null;
  /** 0 when the driver bound the device, else the errno its probe returned. */
  status: number;
  /** The device dump added, or the errno it failed with (null: none was attempted). */
  dump: { name: string; status: number } | null;
}

/** The device's clock as the host sees it: the kernel's uptime. */
export function hostClock(kernel: Kernel): DeviceClock {
  return { uptimeNs: kernel.readU64('sim_clock_ns') };
}

/** dev_printk: "<driver> <bdf>: <text>". */
export function devLog(ctx: ProbeContext, driver: string, dev: PciDevice, text: string, level = LOGLEVEL_INFO): void {
  printk(ctx.kernel, `${driver} ${dev.bdf}: ${text}`, level);
}

/** Time passing while a driver polls its device (udelay/msleep loops). */
export function waitNs(ctx: ProbeContext, ns: bigint): void {
  advanceClock(ctx.kernel, ns);
}

/**
 * vmcore_add_device_dump() for a driver, with cxgb4's handling of a
 * failure: warned about, then the probe goes on. Returns what happened.
 */
export function addDeviceDump(ctx: ProbeContext, driver: string, dev: PciDevice, data: VmcoreddData): { name: string; status: number } {
  const status = vmcoreAddDeviceDump(ctx.kernel, ctx.buddy, data);
  if (status !== 0) devLog(ctx, driver, dev, `Fail collecting vmcore device dump, err: ${status}. Continuing`, LOGLEVEL_WARNING);
  ctx.dumped = { name: data.dumpName, status };
  return ctx.dumped;
}

/** Whether the pstore device-coredump frontend is on (a driver then registers its state for panics). */
export function devcdEnabled(kernel: Kernel): boolean {
  const s = readDevcdState(kernel);
  return !!s && (s.flags & DEVCD_STATE_ENABLED) !== 0;
}

/** Bytes of a driver's log buffer registered with the device-coredump frontend. */
export const DEVCD_LOG_BYTES = 1024;

/**
 * Registers a driver's state with the device-coredump frontend: a log
 * buffer in a page of host memory holding the driver's log (`text`), and the first `regCount`
 * registers of its BAR0, read at the panic. Nothing when the frontend is off.
 */
export function registerDevcd(ctx: ProbeContext, driver: string, dev: PciDevice, text: string, regCount: number): void {
  if (!devcdEnabled(ctx.kernel)) return;
  const pfn = ctx.buddy.alloc(0);
  if (pfn === null) return;
  const page = Buffer.alloc(Number(PAGE_SIZE_N));
  page.write(text.slice(0, DEVCD_LOG_BYTES), 'latin1');
  ctx.kernel.ram.write(pfn * PAGE_SIZE_N, page);
  devcdRegister(ctx.kernel, {
    dumpName: `${driver}_${dev.bdf}`,
    regions: [
      { name: 'drv_log', type: 'buffer', addr: pfn * PAGE_SIZE_N, size: DEVCD_LOG_BYTES },
      { name: 'regs', type: 'registers', addr: dev.image.region('bar0').bus_addr, size: regCount * 4 },
    ],
  });
}

/** Probes every function on the bus, in bus order, with the first of `drivers` (link order) whose ids match. */
export function probePciDrivers(kernel: Kernel, buddy: BuddyAllocator, bus: PciBus, drivers: readonly PciDriver[], opts: { deviceDumps?: boolean } = {}): ProbeResult[] {
  const ctx: ProbeContext = { kernel, buddy, bus, recovery: opts.deviceDumps === false ? null : crashRecoveryDesign(kernel), dumped: null };
  const out: ProbeResult[] = [];
  for (const dev of bus.devices()) {
    const id = dev.model.identity;
    const drv = drivers.find((d) => d.ids.some((x) => x.vendor === id.vendor && x.device === id.device)) ?? null;
    if (!drv) {
      out.push({ bdf: dev.bdf, driver: null, status: 0, dump: null });
      continue;
    }
    ctx.dumped = null;
    const status = drv.probe(ctx, dev);
    out.push({ bdf: dev.bdf, driver: drv.name, status, dump: ctx.dumped });
  }
  bus.flush();
  return out;
}

/**
 * The device-coredump frontend's register reader over the machine's bus:
 * the function whose BAR0 holds `addr` answers with its registers; an
 * address no function decodes reads all ones, as a master abort does.
 */
export function pciRegisterReader(bus: PciBus): RegisterReader {
  return (_kernel, _dumpName, addr, count) => {
    for (const dev of bus.devices()) {
      const bar = dev.image.region('bar0');
      if (addr >= bar.bus_addr && addr + BigInt(count * 4) <= bar.bus_addr + bar.size) {
        const base = Number(addr - bar.bus_addr);
        return Uint32Array.from({ length: count }, (_, i) => dev.readReg32(base + i * 4));
      }
    }
    return new Uint32Array(count).fill(0xffffffff);
  };
}
