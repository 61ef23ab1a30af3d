/**
 * `lkcd config --show`, like lkcd_config -q, kdump-config show and dumpadm
 * with no options: every effective setting of etc/sysconfig/dump and where
 * it came from (file:line, or the default), and a warning for each key the
 * file sets that nothing reads, with the nearest known key when it is a
 * near miss (DUMP_LEVL -> DUMP_LEVEL).
 */
import fs from 'node:fs';
import { readRegularFile, type MachineRoot } from '../src/machine/index.js';
import { didYouMean } from '../src/cli/usage.js';
import {
  defaultSysconfig, parseAssignments, parseSysconfig, SYSCONFIG_KEYS, SYSCONFIG_MAX_BYTES, type SysconfigDump,
} from './sysconfig.js';

export interface ShownSetting {
  key: string;
  /** The value as written (or the default's text). */
  value: string;
  /** What it means once checked: a path resolved inside the machine root, a number. */
  effective: string | number | boolean;
  /** `FILE:LINE`, or `default`. */
  from: string;
}

export interface ShownConfig {
  file: string;
  exists: boolean;
  settings: ShownSetting[];
  /** One line per key nothing reads, naming file:line and the key it may mean. */
  warnings: string[];
}

/** The warnings for keys etc/sysconfig/dump sets that are not settings. */
export function unknownKeyWarnings(text: string, file: string): string[] {
  const out: string[] = [];
  for (const [key, { line }] of parseAssignments(text, file)) {
    if ((SYSCONFIG_KEYS as readonly string[]).includes(key)) continue;
    const near = didYouMean(key, SYSCONFIG_KEYS);
    out.push(`${file}:${line}: unknown key ${key}${near ? ` (did you mean ${near}?)` : ''}: ignored`);
  }
  return out;
}

/** The unknown-key warnings of the machine's etc/sysconfig/dump; none when it does not exist yet. */
export function sysconfigWarnings(root: MachineRoot): string[] {
  const file = root.sysconfigPath;
  if (!fs.existsSync(file)) return [];
  return unknownKeyWarnings(readRegularFile(file, SYSCONFIG_MAX_BYTES, 'dump configuration').toString('utf8'), file);
}

/** What etc/sysconfig/dump sets, checked as every command checks it; `release` gives KEXEC_IMAGE's default. */
export function showSysconfig(root: MachineRoot, release: string | null): ShownConfig {
  const file = root.sysconfigPath;
  const exists = fs.existsSync(file);
  const text = exists ? readRegularFile(file, SYSCONFIG_MAX_BYTES, 'dump configuration').toString('utf8') : '';
  const conf: SysconfigDump = parseSysconfig(exists ? text : defaultSysconfig(release ?? ''), file, root.dir, release);
  const given = exists ? parseAssignments(text, file) : new Map<string, { value: string; line: number }>();
  const defaults = parseAssignments(defaultSysconfig(release ?? ''), 'default');
  const settings = SYSCONFIG_KEYS.map((key): ShownSetting => {
    const g = given.get(key);
    const eff = conf[key];
    return {
      key,
      // KEXEC_IMAGE defaults to the running kernel's image: with none running there is no default.
      value: g ? g.value : key === 'KEXEC_IMAGE' && release === null ? '' : (defaults.get(key)?.value ?? ''),
      effective: key === 'DUMP_FLAGS' ? `0x${(eff as number).toString(16)}` : eff,
      from: g ? `${file}:${g.line}` : 'default',
    };
  });
  return { file, exists, settings, warnings: exists ? unknownKeyWarnings(text, file) : [] };
}

/** The text: `KEY=value` aligned, then what it means when that differs, then where it came from. */
export function showSysconfigText(c: ShownConfig): string {
  const w = Math.max(...c.settings.map((s) => `${s.key}=${s.value}`.length));
  const lines = c.settings.map((s) => {
    const kv = `${s.key}=${s.value}`;
    const eff = String(s.effective === true ? 1 : s.effective === false ? 0 : s.effective);
    return `${kv.padEnd(w)}  # ${s.from}${eff !== s.value ? `; ${eff}` : ''}`;
  });
  if (!c.exists) lines.unshift(`# ${c.file} does not exist yet: every setting is the default (lkcd config writes it)`);
  return lines.join('\n') + '\n';
}
