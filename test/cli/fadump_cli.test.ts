/**
 * fadump as an admin runs it, through the built binaries: machine power-on
 * with fadump=on, machine sys (the /sys/kernel files), kdumpctl in fadump
 * mode (start / status / stop / estimate / save), machine panic, machine
 * status, release_mem. Output text, exit status, one stderr line on each
 * refusal. The saved vmcore is checked by crash --osrelease and its log
 * against the crashed kernel's, as machine dmesg printed it before the panic.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, expectCleanFailure, expectOk, EX_NOINPUT, EX_USAGE, runTool as run } from '../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../helpers/machine.js';
import { needs, runTool } from '../helpers/tools.js';

const EX_NOT_OPERATIONAL = 3;
const CMDLINE = 'BOOT_IMAGE=/boot/vmlinuz-5.4.0-lkcd root=/dev/vda1 ro console=ttyS0,115200 panic=5 fadump=on';

let dir: string;
beforeAll(() => { ensureBuilt(); dir = makeTempDir('fadumpcli'); });
afterAll(() => removeTempDir(dir));

function powerOn(name: string, extra = ''): string {
  const root = path.join(dir, name);
  expectOk(run('machine', root, ['power-on', '--mem', '64M', '--profile', 'database', '--seed', '11', '--cmdline', `${CMDLINE}${extra ? ` ${extra}` : ''}`]));
  return root;
}

/** `machine sys ls` lines without their time column. */
function lsNames(out: string): string[] {
  return out.trim().split('\n').map((l) => l.replace(/^(\S+)\s+\d+\s+\S+ \S+ /, '$1 '));
}

