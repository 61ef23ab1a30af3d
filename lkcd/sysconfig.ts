import fs from 'node:fs';
import path from 'node:path';
import { DumpError, UsageError } from '../src/codec/index.js';
import {
  fileKind, isWithin, MachineRoot, readRegularFile, refuseProtected, refuseSpecialFile, resolveInRoot, resolvePath,
  writeFileAtomic, type ProtectedPath,
} from '../src/machine/index.js';
import { INDEX_FILE } from '../src/store/index.js';
import {
  DUMP_COMPRESS_GZIP, DUMP_FLAGS_KNOWN, DUMP_FLAGS_SOFTBOOT, DUMP_LEVEL_ALL_RAM, DUMP_LEVEL_HEADER,
  DUMP_LEVEL_KERN, DUMP_LEVEL_NONE, DUMP_LEVEL_USED, type DumpCompress,
} from '../src/dump/index.js';

/** /etc/sysconfig/dump, parsed and checked (lkcdutils' sysconfig.dump variables). */
export interface SysconfigDump {
  DUMP_ACTIVE: boolean;
  DUMPDEV: string;
  DUMPDIR: string;
  DUMP_SAVE: boolean;
  DUMP_LEVEL: number;
  DUMP_COMPRESS: DumpCompress;
  DUMP_FLAGS: number;
  PANIC_TIMEOUT: number;
  KEXEC_IMAGE: string;
  KEXEC_CMDLINE: string;
  /** Saved dumps lkcd save keeps in DUMPDIR (savecore's -m): older ones are removed after a save; 0 keeps all. */
  DUMP_KEEP: number;
}

/** Every key etc/sysconfig/dump may set, in the order lkcd config --show prints them. */
export const SYSCONFIG_KEYS = [
  'DUMP_ACTIVE', 'DUMPDEV', 'DUMPDIR', 'DUMP_SAVE', 'DUMP_LEVEL', 'DUMP_COMPRESS', 'DUMP_FLAGS', 'PANIC_TIMEOUT',
  'KEXEC_IMAGE', 'KEXEC_CMDLINE', 'DUMP_KEEP',
] as const satisfies ReadonlyArray<keyof SysconfigDump>;

/** DUMP_LEVEL_ALL (0x10, "all memory RAM and firmware") is accepted and treated as ALL_RAM: the machine has no firmware memory. */
const DUMP_LEVEL_ALL = 0x10;
const LEVELS = [DUMP_LEVEL_NONE, DUMP_LEVEL_HEADER, DUMP_LEVEL_KERN, DUMP_LEVEL_USED, DUMP_LEVEL_ALL_RAM, DUMP_LEVEL_ALL];

export function defaultSysconfig(release: string): string {
  return `## Path: System/Kernel/LKCD
## Description: lkcd-softboot dump configuration (paths are inside the machine root)

# 1 to enable dumping, 0 to disable.
DUMP_ACTIVE=1
# The dump device (a block-device image file).
DUMPDEV=/dev/vmdump
# Where 'lkcd save' puts dumps: DUMPDIR/N/dump.N, map.N, kerntypes.N, analysis.N, and bounds.
DUMPDIR=/log/dump
# 1 to let 'lkcd save' copy the dump from DUMPDEV to DUMPDIR.
DUMP_SAVE=1
# 0 none, 1 header, 2 kernel pages, 4 used pages, 8 all RAM.
DUMP_LEVEL=8
# 0 none, 1 RLE, 2 GZIP (one zlib stream per page).
DUMP_COMPRESS=2
# 0x80000000 DISKDUMP, 0x2 SOFTBOOT (save in memory, kexec, write out in the new kernel), 0x1 NONDISRUPT.
DUMP_FLAGS=0x80000002
# Seconds before the reboot after a panic (recorded; the simulation does not sleep).
PANIC_TIMEOUT=5
# Only relevant for dumping via kexec: the kernel to boot after a panic, and its command line.
KEXEC_IMAGE=/boot/vmlinuz-${release}
KEXEC_CMDLINE="root=/dev/vda1 ro console=ttyS0,115200"
# Saved dumps to keep in DUMPDIR (as savecore -m): after a save the oldest beyond N are removed; 0 keeps all.
DUMP_KEEP=0
`;
}

/** Splits shell-style assignments: KEY=value, KEY="value", KEY='value', # comments. */
export function parseAssignments(text: string, file: string): Map<string, { value: string; line: number }> {
  const out = new Map<string, { value: string; line: number }>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^([A-Z_][A-Z0-9_]*)=(?:"([^"]*)"|'([^']*)'|([^\s#"']*))\s*(?:#.*)?$/.exec(line);
    if (!m) throw new UsageError(`${file}:${i + 1}: cannot parse '${line}' (expected KEY=value)`, { file });
    out.set(m[1], { value: m[2] ?? m[3] ?? m[4] ?? '', line: i + 1 });
  });
  return out;
}

