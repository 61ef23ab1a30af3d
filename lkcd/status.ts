/**
 * `lkcd status`, like kdumpctl status and dumpadm with no options: whether a
 * crash now would give an LKCD dump (armed) and, when not, every reason;
 * the settings in force in the running kernel, the kexec kernel preloaded
 * with crashdump=, a dump held in memory or left unsaved on the device with
 * the next step to take, DUMPDIR's usage, and what the other designs
 * (kdump, fadump, pstore) have set up on this machine.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DumpError, hex } from '../src/codec/index.js';
import { readState, type MachineRoot } from '../src/machine/index.js';
import {
  closeSystem, crashkernelRegion, fadumpStatus, kexecCrashLoaded, kexecLoaded, openSystem, Sysfs, type SysfsFile,
} from '../src/kernel/index.js';
import {
  BlockDevice, dumpLevelMask, DUMP_FLAGS_NONDISRUPT, DUMP_FLAGS_SOFTBOOT, DUMP_STATE_ARMED, dumpAwaitingWriteout, findDeviceDump, readBlock,
  readDeviceMark, readDumpConfig,
} from '../src/dump/index.js';
import { Kernel } from '../src/kernel/index.js';
import { DumpIndex, INDEX_FILE } from '../src/store/index.js';
import { loadSysconfig, type SysconfigDump } from './sysconfig.js';
import { dumpDirNumbers } from './save.js';

/** Most DUMPDIR entries walked to add up its usage. */
const MAX_USAGE_ENTRIES = 200_000;

const LEVEL_NAMES: Record<number, string> = { 0: 'DUMP_LEVEL_NONE', 1: 'DUMP_LEVEL_HEADER', 2: 'DUMP_LEVEL_KERN', 4: 'DUMP_LEVEL_USED', 8: 'DUMP_LEVEL_ALL_RAM' };
const COMPRESS_NAMES = ['DUMP_COMPRESS_NONE', 'DUMP_COMPRESS_RLE', 'DUMP_COMPRESS_GZIP'];

/** What `lkcd status --json` prints: addresses as 0x strings, counts as numbers. */
export interface LkcdStatus {
  root: string;
  machine: 'running' | 'powered off';
  release: string | null;
  armed: boolean;
  /** Why a crash now would not give an LKCD dump; empty when armed. */
  not_armed: string[];
  /** The running kernel's dump driver (/proc/sys/kernel/dump/*), or null when the machine is off. */
  driver: { active: boolean; level: number | null; level_mask: number; level_name: string; compress: number; compress_name: string; flags: string; config_block: string | null } | null;
  /** etc/sysconfig/dump's DUMPDEV and DUMPDIR, as paths on this host. */
  dumpdev: string;
  dumpdir: string;
  /** The kernel kexec -l loaded (what a soft boot boots), with the crashdump= it carries. */
  kexec: { loaded: boolean; release: string | null; cmdline: string | null; crashdump: string | null };
  /** A dump held in memory, waiting for `lkcd config` to write it out. */
  pending: { addr: string; live: boolean; next: string } | null;
  /** The dump on DUMPDEV: whether `lkcd save` saved it. */
  device: { dump: boolean; saved_as: number | null; panic_string: string | null; time_sec: number | null; next: string | null; error: string | null };
  /** DUMPDIR: bytes of its files, saved dumps (index rows, else DUMPDIR/N directories). */
  saved: { dumps: number; bytes: number };
  /** The other designs' setup on this machine. */
  others: {
    kdump_panic_kernel: string | null;
    crashkernel: string | null;
    fadump: 'not enabled' | 'registered' | 'not registered' | 'dump active';
    pstore_records: number | null;
  };
}

/** Bytes of the regular files under dir (bounded walk; links not followed). */
function usage(dir: string): number {
  let total = 0;
  let seen = 0;
  const walk = (d: string): void => {
    let names: fs.Dirent[];
    try { names = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of names) {
      if (++seen > MAX_USAGE_ENTRIES) return;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) total += fs.statSync(p).size;
    }
  };
  walk(dir);
  return total;
}