const tools = needs('makedumpfile', 'vmcore-dmesg', 'crash');
describe('fadump=on: the sysfs files, kdumpctl in fadump mode, a crash, save and release', () => {
  let root: string;
  let bootMemMiB: number;
  let dmesgBefore: string;

  beforeAll(() => { root = powerOn('full'); });

  it('machine status and dmesg show the reservation; /sys/kernel has the 2011 files and kernel/fadump the newer names as links', () => {
    const status = expectOk(run('machine', root, ['status']));
    const m = /^fadump: {4}not registered; boot memory (\d+)M, (\d+)K reserved at (0x[0-9a-f]+)-0x[0-9a-f]+$/m.exec(status);
    expect(m, status).not.toBeNull();
    bootMemMiB = Number(m![1]);
    // The reserved area: one page of CPU state data, the copy of boot memory, one page of headers.
    expect(Number(m![2])).toBe(bootMemMiB * 1024 + 8);
    expect(BigInt(m![3])).toBe(BigInt(bootMemMiB) << 20n);
    expect(expectOk(run('machine', root, ['dmesg']))).toContain(`fadump: Reserved ${bootMemMiB}MB of memory at ${bootMemMiB}MB for firmware-assisted dump (System RAM: 63MB)\n`);
    expect(lsNames(expectOk(run('machine', root, ['sys', 'ls', 'kernel'])))).toEqual([
      'drwxr-xr-x fadump/', '-r--r--r-- fadump_enabled', '-rw-r--r-- fadump_registered',
    ]);
    expect(lsNames(expectOk(run('machine', root, ['sys', 'ls', 'kernel/fadump'])))).toEqual([
      'lrwxrwxrwx enabled -> ../fadump_enabled', '-r--r--r-- mem_reserved', 'lrwxrwxrwx registered -> ../fadump_registered',
    ]);
    expect(expectOk(run('machine', root, ['sys', 'cat', 'kernel/fadump/enabled']))).toBe('1\n');
    expect(expectOk(run('machine', root, ['sys', 'cat', 'kernel/fadump_registered']))).toBe('0\n');
    expect(expectOk(run('machine', root, ['sys', 'cat', 'kernel/fadump/mem_reserved']))).toBe(`${(bootMemMiB << 20) + 8192}\n`);
    // fadump_release_mem exists only in a capture boot.
    expectCleanFailure(run('machine', root, ['sys', 'write', 'kernel/fadump_release_mem', '1']), 'machine', EX_NOINPUT, 'fadump_release_mem: No such file');
    expectCleanFailure(run('machine', root, ['sys', 'write', 'kernel/fadump_enabled', '0']), 'machine', EX_USAGE, 'Permission denied');
    expectCleanFailure(run('machine', root, ['sys', 'write', 'kernel/fadump/registered', '2']), 'machine', EX_USAGE, 'registered: write error: Invalid argument');
    // No kdump beside it: crashkernel= would be fadump's boot memory size, and no region is reserved.
    expectCleanFailure(run('kexec', root, ['-p', path.join(root, 'boot', 'vmlinuz-5.4.0-lkcd')]), 'kexec', EX_USAGE, 'booted with fadump=on');
  });

  it('kdumpctl: status says not operational (3); start registers (echo 1, read back) and again; status 0; estimate reports fadump\'s reservation', () => {
    const s = run('kdumpctl', root, ['status']);
    expect(s.stdout).toBe('Kdump is not operational\n');
    expect(s.status).toBe(EX_NOT_OPERATIONAL);
    expect(expectOk(run('kdumpctl', root, ['start']))).toBe('fadump: registered successfully\nStarting kdump: [OK]\n');
    // A second echo 1 fails with EEXIST, which kdumpctl ignores: the read-back says 1.
    expect(expectOk(run('kdumpctl', root, ['start']))).toBe('fadump: registered successfully\nStarting kdump: [OK]\n');
    expect(expectOk(run('kdumpctl', root, ['status']))).toBe('Kdump is operational\n');
    expect(expectOk(run('machine', root, ['sys', 'cat', 'kernel/fadump/registered']))).toBe('1\n');
    expect(expectOk(run('kdumpctl', root, ['estimate']))).toMatch(new RegExp(`^Reserved crashkernel: {4}${bootMemMiB}M\\n`));
    expect(expectOk(run('machine', root, ['dmesg']))).toContain('fadump: firmware-assisted kernel dump registration is successful\n');
    expectCleanFailure(run('machine', root, ['sys', 'write', 'kernel/fadump/registered', '1']), 'machine', EX_USAGE, 'File exists (already registered)');
  });

  it('machine panic: the firmware takes the crash and restarts; status shows the dump active; registering is refused', () => {
    dmesgBefore = expectOk(run('machine', root, ['dmesg']));
    const out = expectOk(run('machine', root, ['panic', 'cli fadump test']));
    expect(out).toMatch(/^fadump: crash_fadump: crash info header at 0x[0-9a-f]+ filled, calling ibm,os-term$/m);
    expect(out).toContain(`fadump: the firmware saved the CPU state and copied boot memory [0x0-0x${((bootMemMiB << 20) - 1).toString(16)}] to 0x${((bootMemMiB << 20) + 4096).toString(16)}; restarting without clearing memory\n`);
    expect(out).toMatch(/^fadump: 5\.4\.0-lkcd booted by the firmware in boot memory; \/proc\/vmcore holds \d+ bytes/m);
    const status = expectOk(run('machine', root, ['status']));
    expect(status).toMatch(new RegExp(`^fadump: {4}dump active: /proc/vmcore of \\d+ bytes; boot memory ${bootMemMiB}M, ${64 - bootMemMiB}M reserved at 0x[0-9a-f]+-0x3ffffff until release_mem$`, 'm'));
    expect(status).not.toMatch(/^kdump:/m);
    expect(lsNames(expectOk(run('machine', root, ['sys', 'ls', 'kernel/fadump'])))).toContain('lrwxrwxrwx release_mem -> ../fadump_release_mem');
    expectCleanFailure(run('machine', root, ['sys', 'write', 'kernel/fadump/registered', '1']), 'machine', EX_USAGE,
      'registered: write error: Operation not permitted (a firmware-assisted dump is active');
    expectCleanFailure(run('kdumpctl', root, ['start']), 'kdumpctl', EX_USAGE, 'start: fadump: failed to register', 'Operation not permitted');
    expect(run('kdumpctl', root, ['status']).status).toBe(EX_NOT_OPERATIONAL);
  });

  tools.it('kdumpctl save in the capture boot: vmcore-dmesg.txt and vmcore, design fadump; the final action reboots and fadump can register again', () => {
    const out = expectOk(run('kdumpctl', root, ['save']));
    expect(out).toContain('kdump: dump design fadump: /proc/vmcore reads boot memory from the copy the firmware made\n');
    const m = /^kdumpctl: saved (\/var\/crash\/127\.0\.0\.1-[\d:-]+)\/vmcore \(design fadump\)$/m.exec(out);
    expect(m, out).not.toBeNull();
    const saved = path.join(root, m![1]);
    // The capture boot's drivers dump their devices too (is_kdump_kernel() holds under fadump), as the
    // firmware's PCI reset left them: crashdd/ is copied beside the vmcore.
    expect(fs.readdirSync(saved).sort()).toEqual(['crashdd', 'vmcore', 'vmcore-dmesg.txt']);
    for (const f of ['vmcore', 'vmcore-dmesg.txt']) expect(fs.statSync(path.join(saved, f)).mode & 0o777).toBe(0o600);
    const log = fs.readFileSync(path.join(saved, 'vmcore-dmesg.txt'), 'latin1');
    expect(log.startsWith(dmesgBefore)).toBe(true);
    expect(log.slice(dmesgBefore.length)).toMatch(/^\[ *\d+\.\d{6}\] Kernel panic - not syncing: cli fadump test\n$/);
    expect(runTool('crash', ['--osrelease', path.join(saved, 'vmcore')]).stdout).toBe('5.4.0-lkcd\n');
    // Indexed beside the LKCD dumps under the design that captured it, its log the crashed kernel's.
    const listed = JSON.parse(expectOk(run('lkcd', root, ['list', '--json']))) as Array<{ n: number; design: string; format: string; panic_string: string }>;
    expect(listed.map((d) => [d.design, d.format, d.panic_string])).toEqual([['fadump', 'diskdump', 'cli fadump test']]);
    expect(expectOk(run('lkcd', root, ['dmesg', String(listed[0].n)]))).toBe(log);
    expect(out).toContain('kdump: executing final action reboot\n');
    const status = expectOk(run('machine', root, ['status']));
    expect(status).toMatch(/^fadump: {4}not registered; boot memory \d+M, \d+K reserved/m);
    expect(expectOk(run('kdumpctl', root, ['start']))).toBe('fadump: registered successfully\nStarting kdump: [OK]\n');
  });

  it('a second crash, then echo 1 > release_mem: no /proc/vmcore, the memory is free again without a reboot; kdumpctl start and stop', () => {
    if (run('kdumpctl', root, ['status']).status !== 0) expectOk(run('kdumpctl', root, ['start']));
    expectOk(run('machine', root, ['panic', 'second']));
    const held = expectOk(run('machine', root, ['status']));
    const freeHeld = Number(/^ {2}free +(\d+)/m.exec(held)![1]);
    expect(expectOk(run('machine', root, ['sys', 'write', 'kernel/fadump/release_mem', '1']))).toBe('');
    const status = expectOk(run('machine', root, ['status']));
    expect(status).toMatch(/^fadump: {4}not registered; boot memory \d+M, \d+K reserved/m);
    const free = Number(/^ {2}free +(\d+)/m.exec(status)![1]);
    // Every frame above the kept area (64 MiB minus twice boot memory minus two pages) came back.
    expect(free - freeHeld >= ((64 - 2 * bootMemMiB) << 8) - 2).toBe(true);
    expectCleanFailure(run('machine', root, ['proc', 'vmcore', '-o', path.join(dir, 'gone')]), 'machine', EX_NOINPUT, '/proc/vmcore: no such file');
    expectCleanFailure(run('machine', root, ['sys', 'write', 'kernel/fadump/release_mem', '1']), 'machine', EX_USAGE, 'Operation not permitted (no firmware-assisted dump is active)');
    expect(expectOk(run('kdumpctl', root, ['start']))).toBe('fadump: registered successfully\nStarting kdump: [OK]\n');
    expect(expectOk(run('kdumpctl', root, ['stop']))).toBe('fadump: unregistered successfully\nStopping kdump: [OK]\n');
    expect(run('kdumpctl', root, ['status']).status).toBe(EX_NOT_OPERATIONAL);
  });
});

