import fs from 'node:fs';
import path from 'node:path';
import { ioError, UsageError } from '../codec/index.js';
import { ensureDir, fsyncDir, PlatformFirmware, type MachineRoot } from '../machine/index.js';
import { closeSystem, normaliseSysPath, openSystem, Sysfs, type SysfsEntry } from '../kernel/index.js';

/** ls -l style permission string. */
function modeString(e: SysfsEntry): string {
  if (e.kind === 'file' && e.link !== undefined) return 'lrwxrwxrwx';
  const bits = ['r', 'w', 'x'];
  let s = e.kind === 'dir' ? 'd' : '-';
  for (let i = 8; i >= 0; i--) s += e.mode & (1 << i) ? bits[(8 - i) % 3] : '-';
  return s;
}

function timeString(sec: bigint): string {
  return new Date(Number(sec) * 1000).toISOString().replace('T', ' ').slice(0, 19);
}

/** `machine sys ls PATH`: one line per entry, "MODE SIZE MTIME(UTC) NAME", a directory's name ending in "/", a link's followed by " -> TARGET". */
export function sysLsText(entries: readonly SysfsEntry[]): string {
  return entries.map((e) => `${modeString(e)} ${String(e.kind === 'file' ? e.size : 0).padStart(8)} ${timeString(e.mtimeSec)} ${e.name}${e.kind === 'dir' ? '/' : ''}${e.kind === 'file' && e.link !== undefined ? ` -> ${e.link}` : ''}\n`).join('');
}

/**
 * Writes a /sys subtree (fs/pstore by default) as real files under DIR,
 * at the same relative paths, with the sysfs modes and mtimes, so real
 * tools can read it: `systemd-pstore DIR/fs/pstore ARCHIVE`. Directories
 * are 0700; each file is written aside, fsynced and renamed into place.
 */
export function sysExport(sysfs: Sysfs, sub: string, dir: string): string[] {
  const rel = normaliseSysPath(sub);
  const top = sysfs.lookup(rel);
  if (top.kind !== 'dir') throw new UsageError(`export /sys/${rel}: Not a directory`);
  const written: string[] = [];
  const walk = (p: string): void => {
    const target = path.join(dir, p);
    ensureDir(target, 0o700);
    for (const e of sysfs.list(p)) {
      const child = p === '' ? e.name : `${p}/${e.name}`;
      if (e.kind === 'dir') { walk(child); continue; }
      // A write-only attribute (fadump_release_mem) has nothing to read.
      if ((e.mode & 0o444) === 0) continue;
      const file = path.join(target, e.name);
      const tmp = path.join(target, `.${e.name}.tmp-${process.pid}`);
      try {
        const fd = fs.openSync(tmp, 'w', 0o600);
        try {
          fs.writeFileSync(fd, e.read());
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
        fs.chmodSync(tmp, e.mode);
        const t = Number(e.mtimeSec) + e.mtimeNsec / 1e9;
        fs.utimesSync(tmp, t, t);
        fs.renameSync(tmp, file);
      } catch (err) {
        fs.rmSync(tmp, { force: true });
        throw ioError(`exporting /sys/${child}`, err as NodeJS.ErrnoException);
      }
      written.push(file);
    }
    fsyncDir(target);
  };
  walk(rel);
  return written;
}

/** `machine sys ACTION [PATH] [VALUE]`, run in the running kernel. */
export function runSys(root: MachineRoot, action: string, p: string | undefined, value: string | undefined, out: (s: string | Uint8Array) => void): void {
  const writes = action === 'rm' || action === 'write';
  const sys = openSystem(root, { readOnly: !writes });
  try {
    const sysfs = new Sysfs(sys.kernel, undefined, { firmware: new PlatformFirmware(sys.root, sys.ram) });
    switch (action) {
      case 'ls':
        out(sysLsText(sysfs.list(p ?? '')));
        break;
      case 'cat':
        if (p === undefined) throw new UsageError('sys cat: name a file (e.g. fs/pstore/dmesg-ramoops-0)');
        out(sysfs.read(p));
        break;
      case 'rm':
        if (p === undefined) throw new UsageError('sys rm: name a file');
        sysfs.unlink(p);
        sys.ram.flush();
        break;
      case 'write':
        if (p === undefined || value === undefined) throw new UsageError('sys write: give a file and a value');
        sysfs.write(p, value);
        sys.ram.flush();
        break;
      case 'export': {
        if (p === undefined) throw new UsageError('sys export: give a directory (and optionally a /sys path, default fs/pstore)');
        const written = sysExport(sysfs, value ?? 'fs/pstore', p);
        out(`exported ${written.length} file${written.length === 1 ? '' : 's'} of /sys/${normaliseSysPath(value ?? 'fs/pstore')} to ${path.join(p, normaliseSysPath(value ?? 'fs/pstore'))}\n`);
        break;
      }
      default:
        throw new UsageError(`sys: unknown action '${action}' (ls, cat, rm, write, export)`);
    }
  } finally {
    closeSystem(sys);
  }
}
