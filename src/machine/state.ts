import { CorruptDumpError, DumpError } from '../codec/index.js';
import { readHardwareFile, writeHardwareFile } from './hardware.js';
import type { MachineRoot } from './root.js';

/** The hardware file under lib/machine/ that holds MachineState. */
export const STATE_FILE = 'state.json';

/**
 * What hardware holds outside RAM, and nothing more: whether power is on,
 * how much RAM is fitted, and two CPU registers (CR3 and the address the
 * boot CPU jumped to). Which kernel runs, its log, its allocator: all in RAM.
 */
export interface MachineState {
  version: 1;
  power: 'on' | 'off';
  ram_bytes: bigint;
  cpu: { cr3: bigint; kernel_base: bigint } | null;
}

interface MachineStateJson {
  version: 1;
  power: 'on' | 'off';
  ram_bytes: string;
  cpu: { cr3: string; kernel_base: string } | null;
}

export function readState(root: MachineRoot): MachineState | null {
  const raw = readHardwareFile(root, STATE_FILE);
  if (raw === null) return null;
  const text = raw.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CorruptDumpError(`${root.statePath}: not valid JSON`, { file: root.statePath });
  }
  const bad = (what: string): never => {
    throw new CorruptDumpError(`${root.statePath}: ${what}`, { file: root.statePath });
  };
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) bad('not a JSON object');
  const j = parsed as Partial<MachineStateJson>;
  if (j.version !== 1) bad(`unsupported version ${JSON.stringify(j.version)}`);
  if (j.power !== 'on' && j.power !== 'off') bad(`power is ${JSON.stringify(j.power)}, expected "on" or "off"`);
  if (typeof j.ram_bytes !== 'string' || !/^\d+$/.test(j.ram_bytes)) bad(`ram_bytes ${JSON.stringify(j.ram_bytes)} is not a decimal byte count`);
  const addr = (name: string, v: unknown): bigint => {
    if (typeof v !== 'string' || !/^0x[0-9a-f]{1,16}$/i.test(v)) bad(`cpu.${name} ${JSON.stringify(v)} is not a hex address`);
    return BigInt(v as string);
  };
  let cpu: MachineState['cpu'] = null;
  if (j.cpu !== null && j.cpu !== undefined) {
    if (typeof j.cpu !== 'object') bad('cpu is not an object');
    cpu = { cr3: addr('cr3', j.cpu.cr3), kernel_base: addr('kernel_base', j.cpu.kernel_base) };
  }
  return { version: 1, power: j.power!, ram_bytes: BigInt(j.ram_bytes!), cpu };
}

export function writeState(root: MachineRoot, s: MachineState): void {
  const j: MachineStateJson = {
    version: 1,
    power: s.power,
    ram_bytes: s.ram_bytes.toString(),
    cpu: s.cpu ? { cr3: `0x${s.cpu.cr3.toString(16)}`, kernel_base: `0x${s.cpu.kernel_base.toString(16)}` } : null,
  };
  // Within the running step, if any: a kill before it commits puts the old state back with RAM.
  writeHardwareFile(root, STATE_FILE, JSON.stringify(j, null, 2) + '\n');
}

/** The state of a machine that must be running, or a one-line error. */
export function requireRunning(root: MachineRoot): MachineState & { cpu: NonNullable<MachineState['cpu']> } {
  const s = readState(root);
  if (!s) throw new DumpError('NOINPUT', `no machine at ${root.dir} (run 'machine power-on' first)`, { file: root.statePath });
  if (s.power !== 'on' || !s.cpu) throw new DumpError('USAGE', `the machine at ${root.dir} is powered off (run 'machine power-on')`);
  return s as MachineState & { cpu: NonNullable<MachineState['cpu']> };
}