/** Largest etc/sysconfig/dump read (the default is under 2 KiB). */
export const SYSCONFIG_MAX_BYTES = 1 << 20;

/**
 * Resolves a path from the config inside the machine root, refusing any
 * that would leave it, also through a symbolic link (an absolute path is
 * taken relative to the root).
 */
export function pathInRoot(root: string, value: string, where: string): string {
  return resolveInRoot(root, value, where);
}

/** DUMPDIR's own files: the index with its journal files, and bounds. */
export function dumpDirFiles(dumpdir: string): ProtectedPath[] {
  const index = path.join(dumpdir, INDEX_FILE);
  return [
    ...[index, `${index}-wal`, `${index}-shm`, `${index}-journal`].map((p) => ({ path: p, what: `the dump index (${path.basename(p)} in DUMPDIR)` })),
    { path: path.join(dumpdir, 'bounds'), what: 'the dump counter (bounds in DUMPDIR)' },
  ];
}

/** Most DUMPDIR entries looked at for saved dumps (a dump number has at most 9 digits). */
const MAX_DUMPDIR_ENTRIES = 100_000;

/** The saved dumps' directories DUMPDIR/N, and saves in progress (.saving-N). */
export function savedDumpDirs(dumpdir: string): ProtectedPath[] {
  let names: string[];
  try {
    names = fs.readdirSync(dumpdir).slice(0, MAX_DUMPDIR_ENTRIES);
  } catch {
    return []; // no DUMPDIR yet: no saved dump to protect
  }
  return names.filter((n) => /^\d{1,9}$/.test(n) || /^\.saving-\d{1,9}$/.test(n))
    .map((n) => ({ path: path.join(dumpdir, n), tree: true, what: `saved dump ${n.replace('.saving-', '')} (DUMPDIR/${n})` }));
}

/** Everything an lkcd output must never replace: the machine's files and devices, DUMPDEV, DUMPDIR's files, the saved dumps. */
export function lkcdProtected(root: MachineRoot, conf: Pick<SysconfigDump, 'DUMPDEV' | 'DUMPDIR'>): ProtectedPath[] {
  // The most specific first: the first match names what the output would have replaced.
  return [
    { path: conf.DUMPDEV, what: 'the dump device (DUMPDEV)' },
    ...dumpDirFiles(conf.DUMPDIR),
    ...savedDumpDirs(conf.DUMPDIR),
    ...root.outputProtected(),
  ];
}

/** Reads etc/sysconfig/dump, writing the default file first when there is none. */
export function loadSysconfig(file: string, root: string, release: string | null, opts: { createDefault?: boolean } = {}): SysconfigDump {
  if (!fs.existsSync(file)) {
    if (opts.createDefault === false || release === null) return parseSysconfig(defaultSysconfig(release ?? ''), file, root, release);
    writeFileAtomic(file, defaultSysconfig(release), 0o600);
  }
  const text = readRegularFile(file, SYSCONFIG_MAX_BYTES, 'dump configuration').toString('utf8');
  return parseSysconfig(text, file, root, release);
}

/** DUMPDIR: in the root, not among the machine's files, a directory if it exists, its own files in the root too. */
function checkDumpDir(root: MachineRoot, dir: string, where: string): void {
  refuseProtected(dir, root.ownFiles(), where, 'the dump directory');
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) throw new DumpError('IO', `${where}: ${dir} is ${fileKind(st)}, not a directory`, { file: dir });
  for (const f of dumpDirFiles(dir)) {
    const at = resolvePath(f.path, where);
    if (!isWithin(at, root.dir)) throw new UsageError(`${where}: ${f.path} is a link to ${at}, outside the machine root ${root.dir}`, { file: f.path });
  }
}

