import { DumpError, UsageError, vmcoredd_header } from '../codec/index.js';
import type { PlatformFirmware } from '../machine/index.js';
import { dumpDriverName, vmcoreddData, vmcoreddDumps } from './vmcore/vmcoredd.js';
import type { Kernel } from './kernel.js';
import { fadumpDirAttrs, fadumpKernelAttrs, writeOnlyRead, type FadumpAttr } from './fadump/sysfs.js';
import {
  devcdDisable, devcdDisabled, pstoreFiles, pstoreRead, pstoreUnlink, readDevcdState, readRamoops,
} from './pstore/index.js';

/**
 * A small sysfs: the files the running kernel shows under /sys, each
 * computed from the kernel's state in RAM when asked for. A feature adds
 * its files by adding a provider (a directory and a function listing its
 * files) to SYSFS_PROVIDERS; parent directories follow from the paths.
 */
export interface SysfsFile {
  kind: 'file';
  name: string;
  /** Permission bits (0444, 0400, 0644...). */
  mode: number;
  mtimeSec: bigint;
  mtimeNsec: number;
  size: number;
  read(): Buffer;
  /** Present on writable attributes; throws a UsageError ("Invalid argument") on a bad value. */
  write?(value: string): void;
  /** Present where unlink(2) works (pstorefs). */
  unlink?(): void;
  /** A symbolic link: its target, relative to the directory; `mode` and reads and writes are the target's. */
  link?: string;
}

export interface SysfsDir {
  kind: 'dir';
  name: string;
  mode: number;
  mtimeSec: bigint;
  mtimeNsec: number;
}

export type SysfsEntry = SysfsFile | SysfsDir;

/** Hardware a sysfs file may act on besides the kernel's RAM. */
export interface SysfsContext {
  /** The platform firmware (fadump registers with it). */
  firmware?: PlatformFirmware;
}

export interface SysfsProvider {
  /** The directory under /sys it fills, e.g. "fs/pstore". */
  readonly dir: string;
  /** Whether the directory exists in this kernel (a mounted fs, a loaded module). */
  present(kernel: Kernel): boolean;
  files(kernel: Kernel, ctx: SysfsContext): SysfsFile[];
  /** Directories below `dir` whose names come from the kernel's state (crashdd's per-driver directories). */
  expand?(kernel: Kernel): SysfsProvider[];
}

/** Wall-clock boot time: the mtime of sysfs attributes. */
function bootTime(kernel: Kernel): bigint {
  return kernel.readU64('sim_boot_time');
}

function textAttr(kernel: Kernel, name: string, mode: number, value: () => string, write?: (v: string) => void): SysfsFile {
  const text = (): Buffer => Buffer.from(value(), 'latin1');
  return { kind: 'file', name, mode, mtimeSec: bootTime(kernel), mtimeNsec: 0, size: 4096, read: text, write };
}

/** /sys/fs/pstore: the pstorefs mount (fs/pstore/inode.c). */
const pstoreProvider: SysfsProvider = {
  dir: 'fs/pstore',
  present: (kernel) => readRamoops(kernel) !== null,
  files: (kernel) => pstoreFiles(kernel).map((f) => ({
    kind: 'file', name: f.name, mode: f.mode, mtimeSec: f.mtimeSec, mtimeNsec: f.mtimeNsec, size: f.size,
    read: () => pstoreRead(kernel, f.name),
    unlink: () => pstoreUnlink(kernel, f.name),
  })),
};

/** /sys/module/ramoops/parameters: module_param(..., 0400), updated by ramoops_probe() to what it used. */
const ramoopsParamsProvider: SysfsProvider = {
  dir: 'module/ramoops/parameters',
  present: (kernel) => readRamoops(kernel) !== null,
  files: (kernel) => {
    const c = readRamoops(kernel);
    if (!c) return [];
    const values: Array<[string, string]> = [
      ['mem_address', `${c.phys_addr}`], ['mem_size', `${c.size}`], ['mem_type', `${c.memtype}`],
      ['record_size', `${c.record_size}`], ['console_size', `${c.console_size}`], ['ftrace_size', `${c.ftrace_size}`],
      ['pmsg_size', `${c.pmsg_size}`], ['max_reason', `${c.max_reason}`], ['ecc', `${c.ecc_size}`],
      // Ours: the device-coredump zone after the region.
      ['devcoredump_size', `${c.devcd_size}`],
    ];
    return values.map(([n, v]) => textAttr(kernel, n, 0o400, () => `${v}\n`));
  },
};

