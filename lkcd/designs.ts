/**
 * The flows of `npm start -- --design kdump|fadump` on one machine, as an
 * admin would run them with kdump-utils: power on (crashkernel= or
 * fadump=on), kdumpctl start, the workload, a panic, kdumpctl save in the
 * capture boot (vmcore-dmesg, the real makedumpfile, then the final
 * action). `--design lkcd` is lkcd/start.ts's own flow.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DegradedResult, UsageError } from '../src/codec/index.js';
import { type MachineRoot } from '../src/machine/index.js';
import {
  closeSystem, defaultCmdline, configForRam, fadumpStatus, kexecCrashSize, openSystem, powerOn, runWorkload, type RunningSystem,
} from '../src/kernel/index.js';
import { crashMachine, kdumpCompressedFormat, openDump } from '../src/dump/index.js';
import { loadKdumpConf } from '../kexec/kdump_conf.js';
import { kdumpSave, type SaveResult } from '../kexec/kdump_save.js';
import { kdumpctlStart } from '../kexec/kdumpctl_ops.js';

export type Design = 'lkcd' | 'kdump' | 'fadump';
export const DESIGNS: readonly Design[] = ['lkcd', 'kdump', 'fadump'];

/** crashkernel= of the kdump flow: enough for the simulated capture kernel (about 4.3 MiB plus 1/64 of the region). */
export const KDUMP_FLOW_CRASHKERNEL = '32M';

export interface DesignFlowOptions {
  mem: bigint;
  profile: string;
  seed: number;
  seconds: number;
  message: string;
  onNote?: (line: string) => void;
}

export interface DesignFlowResult {
  design: Exclude<Design, 'lkcd'>;
  /** Bytes the design keeps from the running system while healthy (crashkernel= region, fadump's area). */
  reservedBytes: bigint;
  /** What kdumpctl start said. */
  armLines: string[];
  /** What the crash printed on the console. */
  crashLines: string[];
  save: SaveResult;
  /** What kdumpctl save printed. */
  saveLines: string[];
  /** The saved vmcore: pages makedumpfile kept, its size, its compression, the dump level. */
  vmcore: { file: string; pages: number; memoryPages: bigint; bytes: number; compression: string; level: number };
}

type Step = <T>(name: string, fn: () => T) => T;

/** The command line of each design's first boot. */
export function designCmdline(design: Exclude<Design, 'lkcd'>, mem: bigint): string {
  const base = defaultCmdline(configForRam(mem).release);
  return design === 'kdump' ? `${base} crashkernel=${KDUMP_FLOW_CRASHKERNEL}` : `${base} fadump=on`;
}

function withSystem<T>(root: MachineRoot, fn: (sys: RunningSystem) => T): T {
  const sys = openSystem(root);
  try { return fn(sys); } finally { closeSystem(sys); }
}

/** Runs the kdump or fadump flow, each step timed by `step`. */
export function runDesignFlow(root: MachineRoot, design: Exclude<Design, 'lkcd'>, opts: DesignFlowOptions, step: Step): DesignFlowResult {
  const cmdline = designCmdline(design, opts.mem);
  step(`power on (${design === 'kdump' ? `crashkernel=${KDUMP_FLOW_CRASHKERNEL}` : 'fadump=on'})`, () => closeSystem(powerOn(root, {
    mem: opts.mem, profile: opts.profile, seed: opts.seed, cmdline, onNote: opts.onNote,
  })));
  const reservedBytes = withSystem(root, (sys) => {
    if (design === 'kdump') return kexecCrashSize(sys.kernel);
    const f = fadumpStatus(sys.kernel);
    if (!f?.reserved) throw new UsageError('fadump reserved no memory at boot (see machine dmesg)');
    return f.reserved.end - f.reserved.start;
  });
  const armLines: string[] = [];
  step(design === 'kdump' ? 'kdumpctl start (kexec -p)' : 'kdumpctl start (register fadump)', () => kdumpctlStart(root, (l) => armLines.push(l)));
  step(`workload runs ${opts.seconds} s`, () => withSystem(root, (sys) => runWorkload(sys, opts.seconds)));
  const crashLines = step(design === 'kdump' ? 'panic: crash_kexec, capture kernel boots in the region' : 'panic: crash_fadump, firmware copies boot memory and restarts', () => {
    const sys = openSystem(root);
    const o = crashMachine(sys, { kind: 'panic', message: opts.message });
    closeSystem(o.system);
    if (o.after !== design) throw new UsageError(`the panic ended in a ${o.after}, not a ${design} capture boot: ${o.console.join('; ')}`);
    return o.console;
  });
  const saveLines: string[] = [];
  const save = step('kdumpctl save (vmcore-dmesg, makedumpfile, final action)', () => {
    const conf = loadKdumpConf(root);
    const sys = openSystem(root);
    let r: SaveResult;
    try {
      r = kdumpSave(sys, conf, (l) => saveLines.push(l));
    } catch (e) {
      try { closeSystem(sys); } catch { /* the first error is the one to report */ }
      throw e;
    }
    if (r.system) closeSystem(r.system);
    if (!r.saved) throw new DegradedResult('DUMP_LOST', `kdumpctl save: the core collector '${conf.coreCollector.join(' ')}' failed (exit ${r.exitcode}); failure_action ${r.action} ran`);
    return r;
  });
  const file = path.join(save.dir, 'vmcore');
  const dump = openDump(file, {}, [kdumpCompressedFormat]);
  try {
    const a = dump.attrs;
    return {
      design, reservedBytes, armLines, crashLines, save, saveLines,
      vmcore: {
        file, pages: Number(a['dump.pages']), memoryPages: BigInt(a['dump.memory_pages'] ?? 0), bytes: fs.statSync(file).size,
        compression: String(a['dump.compression']), level: Number(a['dump.level']),
      },
    };
  } finally {
    dump.close();
  }
}
