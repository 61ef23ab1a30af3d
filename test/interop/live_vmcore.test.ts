import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MachineRoot, PAGE_SIZE, PAGE_SIZE_N } from '../../src/machine/index.js';
import {
  closeSystem, countPageTypes, forEachPageType, MemMap, PG_private, pageFlag, powerOn, printk, systemDmesg,
  type RunningSystem,
} from '../../src/kernel/index.js';
import { exportLiveVmcore } from '../../src/dump/index.js';
import { findTool, needs, runTool } from '../helpers/tools.js';

/**
 * The real tools read an ELF export of a freshly powered-on machine: each
 * prints the same log as `machine dmesg`, crash finds the release, and
 * makedumpfile's page classification agrees with our mem_map.
 */
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-interop-'));

interface Machine { sys: RunningSystem; vmcore: string; dmesg: string }

function bootAndExport(name: string, mem: bigint, profile: string, seed: number, extraLines = 0): Machine {
  const root = new MachineRoot(path.join(tmp, name));
  const sys = powerOn(root, { mem, profile, seed });
  for (let i = 0; i < extraLines; i++) {
    printk(sys.kernel, `lkcd-test: filler line ${i} to wrap the printk ring buffer ${'x'.repeat(i % 90)}`);
  }
  sys.ram.flush();
  const vmcore = path.join(tmp, `${name}.vmcore`);
  exportLiveVmcore(sys, vmcore);
  return { sys, vmcore, dmesg: systemDmesg(sys) };
}

/** What vmcore-dmesg (kexec-tools 2.0.25) prints for the zero-length record that marks a wrap. */
const WRAP_MARKER_LINE = '[    0.000000] ';

let std: Machine;
let lowmem: Machine;
let wrapped: Machine;

beforeAll(() => {
  std = bootAndExport('std', 64n << 20n, 'database', 7);
  lowmem = bootAndExport('lowmem', 16n << 20n, 'idle', 3);
  wrapped = bootAndExport('wrapped', 32n << 20n, 'fileserver', 11, 2500);
});