/**
 * /sys/class/devcoredump/disabled (drivers/base/devcoredump.c): write 1
 * and device coredumps stop until the next boot; 0 is refused, the switch
 * is write-once. The device-coredump frontend (ours) honours it too.
 */
const devcoredumpProvider: SysfsProvider = {
  dir: 'class/devcoredump',
  present: (kernel) => readDevcdState(kernel) !== null,
  files: (kernel) => [textAttr(kernel, 'disabled', 0o644, () => (devcdDisabled(kernel) ? '1\n' : '0\n'), (v) => {
    // simple_strtol(buf, NULL, 10) != 1: -EINVAL.
    if (!/^\s*\+?0*1(\D|$)/.test(v)) throw new UsageError('/sys/class/devcoredump/disabled: write error: Invalid argument (only 1 is accepted: the switch cannot be turned back)');
    devcdDisable(kernel);
  })],
};

function fadumpFile(kernel: Kernel, dir: string, a: FadumpAttr & { link?: string }, resolve: (name: string) => FadumpAttr | undefined): SysfsFile {
  const target = a.link ? resolve(a.link.replace(/^\.\.\//, '')) : a;
  const path = `/sys/${dir}/${a.name}`;
  return {
    ...textAttr(kernel, a.name, target?.mode ?? a.mode, () => (target?.show ? target.show() : writeOnlyRead(path)),
      target?.store ? (v) => target.store!(path, v) : undefined),
    ...(a.link ? { link: a.link } : {}),
  };
}

/**
 * /sys/kernel: fadump's 2011 files (arch/powerpc/kernel/fadump.c
 * fadump_init_files). Other /sys/kernel files (kexec_crash_size, ...)
 * are read through `machine proc`.
 */
const fadumpKernelProvider: SysfsProvider = {
  dir: 'kernel',
  present: (kernel) => fadumpKernelAttrs(kernel, {}).length > 0,
  files: (kernel, ctx) => fadumpKernelAttrs(kernel, ctx).map((a) => fadumpFile(kernel, 'kernel', a, () => undefined)),
};

/** /sys/kernel/fadump: the newer names (links to the 2011 files) and mem_reserved. */
const fadumpDirProvider: SysfsProvider = {
  dir: 'kernel/fadump',
  present: (kernel) => fadumpDirAttrs(kernel).length > 0,
  files: (kernel, ctx) => {
    const old = fadumpKernelAttrs(kernel, ctx);
    return fadumpDirAttrs(kernel).map((a) => fadumpFile(kernel, 'kernel/fadump', a, (n) => old.find((o) => o.name === n)));
  },
};

/**
 * Mode of a crashdd file: read-only, root only. Reconstructed: the 2018
 * patch's ABI text (Documentation/ABI/testing/sysfs-kernel-crashdd) is not
 * available; a bin_attribute readable by root is the likeliest.
 */
export const CRASHDD_FILE_MODE = 0o400;

/**
 * /sys/kernel/crashdd/<driver>/<dump>: the crashdd patches' view (2018,
 * never merged) of the device dumps this crash recovery kernel's drivers
 * took, one read-only file per dump with the driver's data (the bytes
 * after the vmcoredd_header, as crash shows a note's dump), in a directory
 * per driver.
 */
const crashddProvider: SysfsProvider = {
  dir: 'kernel/crashdd',
  present: (kernel) => vmcoreddDumps(kernel).length > 0,
  files: () => [],
  expand: (kernel) => {
    const dumps = vmcoreddDumps(kernel);
    const drivers = [...new Set(dumps.map((d) => dumpDriverName(d.name)))];
    return drivers.map((drv) => ({
      dir: `kernel/crashdd/${drv}`,
      present: () => true,
      files: (k: Kernel) => vmcoreddDumps(k).filter((d) => dumpDriverName(d.name) === drv).map((d) => ({
        kind: 'file' as const, name: d.name, mode: CRASHDD_FILE_MODE, mtimeSec: bootTime(k), mtimeNsec: 0, size: d.size - vmcoredd_header.size,
        read: () => Buffer.from(vmcoreddData(k, d)),
      })),
    }));
  },
};

/** Every provider of the simulated kernel's sysfs. */
export const SYSFS_PROVIDERS: readonly SysfsProvider[] = [pstoreProvider, ramoopsParamsProvider, devcoredumpProvider, fadumpKernelProvider, fadumpDirProvider, crashddProvider];

/** "/sys/fs/pstore/x", "sys/fs/pstore/x/" and "fs/pstore/x" all name the same file. */
export function normaliseSysPath(p: string): string {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new UsageError(`${p}: '..' is not allowed in a /sys path`);
  if (parts[0] === 'sys') parts.shift();
  return parts.join('/');
}

/** The /sys tree of a running kernel. */
export class Sysfs {
  constructor(readonly kernel: Kernel, readonly providers: readonly SysfsProvider[] = SYSFS_PROVIDERS, readonly ctx: SysfsContext = {}) {}

  /** The providers present in this kernel, with the directories they expand to. */
  private present(): SysfsProvider[] {
    return this.providers.filter((p) => p.present(this.kernel)).flatMap((p) => [p, ...(p.expand?.(this.kernel) ?? [])]);
  }

  private presentDirs(): string[] {
    return this.present().map((p) => p.dir);
  }

  private isDir(path: string): boolean {
    return path === '' || this.presentDirs().some((d) => d === path || d.startsWith(`${path}/`));
  }

  private dirEntry(name: string): SysfsDir {
    return { kind: 'dir', name, mode: 0o755, mtimeSec: bootTime(this.kernel), mtimeNsec: 0 };
  }

  /** The entries of a directory, directories first, each group sorted by name. */
  list(path: string): SysfsEntry[] {
    const p = normaliseSysPath(path);
    if (!this.isDir(p)) {
      const f = this.lookup(p);
      if (f.kind === 'file') return [f];
    }
    const prefix = p === '' ? '' : `${p}/`;
    const dirs = new Set<string>();
    for (const d of this.presentDirs()) if (d.startsWith(prefix) && d !== p) dirs.add(d.slice(prefix.length).split('/')[0]);
    const files = this.present().filter((x) => x.dir === p).flatMap((x) => x.files(this.kernel, this.ctx));
    return [...[...dirs].sort().map((d) => this.dirEntry(d)), ...files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))];
  }

  /** Whether a path exists (a directory of a present provider, or one of its files). */
  exists(path: string): boolean {
    const p = normaliseSysPath(path);
    if (this.isDir(p)) return true;
    const slash = p.lastIndexOf('/');
    const dir = p.slice(0, Math.max(0, slash));
    return this.present().some((x) => x.dir === dir && x.files(this.kernel, this.ctx).some((f) => f.name === p.slice(slash + 1)));
  }

  lookup(path: string): SysfsEntry {
    const p = normaliseSysPath(path);
    if (this.isDir(p)) return this.dirEntry(p.split('/').pop() ?? '');
    const slash = p.lastIndexOf('/');
    const dir = p.slice(0, Math.max(0, slash));
    const name = p.slice(slash + 1);
    const f = this.present().filter((x) => x.dir === dir).flatMap((x) => x.files(this.kernel, this.ctx)).find((x) => x.name === name);
    if (!f) throw new DumpError('NOINPUT', `/sys/${p}: No such file or directory`, { file: `/sys/${p}` });
    return f;
  }

  private file(path: string, what: string): SysfsFile {
    const e = this.lookup(path);
    if (e.kind === 'dir') throw new UsageError(`${what} /sys/${normaliseSysPath(path)}: Is a directory`);
    return e;
  }

  read(path: string): Buffer {
    return this.file(path, 'cat').read();
  }

  write(path: string, value: string): void {
    const f = this.file(path, 'write');
    if (!f.write || !(f.mode & 0o200)) throw new UsageError(`write /sys/${normaliseSysPath(path)}: Permission denied (mode 0${f.mode.toString(8)})`);
    f.write(value);
  }

  unlink(path: string): void {
    const f = this.file(path, 'rm');
    if (!f.unlink) throw new UsageError(`rm /sys/${normaliseSysPath(path)}: Operation not permitted`);
    f.unlink();
  }
}
