import fs from 'node:fs';
import path from 'node:path';
import { DegradedResult, DumpError, hex, UsageError, viewOf } from '../src/codec/index.js';
import type { MachineRoot } from '../src/machine/index.js';
import {
  bootCommandLine, BuddyAllocator, closeSystem, CONFIG_RAM_CHUNKS, inheritPersistentRamParams, Kernel, kexecLoad, MemMap, openSystem, readKernelImageFile, type RunningSystem,
} from '../src/kernel/index.js';
import {
  armDump, BlockDevice, deviceDumpSha256, dump_header, dumpAwaitingWriteout, faultsFromEnv, findDeviceDump, Memdev, readBlock,
  readDumpConfig, readSavedMark, recordKexecPreload, savedHeader, writeoutDump, DUMP_FLAGS_SOFTBOOT,
  DUMP_STATE_SAVED, KEXEC_IMAGE_PATH_MAX, WRITEOUT_RUNNING, type DumpHeader,
} from '../src/dump/index.js';
import { progressBar } from '../src/cli/progress.js';
import { dump_config } from '../src/kernel/structs/dump_config.js';
import { lkcdSave } from './save.js';
import { loadSysconfig, wantsSoftboot, type SysconfigDump } from './sysconfig.js';

/** What `lkcd config` did, line by line, and the degraded result to report after them (a TRUNCATED writeout, a failed device). */
export interface ConfigReport { lines: string[]; degraded?: DegradedResult }

export interface ConfigOptions {
  /** Write out over a device dump that `lkcd save` never saved (lkcd config --force). */
  force?: boolean;
}

/** The kexec image's path as the running kernel sees it: inside the machine root. */
function pathInMachine(root: MachineRoot, file: string): string {
  return `/${path.relative(root.dir, file).split(path.sep).join('/')}`;
}

/** kexec -l KEXEC_IMAGE --command-line="KEXEC_CMDLINE crashdump=ADDR", recorded in the config block for the next boot. */
function preloadKexec(sys: RunningSystem, root: MachineRoot, conf: SysconfigDump, addr: bigint): { release: string; cmdline: string } {
  const kernel = sys.kernel;
  const image = readKernelImageFile(conf.KEXEC_IMAGE);
  const memmap = new MemMap(kernel);
  // The kernel kexec boots must reserve and read the ramoops region too: the running kernel's
  // ramoops.*, pstore.*, memmap= and reboot= words are passed on (see inheritPersistentRamParams).
  const cmdline = inheritPersistentRamParams(`${conf.KEXEC_CMDLINE} crashdump=${hex(addr)}`, bootCommandLine(kernel));
  const inMachine = pathInMachine(root, conf.KEXEC_IMAGE);
  if (Buffer.byteLength(inMachine, 'latin1') >= KEXEC_IMAGE_PATH_MAX) {
    throw new UsageError(`KEXEC_IMAGE ${inMachine} is longer than ${KEXEC_IMAGE_PATH_MAX - 1} bytes`, { field: 'KEXEC_IMAGE' });
  }
  kexecLoad(kernel, new BuddyAllocator(kernel, memmap), memmap, image, cmdline);
  recordKexecPreload(kernel, Kernel.__pa(addr), inMachine, cmdline);
  return { release: image.layout.config.release, cmdline };
}

/** The identity of a dump, from its header: when it was taken, of what, why. */
function sameDump(a: DumpHeader, b: DumpHeader): boolean {
  return a.dh_time.tv_sec === b.dh_time.tv_sec && a.dh_time.tv_usec === b.dh_time.tv_usec
    && a.dh_panic_string === b.dh_panic_string && a.dh_memory_size === b.dh_memory_size
    && a.dh_utsname_nodename === b.dh_utsname_nodename && a.dh_utsname_release === b.dh_utsname_release;
}

/**
 * A valid dump on the device that `lkcd save` never saved, and that is not
 * the dump about to be written (a writeout being resumed, or an earlier
 * writeout of the same dump cut short by the device), or null.
 */
