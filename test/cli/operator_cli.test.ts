/**
 * The operator's view (issue 9) through the built CLIs, one 16 MiB machine
 * taken through its states in order: a new root (empty states are not
 * errors), powered on and not configured, armed, disarmed by kexec, a dump
 * held in memory, an unsaved dump on the device, saved, powered off.
 * `lkcd status` is checked against what other commands and files say:
 * /proc/sys/kernel/dump/addr, `kexec -s`, DUMPDIR's files summed here,
 * `lkcd list`; `kexec -S` against kexec-tools' own --help text.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, expectCleanFailure, EX_NOINPUT, EX_USAGE, REPO, runTool, type RunResult } from '../helpers/cli.js';
import { needs, runTool as runRealTool } from '../helpers/tools.js';

/** lkcd status: not armed (src/cli/exit.ts NOT_ARMED). */
const NOT_ARMED = 7;
/** kexec -S: a kernel of the type is loaded (kexec-tools' k_status()). */
const KEXEC_S_LOADED = 1;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-operator-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const root = path.join(tmp, 'm');
const DUMPDIR = path.join(root, 'log', 'dump');
const DUMPDEV = path.join(root, 'dev', 'vmdump');

const lkcd = (args: string[]): RunResult => runTool('lkcd', root, args);
const ok = (r: RunResult): string => {
  expect(r.stderr, r.stdout).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
};

interface StatusJson {
  armed: boolean; not_armed: string[]; machine: string;
  driver: { level: number | null; compress: number; config_block: string | null } | null;
  kexec: { loaded: boolean; crashdump: string | null };
  pending: { addr: string; next: string } | null;
  device: { dump: boolean; saved_as: number | null; panic_string: string | null; next: string | null };
  saved: { dumps: number; bytes: number };
  others: { kdump_panic_kernel: string | null; fadump: string; pstore_records: number | null };
}

/** lkcd status --json, asserting its exit status: 0 when armed, 7 with one stderr line naming the first reason when not. */
function status(): StatusJson {
  const r = lkcd(['status', '--json']);
  const s = JSON.parse(r.stdout) as StatusJson;
  if (s.armed) {
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  } else {
    expectCleanFailure(r, 'lkcd', NOT_ARMED, 'not armed: ', s.not_armed[0]);
  }
  return s;
}

function filesBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += fs.statSync(path.join(e.parentPath, e.name)).size;
  }
  return n;
}

beforeAll(() => { ensureBuilt(); });

