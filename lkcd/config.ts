import fs from 'node:fs';
import { DegradedResult, DumpError, hex } from '../src/codec/index.js';
import type { MachineRoot } from '../src/machine/index.js';
import {
  BuddyAllocator, closeSystem, kexecLoad, MemMap, openSystem, readKernelImageFile,
} from '../src/kernel/index.js';
import {
  armDump, BlockDevice, dumpAwaitingWriteout, faultsFromEnv, readDumpConfig, writeoutDump, DUMP_FLAGS_SOFTBOOT,
} from '../src/dump/index.js';
import { progressBar } from '../src/cli/progress.js';
import { dump_config } from '../src/kernel/structs/dump_config.js';
import { loadSysconfig, wantsSoftboot } from './sysconfig.js';

/** What `lkcd config` did, line by line, and the degraded result to report after them (a TRUNCATED writeout, a failed device). */
export interface ConfigReport { lines: string[]; degraded?: DegradedResult }

/** Size of a dump device created on first use: RAM plus room for record headers and incompressible pages. */
export function defaultDeviceSize(ramBytes: bigint): bigint {
  return ramBytes + ramBytes / 128n + (4n << 20n);
}

/**
 * `lkcd config`: pushes /etc/sysconfig/dump into the running kernel. With
 * DUMP_FLAGS_SOFTBOOT and KEXEC_IMAGE it preloads the kexec kernel with
 * crashdump=<addr> appended, as lkcdutils' sbin.lkcd does.
 */
export function lkcdConfig(root: MachineRoot, onLine?: (line: string) => void): ConfigReport {
  const sys = openSystem(root);
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
            const image = readKernelImageFile(conf.KEXEC_IMAGE);
            const memmap = new MemMap(kernel);
            const cmdline = `${conf.KEXEC_CMDLINE} crashdump=${hex(pending.addr)}`.trim();
            kexecLoad(kernel, new BuddyAllocator(kernel, memmap), memmap, image, cmdline);
            say(`Preloading kernel for kexec based dumping: ${image.layout.config.release} --command-line="${cmdline}" (the held dump)`);
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
      const image = readKernelImageFile(conf.KEXEC_IMAGE);
      const memmap = new MemMap(kernel);
      const cmdline = `${conf.KEXEC_CMDLINE} crashdump=${hex(armed.addr)}`.trim();
      kexecLoad(kernel, new BuddyAllocator(kernel, memmap), memmap, image, cmdline);
      say(`Preloading kernel for kexec based dumping: ${image.layout.config.release} --command-line="${cmdline}"`);
    }
    sys.ram.flush();
    return { lines, degraded };
  } finally {
    closeSystem(sys);
  }
}
