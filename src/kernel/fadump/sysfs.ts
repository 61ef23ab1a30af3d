/**
 * The sysfs files of firmware-assisted dump: the 2011 names under
 * /sys/kernel (fadump_enabled 0444, fadump_registered 0644,
 * fadump_release_mem 0200 and only in a capture boot), and the newer
 * /sys/kernel/fadump/{enabled,registered,release_mem} as links to them,
 * beside fadump/mem_reserved (0444, what kdump-utils reads as the
 * reservation). Present when fadump is enabled and supported, as
 * fadump_init_files() creates them.
 */
import { UsageError } from '../../codec/index.js';
import type { PlatformFirmware } from '../../machine/index.js';
import type { Kernel } from '../kernel.js';
import { BuddyAllocator } from '../mm/buddy.js';
import { MemMap } from '../mm/mem_map.js';
import { fadumpReleaseMemStore } from './capture.js';
import { fadumpRegisteredStore } from './register.js';
import { dumpRegistered, fadumpEnabled, fadumpSupported, readFwDump, releaseMemFile } from './state.js';

/** What a sysfs file of fadump needs besides the kernel: the firmware it registers with. */
export interface FadumpSysfsContext { firmware?: PlatformFirmware }

/** One fadump attribute: name, mode, and its show/store. */
export interface FadumpAttr {
  name: string;
  mode: number;
  show?: () => string;
  store?: (path: string, value: string) => void;
}

function present(kernel: Kernel): boolean {
  const f = readFwDump(kernel);
  return fadumpEnabled(f) && fadumpSupported(f);
}

/** The 2011 attributes under /sys/kernel, by the names they have there. */
export function fadumpKernelAttrs(kernel: Kernel, ctx: FadumpSysfsContext): FadumpAttr[] {
  if (!present(kernel)) return [];
  const attrs: FadumpAttr[] = [
    { name: 'fadump_enabled', mode: 0o444, show: () => `${fadumpEnabled(readFwDump(kernel)) ? 1 : 0}\n` },
    {
      name: 'fadump_registered', mode: 0o644, show: () => `${dumpRegistered(readFwDump(kernel)) ? 1 : 0}\n`,
      store: (p, v) => fadumpRegisteredStore(kernel, ctx.firmware, p, v),
    },
  ];
  if (releaseMemFile(readFwDump(kernel))) {
    attrs.push({
      name: 'fadump_release_mem', mode: 0o200,
      store: (p, v) => {
        const memmap = new MemMap(kernel);
        fadumpReleaseMemStore(kernel, memmap, new BuddyAllocator(kernel, memmap), ctx.firmware, p, v);
      },
    });
  }
  return attrs;
}

/** /sys/kernel/fadump: the newer names, three of them links to the 2011 files, and mem_reserved. */
export function fadumpDirAttrs(kernel: Kernel): Array<FadumpAttr & { link?: string }> {
  if (!present(kernel)) return [];
  const out: Array<FadumpAttr & { link?: string }> = [
    { name: 'enabled', mode: 0o444, link: '../fadump_enabled' },
    { name: 'registered', mode: 0o644, link: '../fadump_registered' },
    { name: 'mem_reserved', mode: 0o444, show: () => `${readFwDump(kernel).reserve_dump_area_size}\n` },
  ];
  if (releaseMemFile(readFwDump(kernel))) out.push({ name: 'release_mem', mode: 0o200, link: '../fadump_release_mem' });
  return out;
}

/** The error a read of a write-only attribute gives (no show method: -EIO). */
export function writeOnlyRead(path: string): never {
  throw new UsageError(`cat ${path}: Input/output error (the file is write-only)`);
}
