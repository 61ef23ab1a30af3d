import { DumpError, hex, UsageError } from '../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../machine/index.js';
import {
  blankPage, bootRegion, BuddyAllocator, configForRam, Kernel, MemMap, PG_reserved, pageFlag, printk, LOGLEVEL_INFO,
} from '../kernel/index.js';
import { dump_config, type DumpConfig } from '../kernel/structs/dump_config.js';
import { DUMP_BUFFER_SIZE, DUMP_FLAGS_KNOWN, DUMP_MAGIC_LIVE, dumpLevelMask, type DumpCompress } from './lkcd/constants.js';
import { readBlock, writeBlock } from './memdev/block.js';
import {
  DUMP_CONFIG_BLOCK_VERSION, DUMP_IND_MAP_SZ, DUMP_MAP_SZ, DUMP_NR_BOOTSTRAP, DUMP_STATE_ARMED, DUMP_STATE_SAVED,
  DUMP_STATE_WRITTEN, KEXEC_IMAGE_PATH_MAX, MAX_DUMP_SEGMENTS,
  dump_config_block, type DumpConfigBlock,
} from './memdev/dump_config_block.js';
import { Memdev } from './memdev/memdev.js';
import { pendingDump } from './crashdump_boot.js';

/** What `lkcd config` pushes into the running kernel (the DIOSDUMP* ioctls). */
export interface DumpSettings {
  active: boolean;
  level: number;
  flags: number;
  compress: DumpCompress;
  panicTimeout: number;
}

/** Pages of the dump buffer: DUMP_BUFFER_SIZE plus three pages, as dump_scheme.c allocates it. */
export const DUMP_BUF_PAGES = DUMP_BUFFER_SIZE / PAGE_SIZE + 3;
const DUMP_BUF_ORDER = Math.ceil(Math.log2(DUMP_BUF_PAGES));

export function readDumpConfig(kernel: Kernel): DumpConfig {
  return kernel.readStruct(dump_config, 'dump_config');
}

/** /proc/sys/kernel/dump/* as the running kernel shows them. */
export function procDumpValues(kernel: Kernel): Record<string, string> {
  const c = readDumpConfig(kernel);
  return {
    level: `${c.level}`,
    flags: `0x${c.flags.toString(16)}`,
    compress: `${c.compress}`,
    device: `0x${c.dump_device.toString(16)}`,
    addr: `0x${c.dump_addr.toString(16)}`,
  };
}

function emptyBlock(): DumpConfigBlock {
  return dump_config_block.zero();
}

/**
 * Arms the dump driver (dumper_setup + dump_overlay_configure): allocates
 * the dump config block, the memdev's indirect maps covering all of RAM,
 * DUMP_NR_BOOTSTRAP bootstrap pages and the dump buffer, and publishes the
 * block's address. Re-running it on an armed kernel only updates settings.
 */
