/**
 * One index for both designs on one machine: the vmcore `kdumpctl save`
 * writes (the real makedumpfile as core collector) is indexed as design
 * kdump, format diskdump, where it lies, beside the LKCD soft-boot dump
 * `lkcd save` takes of the same machine's next crash. The truth for the
 * kdump dump is RAM at the crash, read from the image right after `machine
 * panic` (the capture kernel changes nothing outside its region), and the
 * log the real vmcore-dmesg wrote; `lkcd export --elf` of it opens in crash.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { PAGE_SIZE } from '../../src/machine/index.js';
import { openIndexedDump } from '../../lkcd/query.js';
import { cleanFailure, dumpDirOf, ensureBuilt, listJson, ok, run } from '../helpers/lkcd.js';
import { makeTempDir, removeTempDir } from '../helpers/machine.js';
import { needs, runTool } from '../helpers/tools.js';

const CMDLINE = 'BOOT_IMAGE=/boot/vmlinuz-5.4.0-lkcd root=/dev/vda1 ro console=ttyS0,115200 panic=5 crashkernel=24M';

const tools = needs('makedumpfile', 'vmcore-dmesg', 'crash');
describe(`kdumpctl save indexes its vmcore beside lkcd save's dump${tools.reason}`, () => {
  let tmp: string;
  let root: string;
  let atCrash: Buffer;
  let region: [number, number];
  let saveOut: string;
  let crashDir: string;

  beforeAll(() => {
    ensureBuilt();
    tmp = makeTempDir('kdump-index');
    root = path.join(tmp, 'root');
    if (tools.skip) return;
    ok(run('machine', root, ['power-on', '--mem', '64M', '--profile', 'database', '--seed', '17', '--cmdline', CMDLINE]));
    const iomem = ok(run('machine', root, ['proc', 'iomem']));
    const m = /^\s+([0-9a-f]+)-([0-9a-f]+) : Crash kernel$/m.exec(iomem)!;
    region = [parseInt(m[1], 16), parseInt(m[2], 16) + 1];
    ok(run('kdumpctl', root, ['start']));
    ok(run('machine', root, ['panic', 'indexed by kdumpctl']));
    // The capture kernel runs in its region alone: outside it, the image is RAM at the crash.
    atCrash = fs.readFileSync(path.join(root, 'lib', 'machine', 'ram'));
    saveOut = ok(run('kdumpctl', root, ['save']));
    crashDir = path.join(root, 'var', 'crash', fs.readdirSync(path.join(root, 'var', 'crash'))[0]);
  }, 300_000);
  afterAll(() => { if (tmp) removeTempDir(tmp); });

  tools.it('kdumpctl save says it indexed the vmcore as dump 0 (design kdump, format diskdump) with the panic string from the log, before its final action', () => {
    expect(saveOut).toMatch(new RegExp(`^kdumpctl save: indexed ${crashDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/vmcore as dump 0 \\(design kdump, format diskdump\\): \\d+ pages, \\d+ bytes, complete, unverified \\(no checksums in the dump\\); panic "indexed by kdumpctl"$`, 'm'));
    expect(saveOut.indexOf('kdumpctl save: indexed')).toBeLessThan(saveOut.indexOf('kdump: executing final action'));
    // Not copied: the row points at the vmcore where kdumpctl save wrote it.
    const dir = path.join(dumpDirOf(root), '0');
    expect(fs.existsSync(path.join(dir, 'dump.0'))).toBe(false);
    expect(fs.readFileSync(path.join(dir, 'origin.0'), 'utf8')).toBe(`design=kdump\nfile=${path.relative(dir, path.join(crashDir, 'vmcore'))}\nsource=\n`);
    expect(fs.readdirSync(crashDir).sort()).toEqual(['vmcore', 'vmcore-dmesg.txt']);
    expect(listJson(root)[0]).toMatchObject({ n: 0, design: 'kdump', format: 'diskdump', compression: 'lzo', level: 31, panic_string: 'indexed by kdumpctl', release: '5.4.0-lkcd', state: 'complete', log_error: '' });
  });

  tools.it('every page of dump 0 equals RAM at the crash (lkcd read\'s path); the crashkernel region is not in it; lkcd read through the CLI', () => {
    const o = openIndexedDump(dumpDirOf(root), 0);
    let n = 0;
    try {
      for (const pfn of o.dump.pages()) {
        const p = Number(pfn);
        expect(p * PAGE_SIZE < region[0] || p * PAGE_SIZE >= region[1], `pfn ${p} in the crashkernel region`).toBe(true);
        expect(Buffer.from(o.dump.readPage(pfn)).equals(atCrash.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE)), `pfn ${p}`).toBe(true);
        n++;
      }
    } finally {
      o.close();
    }
    expect(n).toBe(listJson(root)[0].pages);
    const pfn = 0x1000; // the kernel image's first page, which -d 31 keeps
    const out = path.join(tmp, 'page');
    ok(run('lkcd', root, ['read', '0', '--pfn', String(pfn), '-o', out]));
    expect(fs.readFileSync(out).equals(atCrash.subarray(pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE))).toBe(true);
    cleanFailure(run('lkcd', root, ['read', '0', '--paddr', `0x${region[0].toString(16)}`, '--len', '16']), 'lkcd', 65, 'is not in the dump');
  });

  tools.it('lkcd dmesg 0 prints exactly what the real vmcore-dmesg saved; show names the kdump sub-header; verify exits 0', () => {
    expect(ok(run('lkcd', root, ['dmesg', '0']))).toBe(fs.readFileSync(path.join(crashDir, 'vmcore-dmesg.txt'), 'latin1'));
    const show = ok(run('lkcd', root, ['show', '0']));
    expect(show).toMatch(/^\s+design: kdump$/m);
    expect(show).toMatch(/^\s+signature: "KDUMP   "$/m);
    expect(show).toMatch(/^\s+dump_level: 31  \(makedumpfile -d 31\)$/m);
    expect(show).toMatch(/^\s+vmlinux: .*vmlinux\.0 \(build ID [0-9a-f]{40}, matches the dump\)$/m);
    expect(show).not.toMatch(/^\s+dh_/m);
    expect(ok(run('lkcd', root, ['verify', '0']))).toMatch(/^dump 0: \d+ pages verified \(\d+ compressed, \d+ raw\), no checksums in the dump \(unverified\), sha256 matches\n$/);
    const analysis = ok(run('lkcd', root, ['analyze', '0']));
    expect(analysis).toMatch(/^\s+panic string: indexed by kdumpctl$/m);
    expect(analysis).toMatch(/^\s+call site: panic\+0x[0-9a-f]+$/m);
    expect(analysis).toMatch(/^\s+0\s+\S+\s+0x[0-9a-f]+\s+\[swapper\/0\]$/m);
    expect(fs.readFileSync(path.join(dumpDirOf(root), '0', 'analysis.0'), 'utf8')).toBe(analysis);
  });

  tools.it('lkcd export 0 --elf opens in crash: --osrelease, and --log prints lkcd dmesg 0', () => {
    const elf = path.join(tmp, 'kdump.elf');
    ok(run('lkcd', root, ['export', '0', '--elf', '-o', elf]));
    expect(runTool('crash', ['--osrelease', elf]).stdout).toBe('5.4.0-lkcd\n');
    const log = runTool('crash', ['--log', elf]);
    expect(log.status, log.stderr).toBe(0);
    expect(log.stdout).toBe(ok(run('lkcd', root, ['dmesg', '0'])));
    // The export may not overwrite the vmcore it reads.
    cleanFailure(run('lkcd', root, ['export', '0', '--elf', '-o', path.join(crashDir, 'vmcore')]), 'lkcd', 64, 'dump 0');
  });

  tools.it('the next crash, taken by LKCD\'s soft boot, is dump 1 beside it in lkcd list; reindex keeps both designs', () => {
    ok(run('lkcd', root, ['config']));
    ok(run('machine', root, ['panic', 'taken by lkcd']));
    ok(run('lkcd', root, ['config']));
    expect(ok(run('lkcd', root, ['save']))).toMatch(/^lkcd save: saved dump 1 to /m);
    const rows = ok(run('lkcd', root, ['list'])).trimEnd().split('\n');
    expect(rows[1]).toMatch(/^\s+0\s+kdump\s+diskdump\s.*\scomplete\s+[0-9a-f]{16}\s+indexed by kdumpctl$/);
    expect(rows[2]).toMatch(/^\s+1\s+lkcd-softboot\s+lkcd\s.*\scomplete\s+[0-9a-f]{16}\s+taken by lkcd$/);
    const before = listJson(root).map(({ saved_at: _s, ...r }) => r);
    expect(ok(run('lkcd', root, ['reindex']))).toMatch(/^reindexed 2 dumps in /m);
    expect(listJson(root).map(({ saved_at: _s, ...r }) => r)).toEqual(before);
    expect(ok(run('lkcd', root, ['search', 'indexed by kdumpctl']))).toMatch(/^0: \[\s*\d+\.\d{6}\] Kernel panic - not syncing: indexed by kdumpctl$/m);
  });
});
