/**
 * kdump as an admin runs it, through the built binaries: machine power-on
 * with crashkernel=, kexec -p, kdumpctl start/status/estimate/save, machine
 * panic and machine proc. Output text, exit status, file modes; failures
 * as one stderr line with the documented status. The saved vmcore is read
 * by crash and by libkdumpfile and our reader, which must agree on it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../src/machine/index.js';
import { kdumpCompressedFormat, openDump, type KdumpCompressedDump } from '../../src/dump/index.js';
import { ensureBuilt, expectCleanFailure, expectOk, EX_USAGE, runTool as run } from '../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../helpers/machine.js';
import { findTool, needs, runTool } from '../helpers/tools.js';
import { readerHashes, sha1 } from '../helpers/kdump.js';

const EX_NOT_OPERATIONAL = 3;
const EX_DUMP_LOST = 6;
const CMDLINE = 'BOOT_IMAGE=/boot/vmlinuz-5.4.0-lkcd root=/dev/vda1 ro console=ttyS0,115200 panic=5';

let dir: string;
beforeAll(() => { ensureBuilt(); dir = makeTempDir('kdumpcli'); });
afterAll(() => removeTempDir(dir));

function powerOn(name: string, mem: string, extra: string): string {
  const root = path.join(dir, name);
  expectOk(run('machine', root, ['power-on', '--mem', mem, '--profile', 'database', '--seed', '11', '--cmdline', `${CMDLINE} ${extra}`]));
  return root;
}

function image(root: string): string {
  return path.join(root, 'boot', 'vmlinuz-5.4.0-lkcd');
}

describe('without a crashkernel region', () => {
  let root: string;
  beforeAll(() => { root = powerOn('plain', '64M', ''); });

  it('kexec -p says no memory is reserved (64); kexec_crash_size is 0, kexec_crash_loaded 0', () => {
    expectCleanFailure(run('kexec', root, ['-p', image(root)]), 'kexec', EX_USAGE, 'crashkernel');
    expect(expectOk(run('machine', root, ['proc', 'sys/kernel/kexec_crash_size']))).toBe('0\n');
    expect(expectOk(run('machine', root, ['proc', 'sys/kernel/kexec_crash_loaded']))).toBe('0\n');
  });

  it('kdumpctl status: "Kdump is not operational", exit 3; start: no memory reserved (64); save: not a capture kernel (64)', () => {
    const s = run('kdumpctl', root, ['status']);
    expect(s.stdout).toBe('Kdump is not operational\n');
    expect(s.stderr).toBe('');
    expect(s.status).toBe(EX_NOT_OPERATIONAL);
    expectCleanFailure(run('kdumpctl', root, ['start']), 'kdumpctl', EX_USAGE, 'no memory reserved for crash kernel');
    expectCleanFailure(run('kdumpctl', root, ['save']), 'kdumpctl', EX_USAGE, 'not running in a capture kernel');
  });
});

describe('a crashkernel region too small for the capture kernel', () => {
  it('kexec -p refuses with one line giving what the capture kernel needs; nothing is loaded', () => {
    const root = powerOn('small', '64M', 'crashkernel=4M');
    expect(expectOk(run('machine', root, ['proc', 'sys/kernel/kexec_crash_size']))).toBe(`${4 << 20}\n`);
    const line = expectCleanFailure(run('kexec', root, ['-p', image(root)]), 'kexec', EX_USAGE,
      'crashkernel region of 4M at 0x3000000 is too small for the capture kernel 5.4.0-lkcd', 'it needs at least');
    // The image is _text to _end of System.map; its mem_map covers the 4 MiB region: 1024 struct pages of 64 bytes.
    const map = new Map(fs.readFileSync(path.join(root, 'boot', 'System.map-5.4.0-lkcd'), 'utf8').trim().split('\n')
      .map((l) => l.split(' ')).map(([a, , n]) => [n, BigInt(`0x${a}`)]));
    const imageK = (map.get('_end')! - map.get('_text')!) / 1024n;
    expect(line).toContain(`kernel image ${imageK}K, its mem_map 64K and early allocations 256K`);
    expect(expectOk(run('machine', root, ['proc', 'sys/kernel/kexec_crash_loaded']))).toBe('0\n');
    expectCleanFailure(run('kdumpctl', root, ['start']), 'kdumpctl', EX_USAGE, 'too small for the capture kernel');
  });
});

const tools = needs('makedumpfile', 'vmcore-dmesg', 'crash', '/usr/bin/python3');
describe(`kdumpctl start, a panic, kdumpctl save with the real makedumpfile${tools.reason}`, () => {
  let root: string;
  let dmesgBefore: string;
  let saved: string;

  beforeAll(() => { root = powerOn('full', '128M', 'crashkernel=32M'); });

  it('/proc/iomem shows the region; kdumpctl start loads the capture kernel with kdump-utils\' command line', () => {
    expect(expectOk(run('machine', root, ['proc', 'iomem']))).toContain('  06000000-07ffffff : Crash kernel\n');
    const out = expectOk(run('kdumpctl', root, ['start']));
    expect(out).toContain('kexec: loaded kdump kernel\n');
    expect(out).toMatch(/^Starting kdump: \[OK\]/m);
    const cmd = /--command-line="([^"]*)"/.exec(out)![1].split(' ');
    expect(cmd).not.toContain('crashkernel=32M');
    expect(cmd.some((w) => w.startsWith('root='))).toBe(false);
    for (const w of ['irqpoll', 'nr_cpus=1', 'reset_devices', 'novmcoredd', 'disable_cpu_apicid=0', 'rd.systemd.gpt_auto=no']) expect(cmd).toContain(w);
    expect(fs.statSync(path.join(root, 'boot', 'initramfs-5.4.0-lkcdkdump.img')).mode & 0o777).toBe(0o600);
    if (findTool('cpio')) {
      const list = runTool('sh', ['-c', `cpio -it < '${path.join(root, 'boot', 'initramfs-5.4.0-lkcdkdump.img')}'`]);
      expect(list.stdout.split('\n')).toEqual(expect.arrayContaining(['etc/kdump.conf', 'etc/sysconfig/kdump', 'init']));
    }
    expect(expectOk(run('kdumpctl', root, ['status']))).toBe('Kdump is operational\n');
    expect(expectOk(run('machine', root, ['proc', 'sys/kernel/kexec_crash_loaded']))).toBe('1\n');
    expect(expectOk(run('kdumpctl', root, ['start']))).toBe('Kdump already running: [WARNING]\n');
  });

  it('kdumpctl estimate prints kdump-utils\' lines', () => {
    const out = expectOk(run('kdumpctl', root, ['estimate']));
    expect(out).toMatch(/^Reserved crashkernel:    32M\nRecommended crashkernel: \d+M\n\nKernel image size:   2M\nKernel modules size: 0M\nInitramfs size:      0M\nRuntime reservation: 16M\nLarge modules: <none>\n$/);
  });

  it('machine panic boots the capture kernel; machine status shows it; /proc/vmcore needs -o', () => {
    dmesgBefore = expectOk(run('machine', root, ['dmesg']));
    const out = expectOk(run('machine', root, ['panic', 'cli kdump test']));
    expect(out).toMatch(/^kdump: capture kernel 5\.4\.0-lkcd booted in the crashkernel region at 0x6000000; \/proc\/vmcore holds \d+ bytes/m);
    expect(expectOk(run('machine', root, ['status']))).toMatch(/^kdump: {5}capture kernel: \/proc\/vmcore of \d+ bytes$/m);
    expectCleanFailure(run('machine', root, ['proc', 'vmcore']), 'machine', EX_USAGE, '-o FILE');
  });

  it.skipIf(tools.missing.length > 0)('kdumpctl save: vmcore-dmesg.txt, then vmcore by makedumpfile, files 0600 in a 0700 directory; then a reboot into the normal kernel', () => {
    const out = expectOk(run('kdumpctl', root, ['save']));
    const m = /^kdump: saving to (\/var\/crash\/127\.0\.0\.1-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d)\/$/m.exec(out);
    expect(m, out).not.toBeNull();
    expect(out.indexOf('saving vmcore-dmesg.txt complete')).toBeLessThan(out.indexOf('kdump: saving vmcore complete'));
    expect(out).toContain('kdump: executing final action reboot\n');
    saved = path.join(root, m![1]);
    expect(fs.readdirSync(saved).sort()).toEqual(['vmcore', 'vmcore-dmesg.txt']);
    expect(fs.statSync(saved).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(root, 'var', 'crash')).mode & 0o777).toBe(0o700);
    for (const f of ['vmcore', 'vmcore-dmesg.txt']) expect(fs.statSync(path.join(saved, f)).mode & 0o777).toBe(0o600);
    const log = fs.readFileSync(path.join(saved, 'vmcore-dmesg.txt'), 'latin1');
    expect(log.startsWith(dmesgBefore)).toBe(true);
    expect(log.slice(dmesgBefore.length)).toMatch(/^\[ *\d+\.\d{6}\] Kernel panic - not syncing: cli kdump test\n$/);
    expect(fs.existsSync(path.join(root, 'proc', 'vmcore'))).toBe(false);
    const status = expectOk(run('machine', root, ['status']));
    expect(status).toMatch(/^crashkernel: 32M reserved at 0x6000000-0x7ffffff, panic kernel not loaded$/m);
    expect(status).not.toMatch(/^kdump:/m);
  });

  it.skipIf(tools.missing.length > 0)('the saved vmcore: crash --osrelease works; our reader and libkdumpfile agree on every page', () => {
    const vmcore = path.join(saved, 'vmcore');
    expect(runTool('crash', ['--osrelease', vmcore]).stdout).toBe('5.4.0-lkcd\n');
    const dump = openDump(vmcore, {}, [kdumpCompressedFormat]) as KdumpCompressedDump;
    try {
      expect(dump.attrs['dump.compression']).toBe('lzo');
      const all: Array<[bigint, number]> = Array.from({ length: Number(dump.maxMapnr) }, (_, p) => [BigInt(p) * PAGE_SIZE_N, PAGE_SIZE]);
      const ours = all.map(([a]) => (dump.has(a / PAGE_SIZE_N) ? sha1(dump.readPage(a / PAGE_SIZE_N)) : 'NODATA'));
      expect(ours.filter((h) => h !== 'NODATA').length).toBe(dump.attrs['dump.pages']);
      expect(readerHashes('kdumpfile', vmcore, all, dir)).toEqual(ours);
    } finally {
      dump.close();
    }
    expectCleanFailure(run('kdumpctl', root, ['save']), 'kdumpctl', EX_USAGE, 'not running in a capture kernel');
  });

  it('after the reboot: kexec -p loads, kexec -s shows it, kexec -p -u unloads; kdumpctl start and stop', () => {
    const out = expectOk(run('kexec', root, ['-p', image(root), '--command-line', 'console=ttyS0 irqpoll nr_cpus=1']));
    const m = /^kexec: loaded panic kernel 5\.4\.0-lkcd at 0x6000000 in the crashkernel region 0x6000000-0x7ffffff, elfcorehdr at (0x[0-9a-f]+), \d+ KiB free after its boot; command line "console=ttyS0 irqpoll nr_cpus=1 elfcorehdr=(\d+)K"\n$/.exec(out);
    expect(m, out).not.toBeNull();
    // kexec-tools passes the header's address in KiB; it lies in the region.
    expect(BigInt(m![2]) * 1024n).toBe(BigInt(m![1]));
    expect(BigInt(m![1]) >= 0x6000000n && BigInt(m![1]) < 0x8000000n).toBe(true);
    expect(expectOk(run('kexec', root, ['-s']))).toMatch(/^panic kernel: 5\.4\.0-lkcd, purgatory at 0x[0-9a-f]+, 6 segments, command line "console=ttyS0 irqpoll nr_cpus=1 elfcorehdr=\d+K"$/m);
    expect(expectOk(run('kexec', root, ['-p', '-u']))).toBe('kexec: unloaded the panic kernel\n');
    expect(expectOk(run('machine', root, ['proc', 'sys/kernel/kexec_crash_loaded']))).toBe('0\n');
    expectOk(run('kdumpctl', root, ['start']));
    expect(expectOk(run('kdumpctl', root, ['stop']))).toBe('kexec: unloaded kdump kernel\nStopping kdump: [OK]\n');
    expect(run('kdumpctl', root, ['status']).status).toBe(EX_NOT_OPERATIONAL);
  });
});

describe(`a core collector that fails${needs('vmcore-dmesg').reason}`, () => {
  let root: string;
  let conf: string;
  beforeAll(() => {
    root = powerOn('failing', '64M', 'crashkernel=24M');
    const bad = path.join(dir, 'bad-collector.sh');
    // Writes part of a dump, then fails: as makedumpfile does when the disk fills up.
    fs.writeFileSync(bad, '#!/bin/sh\nhead -c 8192 "$1" > "$2"\necho "bad-collector: giving up" >&2\nexit 1\n', { mode: 0o755 });
    conf = path.join(root, 'etc', 'kdump.conf');
    fs.mkdirSync(path.dirname(conf), { recursive: true });
    fs.writeFileSync(conf, `path /var/crash\ncore_collector ${bad}\nfailure_action shell\n`);
    expectOk(run('kdumpctl', root, ['start']));
    expectOk(run('machine', root, ['oops']));
  });

  it('failure_action shell runs, vmcore-incomplete is not renamed, exit 6 with one line; the capture kernel keeps running', () => {
    const r = run('kdumpctl', root, ['save']);
    const line = expectCleanFailure(r, 'kdumpctl', EX_DUMP_LOST, 'failed (exit 1)', 'vmcore-incomplete was not renamed', 'failure_action shell');
    expect(line).toContain('bad-collector.sh');
    expect(r.stdout).toContain('kdump: saving vmcore failed, exitcode:1\n');
    expect(r.stdout).toContain('bad-collector: giving up');
    expect(r.stdout).toContain('kdump: executing failure action shell\n');
    const saved = path.join(root, 'var', 'crash', fs.readdirSync(path.join(root, 'var', 'crash'))[0]);
    expect(fs.readdirSync(saved).sort()).toEqual(['vmcore-dmesg.txt', 'vmcore-incomplete']);
    expect(fs.statSync(path.join(saved, 'vmcore-incomplete')).size).toBe(8192);
    expect(expectOk(run('machine', root, ['status']))).toMatch(/^kdump: /m);
  });

  it('with failure_action reboot the normal kernel comes back, still no vmcore', () => {
    fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8').replace('failure_action shell', 'failure_action reboot'));
    const r = run('kdumpctl', root, ['save']);
    expectCleanFailure(r, 'kdumpctl', EX_DUMP_LOST, 'failure_action reboot');
    expect(r.stdout).toContain('reboot: 5.4.0-lkcd booted from the default boot entry\n');
    const status = expectOk(run('machine', root, ['status']));
    expect(status).not.toMatch(/^kdump: /m);
    expect(status).toMatch(/^crashkernel: 24M reserved/m);
    const saved = path.join(root, 'var', 'crash', fs.readdirSync(path.join(root, 'var', 'crash'))[0]);
    expect(fs.existsSync(path.join(saved, 'vmcore'))).toBe(false);
  });

  it('a dump target kdump.conf names that is not simulated is refused naming the line', () => {
    fs.writeFileSync(conf, 'nfs server:/export/crash\n');
    expectCleanFailure(run('kdumpctl', root, ['start']), 'kdumpctl', EX_USAGE, 'kdump.conf:1: nfs', 'not simulated');
  });
});