function savedDumps(dumpdir: string): number {
  if (!fs.existsSync(path.join(dumpdir, INDEX_FILE))) return dumpDirNumbers(dumpdir).length;
  const index = DumpIndex.open(dumpdir, { readonly: true });
  try {
    return Math.max(index.listDumps().length, dumpDirNumbers(dumpdir).length);
  } finally { index.close(); }
}

/** The dump on DUMPDEV, and whether the mark `lkcd save` leaves says it was saved (matched by the dump's header). */
function deviceState(conf: SysconfigDump): LkcdStatus['device'] {
  const none = { dump: false, saved_as: null, panic_string: null, time_sec: null, next: null, error: null };
  if (!fs.existsSync(conf.DUMPDEV)) return none;
  let dev: BlockDevice;
  try {
    dev = BlockDevice.open(conf.DUMPDEV);
  } catch (e) {
    return { ...none, error: e instanceof Error ? e.message : String(e) };
  }
  try {
    const found = findDeviceDump(dev);
    if (!found) return none;
    const h = found.header;
    const mark = readDeviceMark(dev);
    let savedAs: number | null = null;
    if (mark?.state === 'saved' && fs.existsSync(path.join(conf.DUMPDIR, INDEX_FILE))) {
      // The mark names N; it is this dump when N's row has its time and panic (hashing the device would take seconds).
      const index = DumpIndex.open(conf.DUMPDIR, { readonly: true });
      try {
        const rec = index.getDump(mark.n);
        if (rec && rec.time_sec === Number(h.dh_time.tv_sec) && rec.time_usec === Number(h.dh_time.tv_usec) && rec.panic_string === h.dh_panic_string) savedAs = mark.n;
      } finally { index.close(); }
    }
    return {
      dump: true, saved_as: savedAs, panic_string: h.dh_panic_string, time_sec: Number(h.dh_time.tv_sec),
      next: savedAs === null ? 'lkcd save' : null, error: null,
    };
  } catch (e) {
    if (e instanceof DumpError && ['CORRUPT', 'TRUNCATED', 'UNSUPPORTED', 'IO'].includes(e.code)) return { ...none, error: e.message };
    throw e;
  } finally {
    dev.close();
  }
}

/** The crashdump= word of a command line, or null. */
function crashdumpOf(cmdline: string): string | null {
  return /(?:^|\s)crashdump=(\S+)/.exec(cmdline)?.[1] ?? null;
}

