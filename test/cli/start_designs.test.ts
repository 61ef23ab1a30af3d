/**
 * `npm start -- --design kdump|fadump` on a 64 MiB machine: the flow runs
 * to a saved vmcore, the summary names each step and the figures, and
 * what it says is what is on disk (the file crash opens, the pages
 * makedumpfile's header counts, as libkdumpfile reads them).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, EX_USAGE, REPO } from '../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../helpers/machine.js';
import { needs, runTool, SYSTEM_PYTHON } from '../helpers/tools.js';

const START = path.join(REPO, 'dist', 'lkcd', 'start.js');

let dir: string;
beforeAll(() => { ensureBuilt(); dir = makeTempDir('start-designs'); });
afterAll(() => removeTempDir(dir));

function start(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LKCD_')) env[k] = v;
  const r = spawnSync(process.execPath, [START, ...args], { cwd: REPO, env, encoding: 'utf8', timeout: 300_000 });
  // The summary folds its lines at 80 columns (continuations indented 12): read each item as one line.
  // Only a word longer than a line (a deep path) may pass the 80th column, alone on its line.
  expect(r.stdout.split('\n').filter((l) => l.length > 80 && l.replace(/^ {2}[a-z]+ {2,}|^ +/, '').includes(' '))).toEqual([]);
  return { status: r.status, stdout: r.stdout.replace(/\n {12}(?=\S)/g, ' '), stderr: r.stderr };
}

const tools = needs('makedumpfile', 'vmcore-dmesg', 'crash', '/usr/bin/python3', 'python3:kdumpfile');
describe(`npm start -- --design${tools.reason}`, () => {
  tools.it.for(['kdump', 'fadump'] as const)('%s: the whole flow, a timed summary, and the vmcore it names', (design) => {
    const root = path.join(dir, design);
    const r = start(['--design', design, '--mem', '64M', '--seconds', '2', '--seed', '5', '--root', root, '--message', `start ${design}`]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`lkcd-softboot: the ${design} crash-dump flow on a 64M machine under ${root}\n`);
    for (const s of ['power on', 'kdumpctl start', 'workload runs 2 s', 'panic: ', 'kdumpctl save', 'total']) expect(r.stdout).toMatch(new RegExp(`^ {2}${s}.* +\\d+\\.\\d s$`, 'm'));
    expect(r.stdout).toContain(`  crashed   Kernel panic - not syncing: start ${design}\n`);
    const reserved = /^ {2}reserved +([\d.]+) MiB while healthy/m.exec(r.stdout);
    expect(reserved, r.stdout).not.toBeNull();
    if (design === 'kdump') expect(reserved![1]).toBe('32.0');
    const saved = /^ {2}saved +(\d+) pages of the (\d+) below max_mapnr, by makedumpfile \(dump level 31, (\w+)\), design (\w+)$/m.exec(r.stdout);
    expect(saved, r.stdout).not.toBeNull();
    expect(saved![4]).toBe(design);
    const file = /^ {2}files +(\S+) and vmcore-dmesg\.txt$/m.exec(r.stdout)![1];
    expect(fs.existsSync(file)).toBe(true);
    expect(runTool('crash', ['--osrelease', file]).stdout).toBe('5.4.0-lkcd\n');
    // libkdumpfile's view of the same file: its page count and max_mapnr.
    const py = runTool(SYSTEM_PYTHON, ['-c', `import kdumpfile\nk = kdumpfile.kdumpfile(${JSON.stringify(file)})\nprint(k.attr['max_pfn'])`]);
    expect(py.status, py.stderr).toBe(0);
    expect(py.stdout.trim()).toBe(saved![2]);
    expect(fs.readFileSync(path.join(path.dirname(file), 'vmcore-dmesg.txt'), 'latin1')).toMatch(new RegExp(`Kernel panic - not syncing: start ${design}\\n$`));
  });
});

describe('npm start -- --design: bad combinations', () => {
  it('--live and --pstore go with the LKCD design only: one line, exit 64', () => {
    const r = start(['--design', 'fadump', '--live', '--root', path.join(dir, 'bad')]);
    expect(r.status).toBe(EX_USAGE);
    expect(r.stderr).toBe('start: --live goes with --design lkcd\n');
  });
});