afterAll(() => {
  for (const m of [std, lowmem, wrapped]) if (m) closeSystem(m.sys);
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('the log, read by real tools', () => {
  const cases = (): Array<[string, Machine]> => [['64M database', std], ['16M lowmem build', lowmem], ['32M, log wrapped', wrapped]];

  needs('vmcore-dmesg').it('vmcore-dmesg prints exactly machine dmesg', () => {
    for (const [what, m] of cases()) {
      const r = runTool(findTool('vmcore-dmesg')!, [m.vmcore]);
      expect(r.status, `${what}: ${r.stderr}`).toBe(0);
      // known-deviations.txt: vmcore-dmesg prints the wrap marker of a wrapped buffer as one empty record.
      const quirk = m === wrapped ? 1 : 0;
      const lines = r.stdout.split('\n');
      expect(lines.filter((l) => l === WRAP_MARKER_LINE).length, what).toBe(quirk);
      expect(lines.filter((l) => l !== WRAP_MARKER_LINE).join('\n'), what).toBe(m.dmesg);
    }
  });

  needs('makedumpfile').it('makedumpfile --dump-dmesg writes exactly machine dmesg', () => {
    for (const [what, m] of cases()) {
      const out = `${m.vmcore}.mdf-dmesg`;
      fs.rmSync(out, { force: true });
      const r = runTool('makedumpfile', ['--dump-dmesg', m.vmcore, out]);
      expect(r.status, `${what}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(fs.readFileSync(out, 'latin1'), what).toBe(m.dmesg);
    }
  });

  needs('crash').it('crash --log prints exactly machine dmesg', () => {
    for (const [what, m] of cases()) {
      const r = runTool('crash', ['--log', m.vmcore]);
      expect(r.status, `${what}: ${r.stdout}`).toBe(0);
      expect(r.stdout, what).toBe(m.dmesg);
    }
  });

  it('the wrapped log really wrapped: it no longer starts at the boot banner', () => {
    expect(wrapped.dmesg.startsWith('[    0.000000] Linux version')).toBe(false);
    expect(wrapped.dmesg).toContain('lkcd-test: filler line 2499 ');
  });
});

describe('crash and readelf on the export', () => {
  needs('crash').it('crash --osrelease prints the release', () => {
    expect(runTool('crash', ['--osrelease', std.vmcore]).stdout).toBe('5.4.0-lkcd\n');
    expect(runTool('crash', ['--osrelease', lowmem.vmcore]).stdout).toBe('5.4.0-lkcd-lowmem\n');
  });

  needs('readelf').it('readelf -l shows PT_NOTE first, then the text and direct-map loads with p_align 0', () => {
    const r = runTool('readelf', ['-l', '-W', std.vmcore]);
    expect(r.status).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^\s+(NOTE|LOAD)\s/.test(l)).map((l) => l.trim().split(/\s+/));
    expect(rows.map((x) => x[0])).toEqual(['NOTE', 'LOAD', 'LOAD']);
    expect(rows[1].slice(2, 4)).toEqual(['0xffffffff81000000', '0x0000000001000000']);
    expect(rows[2].slice(2, 6)).toEqual(['0xffff888000000000', '0x0000000000000000', '0x4000000', '0x4000000']);
    for (const row of rows) expect(row[row.length - 1]).toBe('0');
  });
});

/** Parses makedumpfile's closing report ("Free pages : 0x...") into numbers. */
function parseReport(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^\s*([A-Za-z][A-Za-z -]+?)\s*:\s*0x([0-9a-f]+)\s*$/gm)) out[m[1]] = parseInt(m[2], 16);
  return out;
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

describe('makedumpfile -d 31 agrees with mem_map', () => {
  needs('makedumpfile').it('excludes exactly our cache, user and free pages, keeps our kernel pages', () => {
    const { sys, vmcore } = std;
    const out = `${vmcore}.d31`;
    fs.rmSync(out, { force: true });
    const r = runTool('makedumpfile', ['-d', '31', '-c', '--message-level', '31', vmcore, out], 300);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const rep = parseReport(r.stdout + r.stderr);

    const memmap = new MemMap(sys.kernel);
    const counts = countPageTypes(memmap);
    let privateCache = 0n;
    let kernelZero = 0n;
    let kernelPages = 0n;
    forEachPageType(memmap, (pfn, type) => {
      if (type === 'cache' && (memmap.get(pfn).flags & pageFlag(PG_private))) privateCache++;
      if (type === 'reserved' || type === 'slab' || type === 'kernel') {
        kernelPages++;
        if (isZero(sys.ram.read(pfn * PAGE_SIZE_N, PAGE_SIZE))) kernelZero++;
      }
    });
    // The kernel-text PT_LOAD shows the image a second time, as in a real kdump vmcore: makedumpfile
    // counts those frames once more, all of them kernel pages.
    const imageFirst = sys.kernel.header.physical_start / PAGE_SIZE_N;
    const imagePages = sys.kernel.header.image_size / PAGE_SIZE_N;
    let imageZero = 0n;
    for (let p = imageFirst; p < imageFirst + imagePages; p++) if (isZero(sys.ram.read(p * PAGE_SIZE_N, PAGE_SIZE))) imageZero++;

    expect(BigInt(rep['Non-private cache pages'] + rep['Private cache pages'])).toBe(counts.cache);
    expect(BigInt(rep['Private cache pages'])).toBe(privateCache);
    expect(BigInt(rep['User process data pages'])).toBe(counts.anon);
    expect(BigInt(rep['Free pages'])).toBe(counts.free);
    // Zero pages are counted once per frame (a bitmap), but "Remaining" once per PT_LOAD page:
    // the text load's frames, already counted in the direct map, come back as kept pages.
    expect(BigInt(rep['Pages filled with zero'])).toBe(kernelZero);
    expect(BigInt(rep['Remaining pages'])).toBe(kernelPages - kernelZero + imagePages);
    expect(imageZero < imagePages).toBe(true);
    expect(counts.cache > 0n && counts.anon > 0n && counts.free > 0n && kernelPages > 0n).toBe(true);
  });
});
