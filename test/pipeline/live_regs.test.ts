/**
 * Alt+SysRq+d records the registers and current task of the context it
 * interrupted, as the panic path does (issue 8, item 8: it recorded fake
 * registers). Checked against facts read without the code under test:
 * the task list as `machine ps` printed it before the key, System.map
 * (boot/System.map-<release>, `nm -n` text), and each task's `stack`
 * pointer read from the RAM image at the task_struct offset Kerntypes
 * gives. `lkcd analyze` of the saved live dump must name a running task
 * of that list, a call site inside a real function (its ip between the
 * function's address and the next symbol's), and a stack pointer inside
 * that task's THREAD_SIZE kernel stack.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUMP_COMPRESS_GZIP, DUMP_LEVEL_ALL_RAM } from '../../src/dump/index.js';
import { ensureBuilt, ok, powerOnScenario, run, type Scenario } from '../helpers/lkcd.js';

const MiB = 1n << 20n;
/** x86_64 THREAD_SIZE: PAGE_SIZE << THREAD_SIZE_ORDER (2). */
const THREAD_SIZE = 16384n;
const PAGE_OFFSET = 0xffff888000000000n;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-liveregs-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface PsTask { pid: number; st: string; task: bigint; comm: string }

describe.each([
  ['32M database seed 41', { mem: 32n * MiB, profile: 'database', seed: 41 }],
  ['16M idle seed 42', { mem: 16n * MiB, profile: 'idle', seed: 42 }],
])('machine sysrq d on %s', (_name, m) => {
  const dir = path.join(tmp, `${m.profile}-${m.seed}`);
  const s: Scenario = { ...m, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP };
  let ps: PsTask[];
  let stacks: Map<bigint, bigint>;
  let map: Array<{ addr: bigint; type: string; name: string }>;
  let analysis: string;

  beforeAll(() => {
    ensureBuilt();
    const release = powerOnScenario(dir, s);
    ok(run('lkcd', dir, ['config']));
    ps = ok(run('machine', dir, ['ps'])).trim().split('\n').slice(1).map((l) => {
      const [pid, st, task, ...comm] = l.trim().split(/\s+/);
      return { pid: Number(pid), st, task: BigInt(task), comm: comm.join(' ') };
    });
    // task_struct.stack of every task, from the RAM image (the direct map: phys = virt - PAGE_OFFSET).
    const kt = JSON.parse(fs.readFileSync(path.join(dir, 'boot', `Kerntypes-${release}`), 'utf8')) as { structs: Array<{ name: string; fields: Array<{ name: string; offset: number }> }> };
    const stackOff = kt.structs.find((x) => x.name === 'task_struct')!.fields.find((f) => f.name === 'stack')!.offset;
    const fd = fs.openSync(path.join(dir, 'lib', 'machine', 'ram'), 'r');
    stacks = new Map();
    for (const t of ps) {
      if (t.task < PAGE_OFFSET) continue; // init_task lives in the kernel image, not the direct map
      const b = Buffer.alloc(8);
      fs.readSync(fd, b, 0, 8, Number(t.task - PAGE_OFFSET) + stackOff);
      stacks.set(t.task, b.readBigUInt64LE(0));
    }
    fs.closeSync(fd);
    map = fs.readFileSync(path.join(dir, 'boot', `System.map-${release}`), 'utf8').trim().split('\n').map((l) => {
      const [a, type, name] = l.split(' ');
      return { addr: BigInt(`0x${a}`), type, name };
    });
    ok(run('machine', dir, ['sysrq', 'd']));
    // A live dump takes free frames only: on a busy database machine it is TRUNCATED (exit 3, one line).
    const config = run('lkcd', dir, ['config']);
    expect([0, 3], config.stderr).toContain(config.status);
    const save = run('lkcd', dir, ['save']);
    expect([0, 3], save.stderr).toContain(save.status);
    analysis = ok(run('lkcd', dir, ['analyze', '0']));
  });

  it('the current task is a running task of the task list, not the idle task', () => {
    const cur = BigInt(/current task: (0x[0-9a-f]+)/.exec(analysis)![1]);
    const t = ps.find((x) => x.task === cur);
    expect(t, analysis).toBeDefined();
    expect(t!.st).toBe('RU');
    expect(t!.pid).not.toBe(0);
  });

  it('the ip lies inside a real function of System.map, and the call site names it', () => {
    const ip = BigInt(`0x${/ IP: ([0-9a-f]{16})/.exec(analysis)![1]}`);
    const i = map.findIndex((e, k) => e.addr <= ip && (k + 1 === map.length || map[k + 1].addr > ip));
    expect(i).toBeGreaterThanOrEqual(0);
    // The symbol holding ip is a text symbol and the next symbol starts after it.
    const fn = map.filter((e) => e.addr === map[i].addr && /^[Tt]$/.test(e.type)).pop();
    expect(fn, `ip ${ip.toString(16)} is in ${map[i].name}, not a function`).toBeDefined();
    expect(ip).toBeGreaterThan(fn!.addr);
    expect(analysis).toContain(`call site: ${fn!.name}+0x${(ip - fn!.addr).toString(16)}`);
    expect(fn!.name).not.toBe('sysrq_handle_dump');
  });

  it('the stack pointer lies inside that task\'s kernel stack', () => {
    const cur = BigInt(/current task: (0x[0-9a-f]+)/.exec(analysis)![1]);
    const sp = BigInt(`0x${/ SP: ([0-9a-f]{16})/.exec(analysis)![1]}`);
    const stack = stacks.get(cur)!;
    expect(stack).toBeGreaterThan(0n);
    expect(sp).toBeGreaterThanOrEqual(stack);
    expect(sp).toBeLessThan(stack + THREAD_SIZE);
  });
});