function unsavedOtherDump(kernel: Kernel, blockPhys: bigint, dev: BlockDevice): DumpHeader | null {
  const block = readBlock(kernel.ram, blockPhys);
  // Resumed, or already written whole: whatever valid dump the device holds is this one.
  if (block.state !== DUMP_STATE_SAVED || (block.wo_state === WRITEOUT_RUNNING && block.wo_device_size === dev.size)) return null;
  let found;
  try {
    found = findDeviceDump(dev);
  } catch (e) {
    // Nothing valid to lose: garbage, a cleared header, a dump that never got its END.
    if (e instanceof DumpError && ['CORRUPT', 'TRUNCATED', 'UNSUPPORTED'].includes(e.code)) return null;
    throw e;
  }
  if (!found) return null;
  const mine = dump_header.decode(viewOf(savedHeader(kernel, block, Memdev.open(kernel.ram, block.memdev))), 0);
  if (sameDump(found.header, mine)) return null;
  const mark = readSavedMark(dev);
  if (mark && mark.sha256 === deviceDumpSha256(dev, found)) return null;
  return found.header;
}

/** Size of a dump device created on first use: RAM plus room for record headers and incompressible pages. */
export function defaultDeviceSize(ramBytes: bigint): bigint {
  return ramBytes + ramBytes / 128n + (4n << 20n);
}

/**
 * `lkcd config`: pushes /etc/sysconfig/dump into the running kernel. With
 * DUMP_FLAGS_SOFTBOOT and KEXEC_IMAGE it preloads the kexec kernel with
 * crashdump=<addr> appended, as lkcdutils' sbin.lkcd does, and with the
 * persistent-RAM parameters of the running kernel (ramoops.*, pstore.*,
 * memmap=, reboot=) that KEXEC_CMDLINE does not set itself.
 */