/** Reads the machine, its dump configuration, DUMPDEV and DUMPDIR; changes nothing. */
export function lkcdStatus(root: MachineRoot): LkcdStatus {
  const state = readState(root);
  if (!state) throw new DumpError('NOINPUT', `no machine at ${root.dir} (run 'machine power-on' first)`, { file: root.statePath });
  const conf = loadSysconfig(root.sysconfigPath, root.dir, null, { createDefault: false });
  const why: string[] = [];
  const st: LkcdStatus = {
    root: root.dir, machine: state.power === 'on' && state.cpu ? 'running' : 'powered off', release: null, armed: false, not_armed: why,
    driver: null, dumpdev: conf.DUMPDEV, dumpdir: conf.DUMPDIR,
    kexec: { loaded: false, release: null, cmdline: null, crashdump: null },
    pending: null, device: deviceState(conf), saved: { dumps: savedDumps(conf.DUMPDIR), bytes: usage(conf.DUMPDIR) },
    others: { kdump_panic_kernel: null, crashkernel: null, fadump: 'not enabled', pstore_records: null },
  };
  if (st.machine !== 'running') {
    why.push('the machine is powered off');
    return st;
  }
  const sys = openSystem(root, { readOnly: true });
  try {
    const kernel = sys.kernel;
    st.release = kernel.release;
    const cfg = readDumpConfig(kernel);
    // The driver keeps the level as its page-class mask (dumpLevelMask); DUMP_LEVEL is the level giving it.
    const levelKey = Object.keys(LEVEL_NAMES).map(Number).find((l) => dumpLevelMask(l) === cfg.level);
    const level = levelKey ?? null;
    const blockState = cfg.dump_addr !== 0n ? readBlock(kernel.ram, Kernel.__pa(cfg.dump_addr)).state : null;
    st.driver = {
      active: cfg.active !== 0, level, level_mask: cfg.level, level_name: level === null ? `mask 0x${cfg.level.toString(16)}` : LEVEL_NAMES[level],
      compress: cfg.compress, compress_name: COMPRESS_NAMES[cfg.compress] ?? String(cfg.compress), flags: hex(cfg.flags),
      config_block: cfg.dump_addr !== 0n ? hex(cfg.dump_addr) : null,
    };
    const loaded = kexecLoaded(kernel);
    if (loaded) st.kexec = { loaded: true, release: loaded.image.release, cmdline: loaded.image.cmdline, crashdump: crashdumpOf(loaded.image.cmdline) };
    const pending = dumpAwaitingWriteout(kernel);
    if (pending) st.pending = { addr: hex(pending.addr), live: pending.live, next: 'lkcd config' };
    const crash = kexecCrashLoaded(kernel);
    const region = crashkernelRegion(kernel);
    const fadump = fadumpStatus(kernel);
    const sysfs = new Sysfs(kernel);
    st.others = {
      kdump_panic_kernel: crash ? crash.image.release : null,
      crashkernel: region ? `${hex(region.start)}-${hex(region.end - 1n)}` : null,
      fadump: fadump === null ? 'not enabled' : fadump.dumpActive ? 'dump active' : fadump.registered ? 'registered' : 'not registered',
      pstore_records: sysfs.exists('fs/pstore') ? sysfs.list('fs/pstore').filter((e): e is SysfsFile => e.kind === 'file').length : null,
    };
    // In the order panic() meets them (src/dump/crash.ts): fadump, then kdump, then the LKCD driver, then the restart.
    if (fadump?.registered) why.push('fadump is registered: the firmware takes the crash before the LKCD driver runs');
    if (crash) why.push(`kdump's panic kernel ${crash.image.release} is loaded: crash_kexec takes the crash before the LKCD driver runs (kexec -p -u to unload it)`);
    if (cfg.dump_addr === 0n) why.push('the dump driver is not configured (run lkcd config)');
    else if (!cfg.active && !pending) why.push('dumping is disabled (DUMP_ACTIVE=0 when lkcd config last ran)');
    if (pending) why.push(`a dump held in memory at ${hex(pending.addr)} awaits writeout: no new dump is taken until lkcd config writes it out`);
    else if (blockState !== null && blockState !== DUMP_STATE_ARMED) why.push(`the dump config block at ${hex(cfg.dump_addr)} holds a dump (run lkcd config)`);
    if (cfg.dump_addr !== 0n && !(cfg.flags & DUMP_FLAGS_NONDISRUPT)) {
      // Stage 1 saves in place; only a kernel booted with crashdump= of this block finds the dump again.
      if (!loaded) {
        why.push(`no kernel is loaded for the soft boot: a panic would reboot through the firmware and lose the dump${cfg.flags & DUMP_FLAGS_SOFTBOOT ? '' : ' (DUMP_FLAGS_SOFTBOOT is not set)'}`);
      } else if (st.kexec.crashdump === null) {
        why.push('the loaded kexec kernel has no crashdump= on its command line: it would not find the dump (run lkcd config)');
      } else if (st.kexec.crashdump.toLowerCase() !== hex(cfg.dump_addr)) {
        why.push(`the loaded kexec kernel has crashdump=${st.kexec.crashdump}, not the config block at ${hex(cfg.dump_addr)} (run lkcd config)`);
      }
    }
    st.armed = why.length === 0;
    return st;
  } finally {
    closeSystem(sys);
  }
}

