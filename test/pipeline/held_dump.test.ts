/**
 * A pending dump survives the default flow (issue 8, item 2 and 3), and a
 * crash that loses the dump says so (exit 6 DUMP_LOST).
 *
 * - `power-on --mem 64M; lkcd config; machine panic first; machine panic
 *   second; lkcd config; lkcd save`: kernel 2 reloads kexec with the image
 *   and crashdump= the dump was armed with (recorded in the config block),
 *   so the second panic kexecs into a kernel that finds the first dump, and
 *   the saved dump equals RAM before the first panic (truth taken on a twin
 *   of the machine panicked in-process with the beforeDump hook).
 * - `kexec -l --reuse-cmdline` drops only BOOT_IMAGE= (kexec-tools), keeping
 *   crashdump=, so a kernel reloaded that way finds the held dump too.
 * - The recorded image missing at the boot: one log line, the boot goes on;
 *   a second panic then cold-reboots and exits 6 naming the lost dump.
 * - `kexec -u; machine sysrq c`, a panic with no driver armed: exit 6 after
 *   the normal output, one stderr line.
 * - `lkcd config` never writes over a device dump `lkcd save` did not save:
 *   DUMP_SAVE=0 refuses (64, one line naming lkcd save and --force, device
 *   untouched), DUMP_SAVE=1 saves it first, --force overwrites.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUMP_COMPRESS_GZIP, DUMP_LEVEL_ALL_RAM, DUMP_LEVEL_KERN } from '../../src/dump/index.js';
import {
  checkAgainstTruth, cleanFailure, copyRoot, deviceOf, dumpDirOf, ensureBuilt, EX_USAGE, ok, powerOnScenario, run, setSysconfig, sha256File,
  type Scenario, type Truth,
} from '../helpers/lkcd.js';
import { EXIT_DUMP_LOST, machineLeftovers, truthOfPanic } from '../helpers/steps.js';

const MiB = 1n << 20n;
const KEXEC_CMDLINE = 'root=/dev/vda1 ro console=ttyS0,115200';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-held-'));
beforeAll(() => ensureBuilt());
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const listed = (dir: string): Array<{ n: number; panic_string: string; complete: boolean }> => JSON.parse(ok(run('lkcd', dir, ['list', '--json']))) as Array<{ n: number; panic_string: string; complete: boolean }>;
const armedAddr = (configOut: string): string => /crashdump=(0x[0-9a-f]+)"$/m.exec(configOut)![1];

describe('the default flow: a second panic before the writeout keeps the first dump (64M)', () => {
  const dir = path.join(tmp, 'default-flow');
  const s: Scenario = { mem: 64n * MiB, profile: 'database', seed: 81, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP };
  let truth: Truth;
  let addr: string;
  let release: string;
  let first: string;
  let second: string;

  beforeAll(() => {
    release = powerOnScenario(dir, s);
    addr = armedAddr(ok(run('lkcd', dir, ['config'])));
    truth = truthOfPanic(dir, path.join(tmp, 'default-flow-twin'), 'first');
    first = ok(run('machine', dir, ['panic', 'first']));
  });

  it('kernel 2 reserves the dump and reloads kexec with the recorded image and crashdump= (one log line)', () => {
    expect(first).toContain(`kexec: booted ${release}; saved dump reserved at ${addr}`);
    const dmesg = ok(run('machine', dir, ['dmesg']));
    const reload = dmesg.split('\n').filter((l) => l.includes('crashdump: reloaded kexec image'));
    expect(reload).toHaveLength(1);
    expect(reload[0]).toMatch(new RegExp(`crashdump: reloaded kexec image /boot/vmlinuz-${esc(release)} --command-line="${esc(KEXEC_CMDLINE)} crashdump=${addr}" to keep the dump at ${addr} across a crash$`));
    expect(ok(run('kexec', dir, ['-s']))).toMatch(new RegExp(`^loaded: ${esc(release)}, .* command line "${esc(KEXEC_CMDLINE)} crashdump=${addr}"$`, 'm'));
  });

  it('the second panic takes no new dump, exits 0, and kexecs into a kernel that finds the first dump again', () => {
    second = ok(run('machine', dir, ['panic', 'second']));
    expect(second).toContain(`dump: a dump from the previous boot at ${addr} still awaits writeout; it is kept, no new dump is taken`);
    expect(second).toContain(`kexec: booted ${release}; saved dump reserved at ${addr}`);
    expect(second).not.toContain('cold reboot');
  });

  it('lkcd config writes it out, lkcd save saves it: every page equal to RAM before the first panic', () => {
    expect(ok(run('lkcd', dir, ['config']))).toMatch(new RegExp(`^dump: wrote the dump saved before the soft boot at ${addr} to `, 'm'));
    expect(ok(run('lkcd', dir, ['save']))).toMatch(/^lkcd save: saved dump 0 to /m);
    expect(listed(dir).map((d) => [d.n, d.panic_string])).toEqual([[0, 'first']]);
    expect(checkAgainstTruth(path.join(dumpDirOf(dir), '0', 'dump.0'), truth.snap, s.level)).toEqual([]);
    expect(machineLeftovers(dir)).toEqual([]);
  });
});

describe('kexec --reuse-cmdline keeps crashdump= and drops only BOOT_IMAGE=', () => {
  const dir = path.join(tmp, 'reuse');
  const s: Scenario = { mem: 16n * MiB, profile: 'idle', seed: 82, level: DUMP_LEVEL_KERN, compress: DUMP_COMPRESS_GZIP };
  let release: string;
  let image: string;
  let addr: string;

  beforeAll(() => {
    release = powerOnScenario(dir, s);
    image = path.join(dir, 'boot', `vmlinuz-${release}`);
    addr = armedAddr(ok(run('lkcd', dir, ['config'])));
  });

  it('in kernel 1, --reuse-cmdline takes /proc/cmdline without BOOT_IMAGE=', () => {
    const cmdline = ok(run('machine', dir, ['proc', 'cmdline'])).trim();
    expect(cmdline).toMatch(/^BOOT_IMAGE=\S+ /);
    const want = cmdline.split(' ').filter((w) => !w.startsWith('BOOT_IMAGE=')).join(' ');
    // Load it and then put the lkcd preload back (lkcd config re-arms, same block).
    expect(ok(run('kexec', dir, ['-l', image, '--reuse-cmdline']))).toMatch(new RegExp(`command line "${esc(want)}"$`, 'm'));
    ok(run('lkcd', dir, ['config']));
  });

  it('in a kernel holding a dump, kexec -u then -l --reuse-cmdline keeps crashdump=, and the next panic finds the dump', () => {
    ok(run('machine', dir, ['panic', 'first']));
    expect(ok(run('kexec', dir, ['-u']))).toBe('kexec: unloaded\n');
    expect(ok(run('kexec', dir, ['-l', image, '--reuse-cmdline']))).toMatch(new RegExp(`command line "${esc(KEXEC_CMDLINE)} crashdump=${addr}"$`, 'm'));
    const second = ok(run('machine', dir, ['panic', 'second']));
    expect(second).toContain(`kexec: booted ${release}; saved dump reserved at ${addr}`);
    ok(run('lkcd', dir, ['config']));
    ok(run('lkcd', dir, ['save']));
    expect(listed(dir).map((d) => d.panic_string)).toEqual(['first']);
  });
});

describe('a crash that loses the dump exits 6 (DUMP_LOST) after its normal output', () => {
  const s: Scenario = { mem: 16n * MiB, profile: 'idle', seed: 83, level: DUMP_LEVEL_KERN, compress: DUMP_COMPRESS_GZIP };
  let base: string;
  let release: string;

  beforeAll(() => {
    base = path.join(tmp, 'lost-base');
    release = powerOnScenario(base, s);
  });

  it('kexec -u; machine sysrq c: stage 1 runs, the cold reboot loses it', () => {
    const dir = path.join(tmp, 'lost-sysrq');
    copyRoot(base, dir);
    ok(run('lkcd', dir, ['config']));
    ok(run('kexec', dir, ['-u']));
    const r = run('machine', dir, ['sysrq', 'c']);
    expect(r.stdout).toContain('Rebooting: panic with DUMP_FLAGS_SOFTBOOT but no kexec image loaded');
    expect(r.stdout).toContain(`cold reboot: ${release} booted on cleared memory`);
    cleanFailure(r, 'machine', EXIT_DUMP_LOST, 'the dump stage 1 saved was lost', 'no kexec image was loaded');
    expect(machineLeftovers(dir)).toEqual([]);
  });

  it('a panic with the driver never configured: no dump, a cold reboot', () => {
    const dir = path.join(tmp, 'lost-unarmed');
    copyRoot(base, dir);
    const r = run('machine', dir, ['panic', 'nobody listens']);
    expect(r.stdout).toContain('dump: the dump driver is not configured (run lkcd config)');
    cleanFailure(r, 'machine', EXIT_DUMP_LOST, 'this crash was not dumped', 'the cold reboot cleared memory');
  });

  it('a panic with dumping disabled (DUMP_ACTIVE=0) but kexec loaded: a warm reboot without a dump', () => {
    const dir = path.join(tmp, 'lost-inactive');
    copyRoot(base, dir);
    ok(run('lkcd', dir, ['config']));
    setSysconfig(dir, 'DUMP_ACTIVE', '0');
    ok(run('lkcd', dir, ['config']));
    const r = run('machine', dir, ['panic', 'disabled']);
    expect(r.stdout).toContain(`kexec: booted ${release}`);
    cleanFailure(r, 'machine', EXIT_DUMP_LOST, 'this crash was not dumped: the dump driver is not configured');
  });

  it('the recorded kexec image gone at the boot: logged, not fatal; the next panic cold-reboots and names the held dump lost', () => {
    const dir = path.join(tmp, 'lost-image');
    copyRoot(base, dir);
    const addr = armedAddr(ok(run('lkcd', dir, ['config'])));
    const image = path.join(dir, 'boot', `vmlinuz-${release}`);
    fs.renameSync(image, `${image}.away`);
    expect(ok(run('machine', dir, ['panic', 'first']))).toContain(`saved dump reserved at ${addr}`);
    const dmesg = ok(run('machine', dir, ['dmesg']));
    expect(dmesg).toContain(`crashdump: kexec image /boot/vmlinuz-${release} not found; a crash before the writeout will lose the dump at ${addr}`);
    expect(ok(run('kexec', dir, ['-s']))).toBe('not loaded\n');
    const r = run('machine', dir, ['panic', 'second']);
    expect(r.stdout).toContain('cold reboot');
    cleanFailure(r, 'machine', EXIT_DUMP_LOST, `the dump held in memory at ${addr} was lost`);
    fs.renameSync(`${image}.away`, image);
  });
});

describe('lkcd config never writes over a device dump lkcd save did not save', () => {
  const s: Scenario = { mem: 16n * MiB, profile: 'idle', seed: 84, level: DUMP_LEVEL_KERN, compress: DUMP_COMPRESS_GZIP };
  let base: string;

  beforeAll(() => {
    // Dump A written out to the device and never saved; then a second crash, B, awaits its writeout.
    base = path.join(tmp, 'unsaved-base');
    powerOnScenario(base, s);
    ok(run('lkcd', base, ['config']));
    ok(run('machine', base, ['panic', 'crash A']));
    expect(ok(run('lkcd', base, ['config']))).toMatch(/^dump: wrote the dump saved before the soft boot/m);
    ok(run('machine', base, ['panic', 'crash B']));
  });

  it('with DUMP_SAVE=0 it refuses with one line naming lkcd save and --force, and leaves the device and the machine alone', () => {
    const dir = path.join(tmp, 'unsaved-refuse');
    copyRoot(base, dir);
    setSysconfig(dir, 'DUMP_SAVE', '0');
    const dev = sha256File(deviceOf(dir));
    const ram = sha256File(path.join(dir, 'lib', 'machine', 'ram'));
    const r = run('lkcd', dir, ['config']);
    cleanFailure(r, 'lkcd', EX_USAGE, deviceOf(dir), 'never saved', 'crash A', "'lkcd save'", '--force');
    expect(sha256File(deviceOf(dir))).toBe(dev);
    expect(sha256File(path.join(dir, 'lib', 'machine', 'ram'))).toBe(ram);
  });

  it('with DUMP_SAVE=1 it saves the old dump first, then writes the new one; lkcd save then saves that', () => {
    const dir = path.join(tmp, 'unsaved-save');
    copyRoot(base, dir);
    const out = ok(run('lkcd', dir, ['config']));
    expect(out).toMatch(/^dump: .* holds a dump lkcd save never saved \(panic "crash A", .*\): saving it before the writeout$/m);
    expect(out).toMatch(/^lkcd save: saved dump 0 to .*panic "crash A"$/m);
    expect(out).toMatch(/^dump: wrote the dump saved before the soft boot/m);
    expect(out.indexOf('lkcd save: saved dump 0')).toBeLessThan(out.indexOf('dump: wrote the dump'));
    ok(run('lkcd', dir, ['save']));
    expect(listed(dir).map((d) => [d.n, d.panic_string, d.complete])).toEqual([[0, 'crash A', true], [1, 'crash B', true]]);
  });

  it('with --force it overwrites, as asked', () => {
    const dir = path.join(tmp, 'unsaved-force');
    copyRoot(base, dir);
    setSysconfig(dir, 'DUMP_SAVE', '0');
    ok(run('lkcd', dir, ['config', '--force']));
    setSysconfig(dir, 'DUMP_SAVE', '1');
    ok(run('lkcd', dir, ['save']));
    expect(listed(dir).map((d) => d.panic_string)).toEqual(['crash B']);
  });
});