export function armDump(kernel: Kernel, settings: DumpSettings): { blockPhys: bigint; addr: bigint; created: boolean } {
  if ((settings.flags & ~DUMP_FLAGS_KNOWN) !== 0) throw new UsageError(`DUMP_FLAGS ${hex(settings.flags)} has unknown bits`);
  const cfg = readDumpConfig(kernel);
  const mask = dumpLevelMask(settings.level);
  const ram = kernel.ram;
  if (cfg.dump_addr !== 0n && cfg.active) {
    const phys = Kernel.__pa(cfg.dump_addr);
    const block = readBlock(ram, phys);
    if (block.state !== DUMP_STATE_ARMED) {
      // Only possible when a writeout was skipped: lkcd config writes out first.
      throw new DumpError('USAGE', `a dump is held in memory at ${hex(cfg.dump_addr)}: write it out before re-arming`);
    }
    writeBlock(ram, phys, { ...block, level: mask, flags: settings.flags, compress: settings.compress, panic_timeout: settings.panicTimeout });
    kernel.writeStruct(dump_config, 'dump_config', { ...cfg, level: mask, flags: settings.flags, compress: settings.compress, active: settings.active ? 1 : 0, panic_timeout: settings.panicTimeout });
    return { blockPhys: phys, addr: cfg.dump_addr, created: false };
  }
  const memmap = new MemMap(kernel);
  const buddy = new BuddyAllocator(kernel, memmap);
  // The dumper's frames must survive the next boot: never in the boot region of this kernel or of
  // the default kernel for this RAM (what kexec will most likely load).
  const avoid = [...bootRegion(ram.size, { release: kernel.release, physicalStart: kernel.header.physical_start }), ...bootRegion(ram.size, configForRam(ram.size))];
  const rejected: Array<[bigint, number]> = [];
  const take = (order: number, what: string): bigint => {
    for (;;) {
      const pfn = buddy.alloc(order);
      if (pfn === null) {
        for (const [r, o] of rejected) buddy.free(r, o);
        throw new DumpError('IO', `out of memory allocating the dump ${what} outside the boot region`);
      }
      const end = (pfn + (1n << BigInt(order))) * PAGE_SIZE_N;
      if (avoid.some((r) => pfn * PAGE_SIZE_N < r.end && end > r.start)) { rejected.push([pfn, order]); continue; }
      // Reserved, as reserve_bootmem'd dump memory is: never reclaimed, released only by the dump driver.
      for (let i = 0n; i < 1n << BigInt(order); i++) memmap.set(pfn + i, { ...blankPage(), flags: pageFlag(PG_reserved), _refcount: 1 });
      return pfn;
    }
  };
  const maxPfn = ram.size / PAGE_SIZE_N;
  const nrMaps = Number((maxPfn + BigInt(DUMP_MAP_SZ) - 1n) / BigInt(DUMP_MAP_SZ)) + 1;
  const nrIndirect = Math.ceil(nrMaps / DUMP_IND_MAP_SZ);
  const blockPfn = take(0, 'config block');
  const indirect = Array.from({ length: nrIndirect }, () => take(0, 'indirect map'));
  const memdev = Memdev.format(ram, indirect);
  for (let i = 0; i < DUMP_NR_BOOTSTRAP; i++) memdev.addSpace(take(0, 'bootstrap page'));
  memdev.handle.last_bs_offset = memdev.handle.last_offset;
  const bufPfn = take(DUMP_BUF_ORDER, 'buffer');
  for (const [r, o] of rejected) buddy.free(r, o);
  const blockPhys = blockPfn * PAGE_SIZE_N;
  const block: DumpConfigBlock = {
    ...emptyBlock(),
    magic: DUMP_MAGIC_LIVE, version: DUMP_CONFIG_BLOCK_VERSION, block_size: dump_config_block.size,
    state: DUMP_STATE_ARMED, ram_bytes: ram.size, level: mask, flags: settings.flags, compress: settings.compress,
    panic_timeout: settings.panicTimeout, memdev: memdev.handle, dump_buf_pfn: bufPfn, dump_buf_pages: 1 << DUMP_BUF_ORDER,
    segments: Array.from({ length: MAX_DUMP_SEGMENTS }, () => ({ pass: 0, nr_pages: 0, start: 0n, end: 0n })),
  };
  writeBlock(ram, blockPhys, block);
  const addr = Kernel.__va(blockPhys);
  kernel.writeStruct(dump_config, 'dump_config', {
    level: mask, flags: settings.flags, compress: settings.compress, active: settings.active ? 1 : 0,
    dump_device: 0n, dump_addr: addr, panic_timeout: settings.panicTimeout, _pad: 0, reserved: 0n,
  });
  printk(kernel, `dump: Dump config block of size ${dump_config_block.size} set up at 0x${addr.toString(16)}`, LOGLEVEL_INFO);
  printk(kernel, `dump memdev init: ${nrMaps} maps, ${DUMP_NR_BOOTSTRAP} bootstrap pgs, ${buddy.freePages()} free pgs`, LOGLEVEL_INFO);
  return { blockPhys, addr, created: true };
}

/**
 * The dump waiting to be written out, if any: one saved before a soft
 * boot (found through crashdump=), or one taken by Alt+SysRq+d in this
 * kernel (the armed block holds a saved dump).
 */
export function dumpAwaitingWriteout(kernel: Kernel): { addr: bigint; phys: bigint; live: boolean } | null {
  const pending = pendingDump(kernel);
  if (pending) return { ...pending, live: false };
  const cfg = readDumpConfig(kernel);
  if (cfg.dump_addr === 0n) return null;
  const phys = Kernel.__pa(cfg.dump_addr);
  const block = readBlock(kernel.ram, phys);
  return block.state === DUMP_STATE_SAVED || block.state === DUMP_STATE_WRITTEN ? { addr: cfg.dump_addr, phys, live: true } : null;
}

/**
 * Records in the config block what `lkcd config` preloaded (the image's
 * path inside the machine root, and the command line with crashdump=), so
 * a kernel booted holding this block's dump reloads the same.
 */
export function recordKexecPreload(kernel: Kernel, blockPhys: bigint, imageInRoot: string, cmdline: string): void {
  if (Buffer.byteLength(imageInRoot, 'latin1') >= KEXEC_IMAGE_PATH_MAX) {
    throw new UsageError(`KEXEC_IMAGE ${imageInRoot} is longer than ${KEXEC_IMAGE_PATH_MAX - 1} bytes`);
  }
  const block = readBlock(kernel.ram, blockPhys);
  writeBlock(kernel.ram, blockPhys, { ...block, kexec_image: imageInRoot, kexec_cmdline: cmdline });
}