/** Checks every value of a sysconfig text; errors name the file, line and key. */
export function parseSysconfig(text: string, file: string, root: string, release: string | null): SysconfigDump {
  const kv = parseAssignments(text, file);
  const get = (key: string, fallback?: string): { value: string; where: string } => {
    const e = kv.get(key);
    if (!e) {
      if (fallback === undefined) throw new UsageError(`${file}: ${key} is not set`, { file, field: key });
      return { value: fallback, where: `${file}: ${key}` };
    }
    return { value: e.value, where: `${file}:${e.line}: ${key}` };
  };
  const bool = (key: string, fallback: string): boolean => {
    const { value, where } = get(key, fallback);
    if (value !== '0' && value !== '1') throw new UsageError(`${where}=${value} must be 0 or 1`, { file, field: key });
    return value === '1';
  };
  const int = (key: string, fallback: string, allowed?: number[]): number => {
    const { value, where } = get(key, fallback);
    if (!/^(0x[0-9a-f]+|\d+)$/i.test(value)) throw new UsageError(`${where}=${value} is not a number`, { file, field: key });
    const n = Number(value);
    if (!Number.isSafeInteger(n) || (allowed && !allowed.includes(n))) {
      throw new UsageError(`${where}=${value} is not one of ${allowed?.join(', ')}`, { file, field: key });
    }
    return n;
  };
  const level = int('DUMP_LEVEL', '8', LEVELS);
  const flagsEntry = get('DUMP_FLAGS', '0x80000002');
  if (!/^0x[0-9a-f]+$/i.test(flagsEntry.value)) throw new UsageError(`${flagsEntry.where}=${flagsEntry.value} must be a hex number (e.g. 0x80000002)`, { file, field: 'DUMP_FLAGS' });
  const flags = Number(flagsEntry.value);
  if (flags > 0xffffffff || (flags & ~DUMP_FLAGS_KNOWN) >>> 0 !== 0) throw new UsageError(`${flagsEntry.where}=${flagsEntry.value} has bits no dump driver knows`, { file, field: 'DUMP_FLAGS' });
  const panicTimeout = int('PANIC_TIMEOUT', '5');
  if (panicTimeout > 3600) throw new UsageError(`${get('PANIC_TIMEOUT').where}=${panicTimeout} is more than 3600 seconds`, { file, field: 'PANIC_TIMEOUT' });
  // Without a running kernel (the query commands) there is no release to default KEXEC_IMAGE to.
  const kexecImage = get('KEXEC_IMAGE', release === null ? '' : `/boot/vmlinuz-${release}`);
  const dumpdev = get('DUMPDEV', '/dev/vmdump');
  const dumpdir = get('DUMPDIR', '/log/dump');
  const cmdline = get('KEXEC_CMDLINE', 'root=/dev/vda1 ro console=ttyS0,115200');
  if (/(^|\s)crashdump=/.test(cmdline.value)) throw new UsageError(`${cmdline.where} must not contain crashdump= (lkcd config adds it)`, { file, field: 'KEXEC_CMDLINE' });
  const machine = new MachineRoot(resolvePath(root, `machine root ${root}`));

  const DUMPDIR = pathInRoot(machine.dir, dumpdir.value, dumpdir.where);
  checkDumpDir(machine, DUMPDIR, dumpdir.where);
  const DUMPDEV = pathInRoot(machine.dir, dumpdev.value, dumpdev.where);
  refuseProtected(DUMPDEV, [
    ...machine.ownFiles(), ...dumpDirFiles(DUMPDIR), ...savedDumpDirs(DUMPDIR), { path: DUMPDIR, what: 'DUMPDIR' },
  ], dumpdev.where, 'the dump device');
  refuseSpecialFile(DUMPDEV, dumpdev.where, { allowBlockDevice: true });
  let KEXEC_IMAGE = '';
  if (kexecImage.value !== '') {
    KEXEC_IMAGE = pathInRoot(machine.dir, kexecImage.value, kexecImage.where);
    refuseProtected(KEXEC_IMAGE, [
      ...machine.ownFiles().filter((p) => p.path !== machine.bootDir), ...dumpDirFiles(DUMPDIR), { path: DUMPDEV, what: 'the dump device (DUMPDEV)' },
    ], kexecImage.where, 'a kernel image');
    refuseSpecialFile(KEXEC_IMAGE, kexecImage.where);
  }
  return {
    DUMP_ACTIVE: bool('DUMP_ACTIVE', '1'),
    DUMPDEV,
    DUMPDIR,
    DUMP_SAVE: bool('DUMP_SAVE', '1'),
    DUMP_LEVEL: level === DUMP_LEVEL_ALL ? DUMP_LEVEL_ALL_RAM : level,
    DUMP_COMPRESS: int('DUMP_COMPRESS', String(DUMP_COMPRESS_GZIP), [0, 1, 2]) as DumpCompress,
    DUMP_FLAGS: flags,
    PANIC_TIMEOUT: panicTimeout,
    KEXEC_IMAGE,
    KEXEC_CMDLINE: cmdline.value,
    DUMP_KEEP: int('DUMP_KEEP', '0'),
  };
}

export function wantsSoftboot(c: SysconfigDump): boolean {
  return (c.DUMP_FLAGS & DUMP_FLAGS_SOFTBOOT) !== 0 && c.KEXEC_IMAGE !== '';
}