describe('a new root: empty states are not errors', () => {
  it('lkcd list prints an empty list (exit 0; [] with --json); search and pstore list too', () => {
    expect(ok(lkcd(['list']))).toBe(`no dumps in ${DUMPDIR}\n`);
    expect(ok(lkcd(['list', '--json']))).toBe('[]\n');
    expect(ok(lkcd(['search', '--json', 'anything']))).toBe('[]\n');
    expect(ok(lkcd(['pstore', 'list', '--json']))).toBe('[]\n');
  });

  it('lkcd status and lkcd save without a machine name the root they used (66)', () => {
    expectCleanFailure(lkcd(['status']), 'lkcd', EX_NOINPUT, `no machine at ${root}`);
    expectCleanFailure(lkcd(['save']), 'lkcd', EX_NOINPUT, `no machine at ${root}`);
  });

  it('--version on every CLI prints the package version', () => {
    const version = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    for (const tool of ['lkcd', 'machine', 'kexec', 'kdumpctl'] as const) {
      expect(ok(runTool(tool, root, ['--version']))).toBe(`${tool} (lkcd-softboot) ${version}\n`);
    }
    const start = spawnSync(process.execPath, [path.join(REPO, 'dist', 'lkcd', 'start.js'), '--version'], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
    expect([start.status, start.stdout, start.stderr]).toEqual([0, `npm start (lkcd-softboot) ${version}\n`, '']);
  });

  it('an unknown command is one line with the nearest command', () => {
    expectCleanFailure(lkcd(['confgi']), 'lkcd', EX_USAGE, "unknown command 'confgi' (did you mean 'config'?)");
    expectCleanFailure(lkcd(['xyzzy']), 'lkcd', EX_USAGE, "unknown command 'xyzzy'; the commands are: status, estimate, rm, map, config, save,");
    expectCleanFailure(runTool('machine', root, ['pwer-off']), 'machine', EX_USAGE, "unknown command 'pwer-off' (did you mean 'power-off'?)");
    expectCleanFailure(runTool('kdumpctl', root, ['stats']), 'kdumpctl', EX_USAGE, "(did you mean 'status'?)");
  });
});

describe('one machine through its states', () => {
  let release = '';
  beforeAll(() => {
    ok(runTool('machine', root, ['power-on', '--mem', '16M', '--profile', 'idle', '--seed', '3']));
    release = fs.readdirSync(path.join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'))!.slice('vmlinuz-'.length);
  });

  it('powered on, not configured: lkcd save has nothing to save (exit 0); status says why it is not armed (7)', () => {
    expect(ok(lkcd(['save']))).toBe(`lkcd save: no dump on ${DUMPDEV}: it does not exist yet (lkcd config creates it)\n`);
    const s = status();
    expect(s.armed).toBe(false);
    expect(s.not_armed).toEqual(['the dump driver is not configured (run lkcd config)']);
    const text = lkcd(['status']);
    expect(text.status).toBe(NOT_ARMED);
    expect(text.stdout).toMatch(/^ +lkcd: NOT armed$/m);
    expect(text.stdout).toMatch(/^ +not armed: the dump driver is not configured \(run lkcd config\)$/m);
  });

  it('after lkcd config: armed (0), crashdump= of the kexec kernel equal to /proc/sys/kernel/dump/addr and to kexec -s', () => {
    ok(lkcd(['config']));
    const s = status();
    expect(s.armed).toBe(true);
    const addr = ok(runTool('machine', root, ['proc', 'sys/kernel/dump/addr'])).trim();
    expect(s.driver!.config_block).toBe(addr);
    expect(s.kexec.crashdump).toBe(addr);
    expect(ok(runTool('kexec', root, ['-s']))).toContain(`crashdump=${addr}`);
    const k = JSON.parse(ok(runTool('kexec', root, ['-s', '--json']))) as { kexec_loaded: boolean; image: { crashdump: string; release: string } };
    expect(k.kexec_loaded).toBe(true);
    expect(k.image).toMatchObject({ crashdump: addr, release });
    // The level and compression etc/sysconfig/dump gives by default (DUMP_LEVEL=8, DUMP_COMPRESS=2).
    expect(s.driver).toMatchObject({ level: 8, compress: 2 });
    expect(s.others).toEqual({ kdump_panic_kernel: null, crashkernel: null, fadump: 'not enabled', pstore_records: null });
  });

  it('kexec -S exits 1 when a kernel of the type is loaded, 0 when not, printing nothing; -l asks about the kexec kernel', () => {
    const s = runTool('kexec', root, ['-S']);
    expect([s.status, s.stdout, s.stderr]).toEqual([0, '', '']); // no panic kernel
    const l = runTool('kexec', root, ['-S', '-l']);
    expect([l.status, l.stdout, l.stderr]).toEqual([KEXEC_S_LOADED, '', '']);
  });

  needs('kexec').it('kexec -S follows kexec-tools\' documented status option', () => {
    const help = runRealTool('kexec', ['--help'], 30);
    expect(`${help.stdout}${help.stderr}`.replace(/\s+/g, ' ')).toContain('-S, --status Return 1 if the type (by default crash) is loaded, 0 if not.');
  });

  it('kexec -u disarms it (7, why); kexec -l /boot/vmlinuz-... (the path inside the machine) with the wrong crashdump= too', () => {
    ok(runTool('kexec', root, ['-u']));
    let s = status();
    expect(s.not_armed).toEqual(['no kernel is loaded for the soft boot: a panic would reboot through the firmware and lose the dump']);
    const l = runTool('kexec', root, ['-l', `/boot/vmlinuz-${release}`, '--command-line=root=/dev/vda1 crashdump=0x1234']);
    expect(ok(l)).toMatch(new RegExp(`^kexec: loaded ${release.replace(/\./g, '\\.')} `));
    s = status();
    expect(s.not_armed).toEqual([`the loaded kexec kernel has crashdump=0x1234, not the config block at ${s.driver!.config_block} (run lkcd config)`]);
    expectCleanFailure(runTool('kexec', root, ['-l', '/boot/vmlinuz-none']), 'kexec', EX_NOINPUT, `/boot/vmlinuz-none: no such file in the machine (${root}/boot/vmlinuz-none)`);
    ok(lkcd(['config']));
    expect(status().armed).toBe(true);
  });

  it('a panic: the dump held in memory is shown with its next step; lkcd save warns in one line, power-off refuses (64)', () => {
    expect(ok(runTool('machine', root, ['panic', 'operator test: first']))).toContain('kexec: booted');
    const s = status();
    expect(s.pending).toMatchObject({ next: 'lkcd config' });
    expect(s.not_armed).toEqual([`a dump held in memory at ${s.pending!.addr} awaits writeout: no new dump is taken until lkcd config writes it out`]);
    const save = lkcd(['save']);
    expect(save.status).toBe(0);
    expect(save.stderr).toBe(`lkcd: warning: a dump held in memory at ${s.pending!.addr} awaits writeout: lkcd save copies only the dump device; run lkcd config first, then lkcd save\n`);
    expectCleanFailure(runTool('machine', root, ['power-off']), 'machine', EX_USAGE, `a dump held in memory at ${s.pending!.addr}`, 'machine power-off --force');
  });

  it('written out: the unsaved dump on the device is shown with lkcd save as the next step; once saved, its N, and DUMPDIR\'s usage', () => {
    ok(lkcd(['config']));
    let s = status();
    expect(s.armed).toBe(true);
    expect(s.pending).toBeNull();
    expect(s.device).toMatchObject({ dump: true, saved_as: null, panic_string: 'operator test: first', next: 'lkcd save' });
    expect(ok(lkcd(['status']))).toMatch(/^ +on device: an UNSAVED dump of .* \("operator test: first"\): run lkcd save$/m);
    ok(lkcd(['save']));
    s = status();
    expect(s.device).toMatchObject({ dump: true, saved_as: 0, next: null });
    const listed = JSON.parse(ok(lkcd(['list', '--json']))) as unknown[];
    expect(s.saved).toEqual({ dumps: listed.length, bytes: filesBytes(DUMPDIR) });
    expect(listed).toHaveLength(1);
  });

  it('power-off --force warns in one line; a powered-off machine is not armed', () => {
    ok(runTool('machine', root, ['panic', 'operator test: second']));
    const off = runTool('machine', root, ['power-off', '--force']);
    expect(off.status).toBe(0);
    expect(off.stderr).toMatch(/^machine: warning: a dump held in memory at 0x[0-9a-f]+ awaits writeout \(lkcd config writes it to the dump device\): lost by this power-off \(--force\)\n$/);
    const s = status();
    expect(s.machine).toBe('powered off');
    expect(s.not_armed).toEqual(['the machine is powered off']);
  });
});


describe('lkcd config --show: every effective setting and where it came from', () => {
  const croot = path.join(tmp, 'config');
  const file = path.join(croot, 'etc', 'sysconfig', 'dump');
  beforeAll(() => { ok(runTool('machine', croot, ['power-on', '--mem', '16M', '--profile', 'idle'])); });

  it('before lkcd config writes the file: every setting is the default', () => {
    const lines = ok(runTool('lkcd', croot, ['config', '--show'])).split('\n');
    expect(lines[0]).toBe(`# ${file} does not exist yet: every setting is the default (lkcd config writes it)`);
    expect(lines[5]).toMatch(/^DUMP_LEVEL=8 +# default$/);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('each key names its file:line; an edited value and its line; an unknown key is warned with the key it may mean', () => {
    ok(runTool('lkcd', croot, ['config']));
    // The file as written, edited as an admin would: the level lowered in place, a misspelt key appended.
    const text = fs.readFileSync(file, 'utf8').replace(/^DUMP_LEVEL=8$/m, 'DUMP_LEVEL=2').concat('DUMP_LEVL=4\nDUMPKEEP=3\nFROBNICATE=1\n');
    fs.writeFileSync(file, text);
    const lineOf = (re: RegExp): number => text.split('\n').findIndex((l) => re.test(l)) + 1;
    const r = runTool('lkcd', croot, ['config', '--show', '--json']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe([
      `lkcd: warning: ${file}:${lineOf(/^DUMP_LEVL=/)}: unknown key DUMP_LEVL (did you mean DUMP_LEVEL?): ignored`,
      `lkcd: warning: ${file}:${lineOf(/^DUMPKEEP=/)}: unknown key DUMPKEEP (did you mean DUMP_KEEP?): ignored`,
      `lkcd: warning: ${file}:${lineOf(/^FROBNICATE=/)}: unknown key FROBNICATE: ignored`,
      '',
    ].join('\n'));
    const shown = JSON.parse(r.stdout) as { settings: Array<{ key: string; value: string; effective: unknown; from: string }> };
    // Every key the file sets, with the line it is on, parsed here from the file itself.
    for (const s of shown.settings) {
      const at = lineOf(new RegExp(`^${s.key}=`));
      expect(s.from, s.key).toBe(at > 0 ? `${file}:${at}` : 'default');
    }
    expect(shown.settings.find((s) => s.key === 'DUMP_LEVEL')).toEqual({ key: 'DUMP_LEVEL', value: '2', effective: 2, from: `${file}:${lineOf(/^DUMP_LEVEL=/)}` });
    expect(shown.settings.find((s) => s.key === 'DUMPDIR')!.effective).toBe(path.join(croot, 'log', 'dump'));
    // lkcd config itself warns the same way before it works.
    const c = runTool('lkcd', croot, ['config']);
    expect(c.status).toBe(0);
    expect(c.stderr.split('\n').filter(Boolean)).toHaveLength(3);
    expect(c.stdout).toMatch(/^dump: reconfigured: level 0x3,/m);
  });

  it('--json without --show is a usage error', () => {
    expectCleanFailure(runTool('lkcd', croot, ['config', '--json']), 'lkcd', EX_USAGE, '--json goes with --show');
  });
});

/**
 * lkcd estimate against the dump taken right after it, on the same machine: the pages must be the
 * ones the dump holds (the estimate counts mem_map; the dump is what stage 1 wrote), the size on
 * the device within ESTIMATE_BYTES_ERROR of dump.N (only the sampled compression is an estimate),
 * and a level the estimate says will not be complete gives a TRUNCATED dump missing those pages.
 */
const ESTIMATE_BYTES_ERROR = 0.05;

interface EstimateJson {
  frames: number; dumper_frames: number;
  classes: Array<{ class: string; makedumpfile: string; frames: number; zero: number }>;
  levels: Array<{ level: number; pages: number; complete: boolean; dropped: string[]; missing_pages: number; device_bytes: number }>;
}
interface ListedDump { pages: number; stored_bytes: number; state: string; missing_pages: number }

describe.each([
  { profile: 'database', mem: '64M', seed: '5', compress: '2', complete: true },
  { profile: 'fileserver', mem: '32M', seed: '9', compress: '2', complete: true },
  // Uncompressed, all RAM does not fit in the room a full machine leaves: the estimate must say so.
  { profile: 'random', mem: '32M', seed: '2', compress: '0', complete: false },
])('lkcd estimate, then the dump: $profile $mem, DUMP_COMPRESS=$compress', ({ profile, mem, seed, compress, complete }) => {
  const eroot = path.join(tmp, `estimate-${profile}`);
  const run = (tool: 'lkcd' | 'machine', args: string[]): string => ok(runTool(tool, eroot, args));
  it('pages exactly, bytes on the device within 5%, complete or not as predicted', () => {
    run('machine', ['power-on', '--mem', mem, '--profile', profile, '--seed', seed]);
    run('lkcd', ['config']);
    const file = path.join(eroot, 'etc', 'sysconfig', 'dump');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/^DUMP_COMPRESS=2$/m, `DUMP_COMPRESS=${compress}`));
    run('lkcd', ['config']);
    const e = JSON.parse(run('lkcd', ['estimate', '--json'])) as EstimateJson;
    // Every frame is in one class or the dumper's; the makedumpfile names are makedumpfile's -d classes.
    expect(e.classes.reduce((t, c) => t + c.frames, 0) + e.dumper_frames).toBe(e.frames);
    expect(new Set(e.classes.map((c) => c.makedumpfile))).toEqual(new Set(['KERN_DATA', 'NON_PRI_CACHE', 'USER', 'FREE']));
    const one = JSON.parse(run('lkcd', ['estimate', '--level', '8', '--json'])) as EstimateJson;
    expect(one.levels.map((l) => l.level)).toEqual([8]);
    const est = one.levels[0];
    expect(est.complete).toBe(complete);
    runTool('machine', eroot, ['panic', `estimate ${profile}`]);
    const cfg = runTool('lkcd', eroot, ['config']);
    const save = runTool('lkcd', eroot, ['save']);
    expect(save.status).toBe(complete ? 0 : 3);
    const [d] = JSON.parse(run('lkcd', ['list', '--json'])) as ListedDump[];
    const size = fs.statSync(path.join(eroot, 'log', 'dump', '0', 'dump.0')).size;
    expect(d.stored_bytes).toBe(size);
    const pageErr = d.pages - est.pages;
    const byteErr = (est.device_bytes - size) / size;
    // The figures the README quotes.
    console.log(`estimate ${profile} ${mem} compress=${compress}: pages est ${est.pages} actual ${d.pages} (${pageErr}); bytes est ${est.device_bytes} actual ${size} (${(byteErr * 100).toFixed(2)}%); missing est ${est.missing_pages} actual ${d.missing_pages}`);
    expect(cfg.status).toBe(complete ? 0 : 3);
    expect(d.state).toBe(complete ? 'complete' : 'truncated');
    expect(d.missing_pages).toBe(est.missing_pages);
    expect(pageErr).toBe(0);
    expect(Math.abs(byteErr)).toBeLessThan(ESTIMATE_BYTES_ERROR);
    if (!complete) {
      // lkcd show lists the missing ranges (0x PFNs) the index holds for the dump, by reason.
      const shown = JSON.parse(run('lkcd', ['show', '0', '--json'])) as { ranges: Array<{ start_pfn: number | string; end_pfn: number | string; reason: string }> };
      const dropped = shown.ranges.filter((r) => r.reason === 'pass-dropped');
      const pfns = dropped.reduce((t, r) => t + Number(r.end_pfn) - Number(r.start_pfn), 0);
      expect(pfns).toBe(est.missing_pages);
      const line = /^ +pass dropped: pfn (.*)$/m.exec(run('lkcd', ['show', '0']))![1];
      const want = dropped.slice(0, 64).map((r) => (Number(r.end_pfn) - Number(r.start_pfn) === 1 ? `0x${Number(r.start_pfn).toString(16)}` : `0x${Number(r.start_pfn).toString(16)}-0x${(Number(r.end_pfn) - 1).toString(16)}`));
      expect(line).toBe(`${want.join(', ')}${dropped.length > 64 ? `, ... (${dropped.length} ranges)` : ''}`);
    }
  });
});

describe('dumps at a glance: signatures, groups, lkcd rm, DUMP_KEEP, lkcd show in 0x', () => {
  const groot = path.join(tmp, 'glance');
  const dumpdir = path.join(groot, 'log', 'dump');
  const run = (tool: 'lkcd' | 'machine', args: string[]): string => ok(runTool(tool, groot, args));
  interface Row { n: number; signature: string; signature_text: string; time_sec: number; panic_string: string }
  const list = (): Row[] => JSON.parse(run('lkcd', ['list', '--json'])) as Row[];
  const bounds = (): string => fs.readFileSync(path.join(dumpdir, 'bounds'), 'utf8');
  beforeAll(() => {
    run('machine', ['power-on', '--mem', '16M', '--profile', 'idle', '--seed', '4']);
    run('lkcd', ['config']);
    for (const m of ['glance: same', 'glance: same', 'glance: other', 'glance: same']) {
      runTool('machine', groot, ['panic', m]);
      run('lkcd', ['config']);
      run('lkcd', ['save']);
    }
  });

  it('lkcd list shows each dump\'s signature: equal for the same panic, different for another', () => {
    const rows = list();
    expect(rows.map((r) => r.panic_string)).toEqual(['glance: same', 'glance: same', 'glance: other', 'glance: same']);
    expect(new Set([rows[0], rows[1], rows[3]].map((r) => r.signature)).size).toBe(1);
    expect(rows[2].signature).not.toBe(rows[0].signature);
    const text = run('lkcd', ['list']).split('\n');
    expect(text[0]).toMatch(/ SIGNATURE +PANIC$/);
    for (const r of rows) expect(text[r.n + 1]).toMatch(new RegExp(`^ +${r.n} .*  ${r.signature}  ${r.panic_string}$`));
  });

  it('lkcd list --group: one line per signature, with the count, the first and the last', () => {
    const rows = list();
    const groups = JSON.parse(run('lkcd', ['list', '--group', '--json'])) as Array<{ signature: string; count: number; dumps: number[]; first: { n: number }; last: { n: number } }>;
    expect(groups.map((g) => [g.signature, g.count, g.dumps, g.first.n, g.last.n])).toEqual([
      [rows[0].signature, 3, [0, 1, 3], 0, 3],
      [rows[2].signature, 1, [2], 2, 2],
    ]);
    const text = run('lkcd', ['list', '--group']).split('\n').filter(Boolean);
    expect(text).toHaveLength(3);
    expect(text[1]).toMatch(new RegExp(`^${rows[0].signature} +3 +0  \\d{4}-\\d\\d-\\d\\d \\S+ +3  \\d{4}-.*  ${rows[0].signature_text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  });

  it('lkcd show prints the dump header\'s addresses and flags in 0x hex', () => {
    const out = run('lkcd', ['show', '0']);
    for (const k of ['dh_magic_number', 'dh_memory_start', 'dh_memory_end', 'dh_current_task', 'dh_dump_flags', 'dh_dump_device']) {
      expect(new RegExp(`^ *${k}: (.*)$`, 'm').exec(out)![1], k).toMatch(/^0x[0-9a-f]+/);
    }
  });

  it('lkcd rm N removes DUMPDIR/N and its rows, leaves bounds; reindex agrees; a second rm is 66', () => {
    const before = bounds();
    expect(run('lkcd', ['rm', '1'])).toMatch(/^lkcd rm: removed dump 1 \(5 files, \d+ bytes\); the next dump is still 4\n$/);
    expect(fs.existsSync(path.join(dumpdir, '1'))).toBe(false);
    expect(fs.readdirSync(dumpdir).filter((f) => f.startsWith('.removing'))).toEqual([]);
    expect(list().map((r) => r.n)).toEqual([0, 2, 3]);
    expect(bounds()).toBe(before);
    expectCleanFailure(runTool('lkcd', groot, ['show', '1']), 'lkcd', EX_NOINPUT, `no dump 1 in ${dumpdir}`);
    expectCleanFailure(runTool('lkcd', groot, ['rm', '1']), 'lkcd', EX_NOINPUT, `no dump 1 in ${dumpdir}`);
    // The index says what DUMPDIR holds: rebuilt from the directories alone, it lists the same dumps.
    run('lkcd', ['reindex']);
    expect(list().map((r) => r.n)).toEqual([0, 2, 3]);
  });

  it('DUMP_KEEP=2: after the next save only the newest two dumps remain, and the numbers go on', () => {
    const file = path.join(groot, 'etc', 'sysconfig', 'dump');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/^DUMP_KEEP=0$/m, 'DUMP_KEEP=2'));
    runTool('machine', groot, ['panic', 'glance: kept']);
    run('lkcd', ['config']);
    const lines = run('lkcd', ['save']).split('\n').filter(Boolean);
    expect(lines[0]).toMatch(/^lkcd save: saved dump 4 to /);
    // After the save's own lines (the device dumps kernel 2 took), the removals, oldest first.
    const removed = lines.slice(1).filter((l) => !/^lkcd save: dump 4 carries \d+ device dumps?/.test(l));
    expect(removed.map((l) => /^lkcd save: DUMP_KEEP=2: removed dump (\d+) /.exec(l)?.[1])).toEqual(['0', '2']);
    expect(list().map((r) => r.n)).toEqual([3, 4]);
    expect(fs.readdirSync(dumpdir).filter((f) => /^\d+$/.test(f)).sort()).toEqual(['3', '4']);
    expect(bounds().trim()).toBe('5');
  });
});

/**
 * lkcd map: the SVG parsed by a real XML parser (python's xml.etree), its cells counted per
 * fate and per page class, against lkcd show's frame accounting (saved, dumper, not selected,
 * missing), the index's compressed pages, and lkcd analyze's page types (read by another path).
 */
const python = needs('/usr/bin/python3');
describe('lkcd map: a picture of where every frame went', () => {
  const mroot = path.join(tmp, 'map');
  const run = (args: string[]): string => ok(runTool('lkcd', mroot, args));
  beforeAll(() => {
    ok(runTool('machine', mroot, ['power-on', '--mem', '32M', '--profile', 'database', '--seed', '6']));
    run(['config']);
    const file = path.join(mroot, 'etc', 'sysconfig', 'dump');
    // Level 4: the free frames are not selected, so the map has more than one fate.
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/^DUMP_LEVEL=8$/m, 'DUMP_LEVEL=4'));
    run(['config']);
    runTool('machine', mroot, ['panic', 'map test']);
    run(['config']);
    run(['save']);
  });

  python.it('the SVG parses as XML; its cells per fate and per class equal lkcd show\'s and lkcd analyze\'s counts', () => {
    const svg = path.join(tmp, 'map.svg');
    expect(run(['map', '0', '-o', svg])).toBe(`${svg}: the map of dump 0 (8192 frames)\n`);
    expect(fs.statSync(svg).mode & 0o777).toBe(0o600);
    const script = [
      'import sys, json, xml.etree.ElementTree as ET',
      'root = ET.parse(sys.argv[1]).getroot()',
      'out = {"fate": {}, "class": {}}',
      'for r in root.iter("{http://www.w3.org/2000/svg}rect"):',
      '    for k in ("fate", "class"):',
      '        v = r.get("data-" + k)',
      '        if v: out[k][v] = out[k].get(v, 0) + int(r.get("data-frames"))',
      'print(json.dumps(out))',
    ].join('\n');
    const parsed = runRealTool('/usr/bin/python3', ['-c', script, svg], 60);
    expect(parsed.stderr).toBe('');
    const cells = JSON.parse(parsed.stdout) as { fate: Record<string, number>; class: Record<string, number> };
    const f = (k: string): number => cells.fate[k] ?? 0;
    const show = run(['show', '0']);
    const num = (k: string): number => Number(new RegExp(`^ *${k}: (\\d+)`, 'm').exec(show)![1]);
    expect(f('saved-compressed') + f('saved-raw')).toBe(num('saved'));
    expect(f('dumper')).toBe(num('dumper'));
    expect(f('not-selected') + f('boot-region')).toBe(num('not selected'));
    expect(Object.entries(cells.fate).filter(([k]) => k.startsWith('missing-')).reduce((t, [, v]) => t + v, 0)).toBe(num('missing'));
    expect(f('damaged')).toBe(num('damaged'));
    const listed = (JSON.parse(run(['list', '--json'])) as Array<{ pages_compressed: number }>)[0];
    expect(f('saved-compressed')).toBe(listed.pages_compressed);
    const analyze = run(['analyze', '0']);
    for (const t of ['free', 'reserved', 'slab', 'kernel', 'cache', 'anon']) {
      expect(cells.class[t] ?? 0, t).toBe(Number(new RegExp(`^  ${t} +(\\d+) `, 'm').exec(analyze)![1]));
    }
    expect(Object.values(cells.fate).reduce((a, b) => a + b, 0)).toBe(8192);
  });

  it('--text gives the same counts as ASCII strips; a map needs -o or --text (64)', () => {
    const text = run(['map', '0', '--text']);
    const show = run(['show', '0']);
    const saved = Number(/^ *saved: (\d+)/m.exec(show)![1]);
    const c = Number(/# saved-compressed (\d+)/.exec(text)![1]);
    const r = Number(/R saved-raw (\d+)/.exec(text)?.[1] ?? 0);
    expect(c + r).toBe(saved);
    const strip = text.split('what happened:\n')[1].split('\n').filter((l) => /^ +0x[0-9a-f]+ /.test(l));
    expect(strip.length).toBeGreaterThan(0);
    for (const l of strip) expect(l).toMatch(/^ +0x[0-9a-f]+ [#Rd.XFPMV?b]{1,64}$/);
    expectCleanFailure(runTool('lkcd', mroot, ['map', '0']), 'lkcd', EX_USAGE, 'give -o FILE.svg, or --text');
  });
});

describe('progress and npm start', () => {
  const sroot = fs.mkdtempSync('/tmp/lkst-');
  afterAll(() => fs.rmSync(sroot, { recursive: true, force: true }));

  needs('script').it('stage 1 draws a progress bar on a terminal (script(1) gives it one), and nothing when not on one', () => {
    const proot = path.join(tmp, 'progress');
    ok(runTool('machine', proot, ['power-on', '--mem', '32M', '--profile', 'database']));
    ok(runTool('lkcd', proot, ['config']));
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LKCD_') && k !== 'NODE_OPTIONS') env[k] = v;
    const cmd = `${process.execPath} ${path.join(REPO, 'dist', 'src', 'cli', 'machine.js')} --root ${proot} panic tty`;
    const tty = spawnSync('timeout', ['120', 'script', '-qec', cmd, '/dev/null'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
    expect(tty.stdout).toMatch(/\rdump: stage 1 \[#{30}\] 100% [\d.]+s\r?\n/);
    expect(tty.stdout).toContain('kexec: booted');
    // Not on a terminal: no bar at all, on either stream.
    ok(runTool('lkcd', proot, ['config']));
    const piped = runTool('machine', proot, ['panic', 'piped'], { LKCD_NO_PROGRESS: '0' });
    expect(piped.status).toBe(0);
    expect(`${piped.stdout}${piped.stderr}`).not.toContain('stage 1 [');
  });

  it('npm start: every line fits 80 columns, and the map of the dump it made is where it says', () => {
    const r = spawnSync(process.execPath, [path.join(REPO, 'dist', 'lkcd', 'start.js'), '--root', sroot, '--mem', '32M', '--profile', 'database', '--seconds', '1'], {
      cwd: REPO, encoding: 'utf8', env: { ...process.env, LKCD_NO_PROGRESS: '1' }, timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const long = r.stdout.split('\n').filter((l) => l.length > 80);
    expect(long).toEqual([]);
    const map = /^ {2}map {7}(\S+)$/m.exec(r.stdout)![1];
    expect(map).toBe(path.join(sroot, 'tmp', 'lkcd-map.0.svg'));
    expect(fs.readFileSync(map, 'utf8')).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    // A shell command folded over lines ends each but the last with a backslash, the rest indented.
    const next = r.stdout.split('Next:\n')[1].split('\n');
    next.forEach((l, i) => { if (l.endsWith(' \\')) expect(next[i + 1]).toMatch(/^ {4}\S/); });
    expect(next.join('\n').replace(/ \\\n {4}/g, ' ')).toContain(`export 0 --elf -o /tmp/vmcore-0 && crash --log /tmp/vmcore-0`);
  });

  it('npm start\'s prestart does not rebuild when dist/ is newer than every source', () => {
    const cli = path.join(REPO, 'dist', 'lkcd', 'main.js');
    const before = fs.statSync(cli).mtimeMs;
    const r = spawnSync(process.execPath, [path.join(REPO, 'scripts', 'build-if-stale.mjs')], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    expect([r.status, r.stdout, r.stderr]).toEqual([0, '', '']);
    expect(fs.statSync(cli).mtimeMs).toBe(before);
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.prestart).toBe('node scripts/build-if-stale.mjs');
  });
});

describe('--json: numbers as numbers, addresses as 0x strings, the field names of lkcd show --json', () => {
  const jroot = path.join(tmp, 'json');
  const run = (tool: 'lkcd' | 'machine', args: string[]): string => ok(runTool(tool, jroot, args));
  beforeAll(() => {
    run('machine', ['power-on', '--mem', '16M', '--profile', 'idle', '--seed', '8']);
    run('lkcd', ['config']);
    const saveNone = JSON.parse(run('lkcd', ['save', '--json'])) as { n: number | null; lines: string[] };
    expect(saveNone).toEqual({ n: null, lines: [`lkcd save: no dump on ${path.join(jroot, 'dev', 'vmdump')}`], removed: 0, degraded: null });
    runTool('machine', jroot, ['panic', 'json test']);
    run('lkcd', ['config']);
    const saved = JSON.parse(run('lkcd', ['save', '--json'])) as { n: number; lines: string[] };
    expect(saved.n).toBe(0);
    expect(saved.lines[0]).toMatch(/^lkcd save: saved dump 0 to /);
  });

  it('lkcd analyze --json: the record\'s fields under show\'s names, registers and addresses in 0x, page types equal to the text report', () => {
    const a = JSON.parse(run('lkcd', ['analyze', '0', '--json'])) as Record<string, unknown> & { regs: Record<string, string>; tasks: Array<{ pid: number; address: string; comm: string }>; page_types: Record<string, number> };
    const shown = JSON.parse(run('lkcd', ['show', '0', '--json'])) as { record: Record<string, unknown> };
    for (const k of ['n', 'panic_string', 'time_sec', 'host', 'release', 'pages', 'pages_compressed', 'stored_bytes', 'state', 'checksum', 'missing_pages', 'damaged_pages']) {
      expect(a[k], k).toEqual(shown.record[k]);
    }
    for (const v of Object.values(a.regs)) expect(v).toMatch(/^0x[0-9a-f]+$/);
    expect(a.current_task).toMatch(/^0x[0-9a-f]+$/);
    const text = run('lkcd', ['analyze', '0']);
    for (const [t, n] of Object.entries(a.page_types)) expect(Number(new RegExp(`^  ${t} +(\\d+) `, 'm').exec(text)![1]), t).toBe(n);
    for (const t of a.tasks) expect(text).toMatch(new RegExp(`^ +${t.pid} +\\S+ +${t.address} +\\[?${t.comm.replace(/[/]/g, '\\/')}\\]?$`, 'm'));
  });

  it('lkcd verify --json says what the text says', () => {
    const v = JSON.parse(run('lkcd', ['verify', '0', '--json'])) as { n: number; state: string; checksum: string; line: string; damaged_pfns: string[] };
    expect(v).toMatchObject({ n: 0, state: 'complete', checksum: 'verified', damaged_pfns: [] });
    expect(`${v.line}\n`).toBe(run('lkcd', ['verify', '0']));
  });

  it('machine ps --json lists the tasks machine ps prints, addresses in 0x', () => {
    const tasks = JSON.parse(run('machine', ['ps', '--json'])) as Array<{ pid: number; state: string; address: string; comm: string; kernel_thread: boolean }>;
    const rows = run('machine', ['ps']).split('\n').slice(1).filter(Boolean);
    expect(tasks.map((t) => `${String(t.pid).padStart(6)}  ${t.state}  ${t.address.padEnd(18)}  ${t.kernel_thread ? `[${t.comm}]` : t.comm}`)).toEqual(rows);
  });
});
