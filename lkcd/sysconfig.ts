import fs from 'node:fs';
import path from 'node:path';
import { ioError, UsageError } from '../src/codec/index.js';
import { writeFileAtomic } from '../src/machine/index.js';
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
}

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

/**
 * Resolves a path from the config inside the machine root, refusing any
 * that would leave it (an absolute path is taken relative to the root).
 */
export function pathInRoot(root: string, value: string, where: string): string {
  if (value === '') throw new UsageError(`${where} is empty`);
  if (value.includes('\0')) throw new UsageError(`${where} contains a NUL byte`);
  const resolved = path.resolve(root, '.' + path.posix.normalize('/' + value));
  const rel = path.relative(root, resolved);
  if (rel.startsWith('..') || path.isAbsolute(rel) || value.split('/').includes('..')) {
    throw new UsageError(`${where} '${value}' leaves the machine root`);
  }
  return resolved;
}

/** Reads etc/sysconfig/dump, writing the default file first when there is none. */
export function loadSysconfig(file: string, root: string, release: string, opts: { createDefault?: boolean } = {}): SysconfigDump {
  if (!fs.existsSync(file)) {
    if (opts.createDefault === false) return parseSysconfig(defaultSysconfig(release), file, root, release);
    writeFileAtomic(file, defaultSysconfig(release), 0o600);
  }
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw ioError('reading dump configuration', e as NodeJS.ErrnoException);
  }
  return parseSysconfig(text, file, root, release);
}

/** Checks every value of a sysconfig text; errors name the file, line and key. */
export function parseSysconfig(text: string, file: string, root: string, release: string): SysconfigDump {
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
  const kexecImage = get('KEXEC_IMAGE', `/boot/vmlinuz-${release}`);
  const dumpdev = get('DUMPDEV', '/dev/vmdump');
  const dumpdir = get('DUMPDIR', '/log/dump');
  const cmdline = get('KEXEC_CMDLINE', 'root=/dev/vda1 ro console=ttyS0,115200');
  if (/(^|\s)crashdump=/.test(cmdline.value)) throw new UsageError(`${cmdline.where} must not contain crashdump= (lkcd config adds it)`, { file, field: 'KEXEC_CMDLINE' });
  return {
    DUMP_ACTIVE: bool('DUMP_ACTIVE', '1'),
    DUMPDEV: pathInRoot(root, dumpdev.value, dumpdev.where),
    DUMPDIR: pathInRoot(root, dumpdir.value, dumpdir.where),
    DUMP_SAVE: bool('DUMP_SAVE', '1'),
    DUMP_LEVEL: level === DUMP_LEVEL_ALL ? DUMP_LEVEL_ALL_RAM : level,
    DUMP_COMPRESS: int('DUMP_COMPRESS', String(DUMP_COMPRESS_GZIP), [0, 1, 2]) as DumpCompress,
    DUMP_FLAGS: flags,
    PANIC_TIMEOUT: panicTimeout,
    KEXEC_IMAGE: kexecImage.value === '' ? '' : pathInRoot(root, kexecImage.value, kexecImage.where),
    KEXEC_CMDLINE: cmdline.value,
  };
}

export function wantsSoftboot(c: SysconfigDump): boolean {
  return (c.DUMP_FLAGS & DUMP_FLAGS_SOFTBOOT) !== 0 && c.KEXEC_IMAGE !== '';
}