describe('a crash info header corrupted in RAM while the system ran', () => {
  it('machine panic: the capture boot says so in one line and boots normally; the crash exits 6 (the dump is lost), naming why', () => {
    const root = powerOn('corrupt');
    expectOk(run('kdumpctl', root, ['start']));
    const m = /^fadump: {4}registered; boot memory (\d+)M/m.exec(expectOk(run('machine', root, ['status'])))!;
    // The header follows the page of CPU state data and the boot memory copy in the area, which starts at the end of boot memory.
    const hdr = 2 * (Number(m[1]) << 20) + 4096;
    const fd = fs.openSync(path.join(root, 'lib', 'machine', 'ram'), 'r+');
    try {
      const magic = Buffer.alloc(8);
      fs.readSync(fd, magic, 0, 8, hdr);
      expect(magic.toString('latin1')).toBe('FNIPMDAF');
      fs.writeSync(fd, Buffer.from('FADMPINF', 'latin1'), 0, 8, hdr);
    } finally {
      fs.closeSync(fd);
    }
    const r = run('machine', root, ['panic', 'corrupt header']);
    expectCleanFailure(r, 'machine', 6, 'the firmware preserved memory, but the capture boot could not use the dump (see machine dmesg: fadump)');
    expect(r.stdout).toMatch(/^fadump: 5\.4\.0-lkcd booted by the firmware in boot memory; no \/proc\/vmcore \(see machine dmesg\)$/m);
    const log = expectOk(run('machine', root, ['dmesg']));
    expect(log.split('\n').filter((l) => /fadump: (Crash|Dump|Unable)/.test(l)).map((l) => l.replace(/^\[[ \d.]+\] /, ''))).toEqual(['fadump: Crash info header is not valid.']);
    expect(expectOk(run('machine', root, ['status']))).toMatch(/^fadump: {4}not registered; boot memory \d+M, \d+K reserved/m);
  });
});

describe('boot memory too small for a capture boot', () => {
  it('the boot says so in one line and reserves nothing; kdumpctl start fails naming why', () => {
    const root = powerOn('small', 'fadump_reserve_mem=4M');
    const log = expectOk(run('machine', root, ['dmesg']));
    expect(log).toMatch(/fadump: boot memory of 4M \(fadump_reserve_mem=\) is too small for a capture boot of this kernel, which needs \d+M: Failed to reserve memory\n/);
    expect(expectOk(run('machine', root, ['status']))).toMatch(/^fadump: {4}not registered; boot memory 0B?, nothing reserved \(see machine dmesg\)$/m);
    expectCleanFailure(run('kdumpctl', root, ['start']), 'kdumpctl', EX_USAGE, 'failed to register', 'No such device (no memory is reserved');
  });
});