export function lkcdConfig(root: MachineRoot, onLine?: (line: string) => void, opts: ConfigOptions = {}): ConfigReport {
  const sys = openSystem(root, { maxChunks: CONFIG_RAM_CHUNKS });
  // Each line is reported as it happens: a later failure must not hide a writeout that was done.
  const lines: string[] = [];
  const say = (l: string): void => { lines.push(l); onLine?.(l); };
  let degraded: DegradedResult | undefined;
  try {
    const kernel = sys.kernel;
    const conf = loadSysconfig(root.sysconfigPath, root.dir, kernel.release);
    BlockDevice.ensure(conf.DUMPDEV, defaultDeviceSize(kernel.ram.size));
    const pending = dumpAwaitingWriteout(kernel);
    if (pending) {
      // "Processing old dump pending writeout": stage 2 first, then re-arm.
      const dev = BlockDevice.open(conf.DUMPDEV, { write: true, faults: faultsFromEnv() });
      const bar = progressBar('lkcd config: writeout');
      try {
        // Never over a dump nobody saved: save it first (DUMP_SAVE=1), or refuse, unless --force.
        const other = opts.force ? null : unsavedOtherDump(kernel, pending.phys, dev);
        if (other) {
          const what = `${conf.DUMPDEV} holds a dump lkcd save never saved (panic "${other.dh_panic_string}", ${new Date(Number(other.dh_time.tv_sec) * 1000).toISOString()})`;
          if (!conf.DUMP_SAVE) throw new UsageError(`${what}; run 'lkcd save' with DUMP_SAVE=1 first, or 'lkcd config --force' to overwrite it`, { file: conf.DUMPDEV });
          say(`dump: ${what}: saving it before the writeout`);
          sys.ram.flush();
          for (const l of lkcdSave(root).lines) say(l);
          if (unsavedOtherDump(kernel, pending.phys, dev)) throw new DumpError('IO', `${what}, and lkcd save did not save it; not overwriting it`, { file: conf.DUMPDEV });
        }
        const r = writeoutDump(kernel, pending.phys, dev, bar);
        bar.end();
        say(`dump: wrote the ${pending.live ? 'live dump' : 'dump saved before the soft boot'} at ${hex(pending.addr)} to ${conf.DUMPDEV}: ${r.pages} pages, ${r.bytes} bytes${r.resumed ? ' (resumed)' : ''}` +
          (r.truncated ? `; TRUNCATED: ${r.missingPages} pages missing` : ''));
        if (r.corrupted.length) {
          const shown = r.corrupted.slice(0, 8).map((p) => hex(p * 4096n)).join(', ');
          say(`dump: ${r.corrupted.length} page${r.corrupted.length > 1 ? 's were' : ' was'} damaged in memory since the panic and not written (paddr ${shown}${r.corrupted.length > 8 ? ', ...' : ''}); all other pages were`);
        }
        if (r.ioError) say(`dump: ${r.ioError}; the dump on the device ends before it`);
        // The writeout is done; what it kept is reported after the rest, as the exit status.
        if (r.ioError) degraded = new DegradedResult('DEVICE_IO', `the dump device ${conf.DUMPDEV} failed during the writeout: the dump on it is TRUNCATED (${r.missingPages} pages missing); the rest stays in memory for a retry`, { file: conf.DUMPDEV });
        else if (r.truncated) degraded = new DegradedResult('DUMP_TRUNCATED', `the dump written to ${conf.DUMPDEV} is TRUNCATED: ${r.missingPages} pages missing (lkcd save, then lkcd show, lists them by reason)`, { file: conf.DUMPDEV });
        if (r.keptForRetry) {
          say(`dump: the device could not hold the whole dump: its frames stay reserved in memory; run lkcd config again once ${conf.DUMPDEV} is mended or larger`);
          // Not re-armed while the dump is held: a panic before the retry must reboot into a kernel
          // that finds this dump again, so kexec is preloaded with its address.
          if (!pending.live && wantsSoftboot(conf) && fs.existsSync(conf.KEXEC_IMAGE)) {
            const pre = preloadKexec(sys, root, conf, pending.addr);
            say(`Preloading kernel for kexec based dumping: ${pre.release} --command-line="${pre.cmdline}" (the held dump)`);
          }
          sys.ram.flush();
          return { lines, degraded };
        }
      } finally {
        dev.close();
      }
    }
    if (!conf.DUMP_ACTIVE) {
      const cfg = readDumpConfig(kernel);
      kernel.writeStruct(dump_config, 'dump_config', { ...cfg, active: 0 });
      say('dump: DUMP_ACTIVE=0: dumping disabled');
      sys.ram.flush();
      return { lines, degraded };
    }
    if ((conf.DUMP_FLAGS & DUMP_FLAGS_SOFTBOOT) && conf.KEXEC_IMAGE !== '' && !fs.existsSync(conf.KEXEC_IMAGE)) {
      throw new DumpError('NOINPUT', `KEXEC_IMAGE ${conf.KEXEC_IMAGE} does not exist`, { file: conf.KEXEC_IMAGE });
    }
    const armed = armDump(kernel, {
      active: true, level: conf.DUMP_LEVEL, flags: conf.DUMP_FLAGS, compress: conf.DUMP_COMPRESS, panicTimeout: conf.PANIC_TIMEOUT,
    });
    const cfg = readDumpConfig(kernel);
    say(`dump: ${armed.created ? 'configured' : 'reconfigured'}: level 0x${cfg.level.toString(16)}, flags 0x${cfg.flags.toString(16)}, compress ${cfg.compress}; config block at ${hex(armed.addr)}`);
    if (wantsSoftboot(conf)) {
      const pre = preloadKexec(sys, root, conf, armed.addr);
      say(`Preloading kernel for kexec based dumping: ${pre.release} --command-line="${pre.cmdline}"`);
    }
    sys.ram.flush();
    return { lines, degraded };
  } finally {
    closeSystem(sys);
  }
}