const utc = (sec: number): string => `${new Date(sec * 1000).toISOString().replace('T', ' ').slice(0, 19)} UTC`;

/** The text of `lkcd status`: one fact a line, "key: value", then the next steps. */
export function lkcdStatusText(s: LkcdStatus): string {
  const rows: Array<[string, string]> = [['lkcd', s.armed ? 'armed: a crash now gives an LKCD dump' : 'NOT armed']];
  for (const w of s.not_armed) rows.push(['not armed', w]);
  rows.push(['machine', `${s.machine}${s.release ? `, Linux ${s.release}` : ''} (${s.root})`]);
  if (s.driver) {
    rows.push(
      ['dump level', `${s.driver.level ?? '?'} (${s.driver.level_name}, page-class mask 0x${s.driver.level_mask.toString(16)})`],
      ['compression', `${s.driver.compress} (${s.driver.compress_name})`],
      ['flags', s.driver.flags],
      ['config block', s.driver.config_block ?? 'none'],
    );
  }
  rows.push(['device', s.dumpdev]);
  rows.push(['kexec', s.kexec.loaded ? `${s.kexec.release} loaded, crashdump=${s.kexec.crashdump ?? '(none)'}` : 'no kernel loaded']);
  rows.push(['in memory', s.pending ? `a ${s.pending.live ? 'live ' : ''}dump at ${s.pending.addr} awaits writeout: run ${s.pending.next}` : 'no dump held']);
  const d = s.device;
  rows.push(['on device', d.error ? `unreadable: ${d.error}` : !d.dump ? 'no dump'
    : d.saved_as !== null ? `the dump of ${utc(d.time_sec!)} ("${d.panic_string}"), saved as ${d.saved_as}`
      : `an UNSAVED dump of ${utc(d.time_sec!)} ("${d.panic_string}"): run ${d.next}`]);
  rows.push(['dumpdir', `${s.dumpdir}: ${s.saved.dumps} saved dump${s.saved.dumps === 1 ? '' : 's'}, ${s.saved.bytes} bytes`]);
  const o = s.others;
  rows.push(['kdump', o.kdump_panic_kernel ? `panic kernel ${o.kdump_panic_kernel} loaded${o.crashkernel ? ` in ${o.crashkernel}` : ''}` : `no panic kernel loaded${o.crashkernel ? ` (crashkernel region ${o.crashkernel})` : ''}`]);
  rows.push(['fadump', o.fadump]);
  rows.push(['pstore', o.pstore_records === null ? 'no backend' : `${o.pstore_records} record${o.pstore_records === 1 ? '' : 's'} in /sys/fs/pstore${o.pstore_records ? ' (lkcd pstore save)' : ''}`]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padStart(w)}: ${v}`).join('\n') + '\n';
}

/**
 * The one-line warning `lkcd save` prints when a dump is held in memory:
 * save copies what is on the device, and the dump in memory is not there
 * until `lkcd config` writes it out. Null when none is held (or the machine is off).
 */
export function heldDumpWarning(root: MachineRoot): string | null {
  const state = readState(root);
  if (!state || state.power !== 'on' || !state.cpu) return null;
  const sys = openSystem(root, { readOnly: true });
  try {
    const p = dumpAwaitingWriteout(sys.kernel);
    return p ? `a dump held in memory at ${hex(p.addr)} awaits writeout: lkcd save copies only the dump device; run lkcd config first, then lkcd save` : null;
  } finally {
    closeSystem(sys);
  }
}

/** The running kernel's release, or null when the machine is off or absent (KEXEC_IMAGE has no default then). */
export function runningRelease(root: MachineRoot): string | null {
  const state = readState(root);
  if (!state || state.power !== 'on' || !state.cpu) return null;
  const sys = openSystem(root, { readOnly: true });
  try {
    return sys.kernel.release;
  } finally {
    closeSystem(sys);
  }
}
